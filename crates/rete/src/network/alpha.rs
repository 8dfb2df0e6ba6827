//! The alpha network: single-fact tests, shared between rules, dispatched
//! through indexes so that the cost per fact does not grow with the number
//! of rules testing one field.
//!
//! Each fact type has a root node. A pattern's tests (sorted by the IR so
//! that equality tests come first) form a chain from the root; chains with a
//! common prefix share nodes. A node's children are reached three ways:
//! - equality and list tests on a field: one hash lookup of the fact's value
//!   finds every child testing `field == value` (or `field in [.., value]`);
//! - ordering tests against constants on a field (`amount > 100`): the
//!   thresholds are sorted, and one binary search finds every child whose
//!   test passes;
//! - any other test is evaluated child by child.

use crate::ir::{compare, test, CmpOp, Expr, FactEnv};
use nudge_core::{FieldId, TypeId, Value};
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

/// Index of an alpha node.
pub(crate) type AlphaId = u32;
/// Index of an alpha memory (the end of a test chain).
pub(crate) type AlphaMemId = u32;

#[derive(Debug)]
pub(crate) struct EqDispatch {
    pub field: FieldId,
    pub map: FxHashMap<Value, SmallVec<[AlphaId; 2]>>,
}

#[derive(Debug)]
pub(crate) struct RangeDispatch {
    pub field: FieldId,
    pub op: CmpOp,
    /// Sorted by threshold, ascending.
    pub thresholds: Vec<(Value, AlphaId)>,
}

#[derive(Debug, Default)]
pub(crate) struct AlphaNode {
    /// The test that leads into this node; `None` for a type's root.
    pub test: Option<Expr>,
    pub eq: Vec<EqDispatch>,
    pub ranges: Vec<RangeDispatch>,
    pub others: Vec<(Expr, AlphaId)>,
    pub mem: Option<AlphaMemId>,
}

#[derive(Debug)]
pub(crate) struct AlphaMem {
    pub ty: TypeId,
    pub node: AlphaId,
}

/// The compiled alpha network of all types.
#[derive(Debug, Default)]
pub(crate) struct AlphaNet {
    pub roots: Vec<AlphaId>,
    pub nodes: Vec<AlphaNode>,
    pub mems: Vec<AlphaMem>,
    /// (parent, test) → child, so equal chains share nodes.
    pub index: FxHashMap<(AlphaId, Expr), AlphaId>,
}

/// How a test attaches to its parent node.
enum Attach {
    Eq(FieldId, Vec<Value>),
    Range(FieldId, CmpOp, Value),
    Other,
}

fn attach_kind(e: &Expr) -> Attach {
    match e {
        Expr::Cmp(CmpOp::Eq, a, b) => match (&**a, &**b) {
            (Expr::Own(f), Expr::Const(v)) if !matches!(v, Value::Null) => {
                Attach::Eq(*f, vec![v.clone()])
            }
            _ => Attach::Other,
        },
        Expr::In(a, values) => match &**a {
            Expr::Own(f) if values.iter().all(|v| !matches!(v, Value::Null)) => {
                Attach::Eq(*f, values.clone())
            }
            _ => Attach::Other,
        },
        Expr::Cmp(op @ (CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge), a, b) => match (&**a, &**b)
        {
            (Expr::Own(f), Expr::Const(v))
                if !matches!(v, Value::Null | Value::Bool(_) | Value::List(_)) =>
            {
                Attach::Range(*f, *op, v.clone())
            }
            _ => Attach::Other,
        },
        _ => Attach::Other,
    }
}

impl AlphaNet {
    pub fn new(types: usize) -> Self {
        let mut net = AlphaNet::default();
        for _ in 0..types {
            net.roots.push(net.nodes.len() as AlphaId);
            net.nodes.push(AlphaNode::default());
        }
        net
    }

    /// The alpha memory for a chain of tests on type `ty`, sharing every
    /// node that already exists.
    pub fn memory_for(&mut self, ty: TypeId, tests: &[Expr]) -> AlphaMemId {
        let mut node = self.roots[ty.index()];
        for t in tests {
            node = self.child(node, t);
        }
        match self.nodes[node as usize].mem {
            Some(m) => m,
            None => {
                let m = self.mems.len() as AlphaMemId;
                self.mems.push(AlphaMem { ty, node });
                self.nodes[node as usize].mem = Some(m);
                m
            }
        }
    }

    fn child(&mut self, parent: AlphaId, t: &Expr) -> AlphaId {
        if let Some(&c) = self.index.get(&(parent, t.clone())) {
            return c;
        }
        let c = self.nodes.len() as AlphaId;
        self.nodes.push(AlphaNode {
            test: Some(t.clone()),
            ..AlphaNode::default()
        });
        self.index.insert((parent, t.clone()), c);
        let p = &mut self.nodes[parent as usize];
        match attach_kind(t) {
            Attach::Eq(field, values) => {
                let i = match p.eq.iter().position(|d| d.field == field) {
                    Some(i) => i,
                    None => {
                        p.eq.push(EqDispatch {
                            field,
                            map: FxHashMap::default(),
                        });
                        p.eq.len() - 1
                    }
                };
                for v in values {
                    p.eq[i].map.entry(v).or_default().push(c);
                }
            }
            Attach::Range(field, op, v) => {
                let i = match p.ranges.iter().position(|d| d.field == field && d.op == op) {
                    Some(i) => i,
                    None => {
                        p.ranges.push(RangeDispatch {
                            field,
                            op,
                            thresholds: Vec::new(),
                        });
                        p.ranges.len() - 1
                    }
                };
                let th = &mut p.ranges[i].thresholds;
                let at = th.partition_point(|(x, _)| compare(CmpOp::Lt, x, &v) || x == &v);
                th.insert(at, (v, c));
            }
            Attach::Other => p.others.push((t.clone(), c)),
        }
        c
    }

    /// Calls `found` with every alpha memory the fact `values` of type `ty`
    /// belongs to, and returns how many test nodes the fact reached. `stack`
    /// is scratch space, reused between calls.
    pub fn dispatch(
        &self,
        ty: TypeId,
        values: &[Value],
        stack: &mut Vec<AlphaId>,
        mut found: impl FnMut(AlphaMemId),
    ) -> u64 {
        let mut visited = 0;
        stack.clear();
        stack.push(self.roots[ty.index()]);
        // Alpha tests read the fact alone: the IR files membership, clock and
        // host-function tests as filters, so an alpha memory never goes stale.
        let env = FactEnv(values);
        while let Some(n) = stack.pop() {
            visited += 1;
            let node = &self.nodes[n as usize];
            if let Some(m) = node.mem {
                found(m);
            }
            for d in &node.eq {
                if let Some(children) = values.get(d.field.index()).and_then(|v| d.map.get(v)) {
                    stack.extend_from_slice(children);
                }
            }
            for r in &node.ranges {
                let Some(x) = values.get(r.field.index()) else {
                    continue;
                };
                if matches!(x, Value::Null) {
                    continue;
                }
                let th = &r.thresholds;
                let passing = match r.op {
                    CmpOp::Gt => &th[..th.partition_point(|(t, _)| compare(CmpOp::Lt, t, x))],
                    CmpOp::Ge => &th[..th.partition_point(|(t, _)| compare(CmpOp::Le, t, x))],
                    CmpOp::Lt => &th[th.partition_point(|(t, _)| compare(CmpOp::Le, t, x))..],
                    CmpOp::Le => &th[th.partition_point(|(t, _)| compare(CmpOp::Lt, t, x))..],
                    _ => &[],
                };
                stack.extend(passing.iter().map(|(_, c)| *c));
            }
            for (t, c) in &node.others {
                if test(t, &env) {
                    stack.push(*c);
                }
            }
        }
        // The type's root is not a test.
        visited - 1
    }
}
