//! The host interface of a session: what `Host::decide` is asked and what
//! becomes of its answer (status, details, branch, deferral, effects on
//! working memory), context providers (`Host::provide`), and the facts by
//! key a host reads through `Memory`.
//!
//! Rules and schemas are built in Rust with `nudge_rete::ir`, without the
//! language.

use nudge_core::{
    Duration, Effect, FactKind, FactType, FieldId, Outcome, Schema, Status, Timestamp, TypeId,
    Value, ValueType,
};
use nudge_rete::ir::{Action, Arg, Condition, Emit, Expr, Pattern, Rule, RuleSet, Slot};
use nudge_rete::{
    DecisionRef, FactError, FactId, Host, Memory, Network, NoHost, Session, SessionError,
    SnapshotError,
};
use proptest::prelude::*;
use proptest::test_runner::Config;
use std::collections::HashMap;
use std::sync::Arc;

// ---------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------

fn f(i: u16) -> FieldId {
    FieldId::new(i)
}

fn s(i: u16) -> Slot {
    Slot::new(i)
}

fn str_field(name: &str) -> (&str, ValueType, bool) {
    (name, ValueType::String, false)
}

fn ty(name: &str, kind: FactKind, fields: &[(&str, ValueType, bool)]) -> FactType {
    fields
        .iter()
        .fold(FactType::new(name, kind), |t, (n, vt, opt)| {
            t.field(*n, *vt, *opt)
        })
}

/// `action(name = $slot.field, ...)` with the given branches.
fn emit_with(
    action: &str,
    args: &[(&str, Expr)],
    branches: Vec<(Arc<str>, Vec<Action>)>,
) -> Action {
    Action::Emit(Emit {
        action: action.into(),
        args: args
            .iter()
            .map(|(n, e)| (Arc::from(*n), Arg::Expr(e.clone())))
            .collect(),
        branches,
    })
}

fn emit(action: &str, args: &[(&str, Expr)]) -> Action {
    emit_with(action, args, vec![])
}

fn pattern(t: TypeId) -> Condition {
    Condition::Pattern(Pattern::new(t))
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn plus(t: Timestamp, ms: i64) -> Timestamp {
    t.checked_add(Duration::from_millis(ms)).unwrap()
}

/// What a host saw of one decision.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    seq: u64,
    rule: String,
    action: String,
    args: Vec<(String, Value)>,
    facts: Vec<FactId>,
    time: Timestamp,
    firing: u64,
    retry: bool,
}

impl Seen {
    fn of(d: &DecisionRef<'_>) -> Seen {
        Seen {
            seq: d.seq(),
            rule: d.rule_name().to_string(),
            action: d.action().to_string(),
            args: d.args().map(|(n, v)| (n.to_string(), v.clone())).collect(),
            facts: d.facts().to_vec(),
            time: d.time(),
            firing: d.firing(),
            retry: d.is_retry(),
        }
    }
}

fn seen_all<H: Host>(session: &Session<H>) -> Vec<Seen> {
    session.decisions().map(|d| Seen::of(&d)).collect()
}

/// A host that records every decision it is asked about and carries it out.
#[derive(Default)]
struct Recorder {
    seen: Vec<Seen>,
}

impl Host for Recorder {
    fn decides(&self, _action: &str, _has_branches: bool) -> bool {
        true
    }

    fn decide(&mut self, decision: DecisionRef<'_>, _: Memory<'_>) -> Outcome {
        self.seen.push(Seen::of(&decision));
        Outcome::done()
    }
}

// ---------------------------------------------------------------------------
// 1. What `decide` is asked, and the default host.
// ---------------------------------------------------------------------------

/// `order(user)`; rule `first` (salience 10) emits `a` then `b`, rule
/// `second` (salience 0) emits `c`.
fn three_actions() -> (Arc<Network>, TypeId) {
    let mut schema = Schema::new();
    let order = schema
        .add(ty("order", FactKind::Event, &[str_field("user")]))
        .unwrap();
    let user = || Expr::bound(s(0), f(0));
    let mut rules = RuleSet::new(schema);
    let mut first = Rule::new("first")
        .when(pattern(order))
        .then(emit("a", &[("user", user())]))
        .then(emit("b", &[("user", user())]));
    first.salience = 10;
    rules.add_rule(first).unwrap();
    rules
        .add_rule(
            Rule::new("second")
                .when(pattern(order))
                .then(emit("c", &[("user", user())])),
        )
        .unwrap();
    (Network::shared(rules).unwrap(), order)
}

/// `decide` is called exactly once per emitted action, in firing order
/// (the order of `decisions()`); the decisions of one rule firing share a
/// `firing()` number, and different firings (of other rules, or of the
/// same rule later) have different ones.
#[test]
fn decide_is_called_once_per_action_in_firing_order() {
    let (net, order) = three_actions();
    let mut session = Session::with_host(net, Recorder::default());
    session.insert(order, vec![Value::from("u1")]).unwrap();
    assert_eq!(session.fire().unwrap(), 2);
    session.insert(order, vec![Value::from("u2")]).unwrap();
    assert_eq!(session.fire().unwrap(), 2);

    let seen = &session.host().seen;
    assert_eq!(
        seen,
        &seen_all(&session),
        "decide saw the decisions in order"
    );
    let got: Vec<(&str, &str, &Value)> = seen
        .iter()
        .map(|d| (d.rule.as_str(), d.action.as_str(), &d.args[0].1))
        .collect();
    let (u1, u2) = (Value::from("u1"), Value::from("u2"));
    assert_eq!(
        got,
        vec![
            ("first", "a", &u1),
            ("first", "b", &u1),
            ("second", "c", &u1),
            ("first", "a", &u2),
            ("first", "b", &u2),
            ("second", "c", &u2),
        ]
    );
    assert!(seen.iter().all(|d| !d.retry));
    // One firing: a and b; every other pair of firings differs.
    assert_eq!(seen[0].firing, seen[1].firing);
    assert_eq!(seen[3].firing, seen[4].firing);
    let firings = [
        seen[0].firing,
        seen[2].firing,
        seen[3].firing,
        seen[5].firing,
    ];
    for (i, a) in firings.iter().enumerate() {
        for b in &firings[i + 1..] {
            assert_ne!(a, b, "firings {firings:?} must differ");
        }
    }
}

/// Without a host (`NoHost`), every decision is `Done` with no details and
/// no branch, on the borrowed decision and on its owned copy.
#[test]
fn default_host_carries_everything_out() {
    let (net, order) = three_actions();
    let mut session = Session::new(net);
    session.insert(order, vec![Value::from("u1")]).unwrap();
    session.fire().unwrap();
    assert_eq!(session.decision_count(), 3);
    for d in session.decisions() {
        assert_eq!(d.status(), &Status::Done);
        assert_eq!(d.details().count(), 0);
        assert_eq!(d.branch(), None);
        assert!(!d.is_retry());
        let owned = d.to_decision();
        assert_eq!(owned.status, Status::Done);
        assert!(owned.details.is_empty());
    }
}

// ---------------------------------------------------------------------------
// 2. Status, details and branch from the outcome.
// ---------------------------------------------------------------------------

/// `order(user)`; rule `split` emits `coupon(user)` with branches `A` and
/// `B`, each inserting `mark(user, arm)` with its own label.
fn split() -> (Arc<Network>, TypeId, TypeId) {
    let mut schema = Schema::new();
    let order = schema
        .add(ty("order", FactKind::Event, &[str_field("user")]))
        .unwrap();
    let mark = schema
        .add(ty(
            "mark",
            FactKind::Fact,
            &[str_field("user"), str_field("arm")],
        ))
        .unwrap();
    let user = || Expr::bound(s(0), f(0));
    let arm = |label: &str| -> (Arc<str>, Vec<Action>) {
        (
            label.into(),
            vec![Action::Insert {
                ty: mark,
                fields: vec![(f(0), user()), (f(1), Expr::value(label))],
            }],
        )
    };
    let mut rules = RuleSet::new(schema);
    rules
        .add_rule(Rule::new("split").when(pattern(order)).then(emit_with(
            "coupon",
            &[("user", user())],
            vec![arm("A"), arm("B")],
        )))
        .unwrap();
    (Network::shared(rules).unwrap(), order, mark)
}

/// Answers every decision with a fixed outcome and records the branch
/// labels it was offered.
struct Fixed {
    outcome: Outcome,
    labels: Vec<Vec<String>>,
}

impl Host for Fixed {
    fn decides(&self, _action: &str, _has_branches: bool) -> bool {
        true
    }

    fn decide(&mut self, decision: DecisionRef<'_>, _: Memory<'_>) -> Outcome {
        self.labels.push(
            decision
                .branch_labels()
                .iter()
                .map(|l| l.to_string())
                .collect(),
        );
        self.outcome.clone()
    }
}

fn arms_inserted<H: Host>(session: &Session<H>, mark: TypeId) -> Vec<Value> {
    session
        .facts()
        .filter(|(_, t, _)| *t == mark)
        .map(|(_, _, v)| v[1].clone())
        .collect()
}

/// A host's `suppressed("capped")` with details is kept, in order, on the
/// decision and on `to_decision()`; the branch it names (`B`) runs its
/// `insert`, and the other branch (`A`) does not.
#[test]
fn status_details_and_branch_are_kept_and_run() {
    let (net, order, mark) = split();
    let outcome = Outcome::suppressed("capped")
        .with_detail("limit", Value::Int(3))
        .with_detail("channel", Value::from("sms"))
        .with_branch("B");
    let mut session = Session::with_host(
        net,
        Fixed {
            outcome,
            labels: vec![],
        },
    );
    session.insert(order, vec![Value::from("u1")]).unwrap();
    session.fire().unwrap();

    assert_eq!(session.host().labels, vec![vec!["A", "B"]]);
    assert_eq!(session.decision_count(), 1);
    let d = session.decisions().next().unwrap();
    assert_eq!(d.status(), &Status::Suppressed("capped".into()));
    let details: Vec<(&str, &Value)> = d.details().collect();
    assert_eq!(
        details,
        vec![("limit", &Value::Int(3)), ("channel", &Value::from("sms"))]
    );
    assert_eq!(d.detail("channel"), Some(&Value::from("sms")));
    assert_eq!(d.detail("nope"), None);
    assert_eq!(d.branch(), Some("B"));

    let owned = d.to_decision();
    assert_eq!(owned.status, Status::Suppressed("capped".into()));
    assert_eq!(
        owned.details,
        vec![
            (Arc::from("limit"), Value::Int(3)),
            (Arc::from("channel"), Value::from("sms"))
        ]
    );
    assert_eq!(owned.detail("limit"), Some(&Value::Int(3)));
    assert_eq!(owned.arg_value("branch"), Some(&Value::from("B")));

    assert_eq!(arms_inserted(&session, mark), vec![Value::from("B")]);
}

/// A branch label the action does not have, or none, runs no branch.
#[test]
fn unknown_or_no_branch_runs_nothing() {
    for outcome in [Outcome::done().with_branch("C"), Outcome::done()] {
        let (net, order, mark) = split();
        let mut session = Session::with_host(
            net,
            Fixed {
                outcome,
                labels: vec![],
            },
        );
        session.insert(order, vec![Value::from("u1")]).unwrap();
        session.fire().unwrap();
        assert_eq!(session.decision_count(), 1);
        assert_eq!(arms_inserted(&session, mark), Vec::<Value>::new());
    }
}

// ---------------------------------------------------------------------------
// 3. Deferral.
// ---------------------------------------------------------------------------

const T0: i64 = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;

/// `cart(user, amount)` (facts, which never expire, so that the only timer
/// is the retry); rule `nudge` emits `sms(user, amount)`. A second network,
/// `other`, has one more rule.
fn deferral_rules(extra_rule: bool) -> (Arc<Network>, TypeId) {
    let mut schema = Schema::new();
    let cart = schema
        .add(ty(
            "cart",
            FactKind::Fact,
            &[str_field("user"), ("amount", ValueType::Int, false)],
        ))
        .unwrap();
    let mut rules = RuleSet::new(schema);
    rules
        .add_rule(Rule::new("nudge").when(pattern(cart)).then(emit(
            "sms",
            &[
                ("user", Expr::bound(s(0), f(0))),
                ("amount", Expr::bound(s(0), f(1))),
            ],
        )))
        .unwrap();
    if extra_rule {
        rules
            .add_rule(
                Rule::new("extra")
                    .when(pattern(cart))
                    .then(emit("log", &[])),
            )
            .unwrap();
    }
    (Network::shared(rules).unwrap(), cart)
}

/// Defers every first decision to `until`, carries out every retry.
struct Deferrer {
    until: Timestamp,
    seen: Vec<Seen>,
}

impl Host for Deferrer {
    fn decides(&self, _action: &str, _has_branches: bool) -> bool {
        true
    }

    fn decide(&mut self, decision: DecisionRef<'_>, _: Memory<'_>) -> Outcome {
        self.seen.push(Seen::of(&decision));
        if decision.is_retry() {
            Outcome::done().with_detail("sent", Value::Bool(true))
        } else {
            Outcome::deferred(self.until)
        }
    }
}

fn deferred_session(until: Timestamp) -> (Session<Deferrer>, TypeId, FactId) {
    let (net, cart) = deferral_rules(false);
    let mut session = Session::with_host(
        net,
        Deferrer {
            until,
            seen: vec![],
        },
    );
    session.advance_to(ts(T0)).unwrap();
    let id = session
        .insert(cart, vec![Value::from("u1"), Value::Int(5)])
        .unwrap();
    assert_eq!(session.fire().unwrap(), 1);
    (session, cart, id)
}

/// Checks that `retry` decides `first` again at `until`.
fn assert_retry_of(first: &Seen, retry: &Seen, until: Timestamp) {
    assert!(!first.retry);
    assert!(retry.retry, "the second decision is a retry");
    assert_eq!(retry.rule, first.rule);
    assert_eq!(retry.action, first.action);
    assert_eq!(retry.args, first.args, "same arguments");
    assert_eq!(retry.facts, first.facts, "same facts");
    assert_eq!(retry.time, until, "decided at the deferral's instant");
    assert_ne!(retry.firing, first.firing);
}

/// A decision deferred to a later instant shows as deferred, schedules one
/// timer for that instant, and is decided again exactly then (not before),
/// as a retry with the same action, arguments and facts.
#[test]
fn deferred_decision_is_decided_again_at_its_instant() {
    let until = ts(T0 + HOUR);
    let (mut session, _, id) = deferred_session(until);
    let d = session.decisions().next().unwrap();
    assert_eq!(d.status(), &Status::Deferred(until));
    assert_eq!(d.to_decision().status, Status::Deferred(until));
    assert_eq!(d.facts(), &[id]);
    assert_eq!(session.next_timer(), Some(until));
    assert_eq!(session.timer_count().1, 1);

    session.advance_to(plus(until, -1)).unwrap();
    assert_eq!(session.host().seen.len(), 1, "not decided again early");

    session.advance_to(until).unwrap();
    assert_eq!(session.host().seen.len(), 2, "decided again at `until`");
    session.advance_to(plus(until, 5 * HOUR)).unwrap();
    let seen = &session.host().seen;
    assert_eq!(seen.len(), 2, "decided again exactly once: {seen:#?}");
    assert_retry_of(&seen[0], &seen[1], until);
    assert_eq!(seen[1].args[1], ("amount".into(), Value::Int(5)));

    let all = seen_all(&session);
    assert_eq!(&all, seen);
    let retry = session.decisions().nth(1).unwrap();
    assert!(retry.is_retry());
    assert_eq!(retry.status(), &Status::Done);
    assert_eq!(retry.detail("sent"), Some(&Value::Bool(true)));
    assert_eq!(session.next_timer(), None);
    assert_eq!(session.timer_count().1, 0);
}

/// A deferral to the current instant, or to one already past, is recorded
/// as deferred but not scheduled: it is never decided again.
#[test]
fn deferral_not_after_now_is_not_rescheduled() {
    for until in [ts(T0), ts(T0 - HOUR)] {
        let (mut session, _, _) = deferred_session(until);
        assert_eq!(
            session.decisions().next().unwrap().status(),
            &Status::Deferred(until)
        );
        assert_eq!(session.next_timer(), None);
        assert_eq!(session.timer_count().1, 0);
        session.advance_to(ts(T0 + 10 * HOUR)).unwrap();
        assert_eq!(session.host().seen.len(), 1, "deferred to {until}");
    }
}

/// A snapshot taken while a retry waits, restored (with a host of the same
/// type), produces the retry at the same instant with the same arguments
/// and facts, as the original session does.
#[test]
fn pending_retry_survives_snapshot() {
    let until = ts(T0 + HOUR);
    let (mut session, _, _) = deferred_session(until);
    let bytes = session.snapshot();
    let first = session.host().seen[0].clone();

    let mut restored = Session::restore(
        session.network().clone(),
        Deferrer {
            until,
            seen: vec![],
        },
        &bytes,
    )
    .unwrap();
    assert_eq!(restored.next_timer(), Some(until));
    assert_eq!(restored.timer_count().1, 1);

    restored.advance_to(plus(until, -1)).unwrap();
    assert!(restored.host().seen.is_empty(), "not decided again early");
    restored.advance_to(plus(until, HOUR)).unwrap();
    let seen = &restored.host().seen;
    assert_eq!(seen.len(), 1, "the retry, once: {seen:#?}");
    assert_retry_of(&first, &seen[0], until);

    session.clear_decisions();
    session.advance_to(plus(until, HOUR)).unwrap();
    assert_eq!(
        session.take_decisions(),
        restored.take_decisions(),
        "the restored session continues as the original"
    );
}

/// A snapshot holding a pending retry does not restore into a network
/// compiled from other rules.
#[test]
fn snapshot_with_retry_refuses_other_rules() {
    let (session, _, _) = deferred_session(ts(T0 + HOUR));
    let bytes = session.snapshot();
    let (other, _) = deferral_rules(true);
    let host = Deferrer {
        until: ts(T0),
        seen: vec![],
    };
    let err = Session::restore(other, host, &bytes)
        .err()
        .expect("restored into other rules");
    assert!(
        matches!(err, SnapshotError::OtherRules { .. }),
        "got {err:?}"
    );
}

// ---------------------------------------------------------------------------
// 4. Effects: upsert.
// ---------------------------------------------------------------------------

struct Keyed {
    net: Arc<Network>,
    /// `state(user, state)`, keyed on `user`.
    state: TypeId,
    /// `tick(user)`, an event.
    tick: TypeId,
    /// `plain(user, state)`: no key.
    plain: TypeId,
    /// `ping(user, state)`: an event type with a key field.
    ping: TypeId,
}

/// Rule `step`: `tick()` emits `transition(user)`; rule `entered_b`:
/// `state(state == "b")` emits `entered(user)`.
fn keyed() -> Keyed {
    let mut schema = Schema::new();
    let two = [str_field("user"), str_field("state")];
    let state = schema
        .add(ty("state", FactKind::Fact, &two).with_key("user").unwrap())
        .unwrap();
    let tick = schema
        .add(ty("tick", FactKind::Event, &[str_field("user")]))
        .unwrap();
    let plain = schema.add(ty("plain", FactKind::Fact, &two)).unwrap();
    let ping = schema
        .add(ty("ping", FactKind::Event, &two).with_key("user").unwrap())
        .unwrap();
    let user = || Expr::bound(s(0), f(0));
    let mut rules = RuleSet::new(schema);
    rules
        .add_rule(
            Rule::new("step")
                .when(pattern(tick))
                .then(emit("transition", &[("user", user())])),
        )
        .unwrap();
    rules
        .add_rule(
            Rule::new("entered_b")
                .when(Condition::Pattern(
                    Pattern::new(state).test(Expr::own(f(1)).eq(Expr::value("b"))),
                ))
                .then(emit("entered", &[("user", user())])),
        )
        .unwrap();
    Keyed {
        net: Network::shared(rules).unwrap(),
        state,
        tick,
        plain,
        ping,
    }
}

/// On `transition(user)`: records what `Memory::by_key(state, user)` holds,
/// then upserts `target(user, "b")`.
struct Stepper {
    state: TypeId,
    target: TypeId,
    saw: Vec<Vec<(FactId, Vec<Value>)>>,
}

impl Host for Stepper {
    fn decides(&self, _action: &str, _has_branches: bool) -> bool {
        true
    }

    fn decide(&mut self, decision: DecisionRef<'_>, memory: Memory<'_>) -> Outcome {
        if decision.action() != "transition" {
            return Outcome::done();
        }
        let user = decision.arg("user").unwrap().clone();
        self.saw.push(
            memory
                .by_key(self.state, &user)
                .map(|(id, v)| (id, v.to_vec()))
                .collect(),
        );
        Outcome::done().with_effect(Effect::Upsert {
            ty: self.target,
            values: vec![user, Value::from("b")],
        })
    }
}

fn stepper(k: &Keyed, target: TypeId) -> Session<Stepper> {
    Session::with_host(
        k.net.clone(),
        Stepper {
            state: k.state,
            target,
            saw: vec![],
        },
    )
}

fn entered<H: Host>(session: &Session<H>) -> Vec<Vec<FactId>> {
    session
        .decisions()
        .filter(|d| d.action() == "entered")
        .map(|d| d.facts().to_vec())
        .collect()
}

/// An upsert with no fact under its key inserts one, which rules on its
/// type then match (`state == "b"` fires).
#[test]
fn upsert_inserts_when_the_key_is_new() {
    let k = keyed();
    let mut session = stepper(&k, k.state);
    session.insert(k.tick, vec![Value::from("u1")]).unwrap();
    session.fire().unwrap();

    assert_eq!(session.host().saw, vec![vec![]], "no state for u1 yet");
    let found: Vec<(FactId, Vec<Value>)> = session
        .memory()
        .by_key(k.state, &Value::from("u1"))
        .map(|(id, v)| (id, v.to_vec()))
        .collect();
    assert_eq!(found.len(), 1);
    let (id, values) = &found[0];
    assert_eq!(values, &vec![Value::from("u1"), Value::from("b")]);
    assert_eq!(session.fact(*id).map(|(t, _)| t), Some(k.state));
    assert_eq!(entered(&session), vec![vec![*id]]);
}

/// An upsert whose key exists modifies that fact in place (same id), after
/// the host has seen it through `Memory::by_key`; rules see the new value.
/// An upsert that changes nothing does not fire the rules again. Once the
/// fact is retracted, its key is gone and the next upsert inserts anew.
#[test]
fn upsert_modifies_in_place_and_by_key_follows_retract() {
    let k = keyed();
    let mut session = stepper(&k, k.state);
    let u2 = Value::from("u2");
    let id = session
        .insert(k.state, vec![u2.clone(), Value::from("a")])
        .unwrap();
    session.fire().unwrap();
    assert!(entered(&session).is_empty());

    session.insert(k.tick, vec![u2.clone()]).unwrap();
    session.fire().unwrap();
    assert_eq!(
        session.host().saw,
        vec![vec![(id, vec![u2.clone(), Value::from("a")])]],
        "decide saw the fact by key"
    );
    assert_eq!(
        session.fact(id),
        Some((k.state, &[u2.clone(), Value::from("b")][..])),
        "modified in place"
    );
    assert_eq!(session.facts().filter(|(_, t, _)| *t == k.state).count(), 1);
    assert_eq!(entered(&session), vec![vec![id]], "state == \"b\" fired");

    // The same values again: nothing changes, nothing fires again.
    session.insert(k.tick, vec![u2.clone()]).unwrap();
    session.fire().unwrap();
    assert_eq!(entered(&session), vec![vec![id]]);

    session.retract(id).unwrap();
    assert_eq!(session.memory().by_key(k.state, &u2).count(), 0);
    session.insert(k.tick, vec![u2.clone()]).unwrap();
    session.fire().unwrap();
    assert_eq!(session.host().saw.last(), Some(&vec![]), "key gone");
    let now: Vec<FactId> = session
        .memory()
        .by_key(k.state, &u2)
        .map(|(id, _)| id)
        .collect();
    assert_eq!(now.len(), 1);
    assert_ne!(now[0], id, "a new fact");
}

/// Upserting a type with no key field, or an event type (even with a key),
/// fails the rule with `SessionError::Action` wrapping `FactError::NotKeyed`
/// and adds no fact.
#[test]
fn upsert_refuses_unkeyed_and_event_types() {
    let k = keyed();
    for (target, name) in [(k.plain, "plain"), (k.ping, "ping")] {
        let mut session = stepper(&k, target);
        session.insert(k.tick, vec![Value::from("u1")]).unwrap();
        let err = session.fire().unwrap_err();
        assert_eq!(
            err,
            SessionError::Action {
                rule: "step".into(),
                error: FactError::NotKeyed(name.into()),
            }
        );
        assert_eq!(session.fact_count(), 1, "only the tick");
    }
}

// ---------------------------------------------------------------------------
// 5. Context providers.
// ---------------------------------------------------------------------------

struct Ctx {
    net: Arc<Network>,
    /// `visit(user, score: float)`, an event; `features` fills `score`.
    visit: TypeId,
    /// `tick(user)`.
    tick: TypeId,
}

/// Rule `hot`: `visit(score > 0.8)` emits `hot(user, score)`; rule `spawn`:
/// `tick()` inserts `visit(user = $0.user, score = 0.0)`.
fn ctx() -> Ctx {
    let mut schema = Schema::new();
    let visit = schema
        .add(
            ty(
                "visit",
                FactKind::Event,
                &[str_field("user"), ("score", ValueType::Float, false)],
            )
            .with_context("features", &["score"])
            .unwrap(),
        )
        .unwrap();
    assert_eq!(schema.get(visit).contexts()[0].fields, vec![f(1)]);
    let tick = schema
        .add(ty("tick", FactKind::Event, &[str_field("user")]))
        .unwrap();
    let mut rules = RuleSet::new(schema);
    rules
        .add_rule(
            Rule::new("hot")
                .when(Condition::Pattern(
                    Pattern::new(visit).test(Expr::own(f(1)).gt(Expr::value(0.8))),
                ))
                .then(emit(
                    "hot",
                    &[
                        ("user", Expr::bound(s(0), f(0))),
                        ("score", Expr::bound(s(0), f(1))),
                    ],
                )),
        )
        .unwrap();
    rules
        .add_rule(Rule::new("spawn").when(pattern(tick)).then(Action::Insert {
            ty: visit,
            fields: vec![(f(0), Expr::bound(s(0), f(0))), (f(1), Expr::value(0.0))],
        }))
        .unwrap();
    Ctx {
        net: Network::shared(rules).unwrap(),
        visit,
        tick,
    }
}

/// Provides `score` from a table by user; an unknown user is an error.
#[derive(Default)]
struct Features {
    scores: HashMap<&'static str, Value>,
    calls: Vec<(TypeId, usize, Vec<Value>)>,
}

impl Host for Features {
    fn provide(&mut self, ty: TypeId, context: usize, fact: &mut [Value]) -> Result<(), String> {
        self.calls.push((ty, context, fact.to_vec()));
        let user = match &fact[0] {
            Value::Str(u) => u.to_string(),
            other => return Err(format!("no user in {other}")),
        };
        match self.scores.get(user.as_str()) {
            Some(v) => {
                fact[1] = v.clone();
                Ok(())
            }
            None => Err(format!("unknown user {user}")),
        }
    }
}

fn features(c: &Ctx) -> Session<Features> {
    let scores = [
        ("u1", Value::Float(0.9)),
        ("u2", Value::Float(0.2)),
        ("typo", Value::from("high")),
    ]
    .into_iter()
    .collect();
    Session::with_host(
        c.net.clone(),
        Features {
            scores,
            calls: vec![],
        },
    )
}

fn hot<H: Host>(session: &Session<H>) -> Vec<(Value, Value)> {
    session
        .decisions()
        .filter(|d| d.action() == "hot")
        .map(|d| {
            (
                d.arg("user").unwrap().clone(),
                d.arg("score").unwrap().clone(),
            )
        })
        .collect()
}

/// `insert` calls `provide` for the type's context with its field nulled
/// (though the caller gave a value); the provided value is what the fact
/// holds and what the alpha test `score > 0.8` matches.
#[test]
fn provider_fills_fields_that_rules_match() {
    let c = ctx();
    let mut session = features(&c);
    let a = session
        .insert(c.visit, vec![Value::from("u1"), Value::Float(0.1)])
        .unwrap();
    let b = session
        .insert(c.visit, vec![Value::from("u2"), Value::Float(0.99)])
        .unwrap();
    assert_eq!(
        session.host().calls,
        vec![
            (c.visit, 0, vec![Value::from("u1"), Value::Null]),
            (c.visit, 0, vec![Value::from("u2"), Value::Null]),
        ]
    );
    assert_eq!(session.fact(a).unwrap().1[1], Value::Float(0.9));
    assert_eq!(session.fact(b).unwrap().1[1], Value::Float(0.2));
    session.fire().unwrap();
    assert_eq!(
        hot(&session),
        vec![(Value::from("u1"), Value::Float(0.9))],
        "only the provided 0.9 passes, not the given 0.99"
    );
}

/// A provider's error, or a value of the wrong type from it, refuses the
/// insert with `FactError::Context` naming the type and the context, and
/// leaves the session unchanged: facts, activations and timers.
#[test]
fn provider_failure_refuses_the_insert() {
    let c = ctx();
    let mut session = features(&c);
    session
        .insert(c.visit, vec![Value::from("u1"), Value::Null])
        .unwrap();
    let (count, pending, timer) = (
        session.fact_count(),
        session.pending(),
        session.next_timer(),
    );
    assert_eq!(pending.len(), 1);
    for user in ["nobody", "typo"] {
        let err = session
            .insert(c.visit, vec![Value::from(user), Value::Float(1.0)])
            .unwrap_err();
        match &err {
            FactError::Context {
                ty,
                context,
                message,
            } => {
                assert_eq!((ty.as_str(), context.as_str()), ("visit", "features"));
                if user == "nobody" {
                    assert!(message.contains("unknown user nobody"), "{message}");
                } else {
                    assert!(message.contains("score"), "names the field: {message}");
                }
            }
            other => panic!("{user}: expected a context error, got {other:?}"),
        }
        assert!(err.to_string().contains("features"), "{err}");
        assert_eq!(session.fact_count(), count, "{user}");
        assert_eq!(session.pending(), pending, "{user}");
        assert_eq!(session.next_timer(), timer, "{user}");
    }
    assert_eq!(session.fire().unwrap(), 1);
}

/// With no host (`NoHost`), inserting a fact of a type with a context
/// provider is refused with a message saying there is no provider.
#[test]
fn no_host_refuses_context_types() {
    let c = ctx();
    let mut session = Session::new(c.net.clone());
    let err = session
        .insert(c.visit, vec![Value::from("u1"), Value::Float(0.9)])
        .unwrap_err();
    match &err {
        FactError::Context {
            ty,
            context,
            message,
        } => {
            assert_eq!((ty.as_str(), context.as_str()), ("visit", "features"));
            assert!(message.contains("no provider"), "{message}");
        }
        other => panic!("expected a context error, got {other:?}"),
    }
    assert_eq!(session.fact_count(), 0);
    // Types without providers still go in.
    session.insert(c.tick, vec![Value::from("u1")]).unwrap();
    assert_eq!(session.fact_count(), 1);
}

/// A fact inserted by a rule's `insert` action goes through the provider
/// too (its given `score` nulled first), and rules match the provided value.
#[test]
fn rule_inserts_go_through_the_provider() {
    let c = ctx();
    let mut session = features(&c);
    session.insert(c.tick, vec![Value::from("u1")]).unwrap();
    assert!(session.host().calls.is_empty(), "tick has no provider");
    assert_eq!(session.fire().unwrap(), 2, "spawn, then hot");
    assert_eq!(
        session.host().calls,
        vec![(c.visit, 0, vec![Value::from("u1"), Value::Null])]
    );
    assert_eq!(hot(&session), vec![(Value::from("u1"), Value::Float(0.9))]);

    // A rule insert the provider refuses fails the rule.
    session.insert(c.tick, vec![Value::from("nobody")]).unwrap();
    let err = session.fire().unwrap_err();
    assert!(
        matches!(
            &err,
            SessionError::Action { rule, error: FactError::Context { .. } } if rule == "spawn"
        ),
        "got {err:?}"
    );
}

// ---------------------------------------------------------------------------
// 6. Facts by key against a brute-force scan.
// ---------------------------------------------------------------------------

const KEYS: [&str; 3] = ["k0", "k1", "k2"];

#[derive(Debug, Clone)]
enum Op {
    /// Insert a fact of type `t` (0, 1: keyed; 2: not keyed) with key `k`.
    Insert { t: u8, k: u8, n: i64 },
    /// Retract the `i`-th live fact (modulo).
    Retract { i: u8 },
    /// Change the key of the `i`-th live fact.
    ModifyKey { i: u8, k: u8 },
    /// Change the other field of the `i`-th live fact.
    ModifyN { i: u8, n: i64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..3, 0u8..3, 0i64..3).prop_map(|(t, k, n)| Op::Insert { t, k, n }),
        1 => any::<u8>().prop_map(|i| Op::Retract { i }),
        2 => (any::<u8>(), 0u8..3).prop_map(|(i, k)| Op::ModifyKey { i, k }),
        1 => (any::<u8>(), 0i64..3).prop_map(|(i, n)| Op::ModifyN { i, n }),
    ]
}

/// `acct(user, n)` and `team(user, n)` keyed on `user`, `note(user, n)`
/// not keyed; one rule, so that the facts run through a network.
fn key_types() -> (Arc<Network>, [TypeId; 3]) {
    let mut schema = Schema::new();
    let fields = [str_field("user"), ("n", ValueType::Int, false)];
    let acct = schema
        .add(
            ty("acct", FactKind::Fact, &fields)
                .with_key("user")
                .unwrap(),
        )
        .unwrap();
    let team = schema
        .add(
            ty("team", FactKind::Fact, &fields)
                .with_key("user")
                .unwrap(),
        )
        .unwrap();
    let note = schema.add(ty("note", FactKind::Fact, &fields)).unwrap();
    let mut rules = RuleSet::new(schema);
    rules
        .add_rule(
            Rule::new("r")
                .when(pattern(acct))
                .then(emit("a", &[("user", Expr::bound(s(0), f(0)))])),
        )
        .unwrap();
    (Network::shared(rules).unwrap(), [acct, team, note])
}

fn check_by_key(session: &Session, types: &[TypeId; 3]) -> Result<(), TestCaseError> {
    for &t in &types[..2] {
        for k in KEYS {
            let key = Value::from(k);
            let mut got: Vec<(FactId, Vec<Value>)> = session
                .memory()
                .by_key(t, &key)
                .map(|(id, v)| (id, v.to_vec()))
                .collect();
            let mut want: Vec<(FactId, Vec<Value>)> = session
                .facts()
                .filter(|(_, ty, v)| *ty == t && v[0] == key)
                .map(|(id, _, v)| (id, v.to_vec()))
                .collect();
            got.sort_by_key(|(id, _)| *id);
            want.sort_by_key(|(id, _)| *id);
            prop_assert_eq!(got, want, "type {:?}, key {}", t, k);
        }
    }
    // The unkeyed type is not indexed.
    for k in KEYS {
        prop_assert_eq!(
            session.memory().by_key(types[2], &Value::from(k)).count(),
            0
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(Config { failure_persistence: None, ..Config::with_cases(64) })]

    /// After every insert, retract and modify (of the key or of another
    /// field), `Memory::by_key` holds exactly the live facts of the type
    /// with that key, as a scan of `Session::facts()` finds them.
    #[test]
    fn by_key_agrees_with_a_scan(ops in proptest::collection::vec(op(), 1..40)) {
        let (net, types) = key_types();
        let mut session = Session::new(net);
        let mut live: Vec<FactId> = Vec::new();
        for op in ops {
            match op {
                Op::Insert { t, k, n } => {
                    let id = session
                        .insert(types[t as usize], vec![Value::from(KEYS[k as usize]), Value::Int(n)])
                        .unwrap();
                    live.push(id);
                }
                Op::Retract { i } if !live.is_empty() => {
                    let id = live.remove(i as usize % live.len());
                    session.retract(id).unwrap();
                }
                Op::ModifyKey { i, k } if !live.is_empty() => {
                    let id = live[i as usize % live.len()];
                    session.modify(id, &[(f(0), Value::from(KEYS[k as usize]))]).unwrap();
                }
                Op::ModifyN { i, n } if !live.is_empty() => {
                    let id = live[i as usize % live.len()];
                    session.modify(id, &[(f(1), Value::Int(n))]).unwrap();
                }
                _ => {}
            }
            session.fire().unwrap();
            check_by_key(&session, &types)?;
        }
        // And after a snapshot round trip.
        let restored = Session::restore(session.network().clone(), NoHost, &session.snapshot()).unwrap();
        check_by_key(&restored, &types)?;
    }
}

/// Facts by key are listed oldest first, and a restored session lists them
/// in the same order, so that an upsert there changes the same fact (the
/// first by key) as in the original: here `b`, inserted before `c`, where
/// `c` took the slot of the retracted `a`.
#[test]

fn by_key_order_and_upsert_target_survive_snapshot() {
    let k = keyed();
    let mut session = stepper(&k, k.state);
    let u = Value::from("u1");
    let fact = |st: &str| vec![u.clone(), Value::from(st)];
    let a = session.insert(k.state, fact("a")).unwrap();
    let b = session.insert(k.state, fact("a")).unwrap();
    session.retract(a).unwrap();
    let c = session.insert(k.state, fact("a")).unwrap();
    session.fire().unwrap();
    let order = |s: &Session<Stepper>| -> Vec<FactId> {
        s.memory().by_key(k.state, &u).map(|(id, _)| id).collect()
    };
    assert_eq!(order(&session), vec![b, c], "oldest first");

    let host = Stepper {
        state: k.state,
        target: k.state,
        saw: vec![],
    };
    let mut restored = Session::restore(k.net.clone(), host, &session.snapshot()).unwrap();
    assert_eq!(order(&restored), vec![b, c], "oldest first after restore");

    for s in [&mut session, &mut restored] {
        s.insert(k.tick, vec![u.clone()]).unwrap();
        s.fire().unwrap();
        assert_eq!(entered(s), vec![vec![b]], "the upsert changed the oldest");
    }
}

/// Only the actions a host says it decides reach `decide`: the others are
/// carried out as made, with no call (what keeps plain hosts at no cost).
#[test]
fn only_decided_actions_reach_the_host() {
    struct Picky(Vec<String>);
    impl Host for Picky {
        fn decides(&self, action: &str, _has_branches: bool) -> bool {
            action == "asked"
        }
        fn decide(&mut self, d: DecisionRef<'_>, _memory: Memory<'_>) -> Outcome {
            self.0.push(d.action().to_string());
            Outcome::suppressed("no")
        }
    }
    let mut schema = Schema::new();
    let order = schema
        .add(ty("order", FactKind::Event, &[str_field("user")]))
        .unwrap();
    let mut rules = RuleSet::new(schema);
    rules
        .add_rule(
            Rule::new("both")
                .when(pattern(order))
                .then(emit("asked", &[]))
                .then(emit("unasked", &[])),
        )
        .unwrap();
    let net = Network::shared(rules).unwrap();
    let mut session = Session::with_host(net, Picky(Vec::new()));
    session.insert(order, vec![Value::from("u1")]).unwrap();
    session.fire().unwrap();
    let got: Vec<(String, Status)> = session
        .decisions()
        .map(|d| (d.action().to_string(), d.status().clone()))
        .collect();
    assert_eq!(
        got,
        [
            ("asked".to_string(), Status::Suppressed("no".into())),
            ("unasked".to_string(), Status::Done),
        ]
    );
    assert_eq!(session.host().0, ["asked"]);
}
