//! The shared benchmark workloads W2 (marketing triggers) and W3 (join with
//! profiles), generated deterministically, plus the naive
//! evaluate-every-rule loop W2 is compared with.
//!
//! Used by `benches/engine.rs`, `benches/memory.rs`, `examples/w2_profile.rs`
//! and `tests/workloads.rs`, which checks on small sizes that the engine and
//! the naive loop agree. Its `Rng` also drives `benches/time_workload.rs`
//! and `examples/generate_events.rs`.

// Shared by several targets, each using a part of it.
#![allow(dead_code, missing_docs)]

use nudge::ir::{self, Action, CmpOp, Condition, Emit, Expr, Pattern, Rule, RuleSet, Slot};
use nudge::{FactKind, FactType, FieldId, Schema, TypeId, Value, ValueType};

/// SplitMix64: small, fast and the same everywhere.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

pub const EVENT_TYPES: [&str; 5] = [
    "page_view",
    "add_to_cart",
    "order_paid",
    "app_open",
    "coupon_redeemed",
];
const WEIGHTS: [u64; 5] = [40, 20, 12, 20, 8];
pub const CHANNELS: [&str; 4] = ["app", "web", "mini_program", "store"];

// Field order of every W2 event type.
pub const USER: FieldId = FieldId::new(0);
pub const CATEGORY: FieldId = FieldId::new(1);
pub const AMOUNT: FieldId = FieldId::new(2);
pub const CHANNEL: FieldId = FieldId::new(3);
pub const CITY: FieldId = FieldId::new(4);
pub const LEVEL: FieldId = FieldId::new(5);

pub fn category(i: u64) -> String {
    format!("cat{i}")
}

pub fn city(i: u64) -> String {
    format!("city{i}")
}

/// The W2 schema: five event types with the same six fields.
pub fn w2_schema() -> Schema {
    let mut schema = Schema::new();
    for name in EVENT_TYPES {
        let t = FactType::new(name, FactKind::Event)
            .field("user", ValueType::Int, false)
            .field("category", ValueType::String, false)
            .field("amount", ValueType::Int, false)
            .field("channel", ValueType::String, false)
            .field("city", ValueType::String, false)
            .field("level", ValueType::Int, false);
        schema.add(t).expect("distinct names");
    }
    schema
}

/// The shared pool of 31 conditions, grouped by field.
fn pool(field: FieldId) -> Vec<Expr> {
    let own = || Expr::own(field);
    let s = |v: String| Expr::Const(Value::Str(v.into()));
    match field {
        CATEGORY => (0..10).map(|k| own().eq(s(category(k)))).collect(),
        AMOUNT => [100, 200, 500, 1000, 1500]
            .into_iter()
            .map(|v| own().gt(Expr::value(v as i64)))
            .chain(
                [50, 200]
                    .into_iter()
                    .map(|v| own().lt(Expr::value(v as i64))),
            )
            .collect(),
        CHANNEL => CHANNELS
            .iter()
            .map(|c| own().eq(s(c.to_string())))
            .collect(),
        CITY => (0..10).map(|k| own().eq(s(city(k)))).collect(),
        LEVEL => [3, 5, 7, 9]
            .into_iter()
            .map(|v| own().cmp(CmpOp::Ge, Expr::value(v as i64)))
            .chain([own().cmp(CmpOp::Le, Expr::value(2i64))])
            .collect(),
        _ => Vec::new(),
    }
}

/// R rules: each picks one event type and 2 to 4 distinct fields, and one
/// condition of the pool per field. The action records the rule.
pub fn w2_rules(r: usize, seed: u64) -> (RuleSet, Vec<Vec<Expr>>, Vec<TypeId>) {
    let mut rng = Rng(seed);
    let mut rules = RuleSet::new(w2_schema());
    let fields = [CATEGORY, AMOUNT, CHANNEL, CITY, LEVEL];
    let mut tests_of = Vec::with_capacity(r);
    let mut type_of = Vec::with_capacity(r);
    for i in 0..r {
        let ty = TypeId::new(rng.below(5) as u32);
        let n = 2 + rng.below(3) as usize;
        let mut chosen: Vec<FieldId> = Vec::new();
        while chosen.len() < n {
            let f = fields[rng.below(5) as usize];
            if !chosen.contains(&f) {
                chosen.push(f);
            }
        }
        let tests: Vec<Expr> = chosen
            .iter()
            .map(|&f| {
                let p = pool(f);
                p[rng.below(p.len() as u64) as usize].clone()
            })
            .collect();
        let mut pattern = Pattern::new(ty);
        pattern.tests = tests.clone();
        let rule = Rule::new(format!("w2_{i}"))
            .when(Condition::Pattern(pattern))
            .then(Action::Emit(Emit {
                action: "fire".into(),
                args: vec![(
                    "user".into(),
                    ir::Arg::Expr(Expr::bound(Slot::new(0), USER)),
                )],
                branches: vec![],
            }));
        rules.add_rule(rule).expect("W2 rules are well typed");
        tests_of.push(tests);
        type_of.push(ty);
    }
    (rules, tests_of, type_of)
}

/// One W2 event: its type and values.
pub type Event = (TypeId, Vec<Value>);

/// `n` W2 events: types by weight, fields uniform.
pub fn w2_events(n: usize, seed: u64) -> Vec<Event> {
    let mut rng = Rng(seed ^ 0x5EED);
    let categories: Vec<Value> = (0..50).map(|k| Value::Str(category(k).into())).collect();
    let cities: Vec<Value> = (0..100).map(|k| Value::Str(city(k).into())).collect();
    let channels: Vec<Value> = CHANNELS.iter().map(|c| Value::Str((*c).into())).collect();
    (0..n)
        .map(|_| {
            let mut roll = rng.below(100);
            let mut ty = 0;
            while roll >= WEIGHTS[ty] {
                roll -= WEIGHTS[ty];
                ty += 1;
            }
            let values = vec![
                Value::Int(1 + rng.below(100_000) as i64),
                categories[rng.below(50) as usize].clone(),
                Value::Int(rng.below(2_001) as i64),
                channels[rng.below(4) as usize].clone(),
                cities[rng.below(100) as usize].clone(),
                Value::Int(1 + rng.below(10) as i64),
            ];
            (TypeId::new(ty as u32), values)
        })
        .collect()
}

/// The naive baseline: every rule of the event's type, every test, one by
/// one. Returns (firings, checksum of fired rule indices).
pub struct Naive {
    by_type: Vec<Vec<(usize, Vec<Expr>)>>,
}

impl Naive {
    pub fn new(tests_of: &[Vec<Expr>], type_of: &[TypeId]) -> Self {
        let mut by_type = vec![Vec::new(); EVENT_TYPES.len()];
        for (i, (tests, ty)) in tests_of.iter().zip(type_of).enumerate() {
            by_type[ty.index()].push((i, tests.clone()));
        }
        Naive { by_type }
    }

    pub fn run(&self, event: &Event, firings: &mut u64, checksum: &mut u64) {
        let env = ir::FactEnv(&event.1);
        for (rule, tests) in &self.by_type[event.0.index()] {
            if tests.iter().all(|t| ir::test(t, &env)) {
                *firings += 1;
                *checksum = checksum.wrapping_add(*rule as u64);
            }
        }
    }
}

/// Runs events through a session: insert, fire, count, retract.
pub fn run_engine(
    session: &mut nudge::Session,
    events: &[Event],
    firings: &mut u64,
    checksum: &mut u64,
) {
    for (ty, values) in events {
        let id = session.insert(*ty, values.clone()).expect("valid event");
        session.fire().expect("no runaway");
        for d in session.decisions() {
            *firings += 1;
            *checksum = checksum.wrapping_add(d.rule().index() as u64);
        }
        session.clear_decisions();
        session.retract(id).expect("live event");
    }
}

/// W3: the W2 types plus `profile` and `rewarded`; 10 rules joining orders
/// with profiles and a negation.
pub fn w3_rules(seed: u64) -> RuleSet {
    let mut schema = w2_schema();
    let profile = schema
        .add(
            FactType::new("profile", FactKind::Fact)
                .field("user", ValueType::Int, false)
                .field("level", ValueType::Int, false)
                .field("city", ValueType::String, false),
        )
        .expect("new type");
    let rewarded = schema
        .add(FactType::new("rewarded", FactKind::Fact).field("user", ValueType::Int, false))
        .expect("new type");
    let order = TypeId::new(2);
    let mut rng = Rng(seed);
    let mut rules = RuleSet::new(schema);
    for i in 0..10 {
        let a = [100, 200, 500, 1000, 1500][rng.below(5) as usize];
        let l = 1 + rng.below(10) as i64;
        let cities: Vec<Value> = (0..10)
            .map(|_| Value::Str(city(rng.below(100)).into()))
            .collect();
        let o = Pattern::new(order).test(Expr::own(AMOUNT).gt(Expr::value(a as i64)));
        let p = Pattern::new(profile)
            .test(Expr::own(FieldId::new(0)).eq(Expr::bound(Slot::new(0), USER)))
            .test(Expr::own(FieldId::new(1)).cmp(CmpOp::Ge, Expr::value(l)))
            .test(Expr::own(FieldId::new(2)).is_in(cities));
        let not_rewarded = Pattern::new(rewarded)
            .test(Expr::own(FieldId::new(0)).eq(Expr::bound(Slot::new(0), USER)));
        let rule = Rule::new(format!("w3_{i}"))
            .when(Condition::Pattern(o))
            .when(Condition::Pattern(p))
            .when(Condition::Not(not_rewarded))
            .then(Action::Insert {
                ty: rewarded,
                fields: vec![(FieldId::new(0), Expr::bound(Slot::new(0), USER))],
            });
        rules.add_rule(rule).expect("W3 rules are well typed");
    }
    rules
}

/// The 100,000 W3 profiles.
pub fn w3_profiles(n: usize, seed: u64) -> Vec<Vec<Value>> {
    let mut rng = Rng(seed ^ 0xF00D);
    (1..=n)
        .map(|u| {
            vec![
                Value::Int(u as i64),
                Value::Int(1 + rng.below(10) as i64),
                Value::Str(city(rng.below(100)).into()),
            ]
        })
        .collect()
}
