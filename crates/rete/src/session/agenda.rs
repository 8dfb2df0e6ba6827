//! The agenda: activations waiting to fire, in conflict-resolution order.

use super::facts::FactId;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// One activation: a rule's match, identified by its terminal token (or, for
/// a single-pattern rule, by the matched fact).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Activation {
    /// Salience, recency, rule order and token packed into one number, so
    /// that the heap compares one integer. Bits, high to low: salience (32,
    /// sign flipped so it orders as unsigned), recency (48: the insertion
    /// order of the newest fact in the match), inverted rule index (24),
    /// inverted low bits of the token (24, a deterministic tie-break).
    order: u128,
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

const RULE_BITS: u32 = 24;
const RULE_MASK: u32 = (1 << RULE_BITS) - 1;

impl Activation {
    pub fn new(
        salience: i32,
        recency: u64,
        rule: u32,
        token: u32,
        generation: u32,
        fact: FactId,
        fact_seq: u64,
    ) -> Self {
        let s = u128::from((salience as u32) ^ 0x8000_0000);
        let r = u128::from(recency.min((1 << 48) - 1));
        let rule = u128::from(RULE_MASK - rule.min(RULE_MASK));
        let tie = u128::from(RULE_MASK - (token & RULE_MASK));
        Activation {
            order: (s << 96) | (r << 48) | (rule << 24) | tie,
            token,
            generation,
            fact,
            fact_seq,
        }
    }

    /// The rule's index.
    pub fn rule(&self) -> u32 {
        RULE_MASK - ((self.order >> 24) as u32 & RULE_MASK)
    }
}

impl Ord for Activation {
    /// Salience, then recency (newest first), then rule order.
    fn cmp(&self, other: &Self) -> Ordering {
        self.order.cmp(&other.order)
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

    pub fn clear(&mut self) {
        self.heap.clear();
    }

    pub fn iter(&self) -> impl Iterator<Item = &Activation> {
        self.heap.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn act(salience: i32, recency: u64, rule: u32) -> Activation {
        Activation::new(salience, recency, rule, rule, 0, FactId::NONE, 0)
    }

    #[test]
    fn salience_then_recency_then_rule_order() {
        let mut a = Agenda::default();
        a.push(act(0, 5, 1));
        a.push(act(10, 1, 2));
        a.push(act(0, 9, 3));
        a.push(act(0, 9, 0));
        a.push(act(-5, 99, 4));
        let order: Vec<u32> = std::iter::from_fn(|| a.pop()).map(|x| x.rule()).collect();
        assert_eq!(order, vec![2, 0, 3, 1, 4]);
    }
}
