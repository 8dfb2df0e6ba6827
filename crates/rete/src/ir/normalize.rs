//! Normalization: rewrites a checked rule so that conditions that mean the
//! same are the same value. See the module docs of [`crate::ir`] for the list.

use super::eval::{eval, ConstEnv};
use super::expr::{CmpOp, Expr, Slot};
use super::validate::{Scope, SlotShape};
use super::{Action, Aggregate, Condition, Join, Pattern, Rule, RuleSet};
use nudge_core::{TypeId, Value, ValueType};

pub(crate) fn normalize_rule(rules: &RuleSet, shapes: &[SlotShape], mut rule: Rule) -> Rule {
    let conditions = std::mem::take(&mut rule.conditions);
    let mut out: Vec<Condition> = Vec::with_capacity(conditions.len());
    // Index in `out` of the condition that binds each slot.
    let mut slot_at: Vec<usize> = Vec::new();
    for c in conditions {
        let earlier = &shapes[..slot_at.len()];
        match c {
            Condition::Pattern(p) => {
                slot_at.push(out.len());
                out.push(Condition::Pattern(pattern(rules, earlier, p, Vec::new())));
            }
            Condition::Not(p) => out.push(Condition::Not(pattern(rules, earlier, p, Vec::new()))),
            Condition::Exists(p) => {
                out.push(Condition::Exists(pattern(rules, earlier, p, Vec::new())))
            }
            Condition::Aggregate(a) => {
                slot_at.push(out.len());
                out.push(Condition::Aggregate(aggregate(rules, earlier, a)));
            }
            Condition::Test(e) => {
                let scope = Scope {
                    rules,
                    own: None,
                    slots: earlier,
                };
                for e in conjuncts(norm(&scope, e)) {
                    if e == Expr::Const(Value::Bool(true)) {
                        continue;
                    }
                    match movable_into(&e, &slot_at, &out) {
                        Some((slot, at)) => {
                            let Condition::Pattern(p) = &mut out[at] else {
                                unreachable!("movable_into only names patterns")
                            };
                            let taken = std::mem::replace(p, Pattern::new(p.ty));
                            let own = rebind_to_own(e, slot);
                            *p = pattern(rules, &shapes[..slot.index()], taken, vec![own]);
                        }
                        None => out.push(Condition::Test(e)),
                    }
                }
            }
        }
    }
    rule.conditions = out;
    let scope = Scope {
        rules,
        own: None,
        slots: shapes,
    };
    rule.actions = rule
        .actions
        .into_iter()
        .map(|a| action(&scope, a))
        .collect();
    rule
}

/// The slot and condition index a free-standing test can move into: the
/// positive pattern binding the last slot it reads, if it reads no clock.
fn movable_into(e: &Expr, slot_at: &[usize], out: &[Condition]) -> Option<(Slot, usize)> {
    let slot = e.max_slot()?;
    let at = *slot_at.get(slot.index())?;
    let reads_clock = {
        let mut clock = false;
        e.visit(&mut |x| clock |= matches!(x, Expr::Call(b, _) if b.reads_clock()));
        clock
    };
    (matches!(out[at], Condition::Pattern(_)) && !reads_clock).then_some((slot, at))
}

fn rebind_to_own(e: Expr, slot: Slot) -> Expr {
    map_children(e, &mut |x| match x {
        Expr::Bound(s, f) if s == slot => Expr::Own(f),
        other => other,
    })
}

/// Rebuilds `e` bottom-up, applying `f` to every node after its children.
fn map_children(e: Expr, f: &mut impl FnMut(Expr) -> Expr) -> Expr {
    let mut rec = |x: Box<Expr>| Box::new(map_children(*x, f));
    let e = match e {
        Expr::Neg(a) => Expr::Neg(rec(a)),
        Expr::Not(a) => Expr::Not(rec(a)),
        Expr::ToFloat(a) => Expr::ToFloat(rec(a)),
        Expr::IsNull(a) => Expr::IsNull(rec(a)),
        Expr::In(a, v) => Expr::In(rec(a), v),
        Expr::InSet(a, s) => Expr::InSet(rec(a), s),
        Expr::Arith(op, a, b) => {
            let a = rec(a);
            Expr::Arith(op, a, rec(b))
        }
        Expr::Cmp(op, a, b) => {
            let a = rec(a);
            Expr::Cmp(op, a, rec(b))
        }
        Expr::And(xs) => Expr::And(xs.into_iter().map(|x| map_children(x, f)).collect()),
        Expr::Or(xs) => Expr::Or(xs.into_iter().map(|x| map_children(x, f)).collect()),
        Expr::Call(b, xs) => Expr::Call(b, xs.into_iter().map(|x| map_children(x, f)).collect()),
        Expr::Host(h, xs) => Expr::Host(h, xs.into_iter().map(|x| map_children(x, f)).collect()),
        leaf => leaf,
    };
    f(e)
}

fn pattern(rules: &RuleSet, earlier: &[SlotShape], p: Pattern, extra: Vec<Expr>) -> Pattern {
    let scope = Scope {
        rules,
        own: Some(p.ty),
        slots: earlier,
    };
    let mut out = Pattern::new(p.ty);
    out.window = p.window;
    out.joins = p.joins;
    let preds = p.tests.into_iter().chain(p.filters).chain(extra);
    for e in preds.flat_map(|e| conjuncts(norm(&scope, e))) {
        match classify(&scope, e) {
            Class::True => {}
            Class::Join(j) => out.joins.push(j),
            Class::Test(e) => out.tests.push(e),
            Class::Filter(e) => out.filters.push(e),
        }
    }
    out.tests
        .sort_by(|a, b| (test_rank(a), a).cmp(&(test_rank(b), b)));
    out.tests.dedup();
    out.joins.sort();
    out.joins.dedup();
    out.filters.sort();
    out.filters.dedup();
    out
}

/// Equality tests first, then list membership, then other comparisons with a
/// constant, then the rest: the order in which the network indexes them.
fn test_rank(e: &Expr) -> u8 {
    match e {
        Expr::Cmp(CmpOp::Eq, a, b)
            if matches!(**a, Expr::Own(_)) && matches!(**b, Expr::Const(_)) =>
        {
            0
        }
        Expr::In(a, _) if matches!(**a, Expr::Own(_)) => 1,
        Expr::Cmp(_, a, b) if matches!(**a, Expr::Own(_)) && matches!(**b, Expr::Const(_)) => 2,
        _ => 3,
    }
}

enum Class {
    True,
    Join(Join),
    Test(Expr),
    Filter(Expr),
}

fn classify(scope: &Scope<'_>, e: Expr) -> Class {
    if e == Expr::Const(Value::Bool(true)) {
        return Class::True;
    }
    if let Expr::Cmp(CmpOp::Eq, a, b) = &e {
        if let (Expr::Own(field), Expr::Bound(slot, other)) = (&**a, &**b) {
            let same_type = scope.type_of(a).ok().flatten() == scope.type_of(b).ok().flatten();
            if same_type {
                return Class::Join(Join {
                    field: *field,
                    slot: *slot,
                    other: *other,
                });
            }
        }
    }
    // Membership sets can be replaced at run time, so a membership test is a
    // filter: alpha memories hold what depends on the fact alone.
    let mut pure = true;
    e.visit(&mut |x| match x {
        Expr::Bound(..) | Expr::Host(..) | Expr::InSet(..) => pure = false,
        Expr::Call(b, _) if b.reads_clock() => pure = false,
        _ => {}
    });
    if pure {
        Class::Test(e)
    } else {
        Class::Filter(e)
    }
}

fn aggregate(rules: &RuleSet, earlier: &[SlotShape], a: Aggregate) -> Aggregate {
    let source_scope = Scope {
        rules,
        own: Some(a.source.ty),
        slots: earlier,
    };
    let scope = Scope {
        rules,
        own: None,
        slots: earlier,
    };
    let value = a.value.map(|v| norm(&source_scope, v));
    let value_type = value
        .as_ref()
        .and_then(|v| source_scope.type_of(v).ok().flatten());
    let result = a.func.result_type(value_type);
    let having = a.having.map(|(op, e)| {
        let e = norm(&scope, e);
        let e = match (result, &e) {
            (Some(ValueType::Float), Expr::Const(Value::Int(i))) => {
                Expr::Const(Value::Float(*i as f64))
            }
            (Some(ValueType::Float), _)
                if scope.type_of(&e).ok().flatten() == Some(ValueType::Int) =>
            {
                Expr::ToFloat(Box::new(e))
            }
            _ => e,
        };
        (op, e)
    });
    Aggregate {
        func: a.func,
        source: pattern(rules, earlier, a.source, Vec::new()),
        value,
        by: a.by,
        having,
        within: a.within,
    }
}

fn action(scope: &Scope<'_>, a: Action) -> Action {
    match a {
        Action::Insert { ty, fields } => Action::Insert {
            ty,
            fields: field_values(scope, ty, fields),
        },
        Action::Modify { slot, fields } => {
            let ty = match scope.slots.get(slot.index()) {
                Some(SlotShape::Fact(ty)) => *ty,
                _ => unreachable!("validated: modify names a fact slot"),
            };
            Action::Modify {
                slot,
                fields: field_values(scope, ty, fields),
            }
        }
        Action::Retract { slot } => Action::Retract { slot },
        Action::Emit(mut emit) => {
            for (_, arg) in &mut emit.args {
                if let super::Arg::Expr(e) = arg {
                    *e = norm(scope, std::mem::replace(e, Expr::Const(Value::Null)));
                }
            }
            for (_, actions) in &mut emit.branches {
                *actions = std::mem::take(actions)
                    .into_iter()
                    .map(|a| action(scope, a))
                    .collect();
            }
            Action::Emit(emit)
        }
        Action::Delayed {
            after,
            recheck,
            action: inner,
        } => Action::Delayed {
            after,
            recheck,
            action: Box::new(action(scope, *inner)),
        },
    }
}

fn field_values(
    scope: &Scope<'_>,
    ty: TypeId,
    fields: Vec<(nudge_core::FieldId, Expr)>,
) -> Vec<(nudge_core::FieldId, Expr)> {
    let t = scope.rules.schema().get(ty);
    let mut out: Vec<_> = fields
        .into_iter()
        .map(|(f, e)| {
            let e = norm(scope, e);
            let e = if t.field_def(f).ty == ValueType::Float {
                widen(scope, e)
            } else {
                e
            };
            (f, e)
        })
        .collect();
    out.sort_by_key(|(f, _)| *f);
    out
}

/// Splits a conjunction into its parts.
fn conjuncts(e: Expr) -> Vec<Expr> {
    match e {
        Expr::And(xs) => xs,
        e => vec![e],
    }
}

fn ty(scope: &Scope<'_>, e: &Expr) -> Option<ValueType> {
    scope.type_of(e).ok().flatten()
}

/// Turns an int-typed expression into a float-typed one.
fn widen(scope: &Scope<'_>, e: Expr) -> Expr {
    match e {
        Expr::Const(Value::Int(i)) => Expr::Const(Value::Float(i as f64)),
        e if ty(scope, &e) == Some(ValueType::Int) => Expr::ToFloat(Box::new(e)),
        e => e,
    }
}

/// Widens one side when an int meets a float.
fn unify_numbers(scope: &Scope<'_>, a: Expr, b: Expr) -> (Expr, Expr) {
    match (ty(scope, &a), ty(scope, &b)) {
        (Some(ValueType::Int), Some(ValueType::Float)) => (widen(scope, a), b),
        (Some(ValueType::Float), Some(ValueType::Int)) => (a, widen(scope, b)),
        _ => (a, b),
    }
}

/// Whether `e` is the kind of operand that belongs on the right of a
/// canonical comparison: a constant, or an earlier binding facing the tested fact.
fn right_rank(e: &Expr) -> u8 {
    match e {
        Expr::Const(_) => 2,
        Expr::Bound(..) => 1,
        _ => 0,
    }
}

/// Normalizes one expression, children first.
fn norm(scope: &Scope<'_>, e: Expr) -> Expr {
    map_children(e, &mut |x| step(scope, x))
}

/// One normalization step on a node whose children are already normal.
fn step(scope: &Scope<'_>, e: Expr) -> Expr {
    if !matches!(e, Expr::Const(_)) && e.is_constant() {
        return Expr::Const(eval(&e, &ConstEnv));
    }
    match e {
        Expr::Cmp(op, a, b) => cmp(scope, op, *a, *b),
        Expr::Arith(op, a, b) => {
            let (a, b) = unify_numbers(scope, *a, *b);
            Expr::Arith(op, Box::new(a), Box::new(b))
        }
        Expr::Not(a) => negate(scope, *a),
        Expr::In(a, values) => in_list(scope, *a, values),
        Expr::And(xs) => and(xs),
        Expr::Or(xs) => or(scope, xs),
        e => e,
    }
}

fn cmp(scope: &Scope<'_>, op: CmpOp, a: Expr, b: Expr) -> Expr {
    let (op, a, b) = match op.flipped() {
        Some(flipped) if right_rank(&a) > right_rank(&b) => (flipped, b, a),
        _ => (op, a, b),
    };
    match (op, &b) {
        (CmpOp::Eq, Expr::Const(Value::Null)) => return Expr::IsNull(Box::new(a)),
        (CmpOp::Ne, Expr::Const(Value::Null)) => {
            return Expr::Not(Box::new(Expr::IsNull(Box::new(a))))
        }
        // `t == true` is `t`, `t != true` is `not t`, when `t` cannot be null.
        (CmpOp::Eq | CmpOp::Ne, Expr::Const(Value::Bool(c))) if !scope.nullable(&a) => {
            return if (op == CmpOp::Eq) == *c {
                a
            } else {
                negate(scope, a)
            };
        }
        _ => {}
    }
    let (a, b) = if matches!(op, CmpOp::Contains | CmpOp::StartsWith | CmpOp::EndsWith) {
        (a, b)
    } else {
        unify_numbers(scope, a, b)
    };
    Expr::Cmp(op, Box::new(a), Box::new(b))
}

fn negate(scope: &Scope<'_>, a: Expr) -> Expr {
    match a {
        Expr::Not(inner) => *inner,
        Expr::Cmp(op, x, y) => {
            let keeps_meaning =
                matches!(op, CmpOp::Eq | CmpOp::Ne) || (!scope.nullable(&x) && !scope.nullable(&y));
            match op.negated() {
                Some(neg) if keeps_meaning => Expr::Cmp(neg, x, y),
                _ => Expr::Not(Box::new(Expr::Cmp(op, x, y))),
            }
        }
        a => Expr::Not(Box::new(a)),
    }
}

fn in_list(scope: &Scope<'_>, a: Expr, mut values: Vec<Value>) -> Expr {
    let a = match ty(scope, &a) {
        Some(ValueType::Int) if values.iter().any(|v| matches!(v, Value::Float(_))) => {
            Expr::ToFloat(Box::new(a))
        }
        _ => a,
    };
    if ty(scope, &a) == Some(ValueType::Float) {
        for v in &mut values {
            if let Value::Int(i) = v {
                *v = Value::Float(*i as f64);
            }
        }
    }
    values.sort();
    values.dedup();
    match values.len() {
        0 => Expr::Const(Value::Bool(false)),
        1 => Expr::Cmp(
            CmpOp::Eq,
            Box::new(a),
            Box::new(Expr::Const(values.remove(0))),
        ),
        _ => Expr::In(Box::new(a), values),
    }
}

fn and(xs: Vec<Expr>) -> Expr {
    let mut flat = Vec::new();
    for x in xs {
        match x {
            Expr::And(inner) => flat.extend(inner),
            Expr::Const(Value::Bool(true)) => {}
            Expr::Const(Value::Bool(false)) => return Expr::Const(Value::Bool(false)),
            x => flat.push(x),
        }
    }
    flat.sort();
    flat.dedup();
    match flat.len() {
        0 => Expr::Const(Value::Bool(true)),
        1 => flat.remove(0),
        _ => Expr::And(flat),
    }
}

fn or(scope: &Scope<'_>, xs: Vec<Expr>) -> Expr {
    let mut flat = Vec::new();
    for x in xs {
        match x {
            Expr::Or(inner) => flat.extend(inner),
            Expr::Const(Value::Bool(false)) => {}
            Expr::Const(Value::Bool(true)) => return Expr::Const(Value::Bool(true)),
            x => flat.push(x),
        }
    }
    // Gather `x == c` and `x in [..]` on one operand into one list.
    let mut lists: Vec<(Expr, Vec<Value>)> = Vec::new();
    let mut rest = Vec::new();
    for x in flat {
        let (operand, values) = match x {
            Expr::Cmp(CmpOp::Eq, a, b) if matches!(*b, Expr::Const(ref v) if v.value_type().is_some()) =>
            {
                let Expr::Const(v) = *b else { unreachable!() };
                (*a, vec![v])
            }
            Expr::In(a, values) => (*a, values),
            x => {
                rest.push(x);
                continue;
            }
        };
        match lists.iter_mut().find(|(o, _)| *o == operand) {
            Some((_, vs)) => vs.extend(values),
            None => lists.push((operand, values)),
        }
    }
    rest.extend(lists.into_iter().map(|(a, vs)| in_list(scope, a, vs)));
    rest.sort();
    rest.dedup();
    match rest.len() {
        0 => Expr::Const(Value::Bool(false)),
        1 => rest.remove(0),
        _ => Expr::Or(rest),
    }
}

#[cfg(test)]
mod tests {
    use crate::ir::*;
    use nudge_core::{FactKind, FactType, Schema, Value, ValueType};

    struct Fixture {
        rules: RuleSet,
        order: nudge_core::TypeId,
        profile: nudge_core::TypeId,
    }

    fn fixture() -> Fixture {
        let mut schema = Schema::new();
        let order = schema
            .add(
                FactType::new("order", FactKind::Event)
                    .field("user", ValueType::String, false)
                    .field("amount", ValueType::Float, false)
                    .field("level", ValueType::Int, false)
                    .field("coupon", ValueType::String, true),
            )
            .unwrap();
        let profile = schema
            .add(
                FactType::new("profile", FactKind::Fact)
                    .field("user", ValueType::String, false)
                    .field("level", ValueType::Int, false),
            )
            .unwrap();
        Fixture {
            rules: RuleSet::new(schema),
            order,
            profile,
        }
    }

    fn f(i: u16) -> nudge_core::FieldId {
        nudge_core::FieldId::new(i)
    }

    fn first_pattern(rules: &RuleSet) -> &Pattern {
        match &rules.rules().last().unwrap().conditions[0] {
            Condition::Pattern(p) => p,
            c => panic!("not a pattern: {c:?}"),
        }
    }

    fn add(fx: &mut Fixture, name: &str, tests: Vec<Expr>) -> Pattern {
        let mut p = Pattern::new(fx.order);
        p.tests = tests;
        fx.rules
            .add_rule(Rule::new(name).when(Condition::Pattern(p)))
            .unwrap();
        first_pattern(&fx.rules).clone()
    }

    #[test]
    fn equal_conditions_become_equal_values() {
        let mut fx = fixture();
        let a = add(
            &mut fx,
            "a",
            vec![Expr::And(vec![
                Expr::value(100).lt(Expr::own(f(1))),
                Expr::own(f(0))
                    .eq(Expr::value("x"))
                    .cmp(CmpOp::Eq, Expr::value(true)),
            ])],
        );
        let b = add(
            &mut fx,
            "b",
            vec![
                Expr::own(f(0)).eq(Expr::value("x")),
                Expr::own(f(1)).gt(Expr::Const(Value::Float(100.0))),
                Expr::own(f(1)).gt(Expr::Arith(
                    ArithOp::Mul,
                    Box::new(Expr::value(50)),
                    Box::new(Expr::value(2)),
                )),
            ],
        );
        assert_eq!(a.tests, b.tests);
        assert_eq!(a.tests.len(), 2, "{:?}", a.tests);
    }

    #[test]
    fn ors_of_equalities_become_lists() {
        let mut fx = fixture();
        let p = add(
            &mut fx,
            "a",
            vec![Expr::Or(vec![
                Expr::own(f(0)).eq(Expr::value("b")),
                Expr::own(f(0)).is_in(vec![Value::from("c"), Value::from("a")]),
                Expr::value("a").eq(Expr::own(f(0))),
            ])],
        );
        assert_eq!(
            p.tests,
            vec![Expr::own(f(0)).is_in(vec![Value::from("a"), Value::from("b"), Value::from("c")])]
        );
        let q = add(
            &mut fx,
            "b",
            vec![Expr::own(f(0)).is_in(vec![Value::from("z"), Value::from("z")])],
        );
        assert_eq!(q.tests, vec![Expr::own(f(0)).eq(Expr::value("z"))]);
    }

    #[test]
    fn negation_is_pushed_only_where_nulls_allow() {
        let mut fx = fixture();
        let p = add(
            &mut fx,
            "a",
            vec![Expr::Not(Box::new(Expr::own(f(1)).lt(Expr::value(5))))],
        );
        assert_eq!(
            p.tests,
            vec![Expr::own(f(1)).cmp(CmpOp::Ge, Expr::Const(Value::Float(5.0)))]
        );
        // `coupon` is optional: `not (coupon < "m")` is true when it is missing.
        let q = add(
            &mut fx,
            "b",
            vec![Expr::Not(Box::new(Expr::own(f(3)).lt(Expr::value("m"))))],
        );
        assert!(matches!(q.tests[0], Expr::Not(_)));
        let r = add(
            &mut fx,
            "c",
            vec![Expr::own(f(3)).cmp(CmpOp::Ne, Expr::Const(Value::Null))],
        );
        assert_eq!(
            r.tests,
            vec![Expr::Not(Box::new(Expr::IsNull(Box::new(Expr::own(f(3))))))]
        );
    }

    #[test]
    fn joins_are_extracted_and_tests_move_into_patterns() {
        let mut fx = fixture();
        let s0 = Slot::new(0);
        let mut prof = Pattern::new(fx.profile);
        prof.tests.push(Expr::bound(s0, f(0)).eq(Expr::own(f(0))));
        let rule = Rule::new("j")
            .when(Condition::Pattern(Pattern::new(fx.order)))
            .when(Condition::Pattern(prof))
            .when(Condition::Test(
                Expr::bound(Slot::new(1), f(1)).gt(Expr::value(3)),
            ))
            .when(Condition::Test(
                Expr::bound(s0, f(2)).lt(Expr::bound(Slot::new(1), f(1))),
            ));
        fx.rules.add_rule(rule).unwrap();
        let r = &fx.rules.rules()[0];
        assert_eq!(
            r.conditions.len(),
            2,
            "tests moved into the profile pattern"
        );
        let Condition::Pattern(p) = &r.conditions[1] else {
            panic!()
        };
        assert_eq!(
            p.joins,
            vec![Join {
                field: f(0),
                slot: s0,
                other: f(0)
            }]
        );
        assert_eq!(p.tests, vec![Expr::own(f(1)).gt(Expr::value(3))]);
        assert_eq!(p.filters, vec![Expr::own(f(1)).gt(Expr::bound(s0, f(2)))]);
    }

    #[test]
    fn ill_typed_rules_are_refused_and_leave_the_set_unchanged() {
        let mut fx = fixture();
        let bad = Rule::new("bad").when(Condition::Pattern(
            Pattern::new(fx.order).test(Expr::own(f(1)).eq(Expr::value("x"))),
        ));
        assert!(matches!(fx.rules.add_rule(bad), Err(IrError::Type { .. })));
        let dangling = Rule::new("d").when(Condition::Pattern(
            Pattern::new(fx.order).test(Expr::bound(Slot::new(4), f(0)).eq(Expr::own(f(0)))),
        ));
        assert!(matches!(
            fx.rules.add_rule(dangling),
            Err(IrError::Dangling { .. })
        ));
        let window_on_fact = Rule::new("w").when(Condition::Pattern(
            Pattern::new(fx.profile).window(Window {
                within: Some(nudge_core::Duration::from_secs(60)),
                after: None,
                before: None,
            }),
        ));
        assert!(matches!(
            fx.rules.add_rule(window_on_fact),
            Err(IrError::Shape { .. })
        ));
        // `before` needs a window, names an event binding, and does not go
        // with `after`.
        let day = Some(nudge_core::Duration::from_secs(86_400));
        let s0 = Slot::new(0);
        let before = |first: TypeId, window: Window| {
            Rule::new("b")
                .when(Condition::Pattern(Pattern::new(first)))
                .when(Condition::Not(Pattern::new(fx.order).window(window)))
        };
        for (first, window) in [
            (
                fx.order,
                Window {
                    within: None,
                    after: None,
                    before: Some(s0),
                },
            ),
            (
                fx.order,
                Window {
                    within: day,
                    after: Some(s0),
                    before: Some(s0),
                },
            ),
            (
                fx.profile,
                Window {
                    within: day,
                    after: None,
                    before: Some(s0),
                },
            ),
        ] {
            let rule = before(first, window);
            assert!(
                matches!(fx.rules.add_rule(rule), Err(IrError::Shape { .. })),
                "{window:?} after a {first:?}"
            );
        }
        let dangling = before(
            fx.order,
            Window {
                within: day,
                after: None,
                before: Some(Slot::new(3)),
            },
        );
        assert!(matches!(
            fx.rules.add_rule(dangling),
            Err(IrError::Dangling { .. })
        ));
        assert!(fx.rules.rules().is_empty());
        let fine = before(
            fx.order,
            Window {
                within: day,
                after: None,
                before: Some(s0),
            },
        );
        fx.rules.add_rule(fine).unwrap();
    }

    #[test]
    fn rule_set_round_trips_through_serde() {
        let mut fx = fixture();
        add(&mut fx, "a", vec![Expr::own(f(2)).gt(Expr::value(3))]);
        let json = serde_json::to_string(&fx.rules).unwrap();
        let mut back: RuleSet = serde_json::from_str(&json).unwrap();
        back.reindex();
        assert_eq!(back, fx.rules);
    }
}
