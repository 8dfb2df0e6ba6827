//! Tokens: partial matches, one per beta node step, linked into trees.
//!
//! A token records one step down a rule's chain: its node, its parent token
//! and the fact the step added (none for `not`, `exists` and tests). Tokens
//! are linked to their children and to the fact they added, so that
//! retracting a fact removes exactly the matches it took part in, without a
//! search.

use super::facts::FactId;
use crate::network::BetaId;

pub(crate) const NONE: u32 = u32::MAX;

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub node: BetaId,
    pub parent: u32,
    pub fact: FactId,
    pub first_child: u32,
    pub next_sibling: u32,
    pub prev_sibling: u32,
    pub next_of_fact: u32,
    pub prev_of_fact: u32,
    /// Matching facts, for `not` and `exists` tokens.
    pub count: u32,
    /// Insertion order of the newest fact in the match.
    pub recency: u64,
    /// The newest fact in the match: the activation's trigger.
    pub trigger: FactId,
    pub generation: u32,
    pub live: bool,
    /// An activation that has fired (refraction), or must never fire (no-loop).
    pub fired: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Tokens {
    pub slab: Vec<Token>,
    free: Vec<u32>,
}

impl Tokens {
    pub fn get(&self, t: u32) -> &Token {
        &self.slab[t as usize]
    }

    pub fn get_mut(&mut self, t: u32) -> &mut Token {
        &mut self.slab[t as usize]
    }

    /// Creates a token and links it under `parent` (unless `NONE`).
    pub fn add(
        &mut self,
        node: BetaId,
        parent: u32,
        fact: FactId,
        recency: u64,
        trigger: FactId,
    ) -> u32 {
        let token = Token {
            node,
            parent,
            fact,
            first_child: NONE,
            next_sibling: NONE,
            prev_sibling: NONE,
            next_of_fact: NONE,
            prev_of_fact: NONE,
            count: 0,
            recency,
            trigger,
            generation: 0,
            live: true,
            fired: false,
        };
        let t = match self.free.pop() {
            Some(t) => {
                let generation = self.slab[t as usize].generation;
                self.slab[t as usize] = Token {
                    generation,
                    ..token
                };
                t
            }
            None => {
                self.slab.push(token);
                self.slab.len() as u32 - 1
            }
        };
        if parent != NONE {
            let first = self.slab[parent as usize].first_child;
            self.slab[t as usize].next_sibling = first;
            if first != NONE {
                self.slab[first as usize].prev_sibling = t;
            }
            self.slab[parent as usize].first_child = t;
        }
        t
    }

    /// Links `t` at the head of the list of tokens that added its fact.
    pub fn link_fact(&mut self, t: u32, head: &mut u32) {
        self.slab[t as usize].next_of_fact = *head;
        if *head != NONE {
            self.slab[*head as usize].prev_of_fact = t;
        }
        *head = t;
    }

    /// Unlinks `t` from its parent and its fact, and frees it.
    pub fn free(&mut self, t: u32, fact_head: Option<&mut u32>) {
        let tok = self.slab[t as usize].clone();
        if tok.parent != NONE {
            if tok.prev_sibling != NONE {
                self.slab[tok.prev_sibling as usize].next_sibling = tok.next_sibling;
            } else {
                self.slab[tok.parent as usize].first_child = tok.next_sibling;
            }
            if tok.next_sibling != NONE {
                self.slab[tok.next_sibling as usize].prev_sibling = tok.prev_sibling;
            }
        }
        if let Some(head) = fact_head {
            if tok.prev_of_fact != NONE {
                self.slab[tok.prev_of_fact as usize].next_of_fact = tok.next_of_fact;
            } else {
                *head = tok.next_of_fact;
            }
            if tok.next_of_fact != NONE {
                self.slab[tok.next_of_fact as usize].prev_of_fact = tok.prev_of_fact;
            }
        }
        let slot = &mut self.slab[t as usize];
        slot.live = false;
        slot.generation = slot.generation.wrapping_add(1);
        slot.first_child = NONE;
        self.free.push(t);
    }

    /// Every descendant of `t` (not `t` itself), parents before children.
    pub fn descendants(&self, t: u32, out: &mut Vec<u32>) {
        let start = out.len();
        let mut c = self.slab[t as usize].first_child;
        while c != NONE {
            out.push(c);
            c = self.slab[c as usize].next_sibling;
        }
        let mut i = start;
        while i < out.len() {
            let mut c = self.slab[out[i] as usize].first_child;
            while c != NONE {
                out.push(c);
                c = self.slab[c as usize].next_sibling;
            }
            i += 1;
        }
    }

    pub fn live_count(&self) -> usize {
        self.slab.len() - self.free.len()
    }
}
