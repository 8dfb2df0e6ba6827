//! The decisions a session has made: kept in flat buffers that are reused,
//! so firing a rule allocates nothing once the buffers have grown.

use super::facts::FactId;
use crate::ir::RuleId;
use crate::network::Network;
use nudge_core::{Decision, Timestamp, Value};
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
}

/// The decisions made since the host last cleared them.
#[derive(Debug, Default)]
pub(crate) struct DecisionLog {
    entries: Vec<Entry>,
    values: Vec<Value>,
    facts: Vec<FactId>,
    next_seq: u64,
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
        });
        self.entries.len() - 1
    }

    /// The sequence number of the last decision made.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn set_next_seq(&mut self, seq: u64) {
        self.next_seq = seq;
    }

    pub fn set_branch(&mut self, i: usize, label: Arc<str>) {
        self.entries[i].branch = Some(label);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.values.clear();
        self.facts.clear();
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
            .finish()
    }
}
