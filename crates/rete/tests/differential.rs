//! Differential tests: after every change to working memory, the engine's
//! complete matches (`Session::matches`) must equal those of the brute-force
//! reference evaluator in `reference/mod.rs`, over random schemas, random
//! rules and random sequences of inserts, modifies, retracts and firings.
//!
//! Cases are generated as plain numbers (`u8` choices) and resolved against
//! the generated schema when the rules are built, so every case is well
//! typed and shrinks towards field 0, the first test shape and constant 0.
//!
//! A case stops early once working memory or the matches grow past a cap
//! (`FACT_CAP`, `MATCH_CAP`), after its last comparison, so that no case
//! drowns the brute force.
//!
//! 256 cases per property by default; set `PROPTEST_CASES` for more.

mod common;
mod reference;

use common::{
    config, differences, expr_text, fid, fields_text, slot, values_text, FieldSpec, Kind, Values,
    CMP_OPS,
};
use nudge_core::{FactKind, FactType, FieldId, Schema, Timestamp, TypeId, Value};
use nudge_rete::ir::{
    Action, Arg, ArithOp, Builtin, CmpOp, Condition, Emit, Expr, Pattern, Rule, RuleId, RuleSet,
    SetId,
};
use nudge_rete::{FactError, FactId, Host, Network, Session, SessionConfig, SessionError};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::fmt::Write;

// ---------------------------------------------------------------------------
// Generated cases: raw choices, resolved against the schema when built.
// ---------------------------------------------------------------------------

/// A single-fact test, resolved against the type of the pattern that uses
/// it: `field` picks the field, `shape` the kind of test, `a` and `b` the
/// constants. Rules draw their tests from one small pool, so they share
/// prefixes of alpha chains.
#[derive(Debug, Clone, Copy)]
struct AlphaSpec {
    field: u8,
    shape: u8,
    a: u8,
    b: u8,
}

/// `field == $slot.other`, written either way round.
#[derive(Debug, Clone, Copy)]
struct JoinSpec {
    slot: u8,
    field: u8,
    other: u8,
    flipped: bool,
}

/// A test comparing a field of the pattern's fact with a field of an
/// earlier binding.
#[derive(Debug, Clone, Copy)]
struct FilterSpec {
    slot: u8,
    field: u8,
    other: u8,
    op: u8,
    c: u8,
}

#[derive(Debug, Clone)]
struct PatSpec {
    ty: u8,
    /// Indices into the shared pool of alpha tests.
    tests: Vec<u8>,
    joins: Vec<JoinSpec>,
    filters: Vec<FilterSpec>,
}

/// A free-standing test over bound fields; with `clock` it also reads the
/// clock, so normalization cannot move it into a pattern.
#[derive(Debug, Clone, Copy)]
struct TestSpec {
    lhs: (u8, u8),
    rhs: Option<(u8, u8)>,
    op: u8,
    c: u8,
    clock: bool,
}

#[derive(Debug, Clone)]
enum CondSpec {
    Pattern(PatSpec),
    Not(PatSpec),
    Exists(PatSpec),
    Test(TestSpec),
}

#[derive(Debug, Clone)]
struct ActionSpec {
    kind: u8,
    ty: u8,
    slot: u8,
    /// For inserts, one choice per field; for modifies, (field, choice) pairs.
    values: Vec<u8>,
}

#[derive(Debug, Clone)]
struct RuleSpec {
    /// Starts with a prefix of an earlier rule's conditions, so that rules
    /// share beta nodes.
    copy: Option<u8>,
    conditions: Vec<CondSpec>,
    actions: Vec<ActionSpec>,
    salience: i8,
    no_loop: bool,
    grouped: bool,
}

#[derive(Debug, Clone)]
enum Op {
    Insert {
        ty: u8,
        values: Vec<u8>,
    },
    Modify {
        which: u8,
        changes: Vec<(u8, u8)>,
    },
    Retract {
        which: u8,
    },
    Fire,
    /// Modify or retract a fact that was retracted: must be refused.
    Stale {
        which: u8,
        retract: bool,
    },
}

#[derive(Debug, Clone)]
struct Case {
    schema: Vec<Vec<FieldSpec>>,
    pool: Vec<AlphaSpec>,
    rules: Vec<RuleSpec>,
    ops: Vec<Op>,
}

fn field_spec() -> impl Strategy<Value = FieldSpec> {
    let kind = prop_oneof![5 => Just(Kind::Int), 4 => Just(Kind::Str), 1 => Just(Kind::Float)];
    (kind, prop::bool::weighted(0.25)).prop_map(|(kind, optional)| FieldSpec { kind, optional })
}

fn alpha_spec() -> impl Strategy<Value = AlphaSpec> {
    any::<[u8; 4]>().prop_map(|[field, shape, a, b]| AlphaSpec { field, shape, a, b })
}

fn join_spec() -> impl Strategy<Value = JoinSpec> {
    (any::<[u8; 3]>(), any::<bool>()).prop_map(|([slot, field, other], flipped)| JoinSpec {
        slot,
        field,
        other,
        flipped,
    })
}

fn filter_spec() -> impl Strategy<Value = FilterSpec> {
    any::<[u8; 5]>().prop_map(|[slot, field, other, op, c]| FilterSpec {
        slot,
        field,
        other,
        op,
        c,
    })
}

fn pat_spec() -> impl Strategy<Value = PatSpec> {
    (
        any::<u8>(),
        // Mostly 0 or 1 tests, so that patterns match often enough.
        prop_oneof![
            3 => prop::collection::vec(any::<u8>(), 0..=1),
            1 => prop::collection::vec(any::<u8>(), 2..=3),
        ],
        prop_oneof![
            2 => prop::collection::vec(join_spec(), 0..=0),
            3 => prop::collection::vec(join_spec(), 1..=1),
            1 => prop::collection::vec(join_spec(), 2..=2),
        ],
        prop::collection::vec(filter_spec(), 0..=1),
    )
        .prop_map(|(ty, tests, joins, filters)| PatSpec {
            ty,
            tests,
            joins,
            filters,
        })
}

fn test_spec() -> impl Strategy<Value = TestSpec> {
    (
        any::<(u8, u8)>(),
        prop::option::of(any::<(u8, u8)>()),
        any::<u8>(),
        any::<u8>(),
        any::<bool>(),
    )
        .prop_map(|(lhs, rhs, op, c, clock)| TestSpec {
            lhs,
            rhs,
            op,
            c,
            clock,
        })
}

fn cond_spec() -> impl Strategy<Value = CondSpec> {
    prop_oneof![
        6 => pat_spec().prop_map(CondSpec::Pattern),
        2 => pat_spec().prop_map(CondSpec::Not),
        2 => pat_spec().prop_map(CondSpec::Exists),
        1 => test_spec().prop_map(CondSpec::Test),
    ]
}

fn action_spec() -> impl Strategy<Value = ActionSpec> {
    (
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        prop::collection::vec(any::<u8>(), 4),
    )
        .prop_map(|(kind, ty, slot, values)| ActionSpec {
            kind,
            ty,
            slot,
            values,
        })
}

fn rule_spec() -> impl Strategy<Value = RuleSpec> {
    (
        prop::option::weighted(0.3, any::<u8>()),
        prop::collection::vec(cond_spec(), 1..=3),
        prop::collection::vec(action_spec(), 0..=2),
        -1i8..=1,
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(copy, conditions, actions, salience, no_loop, grouped)| RuleSpec {
                copy,
                conditions,
                actions,
                salience,
                no_loop,
                grouped,
            },
        )
}

/// Operations; `fire_weight` sets how often `fire` comes up.
fn op(fire_weight: u32) -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<u8>(), prop::collection::vec(any::<u8>(), 4))
            .prop_map(|(ty, values)| Op::Insert { ty, values }),
        3 => (any::<u8>(), prop::collection::vec(any::<(u8, u8)>(), 1..=3))
            .prop_map(|(which, changes)| Op::Modify { which, changes }),
        1 => any::<u8>().prop_map(|which| Op::Retract { which }),
        fire_weight => Just(Op::Fire),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(which, retract)| Op::Stale { which, retract }),
    ]
}

fn case(fire_weight: u32) -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(prop::collection::vec(field_spec(), 2..=4), 2..=3),
        prop::collection::vec(alpha_spec(), 1..=6),
        prop::collection::vec(rule_spec(), 1..=4),
        prop_oneof![
            1 => prop::collection::vec(op(fire_weight), 1..=10),
            4 => prop::collection::vec(op(fire_weight), 20..=40),
        ],
    )
        .prop_map(|(schema, pool, rules, ops)| Case {
            schema,
            pool,
            rules,
            ops,
        })
}

// ---------------------------------------------------------------------------
// Resolving choices into values, expressions and rules.
// ---------------------------------------------------------------------------

/// The constants of the generated tests and facts.
const VALUES: Values = Values {
    ints: 5,
    strings: &["a", "ab", "b"],
    floats: &[0.0, -0.0, 0.5, 1.0, 2.5],
    null_every: 4,
};

fn numeric(k: Kind) -> bool {
    matches!(k, Kind::Int | Kind::Float)
}

/// Whether `a op b` type-checks for fields of these kinds.
fn comparable(op: CmpOp, a: Kind, b: Kind) -> bool {
    match op {
        CmpOp::Eq | CmpOp::Ne => a == b || (numeric(a) && numeric(b)),
        _ => (numeric(a) && numeric(b)) || (a == Kind::Str && b == Kind::Str),
    }
}

fn c(v: Value) -> Expr {
    Expr::Const(v)
}

fn not(e: Expr) -> Expr {
    Expr::Not(Box::new(e))
}

fn epoch() -> Expr {
    c(Value::Timestamp(Timestamp::from_millis(0)))
}

fn now() -> Expr {
    Expr::Call(Builtin::Now, Vec::new())
}

struct Builder<'a> {
    schema: &'a [Vec<FieldSpec>],
    pool: &'a [AlphaSpec],
    /// Rules with insert, modify and retract actions, not just emits.
    forward: bool,
}

impl Builder<'_> {
    fn ty(&self, raw: u8) -> usize {
        raw as usize % self.schema.len()
    }

    fn fields(&self, ty: usize) -> &[FieldSpec] {
        &self.schema[ty]
    }

    fn schema(&self) -> Schema {
        let mut schema = Schema::new();
        for (t, fields) in self.schema.iter().enumerate() {
            let mut ft = FactType::new(format!("t{t}"), FactKind::Fact);
            for (i, f) in fields.iter().enumerate() {
                ft = ft.field(format!("f{i}"), f.kind.value_type(), f.optional);
            }
            schema.add(ft).expect("distinct type names");
        }
        schema
    }

    fn alpha_test(&self, ty: usize, spec: AlphaSpec) -> Expr {
        let fields = self.fields(ty);
        let n = fields.len();
        let i = spec.field as usize % n;
        let f = fields[i];
        // Another field of the same fact.
        let j = (i + 1 + spec.b as usize % (n - 1)) % n;
        let x = || Expr::own(fid(i));
        let (c1, c2) = (
            VALUES.constant(f.kind, spec.a),
            VALUES.constant(f.kind, spec.b),
        );
        match spec.shape % 16 {
            0 => x().eq(c(c1)),
            1 => x().cmp(CmpOp::Ne, c(c1)),
            2 => x().lt(c(c1)),
            3 => x().cmp(CmpOp::Ge, c(c1)),
            4 => x().is_in(vec![c1, c2]),
            5 => Expr::Or(vec![x().eq(c(c1)), x().eq(c(c2))]),
            6 => not(x().lt(c(c1))),
            7 => not(x().eq(c(c1))),
            8 if f.optional => x().eq(c(Value::Null)),
            8 => x().gt(c(c1)),
            9 if f.optional => x().cmp(CmpOp::Ne, c(Value::Null)),
            9 => x().cmp(CmpOp::Le, c(c1)),
            10 => c(c1).lt(x()),
            11 if comparable(CmpOp::Lt, f.kind, fields[j].kind) => x().lt(Expr::own(fid(j))),
            11 => x().cmp(CmpOp::Ne, c(c1)),
            12 => not(x().is_in(vec![c1, c2])),
            13 => Expr::Or(vec![
                x().eq(c(c1)),
                Expr::own(fid(j)).eq(c(VALUES.constant(fields[j].kind, spec.a))),
            ]),
            // A membership set (the host's): filed as a filter, not an alpha test.
            14 if f.kind != Kind::Float => Expr::InSet(Box::new(x()), SetId::new(0)),
            14 => x().cmp(CmpOp::Ge, c(c1)),
            _ => match f.kind {
                Kind::Int => x().lt(c(Value::Float(1.5))),
                Kind::Float => x().eq(c(Value::Int(i64::from(spec.a % VALUES.ints)))),
                Kind::Str => x().cmp(CmpOp::StartsWith, c(Value::from("a"))),
            },
        }
    }

    /// Resolves a pattern on the slots bound so far (their fact types).
    fn pattern(&self, spec: &PatSpec, slots: &[usize]) -> Pattern {
        let ty = self.ty(spec.ty);
        let fields = self.fields(ty);
        let mut p = Pattern::new(TypeId::new(ty as u32));
        for &t in &spec.tests {
            p = p.test(self.alpha_test(ty, self.pool[t as usize % self.pool.len()]));
        }
        if slots.is_empty() {
            return p;
        }
        for j in &spec.joins {
            let s = j.slot as usize % slots.len();
            let theirs = self.fields(slots[s]);
            let other = j.other as usize % theirs.len();
            let same: Vec<usize> = (0..fields.len())
                .filter(|&i| fields[i].kind == theirs[other].kind)
                .collect();
            if same.is_empty() {
                continue;
            }
            let mine = Expr::own(fid(same[j.field as usize % same.len()]));
            let bound = Expr::bound(slot(s), fid(other));
            p = p.test(if j.flipped {
                bound.eq(mine)
            } else {
                mine.eq(bound)
            });
        }
        for f in &spec.filters {
            let s = f.slot as usize % slots.len();
            let theirs = self.fields(slots[s]);
            let other = f.other as usize % theirs.len();
            let their_kind = theirs[other].kind;
            let shape = f.op % 8;
            // The operator whose typing the filter needs.
            let op = match shape {
                0..=5 => CMP_OPS[shape as usize],
                6 => CmpOp::Lt,
                _ if numeric(their_kind) => CmpOp::Lt,
                _ => CmpOp::Ne,
            };
            let fits: Vec<usize> = (0..fields.len())
                .filter(|&i| comparable(op, fields[i].kind, their_kind))
                .collect();
            if fits.is_empty() {
                continue;
            }
            let mine = Expr::own(fid(fits[f.field as usize % fits.len()]));
            let bound = Expr::bound(slot(s), fid(other));
            p = p.test(match shape {
                0..=5 => mine.cmp(op, bound),
                6 => not(mine.lt(bound)),
                _ if numeric(their_kind) => {
                    Expr::Arith(ArithOp::Add, Box::new(mine), Box::new(bound))
                        .cmp(CmpOp::Ge, c(Value::Int(i64::from(f.c % 8))))
                }
                _ => mine.cmp(CmpOp::Ne, bound),
            });
        }
        p
    }

    fn test(&self, spec: &TestSpec, slots: &[usize]) -> Expr {
        if slots.is_empty() {
            // Reads only the clock (at the epoch): true or false, but never folded.
            return if spec.c.is_multiple_of(2) {
                now().cmp(CmpOp::Ge, epoch())
            } else {
                now().lt(epoch())
            };
        }
        let op = [CmpOp::Eq, CmpOp::Ne, CmpOp::Lt, CmpOp::Ge][spec.op as usize % 4];
        let s1 = spec.lhs.0 as usize % slots.len();
        let f1 = spec.lhs.1 as usize % self.fields(slots[s1]).len();
        let k1 = self.fields(slots[s1])[f1].kind;
        let lhs = Expr::bound(slot(s1), fid(f1));
        let rhs = spec
            .rhs
            .and_then(|(s2, f2)| {
                let s2 = s2 as usize % slots.len();
                let theirs = self.fields(slots[s2]);
                let fits: Vec<usize> = (0..theirs.len())
                    .filter(|&i| comparable(op, k1, theirs[i].kind))
                    .collect();
                let f2 = *fits.get(f2 as usize % fits.len().max(1))?;
                Some(Expr::bound(slot(s2), fid(f2)))
            })
            .unwrap_or_else(|| c(VALUES.constant(k1, spec.c)));
        let e = lhs.cmp(op, rhs);
        if spec.clock {
            Expr::Or(vec![e, now().lt(epoch())])
        } else {
            e
        }
    }

    /// An expression giving a value for field `target`, from a constant or
    /// a bound field; `None` leaves an optional field null.
    fn value(&self, target: FieldSpec, raw: u8, slots: &[usize]) -> Option<Expr> {
        if target.optional && raw % 5 == 4 {
            return None;
        }
        let constant = c(VALUES.constant(target.kind, raw / 4));
        // A bound field that can fill the target: same kind, and never null
        // where the target is required.
        let source = (0..slots.len())
            .map(|k| (k + raw as usize / 4) % slots.len())
            .find_map(|s| {
                let fields = self.fields(slots[s]);
                (0..fields.len())
                    .find(|&i| {
                        fields[i].kind == target.kind && (target.optional || !fields[i].optional)
                    })
                    .map(|i| Expr::bound(slot(s), fid(i)))
            });
        Some(match (raw % 4, source) {
            (1, Some(b)) => b,
            (2, Some(b)) if target.kind == Kind::Int => Expr::Arith(
                ArithOp::Rem,
                Box::new(Expr::Arith(
                    ArithOp::Add,
                    Box::new(b),
                    Box::new(c(Value::Int(1))),
                )),
                Box::new(c(Value::Int(i64::from(VALUES.ints)))),
            ),
            _ => constant,
        })
    }

    /// The rule's actions, and the conditions they add: every insert is
    /// guarded by "no such fact yet", the usual forward-chaining idiom, so
    /// that runaway rules do not fill working memory (they may still loop,
    /// which `max_firings` stops).
    fn actions(&self, spec: &RuleSpec, slots: &[usize]) -> (Vec<Action>, Vec<Condition>) {
        let emit = || {
            let args = match slots.first() {
                Some(_) => vec![("x".into(), Arg::Expr(Expr::bound(slot(0), fid(0))))],
                None => Vec::new(),
            };
            Action::Emit(Emit {
                action: "note".into(),
                args,
                branches: Vec::new(),
            })
        };
        if !self.forward {
            return (vec![emit()], Vec::new());
        }
        let mut actions = Vec::new();
        let mut guards = Vec::new();
        for a in &spec.actions {
            match a.kind % 4 {
                0 => {
                    let ty = self.ty(a.ty);
                    let mut fields = Vec::new();
                    let mut guard = Pattern::new(TypeId::new(ty as u32));
                    for (i, f) in self.fields(ty).iter().enumerate() {
                        if let Some(e) = self.value(*f, a.values[i % a.values.len()], slots) {
                            guard = guard.test(Expr::own(fid(i)).eq(e.clone()));
                            fields.push((fid(i), e));
                        }
                    }
                    actions.push(Action::Insert {
                        ty: TypeId::new(ty as u32),
                        fields,
                    });
                    guards.push(Condition::Not(guard));
                }
                1 if !slots.is_empty() => {
                    let s = a.slot as usize % slots.len();
                    let target = self.fields(slots[s]);
                    let mut fields: Vec<(FieldId, Expr)> = Vec::new();
                    for pair in a.values.chunks(2).take(1 + a.kind as usize / 4 % 2) {
                        let i = pair[0] as usize % target.len();
                        if fields.iter().any(|(f, _)| f.index() == i) {
                            continue;
                        }
                        let e = self
                            .value(target[i], pair[1], slots)
                            .unwrap_or(c(Value::Null));
                        fields.push((fid(i), e));
                    }
                    actions.push(Action::Modify {
                        slot: slot(s),
                        fields,
                    });
                }
                2 if !slots.is_empty() => actions.push(Action::Retract {
                    slot: slot(a.slot as usize % slots.len()),
                }),
                _ => actions.push(emit()),
            }
        }
        (actions, guards)
    }

    fn rule(&self, i: usize, spec: &RuleSpec, conditions: &[CondSpec]) -> Rule {
        let mut rule = Rule::new(format!("r{i}"));
        rule.salience = i32::from(spec.salience);
        rule.no_loop = spec.no_loop;
        if self.forward && spec.grouped {
            rule.group = Some("g".into());
        }
        let mut slots = Vec::new();
        for cond in conditions {
            let cond = match cond {
                CondSpec::Pattern(p) => {
                    let pattern = self.pattern(p, &slots);
                    slots.push(pattern.ty.index());
                    Condition::Pattern(pattern)
                }
                CondSpec::Not(p) => Condition::Not(self.pattern(p, &slots)),
                CondSpec::Exists(p) => Condition::Exists(self.pattern(p, &slots)),
                CondSpec::Test(t) => Condition::Test(self.test(t, &slots)),
            };
            rule = rule.when(cond);
        }
        let (actions, guards) = self.actions(spec, &slots);
        for g in guards {
            rule = rule.when(g);
        }
        for a in actions {
            rule = rule.then(a);
        }
        rule
    }

    fn rules(&self, specs: &[RuleSpec]) -> RuleSet {
        let mut rules = RuleSet::new(self.schema());
        rules.add_set("vip");
        let mut conditions: Vec<Vec<CondSpec>> = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let mut own = match spec.copy {
                Some(c) if i > 0 => {
                    let earlier = &conditions[c as usize % i];
                    earlier[..1 + c as usize / 8 % earlier.len()].to_vec()
                }
                _ => Vec::new(),
            };
            own.extend(spec.conditions.iter().cloned());
            own.truncate(3);
            let rule = self.rule(i, spec, &own);
            conditions.push(own);
            if let Err(e) = rules.add_rule(rule.clone()) {
                panic!("the generator made an ill-typed rule: {e}\n{rule:#?}");
            }
        }
        rules
    }
}

// ---------------------------------------------------------------------------
// Describing cases for failure messages.
// ---------------------------------------------------------------------------

fn pattern_text(p: &Pattern) -> String {
    common::pattern_text(p, &format!("t{}", p.ty.index()), " [join]")
}

fn describe_rules(rules: &RuleSet) -> String {
    let mut out = String::new();
    for (i, t) in rules.schema().types().iter().enumerate() {
        let _ = writeln!(out, "  type t{i}({})", fields_text(t));
    }
    for (i, r) in rules.rules().iter().enumerate() {
        let _ = write!(out, "  rule r{i}");
        if r.salience != 0 {
            let _ = write!(out, " salience {}", r.salience);
        }
        if r.no_loop {
            let _ = write!(out, " no-loop");
        }
        if let Some(g) = &r.group {
            let _ = write!(out, " group {g}");
        }
        out.push_str(" when");
        for cond in &r.conditions {
            let text = match cond {
                Condition::Pattern(p) => pattern_text(p),
                Condition::Not(p) => format!("not {}", pattern_text(p)),
                Condition::Exists(p) => format!("exists {}", pattern_text(p)),
                Condition::Test(e) => format!("test {}", expr_text(e)),
                Condition::Aggregate(a) => format!("{a:?}"),
            };
            let _ = write!(out, "\n      {text}");
        }
        for a in &r.actions {
            let text = match a {
                Action::Insert { ty, fields } => {
                    format!("insert t{}{}", ty.index(), assigns(fields))
                }
                Action::Modify { slot, fields } => {
                    format!("modify ${}{}", slot.index(), assigns(fields))
                }
                Action::Retract { slot } => format!("retract ${}", slot.index()),
                Action::Emit(e) => format!("emit {}", e.action),
                Action::Delayed { .. } => format!("{a:?}"),
            };
            let _ = write!(out, "\n    then {text}");
        }
        out.push('\n');
    }
    out
}

fn assigns(fields: &[(FieldId, Expr)]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .map(|(f, e)| format!("f{} = {}", f.index(), expr_text(e)))
        .collect();
    format!(" {{{}}}", parts.join(", "))
}

fn matches_text(ms: &[(RuleId, Vec<FactId>)]) -> String {
    if ms.is_empty() {
        return "    (none)\n".into();
    }
    let mut out = String::new();
    for (r, facts) in ms {
        let _ = writeln!(out, "    r{} {:?}", r.index(), facts);
    }
    out
}

// ---------------------------------------------------------------------------
// Running a case.
// ---------------------------------------------------------------------------

/// The host: set 0 ("vip") holds the string "a" and the ints 0 and 1.
struct Sets;

impl Host for Sets {
    fn in_set(&self, set: SetId, key: &Value) -> bool {
        set.index() == 0 && (matches!(key, Value::Int(0 | 1)) || *key == Value::from("a"))
    }
}

/// Working memory, and matches, past which a case stops early (after its
/// last comparison), to keep the brute force cheap.
const FACT_CAP: usize = 40;
const MATCH_CAP: usize = 10_000;

/// Firings allowed per `Fire` operation under forward chaining: rules may
/// activate each other for ever, and `SessionError::RunLimit` is accepted.
const FIRINGS: usize = 200;

/// Firings per call to `Session::fire` (its `max_firings`): a `Fire`
/// operation makes up to `FIRINGS / SLICE` calls. Rules that insert can add
/// two facts per firing, so working memory stays below `FACT_CAP + 2 * SLICE`.
const SLICE: usize = 10;

struct Run {
    session: Session<Sets>,
    rules_text: String,
    log: Vec<String>,
}

impl Run {
    fn fail(&self, what: String) -> TestCaseError {
        let mut facts = String::new();
        for f in reference::facts_of(&self.session) {
            let _ = writeln!(
                facts,
                "    {:?} t{}({})",
                f.id,
                f.ty.index(),
                values_text(&f.values)
            );
        }
        TestCaseError::fail(format!(
            "{what}\nrules (normalized):\n{}operations:\n    {}\nworking memory:\n{facts}",
            self.rules_text,
            self.log.join("\n    "),
        ))
    }

    /// The engine's matches must be the reference's. Then whether the case
    /// should stop: working memory or the matches have grown too large.
    fn check(&self) -> Result<bool, TestCaseError> {
        let engine = self.session.matches();
        let facts = reference::facts_of(&self.session);
        let expected = reference::all_matches(
            self.session.network().rules(),
            &facts,
            self.session.host(),
            Timestamp::from_millis(0),
        );
        if engine != expected {
            return Err(self.fail(differences(
                "matches",
                self.log.len(),
                &expected,
                &engine,
                matches_text,
            )));
        }
        for p in self.session.pending() {
            if !engine.contains(&p) {
                return Err(self.fail(format!("pending activation {p:?} is not a match")));
            }
        }
        Ok(engine.len() > MATCH_CAP || self.session.fact_count() > FACT_CAP)
    }

    fn live(&self) -> Vec<FactId> {
        let mut ids: Vec<FactId> = self.session.facts().map(|(id, _, _)| id).collect();
        ids.sort();
        ids
    }
}

fn run(case: &Case, forward: bool) -> Result<(), TestCaseError> {
    let builder = Builder {
        schema: &case.schema,
        pool: &case.pool,
        forward,
    };
    let rules = builder.rules(&case.rules);
    let rules_text = describe_rules(&rules);
    let network = Network::shared(rules).expect("the engine compiles every generated rule");
    let mut session = Session::with_host(network, Sets);
    if forward {
        session.set_config(SessionConfig {
            max_firings: SLICE,
            ..SessionConfig::default()
        });
    }
    let mut run = Run {
        session,
        rules_text,
        log: Vec::new(),
    };
    let mut dead: Vec<FactId> = Vec::new();
    run.check()?;
    for op in &case.ops {
        match op {
            Op::Insert { ty, values } => {
                let ty = builder.ty(*ty);
                let values: Vec<Value> = builder
                    .fields(ty)
                    .iter()
                    .zip(values)
                    .map(|(f, r)| VALUES.field_value(*f, *r))
                    .collect();
                let text = values_text(&values);
                match run.session.insert(TypeId::new(ty as u32), values) {
                    Ok(id) => run.log.push(format!("insert t{ty}({text}) -> {id:?}")),
                    Err(e) => return Err(run.fail(format!("insert t{ty}({text}) failed: {e}"))),
                }
            }
            Op::Modify { which, changes } => {
                let live = run.live();
                if live.is_empty() {
                    continue;
                }
                let id = live[*which as usize % live.len()];
                let ty = run.session.fact(id).expect("live").0.index();
                let fields = builder.fields(ty);
                let changes: Vec<(FieldId, Value)> = changes
                    .iter()
                    .map(|&(f, r)| {
                        let i = f as usize % fields.len();
                        (fid(i), VALUES.field_value(fields[i], r))
                    })
                    .collect();
                let text: Vec<String> = changes
                    .iter()
                    .map(|(f, v)| format!("f{} = {v}", f.index()))
                    .collect();
                let text = format!("modify {id:?} {{{}}}", text.join(", "));
                if let Err(e) = run.session.modify(id, &changes) {
                    return Err(run.fail(format!("{text} failed: {e}")));
                }
                run.log.push(text);
            }
            Op::Retract { which } => {
                let live = run.live();
                if live.is_empty() {
                    continue;
                }
                let id = live[*which as usize % live.len()];
                if let Err(e) = run.session.retract(id) {
                    return Err(run.fail(format!("retract {id:?} failed: {e}")));
                }
                run.log.push(format!("retract {id:?}"));
                dead.push(id);
            }
            Op::Stale { which, retract } => {
                if dead.is_empty() {
                    continue;
                }
                let id = dead[*which as usize % dead.len()];
                let (text, result) = if *retract {
                    (format!("retract {id:?} (stale)"), run.session.retract(id))
                } else {
                    let change = [(fid(0), Value::Null)];
                    (
                        format!("modify {id:?} (stale)"),
                        run.session.modify(id, &change),
                    )
                };
                run.log.push(text.clone());
                if result != Err(FactError::NoSuchFact(id)) {
                    return Err(run.fail(format!("{text} gave {result:?}")));
                }
            }
            Op::Fire if forward => {
                // Up to `FIRINGS` firings, in calls of `max_firings` each, so
                // that matches are compared along the way and a run that fills
                // working memory is cut short before the brute force drowns.
                for _ in 0..FIRINGS / SLICE {
                    let result = run.session.fire();
                    run.log.push(format!("fire -> {result:?}"));
                    match result {
                        Ok(_) => {
                            let left = run.session.pending();
                            if !left.is_empty() {
                                return Err(run.fail(format!(
                                    "fire returned with activations pending: {left:?}"
                                )));
                            }
                            break;
                        }
                        Err(SessionError::RunLimit { .. }) => {}
                        Err(SessionError::Action { .. }) => break,
                        Err(e) => return Err(run.fail(format!("fire failed: {e}"))),
                    }
                    if run.check()? {
                        return Ok(());
                    }
                }
            }
            Op::Fire => {
                // Rules only emit, so firing changes nothing: exactly the
                // pending activations fire, in the order `pending` gives.
                let pending = run.session.pending();
                let before = run.session.decision_count();
                let result = run.session.fire();
                run.log.push(format!("fire -> {result:?}"));
                let fired: Vec<(RuleId, Vec<FactId>)> = run
                    .session
                    .decisions()
                    .skip(before)
                    .map(|d| (d.rule(), d.facts().to_vec()))
                    .collect();
                if result != Ok(pending.len()) || fired != pending {
                    return Err(run.fail(format!(
                        "fire gave {result:?} and fired\n{}but the pending activations were\n{}",
                        matches_text(&fired),
                        matches_text(&pending),
                    )));
                }
                if !run.session.pending().is_empty() {
                    return Err(run.fail("fire left activations pending".into()));
                }
            }
        }
        if run.check()? {
            break;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Rules that only emit: working memory changes only by the test's own
    /// inserts, modifies and retracts.
    #[test]
    fn matches_agree_with_the_reference(case in case(1)) {
        run(&case, false)?;
    }

    /// Rules that insert, modify and retract facts as they fire; they may
    /// activate each other for ever, so each `fire` operation gets at most
    /// `FIRINGS` firings and `SessionError::RunLimit` is accepted, as is an
    /// action that fails (it modifies or retracts a fact already retracted).
    #[test]
    fn matches_agree_with_the_reference_under_forward_chaining(case in case(3)) {
        run(&case, true)?;
    }
}
