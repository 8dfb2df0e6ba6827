//! Engine bugs found by the differential tests (`differential.rs`), each
//! reduced to its smallest case.

use nudge_core::{FactKind, FactType, Schema, TypeId, Value, ValueType};
use nudge_rete::ir::{Condition, Expr, Pattern, Rule, RuleId, RuleSet, Slot};
use nudge_rete::{FactId, Network, Session};

/// Two types `t0` and `t1`, each with one int field `f0`, and one rule made
/// of `conditions`.
fn session(conditions: impl Fn(TypeId, TypeId) -> Vec<Condition>) -> (Session, TypeId, TypeId) {
    let mut schema = Schema::new();
    let t0 = schema
        .add(FactType::new("t0", FactKind::Fact).field("f0", ValueType::Int, false))
        .unwrap();
    let t1 = schema
        .add(FactType::new("t1", FactKind::Fact).field("f0", ValueType::Int, false))
        .unwrap();
    let mut rules = RuleSet::new(schema);
    let mut rule = Rule::new("r0");
    for c in conditions(t0, t1) {
        rule = rule.when(c);
    }
    rules.add_rule(rule).unwrap();
    (Session::new(Network::shared(rules).unwrap()), t0, t1)
}

fn fact(s: &mut Session, ty: TypeId) -> FactId {
    s.insert(ty, vec![Value::Int(0)]).unwrap()
}

fn matches_of(facts: &[FactId]) -> Vec<(RuleId, Vec<FactId>)> {
    facts.iter().map(|f| (RuleId::new(0), vec![*f])).collect()
}

/// `not t0(); t1()`: once a `t0` exists, the `not` blocks, and a `t1`
/// inserted later must not match.
///
/// Cause: when a `not` token became blocked (or an `exists` token lost its
/// last fact), the session removed the tokens below it but left the token
/// itself in the left memory of the join below, so a later `t1` joined with
/// it.
#[test]
fn blocked_not_does_not_join_later_facts() {
    let (mut s, t0, t1) = session(|t0, t1| {
        vec![
            Condition::Not(Pattern::new(t0)),
            Condition::Pattern(Pattern::new(t1)),
        ]
    });
    fact(&mut s, t0);
    fact(&mut s, t1);
    assert_eq!(s.matches(), vec![]);
}

/// `exists t0(); t1()`: after its only `t0` is retracted, the `exists`
/// no longer holds, and a `t1` inserted later must not match.
#[test]
fn exists_that_lost_its_facts_does_not_join_later_facts() {
    let (mut s, t0, t1) = session(|t0, t1| {
        vec![
            Condition::Exists(Pattern::new(t0)),
            Condition::Pattern(Pattern::new(t1)),
        ]
    });
    let a = fact(&mut s, t0);
    s.retract(a).unwrap();
    fact(&mut s, t1);
    assert_eq!(s.matches(), vec![]);
}

/// `not t0(); t1()`: blocking then unblocking the `not` must leave each
/// `t1` matching once, not once per time the `not` passed.
#[test]
fn unblocked_not_joins_each_fact_once() {
    let (mut s, t0, t1) = session(|t0, t1| {
        vec![
            Condition::Not(Pattern::new(t0)),
            Condition::Pattern(Pattern::new(t1)),
        ]
    });
    let a = fact(&mut s, t0);
    s.retract(a).unwrap();
    let b = fact(&mut s, t1);
    assert_eq!(s.matches(), matches_of(&[b]));
}

/// `exists t0(); t1()`: an `exists` that stops and starts holding again
/// must leave each `t1` matching once.
#[test]
fn exists_that_holds_again_joins_each_fact_once() {
    let (mut s, t0, t1) = session(|t0, t1| {
        vec![
            Condition::Exists(Pattern::new(t0)),
            Condition::Pattern(Pattern::new(t1)),
        ]
    });
    let b = fact(&mut s, t1);
    let a = fact(&mut s, t0);
    assert_eq!(s.matches(), matches_of(&[b]));
    s.retract(a).unwrap();
    assert_eq!(s.matches(), vec![]);
    fact(&mut s, t0);
    assert_eq!(s.matches(), matches_of(&[b]));
    let c = fact(&mut s, t1);
    assert_eq!(s.matches(), matches_of(&[b, c]));
}

/// The same below a join rather than at the root, where the `not` has a
/// join of its own: `t1() as $0; not t0(f0 == $0.f0); t1()`.
#[test]
fn blocked_not_below_a_join_does_not_join_later_facts() {
    let (mut s, t0, t1) = session(|t0, t1| {
        let f0 = nudge_core::FieldId::new(0);
        vec![
            Condition::Pattern(Pattern::new(t1)),
            Condition::Not(Pattern::new(t0).test(Expr::own(f0).eq(Expr::bound(Slot::new(0), f0)))),
            Condition::Pattern(Pattern::new(t1)),
        ]
    });
    let b = fact(&mut s, t1);
    assert_eq!(s.matches(), vec![(RuleId::new(0), vec![b, b])]);
    fact(&mut s, t0);
    assert_eq!(s.matches(), vec![]);
    fact(&mut s, t1);
    assert_eq!(s.matches(), vec![]);
}

/// A rule set read from JSON is checked before it is compiled: an index out
/// of range is an error, not a panic.
#[test]
fn deserialized_rule_sets_are_validated() {
    let mut schema = Schema::new();
    let t0 = schema
        .add(FactType::new("t0", FactKind::Fact).field("f0", ValueType::Int, false))
        .unwrap();
    let mut rules = RuleSet::new(schema);
    rules
        .add_rule(Rule::new("r0").when(Condition::Pattern(
            Pattern::new(t0).test(Expr::own(nudge_core::FieldId::new(0)).gt(Expr::value(1i64))),
        )))
        .unwrap();
    let json = serde_json::to_string(&rules).unwrap();
    let back: RuleSet = serde_json::from_str(&json).unwrap();
    assert!(Network::compile(back).is_ok(), "a faithful copy compiles");
    let broken = json.replace("\"own\":0", "\"own\":7");
    assert_ne!(broken, json, "the field index is in the JSON");
    let bad: RuleSet = serde_json::from_str(&broken).unwrap();
    assert!(matches!(
        Network::compile(bad),
        Err(nudge_rete::CompileError::Invalid(_))
    ));
}
