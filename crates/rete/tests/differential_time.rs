//! Differential tests of time: the engine's matches and decisions must be
//! those of the brute-force reference in `reference_time/mod.rs`, which
//! follows `docs/time.md`, over random schemas of events and facts, random
//! timed rules (windows, `after`, `before`, absence with and without
//! `within` and before a binding, inactivity, `exists`, aggregates over
//! windows, delayed actions) and random
//! sequences of inserts (on time, out of order, late: refused, or taken at
//! the watermark under `LatePolicy::AtWatermark`), modifies, retracts and
//! clock advances.
//!
//! The session is driven so that every millisecond is observed: advancing
//! the clock by `k` is `k` calls of `advance_to(now + 1)`. After every call
//! (an insert, modify or retract followed by `fire`, or a one-millisecond
//! advance) the test compares:
//!
//! 1. `Session::matches` with the reference's matches over its own copy of
//!    working memory, which keeps every event ever inserted and not
//!    retracted (expiry must be invisible); aggregate slots compare by the
//!    values of their bindings;
//! 2. the decisions made by the call, as a multiset of (rule, action, facts,
//!    arguments, time), with those the reference derives: a match that
//!    appears fires once, then; a delayed action runs at its due instant,
//!    stamped with it, unless a change of working memory ended its match
//!    first (with `recheck`);
//! 3. working memory: every live fact is the reference's, with its event
//!    time; every event the engine dropped is one that can no longer take
//!    part in any match, and, for types some pattern reads, every event
//!    that can no longer take part is gone (expiry is exact);
//! 4. `next_timer`: when something fires at an instant, the engine said,
//!    just before, that a timer was due by then.
//!
//! In a quarter of the cases the clock moves by one `advance_by` call per
//! operation instead, and the reference still visits every millisecond:
//! the engine must find by itself the instants its timers fall due.
//!
//! The reference looks at working memory once per instant, with everything
//! due then applied: windows include both ends (an absence `after s within
//! D` is decided at `t(s) + D + 1ms`, plus the lateness), the events leaving
//! windows at one instant leave together, and an aggregate whose value comes
//! back to where it was within an instant keeps its match.
//!
//! A modify is a retraction followed by an insertion that keeps the fact's
//! id and its place in the insertion order: every match the retraction ends
//! (one binding the fact, or one it takes part in through a `not`, an
//! `exists` or an aggregate's group) ends, even if the insertion makes it
//! again, and a match made again is a new one that fires.
//!
//! 256 cases by default; set `PROPTEST_CASES` for more.

mod common;
mod reference_time;

use common::{
    config, differences, expr_text, fid, fields_text, slot, values_text, FieldSpec, Kind, Values,
    CMP_OPS,
};
use nudge_core::{Duration, FactKind, FactType, Schema, Timestamp, TypeId, Value, ValueType};
use nudge_rete::ir::{
    Action, AggFunc, Aggregate, Arg, CmpOp, Condition, Emit, Expr, Pattern, Rule, RuleId, RuleSet,
    Window,
};
use nudge_rete::{Clock, FactError, FactId, LatePolicy, Network, NoHost, Session, SessionConfig};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use reference_time::{Bound, Match, World};
use std::fmt::Write;
use std::sync::Arc;

// ---------------------------------------------------------------------------
// Generated cases: raw choices, resolved against the schema when built.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct TypeSpec {
    /// Data fields after `f0` (an int, always present: the usual join key).
    fields: Vec<FieldSpec>,
    /// A `ts` time field, and whether it is optional (null: inserted now).
    time: Option<bool>,
}

/// `field op constant`.
#[derive(Debug, Clone, Copy)]
struct AlphaSpec {
    field: u8,
    op: u8,
    c: u8,
}

/// `field == $slot.other`.
#[derive(Debug, Clone, Copy)]
struct JoinSpec {
    slot: u8,
    field: u8,
    other: u8,
}

#[derive(Debug, Clone)]
struct PatSpec {
    ty: u8,
    test: Option<AlphaSpec>,
    join: Option<JoinSpec>,
}

/// A time qualifier: `kind` picks plain, `within D`, `after s within D`,
/// `after s` or `before s within D`, as the condition allows; `d` is 1 to
/// 8 ms.
#[derive(Debug, Clone, Copy)]
struct WinSpec {
    kind: u8,
    d: u8,
    slot: u8,
}

#[derive(Debug, Clone)]
struct AggSpec {
    func: u8,
    source: PatSpec,
    value: u8,
    by: Option<u8>,
    /// Operator, constant, and whether the right side is an earlier
    /// binding's field.
    having: Option<(u8, u8, bool)>,
    within: Option<u8>,
}

#[derive(Debug, Clone)]
enum CondSpec {
    Pattern(PatSpec, WinSpec),
    Not(PatSpec, WinSpec),
    Exists(PatSpec, WinSpec),
    Aggregate(AggSpec),
}

/// An emit, now or after `d` ms (with or without `recheck`).
#[derive(Debug, Clone, Copy)]
struct ActSpec {
    delayed: Option<(u8, bool)>,
}

#[derive(Debug, Clone)]
struct RuleSpec {
    conditions: Vec<CondSpec>,
    actions: Vec<ActSpec>,
}

#[derive(Debug, Clone)]
enum Op {
    /// An event; `time` picks the time field's value (see `event_time`).
    Event {
        ty: u8,
        values: [u8; 3],
        time: u8,
    },
    Fact {
        values: [u8; 3],
    },
    Modify {
        event: bool,
        which: u8,
        field: u8,
        value: u8,
    },
    Retract {
        event: bool,
        which: u8,
    },
    /// Advance the clock by 1 to 12 ms, a millisecond at a time.
    Advance {
        ms: u8,
    },
    /// Go on with a session restored from a snapshot of this one.
    Snapshot,
}

#[derive(Debug, Clone)]
struct Case {
    events: Vec<TypeSpec>,
    fact: Vec<FieldSpec>,
    /// Lateness 3 ms, else 0.
    late3: bool,
    /// `LatePolicy::AtWatermark` (a late event is taken at the watermark),
    /// else `LatePolicy::Reject`.
    at_watermark: bool,
    /// Advance in one call (`advance_by`), not a millisecond at a time.
    jump: bool,
    rules: Vec<RuleSpec>,
    ops: Vec<Op>,
}

fn field_spec() -> impl Strategy<Value = FieldSpec> {
    let kind = prop_oneof![4 => Just(Kind::Int), 3 => Just(Kind::Str), 2 => Just(Kind::Float)];
    (kind, prop::bool::weighted(0.25)).prop_map(|(kind, optional)| FieldSpec { kind, optional })
}

fn type_spec() -> impl Strategy<Value = TypeSpec> {
    (
        prop::collection::vec(field_spec(), 1..=2),
        prop::option::weighted(0.6, any::<bool>()),
    )
        .prop_map(|(fields, time)| TypeSpec { fields, time })
}

fn alpha_spec() -> impl Strategy<Value = AlphaSpec> {
    any::<[u8; 3]>().prop_map(|[field, op, c]| AlphaSpec { field, op, c })
}

fn join_spec() -> impl Strategy<Value = JoinSpec> {
    any::<[u8; 3]>().prop_map(|[slot, field, other]| JoinSpec { slot, field, other })
}

fn pat_spec() -> impl Strategy<Value = PatSpec> {
    (
        any::<u8>(),
        prop::option::weighted(0.3, alpha_spec()),
        prop::option::weighted(0.75, join_spec()),
    )
        .prop_map(|(ty, test, join)| PatSpec { ty, test, join })
}

fn win_spec() -> impl Strategy<Value = WinSpec> {
    (any::<u8>(), 0u8..8, any::<u8>()).prop_map(|(kind, d, slot)| WinSpec { kind, d, slot })
}

fn agg_spec() -> impl Strategy<Value = AggSpec> {
    (
        any::<u8>(),
        pat_spec(),
        any::<u8>(),
        prop::option::weighted(0.4, any::<u8>()),
        prop::option::weighted(0.6, (any::<u8>(), any::<u8>(), prop::bool::weighted(0.15))),
        prop::option::weighted(0.6, 0u8..8),
    )
        .prop_map(|(func, source, value, by, having, within)| AggSpec {
            func,
            source,
            value,
            by,
            having,
            within,
        })
}

/// A pattern, a `not` or an `exists` with these weights, or an aggregate
/// (weight 2).
fn weighted_cond_spec(pattern: u32, not: u32, exists: u32) -> impl Strategy<Value = CondSpec> {
    prop_oneof![
        pattern => (pat_spec(), win_spec()).prop_map(|(p, w)| CondSpec::Pattern(p, w)),
        not => (pat_spec(), win_spec()).prop_map(|(p, w)| CondSpec::Not(p, w)),
        exists => (pat_spec(), win_spec()).prop_map(|(p, w)| CondSpec::Exists(p, w)),
        2 => agg_spec().prop_map(CondSpec::Aggregate),
    ]
}

fn cond_spec() -> impl Strategy<Value = CondSpec> {
    weighted_cond_spec(6, 3, 1)
}

/// The first condition: mostly a pattern, so that later ones have an
/// event to join with and to come `after`.
fn first_cond_spec() -> impl Strategy<Value = CondSpec> {
    weighted_cond_spec(8, 1, 1)
}

fn act_spec() -> impl Strategy<Value = ActSpec> {
    prop::option::weighted(0.5, (0u8..8, any::<bool>())).prop_map(|delayed| ActSpec { delayed })
}

fn rule_spec() -> impl Strategy<Value = RuleSpec> {
    (
        first_cond_spec(),
        prop::collection::vec(cond_spec(), 0..=2),
        prop::collection::vec(act_spec(), 1..=2),
    )
        .prop_map(|(first, rest, actions)| RuleSpec {
            conditions: std::iter::once(first).chain(rest).collect(),
            actions,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<u8>(), any::<[u8; 3]>(), any::<u8>())
            .prop_map(|(ty, values, time)| Op::Event { ty, values, time }),
        2 => any::<[u8; 3]>().prop_map(|values| Op::Fact { values }),
        2 => (any::<bool>(), any::<u8>(), any::<u8>(), any::<u8>())
            .prop_map(|(event, which, field, value)| Op::Modify { event, which, field, value }),
        1 => (any::<bool>(), any::<u8>()).prop_map(|(event, which)| Op::Retract { event, which }),
        4 => (1u8..=12).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Snapshot),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(type_spec(), 2..=3),
        prop::collection::vec(field_spec(), 1..=2),
        any::<bool>(),
        prop::bool::weighted(0.25),
        prop::bool::weighted(0.25),
        prop::collection::vec(rule_spec(), 1..=4),
        prop::collection::vec(op(), 1..=80),
    )
        .prop_map(
            |(events, fact, late3, at_watermark, jump, rules, ops)| Case {
                events,
                fact,
                late3,
                at_watermark,
                jump,
                rules,
                ops,
            },
        )
}

// ---------------------------------------------------------------------------
// Resolving choices into values, expressions and rules.
// ---------------------------------------------------------------------------

/// The constants of the generated tests and facts.
const VALUES: Values = Values {
    ints: 3,
    strings: &["a", "b"],
    floats: &[0.5, 1.0, 2.5],
    null_every: 5,
};

fn ms(d: u8) -> Duration {
    Duration::from_millis(1 + i64::from(d % 8))
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

/// One type of the generated schema.
#[derive(Debug, Clone)]
struct TypeInfo {
    event: bool,
    /// Data fields, `f0` first; the time field, if any, comes after them.
    fields: Vec<FieldSpec>,
    /// Whether the type has a `ts` time field, and whether it is optional.
    time: Option<bool>,
}

/// What a rule's slot holds while its rule is built.
#[derive(Debug, Clone)]
enum SlotKind {
    Item { ty: usize },
    Group(Vec<Kind>),
}

struct Builder {
    types: Vec<TypeInfo>,
}

impl Builder {
    fn new(case: &Case) -> Self {
        let f0 = FieldSpec {
            kind: Kind::Int,
            optional: false,
        };
        let mut types: Vec<TypeInfo> = case
            .events
            .iter()
            .map(|t| TypeInfo {
                event: true,
                fields: std::iter::once(f0)
                    .chain(t.fields.iter().copied())
                    .collect(),
                time: t.time,
            })
            .collect();
        types.push(TypeInfo {
            event: false,
            fields: std::iter::once(f0)
                .chain(case.fact.iter().copied())
                .collect(),
            time: None,
        });
        Builder { types }
    }

    fn events(&self) -> usize {
        self.types.len() - 1
    }

    fn fact_type(&self) -> usize {
        self.types.len() - 1
    }

    /// Mostly events, sometimes the fact type.
    fn ty(&self, raw: u8) -> usize {
        let n = self.events();
        let r = raw as usize % (2 * n + 1);
        if r < 2 * n {
            r % n
        } else {
            self.fact_type()
        }
    }

    fn event_ty(&self, raw: u8) -> usize {
        raw as usize % self.events()
    }

    fn schema(&self) -> Schema {
        let mut schema = Schema::new();
        for (t, info) in self.types.iter().enumerate() {
            let (name, kind) = if info.event {
                (format!("e{t}"), FactKind::Event)
            } else {
                ("fact".to_string(), FactKind::Fact)
            };
            let mut ft = FactType::new(name, kind);
            for (i, f) in info.fields.iter().enumerate() {
                ft = ft.field(format!("f{i}"), f.kind.value_type(), f.optional);
            }
            if let Some(optional) = info.time {
                ft = ft
                    .field("ts", ValueType::Timestamp, optional)
                    .with_time("ts")
                    .expect("ts is a timestamp");
            }
            schema.add(ft).expect("distinct type names");
        }
        schema
    }

    fn slot_kinds(&self, s: &SlotKind) -> Vec<Kind> {
        match s {
            SlotKind::Item { ty } => self.types[*ty].fields.iter().map(|f| f.kind).collect(),
            SlotKind::Group(kinds) => kinds.clone(),
        }
    }

    fn alpha(&self, ty: usize, spec: AlphaSpec) -> Expr {
        let fields = &self.types[ty].fields;
        let i = spec.field as usize % fields.len();
        let x = Expr::own(fid(i));
        let v = VALUES.constant(fields[i].kind, spec.c);
        match spec.op % 6 {
            0 => x.eq(Expr::Const(v)),
            1 => x.cmp(CmpOp::Ne, Expr::Const(v)),
            2 => x.lt(Expr::Const(v)),
            3 => x.cmp(CmpOp::Ge, Expr::Const(v)),
            4 => x.is_in(vec![v, VALUES.constant(fields[i].kind, spec.c / 3 + 1)]),
            _ => x.cmp(CmpOp::Le, Expr::Const(v)),
        }
    }

    fn pattern(&self, ty: usize, spec: &PatSpec, slots: &[SlotKind]) -> Pattern {
        let mut p = Pattern::new(TypeId::new(ty as u32));
        if let Some(a) = spec.test {
            p = p.test(self.alpha(ty, a));
        }
        if let (Some(j), false) = (spec.join, slots.is_empty()) {
            let s = j.slot as usize % slots.len();
            let theirs = self.slot_kinds(&slots[s]);
            let other = j.other as usize % theirs.len();
            let fields = &self.types[ty].fields;
            let same: Vec<usize> = (0..fields.len())
                .filter(|&i| fields[i].kind == theirs[other])
                .collect();
            if !same.is_empty() {
                let mine = same[j.field as usize % same.len()];
                p = p.test(Expr::own(fid(mine)).eq(Expr::bound(slot(s), fid(other))));
            }
        }
        p
    }

    /// The earlier slots that bind events: what `after` may name.
    fn event_slots(&self, slots: &[SlotKind]) -> Vec<usize> {
        (0..slots.len())
            .filter(|&s| matches!(slots[s], SlotKind::Item { ty } if self.types[ty].event))
            .collect()
    }

    /// A window for a pattern of `kind` (0: pattern, 1: not, 2: exists).
    fn window(&self, ty: usize, w: WinSpec, slots: &[SlotKind], kind: u8) -> Window {
        if !self.types[ty].event {
            return Window::default();
        }
        let events = self.event_slots(slots);
        let after = (!events.is_empty()).then(|| slot(events[w.slot as usize % events.len()]));
        let d = ms(w.d);
        // Choices, by condition kind: 0 plain, 1 within, 2 after-within, 3
        // after (for a `not`: an absence that never closes, true while no
        // blocker came after `s`), 4 before-within.
        let choice = match kind {
            0 => [0, 0, 0, 1, 1, 1, 2, 2, 3, 4, 4][w.kind as usize % 11],
            1 => [0, 1, 1, 1, 2, 2, 2, 2, 3, 3, 4, 4][w.kind as usize % 12],
            _ => [0, 1, 1, 1, 2, 2, 3, 4][w.kind as usize % 8],
        };
        match (choice, after) {
            (0, _) => Window::default(),
            (2, Some(s)) => Window::after_within(s, d),
            (3, Some(s)) => Window::after(s),
            (4, Some(s)) => Window::before_within(s, d),
            _ => Window::within(d),
        }
    }

    fn aggregate(&self, spec: &AggSpec, slots: &[SlotKind]) -> (Aggregate, Vec<Kind>) {
        let ty = self.ty(spec.source.ty);
        let info = &self.types[ty];
        let source = self.pattern(ty, &spec.source, slots);
        let required: Vec<usize> = (0..info.fields.len())
            .filter(|&i| !info.fields[i].optional)
            .collect();
        let numeric: Vec<usize> = required
            .iter()
            .copied()
            .filter(|&i| info.fields[i].kind != Kind::Str)
            .collect();
        let func = [
            AggFunc::Count,
            AggFunc::CountDistinct,
            AggFunc::Sum,
            AggFunc::Min,
            AggFunc::Max,
            AggFunc::Avg,
        ][spec.func as usize % 6];
        let (value, value_kind) = match func {
            AggFunc::Count => (None, None),
            AggFunc::CountDistinct => {
                let f = required[spec.value as usize % required.len()];
                (Some(f), Some(info.fields[f].kind))
            }
            _ => {
                let f = numeric[spec.value as usize % numeric.len()];
                (Some(f), Some(info.fields[f].kind))
            }
        };
        let result = match (func, value_kind) {
            (AggFunc::Count | AggFunc::CountDistinct, _) => Kind::Int,
            (AggFunc::Avg, _) => Kind::Float,
            (_, Some(k)) => k,
            (_, None) => Kind::Int,
        };
        let by: Vec<usize> = match spec.by {
            Some(b) => {
                let keys: Vec<usize> = required
                    .iter()
                    .copied()
                    .filter(|&i| info.fields[i].kind != Kind::Float)
                    .collect();
                vec![keys[b as usize % keys.len()]]
            }
            None => Vec::new(),
        };
        let having = spec.having.map(|(op, c, bound)| {
            let op = CMP_OPS[op as usize % CMP_OPS.len()];
            // An int field of an earlier binding, when asked for and there is one.
            let earlier = slots.iter().enumerate().find_map(|(s, k)| {
                let kinds = self.slot_kinds(k);
                let f = kinds.iter().position(|k| *k == Kind::Int)?;
                let optional = match k {
                    SlotKind::Item { ty } => self.types[*ty].fields[f].optional,
                    SlotKind::Group(_) => false,
                };
                (!optional).then(|| Expr::bound(slot(s), fid(f)))
            });
            let rhs = match (bound && result == Kind::Int, earlier) {
                (true, Some(e)) => e,
                _ => match result {
                    Kind::Int => Expr::value(i64::from(c % 4)),
                    _ => Expr::Const(Value::Float([0.5, 1.0, 1.5, 2.5][c as usize % 4])),
                },
            };
            (op, rhs)
        });
        let within = match (self.types[ty].event, spec.within) {
            (true, Some(d)) => Some(ms(d)),
            _ => None,
        };
        let mut kinds: Vec<Kind> = by.iter().map(|&f| info.fields[f].kind).collect();
        kinds.push(result);
        let agg = Aggregate {
            func,
            source,
            value: value.map(|f| Expr::own(fid(f))),
            by: by.into_iter().map(fid).collect(),
            having,
            within,
        };
        (agg, kinds)
    }

    fn rule(&self, i: usize, spec: &RuleSpec) -> Rule {
        let mut rule = Rule::new(format!("r{i}"));
        let mut slots: Vec<SlotKind> = Vec::new();
        for cond in &spec.conditions {
            let c = match cond {
                CondSpec::Pattern(p, w) => {
                    let ty = self.ty(p.ty);
                    let pattern = self
                        .pattern(ty, p, &slots)
                        .window(self.window(ty, *w, &slots, 0));
                    slots.push(SlotKind::Item { ty });
                    Condition::Pattern(pattern)
                }
                CondSpec::Not(p, w) => {
                    let ty = self.ty(p.ty);
                    Condition::Not(
                        self.pattern(ty, p, &slots)
                            .window(self.window(ty, *w, &slots, 1)),
                    )
                }
                CondSpec::Exists(p, w) => {
                    let ty = self.event_ty(p.ty);
                    Condition::Exists(
                        self.pattern(ty, p, &slots)
                            .window(self.window(ty, *w, &slots, 2)),
                    )
                }
                CondSpec::Aggregate(a) => {
                    let (agg, kinds) = self.aggregate(a, &slots);
                    slots.push(SlotKind::Group(kinds));
                    Condition::Aggregate(agg)
                }
            };
            rule = rule.when(c);
        }
        // Arguments: field f0 of each fact slot, every field of each group.
        let mut args = Vec::new();
        for (s, k) in slots.iter().enumerate() {
            match k {
                SlotKind::Item { .. } => args.push((
                    format!("s{s}").into(),
                    Arg::Expr(Expr::bound(slot(s), fid(0))),
                )),
                SlotKind::Group(kinds) => {
                    for j in 0..kinds.len() {
                        args.push((
                            format!("s{s}_{j}").into(),
                            Arg::Expr(Expr::bound(slot(s), fid(j))),
                        ));
                    }
                }
            }
        }
        for (k, a) in spec.actions.iter().enumerate() {
            let emit = |name: String| {
                Action::Emit(Emit {
                    action: name.into(),
                    args: args.clone(),
                    branches: Vec::new(),
                })
            };
            rule = rule.then(match a.delayed {
                None => emit(format!("now{k}")),
                Some((d, recheck)) => Action::Delayed {
                    after: ms(d),
                    recheck,
                    action: Box::new(emit(format!(
                        "later{k}{}",
                        if recheck { "" } else { "_regardless" }
                    ))),
                },
            });
        }
        rule
    }

    fn rules(&self, specs: &[RuleSpec]) -> RuleSet {
        let mut rules = RuleSet::new(self.schema());
        for (i, spec) in specs.iter().enumerate() {
            // A rule the model refuses is left out.
            let _ = rules.add_rule(self.rule(i, spec));
        }
        rules
    }
}

// ---------------------------------------------------------------------------
// Describing cases for failure messages.
// ---------------------------------------------------------------------------

fn type_name(rules: &RuleSet, ty: TypeId) -> String {
    rules.schema().get(ty).name().to_string()
}

fn pattern_text(rules: &RuleSet, p: &Pattern) -> String {
    common::pattern_text(p, &type_name(rules, p.ty), "")
}

fn action_text(a: &Action) -> String {
    match a {
        Action::Emit(e) => {
            let args: Vec<String> = e
                .args
                .iter()
                .map(|(n, a)| match a {
                    Arg::Expr(x) => format!("{n}: {}", expr_text(x)),
                    other => format!("{n}: {other:?}"),
                })
                .collect();
            format!("{}({})", e.action, args.join(", "))
        }
        Action::Delayed {
            after,
            recheck,
            action,
        } => format!(
            "after {}ms{} {}",
            after.as_millis(),
            if *recheck { "" } else { " regardless" },
            action_text(action)
        ),
        other => format!("{other:?}"),
    }
}

fn describe_rules(rules: &RuleSet) -> String {
    let mut out = String::new();
    for t in rules.schema().types() {
        let kind = match t.kind() {
            FactKind::Event => "event",
            _ => "fact",
        };
        let time = t
            .time()
            .map(|f| format!(" time {}", t.field_def(f).name))
            .unwrap_or_default();
        let _ = writeln!(out, "  {kind} {}({}){time}", t.name(), fields_text(t));
    }
    for (i, r) in rules.rules().iter().enumerate() {
        let _ = write!(
            out,
            "  rule {} (r{i}, horizon {}ms) when",
            r.name,
            reference_time::horizon(r)
        );
        for cond in &r.conditions {
            let text = match cond {
                Condition::Pattern(p) => pattern_text(rules, p),
                Condition::Not(p) => format!("not {}", pattern_text(rules, p)),
                Condition::Exists(p) => format!("exists {}", pattern_text(rules, p)),
                Condition::Test(e) => format!("test {}", expr_text(e)),
                Condition::Aggregate(a) => {
                    let value = a.value.as_ref().map(expr_text).unwrap_or_default();
                    let by: Vec<String> = a.by.iter().map(|f| format!("f{}", f.index())).collect();
                    let mut t = format!(
                        "{}({value}) of {}",
                        a.func.name(),
                        pattern_text(rules, &a.source)
                    );
                    if !by.is_empty() {
                        let _ = write!(t, " by {}", by.join(", "));
                    }
                    if let Some(d) = a.within {
                        let _ = write!(t, " within {}ms", d.as_millis());
                    }
                    if let Some((op, e)) = &a.having {
                        let _ = write!(t, " having {} {}", op.symbol(), expr_text(e));
                    }
                    t
                }
            };
            let _ = write!(out, "\n      {text}");
        }
        for a in &r.actions {
            let _ = write!(out, "\n    then {}", action_text(a));
        }
        out.push('\n');
    }
    out
}

fn lines<T: std::fmt::Debug>(xs: &[T]) -> String {
    if xs.is_empty() {
        return "    (none)\n".into();
    }
    xs.iter().map(|x| format!("    {x:?}\n")).collect()
}

// ---------------------------------------------------------------------------
// Comparable views of matches and decisions.
// ---------------------------------------------------------------------------

/// Floats rounded, so that an average computed another way compares equal.
fn norm(v: &Value) -> Value {
    match v {
        Value::Float(x) => Value::Float((x * 1e9).round() / 1e9),
        other => other.clone(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum SlotView {
    Fact(FactId),
    Group(Vec<Value>),
}

type MatchView = (RuleId, Vec<SlotView>);

fn view_of(m: &Match) -> MatchView {
    let slots = m
        .slots
        .iter()
        .map(|b| match b {
            Bound::Fact(id, _) => SlotView::Fact(*id),
            Bound::Group(vs) => SlotView::Group(vs.iter().map(norm).collect()),
        })
        .collect();
    (m.rule, slots)
}

/// A decision: rule, action, the facts of its fact slots (`None` for an
/// aggregate slot), its arguments, and its time in ms.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct DecisionView {
    rule: RuleId,
    action: String,
    facts: Vec<Option<FactId>>,
    args: Vec<Value>,
    time: i64,
}

/// A delayed action waiting for its instant.
#[derive(Debug, Clone)]
struct Pending {
    /// The occurrence of the match that scheduled it.
    occurrence: u64,
    due: i64,
    recheck: bool,
    /// Still tied to its match: a delayed action with `recheck` is
    /// cancelled when its match ends by a change of working memory, and
    /// detached (it runs regardless) when it ends as time passes.
    attached: bool,
    decision: DecisionView,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    /// An insert, modify or retract, then `fire`.
    Change,
    /// A one-millisecond `advance_to`.
    Advance,
}

// ---------------------------------------------------------------------------
// Running a case.
// ---------------------------------------------------------------------------

/// Reference working memory, and matches, past which a case stops early.
const ITEM_CAP: usize = 40;
const MATCH_CAP: usize = 2_000;

struct Run {
    session: Session<NoHost>,
    rules: Arc<Network>,
    world: World,
    builder: Builder,
    /// Which slots of each rule are aggregates.
    agg_slots: Vec<Vec<bool>>,
    rules_text: String,
    log: Vec<String>,
    /// The matches of the last observation, each with its occurrence.
    current: Vec<((RuleId, Vec<Bound>), u64)>,
    pending: Vec<Pending>,
    next_occurrence: u64,
}

impl Run {
    fn fail(&self, what: String) -> TestCaseError {
        let mut items = String::new();
        for it in &self.world.items {
            let time = it.time.map(|t| format!(" @{t}")).unwrap_or_default();
            let engine = if self.session.fact(it.id).is_some() {
                ""
            } else {
                " (gone from the engine)"
            };
            let _ = writeln!(
                items,
                "    {:?} {}({}){time} seq {} v{}{engine}",
                it.id,
                type_name(self.rules.rules(), it.ty),
                values_text(&it.values),
                it.seq,
                it.version
            );
        }
        let pending: Vec<String> = self
            .pending
            .iter()
            .map(|p| {
                format!(
                    "{} due {}{}{}",
                    p.decision.action,
                    p.due,
                    if p.recheck { "" } else { " regardless" },
                    if p.attached { "" } else { " detached" }
                )
            })
            .collect();
        TestCaseError::fail(format!(
            "{what}\nnow {} ms, lateness {} ms, watermark {} ms\nrules (normalized):\n{}\
             operations:\n    {}\nreference working memory:\n{items}\
             delayed actions pending in the reference: {pending:?}",
            self.world.now,
            self.world.lateness,
            self.world.watermark(),
            self.rules_text,
            self.log.join("\n    "),
        ))
    }

    fn engine_matches(&self) -> Result<Vec<MatchView>, TestCaseError> {
        let mut out = Vec::new();
        for (rule, ids) in self.session.matches() {
            let aggs = &self.agg_slots[rule.index()];
            let mut slots = Vec::new();
            for (i, id) in ids.iter().enumerate() {
                if aggs.get(i).copied().unwrap_or(false) {
                    match self.session.binding(*id) {
                        Some(vs) => slots.push(SlotView::Group(vs.iter().map(norm).collect())),
                        None => {
                            return Err(self.fail(format!(
                                "match {rule:?} {ids:?}: aggregate slot {i} holds {id:?}, \
                                 which has no binding"
                            )))
                        }
                    }
                } else {
                    slots.push(SlotView::Fact(*id));
                }
            }
            out.push((rule, slots));
        }
        out.sort();
        Ok(out)
    }

    /// The decisions the engine made since `before`, then cleared.
    fn engine_decisions(&mut self) -> Vec<DecisionView> {
        let mut out: Vec<DecisionView> = self
            .session
            .decisions()
            .map(|d| {
                let aggs = &self.agg_slots[d.rule().index()];
                DecisionView {
                    rule: d.rule(),
                    action: d.action().to_string(),
                    facts: d
                        .facts()
                        .iter()
                        .enumerate()
                        .map(|(i, f)| (!aggs.get(i).copied().unwrap_or(false)).then_some(*f))
                        .collect(),
                    args: d.args().map(|(_, v)| norm(v)).collect(),
                    time: d.time().as_millis(),
                }
            })
            .collect();
        self.session.clear_decisions();
        out.sort();
        out
    }

    /// The decisions a match makes when it fires now: its emits, and its
    /// delayed actions scheduled.
    fn fire_match(&mut self, m: &Match, occurrence: u64, out: &mut Vec<DecisionView>) {
        let rule = &self.rules.rules().rules()[m.rule.index()];
        let facts: Vec<Option<FactId>> = m
            .slots
            .iter()
            .map(|b| match b {
                Bound::Fact(id, _) => Some(*id),
                Bound::Group(_) => None,
            })
            .collect();
        let mut args = Vec::new();
        for (b, vs) in m.slots.iter().zip(&m.values) {
            match b {
                Bound::Fact(..) => args.push(norm(&vs[0])),
                Bound::Group(_) => args.extend(vs.iter().map(norm)),
            }
        }
        let decision = |action: &str, time: i64| DecisionView {
            rule: m.rule,
            action: action.to_string(),
            facts: facts.clone(),
            args: args.clone(),
            time,
        };
        for a in &rule.actions {
            match a {
                Action::Emit(e) => out.push(decision(&e.action, self.world.now)),
                Action::Delayed {
                    after,
                    recheck,
                    action,
                } => {
                    let Action::Emit(e) = &**action else {
                        unreachable!("generated delayed actions are emits")
                    };
                    let due = self.world.now + after.as_millis();
                    self.pending.push(Pending {
                        occurrence,
                        due,
                        recheck: *recheck,
                        attached: true,
                        decision: decision(&e.action, due),
                    });
                }
                other => unreachable!("generated rules only emit: {other:?}"),
            }
        }
    }

    /// Moves the reference to the state after a call (its clock already
    /// set): the matches now, and the decisions made at this instant.
    /// Matches that ended lose their delayed actions (a change of working
    /// memory cancels those with `recheck`; time only detaches them);
    /// matches that appeared fire; delayed actions due now run. `mid` holds
    /// the matches in the middle of a modify (retracted, not yet inserted
    /// again): a match missing there ended, and if it is back it is new.
    fn step(
        &mut self,
        call: Call,
        mid: Option<Vec<(RuleId, Vec<Bound>)>>,
    ) -> (Vec<Match>, Vec<DecisionView>) {
        let matches = self.world.matches(self.rules.rules());
        let continues = |ident: &(RuleId, Vec<Bound>)| {
            matches.iter().any(|m| m.ident() == *ident)
                && mid.as_ref().is_none_or(|mid| mid.contains(ident))
        };
        let mut ended = Vec::new();
        let mut next_current = Vec::new();
        for (ident, occ) in std::mem::take(&mut self.current) {
            if continues(&ident) {
                next_current.push((ident, occ));
            } else {
                ended.push(occ);
            }
        }
        self.pending.retain_mut(|p| {
            if !ended.contains(&p.occurrence) {
                return true;
            }
            if call == Call::Change && p.recheck && p.attached {
                return false;
            }
            p.attached = false;
            true
        });
        let mut decisions = Vec::new();
        for m in &matches {
            let ident = m.ident();
            if next_current.iter().any(|(i, _)| *i == ident) {
                continue;
            }
            self.next_occurrence += 1;
            let occ = self.next_occurrence;
            next_current.push((ident, occ));
            self.fire_match(m, occ, &mut decisions);
        }
        self.current = next_current;
        let now = self.world.now;
        let mut due = Vec::new();
        self.pending.retain(|p| {
            if p.due <= now {
                due.push(p.decision.clone());
                false
            } else {
                true
            }
        });
        decisions.extend(due);
        (matches, decisions)
    }

    /// Fails unless the engine's `what` (in `engine`) are the reference's.
    fn same<T: PartialEq + Clone + std::fmt::Debug>(
        &self,
        what: &str,
        expected: &[T],
        engine: &[T],
    ) -> Result<(), TestCaseError> {
        if engine == expected {
            return Ok(());
        }
        let step = self.log.len();
        Err(self.fail(differences(what, step, expected, engine, lines)))
    }

    /// Compares the engine with the reference after a call: the engine
    /// made `engine_decisions` (cleared from the session), the reference
    /// expects `matches` and `decisions`; `next_timer` is what the engine
    /// said before an advance. Then whether the case should stop.
    fn compare(
        &self,
        engine_decisions: Vec<DecisionView>,
        matches: &[Match],
        mut decisions: Vec<DecisionView>,
        next_timer: Option<Option<Timestamp>>,
    ) -> Result<bool, TestCaseError> {
        if self.session.now() != ts(self.world.now) {
            return Err(self.fail(format!(
                "the engine's clock reads {:?}, expected {}",
                self.session.now(),
                self.world.now
            )));
        }
        if self.session.watermark() != ts(self.world.watermark()) {
            return Err(self.fail(format!(
                "the engine's watermark is {:?}, expected {}",
                self.session.watermark(),
                self.world.watermark()
            )));
        }

        // 1. Matches.
        let mut expected: Vec<MatchView> = matches.iter().map(view_of).collect();
        expected.sort();
        let engine = self.engine_matches()?;
        self.same("matches", &expected, &engine)?;

        // 2. Decisions.
        decisions.sort();
        self.same("decisions", &decisions, &engine_decisions)?;

        // 4. A timer was due by the first instant something fired.
        if let (Some(timer), Some(first)) = (next_timer, decisions.iter().map(|d| d.time).min()) {
            if timer.is_none_or(|t| t.as_millis() > first) {
                return Err(self.fail(format!(
                    "a decision was made at {first}, but just before the advance, \
                     `next_timer` was {timer:?}"
                )));
            }
        }

        // 3. Working memory.
        for (id, ty, values) in self.session.facts() {
            let Some(it) = self.world.get(id) else {
                return Err(self.fail(format!("the engine holds {id:?}, unknown to the reference")));
            };
            if it.ty != ty || it.values != values {
                return Err(self.fail(format!(
                    "the engine holds {id:?} as {}({}), the reference as {}({})",
                    type_name(self.rules.rules(), ty),
                    values_text(values),
                    type_name(self.rules.rules(), it.ty),
                    values_text(&it.values)
                )));
            }
            let time = self.session.event_time(id).map(|t| t.as_millis());
            if it.time.is_some() && time != it.time {
                return Err(self.fail(format!(
                    "event {id:?} has time {time:?} in the engine, {:?} in the reference",
                    it.time
                )));
            }
        }
        for it in &self.world.items {
            let held = self.session.fact(it.id).is_some();
            if it.time.is_none() && !held {
                return Err(self.fail(format!("fact {:?} is gone from the engine", it.id)));
            }
            if it.time.is_none() {
                continue;
            }
            let may = self.world.may_take_part(self.rules.rules(), it);
            if !held && may {
                return Err(self.fail(format!(
                    "event {:?} is gone from the engine, but it may still take part in a match",
                    it.id
                )));
            }
            // Expiry is exact: once the watermark has passed the event's
            // time by the longest horizon of the patterns over its type, it
            // is gone (events of types no pattern reads are left alone).
            if held && !may && World::type_is_used(self.rules.rules(), it.ty) {
                return Err(self.fail(format!(
                    "event {:?} can no longer take part in any match, but the engine still \
                     holds it",
                    it.id
                )));
            }
        }
        Ok(self.world.items.len() > ITEM_CAP || matches.len() > MATCH_CAP)
    }

    /// Steps the reference after a call and compares.
    fn observe(
        &mut self,
        call: Call,
        mid: Option<Vec<(RuleId, Vec<Bound>)>>,
        next_timer: Option<Option<Timestamp>>,
    ) -> Result<bool, TestCaseError> {
        let engine_decisions = self.engine_decisions();
        let (matches, decisions) = self.step(call, mid);
        self.compare(engine_decisions, &matches, decisions, next_timer)
    }

    /// Items the engine and the reference both hold, events or facts.
    fn live(&self, events: bool) -> Vec<FactId> {
        let mut ids: Vec<FactId> = self
            .world
            .items
            .iter()
            .filter(|it| it.time.is_some() == events && self.session.fact(it.id).is_some())
            .map(|it| it.id)
            .collect();
        ids.sort();
        ids
    }

    fn fire(&mut self) -> Result<(), TestCaseError> {
        if let Err(e) = self.session.fire() {
            return Err(self.fail(format!("fire failed: {e}")));
        }
        Ok(())
    }
}

/// The time field's value for a choice `r`: null or now, a time from
/// `now - L` to `now + 2`, or, one time in eight, a late one.
fn event_time(r: u8, now: i64, lateness: i64, optional: bool) -> Option<i64> {
    match r % 8 {
        0 | 1 if optional => None,
        0 | 1 => Some(now),
        7 => Some(now - lateness - 1 - i64::from(r / 8 % 3)),
        _ => Some(now - lateness + i64::from(r / 8) % (lateness + 3)),
    }
}

fn run(case: &Case) -> Result<(), TestCaseError> {
    let builder = Builder::new(case);
    let rules = builder.rules(&case.rules);
    let rules_text = describe_rules(&rules);
    let agg_slots = rules
        .rules()
        .iter()
        .map(|r| {
            r.slots()
                .map(|c| matches!(c, Condition::Aggregate(_)))
                .collect()
        })
        .collect();
    let network = Network::shared(rules).expect("the engine compiles every generated rule");
    let lateness = if case.late3 { 3 } else { 0 };
    let late_policy = if case.at_watermark {
        LatePolicy::AtWatermark
    } else {
        LatePolicy::Reject
    };
    let config = SessionConfig {
        lateness: Duration::from_millis(lateness),
        late: late_policy,
        clock: Clock::Pseudo,
        ..SessionConfig::default()
    };
    let session = Session::with_config(network.clone(), NoHost, config);
    let start = session.now().as_millis();
    let mut run = Run {
        session,
        rules: network,
        world: World::new(start, lateness),
        builder,
        agg_slots,
        rules_text,
        log: vec![format!(
            "start at {start} ms, lateness {lateness} ms, late events {late_policy:?}"
        )],
        current: Vec::new(),
        pending: Vec::new(),
        next_occurrence: 0,
    };
    // What matches an empty working memory fires first.
    run.fire()?;
    run.log.push("fire".into());
    run.observe(Call::Change, None, None)?;
    for op in &case.ops {
        let mut mid = None;
        match op {
            Op::Event { ty, values, time } => {
                let ty = run.builder.event_ty(*ty);
                let info = run.builder.types[ty].clone();
                let mut vals: Vec<Value> = info
                    .fields
                    .iter()
                    .zip(values.iter().cycle())
                    .map(|(f, r)| VALUES.field_value(*f, *r))
                    .collect();
                let now = run.world.now;
                let mut at = now;
                if let Some(optional) = info.time {
                    let t = event_time(*time, now, lateness, optional);
                    vals.push(t.map_or(Value::Null, |t| Value::Timestamp(ts(t))));
                    at = t.unwrap_or(now);
                }
                let w = run.world.watermark();
                let late = at < w;
                let text = format!("insert e{ty}({}) at {at}", values_text(&vals));
                let result = run.session.insert(TypeId::new(ty as u32), vals.clone());
                match (result, late) {
                    (Ok(id), false) => {
                        run.log.push(format!("{text} -> {id:?}"));
                        run.world.insert(id, TypeId::new(ty as u32), vals, Some(at));
                    }
                    // Late, and taken as if it had happened at the watermark:
                    // its event time is `W`, its fields are as given.
                    (Ok(id), true) if case.at_watermark => {
                        run.log.push(format!(
                            "{text} -> {id:?}, late, taken at the watermark {w}"
                        ));
                        run.world.insert(id, TypeId::new(ty as u32), vals, Some(w));
                    }
                    (Err(FactError::Late { .. }), true) if !case.at_watermark => {
                        run.log.push(format!("{text} -> refused as late"));
                    }
                    (result, _) => {
                        run.log.push(text.clone());
                        return Err(run.fail(format!("{text} (late: {late}) gave {result:?}")));
                    }
                }
            }
            Op::Fact { values } => {
                let ty = run.builder.fact_type();
                let vals: Vec<Value> = run.builder.types[ty]
                    .fields
                    .iter()
                    .zip(values.iter().cycle())
                    .map(|(f, r)| VALUES.field_value(*f, *r))
                    .collect();
                let text = format!("insert fact({})", values_text(&vals));
                match run.session.insert(TypeId::new(ty as u32), vals.clone()) {
                    Ok(id) => {
                        run.log.push(format!("{text} -> {id:?}"));
                        run.world.insert(id, TypeId::new(ty as u32), vals, None);
                    }
                    Err(e) => return Err(run.fail(format!("{text} failed: {e}"))),
                }
            }
            Op::Modify {
                event,
                which,
                field,
                value,
            } => {
                let live = run.live(*event);
                if live.is_empty() {
                    continue;
                }
                let id = live[*which as usize % live.len()];
                let ty = run.world.get(id).expect("live").ty;
                let fields = &run.builder.types[ty.index()].fields;
                let i = *field as usize % fields.len();
                let change = [(fid(i), VALUES.field_value(fields[i], *value))];
                let text = format!("modify {id:?} {{f{i} = {}}}", change[0].1);
                // The matches between the retraction and the insertion.
                mid = Some(
                    run.world
                        .without(id)
                        .matches(run.rules.rules())
                        .iter()
                        .map(Match::ident)
                        .collect(),
                );
                if let Err(e) = run.session.modify(id, &change) {
                    run.log.push(text.clone());
                    return Err(run.fail(format!("{text} failed: {e}")));
                }
                run.log.push(text);
                run.world.modify(id, &change);
            }
            Op::Retract { event, which } => {
                let live = run.live(*event);
                if live.is_empty() {
                    continue;
                }
                let id = live[*which as usize % live.len()];
                if let Err(e) = run.session.retract(id) {
                    run.log.push(format!("retract {id:?}"));
                    return Err(run.fail(format!("retract {id:?} failed: {e}")));
                }
                run.log.push(format!("retract {id:?}"));
                run.world.retract(id);
            }
            Op::Snapshot => {
                let bytes = run.session.snapshot();
                match Session::restore(run.rules.clone(), NoHost, &bytes) {
                    Ok(restored) => run.session = restored,
                    Err(e) => {
                        run.log.push("snapshot and restore".into());
                        return Err(run.fail(format!("restore failed: {e}")));
                    }
                }
                run.log
                    .push(format!("snapshot ({} bytes) and restore", bytes.len()));
                // Nothing changed: the restored session must agree at once.
                if run.observe(Call::Change, None, None)? {
                    return Ok(());
                }
                continue;
            }
            Op::Advance { ms } if case.jump => {
                // One call; the reference still visits every millisecond.
                let timer = run.session.next_timer();
                let result = run
                    .session
                    .advance_by(Duration::from_millis(i64::from(*ms)));
                let to = run.world.now + i64::from(*ms);
                run.log.push(format!("advance by {ms} to {to}"));
                if let Err(e) = result {
                    return Err(run.fail(format!("advance_by({ms}) failed: {e}")));
                }
                let engine_decisions = run.engine_decisions();
                let mut decisions = Vec::new();
                let mut matches = Vec::new();
                while run.world.now < to {
                    run.world.now += 1;
                    let (m, d) = run.step(Call::Advance, None);
                    matches = m;
                    decisions.extend(d);
                }
                if run.compare(engine_decisions, &matches, decisions, Some(timer))? {
                    return Ok(());
                }
                continue;
            }
            Op::Advance { ms } => {
                for _ in 0..*ms {
                    let timer = run.session.next_timer();
                    let t = run.world.now + 1;
                    let result = run.session.advance_to(ts(t));
                    run.log.push(format!("advance to {t}"));
                    if let Err(e) = result {
                        return Err(run.fail(format!("advance_to({t}) failed: {e}")));
                    }
                    run.world.now = t;
                    if run.observe(Call::Advance, None, Some(timer))? {
                        return Ok(());
                    }
                }
                continue;
            }
        }
        run.fire()?;
        if run.observe(Call::Change, mid, None)? {
            break;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn time_agrees_with_the_reference(case in case()) {
        run(&case)?;
    }
}

// ---------------------------------------------------------------------------
// Pinned behaviours.
// ---------------------------------------------------------------------------

/// Events `a(k: int, ts: timestamp?)` and `b(k: int, ts: timestamp?)`, and
/// one rule emitting `hit` with `conditions`.
fn fixture(
    lateness: i64,
    conditions: impl Fn(TypeId, TypeId) -> Vec<Condition>,
    actions: Vec<Action>,
) -> (Session, TypeId, TypeId) {
    let config = SessionConfig {
        lateness: Duration::from_millis(lateness),
        ..SessionConfig::default()
    };
    fixture_with(config, conditions, actions)
}

/// [`fixture`], with a session configured by `config`.
fn fixture_with(
    config: SessionConfig,
    conditions: impl Fn(TypeId, TypeId) -> Vec<Condition>,
    actions: Vec<Action>,
) -> (Session, TypeId, TypeId) {
    let mut schema = Schema::new();
    let event = |name: &str| {
        FactType::new(name, FactKind::Event)
            .field("k", ValueType::Int, false)
            .field("ts", ValueType::Timestamp, true)
            .with_time("ts")
            .unwrap()
    };
    let a = schema.add(event("a")).unwrap();
    let b = schema.add(event("b")).unwrap();
    let mut rules = RuleSet::new(schema);
    let mut rule = Rule::new("r");
    for c in conditions(a, b) {
        rule = rule.when(c);
    }
    for action in actions {
        rule = rule.then(action);
    }
    rules.add_rule(rule).unwrap();
    let session = Session::with_config(Network::shared(rules).unwrap(), NoHost, config);
    (session, a, b)
}

fn hit(name: &str) -> Action {
    Action::Emit(Emit {
        action: name.into(),
        args: Vec::new(),
        branches: Vec::new(),
    })
}

fn same_k() -> Expr {
    Expr::own(fid(0)).eq(Expr::bound(slot(0), fid(0)))
}

/// Advances a millisecond at a time to `until`, and returns the instants
/// at which decisions were made, with their stamps.
fn tick_until(s: &mut Session, until: i64) -> Vec<(i64, String, i64)> {
    let mut out = Vec::new();
    s.clear_decisions();
    while s.now().as_millis() < until {
        let t = s.now().as_millis() + 1;
        s.advance_to(ts(t)).unwrap();
        for d in s.decisions() {
            out.push((t, d.action().to_string(), d.time().as_millis()));
        }
        s.clear_decisions();
    }
    out
}

/// Moves the clock to `t0`, inserts an `a` with `k` 1 and no time (so at
/// `t0`), and fires.
fn insert_a_at(s: &mut Session, a: TypeId, t0: i64) {
    s.advance_to(ts(t0)).unwrap();
    s.insert(a, vec![Value::Int(1), Value::Null]).unwrap();
    s.fire().unwrap();
}

/// `a(); not b(k == $0.k) after $0 within 5ms`.
fn absence_conditions(a: TypeId, b: TypeId) -> Vec<Condition> {
    vec![
        Condition::Pattern(Pattern::new(a)),
        Condition::Not(
            Pattern::new(b)
                .test(same_k())
                .window(Window::after_within(slot(0), Duration::from_millis(5))),
        ),
    ]
}

fn absence(lateness: i64) -> (Session, TypeId, TypeId) {
    fixture(lateness, absence_conditions, vec![hit("hit")])
}

/// `a(); not b(k == $0.k) after $0 within 5ms`: the window is
/// `[t(a), t(a) + 5ms]`, both ends in, so the absence is decided exactly at
/// `t(a) + 5ms + 1ms + L`, and a blocker at the window's last millisecond
/// cancels it.
#[test]
fn absence_fires_just_after_its_window() {
    for lateness in [0, 3] {
        let (mut s, a, b) = absence(lateness);
        let t0 = s.now().as_millis() + 10;
        s.advance_to(ts(t0)).unwrap();
        s.insert(a, vec![Value::Int(1), Value::Null]).unwrap();
        assert_eq!(s.fire().unwrap(), 0);
        // A `b` with another key does not block.
        s.insert(b, vec![Value::Int(2), Value::Null]).unwrap();
        s.fire().unwrap();
        let due = t0 + 5 + 1 + lateness;
        let fired = tick_until(&mut s, due + 10);
        assert_eq!(
            fired,
            vec![(due, "hit".to_string(), due)],
            "lateness {lateness}"
        );

        // A blocker at `t(a) + 5ms`, the window's last millisecond.
        let (mut s, a, b) = absence(lateness);
        insert_a_at(&mut s, a, t0);
        assert_eq!(tick_until(&mut s, t0 + 5), vec![]);
        s.insert(b, vec![Value::Int(1), Value::Null]).unwrap();
        s.fire().unwrap();
        assert_eq!(tick_until(&mut s, due + 20), vec![], "lateness {lateness}");
        assert_eq!(s.matches(), vec![]);

        // A blocker one millisecond after the window is too late to cancel.
        let (mut s, a, b) = absence(lateness);
        insert_a_at(&mut s, a, t0);
        let mut fired = tick_until(&mut s, t0 + 6);
        s.insert(b, vec![Value::Int(1), Value::Null]).unwrap();
        s.fire().unwrap();
        fired.extend(tick_until(&mut s, due + 10));
        assert_eq!(
            fired,
            vec![(due, "hit".to_string(), due)],
            "lateness {lateness}"
        );
    }
}

/// With lateness, a blocker that happened in the window but arrives after
/// the watermark passed it is late and refused; one that arrives in time,
/// even after its own time, cancels the absence.
#[test]
fn absence_waits_for_late_blockers() {
    let (mut s, a, b) = absence(3);
    let t0 = s.now().as_millis() + 10;
    insert_a_at(&mut s, a, t0);
    // At t0 + 8 the watermark is t0 + 5: a blocker stamped t0 + 5, the
    // window's last millisecond, still counts.
    assert_eq!(tick_until(&mut s, t0 + 8), vec![]);
    s.insert(b, vec![Value::Int(1), Value::Timestamp(ts(t0 + 5))])
        .unwrap();
    s.fire().unwrap();
    assert_eq!(tick_until(&mut s, t0 + 30), vec![]);

    // At t0 + 9 the watermark is t0 + 6: the absence is decided, and the
    // same blocker is late.
    let (mut s, a, b) = absence(3);
    insert_a_at(&mut s, a, t0);
    assert_eq!(
        tick_until(&mut s, t0 + 9),
        vec![(t0 + 9, "hit".to_string(), t0 + 9)]
    );
    let late = s.insert(b, vec![Value::Int(1), Value::Timestamp(ts(t0 + 5))]);
    assert!(matches!(late, Err(FactError::Late { .. })), "{late:?}");
    assert_eq!(s.matches().len(), 1);
}

/// `not b() within 5ms` is true from the start, false once a `b` happens,
/// and true again exactly `5ms + 1ms` (+ L) after it.
#[test]
fn within_window_exit_unblocks_a_not() {
    for lateness in [0, 3] {
        let (mut s, _, b) = fixture(
            lateness,
            |_, b| {
                vec![Condition::Not(
                    Pattern::new(b).window(Window::within(Duration::from_millis(5))),
                )]
            },
            vec![hit("quiet")],
        );
        assert_eq!(s.fire().unwrap(), 1);
        s.clear_decisions();
        let t0 = s.now().as_millis() + 10;
        s.advance_to(ts(t0)).unwrap();
        assert_eq!(s.decision_count(), 0);
        s.insert(b, vec![Value::Int(0), Value::Null]).unwrap();
        s.fire().unwrap();
        assert_eq!(s.matches(), vec![]);
        let back = t0 + 5 + 1 + lateness;
        assert_eq!(
            tick_until(&mut s, back + 10),
            vec![(back, "quiet".to_string(), back)],
            "lateness {lateness}"
        );
        assert_eq!(s.matches().len(), 1);
    }
}

/// An event older than the watermark is refused with `FactError::Late`,
/// and nothing changes; one exactly at the watermark is taken.
#[test]
fn late_event_is_refused_and_changes_nothing() {
    let (mut s, a, b) = fixture(
        3,
        |a, b| {
            vec![
                Condition::Pattern(
                    Pattern::new(a).window(Window::within(Duration::from_millis(8))),
                ),
                Condition::Not(
                    Pattern::new(b)
                        .test(same_k())
                        .window(Window::within(Duration::from_millis(8))),
                ),
            ]
        },
        vec![hit("hit")],
    );
    let t0 = s.now().as_millis() + 10;
    s.advance_to(ts(t0)).unwrap();
    let x = s.insert(a, vec![Value::Int(1), Value::Null]).unwrap();
    s.fire().unwrap();
    s.clear_decisions();
    let matches = s.matches();
    assert_eq!(matches.len(), 1);
    let facts: Vec<FactId> = s.facts().map(|(id, _, _)| id).collect();
    let timer = s.next_timer();
    let w = s.watermark().as_millis();
    assert_eq!(w, t0 - 3);
    let late = s.insert(b, vec![Value::Int(1), Value::Timestamp(ts(w - 1))]);
    assert!(matches!(late, Err(FactError::Late { .. })), "{late:?}");
    s.fire().unwrap();
    assert_eq!(s.matches(), matches);
    assert_eq!(s.facts().map(|(id, _, _)| id).collect::<Vec<_>>(), facts);
    assert_eq!(s.next_timer(), timer);
    assert_eq!(s.decision_count(), 0);
    assert_eq!(s.event_time(x), Some(ts(t0)));
    // At the watermark exactly: on time, and it blocks.
    let y = s
        .insert(b, vec![Value::Int(1), Value::Timestamp(ts(w))])
        .unwrap();
    s.fire().unwrap();
    assert_eq!(s.event_time(y), Some(ts(w)));
    assert_eq!(s.matches(), vec![]);
}

/// A delayed action with `recheck` is cancelled when a fact ends its match
/// before it is due; `regardless` runs all the same, stamped with its due
/// instant; and a match that ends only as time passes cancels nothing.
#[test]
fn delayed_actions_cancel_only_on_changes() {
    let delayed = |recheck: bool, name: &str| Action::Delayed {
        after: Duration::from_millis(3),
        recheck,
        action: Box::new(hit(name)),
    };
    let build = || {
        fixture(
            0,
            |a, b| {
                vec![
                    Condition::Pattern(
                        Pattern::new(a).window(Window::within(Duration::from_millis(1))),
                    ),
                    Condition::Not(Pattern::new(b).test(same_k())),
                ]
            },
            vec![delayed(true, "checked"), delayed(false, "regardless")],
        )
    };
    // A blocker arrives: only `regardless` runs.
    let (mut s, a, b) = build();
    let t0 = s.now().as_millis() + 10;
    insert_a_at(&mut s, a, t0);
    tick_until(&mut s, t0 + 1);
    s.insert(b, vec![Value::Int(1), Value::Null]).unwrap();
    s.fire().unwrap();
    assert_eq!(
        tick_until(&mut s, t0 + 10),
        vec![(t0 + 3, "regardless".to_string(), t0 + 3)]
    );
    // The `a` leaves its window of 1ms at t0 + 2 (and the rule's horizon,
    // 1ms + 3ms + 1ms, at t0 + 6), before the actions are due: its match
    // ends by time alone, and both run.
    let (mut s, a, _) = build();
    insert_a_at(&mut s, a, t0);
    let mut fired = tick_until(&mut s, t0 + 10);
    fired.sort();
    assert_eq!(
        fired,
        vec![
            (t0 + 3, "checked".to_string(), t0 + 3),
            (t0 + 3, "regardless".to_string(), t0 + 3),
        ]
    );
}

fn within(d: i64) -> Window {
    Window::within(Duration::from_millis(d))
}

/// `a(); b(k == $0.k) within 5ms`: the rule's horizon is 5ms + 1ms, so the
/// unqualified `a` is still seen 6ms after it happened, and no longer 7ms
/// after.
#[test]
fn horizon_reaches_one_millisecond_past_the_longest_window() {
    let build = || {
        fixture(
            0,
            |a, b| {
                vec![
                    Condition::Pattern(Pattern::new(a)),
                    Condition::Pattern(Pattern::new(b).test(same_k()).window(within(5))),
                ]
            },
            vec![hit("hit")],
        )
    };
    for (gap, fires) in [(6, 1), (7, 0)] {
        let (mut s, a, b) = build();
        let t0 = s.now().as_millis() + 10;
        insert_a_at(&mut s, a, t0);
        s.advance_to(ts(t0 + gap)).unwrap();
        s.insert(b, vec![Value::Int(1), Value::Null]).unwrap();
        assert_eq!(s.fire().unwrap(), fires, "b {gap}ms after a");
    }
}

/// `a() within 10ms; not b(k == $0.k) after $0`: an absence without
/// `within` never closes. It holds as soon as the `a` is there, with no
/// timer, and while no `b` came after it: one before it (or at the same
/// time, inserted earlier) does not block, one after it ends the match.
#[test]
fn absence_without_within_holds_until_a_blocker_comes_after() {
    let build = || {
        fixture(
            0,
            |a, b| {
                vec![
                    Condition::Pattern(Pattern::new(a).window(within(10))),
                    Condition::Not(
                        Pattern::new(b)
                            .test(same_k())
                            .window(Window::after(slot(0))),
                    ),
                ]
            },
            vec![hit("hit")],
        )
    };
    let (mut s, a, b) = build();
    let t0 = s.now().as_millis() + 10;
    s.advance_to(ts(t0)).unwrap();
    s.insert(b, vec![Value::Int(1), Value::Null]).unwrap();
    s.insert(a, vec![Value::Int(1), Value::Null]).unwrap();
    assert_eq!(s.fire().unwrap(), 1, "the b inserted before the a");
    assert_eq!(tick_until(&mut s, t0 + 4), vec![]);
    assert_eq!(s.matches().len(), 1);
    // Another key does not block; the same key, after the a, does.
    s.insert(b, vec![Value::Int(2), Value::Null]).unwrap();
    s.fire().unwrap();
    assert_eq!(s.matches().len(), 1);
    s.insert(b, vec![Value::Int(1), Value::Null]).unwrap();
    s.fire().unwrap();
    assert_eq!(s.matches(), vec![]);
    assert_eq!(tick_until(&mut s, t0 + 30), vec![]);

    // Unblocked, the match lasts as long as the a is seen: 10ms.
    let (mut s, a, _) = build();
    s.advance_to(ts(t0)).unwrap();
    s.insert(a, vec![Value::Int(1), Value::Null]).unwrap();
    assert_eq!(s.fire().unwrap(), 1);
    assert_eq!(tick_until(&mut s, t0 + 10), vec![]);
    assert_eq!(s.matches().len(), 1);
    tick_until(&mut s, t0 + 11);
    assert_eq!(s.matches(), vec![]);
}

/// Under `LatePolicy::AtWatermark`, a late event is taken with the
/// watermark as its time (its fields as given), and counted: a blocker
/// stamped long before the `a` still blocks an absence whose window holds
/// the watermark.
#[test]
fn late_event_is_taken_at_the_watermark() {
    let build = |late: LatePolicy| {
        fixture_with(
            SessionConfig {
                lateness: Duration::from_millis(3),
                late,
                ..SessionConfig::default()
            },
            absence_conditions,
            vec![hit("hit")],
        )
    };
    let (mut s, a, b) = build(LatePolicy::AtWatermark);
    let t0 = s.now().as_millis() + 10;
    insert_a_at(&mut s, a, t0);
    assert_eq!(tick_until(&mut s, t0 + 8), vec![]);
    let stamp = Value::Timestamp(ts(t0 - 100));
    let y = s.insert(b, vec![Value::Int(1), stamp.clone()]).unwrap();
    s.fire().unwrap();
    assert_eq!(s.event_time(y), Some(ts(t0 + 5)));
    assert_eq!(s.fact(y).map(|(_, v)| v[1].clone()), Some(stamp.clone()));
    assert_eq!(s.counters().late_events, 1);
    assert_eq!(tick_until(&mut s, t0 + 30), vec![]);

    // The same blocker one millisecond later falls after the window, at
    // t0 + 6: it is taken, and blocks nothing.
    let (mut s, a, b) = build(LatePolicy::AtWatermark);
    insert_a_at(&mut s, a, t0);
    assert_eq!(
        tick_until(&mut s, t0 + 9),
        vec![(t0 + 9, "hit".to_string(), t0 + 9)]
    );
    let y = s.insert(b, vec![Value::Int(1), stamp.clone()]).unwrap();
    s.fire().unwrap();
    assert_eq!(s.event_time(y), Some(ts(t0 + 6)));
    assert_eq!(s.matches().len(), 1);

    // Refused by default: the absence is decided.
    let (mut s, a, b) = build(LatePolicy::Reject);
    insert_a_at(&mut s, a, t0);
    tick_until(&mut s, t0 + 8);
    let late = s.insert(b, vec![Value::Int(1), stamp]);
    assert!(matches!(late, Err(FactError::Late { .. })), "{late:?}");
    assert_eq!(
        tick_until(&mut s, t0 + 30),
        vec![(t0 + 9, "hit".to_string(), t0 + 9)]
    );
}

/// Modifies `k` of `id` to each value in turn and fires: each time, the
/// number of firings is the one given.
fn modify_and_fire(s: &mut Session, id: FactId, steps: &[(i64, usize, &str)]) {
    for &(k, fires, why) in steps {
        s.modify(id, &[(fid(0), Value::Int(k))]).unwrap();
        assert_eq!(s.fire().unwrap(), fires, "{why}");
    }
}

/// A modify is a retraction followed by an insertion: a rule fires again
/// on a modified fact, even on a field it does not test or a value that
/// did not change; a blocker modified into another blocker lets nothing
/// fire; a fact that blocks nothing takes no part in the match of a `not`.
#[test]
fn modify_ends_and_remakes_the_matches_of_the_fact() {
    let (mut s, a, _) = fixture(
        0,
        |a, _| vec![Condition::Pattern(Pattern::new(a).window(within(50)))],
        vec![hit("hit")],
    );
    let x = s.insert(a, vec![Value::Int(1), Value::Null]).unwrap();
    assert_eq!(s.fire().unwrap(), 1);
    modify_and_fire(
        &mut s,
        x,
        &[(2, 1, "a new value"), (2, 1, "the same value")],
    );

    let (mut s, a, b) = fixture(
        0,
        |a, b| {
            vec![
                Condition::Pattern(Pattern::new(a).window(within(50))),
                Condition::Not(Pattern::new(b).test(same_k()).window(within(50))),
            ]
        },
        vec![hit("hit")],
    );
    s.insert(a, vec![Value::Int(1), Value::Null]).unwrap();
    assert_eq!(s.fire().unwrap(), 1);
    let y = s.insert(b, vec![Value::Int(1), Value::Null]).unwrap();
    s.fire().unwrap();
    assert_eq!(s.matches(), vec![]);
    modify_and_fire(
        &mut s,
        y,
        &[
            (1, 0, "still a blocker"),
            (2, 1, "no longer a blocker"),
            (3, 0, "blocking nothing, it took no part"),
        ],
    );

    // An aggregate's group the fact is in ends and is made again.
    let (mut s, a, _) = fixture(
        0,
        |a, _| {
            vec![Condition::Aggregate(Aggregate {
                func: AggFunc::Count,
                source: Pattern::new(a),
                value: None,
                by: Vec::new(),
                having: None,
                within: Some(Duration::from_millis(50)),
            })]
        },
        vec![hit("count")],
    );
    assert_eq!(s.fire().unwrap(), 1, "count 0");
    let x = s.insert(a, vec![Value::Int(1), Value::Null]).unwrap();
    assert_eq!(s.fire().unwrap(), 1, "count 1");
    modify_and_fire(&mut s, x, &[(5, 1, "count 1 again")]);
}

/// `avg(k) of a() within 5ms`: events leaving at one instant leave
/// together. At t0 the average of 1 and 3 is 2; a 2 at t0 + 1 keeps it;
/// at t0 + 6 both events of t0 leave and the average of what is left is
/// still 2: no new match. It changes (to null) when the last leaves.
#[test]
fn events_leaving_at_one_instant_leave_together() {
    let (mut s, a, _) = fixture(
        0,
        |a, _| {
            vec![Condition::Aggregate(Aggregate {
                func: AggFunc::Avg,
                source: Pattern::new(a),
                value: Some(Expr::own(fid(0))),
                by: Vec::new(),
                having: None,
                within: Some(Duration::from_millis(5)),
            })]
        },
        vec![hit("avg")],
    );
    s.fire().unwrap();
    let t0 = s.now().as_millis() + 10;
    s.advance_to(ts(t0)).unwrap();
    s.insert(a, vec![Value::Int(1), Value::Null]).unwrap();
    s.insert(a, vec![Value::Int(3), Value::Null]).unwrap();
    assert_eq!(s.fire().unwrap(), 1, "avg 2");
    s.advance_to(ts(t0 + 1)).unwrap();
    s.insert(a, vec![Value::Int(2), Value::Null]).unwrap();
    assert_eq!(s.fire().unwrap(), 0, "avg 2 still");
    assert_eq!(
        tick_until(&mut s, t0 + 20),
        vec![(t0 + 7, "avg".to_string(), t0 + 7)]
    );
}
