//! A brute-force reference evaluator for timed rules, following
//! `docs/time.md` to the letter.
//!
//! It holds every event ever inserted and not retracted, with its time and
//! its place in the insertion order, and never expires anything: the time
//! bounds of `docs/time.md` decide, at each evaluation, which events a
//! pattern sees. Matches are computed by trying every combination, condition
//! by condition, as a pure function of working memory and the clock. It
//! shares nothing with the engine but the meaning of expressions
//! (`ir::eval`, `ir::test`, `ir::compare`).
//!
//! Windows are closed intervals: an event exactly `D` old, or exactly `D`
//! after or before `s`, is in, and what a window decides is decided at the
//! first millisecond after it (a `before s` window ends with `s`, so its
//! absence is decided when the watermark reaches `s`). A modify is a retraction followed by an insertion
//! that keeps the id and the place in the insertion order: [`World::without`]
//! gives working memory between the two.
//!
//! What it does not model: `Condition::Test` reading the clock, host sets
//! and functions. Aggregates skip null values; the tests aggregate required
//! fields only.

use nudge_core::{Duration, FieldId, Timestamp, TypeId, Value, ValueType};
use nudge_rete::ir::{
    compare, eval, test, Action, AggFunc, Aggregate, CmpOp, Condition, Env, Expr, FunctionId,
    Pattern, Rule, RuleId, RuleSet, SetId, Slot,
};
use nudge_rete::FactId;
use std::collections::{BTreeMap, BTreeSet};

/// One fact or event of working memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub id: FactId,
    pub ty: TypeId,
    pub values: Vec<Value>,
    /// The event time, in ms; `None` for a fact.
    pub time: Option<i64>,
    /// Place in the insertion order (kept on modify).
    pub seq: u64,
    /// Number of times the item was modified: a modified fact starts new
    /// matches.
    pub version: u64,
}

/// What a slot of a match holds, as the identity of the match: a fact (at a
/// version) or an aggregate group (its by-values, then its value).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bound {
    Fact(FactId, u64),
    Group(Vec<Value>),
}

/// One complete match.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    pub rule: RuleId,
    pub slots: Vec<Bound>,
    /// The values of each slot: the fact's fields or the group's.
    pub values: Vec<Vec<Value>>,
}

impl Match {
    /// The identity of the match: a match that keeps it from one
    /// observation to the next is the same match.
    pub fn ident(&self) -> (RuleId, Vec<Bound>) {
        (self.rule, self.slots.clone())
    }
}

/// Working memory and the clock.
#[derive(Debug, Clone)]
pub struct World {
    pub items: Vec<Item>,
    /// The processing clock, in ms.
    pub now: i64,
    /// The lateness `L`, in ms.
    pub lateness: i64,
    next_seq: u64,
}

/// The rule's horizon `H`: the longest `within` written in its conditions
/// (but not the windows of `before` patterns, measured from a bound event)
/// plus the longest delay of its delayed actions, plus 1 ms when that sum
/// is not 0 (the instant just after a window still sees the rule's events).
pub fn horizon(rule: &Rule) -> i64 {
    let mut within = 0;
    for c in &rule.conditions {
        let w = match c {
            Condition::Pattern(p) | Condition::Not(p) | Condition::Exists(p) => {
                if p.window.before.is_some() {
                    None
                } else {
                    p.window.within
                }
            }
            Condition::Aggregate(a) => a.within,
            Condition::Test(_) => None,
        };
        if let Some(d) = w {
            within = within.max(d.as_millis());
        }
    }
    let mut delay = 0;
    for a in &rule.actions {
        if let Action::Delayed { after, .. } = a {
            delay = delay.max(after.as_millis());
        }
    }
    match within + delay {
        0 => 0,
        span => span + 1,
    }
}

/// A binding of a partial match.
#[derive(Debug, Clone)]
enum Binding<'a> {
    Item(&'a Item),
    Group(Vec<Value>),
}

impl Binding<'_> {
    fn field(&self, f: FieldId) -> Value {
        let values = match self {
            Binding::Item(i) => &i.values[..],
            Binding::Group(vs) => &vs[..],
        };
        values.get(f.index()).cloned().unwrap_or(Value::Null)
    }
}

struct RefEnv<'a, 'b> {
    own: Option<&'a [Value]>,
    bound: &'a [Binding<'b>],
    now: i64,
}

impl Env for RefEnv<'_, '_> {
    fn own(&self, field: FieldId) -> Value {
        self.own
            .and_then(|v| v.get(field.index()))
            .cloned()
            .unwrap_or(Value::Null)
    }
    fn bound(&self, slot: Slot, field: FieldId) -> Value {
        match self.bound.get(slot.index()) {
            Some(b) => b.field(field),
            None => Value::Null,
        }
    }
    fn in_set(&self, _: SetId, _: &Value) -> bool {
        false
    }
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.now)
    }
    fn call_host(&self, _: FunctionId, _: &[Value]) -> Value {
        Value::Null
    }
}

/// "`e` comes after `s`": later in time, or at the same time and inserted
/// later.
fn comes_after(e: &Item, s: &Item) -> bool {
    (e.time, e.seq) > (s.time, s.seq)
}

impl World {
    /// An empty working memory with the clock at `now`.
    pub fn new(now: i64, lateness: i64) -> Self {
        World {
            items: Vec::new(),
            now,
            lateness,
            next_seq: 0,
        }
    }

    /// The watermark `W = now - L`.
    pub fn watermark(&self) -> i64 {
        self.now - self.lateness
    }

    pub fn get(&self, id: FactId) -> Option<&Item> {
        self.items.iter().find(|i| i.id == id)
    }

    /// Adds a fact (`time: None`) or an event at `time`.
    pub fn insert(&mut self, id: FactId, ty: TypeId, values: Vec<Value>, time: Option<i64>) {
        self.next_seq += 1;
        self.items.push(Item {
            id,
            ty,
            values,
            time,
            seq: self.next_seq,
            version: 0,
        });
    }

    /// Changes fields, keeping the id, the time and the place in the
    /// insertion order; the new version starts new matches.
    pub fn modify(&mut self, id: FactId, changes: &[(FieldId, Value)]) {
        let item = self
            .items
            .iter_mut()
            .find(|i| i.id == id)
            .expect("modify of a live item");
        for (f, v) in changes {
            item.values[f.index()] = v.clone();
        }
        item.version += 1;
    }

    pub fn retract(&mut self, id: FactId) {
        self.items.retain(|i| i.id != id);
    }

    /// Working memory without `id`: what a modify of `id`, a retraction
    /// followed by an insertion, passes through.
    pub fn without(&self, id: FactId) -> World {
        let mut w = self.clone();
        w.items.retain(|i| i.id != id);
        w
    }

    /// Whether `item` passes the tests, joins and filters of `p`, given the
    /// bindings so far (not its time).
    fn passes(&self, p: &Pattern, item: &Item, partial: &[Binding<'_>]) -> bool {
        if item.ty != p.ty {
            return false;
        }
        let env = RefEnv {
            own: Some(&item.values),
            bound: partial,
            now: self.now,
        };
        if !p.tests.iter().all(|t| test(t, &env)) {
            return false;
        }
        for j in &p.joins {
            let mine = item
                .values
                .get(j.field.index())
                .cloned()
                .unwrap_or(Value::Null);
            let theirs = match partial.get(j.slot.index()) {
                Some(b) => b.field(j.other),
                None => return false,
            };
            if !compare(CmpOp::Eq, &mine, &theirs) {
                return false;
            }
        }
        p.filters.iter().all(|f| test(f, &env))
    }

    /// Whether an event (or fact) takes part in `p` now, by its time alone:
    /// the table of `docs/time.md`, "Windows".
    fn in_window(&self, p: &Pattern, h: i64, item: &Item, partial: &[Binding<'_>]) -> bool {
        let Some(t) = item.time else {
            return true;
        };
        let bound = |s: Slot| match partial.get(s.index()) {
            Some(Binding::Item(s)) => s.time.map(|ts| (*s, ts)),
            _ => None,
        };
        match (p.window.after, p.window.before) {
            (Some(s), _) => {
                let Some((s, ts)) = bound(s) else {
                    return false;
                };
                comes_after(item, s) && p.window.within.is_none_or(|d| t <= ts + d.as_millis())
            }
            (None, Some(s)) => {
                let Some((s, ts)) = bound(s) else {
                    return false;
                };
                let d = p.window.within.expect("`before` has a window");
                comes_after(s, item) && t >= ts - d.as_millis()
            }
            (None, None) => {
                let d = p.window.within.map_or(h, |d| d.as_millis());
                t >= self.watermark() - d
            }
        }
    }

    fn sees(&self, p: &Pattern, h: i64, item: &Item, partial: &[Binding<'_>]) -> bool {
        self.passes(p, item, partial) && self.in_window(p, h, item, partial)
    }

    /// Every complete match of every rule, sorted by identity.
    pub fn matches(&self, rules: &RuleSet) -> Vec<Match> {
        let mut out = Vec::new();
        for (i, rule) in rules.rules().iter().enumerate() {
            let h = horizon(rule);
            let mut partials: Vec<Vec<Binding<'_>>> = vec![Vec::new()];
            for c in &rule.conditions {
                let mut next = Vec::new();
                for partial in &partials {
                    match c {
                        Condition::Pattern(p) => {
                            for item in &self.items {
                                if self.sees(p, h, item, partial) {
                                    let mut longer = partial.clone();
                                    longer.push(Binding::Item(item));
                                    next.push(longer);
                                }
                            }
                        }
                        Condition::Not(p) => {
                            let any = self.items.iter().any(|it| self.sees(p, h, it, partial));
                            if !any && self.absence_decided(p, partial) {
                                next.push(partial.clone());
                            }
                        }
                        Condition::Exists(p) => {
                            if self.items.iter().any(|it| self.sees(p, h, it, partial)) {
                                next.push(partial.clone());
                            }
                        }
                        Condition::Aggregate(a) => {
                            for group in self.groups(rules, a, h, partial) {
                                let mut longer = partial.clone();
                                longer.push(Binding::Group(group));
                                next.push(longer);
                            }
                        }
                        Condition::Test(e) => {
                            let env = RefEnv {
                                own: None,
                                bound: partial,
                                now: self.now,
                            };
                            if test(e, &env) {
                                next.push(partial.clone());
                            }
                        }
                    }
                }
                partials = next;
            }
            for partial in partials {
                let slots = partial
                    .iter()
                    .map(|b| match b {
                        Binding::Item(it) => Bound::Fact(it.id, it.version),
                        Binding::Group(vs) => Bound::Group(vs.clone()),
                    })
                    .collect();
                let values = partial
                    .iter()
                    .map(|b| match b {
                        Binding::Item(it) => it.values.clone(),
                        Binding::Group(vs) => vs.clone(),
                    })
                    .collect();
                out.push(Match {
                    rule: RuleId::new(i as u32),
                    slots,
                    values,
                });
            }
        }
        out.sort_by_key(Match::ident);
        out
    }

    /// `not T(...) after s within D` holds only once `W > t(s) + D`: the
    /// window `[t(s), t(s) + D]` includes both ends, and the absence is
    /// decided at the first millisecond after it. `not T(...) before s
    /// within D` holds only once `W >= t(s)`: no event before `s` can arrive
    /// any more. Other absences (`within D` alone, `after s` alone, no
    /// qualifier) hold as soon as no event blocks them.
    fn absence_decided(&self, p: &Pattern, partial: &[Binding<'_>]) -> bool {
        let ts = |s: Slot| match partial.get(s.index()) {
            Some(Binding::Item(Item { time: Some(ts), .. })) => Some(*ts),
            _ => None,
        };
        match (p.window.after, p.window.before, p.window.within) {
            (Some(s), _, Some(d)) => ts(s).is_some_and(|ts| self.watermark() > ts + d.as_millis()),
            (None, Some(s), _) => ts(s).is_some_and(|ts| self.watermark() >= ts),
            _ => true,
        }
    }

    /// The groups of an aggregate that pass its comparison, each as its
    /// by-values followed by its value.
    fn groups(
        &self,
        rules: &RuleSet,
        a: &Aggregate,
        h: i64,
        partial: &[Binding<'_>],
    ) -> Vec<Vec<Value>> {
        let w = a.within.map_or(h, |d| d.as_millis());
        let members: Vec<&Item> = self
            .items
            .iter()
            .filter(|it| {
                self.passes(&a.source, it, partial)
                    && it.time.is_none_or(|t| t >= self.watermark() - w)
            })
            .collect();
        let mut groups: BTreeMap<Vec<Value>, Vec<&Item>> = BTreeMap::new();
        if a.by.is_empty() {
            groups.insert(Vec::new(), members);
        } else {
            for it in members {
                let key = a.by.iter().map(|f| it.values[f.index()].clone()).collect();
                groups.entry(key).or_default().push(it);
            }
        }
        // The type of the value expression, for the sum of an empty group.
        let value_type = match &a.value {
            Some(Expr::Own(f)) => Some(rules.schema().get(a.source.ty).field_def(*f).ty),
            Some(Expr::ToFloat(_)) => Some(ValueType::Float),
            _ => None,
        };
        let mut out = Vec::new();
        for (mut key, items) in groups {
            let values: Vec<Value> = match &a.value {
                Some(e) => items
                    .iter()
                    .map(|it| {
                        let env = RefEnv {
                            own: Some(&it.values),
                            bound: partial,
                            now: self.now,
                        };
                        eval(e, &env)
                    })
                    .collect(),
                None => Vec::new(),
            };
            let value = aggregate(a.func, value_type, items.len(), &values);
            let pass = match &a.having {
                None => true,
                Some((op, e)) => {
                    let env = RefEnv {
                        own: None,
                        bound: partial,
                        now: self.now,
                    };
                    compare(*op, &value, &eval(e, &env))
                }
            };
            if pass {
                key.push(value);
                out.push(key);
            }
        }
        out
    }

    /// Whether an event can still take part in some match, now or later,
    /// by the expiry rule of `docs/time.md`: some pattern over its type
    /// (of a `not`, an `exists` or an aggregate too) still sees its time,
    /// with `after s` patterns reaching back as far as `s`'s pattern does.
    pub fn may_take_part(&self, rules: &RuleSet, item: &Item) -> bool {
        let Some(t) = item.time else {
            return true;
        };
        let w = self.watermark();
        for rule in rules.rules() {
            let h = horizon(rule);
            // How far back the pattern of each slot reaches (`None`: a fact
            // or an aggregate).
            let mut reach: Vec<Option<i64>> = Vec::new();
            for c in &rule.conditions {
                let (ty, back) = match c {
                    Condition::Pattern(p) | Condition::Not(p) | Condition::Exists(p) => {
                        let of = |s: Slot| reach.get(s.index()).copied().flatten();
                        let back = match (p.window.after, p.window.before) {
                            (Some(s), _) => of(s),
                            // Up to `D` before an event that reaches back
                            // `r`: it is needed for `r + D`.
                            (None, Some(s)) => {
                                of(s).map(|r| r + p.window.within.map_or(0, |d| d.as_millis()))
                            }
                            (None, None) => Some(p.window.within.map_or(h, |d| d.as_millis())),
                        };
                        if matches!(c, Condition::Pattern(_)) {
                            reach.push(back);
                        }
                        (p.ty, back)
                    }
                    Condition::Aggregate(a) => {
                        reach.push(None);
                        (a.source.ty, Some(a.within.map_or(h, |d| d.as_millis())))
                    }
                    Condition::Test(_) => continue,
                };
                if ty == item.ty && back.is_none_or(|b| t >= w - b) {
                    return true;
                }
            }
        }
        false
    }

    /// Whether some pattern of some rule is over `ty`.
    pub fn type_is_used(rules: &RuleSet, ty: TypeId) -> bool {
        rules.rules().iter().any(|r| {
            r.conditions.iter().any(|c| match c {
                Condition::Pattern(p) | Condition::Not(p) | Condition::Exists(p) => p.ty == ty,
                Condition::Aggregate(a) => a.source.ty == ty,
                Condition::Test(_) => false,
            })
        })
    }
}

/// The value of an aggregate over `n` members whose values are `values`
/// (empty for `count`).
fn aggregate(func: AggFunc, value_type: Option<ValueType>, n: usize, values: &[Value]) -> Value {
    match func {
        AggFunc::Count => Value::Int(n as i64),
        AggFunc::CountDistinct => {
            let distinct: BTreeSet<&Value> = values
                .iter()
                .filter(|v| !matches!(v, Value::Null))
                .collect();
            Value::Int(distinct.len() as i64)
        }
        AggFunc::Sum => sum(value_type, values).unwrap_or(Value::Null),
        AggFunc::Min => values
            .iter()
            .filter(|v| !matches!(v, Value::Null))
            .min()
            .cloned()
            .unwrap_or(Value::Null),
        AggFunc::Max => values
            .iter()
            .filter(|v| !matches!(v, Value::Null))
            .max()
            .cloned()
            .unwrap_or(Value::Null),
        AggFunc::Avg => {
            let present: Vec<&Value> = values
                .iter()
                .filter(|v| !matches!(v, Value::Null))
                .collect();
            if present.is_empty() {
                return Value::Null;
            }
            let total: f64 = present
                .iter()
                .map(|v| match v {
                    Value::Int(i) => *i as f64,
                    Value::Float(x) => *x,
                    _ => f64::NAN,
                })
                .sum();
            Value::Float(total / present.len() as f64)
        }
    }
}

/// The sum of the values, 0 of the value type when there are none; `None`
/// for a type that cannot be summed.
fn sum(value_type: Option<ValueType>, values: &[Value]) -> Option<Value> {
    let mut ints: i64 = 0;
    let mut floats: f64 = 0.0;
    let mut ms: i64 = 0;
    let mut kind = value_type;
    for v in values {
        match v {
            Value::Int(i) => {
                ints += i;
                kind = Some(ValueType::Int);
            }
            Value::Float(x) => {
                floats += x;
                kind = Some(ValueType::Float);
            }
            Value::Duration(d) => {
                ms += d.as_millis();
                kind = Some(ValueType::Duration);
            }
            Value::Null => {}
            _ => return None,
        }
    }
    Some(match kind {
        Some(ValueType::Float) => Value::Float(floats),
        Some(ValueType::Duration) => Value::Duration(Duration::from_millis(ms)),
        _ => Value::Int(ints),
    })
}
