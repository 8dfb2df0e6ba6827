//! The network as a graph for people: every node, its kind, its test and
//! the rules that share it, as a petgraph graph, Graphviz dot or JSON.

use super::{BetaKind, Network};
use crate::ir::{Builtin, Expr, Join};
use nudge_core::{Schema, TypeId};
use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;
use std::fmt::Write;

/// What a node of the graph is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// Where facts of one type enter.
    Type,
    /// A single-fact test.
    Alpha,
    /// The end of a chain of single-fact tests: the facts that passed.
    AlphaMemory,
    /// Where every rule's matching starts.
    Root,
    /// Pairs partial matches with facts.
    Join,
    /// `not`.
    Not,
    /// `exists`.
    Exists,
    /// An aggregate (`count`, `sum`...) over the facts of its input.
    Aggregate,
    /// A test over several bindings.
    Test,
    /// A rule's activations.
    Terminal,
}

/// A node of the graph.
#[derive(Debug, Clone, Serialize)]
pub struct GraphNode {
    /// Stable id, e.g. `a12` or `b3`.
    pub id: String,
    /// Kind.
    pub kind: NodeKind,
    /// The test, type or rule, in rule-language terms.
    pub label: String,
    /// The rules that use the node.
    pub rules: Vec<String>,
}

/// What an edge carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GraphEdge {
    /// From a test to the next test of a chain.
    Alpha,
    /// From an alpha memory into a join, negation or existence node.
    Right,
    /// From a beta node to the next one down a rule.
    Left,
}

impl Network {
    /// The network as a petgraph graph.
    pub fn graph(&self) -> DiGraph<GraphNode, GraphEdge> {
        let schema = self.rules.schema();
        let names = |rules: &[crate::ir::RuleId]| -> Vec<String> {
            rules
                .iter()
                .map(|r| self.rules.rules()[r.index()].name.to_string())
                .collect()
        };
        let mut g = DiGraph::new();
        let mut alpha_ix: Vec<NodeIndex> = Vec::with_capacity(self.alpha.nodes.len());
        let mut type_of = vec![TypeId::new(0); self.alpha.nodes.len()];
        for (t, &root) in self.alpha.roots.iter().enumerate() {
            type_of[root as usize] = TypeId::new(t as u32);
        }
        for (i, n) in self.alpha.nodes.iter().enumerate() {
            let kind = if n.test.is_none() {
                NodeKind::Type
            } else {
                NodeKind::Alpha
            };
            alpha_ix.push(g.add_node(GraphNode {
                id: format!("a{i}"),
                kind,
                label: String::new(),
                rules: names(self.alpha_rules.get(i).map_or(&[][..], |v| v)),
            }));
        }
        // Labels need each node's fact type, known by walking from the roots.
        for (parent, n) in self.alpha.nodes.iter().enumerate() {
            let children =
                n.eq.iter()
                    .flat_map(|d| d.map.values().flatten().copied())
                    .chain(
                        n.ranges
                            .iter()
                            .flat_map(|r| r.thresholds.iter().map(|(_, c)| *c)),
                    )
                    .chain(n.others.iter().map(|(_, c)| *c));
            let mut seen = Vec::new();
            for c in children {
                if seen.contains(&c) {
                    continue;
                }
                seen.push(c);
                type_of[c as usize] = type_of[parent];
                g.add_edge(alpha_ix[parent], alpha_ix[c as usize], GraphEdge::Alpha);
            }
        }
        for (i, n) in self.alpha.nodes.iter().enumerate() {
            let ty = type_of[i];
            g[alpha_ix[i]].label = match &n.test {
                None => schema.get(ty).name().to_string(),
                Some(t) => expr_text(t, schema, Some(ty)),
            };
        }
        let mut mem_ix = Vec::with_capacity(self.alpha.mems.len());
        for (m, mem) in self.alpha.mems.iter().enumerate() {
            let ix = g.add_node(GraphNode {
                id: format!("m{m}"),
                kind: NodeKind::AlphaMemory,
                label: schema.get(mem.ty).name().to_string(),
                rules: names(
                    self.alpha_rules
                        .get(mem.node as usize)
                        .map_or(&[][..], |v| v),
                ),
            });
            g.add_edge(alpha_ix[mem.node as usize], ix, GraphEdge::Alpha);
            mem_ix.push(ix);
        }
        let mut beta_ix = Vec::with_capacity(self.beta.len());
        let input = |i: &super::Input| {
            input_text(
                schema,
                self.alpha.mems[i.alpha as usize].ty,
                &i.joins,
                &i.filters,
            )
        };
        for (b, n) in self.beta.iter().enumerate() {
            let (kind, label) = match &n.kind {
                BetaKind::Root => (NodeKind::Root, "root".to_string()),
                BetaKind::Join(i) => (NodeKind::Join, input(i)),
                BetaKind::Not(i) => (NodeKind::Not, input(i)),
                BetaKind::Exists(i) => (NodeKind::Exists, input(i)),
                BetaKind::Aggregate(i, a) => {
                    let mut label = format!("{}({})", a.func.name(), input(i));
                    if !a.by.is_empty() {
                        let ty = schema.get(self.alpha.mems[i.alpha as usize].ty);
                        let by: Vec<&str> = a.by.iter().map(|f| &*ty.field_def(*f).name).collect();
                        let _ = write!(label, " by {}", by.join(", "));
                    }
                    (NodeKind::Aggregate, label)
                }
                BetaKind::Test(e) => (NodeKind::Test, expr_text(e, schema, None)),
                BetaKind::Terminal(r) => (
                    NodeKind::Terminal,
                    self.rules.rules()[r.index()].name.to_string(),
                ),
            };
            beta_ix.push(g.add_node(GraphNode {
                id: format!("b{b}"),
                kind,
                label,
                rules: names(&self.beta_rules[b]),
            }));
        }
        for (b, n) in self.beta.iter().enumerate() {
            if b != 0 {
                g.add_edge(beta_ix[n.parent as usize], beta_ix[b], GraphEdge::Left);
            }
            if let Some(i) = super::input(n) {
                g.add_edge(mem_ix[i.alpha as usize], beta_ix[b], GraphEdge::Right);
            }
        }
        g
    }

    /// The network in Graphviz dot.
    pub fn to_dot(&self) -> String {
        let g = self.graph();
        let mut out =
            String::from("digraph nudge {\n  rankdir=TB;\n  node [fontname=\"Helvetica\"];\n");
        for ix in g.node_indices() {
            let n = &g[ix];
            let shape = match n.kind {
                NodeKind::Type | NodeKind::Root => "ellipse",
                NodeKind::Alpha | NodeKind::Test => "box",
                NodeKind::AlphaMemory => "cylinder",
                NodeKind::Join | NodeKind::Not | NodeKind::Exists | NodeKind::Aggregate => {
                    "diamond"
                }
                NodeKind::Terminal => "doubleoctagon",
            };
            let kind = serde_plain(n.kind);
            let shared = if n.rules.len() > 1 {
                format!("\\nshared by {}", n.rules.len())
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "  {} [shape={shape}, label=\"{}: {}{}\"];",
                n.id,
                kind,
                escape(&n.label),
                shared
            );
        }
        for e in g.edge_indices() {
            if let Some((a, b)) = g.edge_endpoints(e) {
                let style = match g[e] {
                    GraphEdge::Right => " [style=dashed]",
                    _ => "",
                };
                let _ = writeln!(out, "  {} -> {}{style};", g[a].id, g[b].id);
            }
        }
        out.push_str("}\n");
        out
    }
}

fn serde_plain(k: NodeKind) -> &'static str {
    match k {
        NodeKind::Type => "type",
        NodeKind::Alpha => "alpha",
        NodeKind::AlphaMemory => "alpha_memory",
        NodeKind::Root => "root",
        NodeKind::Join => "join",
        NodeKind::Not => "not",
        NodeKind::Exists => "exists",
        NodeKind::Aggregate => "aggregate",
        NodeKind::Test => "test",
        NodeKind::Terminal => "terminal",
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn input_text(schema: &Schema, ty: TypeId, joins: &[Join], filters: &[Expr]) -> String {
    let t = schema.get(ty);
    let mut parts: Vec<String> = joins
        .iter()
        .map(|j| {
            format!(
                "{} == ${}.#{}",
                t.field_def(j.field).name,
                j.slot.index(),
                j.other.index()
            )
        })
        .collect();
    parts.extend(filters.iter().map(|f| expr_text(f, schema, Some(ty))));
    format!("{}({})", t.name(), parts.join(", "))
}

/// An expression in rule-language terms; bound facts show as `$slot`.
pub(crate) fn expr_text(e: &Expr, schema: &Schema, own: Option<TypeId>) -> String {
    let rec = |x: &Expr| expr_text(x, schema, own);
    match e {
        Expr::Const(v) => v.to_string(),
        Expr::Own(f) => own.map_or_else(
            || format!("#{}", f.index()),
            |t| schema.get(t).field_def(*f).name.to_string(),
        ),
        Expr::Bound(s, f) => format!("${}.#{}", s.index(), f.index()),
        Expr::Neg(a) => format!("-{}", rec(a)),
        Expr::Not(a) => format!("not ({})", rec(a)),
        Expr::ToFloat(a) => rec(a),
        Expr::Arith(op, a, b) => format!("({} {} {})", rec(a), op.symbol(), rec(b)),
        Expr::Cmp(op, a, b) => format!("{} {} {}", rec(a), op.symbol(), rec(b)),
        Expr::In(a, vs) => format!(
            "{} in [{}]",
            rec(a),
            vs.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Expr::InSet(a, s) => format!("{} in set #{}", rec(a), s.index()),
        Expr::IsNull(a) => format!("{} == null", rec(a)),
        Expr::And(xs) => xs.iter().map(rec).collect::<Vec<_>>().join(" and "),
        Expr::Or(xs) => format!("({})", xs.iter().map(rec).collect::<Vec<_>>().join(" or ")),
        Expr::Call(b, xs) => format!(
            "{}({})",
            builtin_name(*b),
            xs.iter().map(rec).collect::<Vec<_>>().join(", ")
        ),
        Expr::Host(f, xs) => format!(
            "fn#{}({})",
            f.index(),
            xs.iter().map(rec).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn builtin_name(b: Builtin) -> &'static str {
    b.name()
}
