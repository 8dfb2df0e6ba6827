//! The compiled network: an immutable Rete network built from a
//! [`RuleSet`], shared by every session that runs against it.

mod alpha;
mod compile;
mod graph;

pub(crate) use alpha::{AlphaMemId, AlphaNet};
pub use compile::CompileError;
pub use graph::{GraphEdge, GraphNode, NodeKind};

use crate::ir::{AggFunc, CmpOp, Expr, Join, RuleId, RuleSet, Slot};
use nudge_core::{Duration, FieldId, Value};
use smallvec::SmallVec;
use std::sync::Arc;

/// Index of a beta node.
pub(crate) type BetaId = u32;

/// An action ready to run: names resolved to values, emits numbered.
#[derive(Debug)]
pub(crate) enum CAction {
    Insert {
        ty: nudge_core::TypeId,
        fields: Vec<(nudge_core::FieldId, Expr)>,
    },
    Modify {
        slot: crate::ir::Slot,
        fields: Vec<(nudge_core::FieldId, Expr)>,
    },
    Retract {
        slot: crate::ir::Slot,
    },
    Emit {
        emit: u32,
        args: Vec<Expr>,
        branches: Vec<(Arc<str>, Vec<CAction>)>,
    },
    /// Schedules [`Network::delayed`]`[action]` for `after` from now.
    Delayed {
        after: Duration,
        recheck: bool,
        action: u32,
    },
}

/// The names of one emitted action and its arguments.
#[derive(Debug)]
pub(crate) struct EmitInfo {
    pub action: Arc<str>,
    pub arg_names: Vec<Arc<str>>,
    /// Labels of the action's branches.
    pub branches: Box<[Arc<str>]>,
}

/// How time bounds the events of an input (see `docs/time.md`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub(crate) struct TimeSpec {
    /// An event takes part while `time >= watermark - horizon`; `None` for
    /// facts and for `after` and `before` patterns, which no clock bounds.
    pub horizon: Option<Duration>,
    /// `after slot [within D]`: the event comes after the one bound at
    /// `slot`, and at most `D` after it.
    pub after: Option<(Slot, Option<Duration>)>,
    /// `before slot within D`: the event comes before the one bound at
    /// `slot`, and at most `D` before it.
    pub before: Option<(Slot, Duration)>,
}

impl TimeSpec {
    /// A `not` whose window is measured from the event bound at a slot
    /// holds only once no event of that window can still arrive: once the
    /// watermark reaches `t(s)` plus the returned offset. `after s within D`
    /// ends at `t(s) + D`, so it is decided 1 ms later; `before s within D`
    /// ends at `t(s)`, and an event stamped at `t(s)` or later is not before
    /// `s`, so it is decided when the watermark reaches `t(s)` (at once for
    /// an event on time, with no lateness).
    pub fn deadline(&self) -> Option<(Slot, Duration)> {
        match (self.after, self.before) {
            (Some((s, Some(d))), _) => {
                Some((s, Duration::from_millis(d.as_millis().saturating_add(1))))
            }
            (None, Some((s, _))) => Some((s, Duration::ZERO)),
            _ => None,
        }
    }
}

/// The input side of a join, negation, existence or aggregate node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Input {
    pub alpha: AlphaMemId,
    pub joins: Vec<Join>,
    pub filters: Vec<Expr>,
    pub time: TimeSpec,
}

/// What an aggregate node computes over the facts of its input.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct AggSpec {
    pub func: AggFunc,
    pub value: Option<Expr>,
    pub by: Vec<FieldId>,
    pub having: Option<(CmpOp, Expr)>,
    /// The value of `sum` over no facts, typed like the summed expression.
    pub zero: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum BetaKind {
    /// Holds the one empty token every rule starts from.
    Root,
    /// Extends each token with each matching fact.
    Join(Input),
    /// Passes a token while no fact matches.
    Not(Input),
    /// Passes a token while at least one fact matches.
    Exists(Input),
    /// Extends each token with each group of matching facts whose aggregate
    /// passes.
    Aggregate(Input, Box<AggSpec>),
    /// Passes a token when the test holds.
    Test(Expr),
    /// A rule's activations.
    Terminal(RuleId),
}

#[derive(Debug)]
pub(crate) struct BetaNode {
    pub kind: BetaKind,
    pub parent: BetaId,
    pub children: Vec<BetaId>,
    /// Distance from the root: the depth of the tokens this node holds.
    pub depth: u16,
    /// For each slot bound on the way here, the depth of the token holding its fact.
    pub slot_depth: Vec<u16>,
}

pub(crate) fn input(node: &BetaNode) -> Option<&Input> {
    match &node.kind {
        BetaKind::Join(i) | BetaKind::Not(i) | BetaKind::Exists(i) | BetaKind::Aggregate(i, _) => {
            Some(i)
        }
        _ => None,
    }
}

/// Counts that show how much the network shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetworkStats {
    /// Rules.
    pub rules: usize,
    /// Alpha test nodes (type roots not counted).
    pub alpha_nodes: usize,
    /// Alpha memories: distinct chains of tests on one fact.
    pub alpha_memories: usize,
    /// Join, negation, existence and test nodes (root and terminals not counted).
    pub beta_nodes: usize,
    /// Alpha and beta nodes used by more than one rule.
    pub shared_nodes: usize,
}

/// A compiled ruleset: immutable, `Send + Sync`, and meant to be shared
/// behind an [`Arc`] by any number of sessions on any number of threads.
///
/// ```
/// use nudge_core::{FactKind, FactType, Schema, Value, ValueType};
/// use nudge_rete::ir::{Condition, Expr, Pattern, Rule, RuleSet};
/// use nudge_rete::Network;
///
/// let mut schema = Schema::new();
/// let order = schema.add(FactType::new("order_paid", FactKind::Event)
///     .field("amount", ValueType::Float, false))?;
/// let amount = schema.get(order).field_id("amount").unwrap();
/// let mut rules = RuleSet::new(schema);
/// for name in ["a", "b"] {
///     let big = Pattern::new(order).test(Expr::own(amount).gt(Expr::value(100.0)));
///     rules.add_rule(Rule::new(name).when(Condition::Pattern(big)))?;
/// }
/// let network = Network::compile(rules)?;
/// assert_eq!(network.stats().alpha_nodes, 1, "both rules share `amount > 100`");
/// Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Network {
    pub(crate) rules: RuleSet,
    pub(crate) alpha: AlphaNet,
    /// Beta nodes by id; 0 is the root.
    pub(crate) beta: Vec<BetaNode>,
    /// For each alpha memory, the nodes it feeds (right inputs).
    pub(crate) alpha_successors: Vec<Vec<BetaId>>,
    /// For each alpha node, the rules whose chains pass through it.
    pub(crate) alpha_rules: Vec<Vec<RuleId>>,
    /// For each beta node, the rules it serves.
    pub(crate) beta_rules: Vec<Vec<RuleId>>,
    /// For each fact type, whether withdrawing a fact must visit its alpha
    /// memories: only when one of them feeds a node that keeps facts (a join
    /// below the root, a `not` or an `exists`).
    pub(crate) withdraw_visits_alpha: Vec<bool>,
    /// For each rule, its actions ready to run.
    pub(crate) actions: Vec<Vec<CAction>>,
    /// Every emit of every rule, by number.
    pub(crate) emits: Vec<EmitInfo>,
    /// For each rule, the index of its activation group, if any.
    pub(crate) rule_group: Vec<Option<u32>>,
    pub(crate) groups: usize,
    /// Actions scheduled by `after D`, by number.
    pub(crate) delayed: Vec<CAction>,
    /// For each rule, whether its matches always get tokens: delayed
    /// actions watch them, and clock rechecks find them.
    pub(crate) rule_tokens: Vec<bool>,
    /// For each beta node, whether its tests read the clock, so that they
    /// are checked again when the clock can change their answer.
    pub(crate) clock_nodes: Vec<bool>,
    /// For each rule whose first pattern activates it without tokens, that
    /// pattern's horizon.
    pub(crate) rule_first_horizon: Vec<Option<Duration>>,
    /// For each fact type, the distinct horizons of the inputs it feeds,
    /// ascending: one expiry timer per event and horizon.
    pub(crate) type_horizons: Vec<SmallVec<[Duration; 2]>>,
    /// For each event type, how long after its time an event can still take
    /// part in a match; `None` for facts, which never expire.
    pub(crate) type_retention: Vec<Option<Duration>>,
    /// A hash of the schema and the rules: a snapshot restores only into a
    /// network with the same one.
    pub(crate) fingerprint: u64,
}

impl Network {
    /// Compiles a rule set into a network.
    pub fn compile(rules: RuleSet) -> Result<Network, CompileError> {
        compile::compile(rules)
    }

    /// Compiles and wraps in an [`Arc`], ready to share.
    pub fn shared(rules: RuleSet) -> Result<Arc<Network>, CompileError> {
        Self::compile(rules).map(Arc::new)
    }

    /// A hash of the schema and rules, the same for the same rule set
    /// compiled again; snapshots carry it.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The rule set the network was compiled from.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Node counts.
    pub fn stats(&self) -> NetworkStats {
        let alpha_nodes = self.alpha.nodes.len() - self.alpha.roots.len();
        let beta_nodes = self
            .beta
            .iter()
            .filter(|n| !matches!(n.kind, BetaKind::Root | BetaKind::Terminal(_)))
            .count();
        let shared_alpha = self
            .alpha_rules
            .iter()
            .enumerate()
            .filter(|(i, r)| self.alpha.nodes[*i].test.is_some() && r.len() > 1)
            .count();
        let shared_beta = self
            .beta
            .iter()
            .zip(&self.beta_rules)
            .filter(|(n, r)| {
                !matches!(n.kind, BetaKind::Root | BetaKind::Terminal(_)) && r.len() > 1
            })
            .count();
        NetworkStats {
            rules: self.rules.rules().len(),
            alpha_nodes,
            alpha_memories: self.alpha.mems.len(),
            beta_nodes,
            shared_nodes: shared_alpha + shared_beta,
        }
    }
}
