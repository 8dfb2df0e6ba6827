//! The agenda: activations waiting to fire, in conflict-resolution order.

use super::facts::FactId;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// One activation: a rule's match, identified by its terminal token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Activation {
    pub salience: i32,
    /// Insertion order of the newest fact in the match.
    pub recency: u64,
    /// Rule order, earlier first.
    pub rule: Reverse<u32>,
    pub token: u32,
    /// Token generation: a removed token's activation is stale.
    pub generation: u32,
    /// For a single-pattern rule, the matched fact itself: such matches
    /// need no tokens. `FactId::NONE` otherwise.
    pub fact: FactId,
    /// The fact's insertion order when matched: a modified or retracted
    /// fact's activation is stale.
    pub fact_seq: u64,
}

impl Ord for Activation {
    /// Salience, then recency (newest first), then rule order.
    fn cmp(&self, other: &Self) -> Ordering {
        (self.salience, self.recency, self.rule, Reverse(self.token)).cmp(&(
            other.salience,
            other.recency,
            other.rule,
            Reverse(other.token),
        ))
    }
}

impl PartialOrd for Activation {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Stale activations (of removed tokens) stay in the heap and are skipped
/// when popped: removal from a heap is not worth its cost.
#[derive(Debug, Default)]
pub(crate) struct Agenda {
    heap: BinaryHeap<Activation>,
}

impl Agenda {
    pub fn push(&mut self, a: Activation) {
        self.heap.push(a);
    }

    pub fn pop(&mut self) -> Option<Activation> {
        self.heap.pop()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Activation> {
        self.heap.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn act(salience: i32, recency: u64, rule: u32) -> Activation {
        Activation {
            salience,
            recency,
            rule: Reverse(rule),
            token: rule,
            generation: 0,
            fact: FactId::NONE,
            fact_seq: 0,
        }
    }

    #[test]
    fn salience_then_recency_then_rule_order() {
        let mut a = Agenda::default();
        a.push(act(0, 5, 1));
        a.push(act(10, 1, 2));
        a.push(act(0, 9, 3));
        a.push(act(0, 9, 0));
        let order: Vec<u32> = std::iter::from_fn(|| a.pop()).map(|x| x.rule.0).collect();
        assert_eq!(order, vec![2, 0, 3, 1]);
    }
}
