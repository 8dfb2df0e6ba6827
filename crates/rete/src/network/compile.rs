//! From rule model to network: one alpha chain per pattern, one beta chain
//! per rule, both hash-consed so that equal prefixes are built once.

use super::{
    AggSpec, AlphaNet, BetaId, BetaKind, BetaNode, CAction, EmitInfo, Input, Network, TimeSpec,
};
use crate::ir::{reads_clock, Action, Arg, Condition, Expr, Pattern, RuleId, RuleSet, Slot};
use nudge_core::{Duration, FactKind, Value, ValueType};
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

/// Why a rule set could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompileError {
    /// The rule set is not valid (it was deserialized rather than built).
    #[error(transparent)]
    Invalid(#[from] crate::ir::IrError),
}

pub(super) fn compile(mut rules: RuleSet) -> Result<Network, CompileError> {
    // Built rule sets are valid by construction; deserialized ones are
    // checked here, so that no index in them can be out of range.
    rules.reindex();
    rules.validate()?;
    let types = rules.schema().types().len();
    let mut b = Builder {
        alpha: AlphaNet::new(types),
        beta: vec![BetaNode {
            kind: BetaKind::Root,
            parent: 0,
            children: Vec::new(),
            depth: 0,
            slot_depth: Vec::new(),
        }],
        beta_index: FxHashMap::default(),
        alpha_successors: Vec::new(),
        alpha_rules: Vec::new(),
        beta_rules: vec![Vec::new()],
        retention: FxHashMap::default(),
    };
    for (i, rule) in rules.rules().iter().enumerate() {
        let id = RuleId::new(i as u32);
        let horizon = rule.horizon();
        let mut node: BetaId = 0;
        // Retention of the event bound at each slot (`None`: a fact or an
        // aggregate), for the `after` patterns that refer to it.
        let mut slot_retention: Vec<Option<Duration>> = Vec::new();
        for c in &rule.conditions {
            let kind = match c {
                Condition::Pattern(p) | Condition::Not(p) | Condition::Exists(p) => {
                    let time = time_spec(&rules, p, horizon);
                    let of = |s: Slot| slot_retention.get(s.index()).copied().flatten();
                    let retention = match (time.horizon, time.after, time.before) {
                        (Some(h), ..) => Some(h),
                        // Later than the event at `s`: kept while it is.
                        (None, Some((s, _)), _) => of(s),
                        // Up to `d` earlier than the event at `s`: kept `d`
                        // longer than it, so that it is there for as long
                        // as that event can still match.
                        (None, None, Some((s, d))) => of(s).map(|r| {
                            Duration::from_millis(r.as_millis().saturating_add(d.as_millis()))
                        }),
                        (None, None, None) => None,
                    };
                    if is_event(&rules, p) {
                        b.retain(p.ty, retention.unwrap_or(Duration::ZERO));
                    }
                    let input = b.input(id, p, time);
                    match c {
                        Condition::Pattern(_) => {
                            slot_retention.push(retention);
                            BetaKind::Join(input)
                        }
                        Condition::Not(_) => BetaKind::Not(input),
                        _ => BetaKind::Exists(input),
                    }
                }
                Condition::Aggregate(a) => {
                    let time = TimeSpec {
                        horizon: if is_event(&rules, &a.source) {
                            Some(a.within.unwrap_or(horizon))
                        } else {
                            None
                        },
                        after: None,
                        before: None,
                    };
                    if let Some(h) = time.horizon {
                        b.retain(a.source.ty, h);
                    }
                    slot_retention.push(None);
                    let zero = match a.value.as_ref().and_then(|v| value_type(&rules, a, v)) {
                        Some(ValueType::Float) => Value::Float(0.0),
                        Some(ValueType::Duration) => Value::Duration(Duration::ZERO),
                        _ => Value::Int(0),
                    };
                    let spec = AggSpec {
                        func: a.func,
                        value: a.value.clone(),
                        by: a.by.clone(),
                        having: a.having.clone(),
                        zero,
                    };
                    BetaKind::Aggregate(b.input(id, &a.source, time), Box::new(spec))
                }
                Condition::Test(e) => BetaKind::Test(e.clone()),
            };
            node = b.beta_node(node, kind, id);
        }
        b.beta_node(node, BetaKind::Terminal(id), id);
    }
    let mut group_names: Vec<&str> = Vec::new();
    let rule_group = rules
        .rules()
        .iter()
        .map(|r| {
            r.group
                .as_deref()
                .map(|g| match group_names.iter().position(|n| *n == g) {
                    Some(i) => i as u32,
                    None => {
                        group_names.push(g);
                        group_names.len() as u32 - 1
                    }
                })
        })
        .collect();
    let groups = group_names.len();
    let mut lowered = Lowered::default();
    let actions = rules
        .rules()
        .iter()
        .map(|r| r.actions.iter().map(|a| lowered.action(a)).collect())
        .collect();
    let clock_nodes: Vec<bool> = b
        .beta
        .iter()
        .map(|n| match &n.kind {
            BetaKind::Join(i) => i.filters.iter().any(reads_clock),
            BetaKind::Test(e) => reads_clock(e),
            _ => false,
        })
        .collect();
    let rule_tokens: Vec<bool> = rules
        .rules()
        .iter()
        .map(|r| {
            let clock = match r.conditions.first() {
                Some(Condition::Pattern(p)) => p.filters.iter().any(reads_clock),
                _ => false,
            };
            clock || r.actions.iter().any(has_delay)
        })
        .collect();
    // A rule made of one pattern is activated straight from the fact when
    // no delayed action needs a token to watch.
    let rule_first_horizon = rules
        .rules()
        .iter()
        .enumerate()
        .map(|(i, r)| match r.conditions.as_slice() {
            [Condition::Pattern(p)] if !rule_tokens[i] => time_spec(&rules, p, r.horizon()).horizon,
            _ => None,
        })
        .collect();
    let type_retention = rules
        .schema()
        .types()
        .iter()
        .enumerate()
        .map(|(t, ty)| match ty.kind() {
            FactKind::Event => Some(b.retention.get(&t).copied().unwrap_or(Duration::ZERO)),
            _ => None,
        })
        .collect();
    let mut alpha_successors = b.alpha_successors;
    alpha_successors.resize(b.alpha.mems.len(), Vec::new());
    let mut type_horizons: Vec<SmallVec<[Duration; 2]>> = vec![SmallVec::new(); types];
    for node in &b.beta {
        let Some(i) = super::input(node) else {
            continue;
        };
        if let Some(h) = i.time.horizon {
            let hs = &mut type_horizons[b.alpha.mems[i.alpha as usize].ty.index()];
            if let Err(at) = hs.binary_search(&h) {
                hs.insert(at, h);
            }
        }
    }
    let mut withdraw_visits_alpha = vec![false; types];
    for (m, successors) in alpha_successors.iter().enumerate() {
        let keeps_facts = successors.iter().any(|&n| {
            let node = &b.beta[n as usize];
            node.parent != 0 || !matches!(node.kind, BetaKind::Join(_))
        });
        if keeps_facts {
            withdraw_visits_alpha[b.alpha.mems[m].ty.index()] = true;
        }
    }
    Ok(Network {
        alpha: b.alpha,
        beta: b.beta,
        alpha_successors,
        withdraw_visits_alpha,
        alpha_rules: b.alpha_rules,
        beta_rules: b.beta_rules,
        actions,
        emits: lowered.emits,
        rule_group,
        groups,
        delayed: lowered.delayed,
        rule_tokens,
        clock_nodes,
        rule_first_horizon,
        type_horizons,
        type_retention,
        fingerprint: fingerprint(&rules),
        rules,
    })
}

fn fingerprint(rules: &RuleSet) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    rules.schema().types().hash(&mut h);
    rules.rules().hash(&mut h);
    h.finish()
}

fn is_event(rules: &RuleSet, p: &Pattern) -> bool {
    rules.schema().get(p.ty).kind() == FactKind::Event
}

fn value_type(rules: &RuleSet, a: &crate::ir::Aggregate, v: &Expr) -> Option<ValueType> {
    crate::ir::own_type(rules, a.source.ty, v)
}

fn time_spec(rules: &RuleSet, p: &Pattern, horizon: Duration) -> TimeSpec {
    if !is_event(rules, p) {
        return TimeSpec::default();
    }
    match (p.window.after, p.window.before, p.window.within) {
        (Some(s), _, within) => TimeSpec {
            after: Some((s, within)),
            ..TimeSpec::default()
        },
        (None, Some(s), Some(d)) => TimeSpec {
            before: Some((s, d)),
            ..TimeSpec::default()
        },
        (None, _, Some(d)) => TimeSpec {
            horizon: Some(d),
            ..TimeSpec::default()
        },
        (None, _, None) => TimeSpec {
            horizon: Some(horizon),
            ..TimeSpec::default()
        },
    }
}

fn has_delay(a: &Action) -> bool {
    match a {
        Action::Delayed { .. } => true,
        Action::Emit(e) => e
            .branches
            .iter()
            .any(|(_, acts)| acts.iter().any(has_delay)),
        _ => false,
    }
}

/// Actions lowered for the session: emits and delayed actions numbered.
#[derive(Default)]
struct Lowered {
    emits: Vec<EmitInfo>,
    delayed: Vec<CAction>,
}

impl Lowered {
    fn action(&mut self, a: &Action) -> CAction {
        match a {
            Action::Insert { ty, fields } => CAction::Insert {
                ty: *ty,
                fields: fields.clone(),
            },
            Action::Modify { slot, fields } => CAction::Modify {
                slot: *slot,
                fields: fields.clone(),
            },
            Action::Retract { slot } => CAction::Retract { slot: *slot },
            Action::Emit(e) => {
                let id = self.emits.len() as u32;
                self.emits.push(EmitInfo {
                    action: e.action.clone(),
                    arg_names: e.args.iter().map(|(n, _)| n.clone()).collect(),
                    branches: e.branches.iter().map(|(l, _)| l.clone()).collect(),
                });
                let args = e
                    .args
                    .iter()
                    .map(|(_, arg)| match arg {
                        Arg::Expr(x) => x.clone(),
                        Arg::Name(n) => Expr::Const(Value::Str(n.clone())),
                        Arg::Names(ns) => Expr::Const(Value::List(ns.iter().cloned().collect())),
                    })
                    .collect();
                let branches = e
                    .branches
                    .iter()
                    .map(|(label, acts)| {
                        (label.clone(), acts.iter().map(|a| self.action(a)).collect())
                    })
                    .collect();
                CAction::Emit {
                    emit: id,
                    args,
                    branches,
                }
            }
            Action::Delayed {
                after,
                recheck,
                action,
            } => {
                let inner = self.action(action);
                self.delayed.push(inner);
                CAction::Delayed {
                    after: *after,
                    recheck: *recheck,
                    action: self.delayed.len() as u32 - 1,
                }
            }
        }
    }
}

struct Builder {
    alpha: AlphaNet,
    beta: Vec<BetaNode>,
    beta_index: FxHashMap<(BetaId, BetaKind), BetaId>,
    alpha_successors: Vec<Vec<BetaId>>,
    alpha_rules: Vec<Vec<crate::ir::RuleId>>,
    beta_rules: Vec<Vec<crate::ir::RuleId>>,
    /// Longest retention asked of each event type, by type index.
    retention: FxHashMap<usize, Duration>,
}

impl Builder {
    fn retain(&mut self, ty: nudge_core::TypeId, d: Duration) {
        let r = self.retention.entry(ty.index()).or_insert(d);
        *r = (*r).max(d);
    }

    fn input(&mut self, rule: RuleId, p: &Pattern, time: TimeSpec) -> Input {
        let alpha = self.alpha.memory_for(p.ty, &p.tests);
        // Record which rules pass through each alpha node of the chain.
        self.alpha_rules.resize(self.alpha.nodes.len(), Vec::new());
        let mut node = self.alpha.roots[p.ty.index()];
        for t in &p.tests {
            node = self.alpha.index[&(node, t.clone())];
            let users = &mut self.alpha_rules[node as usize];
            if users.last() != Some(&rule) {
                users.push(rule);
            }
        }
        Input {
            alpha,
            joins: p.joins.clone(),
            filters: p.filters.clone(),
            time,
        }
    }

    fn beta_node(&mut self, parent: BetaId, kind: BetaKind, rule: RuleId) -> BetaId {
        let id = match self.beta_index.get(&(parent, kind.clone())) {
            Some(&id) => id,
            None => {
                let id = self.beta.len() as BetaId;
                let p = &self.beta[parent as usize];
                let depth = p.depth + 1;
                let mut slot_depth = p.slot_depth.clone();
                if matches!(kind, BetaKind::Join(_) | BetaKind::Aggregate(..)) {
                    slot_depth.push(depth);
                }
                if let BetaKind::Join(i)
                | BetaKind::Not(i)
                | BetaKind::Exists(i)
                | BetaKind::Aggregate(i, _) = &kind
                {
                    let a = i.alpha as usize;
                    if self.alpha_successors.len() <= a {
                        self.alpha_successors.resize(a + 1, Vec::new());
                    }
                    self.alpha_successors[a].push(id);
                }
                self.beta.push(BetaNode {
                    kind: kind.clone(),
                    parent,
                    children: Vec::new(),
                    depth,
                    slot_depth,
                });
                self.beta_rules.push(Vec::new());
                self.beta[parent as usize].children.push(id);
                self.beta_index.insert((parent, kind), id);
                id
            }
        };
        let users = &mut self.beta_rules[id as usize];
        if users.last() != Some(&rule) {
            users.push(rule);
        }
        id
    }
}
