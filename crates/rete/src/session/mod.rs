//! Sessions: the mutable side of the engine. A session holds working
//! memory, the partial matches of every node, and the agenda; it runs
//! against one shared, immutable [`Network`].

mod agenda;
mod aggregate;
mod decisions;
mod facts;
mod keys;
mod snapshot;
mod time;
mod tokens;

pub use decisions::DecisionRef;
pub use facts::{FactError, FactId};
pub use snapshot::{SnapshotError, SNAPSHOT_VERSION};
pub use time::{Clock, LatePolicy};

use crate::ir::{clock_changes, eval, test, Env, FunctionId, SetId, Slot};
use crate::network::{input, BetaId, BetaKind, BetaNode, CAction, Input, Network};
use agenda::{Activation, Agenda};
use aggregate::{AggMem, BINDING_TYPE};
use decisions::DecisionLog;
use facts::{validate, validate_fields, FactData, FactStore};
use keys::KeyIndex;
use nudge_core::{Duration, Effect, FactKind, FieldId, Outcome, Status, Timestamp, TypeId, Value};
use rustc_hash::{FxHashMap, FxHashSet, FxHasher};
use smallvec::SmallVec;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use time::{ExpiryQueues, Pending, PendingActions, TimerKind, Timers};
use tokens::{Tokens, NONE};

/// What a session asks of its host while matching and firing.
///
/// Every method has a default, so a host implements only what its rules
/// use: membership sets (audiences), host functions, context providers,
/// and what becomes of each decision.
pub trait Host {
    /// Whether `key` is a member of set `set`.
    fn in_set(&self, set: SetId, key: &Value) -> bool {
        let _ = (set, key);
        false
    }

    /// Calls host function `function`; `Value::Null` when it has no answer.
    fn call(&self, function: FunctionId, args: &[Value]) -> Value {
        let _ = (function, args);
        Value::Null
    }

    /// Picks the branch to run for a decision whose action has branches
    /// (an experiment's arm, a coupon's outcome); `None` runs none. Only
    /// the default [`Host::decide`] calls it.
    fn choose(&mut self, decision: DecisionRef<'_>) -> Option<Arc<str>> {
        let _ = decision;
        None
    }

    /// Whether the host decides the decisions of action `action` (asked once
    /// per action when a session starts). Decisions of the others are
    /// carried out as made, without a call. The default asks only about
    /// actions with branches, for [`Host::choose`].
    fn decides(&self, action: &str, has_branches: bool) -> bool {
        let _ = action;
        has_branches
    }

    /// Decides what becomes of a decision as a rule makes it: the branch to
    /// run, whether it is carried out, suppressed or deferred, what to
    /// record with it, and changes to working memory ([`Effect`]).
    ///
    /// A decision deferred to a later instant is decided again then, with
    /// the same arguments and facts (its branches run only the first time).
    /// The default carries every decision out, and asks [`Host::choose`]
    /// for the branch of an action that has branches.
    fn decide(&mut self, decision: DecisionRef<'_>, memory: Memory<'_>) -> Outcome {
        let _ = memory;
        if decision.branch_labels().is_empty() {
            Outcome::done()
        } else {
            let branch = self.choose(decision);
            Outcome {
                branch,
                ..Outcome::done()
            }
        }
    }

    /// Fills the fields context provider `context` (an index into the
    /// type's [`nudge_core::FactType::contexts`]) adds to a fact of type
    /// `ty` that is being inserted. `fact` holds one value per field, the
    /// provider's fields set to null. An error refuses the insert.
    fn provide(&mut self, ty: TypeId, context: usize, fact: &mut [Value]) -> Result<(), String> {
        let _ = (ty, context, fact);
        Err("no provider is registered under this name".into())
    }
}

/// Working memory as a host sees it while deciding: facts by id, and facts
/// of keyed fact types by key.
#[derive(Clone, Copy)]
pub struct Memory<'a> {
    facts: &'a FactStore,
    keys: &'a KeyIndex,
}

impl<'a> Memory<'a> {
    /// The type and values of a live fact.
    pub fn fact(&self, id: FactId) -> Option<(TypeId, &'a [Value])> {
        self.facts
            .get(id)
            .filter(|d| d.ty != BINDING_TYPE)
            .map(|d| (d.ty, &d.values[..]))
    }

    /// The values of a live fact, or of an aggregate binding (its `by`
    /// values, then the aggregate's value), as [`DecisionRef::facts`] lists
    /// them.
    pub fn values(&self, id: FactId) -> Option<&'a [Value]> {
        self.facts.get(id).map(|d| &d.values[..])
    }

    /// The time of a live event: its `time` field, or the clock when it was
    /// inserted (see `docs/time.md`); for a fact, when it was inserted.
    pub fn time(&self, id: FactId) -> Option<Timestamp> {
        self.facts
            .get(id)
            .filter(|d| d.ty != BINDING_TYPE)
            .map(|d| d.time)
    }

    /// The live facts of fact type `ty` (one with a key field; events are
    /// not indexed) whose key is `key`, in the order they were inserted.
    pub fn by_key(&self, ty: TypeId, key: &Value) -> impl Iterator<Item = (FactId, &'a [Value])> {
        let facts = self.facts;
        self.keys
            .get(ty, key)
            .filter_map(move |id| facts.get(id).map(|d| (id, &d.values[..])))
    }
}

/// A host with no sets, no functions and no branch choices.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHost;

impl Host for NoHost {}

/// Session settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionConfig {
    /// Most rule firings one call to [`Session::fire`] may make before it
    /// stops with [`SessionError::RunLimit`]: a guard against rules that
    /// activate each other for ever.
    pub max_firings: usize,
    /// How late an event may arrive and still count: windows close and
    /// absences are decided this long after their end (see `docs/time.md`).
    pub lateness: Duration,
    /// What happens to an event later than `lateness`.
    pub late: LatePolicy,
    /// The clock the session runs on.
    pub clock: Clock,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_firings: 100_000,
            lateness: Duration::ZERO,
            late: LatePolicy::Reject,
            clock: Clock::Pseudo,
        }
    }
}

/// Why a session call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// A fact was refused; the session is unchanged.
    #[error(transparent)]
    Fact(#[from] FactError),
    /// `fire` reached its firing limit with activations still pending.
    #[error("stopped after {fired} rule firings with activations still pending: rules may be activating each other for ever (raise `max_firings` if not)")]
    RunLimit {
        /// Firings made by the call.
        fired: usize,
    },
    /// An action of a firing rule failed; earlier actions took effect.
    #[error("rule `{rule}`: {error}")]
    Action {
        /// The rule.
        rule: String,
        /// What went wrong.
        error: FactError,
    },
    /// The clock was asked to go back; nothing changed.
    #[error("the clock is at {now} and cannot go back to {to}")]
    ClockBackwards {
        /// The session's clock.
        now: Timestamp,
        /// The time asked for.
        to: Timestamp,
    },
    /// The clock was asked to move past the last time a timestamp holds;
    /// nothing changed.
    #[error("the clock is at {now} and cannot move on by {by}: that is past the last time a timestamp holds")]
    ClockOverflow {
        /// The session's clock.
        now: Timestamp,
        /// The step asked for.
        by: Duration,
    },
}

/// Per-node memories of a join, negation or existence node.
#[derive(Debug, Default)]
struct NodeMem {
    /// Tokens by join key: for a join, its parent's tokens; for `not` and
    /// `exists`, its own tokens.
    left: FxHashMap<u64, SmallVec<[u32; 2]>>,
    /// Facts of the right input by join key (kept only where left tokens can
    /// arrive after facts, i.e. below the root).
    right: FxHashMap<u64, SmallVec<[FactId; 2]>>,
    /// An aggregate node's facts and bindings.
    agg: AggMem,
}

/// Everything of a session but its network, so that the network can be
/// borrowed while the state changes.
struct State<H> {
    host: H,
    /// For each emitted action of the network, whether the host decides it.
    decided: Vec<bool>,
    facts: FactStore,
    keys: KeyIndex,
    tokens: Tokens,
    mems: Vec<NodeMem>,
    agenda: Agenda,
    decisions: DecisionLog,
    seq: u64,
    now: Timestamp,
    firing: Option<usize>,
    group_fired: FxHashSet<(u32, FactId)>,
    alpha_stack: Vec<u32>,
    alpha_found: Vec<u32>,
    config: SessionConfig,
    counters: Counters,
    /// Firings per rule, by rule index.
    rule_firings: Vec<u64>,
    timers: Timers,
    expiry: ExpiryQueues,
    /// While events expire: aggregate groups to recompute afterwards.
    agg_dirty: Option<Vec<(BetaId, u64, u64)>>,
    pending: PendingActions,
    /// The (origin firing, due time) of the last delayed action run, and
    /// the firing number it ran under.
    delayed_firing: Option<(u64, Timestamp, u64)>,
    /// Set while timers run: matches that end then end by time alone.
    by_time: bool,
}

/// Work a session has done, for tests, benchmarks and capacity planning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Alpha test nodes reached by facts (inserts, and again on modify and
    /// retract): a test shared by many rules counts once per fact.
    pub alpha_tests: u64,
    /// Rule firings.
    pub firings: u64,
    /// Events refused, or moved to the watermark, for being late.
    pub late_events: u64,
    /// Events removed from working memory once no match could use them.
    pub expired_events: u64,
    /// Timers run (windows closing, absences decided, delayed actions).
    pub timers: u64,
}

/// A working memory and agenda over a shared [`Network`].
///
/// ```
/// use nudge_core::{FactKind, FactType, Schema, Value, ValueType};
/// use nudge_rete::ir::{Action, Arg, Condition, Emit, Expr, Pattern, Rule, RuleSet, Slot};
/// use nudge_rete::{Network, Session};
///
/// let mut schema = Schema::new();
/// let order = schema.add(FactType::new("order_paid", FactKind::Event)
///     .field("user_id", ValueType::String, false)
///     .field("amount", ValueType::Float, false))?;
/// let (user, amount) = (nudge_core::FieldId::new(0), nudge_core::FieldId::new(1));
/// let mut rules = RuleSet::new(schema);
/// rules.add_rule(
///     Rule::new("big_order")
///         .when(Condition::Pattern(Pattern::new(order).test(Expr::own(amount).gt(Expr::value(100.0)))))
///         .then(Action::Emit(Emit {
///             action: "coupon".into(),
///             args: vec![("user".into(), Arg::Expr(Expr::bound(Slot::new(0), user)))],
///             branches: vec![],
///         })),
/// )?;
/// let network = Network::shared(rules)?;
/// let mut session = Session::new(network);
/// session.insert(order, vec![Value::from("u1"), Value::Float(250.0)])?;
/// session.insert(order, vec![Value::from("u2"), Value::Float(20.0)])?;
/// assert_eq!(session.fire()?, 1);
/// let d = session.decisions().next().unwrap();
/// assert_eq!((d.rule_name(), d.action()), ("big_order", "coupon"));
/// assert_eq!(d.arg("user"), Some(&Value::from("u1")));
/// Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Session<H: Host = NoHost> {
    net: Arc<Network>,
    state: State<H>,
}

impl Session<NoHost> {
    /// A session with no host.
    pub fn new(net: Arc<Network>) -> Self {
        Session::with_host(net, NoHost)
    }
}

impl<H: Host> Session<H> {
    /// A session whose sets, functions and branch choices come from `host`.
    pub fn with_host(net: Arc<Network>, host: H) -> Self {
        Session::with_config(net, host, SessionConfig::default())
    }

    /// A session with a host and settings.
    pub fn with_config(net: Arc<Network>, host: H, config: SessionConfig) -> Self {
        let mut mems = Vec::with_capacity(net.beta.len());
        mems.resize_with(net.beta.len(), NodeMem::default);
        let decided = net
            .emits
            .iter()
            .map(|e| host.decides(&e.action, !e.branches.is_empty()))
            .collect();
        let mut state = State {
            host,
            decided,
            facts: FactStore::default(),
            keys: KeyIndex::new(net.rules.schema()),
            tokens: Tokens::default(),
            mems,
            agenda: Agenda::default(),
            decisions: DecisionLog::default(),
            seq: 0,
            now: Timestamp::from_millis(0),
            firing: None,
            group_fired: FxHashSet::default(),
            alpha_stack: Vec::new(),
            alpha_found: Vec::new(),
            config,
            counters: Counters::default(),
            rule_firings: vec![0; net.rules.rules().len()],
            timers: Timers::default(),
            expiry: ExpiryQueues::new(&net.type_horizons),
            agg_dirty: None,
            pending: PendingActions::default(),
            delayed_firing: None,
            by_time: false,
        };
        let root = state.tokens.add(0, NONE, FactId::NONE, 0, FactId::NONE);
        state.activate(&net, root);
        Session { net, state }
    }

    /// Changes the settings.
    pub fn set_config(&mut self, config: SessionConfig) {
        self.state.config = config;
    }

    /// The network.
    pub fn network(&self) -> &Arc<Network> {
        &self.net
    }

    /// The host.
    pub fn host(&self) -> &H {
        &self.state.host
    }

    /// The host, to change it (new audiences...).
    pub fn host_mut(&mut self) -> &mut H {
        &mut self.state.host
    }

    /// The host, the session dropped.
    pub fn into_host(self) -> H {
        self.state.host
    }

    /// The settings.
    pub fn config(&self) -> SessionConfig {
        self.state.config
    }

    /// The session clock: what `now()` reads.
    pub fn now(&self) -> Timestamp {
        self.state.now
    }

    /// The clock less the lateness: windows and absences run on it.
    pub fn watermark(&self) -> Timestamp {
        self.state.watermark()
    }

    /// The instant of the next timer (a window closing, an absence decided,
    /// a delayed action due, an event expiring), if any.
    pub fn next_timer(&self) -> Option<Timestamp> {
        self.state.next_timer(&self.net)
    }

    /// Moves the clock to `t`: fires what is pending, then, in order, every
    /// instant a timer is due, applying its timers and firing the rules they
    /// activate, with the clock at that instant; returns the firings.
    ///
    /// ```
    /// # use nudge_core::{Duration, FactKind, FactType, Schema, Timestamp, Value, ValueType, FieldId};
    /// # use nudge_rete::ir::{Action, Arg, Condition, Emit, Expr, Pattern, Rule, RuleSet, Slot, Window};
    /// # use nudge_rete::{Network, Session};
    /// let mut schema = Schema::new();
    /// let created = schema.add(FactType::new("order_created", FactKind::Event)
    ///     .field("order_id", ValueType::String, false))?;
    /// let paid = schema.add(FactType::new("order_paid", FactKind::Event)
    ///     .field("order_id", ValueType::String, false))?;
    /// let id = FieldId::new(0);
    /// let mut rules = RuleSet::new(schema);
    /// // o: order_created()  not order_paid(order_id == o.order_id) after o within 10m
    /// let unpaid = Pattern::new(paid)
    ///     .test(Expr::own(id).eq(Expr::bound(Slot::new(0), id)))
    ///     .window(Window::after_within(Slot::new(0), "10m".parse()?));
    /// rules.add_rule(Rule::new("unpaid")
    ///     .when(Condition::Pattern(Pattern::new(created)))
    ///     .when(Condition::Not(unpaid))
    ///     .then(Action::Emit(Emit { action: "sms".into(), args: vec![], branches: vec![] })))?;
    /// let mut session = Session::new(Network::shared(rules)?);
    /// let t0: Timestamp = "2026-11-22T10:00:00Z".parse()?;
    /// session.advance_to(t0)?;
    /// session.insert(created, vec![Value::from("o1")])?;
    /// session.insert(created, vec![Value::from("o2")])?;
    /// session.advance_by("5m".parse()?)?;
    /// session.insert(paid, vec![Value::from("o1")])?;
    /// assert_eq!(session.advance_by("1h".parse()?)?, 1, "only o2 went unpaid");
    /// let d = session.decisions().next().unwrap();
    /// // The window is [10:00, 10:10], both ends in: decided just after it.
    /// assert_eq!(d.time().to_string(), "2026-11-22T10:10:00.001Z");
    /// Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn advance_to(&mut self, t: Timestamp) -> Result<usize, SessionError> {
        self.state.advance_to(&self.net, t)
    }

    /// Moves the clock forward by `d` (see [`Session::advance_to`]).
    pub fn advance_by(&mut self, d: Duration) -> Result<usize, SessionError> {
        let now = self.state.now;
        let t = now
            .checked_add(d)
            .ok_or(SessionError::ClockOverflow { now, by: d })?;
        self.advance_to(t)
    }

    /// Inserts a fact of type `ty` with one value per declared field
    /// (`Value::Null` for a missing optional field). The fields of the
    /// type's contexts are filled by the host first ([`Host::provide`]). A
    /// wrong value, a provider's error, or an event later than the lateness
    /// allows, is an error and leaves the session unchanged.
    pub fn insert(&mut self, ty: TypeId, mut values: Vec<Value>) -> Result<FactId, FactError> {
        self.follow_system_clock();
        self.state.provide(&self.net, ty, &mut values)?;
        let values = validate(&self.net.rules, ty, values)?;
        let time = self.state.event_time(&self.net, ty, &values)?;
        Ok(self.state.insert_valid(&self.net, ty, values, time))
    }

    /// On the system clock, moves the clock to the system time when no
    /// timer falls due before it (those wait for [`Session::fire`], which
    /// runs them at their own instants).
    fn follow_system_clock(&mut self) {
        if self.state.config.clock == Clock::System {
            let t = system_now();
            if t > self.state.now && self.state.next_timer(&self.net).is_none_or(|n| n > t) {
                self.state.now = t;
            }
        }
    }

    /// An event's time (a fact's insertion time), while it is live.
    pub fn event_time(&self, id: FactId) -> Option<Timestamp> {
        self.state
            .facts
            .get(id)
            .filter(|d| d.ty != BINDING_TYPE)
            .map(|d| d.time)
    }

    /// The values of a live fact, or of an aggregate binding (its `by`
    /// values, then the aggregate's value) as [`Session::matches`] gives it.
    pub fn binding(&self, id: FactId) -> Option<&[Value]> {
        self.state.facts.get(id).map(|d| &d.values[..])
    }

    /// Changes some fields of a fact, keeping its identity: its matches are
    /// withdrawn and made again with the new values.
    pub fn modify(&mut self, id: FactId, changes: &[(FieldId, Value)]) -> Result<(), FactError> {
        self.follow_system_clock();
        self.state.modify(&self.net, id, changes)
    }

    /// Removes a fact and every partial match and pending activation it
    /// took part in.
    pub fn retract(&mut self, id: FactId) -> Result<(), FactError> {
        self.follow_system_clock();
        self.state.retract(&self.net, id)
    }

    /// Working memory as the host sees it: facts by id, and the facts of
    /// keyed fact types by key.
    pub fn memory(&self) -> Memory<'_> {
        Memory {
            facts: &self.state.facts,
            keys: &self.state.keys,
        }
    }

    /// The type and values of a live fact.
    pub fn fact(&self, id: FactId) -> Option<(TypeId, &[Value])> {
        self.state
            .facts
            .get(id)
            .filter(|d| d.ty != BINDING_TYPE)
            .map(|d| (d.ty, &d.values[..]))
    }

    /// Every live fact and event.
    pub fn facts(&self) -> impl Iterator<Item = (FactId, TypeId, &[Value])> {
        self.state
            .facts
            .ids()
            .map(|(id, d)| (id, d.ty, &d.values[..]))
    }

    /// The work done so far.
    pub fn counters(&self) -> Counters {
        self.state.counters
    }

    /// How often each rule has fired, by rule index.
    pub fn firings_per_rule(&self) -> &[u64] {
        &self.state.rule_firings
    }

    /// Number of live facts and events.
    pub fn fact_count(&self) -> usize {
        self.state.facts.len()
    }

    /// Number of timers waiting, and of delayed actions among them.
    pub fn timer_count(&self) -> (usize, usize) {
        (
            self.state.timers.len() + self.state.expiry.len(),
            self.state.pending.len(),
        )
    }

    /// Number of live partial matches (tokens), for memory accounting.
    pub fn token_count(&self) -> usize {
        self.state.tokens.live_count()
    }

    /// Fires activations in conflict-resolution order (salience, then the
    /// newest trigger, then rule order) until none is left; returns how many
    /// fired. Decisions accumulate until [`Session::clear_decisions`].
    ///
    /// On the system clock, first advances the clock to the system time.
    pub fn fire(&mut self) -> Result<usize, SessionError> {
        if self.state.config.clock == Clock::System {
            let t = system_now();
            if t > self.state.now {
                return self.state.advance_to(&self.net, t);
            }
        }
        self.state.fire(&self.net)
    }

    /// The decisions made since they were last cleared, in order.
    pub fn decisions(&self) -> impl Iterator<Item = DecisionRef<'_>> {
        let log = &self.state.decisions;
        (0..log.len()).map(move |i| log.get(&self.net, i))
    }

    /// Number of decisions held.
    pub fn decision_count(&self) -> usize {
        self.state.decisions.len()
    }

    /// Forgets the decisions made so far (their buffers are reused).
    pub fn clear_decisions(&mut self) {
        self.state.decisions.clear();
    }

    /// Owned copies of the decisions, which are then cleared.
    pub fn take_decisions(&mut self) -> Vec<nudge_core::Decision> {
        let out = self.decisions().map(|d| d.to_decision()).collect();
        self.clear_decisions();
        out
    }

    /// Every complete match of every rule, fired or not: the rule and the
    /// fact bound at each slot. This is what the differential tests compare
    /// with the reference evaluator.
    pub fn matches(&self) -> Vec<(crate::ir::RuleId, Vec<FactId>)> {
        let (net, state) = (&*self.net, &self.state);
        let mut out = Vec::new();
        for (t, tok) in state.tokens.slab.iter().enumerate() {
            if !tok.live {
                continue;
            }
            if let BetaKind::Terminal(rule) = net.beta[tok.node as usize].kind {
                out.push((rule, state.slots_of(net, t as u32).to_vec()));
            }
        }
        // Single-pattern rules hold no tokens: their matches are the facts
        // that reach their join below the root.
        let mut stack = Vec::new();
        for (id, d) in state.facts.ids() {
            let mut mems = Vec::new();
            net.alpha
                .dispatch(d.ty, &d.values, &mut stack, |m| mems.push(m));
            for m in mems {
                for &n in &net.alpha_successors[m as usize] {
                    let node = &net.beta[n as usize];
                    let (BetaKind::Join(input), 0) = (&node.kind, node.parent) else {
                        continue;
                    };
                    if !state.matches(net, node, input, ROOT, id) {
                        continue;
                    }
                    for &c in &node.children {
                        if let BetaKind::Terminal(rule) = net.beta[c as usize].kind {
                            if !net.rule_tokens[rule.index()]
                                && state.first_pattern_valid(net, rule.index(), d)
                            {
                                out.push((rule, vec![id]));
                            }
                        }
                    }
                }
            }
        }
        out.sort();
        out
    }

    /// The activations waiting to fire, in firing order: the rule and the
    /// facts of each (refraction, no-loop and activation groups applied).
    pub fn pending(&self) -> Vec<(crate::ir::RuleId, Vec<FactId>)> {
        let (net, state) = (&*self.net, &self.state);
        let mut waiting: Vec<&Activation> = state
            .agenda
            .iter()
            .filter(|a| {
                let (stale, trigger) = state.check_activation(net, a);
                let blocked = net.rule_group[a.rule() as usize]
                    .is_some_and(|g| state.group_fired.contains(&(g, trigger)));
                !stale && !blocked
            })
            .collect();
        waiting.sort_by(|a, b| b.cmp(a));
        waiting
            .into_iter()
            .map(|a| {
                let facts = if a.token == NONE {
                    vec![a.fact]
                } else {
                    state.slots_of(net, a.token).to_vec()
                };
                (crate::ir::RuleId::new(a.rule()), facts)
            })
            .collect()
    }
}

/// The root token: the first token of every session.
const ROOT: u32 = 0;

fn system_now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Timestamp::from_millis(ms)
}

fn plus(t: Timestamp, d: Duration) -> Timestamp {
    Timestamp::from_millis(t.as_millis().saturating_add(d.as_millis()))
}

fn plus_d(a: Duration, b: Duration) -> Duration {
    Duration::from_millis(a.as_millis().saturating_add(b.as_millis()))
}

fn hash_key<'a>(values: impl Iterator<Item = &'a Value>) -> u64 {
    let mut h = FxHasher::default();
    for v in values {
        v.hash(&mut h);
    }
    h.finish()
}

/// Reads bound facts through a token's ancestry, and the tested fact.
struct MatchEnv<'a, H> {
    state: &'a State<H>,
    net: &'a Network,
    token: u32,
    slot_depth: &'a [u16],
    own: Option<&'a [Value]>,
}

impl<H: Host> Env for MatchEnv<'_, H> {
    fn own(&self, field: FieldId) -> Value {
        self.own
            .and_then(|v| v.get(field.index()))
            .cloned()
            .unwrap_or(Value::Null)
    }
    fn bound(&self, slot: Slot, field: FieldId) -> Value {
        let f = self
            .state
            .slot_fact(self.net, self.token, self.slot_depth, slot);
        self.state.value(f, field).cloned().unwrap_or(Value::Null)
    }
    fn in_set(&self, set: SetId, key: &Value) -> bool {
        self.state.host.in_set(set, key)
    }
    fn now(&self) -> Timestamp {
        self.state.now
    }
    fn call_host(&self, f: FunctionId, args: &[Value]) -> Value {
        self.state.host.call(f, args)
    }
}

/// Reads bound facts from a snapshot of a firing activation's facts.
struct FiringEnv<'a, H> {
    facts: &'a FactStore,
    host: &'a H,
    now: Timestamp,
    slots: &'a [FactId],
}

impl<H: Host> Env for FiringEnv<'_, H> {
    fn own(&self, _: FieldId) -> Value {
        Value::Null
    }
    fn bound(&self, slot: Slot, field: FieldId) -> Value {
        let f = self
            .slots
            .get(slot.index())
            .copied()
            .unwrap_or(FactId::NONE);
        self.facts
            .get(f)
            .and_then(|d| d.values.get(field.index()))
            .cloned()
            .unwrap_or(Value::Null)
    }
    fn in_set(&self, set: SetId, key: &Value) -> bool {
        self.host.in_set(set, key)
    }
    fn now(&self) -> Timestamp {
        self.now
    }
    fn call_host(&self, f: FunctionId, args: &[Value]) -> Value {
        self.host.call(f, args)
    }
}

impl<H: Host> State<H> {
    fn value(&self, f: FactId, field: FieldId) -> Option<&Value> {
        self.facts.get(f).and_then(|d| d.values.get(field.index()))
    }

    /// The fact bound at `slot`, found by walking up from `token`, whose
    /// node binds slots at the depths `slot_depth`.
    fn slot_fact(&self, net: &Network, token: u32, slot_depth: &[u16], slot: Slot) -> FactId {
        let Some(&depth) = slot_depth.get(slot.index()) else {
            return FactId::NONE;
        };
        let mut t = token;
        while t != NONE {
            let tok = self.tokens.get(t);
            let d = net.beta[tok.node as usize].depth;
            if d == depth {
                return tok.fact;
            }
            if d < depth {
                break;
            }
            t = tok.parent;
        }
        FactId::NONE
    }

    /// The facts of every slot of the match ending in `token`.
    fn slots_of(&self, net: &Network, token: u32) -> SmallVec<[FactId; 8]> {
        let sd = &net.beta[self.tokens.get(token).node as usize].slot_depth;
        (0..sd.len())
            .map(|s| self.slot_fact(net, token, sd, Slot::new(s as u16)))
            .collect()
    }

    fn left_key(&self, net: &Network, node: &BetaNode, input: &Input, token: u32) -> u64 {
        if input.joins.is_empty() {
            return 0;
        }
        let sd = &net.beta[node.parent as usize].slot_depth;
        let mut h = FxHasher::default();
        for j in &input.joins {
            let f = self.slot_fact(net, token, sd, j.slot);
            self.value(f, j.other).unwrap_or(&Value::Null).hash(&mut h);
        }
        h.finish()
    }

    fn right_key(&self, input: &Input, values: &[Value]) -> u64 {
        if input.joins.is_empty() {
            return 0;
        }
        hash_key(
            input
                .joins
                .iter()
                .map(|j| values.get(j.field.index()).unwrap_or(&Value::Null)),
        )
    }

    /// Whether the left token `token` (at the node's parent) and fact `f`
    /// pass the node's joins and filters.
    fn matches(
        &self,
        net: &Network,
        node: &BetaNode,
        input: &Input,
        token: u32,
        f: FactId,
    ) -> bool {
        let Some(data) = self.facts.get(f) else {
            return false;
        };
        let sd = &net.beta[node.parent as usize].slot_depth;
        if let Some((s, within)) = input.time.after {
            let Some(o) = self.facts.get(self.slot_fact(net, token, sd, s)) else {
                return false;
            };
            if (o.time, o.order) >= (data.time, data.order) {
                return false;
            }
            if within.is_some_and(|w| data.time > plus(o.time, w)) {
                return false;
            }
        }
        if let Some((s, within)) = input.time.before {
            let Some(o) = self.facts.get(self.slot_fact(net, token, sd, s)) else {
                return false;
            };
            if (data.time, data.order) >= (o.time, o.order) || plus(data.time, within) < o.time {
                return false;
            }
        }
        for j in &input.joins {
            let other = self.slot_fact(net, token, sd, j.slot);
            let a = data.values.get(j.field.index()).unwrap_or(&Value::Null);
            let b = self.value(other, j.other).unwrap_or(&Value::Null);
            if !crate::ir::compare(crate::ir::CmpOp::Eq, a, b) {
                return false;
            }
        }
        if input.filters.is_empty() {
            return true;
        }
        let env = MatchEnv {
            state: self,
            net,
            token,
            slot_depth: sd,
            own: Some(&data.values),
        };
        input.filters.iter().all(|e| test(e, &env))
    }

    fn watermark(&self) -> Timestamp {
        Timestamp::from_millis(
            self.now
                .as_millis()
                .saturating_sub(self.config.lateness.as_millis()),
        )
    }

    /// The instant on the session clock at which the watermark reaches `t`.
    fn when_watermark(&self, t: Timestamp) -> Timestamp {
        plus(t, self.config.lateness)
    }

    /// The time of an event about to be inserted or changed: its time
    /// field, or the clock; a late one is refused or moved, per the policy.
    fn event_time(
        &mut self,
        net: &Network,
        ty: TypeId,
        values: &[Value],
    ) -> Result<Timestamp, FactError> {
        let t = net.rules.schema().get(ty);
        let now = match self.config.clock {
            Clock::System => system_now().max(self.now),
            Clock::Pseudo => self.now,
        };
        if t.kind() != FactKind::Event {
            return Ok(now);
        }
        let time = match t.time().and_then(|f| values.get(f.index())) {
            Some(Value::Timestamp(ts)) => *ts,
            _ => now,
        };
        let w = self.watermark();
        if time >= w {
            return Ok(time);
        }
        self.counters.late_events += 1;
        match self.config.late {
            LatePolicy::AtWatermark => Ok(w),
            LatePolicy::Reject => Err(FactError::Late {
                ty: t.name().to_string(),
                time,
                watermark: w,
            }),
        }
    }

    fn insert_valid(
        &mut self,
        net: &Network,
        ty: TypeId,
        values: Box<[Value]>,
        time: Timestamp,
    ) -> FactId {
        self.seq += 1;
        let id = self.facts.add(FactData {
            ty,
            values,
            seq: self.seq,
            order: self.seq,
            time,
            first_token: NONE,
        });
        if self.keys.key_field(ty).is_some() {
            if let Some(d) = self.facts.get(id) {
                self.keys.add(ty, &d.values, id, d.order);
            }
        }
        self.schedule_expiry(net, id);
        self.assert_fact(net, id, true);
        id
    }

    /// Runs the context providers of `ty` over a fact being inserted.
    fn provide(
        &mut self,
        net: &Network,
        ty: TypeId,
        values: &mut [Value],
    ) -> Result<(), FactError> {
        let schema = net.rules.schema();
        if ty.index() >= schema.types().len() {
            return Ok(()); // validation names the bad type
        }
        let t = schema.get(ty);
        if t.contexts().is_empty() || values.len() != t.fields().len() {
            return Ok(());
        }
        for (i, c) in t.contexts().iter().enumerate() {
            for f in &c.fields {
                values[f.index()] = Value::Null;
            }
            let error = |message: String| FactError::Context {
                ty: t.name().to_string(),
                context: c.name.to_string(),
                message,
            };
            self.host.provide(ty, i, values).map_err(error)?;
            // A provider's wrong value is the provider's error.
            validate_fields(&net.rules, ty, values, &c.fields).map_err(|e| error(e.to_string()))?;
        }
        Ok(())
    }

    /// Queues an event for expiry: it leaves the inputs of each horizon of
    /// its type, then working memory, as the watermark passes.
    fn schedule_expiry(&mut self, net: &Network, id: FactId) {
        let Some(d) = self.facts.get(id) else { return };
        if net.type_retention[d.ty.index()].is_some() {
            let (ty, time) = (d.ty.index(), d.time);
            self.expiry.push(ty, time, id);
        }
    }

    /// Whether an event is still within `horizon` of the watermark.
    fn within(&self, time: Timestamp, horizon: Duration) -> bool {
        plus(time, horizon) >= self.watermark()
    }

    /// For a rule activated straight from its one pattern's fact: whether
    /// the fact is still within that pattern's horizon.
    fn first_pattern_valid(&self, net: &Network, rule: usize, d: &FactData) -> bool {
        match net.rule_first_horizon[rule] {
            Some(h) => self.within(d.time, h),
            None => true,
        }
    }

    /// The alpha memories the fact belongs to, into `alpha_found`.
    fn alpha_memories(&mut self, net: &Network, id: FactId) {
        let mut found = std::mem::take(&mut self.alpha_found);
        found.clear();
        if let Some(d) = self.facts.get(id) {
            self.counters.alpha_tests +=
                net.alpha
                    .dispatch(d.ty, &d.values, &mut self.alpha_stack, |m| found.push(m));
        }
        self.alpha_found = found;
    }

    /// Runs a fact through the network. `fresh`: it was just inserted, so
    /// it is within every window (an event older than the watermark is
    /// refused or moved before it gets here); a modified or restored event
    /// may have left some.
    fn assert_fact(&mut self, net: &Network, id: FactId, fresh: bool) {
        self.alpha_memories(net, id);
        let found = std::mem::take(&mut self.alpha_found);
        for &m in &found {
            for &n in &net.alpha_successors[m as usize] {
                self.right_insert(net, n, id, fresh);
            }
        }
        self.alpha_found = found;
    }

    fn right_insert(&mut self, net: &Network, n: BetaId, f: FactId, fresh: bool) {
        let node = &net.beta[n as usize];
        let Some(input) = input(node) else { return };
        if let (Some(h), false) = (input.time.horizon, fresh) {
            match self.facts.get(f) {
                Some(d) if self.within(d.time, h) => {}
                _ => return,
            }
        }
        if let BetaKind::Aggregate(..) = node.kind {
            self.agg_right_insert(net, n, f);
            return;
        }
        if node.parent == 0 {
            if let BetaKind::Join(_) = node.kind {
                self.root_join(net, n, f);
                return;
            }
        }
        let key = match self.facts.get(f) {
            Some(d) => self.right_key(input, &d.values),
            None => return,
        };
        let mem = &mut self.mems[n as usize];
        mem.right.entry(key).or_default().push(f);
        let lefts: SmallVec<[u32; 8]> = match mem.left.get(&key) {
            Some(v) => v.iter().copied().collect(),
            None => return,
        };
        match node.kind {
            BetaKind::Join(_) => {
                for t in lefts {
                    if !self.tokens.get(t).live {
                        continue;
                    }
                    self.schedule_recheck(net, n, t, f);
                    if self.matches(net, node, input, t, f) {
                        let child = self.join_token(n, t, f);
                        self.activate(net, child);
                    }
                }
            }
            BetaKind::Not(_) | BetaKind::Exists(_) => {
                let is_not = matches!(node.kind, BetaKind::Not(_));
                for t2 in lefts {
                    let parent = self.tokens.get(t2).parent;
                    if !self.tokens.get(t2).live || !self.matches(net, node, input, parent, f) {
                        continue;
                    }
                    let tok = self.tokens.get_mut(t2);
                    tok.count += 1;
                    if tok.count == 1 {
                        if is_not {
                            self.deactivate(net, t2);
                        } else {
                            self.activate(net, t2);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// A fact entering a join just below the root. Its only left token is
    /// the root's, so there is no memory to consult; a rule made of this one
    /// pattern gets its activation straight from the fact, with no token,
    /// and a token is made only for children that go on matching.
    fn root_join(&mut self, net: &Network, n: BetaId, f: FactId) {
        let node = &net.beta[n as usize];
        let Some(input) = input(node) else { return };
        self.schedule_recheck(net, n, ROOT, f);
        if !input.filters.is_empty() && !self.matches(net, node, input, ROOT, f) {
            return;
        }
        let Some(seq) = self.facts.get(f).map(|d| d.seq) else {
            return;
        };
        let mut token = None;
        for &c in &node.children {
            match net.beta[c as usize].kind {
                BetaKind::Terminal(rule) if !net.rule_tokens[rule.index()] => {
                    self.push_activation(net, rule, NONE, 0, seq, f, seq);
                }
                _ => {
                    let t = match token {
                        Some(t) => t,
                        None => *token.insert(self.join_token(n, ROOT, f)),
                    };
                    self.activate_child(net, t, c);
                }
            }
        }
    }

    /// Queues a rule's activation, unless no-loop forbids it; says which.
    #[allow(clippy::too_many_arguments)]
    fn push_activation(
        &mut self,
        net: &Network,
        rule: crate::ir::RuleId,
        token: u32,
        generation: u32,
        recency: u64,
        fact: FactId,
        fact_seq: u64,
    ) -> bool {
        let r = &net.rules.rules()[rule.index()];
        if r.no_loop && self.firing == Some(rule.index()) {
            return false;
        }
        self.agenda.push(Activation::new(
            r.salience,
            recency,
            rule.index() as u32,
            token,
            generation,
            fact,
            fact_seq,
        ));
        true
    }

    fn join_token(&mut self, node: BetaId, parent: u32, f: FactId) -> u32 {
        let (p_recency, p_trigger) = {
            let p = self.tokens.get(parent);
            (p.recency, p.trigger)
        };
        let (seq, head) = match self.facts.get(f) {
            Some(d) => (d.seq, d.first_token),
            None => (0, NONE),
        };
        let (recency, trigger) = if seq > p_recency {
            (seq, f)
        } else {
            (p_recency, p_trigger)
        };
        let t = self.tokens.add(node, parent, f, recency, trigger);
        let mut head = head;
        self.tokens.link_fact(t, &mut head);
        if let Some(d) = self.facts.get_mut(f) {
            d.first_token = head;
        }
        t
    }

    /// Passes a token that has become active at its node to the node's children.
    fn activate(&mut self, net: &Network, t: u32) {
        let node_id = self.tokens.get(t).node;
        let node = &net.beta[node_id as usize];
        for &c in &node.children {
            self.activate_child(net, t, c);
        }
    }

    /// Passes an active token to one child node.
    fn activate_child(&mut self, net: &Network, t: u32, c: BetaId) {
        {
            let child = &net.beta[c as usize];
            match &child.kind {
                BetaKind::Join(input) => {
                    let key = self.left_key(net, child, input, t);
                    self.mems[c as usize].left.entry(key).or_default().push(t);
                    let rights: SmallVec<[FactId; 8]> = match self.mems[c as usize].right.get(&key)
                    {
                        Some(v) => v.iter().copied().collect(),
                        None => return,
                    };
                    for f in rights {
                        if !self.tokens.get(t).live {
                            continue;
                        }
                        self.schedule_recheck(net, c, t, f);
                        if self.matches(net, child, input, t, f) {
                            let j = self.join_token(c, t, f);
                            self.activate(net, j);
                        }
                    }
                }
                BetaKind::Not(input) | BetaKind::Exists(input) => {
                    let key = self.left_key(net, child, input, t);
                    let rights: SmallVec<[FactId; 8]> = self.mems[c as usize]
                        .right
                        .get(&key)
                        .map(|v| v.iter().copied().collect())
                        .unwrap_or_default();
                    let count = rights
                        .iter()
                        .filter(|&&f| self.matches(net, child, input, t, f))
                        .count() as u32;
                    let (recency, trigger) = {
                        let p = self.tokens.get(t);
                        (p.recency, p.trigger)
                    };
                    let t2 = self.tokens.add(c, t, FactId::NONE, recency, trigger);
                    self.tokens.get_mut(t2).count = count;
                    self.mems[c as usize].left.entry(key).or_default().push(t2);
                    let is_not = matches!(child.kind, BetaKind::Not(_));
                    let open = if is_not {
                        match self.deadline(net, t2) {
                            Some(at) if at > self.watermark() => {
                                let generation = self.tokens.get(t2).generation;
                                let when = self.when_watermark(at);
                                self.timers.push(
                                    when,
                                    TimerKind::Deadline {
                                        token: t2,
                                        generation,
                                    },
                                );
                                false
                            }
                            _ => true,
                        }
                    } else {
                        true
                    };
                    if (is_not && count == 0 && open) || (!is_not && count > 0) {
                        self.activate(net, t2);
                    }
                }
                BetaKind::Aggregate(..) => self.agg_left_activate(net, c, t),
                BetaKind::Test(e) => {
                    self.schedule_recheck(net, c, t, FactId::NONE);
                    let pass = {
                        let env = MatchEnv {
                            state: &*self,
                            net,
                            token: t,
                            slot_depth: &child.slot_depth,
                            own: None,
                        };
                        test(e, &env)
                    };
                    if pass {
                        let (recency, trigger) = {
                            let p = self.tokens.get(t);
                            (p.recency, p.trigger)
                        };
                        let t2 = self.tokens.add(c, t, FactId::NONE, recency, trigger);
                        self.activate(net, t2);
                    }
                }
                BetaKind::Terminal(rule) => {
                    let (recency, trigger) = {
                        let p = self.tokens.get(t);
                        (p.recency, p.trigger)
                    };
                    let t2 = self.tokens.add(c, t, FactId::NONE, recency, trigger);
                    let generation = self.tokens.get(t2).generation;
                    if !self.push_activation(net, *rule, t2, generation, recency, FactId::NONE, 0) {
                        self.tokens.get_mut(t2).fired = true;
                    }
                }
                BetaKind::Root => {}
            }
        }
    }

    /// Deactivates a `not` or `exists` token that stopped passing, keeping
    /// it in its own node: removes every token below it, and takes it out of
    /// the left memories of its children's joins, where `activate` put it,
    /// so that facts arriving later do not join with it.
    fn deactivate(&mut self, net: &Network, t: u32) {
        let mut doomed = Vec::new();
        self.tokens.descendants(t, &mut doomed);
        self.remove_tokens(net, &doomed);
        let node = &net.beta[self.tokens.get(t).node as usize];
        for &c in &node.children {
            let child = &net.beta[c as usize];
            if let BetaKind::Join(input) | BetaKind::Aggregate(input, _) = &child.kind {
                let key = self.left_key(net, child, input, t);
                remove_from(&mut self.mems[c as usize].left, key, t);
            }
        }
    }

    /// Removes `t` and every token below it.
    fn remove_tree(&mut self, net: &Network, t: u32) {
        let mut doomed = vec![t];
        self.tokens.descendants(t, &mut doomed);
        self.remove_tokens(net, &doomed);
    }

    /// Unindexes then frees tokens given parents first. Every key is computed
    /// before anything is freed, while all ancestors are still in place.
    fn remove_tokens(&mut self, net: &Network, doomed: &[u32]) {
        for &x in doomed {
            let tok = self.tokens.get(x);
            let node = &net.beta[tok.node as usize];
            if let BetaKind::Not(input) | BetaKind::Exists(input) = &node.kind {
                let key = self.left_key(net, node, input, tok.parent);
                remove_from(&mut self.mems[tok.node as usize].left, key, x);
            }
            for &c in &node.children {
                let child = &net.beta[c as usize];
                if let BetaKind::Join(input) | BetaKind::Aggregate(input, _) = &child.kind {
                    let key = self.left_key(net, child, input, x);
                    remove_from(&mut self.mems[c as usize].left, key, x);
                }
            }
            if let BetaKind::Aggregate(..) = node.kind {
                self.agg_forget(net, x);
            }
            if !self.pending.by_token.is_empty() {
                self.pending.token_removed(x, self.by_time);
            }
        }
        for &x in doomed.iter().rev() {
            let f = self.tokens.get(x).fact;
            let binding = self.facts.get(f).is_some_and(|d| d.ty == BINDING_TYPE);
            match self.facts.get_mut(f) {
                Some(d) => {
                    let mut head = d.first_token;
                    self.tokens.free(x, Some(&mut head));
                    if let Some(d) = self.facts.get_mut(f) {
                        d.first_token = head;
                    }
                }
                None => self.tokens.free(x, None),
            }
            if binding {
                self.facts.remove(f);
            }
        }
    }

    /// Withdraws a fact from the network, leaving it in working memory.
    fn withdraw(&mut self, net: &Network, id: FactId) {
        // Facts of a type whose memories feed only joins below the root are
        // held by no node: there is nothing to take out of the alpha side.
        let visits = self
            .facts
            .get(id)
            .is_some_and(|d| net.withdraw_visits_alpha[d.ty.index()]);
        if visits {
            self.alpha_memories(net, id);
        } else {
            self.alpha_found.clear();
        }
        let found = std::mem::take(&mut self.alpha_found);
        let mut unblocked: SmallVec<[(u32, u32, bool); 8]> = SmallVec::new();
        for &m in &found {
            for &n in &net.alpha_successors[m as usize] {
                self.right_remove(net, n, id, &mut unblocked);
            }
        }
        self.alpha_found = found;
        loop {
            let head = match self.facts.get(id) {
                Some(d) => d.first_token,
                None => NONE,
            };
            if head == NONE {
                break;
            }
            self.remove_tree(net, head);
        }
        self.unblock(net, &unblocked);
        if net.groups > 0 {
            for g in 0..net.groups as u32 {
                self.group_fired.remove(&(g, id));
            }
        }
    }

    /// Takes fact `id` out of node `n`'s right memory. The `not` and
    /// `exists` tokens it no longer blocks or supports are listed in
    /// `unblocked`, for [`State::unblock`] once its own tokens are gone.
    fn right_remove(
        &mut self,
        net: &Network,
        n: BetaId,
        id: FactId,
        unblocked: &mut SmallVec<[(u32, u32, bool); 8]>,
    ) {
        let node = &net.beta[n as usize];
        let Some(input) = input(node) else { return };
        if let BetaKind::Aggregate(..) = node.kind {
            self.agg_right_remove(net, n, id);
            return;
        }
        let key = match self.facts.get(id) {
            Some(d) => self.right_key(input, &d.values),
            None => return,
        };
        // Only a fact the memory holds counts against `not` and `exists`
        // tokens: an event that already left this node's window does not.
        let mut present = false;
        if let Some(v) = self.mems[n as usize].right.get_mut(&key) {
            if let Some(i) = v.iter().position(|&x| x == id) {
                v.swap_remove(i);
                present = true;
            }
            if v.is_empty() {
                self.mems[n as usize].right.remove(&key);
            }
        }
        if !present {
            return;
        }
        if let BetaKind::Not(_) | BetaKind::Exists(_) = node.kind {
            let is_not = matches!(node.kind, BetaKind::Not(_));
            let lefts: SmallVec<[u32; 8]> = self.mems[n as usize]
                .left
                .get(&key)
                .map(|v| v.iter().copied().collect())
                .unwrap_or_default();
            for t2 in lefts {
                let parent = self.tokens.get(t2).parent;
                if self.tokens.get(t2).live && self.matches(net, node, input, parent, id) {
                    let tok = self.tokens.get_mut(t2);
                    tok.count = tok.count.saturating_sub(1);
                    if tok.count == 0 {
                        unblocked.push((t2, tok.generation, is_not));
                    }
                }
            }
        }
    }

    /// `not` tokens no longer blocked pass on, once their window has ended;
    /// `exists` tokens no longer supported stop passing.
    fn unblock(&mut self, net: &Network, unblocked: &[(u32, u32, bool)]) {
        for &(t2, generation, is_not) in unblocked {
            let tok = self.tokens.get(t2);
            if !tok.live || tok.generation != generation || tok.count != 0 {
                continue;
            }
            if is_not {
                if self
                    .deadline(net, t2)
                    .is_none_or(|at| at <= self.watermark())
                {
                    self.activate(net, t2);
                }
            } else {
                self.deactivate(net, t2);
            }
        }
    }

    /// The watermark at which a `not ... after s within D` or `not ...
    /// before s within D` token's absence is decided (see
    /// `TimeSpec::deadline`).
    fn deadline(&self, net: &Network, t2: u32) -> Option<Timestamp> {
        let tok = self.tokens.get(t2);
        let node = &net.beta[tok.node as usize];
        let (s, offset) = input(node)?.time.deadline()?;
        let sd = &net.beta[node.parent as usize].slot_depth;
        let f = self.slot_fact(net, tok.parent, sd, s);
        self.facts.get(f).map(|o| plus(o.time, offset))
    }

    /// An event leaves node `n` because its window there has passed.
    fn node_expire(&mut self, net: &Network, n: BetaId, f: FactId) {
        let mut unblocked: SmallVec<[(u32, u32, bool); 8]> = SmallVec::new();
        self.right_remove(net, n, f, &mut unblocked);
        let mut mine: SmallVec<[u32; 4]> = SmallVec::new();
        let mut t = self.facts.get(f).map_or(NONE, |d| d.first_token);
        while t != NONE {
            let tok = self.tokens.get(t);
            if tok.node == n {
                mine.push(t);
            }
            t = tok.next_of_fact;
        }
        for t in mine {
            if self.tokens.get(t).live {
                self.remove_tree(net, t);
            }
        }
        self.unblock(net, &unblocked);
    }

    /// Moves the clock to `t`, visiting every instant a timer is due.
    fn advance_to(&mut self, net: &Network, t: Timestamp) -> Result<usize, SessionError> {
        if t < self.now {
            return Err(SessionError::ClockBackwards {
                now: self.now,
                to: t,
            });
        }
        let mut fired = self.fire(net)?;
        // Rounds at one instant: timers that keep scheduling timers for the
        // same instant (delays of zero) are stopped like runaway rules.
        let mut rounds = 0;
        while let Some(at) = self.next_timer(net) {
            if at > t {
                break;
            }
            if at <= self.now {
                rounds += 1;
                if rounds > self.config.max_firings {
                    return Err(SessionError::RunLimit { fired });
                }
            } else {
                rounds = 0;
            }
            self.now = self.now.max(at);
            self.run_timers(net)?;
            fired += self.fire(net)?;
        }
        self.now = t;
        fired += self.fire(net)?;
        Ok(fired)
    }

    /// When node `n`'s tests read the clock, a timer for when they may next
    /// change their answer for token `t` (and fact `f`, at a join).
    #[inline]
    fn schedule_recheck(&mut self, net: &Network, n: BetaId, t: u32, f: FactId) {
        if net.clock_nodes[n as usize] {
            self.schedule_clock_recheck(net, n, t, f);
        }
    }

    #[cold]
    fn schedule_clock_recheck(&mut self, net: &Network, n: BetaId, t: u32, f: FactId) {
        let node = &net.beta[n as usize];
        let at = {
            let (exprs, own): (&[crate::ir::Expr], _) = match &node.kind {
                BetaKind::Join(i) => (&i.filters, self.facts.get(f).map(|d| &d.values[..])),
                BetaKind::Test(e) => (std::slice::from_ref(e), None),
                _ => return,
            };
            let slot_depth = match node.kind {
                BetaKind::Test(_) => &node.slot_depth,
                _ => &net.beta[node.parent as usize].slot_depth,
            };
            let env = MatchEnv {
                state: self,
                net,
                token: t,
                slot_depth,
                own,
            };
            exprs.iter().filter_map(|e| clock_changes(e, &env)).min()
        };
        if let Some(at) = at {
            let generation = self.tokens.get(t).generation;
            let seq = self.facts.get(f).map_or(0, |d| d.seq);
            self.timers.push(
                at,
                TimerKind::Recheck {
                    node: n,
                    token: t,
                    generation,
                    fact: f,
                    seq,
                },
            );
        }
    }

    /// A clock recheck: the tests of node `n` for token `t` (and fact `f`)
    /// are run again, and the match is made or ended to agree.
    fn recheck(&mut self, net: &Network, n: BetaId, t: u32, f: FactId) {
        let node = &net.beta[n as usize];
        let pass = match &node.kind {
            BetaKind::Join(i) => {
                let present = match self.facts.get(f) {
                    None => false,
                    Some(d) if node.parent == 0 => {
                        i.time.horizon.is_none_or(|h| self.within(d.time, h))
                    }
                    Some(d) => {
                        let key = self.right_key(i, &d.values);
                        self.mems[n as usize]
                            .right
                            .get(&key)
                            .is_some_and(|v| v.contains(&f))
                    }
                };
                present && self.matches(net, node, i, t, f)
            }
            BetaKind::Test(e) => {
                let env = MatchEnv {
                    state: &*self,
                    net,
                    token: t,
                    slot_depth: &node.slot_depth,
                    own: None,
                };
                test(e, &env)
            }
            _ => return,
        };
        let mut child = NONE;
        let mut c = self.tokens.get(t).first_child;
        while c != NONE {
            let tok = self.tokens.get(c);
            if tok.node == n && tok.fact == f {
                child = c;
                break;
            }
            c = tok.next_sibling;
        }
        match (pass, child == NONE) {
            (true, true) => {
                let made = if f == FactId::NONE {
                    let (recency, trigger) = {
                        let p = self.tokens.get(t);
                        (p.recency, p.trigger)
                    };
                    self.tokens.add(n, t, FactId::NONE, recency, trigger)
                } else {
                    self.join_token(n, t, f)
                };
                self.activate(net, made);
            }
            (false, false) => self.remove_tree(net, child),
            _ => {}
        }
        self.schedule_recheck(net, n, t, f);
    }

    /// The next instant at which an event leaves a window or working memory.
    fn next_expiry(&self, net: &Network) -> Option<Timestamp> {
        let one = Duration::from_millis(1);
        let mut next: Option<Timestamp> = None;
        for (ty, q) in self.expiry.types.iter().enumerate() {
            let Some(&(front, _)) = q.events.front() else {
                continue;
            };
            let retention = net.type_retention[ty].unwrap_or(Duration::ZERO);
            let mut due = plus(front, plus_d(retention, one));
            for (h, &passed) in net.type_horizons[ty].iter().zip(&q.passed) {
                if let Some(&(t, _)) = q.events.get(passed) {
                    due = due.min(plus(t, plus_d(*h, one)));
                }
            }
            let due = self.when_watermark(due);
            if due.as_millis() == i64::MAX {
                continue; // past the end of time: never due
            }
            next = Some(next.map_or(due, |n| n.min(due)));
        }
        next
    }

    /// Events whose windows have passed leave them, and, once past their
    /// type's retention, working memory.
    fn run_expiry(&mut self, net: &Network) {
        let w = self.watermark();
        let one = Duration::from_millis(1);
        self.by_time = true;
        // Aggregates are recomputed once all events of the instant are out,
        // so that a value passing through others on the way (an average)
        // is not taken for a new one.
        self.agg_dirty = Some(Vec::new());
        for ty in 0..self.expiry.types.len() {
            for (hi, &h) in net.type_horizons[ty].iter().enumerate() {
                loop {
                    let q = &self.expiry.types[ty];
                    let Some(&(t, fact)) = q.events.get(q.passed[hi]) else {
                        break;
                    };
                    if plus(t, plus_d(h, one)) > w {
                        break;
                    }
                    self.expiry.types[ty].passed[hi] += 1;
                    // Skip retracted events and re-timed ones (queued again).
                    if self.facts.get(fact).is_none_or(|d| d.time != t) {
                        continue;
                    }
                    self.counters.timers += 1;
                    self.alpha_memories(net, fact);
                    let found = std::mem::take(&mut self.alpha_found);
                    for &m in &found {
                        for &n in &net.alpha_successors[m as usize] {
                            let node = &net.beta[n as usize];
                            if input(node).is_some_and(|i| i.time.horizon == Some(h)) {
                                self.node_expire(net, n, fact);
                            }
                        }
                    }
                    self.alpha_found = found;
                }
            }
            let retention = net.type_retention[ty].unwrap_or(Duration::ZERO);
            loop {
                let q = &mut self.expiry.types[ty];
                match q.events.front() {
                    Some(&(t, _)) if plus(t, plus_d(retention, one)) <= w => {}
                    _ => break,
                }
                let Some((t, fact)) = q.events.pop_front() else {
                    break;
                };
                for p in q.passed.iter_mut() {
                    *p = p.saturating_sub(1);
                }
                if self.facts.get(fact).is_none_or(|d| d.time != t) {
                    continue;
                }
                self.withdraw(net, fact);
                self.facts.remove(fact);
                self.counters.expired_events += 1;
            }
        }
        if let Some(mut dirty) = self.agg_dirty.take() {
            dirty.sort_unstable();
            dirty.dedup();
            for (n, key, g) in dirty {
                self.agg_recompute_lefts(net, n, key, g);
            }
        }
        self.by_time = false;
    }

    /// The next instant at which any timer is due.
    fn next_timer(&self, net: &Network) -> Option<Timestamp> {
        match (self.timers.next(), self.next_expiry(net)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs every timer due at or before the clock.
    fn run_timers(&mut self, net: &Network) -> Result<(), SessionError> {
        self.run_expiry(net);
        while let Some(kind) = self.timers.pop_due(self.now) {
            self.counters.timers += 1;
            self.by_time = true;
            match kind {
                TimerKind::Recheck {
                    node,
                    token,
                    generation,
                    fact,
                    seq,
                } => {
                    let tok = self.tokens.get(token);
                    let same = self.facts.get(fact).map_or(0, |d| d.seq) == seq;
                    if tok.live && tok.generation == generation && same {
                        self.recheck(net, node, token, fact);
                    }
                }
                TimerKind::Deadline { token, generation } => {
                    let tok = self.tokens.get(token);
                    if tok.live && tok.generation == generation && tok.count == 0 {
                        self.activate(net, token);
                    }
                }
                TimerKind::Delayed { id } => {
                    self.by_time = false;
                    let Some(p) = self.pending.take(id) else {
                        continue;
                    };
                    if let Some((t, g)) = p.watch {
                        let tok = self.tokens.get(t);
                        if !tok.live || tok.generation != g {
                            continue;
                        }
                    }
                    if p.retry {
                        self.retry(net, p)?;
                    } else {
                        self.run_delayed(net, p)?;
                    }
                }
            }
        }
        self.by_time = false;
        Ok(())
    }

    /// Runs a delayed action at its due time.
    fn run_delayed(&mut self, net: &Network, p: Pending) -> Result<(), SessionError> {
        let rule = p.rule as usize;
        // The delayed actions of one firing that fall due together run as
        // one firing again.
        match self.delayed_firing {
            Some((origin, due, firing)) if origin == p.origin && due == p.due => {
                self.decisions.continue_firing(firing)
            }
            _ => {
                let firing = self.decisions.begin_firing();
                self.delayed_firing = Some((p.origin, p.due, firing));
            }
        }
        let fail = |error| SessionError::Action {
            rule: net.rules.rules()[rule].name.to_string(),
            error,
        };
        match &net.delayed[p.action as usize] {
            CAction::Emit { emit, branches, .. } => {
                let i = self.decisions.push(
                    crate::ir::RuleId::new(p.rule),
                    *emit,
                    p.values.iter().cloned(),
                    &p.slots,
                    self.now,
                );
                self.firing = Some(rule);
                let r = if self.decided[*emit as usize] {
                    self.decide(net, rule, i, *emit, branches, &p.slots, None)
                } else {
                    Ok(())
                };
                self.firing = None;
                r.map_err(fail)?;
            }
            CAction::Insert { ty, fields } => {
                let n = net.rules.schema().get(*ty).fields().len();
                let mut values = vec![Value::Null; n];
                for ((f, _), v) in fields.iter().zip(p.values.iter()) {
                    values[f.index()] = v.clone();
                }
                self.provide(net, *ty, &mut values).map_err(fail)?;
                let values = validate(&net.rules, *ty, values).map_err(fail)?;
                let time = self.event_time(net, *ty, &values).map_err(fail)?;
                self.insert_valid(net, *ty, values, time);
            }
            CAction::Modify { slot, fields } => {
                let id = p.slots.get(slot.index()).copied().unwrap_or(FactId::NONE);
                if self.facts.get(id).is_some() {
                    let changes: SmallVec<[(FieldId, Value); 4]> = fields
                        .iter()
                        .zip(p.values.iter())
                        .map(|((f, _), v)| (*f, v.clone()))
                        .collect();
                    self.modify(net, id, &changes).map_err(fail)?;
                }
            }
            CAction::Retract { slot } => {
                let id = p.slots.get(slot.index()).copied().unwrap_or(FactId::NONE);
                if self.facts.get(id).is_some() {
                    self.retract(net, id).map_err(fail)?;
                }
            }
            a @ CAction::Delayed { .. } => {
                self.firing = Some(rule);
                let r = self.run_actions(net, rule, std::slice::from_ref(a), &p.slots, None);
                self.firing = None;
                r.map_err(fail)?;
            }
        }
        Ok(())
    }

    fn retract(&mut self, net: &Network, id: FactId) -> Result<(), FactError> {
        if self.facts.get(id).is_none() {
            return Err(FactError::NoSuchFact(id));
        }
        self.withdraw(net, id);
        if let Some(d) = self.facts.remove(id) {
            self.keys.remove(d.ty, &d.values, id);
        }
        Ok(())
    }

    fn modify(
        &mut self,
        net: &Network,
        id: FactId,
        changes: &[(FieldId, Value)],
    ) -> Result<(), FactError> {
        let Some(d) = self.facts.get(id) else {
            return Err(FactError::NoSuchFact(id));
        };
        let ty = d.ty;
        let mut values = d.values.to_vec();
        for (f, v) in changes {
            match values.get_mut(f.index()) {
                Some(slot) => *slot = v.clone(),
                None => {
                    let t = net.rules.schema().get(ty);
                    return Err(FactError::Arity {
                        ty: t.name().to_string(),
                        expected: t.fields().len(),
                        found: f.index() + 1,
                    });
                }
            }
        }
        let values = validate(&net.rules, ty, values)?;
        let time = match net.rules.schema().get(ty).time() {
            Some(f)
                if values.get(f.index())
                    != self.facts.get(id).and_then(|d| d.values.get(f.index())) =>
            {
                Some(self.event_time(net, ty, &values)?)
            }
            _ => None,
        };
        self.withdraw(net, id);
        self.seq += 1;
        if let Some(d) = self.facts.get_mut(id) {
            if let Some(k) = self.keys.key_field(ty) {
                if d.values[k] != values[k] {
                    self.keys.remove(ty, &d.values, id);
                    self.keys.add(ty, &values, id, d.order);
                }
            }
            d.values = values;
            d.seq = self.seq;
            if let Some(t) = time {
                d.time = t;
            }
        }
        if time.is_some() {
            self.schedule_expiry(net, id);
        }
        self.assert_fact(net, id, false);
        Ok(())
    }

    fn fire(&mut self, net: &Network) -> Result<usize, SessionError> {
        let mut fired = 0;
        while let Some(a) = self.agenda.pop() {
            let (stale, trigger) = self.check_activation(net, &a);
            if stale {
                continue;
            }
            if fired == self.config.max_firings {
                self.agenda.push(a);
                return Err(SessionError::RunLimit { fired });
            }
            let rule = a.rule() as usize;
            if a.token != NONE {
                self.tokens.get_mut(a.token).fired = true;
            }
            if let Some(g) = net.rule_group[rule] {
                if !self.group_fired.insert((g, trigger)) {
                    continue;
                }
            }
            fired += 1;
            self.counters.firings += 1;
            self.rule_firings[rule] += 1;
            self.decisions.begin_firing();
            let slots = if a.token == NONE {
                SmallVec::from_slice(&[a.fact])
            } else {
                self.slots_of(net, a.token)
            };
            self.firing = Some(rule);
            let watch = (a.token != NONE).then_some((a.token, a.generation));
            let result = self.run_actions(net, rule, &net.actions[rule], &slots, watch);
            self.firing = None;
            if let Err(error) = result {
                return Err(SessionError::Action {
                    rule: net.rules.rules()[rule].name.to_string(),
                    error,
                });
            }
        }
        Ok(fired)
    }

    /// Whether a popped activation is stale, and its trigger fact.
    fn check_activation(&self, net: &Network, a: &Activation) -> (bool, FactId) {
        if a.token == NONE {
            let live = self.facts.get(a.fact).is_some_and(|d| {
                d.seq == a.fact_seq && self.first_pattern_valid(net, a.rule() as usize, d)
            });
            return (!live, a.fact);
        }
        let tok = self.tokens.get(a.token);
        (
            !tok.live || tok.generation != a.generation || tok.fired,
            tok.trigger,
        )
    }

    /// Asks the host what becomes of decision `i`, records the answer,
    /// schedules a deferred decision again, makes the host's changes to
    /// working memory, then runs the branch it picked.
    #[allow(clippy::too_many_arguments)]
    fn decide(
        &mut self,
        net: &Network,
        rule: usize,
        i: usize,
        emit: u32,
        branches: &[(Arc<str>, Vec<CAction>)],
        slots: &[FactId],
        watch: Option<(u32, u32)>,
    ) -> Result<(), FactError> {
        let memory = Memory {
            facts: &self.facts,
            keys: &self.keys,
        };
        let mut outcome = self.host.decide(self.decisions.get(net, i), memory);
        if let Status::Deferred(until) = outcome.status {
            if until > self.now {
                let id = self.pending.add(Pending {
                    due: until,
                    rule: rule as u32,
                    action: emit,
                    retry: true,
                    origin: self.decisions.current_firing(),
                    values: self.decisions.values(i).into(),
                    slots: SmallVec::from_slice(slots),
                    watch: None,
                });
                self.timers.push(until, TimerKind::Delayed { id });
            }
        }
        self.decisions.set_outcome(i, &mut outcome);
        for effect in outcome.effects.drain(..) {
            self.apply(net, effect)?;
        }
        if let Some(label) = outcome.branch {
            if let Some((_, acts)) = branches.iter().find(|(l, _)| *l == label) {
                self.run_actions(net, rule, acts, slots, watch)?;
            }
        }
        Ok(())
    }

    /// Makes one change a host asked for.
    fn apply(&mut self, net: &Network, effect: Effect) -> Result<(), FactError> {
        match effect {
            Effect::Upsert { ty, values } => {
                let t = net
                    .rules
                    .schema()
                    .types()
                    .get(ty.index())
                    .ok_or(FactError::UnknownType(ty.index() as u32))?;
                let Some(k) = self.keys.key_field(ty) else {
                    return Err(FactError::NotKeyed(t.name().to_string()));
                };
                let existing = values.get(k).and_then(|key| self.keys.get(ty, key).next());
                let mut values = values;
                if existing.is_none() {
                    // A new fact: its context providers fill their fields.
                    self.provide(net, ty, &mut values)?;
                }
                let values = validate(&net.rules, ty, values)?;
                match existing {
                    Some(id) => {
                        let changes: SmallVec<[(FieldId, Value); 4]> = match self.facts.get(id) {
                            Some(d) => d
                                .values
                                .iter()
                                .zip(values.iter())
                                .enumerate()
                                .filter(|(_, (old, new))| old != new)
                                .map(|(f, (_, new))| (FieldId::new(f as u16), new.clone()))
                                .collect(),
                            None => SmallVec::new(),
                        };
                        if !changes.is_empty() {
                            self.modify(net, id, &changes)?;
                        }
                    }
                    None => {
                        let time = self.event_time(net, ty, &values)?;
                        self.insert_valid(net, ty, values, time);
                    }
                }
            }
        }
        Ok(())
    }

    /// Decides a deferred decision again at its due time.
    fn retry(&mut self, net: &Network, p: Pending) -> Result<(), SessionError> {
        let rule = p.rule as usize;
        self.decisions.begin_firing();
        let i = self.decisions.push(
            crate::ir::RuleId::new(p.rule),
            p.action,
            p.values.iter().cloned(),
            &p.slots,
            self.now,
        );
        self.decisions.mark_retry(i);
        self.firing = Some(rule);
        let r = self.decide(net, rule, i, p.action, &[], &p.slots, None);
        self.firing = None;
        r.map_err(|error| SessionError::Action {
            rule: net.rules.rules()[rule].name.to_string(),
            error,
        })
    }

    fn run_actions(
        &mut self,
        net: &Network,
        rule: usize,
        actions: &[CAction],
        slots: &[FactId],
        watch: Option<(u32, u32)>,
    ) -> Result<(), FactError> {
        for a in actions {
            match a {
                CAction::Insert { ty, fields } => {
                    let n = net.rules.schema().get(*ty).fields().len();
                    let mut values = vec![Value::Null; n];
                    let env = FiringEnv {
                        facts: &self.facts,
                        host: &self.host,
                        now: self.now,
                        slots,
                    };
                    for (f, e) in fields {
                        values[f.index()] = eval(e, &env);
                    }
                    self.provide(net, *ty, &mut values)?;
                    let values = validate(&net.rules, *ty, values)?;
                    let time = self.event_time(net, *ty, &values)?;
                    self.insert_valid(net, *ty, values, time);
                }
                CAction::Modify { slot, fields } => {
                    let id = slots.get(slot.index()).copied().unwrap_or(FactId::NONE);
                    let env = FiringEnv {
                        facts: &self.facts,
                        host: &self.host,
                        now: self.now,
                        slots,
                    };
                    let changes: SmallVec<[(FieldId, Value); 4]> =
                        fields.iter().map(|(f, e)| (*f, eval(e, &env))).collect();
                    self.modify(net, id, &changes)?;
                }
                CAction::Retract { slot } => {
                    let id = slots.get(slot.index()).copied().unwrap_or(FactId::NONE);
                    self.retract(net, id)?;
                }
                CAction::Emit {
                    emit,
                    args,
                    branches,
                } => {
                    // Arguments are evaluated straight into the decision buffers.
                    let env = FiringEnv {
                        facts: &self.facts,
                        host: &self.host,
                        now: self.now,
                        slots,
                    };
                    let values = args.iter().map(|e| eval(e, &env));
                    let i = self.decisions.push(
                        crate::ir::RuleId::new(rule as u32),
                        *emit,
                        values,
                        slots,
                        self.now,
                    );
                    if self.decided[*emit as usize] {
                        self.decide(net, rule, i, *emit, branches, slots, watch)?;
                    }
                }
                CAction::Delayed {
                    after,
                    recheck,
                    action,
                } => {
                    let env = FiringEnv {
                        facts: &self.facts,
                        host: &self.host,
                        now: self.now,
                        slots,
                    };
                    let values: Box<[Value]> = match &net.delayed[*action as usize] {
                        CAction::Emit { args, .. } => args.iter().map(|e| eval(e, &env)).collect(),
                        CAction::Insert { fields, .. } | CAction::Modify { fields, .. } => {
                            fields.iter().map(|(_, e)| eval(e, &env)).collect()
                        }
                        _ => Box::new([]),
                    };
                    let due = plus(self.now, *after);
                    let id = self.pending.add(Pending {
                        due,
                        rule: rule as u32,
                        action: *action,
                        retry: false,
                        origin: self.decisions.current_firing(),
                        values,
                        slots: SmallVec::from_slice(slots),
                        watch: if *recheck { watch } else { None },
                    });
                    self.timers.push(due, TimerKind::Delayed { id });
                }
            }
        }
        Ok(())
    }
}

fn remove_from(index: &mut FxHashMap<u64, SmallVec<[u32; 2]>>, key: u64, t: u32) {
    if let Some(v) = index.get_mut(&key) {
        if let Some(i) = v.iter().position(|&x| x == t) {
            v.swap_remove(i);
        }
        if v.is_empty() {
            index.remove(&key);
        }
    }
}
