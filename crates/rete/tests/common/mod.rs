//! What the differential tests (`differential.rs` and `differential_time.rs`)
//! share: the kinds of generated fields, small constructors, the proptest
//! configuration, and the text of expressions, patterns, fields and values
//! printed when a case fails.

// Each test uses a part of it.
#![allow(dead_code)]

use nudge_core::{FactType, FieldId, Value, ValueType};
use nudge_rete::ir::{CmpOp, Expr, Pattern, Slot};
use proptest::test_runner::{Config, FileFailurePersistence};
use std::fmt::Write;

// ---------------------------------------------------------------------------
// Generated fields.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Str,
    Float,
}

impl Kind {
    /// The type of a field of this kind.
    pub fn value_type(self) -> ValueType {
        match self {
            Kind::Int => ValueType::Int,
            Kind::Str => ValueType::String,
            Kind::Float => ValueType::Float,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    pub kind: Kind,
    pub optional: bool,
}

/// The values a case draws from: the ints from 0 to `ints - 1`, `strings`
/// and `floats`; a value for an optional field is null for one raw choice
/// in `null_every`.
pub struct Values {
    pub ints: u8,
    pub strings: &'static [&'static str],
    pub floats: &'static [f64],
    pub null_every: u8,
}

impl Values {
    /// The constant of `kind` that `r` picks.
    pub fn constant(&self, kind: Kind, r: u8) -> Value {
        match kind {
            Kind::Int => Value::Int(i64::from(r % self.ints)),
            Kind::Str => Value::from(self.strings[r as usize % self.strings.len()]),
            Kind::Float => Value::Float(self.floats[r as usize % self.floats.len()]),
        }
    }

    /// A value for a field of a fact: sometimes null when the field is
    /// optional.
    pub fn field_value(&self, f: FieldSpec, r: u8) -> Value {
        let n = self.null_every;
        if f.optional && r % n == n - 1 {
            Value::Null
        } else {
            self.constant(f.kind, r / n)
        }
    }
}

pub fn fid(i: usize) -> FieldId {
    FieldId::new(i as u16)
}

pub fn slot(i: usize) -> Slot {
    Slot::new(i as u16)
}

pub const CMP_OPS: [CmpOp; 6] = [
    CmpOp::Eq,
    CmpOp::Ne,
    CmpOp::Lt,
    CmpOp::Le,
    CmpOp::Gt,
    CmpOp::Ge,
];

/// 256 cases per property, or `PROPTEST_CASES`; failures are saved in a
/// `.proptest-regressions` file named after the test's file, next to it,
/// and replayed first.
pub fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    Config {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::with_cases(cases)
    }
}

// ---------------------------------------------------------------------------
// Describing cases for failure messages.
// ---------------------------------------------------------------------------

pub fn expr_text(e: &Expr) -> String {
    let list = |xs: &[Expr], sep: &str| xs.iter().map(expr_text).collect::<Vec<_>>().join(sep);
    match e {
        Expr::Const(v) => v.to_string(),
        Expr::Own(f) => format!("f{}", f.index()),
        Expr::Bound(s, f) => format!("${}.f{}", s.index(), f.index()),
        Expr::Neg(a) => format!("-{}", expr_text(a)),
        Expr::Not(a) => format!("not ({})", expr_text(a)),
        Expr::ToFloat(a) => format!("float({})", expr_text(a)),
        Expr::Arith(op, a, b) => format!("({} {} {})", expr_text(a), op.symbol(), expr_text(b)),
        Expr::Cmp(op, a, b) => format!("{} {} {}", expr_text(a), op.symbol(), expr_text(b)),
        Expr::In(a, vs) => {
            let vs: Vec<String> = vs.iter().map(|v| v.to_string()).collect();
            format!("{} in [{}]", expr_text(a), vs.join(", "))
        }
        Expr::InSet(a, s) => format!("{} in set{}", expr_text(a), s.index()),
        Expr::IsNull(a) => format!("{} == null", expr_text(a)),
        Expr::And(xs) => format!("({})", list(xs, " and ")),
        Expr::Or(xs) => format!("({})", list(xs, " or ")),
        Expr::Call(b, xs) => format!("{}({})", b.name(), list(xs, ", ")),
        Expr::Host(f, xs) => format!("fn{}({})", f.index(), list(xs, ", ")),
    }
}

/// `name(tests, joins, filters)`, each join followed by `join_mark`, then
/// the pattern's time window, if any.
pub fn pattern_text(p: &Pattern, name: &str, join_mark: &str) -> String {
    let mut parts: Vec<String> = p.tests.iter().map(expr_text).collect();
    parts.extend(p.joins.iter().map(|j| {
        format!(
            "f{} == ${}.f{}{join_mark}",
            j.field.index(),
            j.slot.index(),
            j.other.index()
        )
    }));
    parts.extend(
        p.filters
            .iter()
            .map(|f| format!("{} [filter]", expr_text(f))),
    );
    let mut out = format!("{name}({})", parts.join(", "));
    if let Some(s) = p.window.after {
        let _ = write!(out, " after ${}", s.index());
    }
    if let Some(s) = p.window.before {
        let _ = write!(out, " before ${}", s.index());
    }
    if let Some(d) = p.window.within {
        let _ = write!(out, " within {}ms", d.as_millis());
    }
    out
}

/// The fields of a type: `name: type`, with `?` when optional.
pub fn fields_text(t: &FactType) -> String {
    let fields: Vec<String> = t
        .fields()
        .iter()
        .map(|f| format!("{}: {}{}", f.name, f.ty, if f.optional { "?" } else { "" }))
        .collect();
    fields.join(", ")
}

pub fn values_text(values: &[Value]) -> String {
    values
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a failure says when the engine's `what` (matches, decisions)
/// differ from the reference's after operation `step`: those missing from
/// the engine, and those unexpected in it, each list written by `text`.
pub fn differences<T: PartialEq + Clone>(
    what: &str,
    step: usize,
    expected: &[T],
    engine: &[T],
    text: impl Fn(&[T]) -> String,
) -> String {
    format!(
        "after operation {step}, the engine's {what} differ from the reference's\n\
         missing from the engine:\n{}unexpected in the engine:\n{}",
        text(&minus(expected, engine)),
        text(&minus(engine, expected)),
    )
}

/// Elements of `a` not in `b`, as multisets.
pub fn minus<T: PartialEq + Clone>(a: &[T], b: &[T]) -> Vec<T> {
    let mut rest: Vec<T> = b.to_vec();
    let mut out = Vec::new();
    for x in a {
        match rest.iter().position(|y| y == x) {
            Some(i) => {
                rest.swap_remove(i);
            }
            None => out.push(x.clone()),
        }
    }
    out
}
