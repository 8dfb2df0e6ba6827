//! Snapshots: a session's state as bytes, and back.
//!
//! A snapshot holds what cannot be derived: working memory (under the same
//! ids), the clock, the activations still waiting, the delayed actions and
//! the counters. Partial matches, aggregate bindings and window timers are
//! derived from those, so a restore rebuilds them by running the facts
//! through the network again, then marks every match that had already
//! fired as fired.
//!
//! Layout: the 8 bytes `NUDGESNP`, the format version (u32, little endian),
//! then the body in postcard.

use super::facts::{FactData, FactId};
use super::time::{Pending, TimerKind};
use super::tokens::NONE;
use super::{validate, Activation, Host, Session, SessionConfig, State};
use crate::network::{BetaKind, Network};
use nudge_core::{Timestamp, Value};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::sync::Arc;

const MAGIC: &[u8; 8] = b"NUDGESNP";
/// The snapshot format this version writes and reads.
pub const SNAPSHOT_VERSION: u32 = 2;

/// Why a snapshot could not be restored. Nothing is created when one is
/// returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The bytes are not a nudge snapshot.
    #[error("not a nudge snapshot (it does not start with `NUDGESNP`)")]
    NotASnapshot,
    /// Written by a format version this one cannot read.
    #[error(
        "snapshot format version {found} cannot be read: this build reads version {supported}"
    )]
    Version {
        /// The snapshot's version.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// Taken from a session over other rules or another schema.
    #[error("the snapshot was taken over other rules (fingerprint {found:016x}, this network's is {expected:016x})")]
    OtherRules {
        /// The snapshot's network fingerprint.
        found: u64,
        /// This network's.
        expected: u64,
    },
    /// The bytes are damaged.
    #[error("the snapshot is damaged: {0}")]
    Corrupt(String),
}

/// A value as a snapshot stores it: tagged by position, which compact
/// binary formats need (a [`Value`]'s own serde form is for JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Stored {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Timestamp(i64),
    Duration(i64),
    List(Vec<String>),
}

impl From<&Value> for Stored {
    fn from(v: &Value) -> Self {
        match v {
            Value::Null => Stored::Null,
            Value::Bool(b) => Stored::Bool(*b),
            Value::Int(i) => Stored::Int(*i),
            Value::Float(f) => Stored::Float(*f),
            Value::Str(s) => Stored::Str(s.to_string()),
            Value::Timestamp(t) => Stored::Timestamp(t.as_millis()),
            Value::Duration(d) => Stored::Duration(d.as_millis()),
            Value::List(l) => Stored::List(l.iter().map(|s| s.to_string()).collect()),
        }
    }
}

impl From<Stored> for Value {
    fn from(v: Stored) -> Self {
        match v {
            Stored::Null => Value::Null,
            Stored::Bool(b) => Value::Bool(b),
            Stored::Int(i) => Value::Int(i),
            Stored::Float(f) => Value::Float(f),
            Stored::Str(s) => Value::Str(s.into()),
            Stored::Timestamp(t) => Value::Timestamp(Timestamp::from_millis(t)),
            Stored::Duration(d) => Value::Duration(nudge_core::Duration::from_millis(d)),
            Stored::List(l) => Value::List(l.into_iter().map(Into::into).collect()),
        }
    }
}

fn stored(values: &[Value]) -> Vec<Stored> {
    values.iter().map(Stored::from).collect()
}

fn loaded(values: Vec<Stored>) -> Vec<Value> {
    values.into_iter().map(Value::from).collect()
}

/// A fact of working memory, as stored.
#[derive(Serialize, Deserialize)]
struct StoredFact {
    ty: u32,
    values: Vec<Stored>,
    seq: u64,
    order: u64,
    time: i64,
}

/// A binding of a match, as a snapshot names it: a fact by id, an aggregate
/// binding by its values (bindings get new ids when rebuilt).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Bound {
    Fact(FactId),
    Binding(Vec<Value>),
}

#[derive(Serialize, Deserialize)]
enum StoredBound {
    Fact(FactId),
    Binding(Vec<Stored>),
}

impl From<&Bound> for StoredBound {
    fn from(b: &Bound) -> Self {
        match b {
            Bound::Fact(f) => StoredBound::Fact(*f),
            Bound::Binding(v) => StoredBound::Binding(stored(v)),
        }
    }
}

impl From<StoredBound> for Bound {
    fn from(b: StoredBound) -> Self {
        match b {
            StoredBound::Fact(f) => Bound::Fact(f),
            StoredBound::Binding(v) => Bound::Binding(loaded(v)),
        }
    }
}

/// A match: its rule and bindings.
type MatchKey = (u32, Vec<Bound>);
type StoredMatch = (u32, Vec<StoredBound>);

fn store_match((rule, b): &MatchKey) -> StoredMatch {
    (*rule, b.iter().map(StoredBound::from).collect())
}

fn load_match((rule, b): StoredMatch) -> MatchKey {
    (rule, b.into_iter().map(Bound::from).collect())
}

#[derive(Serialize, Deserialize)]
struct PendingData {
    due: Timestamp,
    rule: u32,
    action: u32,
    retry: bool,
    origin: u64,
    values: Vec<Stored>,
    slots: Vec<StoredBound>,
    /// The match whose end by a change of facts cancels the action.
    watch: Option<StoredMatch>,
}

#[derive(Serialize, Deserialize)]
struct Body {
    fingerprint: u64,
    config: SessionConfig,
    now: Timestamp,
    seq: u64,
    facts: Vec<(u32, Option<StoredFact>)>,
    free: Vec<u32>,
    /// Activations waiting, in firing order.
    agenda: Vec<StoredMatch>,
    pending: Vec<PendingData>,
    group_fired: Vec<(u32, FactId)>,
    decision_seq: u64,
    /// The highest firing number given, so that firings after a restore
    /// never take the number of one that scheduled a pending action.
    firings: u64,
    counters: (u64, u64, u64, u64, u64),
    rule_firings: Vec<u64>,
}

impl<H: Host> State<H> {
    fn bound(&self, f: FactId) -> Bound {
        match self.facts.get(f) {
            Some(d) if d.ty == super::BINDING_TYPE => Bound::Binding(d.values.to_vec()),
            _ => Bound::Fact(f),
        }
    }

    fn match_key(&self, net: &Network, rule: u32, token: u32, fact: FactId) -> MatchKey {
        let slots: Vec<Bound> = if token == NONE {
            vec![Bound::Fact(fact)]
        } else {
            self.slots_of(net, token)
                .iter()
                .map(|&f| self.bound(f))
                .collect()
        };
        (rule, slots)
    }
}

impl<H: Host> Session<H> {
    /// The session's state as bytes: working memory, clock, waiting
    /// activations, delayed actions and counters. Decisions not yet taken
    /// are not included. [`Session::restore`] continues from it exactly.
    ///
    /// ```
    /// # use nudge_core::{FactKind, FactType, Schema, Value, ValueType};
    /// # use nudge_rete::ir::{Condition, Pattern, Rule, RuleSet};
    /// # use nudge_rete::{Network, NoHost, Session};
    /// # let mut schema = Schema::new();
    /// # let view = schema.add(FactType::new("view", FactKind::Event).field("page", ValueType::String, false))?;
    /// # let mut rules = RuleSet::new(schema);
    /// # rules.add_rule(Rule::new("r").when(Condition::Pattern(Pattern::new(view))))?;
    /// let network = Network::shared(rules)?;
    /// let mut session = Session::new(network.clone());
    /// session.insert(view, vec![Value::from("home")])?;
    /// let bytes = session.snapshot();
    /// let restored = Session::restore(network, NoHost, &bytes)?;
    /// assert_eq!(restored.fact_count(), 1);
    /// assert_eq!(restored.pending().len(), 1, "the activation still waits");
    /// Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn snapshot(&self) -> Vec<u8> {
        let (net, st) = (&*self.net, &self.state);
        let mut waiting: Vec<&Activation> = st
            .agenda
            .iter()
            .filter(|a| !st.check_activation(net, a).0)
            .collect();
        waiting.sort_by(|a, b| b.cmp(a));
        let agenda = waiting
            .iter()
            .map(|a| store_match(&st.match_key(net, a.rule(), a.token, a.fact)))
            .collect();
        let pending = st
            .pending
            .actions
            .values()
            .map(|p| PendingData {
                due: p.due,
                rule: p.rule,
                action: p.action,
                retry: p.retry,
                origin: p.origin,
                values: stored(&p.values),
                slots: p.slots.iter().map(|&f| (&st.bound(f)).into()).collect(),
                watch: p
                    .watch
                    .map(|(t, _)| store_match(&st.match_key(net, p.rule, t, FactId::NONE))),
            })
            .collect();
        let (facts, free) = st.facts.export();
        let facts = facts
            .into_iter()
            .map(|(generation, d)| {
                let d = d.map(|d| StoredFact {
                    ty: d.ty.index() as u32,
                    values: stored(&d.values),
                    seq: d.seq,
                    order: d.order,
                    time: d.time.as_millis(),
                });
                (generation, d)
            })
            .collect();
        let c = st.counters;
        let body = Body {
            fingerprint: net.fingerprint,
            config: st.config,
            now: st.now,
            seq: st.seq,
            facts,
            free,
            agenda,
            pending,
            group_fired: st.group_fired.iter().copied().collect(),
            decision_seq: st.decisions.next_seq(),
            firings: st.decisions.firings(),
            counters: (
                c.alpha_tests,
                c.firings,
                c.late_events,
                c.expired_events,
                c.timers,
            ),
            rule_firings: st.rule_firings.clone(),
        };
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        // Serializing plain data into a Vec cannot fail.
        out.extend(postcard::to_allocvec(&body).unwrap_or_default());
        out
    }

    /// A session restored from [`Session::snapshot`] bytes, over the same
    /// rules: it continues exactly as the original would have. `host` should
    /// answer as the original's did (the same audiences, host functions and
    /// providers): the matches are rebuilt by running the facts through the
    /// network again, asking it.
    pub fn restore(net: Arc<Network>, host: H, bytes: &[u8]) -> Result<Self, SnapshotError> {
        Self::try_restore(net, host, bytes).map_err(|(e, _)| e)
    }

    /// [`Session::restore`], giving the host back with the error when the
    /// bytes are refused, so that a host set up for the session (audiences
    /// loaded, functions registered) is not lost with them.
    ///
    /// ```
    /// use nudge_rete::{ir::RuleSet, Network, NoHost, Session, SnapshotError};
    /// let net = Network::shared(RuleSet::default()).unwrap();
    /// let Err((e, NoHost)) = Session::try_restore(net, NoHost, b"not a snapshot") else {
    ///     panic!("refused")
    /// };
    /// assert!(matches!(e, SnapshotError::NotASnapshot));
    /// ```
    pub fn try_restore(
        net: Arc<Network>,
        host: H,
        bytes: &[u8],
    ) -> Result<Self, (SnapshotError, H)> {
        let body = match Self::read_body(&net, bytes) {
            Ok(body) => body,
            Err(e) => return Err((e, host)),
        };
        let mut session = Session::with_config(net, host, body.config);
        match session.fill(body) {
            Ok(()) => Ok(session),
            Err(e) => Err((e, session.into_host())),
        }
    }

    /// The snapshot's body, once its header, rules and facts are checked.
    fn read_body(net: &Network, bytes: &[u8]) -> Result<Body, SnapshotError> {
        if bytes.len() < 12 || &bytes[..8] != MAGIC {
            return Err(SnapshotError::NotASnapshot);
        }
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if version != SNAPSHOT_VERSION {
            return Err(SnapshotError::Version {
                found: version,
                supported: SNAPSHOT_VERSION,
            });
        }
        let body: Body = postcard::from_bytes(&bytes[12..])
            .map_err(|e| SnapshotError::Corrupt(e.to_string()))?;
        if body.fingerprint != net.fingerprint {
            return Err(SnapshotError::OtherRules {
                found: body.fingerprint,
                expected: net.fingerprint,
            });
        }
        if body.rule_firings.len() != net.rules.rules().len() {
            return Err(SnapshotError::Corrupt("rule counts differ".into()));
        }
        Ok(body)
    }

    /// Loads a checked body into a fresh session.
    fn fill(&mut self, body: Body) -> Result<(), SnapshotError> {
        let net = self.net.clone();
        let facts = validated_facts(&net, body.facts)?;
        let st = &mut self.state;
        st.facts
            .import((facts, body.free))
            .map_err(SnapshotError::Corrupt)?;
        st.now = body.now;
        st.seq = body.seq;
        // Rebuild partial matches and timers, in insertion order.
        let keyed: Vec<(FactId, nudge_core::TypeId, Box<[nudge_core::Value]>, u64)> = st
            .facts
            .ids()
            .filter(|(_, d)| st.keys.key_field(d.ty).is_some())
            .map(|(id, d)| (id, d.ty, d.values.clone(), d.order))
            .collect();
        for (id, ty, values, order) in keyed {
            st.keys.add(ty, &values, id, order);
        }
        let mut order: Vec<(u64, FactId)> = st.facts.ids().map(|(id, d)| (d.seq, id)).collect();
        order.sort_unstable();
        for (_, id) in order {
            st.schedule_expiry(&net, id);
            st.assert_fact(&net, id, false);
        }
        // What had fired stays fired; only the saved activations wait.
        st.agenda.clear();
        let mut terminals: FxHashMap<MatchKey, u32> = FxHashMap::default();
        for t in 0..st.tokens.slab.len() as u32 {
            let tok = st.tokens.get(t);
            if !tok.live {
                continue;
            }
            if let BetaKind::Terminal(rule) = net.beta[tok.node as usize].kind {
                st.tokens.get_mut(t).fired = true;
                let key = st.match_key(&net, rule.index() as u32, t, FactId::NONE);
                terminals.insert(key, t);
            }
        }
        let rules = net.rules.rules();
        for key in body.agenda {
            let key = load_match(key);
            let rule = key.0 as usize;
            if rule >= rules.len() {
                return Err(SnapshotError::Corrupt("unknown rule".into()));
            }
            let r = &rules[rule];
            if let Some(&t) = terminals.get(&key) {
                let tok = st.tokens.get_mut(t);
                tok.fired = false;
                let (recency, generation) = (tok.recency, tok.generation);
                st.agenda.push(Activation::new(
                    r.salience,
                    recency,
                    rule as u32,
                    t,
                    generation,
                    FactId::NONE,
                    0,
                ));
            } else if let [Bound::Fact(f)] = key.1[..] {
                if let Some(seq) = st.facts.get(f).map(|d| d.seq) {
                    st.agenda.push(Activation::new(
                        r.salience,
                        seq,
                        rule as u32,
                        NONE,
                        0,
                        f,
                        seq,
                    ));
                }
            }
        }
        for p in body.pending {
            let actions = if p.retry {
                net.emits.len()
            } else {
                net.delayed.len()
            };
            if p.action as usize >= actions || p.rule as usize >= rules.len() {
                return Err(SnapshotError::Corrupt("unknown delayed action".into()));
            }
            let watch = p
                .watch
                .map(load_match)
                .and_then(|k| terminals.get(&k).map(|&t| (t, st.tokens.get(t).generation)));
            let slots: SmallVec<[FactId; 4]> = p
                .slots
                .into_iter()
                .map(|b| match b {
                    StoredBound::Fact(f) => f,
                    StoredBound::Binding(_) => FactId::NONE,
                })
                .collect();
            let id = st.pending.add(Pending {
                due: p.due,
                rule: p.rule,
                action: p.action,
                retry: p.retry,
                origin: p.origin,
                values: loaded(p.values).into_boxed_slice(),
                slots,
                watch,
            });
            st.timers.push(p.due, TimerKind::Delayed { id });
        }
        st.group_fired = body.group_fired.into_iter().collect();
        st.decisions.set_next_seq(body.decision_seq);
        st.decisions.set_firings(body.firings);
        let c = body.counters;
        st.counters = super::Counters {
            alpha_tests: c.0,
            firings: c.1,
            late_events: c.2,
            expired_events: c.3,
            timers: c.4,
        };
        st.rule_firings = body.rule_firings;
        Ok(())
    }
}

/// The stored facts, each checked again against its type: a snapshot is
/// input like any other.
fn validated_facts(
    net: &Network,
    stored: Vec<(u32, Option<StoredFact>)>,
) -> Result<Vec<(u32, Option<FactData>)>, SnapshotError> {
    let mut facts = Vec::with_capacity(stored.len());
    for (generation, data) in stored {
        let data = match data {
            Some(d) => {
                let ty = nudge_core::TypeId::new(d.ty);
                let values = validate(&net.rules, ty, loaded(d.values))
                    .map_err(|e| SnapshotError::Corrupt(e.to_string()))?;
                Some(FactData {
                    ty,
                    values,
                    seq: d.seq,
                    order: d.order,
                    time: Timestamp::from_millis(d.time),
                    first_token: NONE,
                })
            }
            None => None,
        };
        facts.push((generation, data));
    }
    Ok(facts)
}
