//! The decisions a session has made: kept in flat buffers that are reused,
//! so firing a rule allocates nothing once the buffers have grown.

use super::facts::FactId;
use crate::ir::RuleId;
use crate::network::Network;
use nudge_core::{Decision, Outcome, Status, Timestamp, Value};
use std::ops::Range;
use std::sync::Arc;

#[derive(Debug, Clone)]
struct Entry {
    seq: u64,
    rule: RuleId,
    emit: u32,
    args: Range<u32>,
    facts: Range<u32>,
    branch: Option<Arc<str>>,
    time: Timestamp,
    /// The firing that made it.
    firing: u64,
    /// What the host said beyond "done", as an index into
    /// `DecisionLog::outcomes` plus one; 0 for a plain "done". Most
    /// decisions are plain, so they carry no status or details inline.
    outcome: u32,
    retry: bool,
}

/// A status other than plain "done", or details, recorded for a decision.
#[derive(Debug, Clone)]
struct Recorded {
    status: Status,
    details: Range<u32>,
}

const DONE: Status = Status::Done;

/// The decisions made since the host last cleared them.
#[derive(Debug, Default)]
pub(crate) struct DecisionLog {
    entries: Vec<Entry>,
    values: Vec<Value>,
    facts: Vec<FactId>,
    outcomes: Vec<Recorded>,
    detail_names: Vec<Arc<str>>,
    detail_values: Vec<Value>,
    next_seq: u64,
    /// The firing under way; firings are numbered from 1.
    firing: u64,
    /// The highest firing number given.
    highest: u64,
}

impl DecisionLog {
    pub fn push(
        &mut self,
        rule: RuleId,
        emit: u32,
        args: impl IntoIterator<Item = Value>,
        facts: &[FactId],
        time: Timestamp,
    ) -> usize {
        self.next_seq += 1;
        let a = self.values.len() as u32;
        self.values.extend(args);
        let f = self.facts.len() as u32;
        self.facts.extend_from_slice(facts);
        self.entries.push(Entry {
            seq: self.next_seq,
            rule,
            emit,
            args: a..self.values.len() as u32,
            facts: f..self.facts.len() as u32,
            branch: None,
            time,
            firing: self.firing,
            outcome: 0,
            retry: false,
        });
        self.entries.len() - 1
    }

    /// Starts a new firing: the decisions pushed until the next call share
    /// its number, which it returns.
    #[inline]
    pub fn begin_firing(&mut self) -> u64 {
        self.highest += 1;
        self.firing = self.highest;
        self.firing
    }

    /// Goes on with firing `firing` (delayed actions of one firing that
    /// run together).
    pub fn continue_firing(&mut self, firing: u64) {
        self.firing = firing;
    }

    /// The firing under way (the last one begun).
    pub fn current_firing(&self) -> u64 {
        self.firing
    }

    /// The highest firing number given so far.
    pub fn firings(&self) -> u64 {
        self.highest
    }

    /// Numbers firings on from `n` (after a restore).
    pub fn set_firings(&mut self, n: u64) {
        self.firing = n;
        self.highest = n;
    }

    /// Marks decision `i` as a deferred decision decided again.
    pub fn mark_retry(&mut self, i: usize) {
        self.entries[i].retry = true;
    }

    /// Records what the host made of decision `i`.
    pub fn set_outcome(&mut self, i: usize, outcome: &mut Outcome) {
        let e = &mut self.entries[i];
        e.branch = outcome.branch.clone();
        if outcome.status.is_done() && outcome.details.is_empty() {
            return;
        }
        let d = self.detail_values.len() as u32;
        for (n, v) in outcome.details.drain(..) {
            self.detail_names.push(n);
            self.detail_values.push(v);
        }
        self.outcomes.push(Recorded {
            status: std::mem::take(&mut outcome.status),
            details: d..self.detail_values.len() as u32,
        });
        self.entries[i].outcome = self.outcomes.len() as u32;
    }

    fn recorded(&self, e: &Entry) -> Option<&Recorded> {
        e.outcome
            .checked_sub(1)
            .and_then(|i| self.outcomes.get(i as usize))
    }

    /// The argument values of decision `i`.
    pub fn values(&self, i: usize) -> &[Value] {
        let e = &self.entries[i];
        &self.values[e.args.start as usize..e.args.end as usize]
    }

    /// The sequence number of the last decision made.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn set_next_seq(&mut self, seq: u64) {
        self.next_seq = seq;
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.values.clear();
        self.facts.clear();
        self.outcomes.clear();
        self.detail_names.clear();
        self.detail_values.clear();
    }

    pub fn get<'a>(&'a self, net: &'a Network, i: usize) -> DecisionRef<'a> {
        DecisionRef { log: self, net, i }
    }
}

/// A decision, borrowed from the session that made it.
#[derive(Clone, Copy)]
pub struct DecisionRef<'a> {
    log: &'a DecisionLog,
    net: &'a Network,
    i: usize,
}

impl<'a> DecisionRef<'a> {
    fn entry(&self) -> &'a Entry {
        &self.log.entries[self.i]
    }

    /// Position in the session's stream of decisions, from 1.
    pub fn seq(&self) -> u64 {
        self.entry().seq
    }

    /// The rule that fired.
    pub fn rule(&self) -> RuleId {
        self.entry().rule
    }

    /// The rule's name.
    pub fn rule_name(&self) -> &'a str {
        &self.net.rules.rules()[self.entry().rule.index()].name
    }

    /// The action asked for.
    pub fn action(&self) -> &'a str {
        &self.net.emits[self.entry().emit as usize].action
    }

    /// Arguments by name, in the order written.
    pub fn args(&self) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
        let e = self.entry();
        let names = &self.net.emits[e.emit as usize].arg_names;
        let values = &self.log.values[e.args.start as usize..e.args.end as usize];
        names.iter().map(|n| &**n).zip(values)
    }

    /// The value of argument `name`.
    pub fn arg(&self, name: &str) -> Option<&'a Value> {
        self.args().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The facts the rule matched, one per binding pattern.
    pub fn facts(&self) -> &'a [FactId] {
        let e = self.entry();
        &self.log.facts[e.facts.start as usize..e.facts.end as usize]
    }

    /// When the decision was made: the clock when the rule fired, or the
    /// due time of a delayed action.
    pub fn time(&self) -> Timestamp {
        self.entry().time
    }

    /// The branch the host chose, for an action with branches.
    pub fn branch(&self) -> Option<&'a str> {
        self.entry().branch.as_deref()
    }

    /// What became of the decision.
    pub fn status(&self) -> &'a Status {
        self.log.recorded(self.entry()).map_or(&DONE, |r| &r.status)
    }

    /// What the host recorded with the decision, in order.
    pub fn details(&self) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
        let r = self
            .log
            .recorded(self.entry())
            .map_or(0..0, |r| r.details.start as usize..r.details.end as usize);
        self.log.detail_names[r.clone()]
            .iter()
            .map(|n| &**n)
            .zip(&self.log.detail_values[r])
    }

    /// The value of detail `name`.
    pub fn detail(&self, name: &str) -> Option<&'a Value> {
        self.details().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The number of the rule firing that made the decision: decisions of
    /// one firing share it, and so do the delayed actions of one firing
    /// that run at the same instant. A deferred decision decided again has
    /// a number of its own.
    pub fn firing(&self) -> u64 {
        self.entry().firing
    }

    /// Whether this decides again a decision the host deferred.
    pub fn is_retry(&self) -> bool {
        self.entry().retry
    }

    /// The labels of the action's branches (empty for an action without a
    /// block).
    pub fn branch_labels(&self) -> &'a [Arc<str>] {
        &self.net.emits[self.entry().emit as usize].branches
    }

    /// The index of the rule's emitted action in the network, stable for
    /// a compiled network: hosts key per-action caches on it.
    pub fn emit_index(&self) -> u32 {
        self.entry().emit
    }

    /// An owned copy.
    pub fn to_decision(&self) -> Decision {
        let mut d = Decision::new(self.seq(), self.rule_name(), self.action());
        for (n, v) in self.args() {
            d = d.arg(n, v.clone());
        }
        d.facts = self.facts().iter().map(|f| f.as_u64()).collect();
        d.time = self.time();
        if let Some(b) = self.branch() {
            d = d.arg("branch", Value::Str(b.into()));
        }
        d.status = self.status().clone();
        d.details = self
            .details()
            .map(|(n, v)| (Arc::from(n), v.clone()))
            .collect();
        d
    }
}

impl std::fmt::Debug for DecisionRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decision")
            .field("seq", &self.seq())
            .field("rule", &self.rule_name())
            .field("action", &self.action())
            .field("time", &self.time())
            .field("args", &self.args().collect::<Vec<_>>())
            .field("status", self.status())
            .field("details", &self.details().collect::<Vec<_>>())
            .finish()
    }
}
