//! Aggregate nodes: for each partial match, the facts of the input are
//! grouped by the `by` fields and reduced to one value per group; a group
//! whose value passes the comparison extends the match with a binding that
//! holds the `by` values and the value.
//!
//! A binding is kept as a hidden fact, so that the nodes below read it like
//! any bound fact. Facts are kept by (join key, group hash), so that a fact
//! that comes or goes recomputes only its own group.

use super::facts::{FactData, FactId};
use super::{MatchEnv, State, NONE};
use crate::ir::{compare, eval, AggFunc, CmpOp, FactEnv};
use crate::network::{AggSpec, BetaId, BetaKind, Network};
use nudge_core::{Duration, TypeId, Value};
use rustc_hash::{FxHashMap, FxHashSet, FxHasher};
use smallvec::SmallVec;
use std::hash::{Hash, Hasher};

/// The type id of hidden binding facts.
pub(crate) const BINDING_TYPE: TypeId = TypeId::new(u32::MAX);

#[derive(Debug, Default)]
pub(crate) struct AggMem {
    /// Facts by (join key, group hash).
    facts: FxHashMap<(u64, u64), SmallVec<[FactId; 4]>>,
    /// Group hashes present under each join key (a set: an aggregate with
    /// no join key has every group under one key).
    groups: FxHashMap<u64, FxHashSet<u64>>,
    /// Binding tokens by (left token, group hash).
    children: FxHashMap<(u32, u64), SmallVec<[u32; 1]>>,
}

fn spec(net: &Network, n: BetaId) -> (&crate::network::Input, &AggSpec) {
    match &net.beta[n as usize].kind {
        BetaKind::Aggregate(i, a) => (i, a),
        _ => unreachable!("an aggregate node"),
    }
}

fn group_hash(by: &[nudge_core::FieldId], values: &[Value]) -> u64 {
    if by.is_empty() {
        return 0;
    }
    let mut h = FxHasher::default();
    for f in by {
        values.get(f.index()).unwrap_or(&Value::Null).hash(&mut h);
    }
    h.finish()
}

/// Reduces the values of one group.
fn reduce(spec: &AggSpec, facts: &[&[Value]]) -> Value {
    let values = || {
        facts
            .iter()
            .map(|v| match &spec.value {
                Some(e) => eval(e, &FactEnv(v)),
                None => Value::Null,
            })
            .filter(|v| !matches!(v, Value::Null))
    };
    match spec.func {
        AggFunc::Count => Value::Int(facts.len() as i64),
        AggFunc::CountDistinct => {
            let distinct: FxHashSet<Value> = values().collect();
            Value::Int(distinct.len() as i64)
        }
        AggFunc::Sum => values().fold(spec.zero.clone(), |acc, v| match (acc, v) {
            (Value::Int(a), Value::Int(b)) => a.checked_add(b).map_or(Value::Null, Value::Int),
            (Value::Float(a), Value::Float(b)) => Value::Float(a + b),
            (Value::Float(a), Value::Int(b)) => Value::Float(a + b as f64),
            (Value::Duration(a), Value::Duration(b)) => a
                .as_millis()
                .checked_add(b.as_millis())
                .map_or(Value::Null, |ms| Value::Duration(Duration::from_millis(ms))),
            _ => Value::Null,
        }),
        AggFunc::Min | AggFunc::Max => {
            let keep = if spec.func == AggFunc::Min {
                CmpOp::Lt
            } else {
                CmpOp::Gt
            };
            values().fold(Value::Null, |best, v| {
                if matches!(best, Value::Null) || compare(keep, &v, &best) {
                    v
                } else {
                    best
                }
            })
        }
        AggFunc::Avg => {
            let (mut sum, mut n) = (0.0, 0u64);
            for v in values() {
                match v {
                    Value::Int(i) => sum += i as f64,
                    Value::Float(f) => sum += f,
                    _ => continue,
                }
                n += 1;
            }
            if n == 0 {
                Value::Null
            } else {
                Value::Float(sum / n as f64)
            }
        }
    }
}

impl<H: super::Host> State<H> {
    /// A fact enters aggregate node `n`.
    pub(super) fn agg_right_insert(&mut self, net: &Network, n: BetaId, f: FactId) {
        let (input, a) = spec(net, n);
        let Some(d) = self.facts.get(f) else { return };
        let key = self.right_key(input, &d.values);
        let g = group_hash(&a.by, &d.values);
        let mem = &mut self.mems[n as usize].agg;
        mem.facts.entry((key, g)).or_default().push(f);
        mem.groups.entry(key).or_default().insert(g);
        match &mut self.agg_dirty {
            Some(dirty) => dirty.push((n, key, g)),
            None => self.agg_recompute_lefts(net, n, key, g),
        }
    }

    /// A fact leaves aggregate node `n`; its values are still in place.
    pub(super) fn agg_right_remove(&mut self, net: &Network, n: BetaId, f: FactId) {
        let (input, a) = spec(net, n);
        let Some(d) = self.facts.get(f) else { return };
        let key = self.right_key(input, &d.values);
        let g = group_hash(&a.by, &d.values);
        let mem = &mut self.mems[n as usize].agg;
        let Some(v) = mem.facts.get_mut(&(key, g)) else {
            return;
        };
        let Some(i) = v.iter().position(|&x| x == f) else {
            return;
        };
        v.swap_remove(i);
        if v.is_empty() {
            mem.facts.remove(&(key, g));
            if let Some(gs) = mem.groups.get_mut(&key) {
                gs.remove(&g);
                if gs.is_empty() {
                    mem.groups.remove(&key);
                }
            }
        }
        match &mut self.agg_dirty {
            Some(dirty) => dirty.push((n, key, g)),
            None => self.agg_recompute_lefts(net, n, key, g),
        }
    }

    pub(super) fn agg_recompute_lefts(&mut self, net: &Network, n: BetaId, key: u64, g: u64) {
        let lefts: SmallVec<[u32; 8]> = match self.mems[n as usize].left.get(&key) {
            Some(v) => v.iter().copied().collect(),
            None => return,
        };
        for t in lefts {
            if self.tokens.get(t).live {
                self.agg_recompute(net, n, t, g);
            }
        }
    }

    /// A token arrives at aggregate node `n`: every group under its key.
    pub(super) fn agg_left_activate(&mut self, net: &Network, n: BetaId, t: u32) {
        let (input, a) = spec(net, n);
        let key = self.left_key(net, &net.beta[n as usize], input, t);
        self.mems[n as usize].left.entry(key).or_default().push(t);
        if a.by.is_empty() {
            // One group, present even when empty.
            self.agg_recompute(net, n, t, 0);
            return;
        }
        let gs: Vec<u64> = self.mems[n as usize]
            .agg
            .groups
            .get(&key)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        for g in gs {
            self.agg_recompute(net, n, t, g);
        }
    }

    /// Recomputes the groups with hash `g` for left token `t`: keeps the
    /// bindings whose values did not change, replaces the others.
    fn agg_recompute(&mut self, net: &Network, n: BetaId, t: u32, g: u64) {
        let node = &net.beta[n as usize];
        let (input, a) = spec(net, n);
        let key = self.left_key(net, node, input, t);
        let candidates: SmallVec<[FactId; 8]> = self.mems[n as usize]
            .agg
            .facts
            .get(&(key, g))
            .map(|v| v.iter().copied().collect())
            .unwrap_or_default();
        // Exact groups: equal hashes may still hold different `by` values.
        let mut groups: Vec<(Vec<Value>, Vec<&[Value]>)> = Vec::new();
        if a.by.is_empty() {
            groups.push((Vec::new(), Vec::new()));
        }
        for &f in &candidates {
            if !self.matches(net, node, input, t, f) {
                continue;
            }
            let Some(d) = self.facts.get(f) else { continue };
            let by: Vec<Value> =
                a.by.iter()
                    .map(|b| d.values.get(b.index()).cloned().unwrap_or(Value::Null))
                    .collect();
            match groups.iter_mut().find(|(k, _)| *k == by) {
                Some((_, fs)) => fs.push(&d.values),
                None => groups.push((by, vec![&d.values])),
            }
        }
        let mut bindings: Vec<Vec<Value>> = Vec::new();
        for (by, fs) in &groups {
            let value = reduce(a, fs);
            if let Some((op, rhs)) = &a.having {
                let env = MatchEnv {
                    state: self,
                    net,
                    token: t,
                    slot_depth: &net.beta[node.parent as usize].slot_depth,
                    own: None,
                };
                if !compare(*op, &value, &eval(rhs, &env)) {
                    continue;
                }
            }
            let mut b = by.clone();
            b.push(value);
            bindings.push(b);
        }
        let old = self.mems[n as usize]
            .agg
            .children
            .remove(&(t, g))
            .unwrap_or_default();
        let mut kept: SmallVec<[u32; 1]> = SmallVec::new();
        let mut doomed: SmallVec<[u32; 2]> = SmallVec::new();
        for c in old {
            let f = self.tokens.get(c).fact;
            let same = self
                .facts
                .get(f)
                .and_then(|d| bindings.iter().position(|b| b[..] == d.values[..]));
            match same {
                Some(i) => {
                    bindings.swap_remove(i);
                    kept.push(c);
                }
                None => doomed.push(c),
            }
        }
        for c in doomed {
            self.remove_tree(net, c);
        }
        let mut fresh: SmallVec<[u32; 1]> = SmallVec::new();
        for b in bindings {
            self.seq += 1;
            let f = self.facts.add_binding(FactData {
                ty: BINDING_TYPE,
                values: b.into_boxed_slice(),
                seq: self.seq,
                order: self.seq,
                time: self.now,
                first_token: NONE,
            });
            let c = self.join_token(n, t, f);
            kept.push(c);
            fresh.push(c);
        }
        if !kept.is_empty() {
            self.mems[n as usize].agg.children.insert((t, g), kept);
        }
        for c in fresh {
            if self.tokens.get(c).live {
                self.activate(net, c);
            }
        }
    }

    /// Bookkeeping for a binding token about to be freed: it leaves its
    /// node's index. Its hidden fact is freed with it.
    pub(super) fn agg_forget(&mut self, net: &Network, x: u32) {
        let tok = self.tokens.get(x);
        let (n, parent, f) = (tok.node, tok.parent, tok.fact);
        let (_, a) = spec(net, n);
        let g = match self.facts.get(f) {
            Some(d) => group_hash_of_binding(a.by.len(), &d.values),
            None => return,
        };
        if let Some(v) = self.mems[n as usize].agg.children.get_mut(&(parent, g)) {
            v.retain(|c| *c != x);
            if v.is_empty() {
                self.mems[n as usize].agg.children.remove(&(parent, g));
            }
        }
    }
}

/// The group hash of a binding, whose first `n` values are the `by` values.
fn group_hash_of_binding(n: usize, values: &[Value]) -> u64 {
    if n == 0 {
        return 0;
    }
    let mut h = FxHasher::default();
    for v in &values[..n.min(values.len())] {
        v.hash(&mut h);
    }
    h.finish()
}
