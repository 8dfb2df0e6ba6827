//! The rule model: what a rule means, as plain data.
//!
//! The language front end (`nudge-dsl`) lowers rule text into this model, and
//! Rust code can build it directly. [`RuleSet::add_rule`] checks a rule
//! against the schema and normalizes it, so that structurally equal
//! conditions are equal values and the network compiler can share them:
//!
//! - constants are folded (`100 * 2` is `200`), an int constant compared with
//!   a float field becomes a float, and an int field meeting a float is
//!   widened with [`Expr::ToFloat`];
//! - comparisons are oriented with the tested field on the left
//!   (`100 < amount` is `amount > 100`);
//! - `x == a or x == b` is `x in [a, b]`, lists are sorted and deduplicated,
//!   a one-element list is `==`, and `== null` is [`Expr::IsNull`];
//! - a negation is pushed into the comparison where that keeps its meaning;
//! - conjunctions are split; a pattern's tests are split into tests on the
//!   fact alone, equality joins with earlier bindings, and other filters, each
//!   sorted and free of duplicates;
//! - a free-standing test over bound facts moves into the pattern that binds
//!   the last fact it reads.
//!
//! ```
//! use nudge_core::{FactKind, FactType, Schema, Value, ValueType};
//! use nudge_rete::ir::{Condition, Expr, Pattern, Rule, RuleSet};
//!
//! let mut schema = Schema::new();
//! let order = schema.add(
//!     FactType::new("order_paid", FactKind::Event)
//!         .field("user_id", ValueType::String, false)
//!         .field("amount", ValueType::Float, false),
//! )?;
//! let amount = schema.get(order).field_id("amount").unwrap();
//! let mut rules = RuleSet::new(schema);
//!
//! // `100 < amount`, with an int constant, written by hand...
//! let rule = Rule::new("big_order")
//!     .when(Condition::Pattern(Pattern::new(order).test(Expr::value(100).lt(Expr::own(amount)))));
//! rules.add_rule(rule)?;
//!
//! // ...is stored as `amount > 100.0`.
//! let Condition::Pattern(p) = &rules.rules()[0].conditions[0] else { unreachable!() };
//! assert_eq!(p.tests, vec![Expr::own(amount).gt(Expr::Const(Value::Float(100.0)))]);
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod eval;
mod expr;
mod normalize;
mod validate;

pub use eval::{clock_changes, compare, eval, reads_clock, test, ConstEnv, Env, FactEnv};
pub use expr::{arith_type, cmp_fits, ArithOp, Builtin, CmpOp, Expr, FunctionId, SetId, Slot};
pub(crate) use validate::own_type;
pub use validate::IrError;

use nudge_core::{Duration, FieldId, FunctionSignature, Schema, TypeId, ValueType};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Index of a rule inside its [`RuleSet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RuleId(u32);

impl RuleId {
    /// The `i`-th rule.
    pub const fn new(i: u32) -> Self {
        RuleId(i)
    }

    /// Position in [`RuleSet::rules`].
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// A time constraint on a pattern (see `docs/time.md`). Built with its
/// constructors, so that new kinds of windows can be added:
///
/// ```
/// use nudge_rete::ir::{Slot, Window};
/// let day = "1d".parse().unwrap();
/// let w = Window::before_within(Slot::new(0), day);
/// assert_eq!((w.before, w.within, w.after), (Some(Slot::new(0)), Some(day), None));
/// assert!(Window::default().is_unbounded());
/// ```
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[non_exhaustive]
pub struct Window {
    /// The event happened at most this long ago; with `after`, at most this
    /// long after the `after` event; with `before`, at most this long before
    /// the `before` event.
    pub within: Option<Duration>,
    /// The event happened after the event bound at this slot.
    pub after: Option<Slot>,
    /// The event happened before the event bound at this slot (at most
    /// `within` before it, which is then required). At most one of `after`
    /// and `before` is set.
    pub before: Option<Slot>,
}

impl Window {
    /// `within d`: the event happened at most `d` ago.
    pub fn within(d: Duration) -> Self {
        Window {
            within: Some(d),
            ..Window::default()
        }
    }

    /// `after s`: the event happened after the event bound at `s`.
    pub fn after(s: Slot) -> Self {
        Window {
            after: Some(s),
            ..Window::default()
        }
    }

    /// `after s within d`: the event happened in the `d` after the event
    /// bound at `s`.
    pub fn after_within(s: Slot, d: Duration) -> Self {
        Window {
            within: Some(d),
            after: Some(s),
            before: None,
        }
    }

    /// `before s within d`: the event happened in the `d` before the event
    /// bound at `s`.
    pub fn before_within(s: Slot, d: Duration) -> Self {
        Window {
            within: Some(d),
            after: None,
            before: Some(s),
        }
    }

    /// Whether the window constrains nothing.
    pub fn is_unbounded(&self) -> bool {
        self.within.is_none() && self.after.is_none() && self.before.is_none()
    }

    /// The window the clock bounds: a `within` that is not measured back
    /// from a `before` event. A `before` window is measured from an event
    /// the rule has already matched, so it adds nothing to how long the
    /// rule's other events must be seen.
    pub fn clock_span(&self) -> Option<Duration> {
        match self.before {
            Some(_) => None,
            None => self.within,
        }
    }
}

/// An equality join: the tested fact's `field` equals `other` of the fact
/// bound at `slot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Join {
    /// Field of the tested fact.
    pub field: FieldId,
    /// The earlier binding.
    pub slot: Slot,
    /// Field of the earlier binding.
    pub other: FieldId,
}

/// A pattern: facts of one type that pass some tests.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Pattern {
    /// The fact type.
    pub ty: TypeId,
    /// Tests that read only the fact itself (the alpha network).
    pub tests: Vec<Expr>,
    /// Equality joins with earlier bindings (hash-joined).
    pub joins: Vec<Join>,
    /// Every other test: reads earlier bindings, the clock, membership sets
    /// or host functions.
    pub filters: Vec<Expr>,
    /// Time constraint.
    pub window: Window,
}

impl Pattern {
    /// A pattern matching every fact of type `ty`.
    pub fn new(ty: TypeId) -> Self {
        Pattern {
            ty,
            tests: Vec::new(),
            joins: Vec::new(),
            filters: Vec::new(),
            window: Window::default(),
        }
    }

    /// Adds a test (builder style); normalization files it as a test, a join
    /// or a filter.
    pub fn test(mut self, e: Expr) -> Self {
        self.tests.push(e);
        self
    }

    /// Sets the time window (builder style).
    pub fn window(mut self, window: Window) -> Self {
        self.window = window;
        self
    }
}

/// Aggregate functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggFunc {
    /// Number of matching facts.
    Count,
    /// Number of distinct values of the expression.
    CountDistinct,
    /// Sum of the expression.
    Sum,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Mean value (a float).
    Avg,
}

impl AggFunc {
    /// The name in rule files; also the name of the value in the binding.
    pub fn name(self) -> &'static str {
        match self {
            AggFunc::Count => "count",
            AggFunc::CountDistinct => "count_distinct",
            AggFunc::Sum => "sum",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
            AggFunc::Avg => "avg",
        }
    }

    /// Parses a function name.
    pub fn from_name(name: &str) -> Option<AggFunc> {
        Some(match name {
            "count" => AggFunc::Count,
            "count_distinct" => AggFunc::CountDistinct,
            "sum" => AggFunc::Sum,
            "min" => AggFunc::Min,
            "max" => AggFunc::Max,
            "avg" => AggFunc::Avg,
            _ => return None,
        })
    }

    /// The result type given the value expression's type, or `None` when
    /// that type does not fit.
    pub fn result_type(self, value: Option<ValueType>) -> Option<ValueType> {
        match (self, value) {
            (AggFunc::Count, None) => Some(ValueType::Int),
            (AggFunc::CountDistinct, Some(_)) => Some(ValueType::Int),
            (AggFunc::Sum, Some(t)) if t.is_numeric() || t == ValueType::Duration => Some(t),
            (AggFunc::Min | AggFunc::Max, Some(t))
                if t.is_numeric() || matches!(t, ValueType::Timestamp | ValueType::Duration) =>
            {
                Some(t)
            }
            (AggFunc::Avg, Some(t)) if t.is_numeric() => Some(ValueType::Float),
            _ => None,
        }
    }
}

/// An aggregate over the facts matching a pattern, optionally grouped.
///
/// It binds a slot whose fields are the `by` fields, in order, followed by
/// the aggregate value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Aggregate {
    /// The function.
    pub func: AggFunc,
    /// The facts aggregated (its window is always unbounded: see `within`).
    pub source: Pattern,
    /// The value aggregated, over the source fact (`Own` fields); `None` for `count`.
    pub value: Option<Expr>,
    /// Fields of the source fact that group it.
    pub by: Vec<FieldId>,
    /// The condition on the aggregate value, e.g. `>= 3`.
    pub having: Option<(CmpOp, Expr)>,
    /// Only facts of the last `within` count.
    pub within: Option<Duration>,
}

/// One condition of a rule's `when` part.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// A fact matches; binds the next slot.
    Pattern(Pattern),
    /// No fact matches.
    Not(Pattern),
    /// At least one fact matches (binds nothing, fires once).
    Exists(Pattern),
    /// An aggregate holds; binds the next slot.
    Aggregate(Aggregate),
    /// A test that no pattern can hold (it reads no binding, or only the
    /// clock, host functions or aggregates).
    Test(Expr),
}

impl Condition {
    /// Whether the condition binds a slot.
    pub fn binds(&self) -> bool {
        matches!(self, Condition::Pattern(_) | Condition::Aggregate(_))
    }
}

/// An action argument.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arg {
    /// A value computed from the bindings.
    Expr(Expr),
    /// The name of a declaration the host resolves (a coupon template...).
    Name(Arc<str>),
    /// Several declaration names.
    Names(Vec<Arc<str>>),
}

/// A call of a host action: becomes a decision.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Emit {
    /// The action's name.
    pub action: Arc<str>,
    /// Arguments by name, in the order written.
    pub args: Vec<(Arc<str>, Arg)>,
    /// Actions to run per label the host answers with (split arms).
    pub branches: Vec<(Arc<str>, Vec<Action>)>,
}

/// One action of a rule's `then` part.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Insert a new fact.
    Insert {
        /// Its type.
        ty: TypeId,
        /// Field values; absent optional fields are null.
        fields: Vec<(FieldId, Expr)>,
    },
    /// Change fields of a bound fact, keeping its identity.
    Modify {
        /// The bound fact.
        slot: Slot,
        /// New values.
        fields: Vec<(FieldId, Expr)>,
    },
    /// Remove a bound fact.
    Retract {
        /// The bound fact.
        slot: Slot,
    },
    /// Ask the host to act: a decision.
    Emit(Emit),
    /// Run `action` later.
    Delayed {
        /// How much later.
        after: Duration,
        /// Whether the rule's conditions must still hold then.
        recheck: bool,
        /// What to run.
        action: Box<Action>,
    },
}

impl Rule {
    /// How far back the rule looks: its longest window (of a pattern or an
    /// aggregate; `before` windows, measured back from a matched event, do
    /// not count) plus its longest delayed action, plus 1 ms so that the
    /// instant just after a window, when what the window decides is decided,
    /// still sees the rule's events. Event patterns without a window of their
    /// own see the events of this span (see `docs/time.md`); 0 when the rule
    /// has neither, and its events match at the moment they happen.
    pub fn horizon(&self) -> Duration {
        let mut span = Duration::ZERO;
        for c in &self.conditions {
            let d = match c {
                Condition::Pattern(p) | Condition::Not(p) | Condition::Exists(p) => {
                    p.window.clock_span()
                }
                Condition::Aggregate(a) => a.within,
                Condition::Test(_) => None,
            };
            if let Some(d) = d {
                span = span.max(d);
            }
        }
        fn delay(a: &Action) -> Duration {
            match a {
                Action::Delayed { after, action, .. } => Duration::from_millis(
                    after.as_millis().saturating_add(delay(action).as_millis()),
                ),
                Action::Emit(e) => e
                    .branches
                    .iter()
                    .flat_map(|(_, acts)| acts.iter().map(delay))
                    .max()
                    .unwrap_or(Duration::ZERO),
                _ => Duration::ZERO,
            }
        }
        let delay = self
            .actions
            .iter()
            .map(delay)
            .max()
            .unwrap_or(Duration::ZERO);
        let total = span.as_millis().saturating_add(delay.as_millis());
        Duration::from_millis(if total > 0 {
            total.saturating_add(1)
        } else {
            0
        })
    }
}

/// A rule: conditions, actions and the agenda attributes that order firing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rule {
    /// Unique name.
    pub name: Arc<str>,
    /// Higher fires first.
    pub salience: i32,
    /// Among matching rules of one activation group, only one fires per trigger.
    pub group: Option<Arc<str>>,
    /// Changes the rule makes do not re-activate it.
    pub no_loop: bool,
    /// The `when` part.
    pub conditions: Vec<Condition>,
    /// The `then` part.
    pub actions: Vec<Action>,
}

impl Rule {
    /// A rule with no conditions or actions yet.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Rule {
            name: name.into(),
            salience: 0,
            group: None,
            no_loop: false,
            conditions: Vec::new(),
            actions: Vec::new(),
        }
    }

    /// Adds a condition (builder style).
    pub fn when(mut self, c: Condition) -> Self {
        self.conditions.push(c);
        self
    }

    /// Adds an action (builder style).
    pub fn then(mut self, a: Action) -> Self {
        self.actions.push(a);
        self
    }

    /// The conditions that bind slots, in slot order.
    pub fn slots(&self) -> impl Iterator<Item = &Condition> {
        self.conditions.iter().filter(|c| c.binds())
    }
}

/// A checked, normalized set of rules over one schema.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleSet {
    schema: Schema,
    sets: Vec<Arc<str>>,
    functions: Vec<FunctionSignature>,
    rules: Vec<Rule>,
    #[serde(skip)]
    rule_names: std::collections::HashMap<Arc<str>, RuleId>,
}

impl RuleSet {
    /// An empty rule set over `schema`.
    pub fn new(schema: Schema) -> Self {
        RuleSet {
            schema,
            ..RuleSet::default()
        }
    }

    /// The schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Registers a named membership set (or returns the existing one).
    pub fn add_set(&mut self, name: &str) -> SetId {
        match self.sets.iter().position(|s| &**s == name) {
            Some(i) => SetId::new(i as u32),
            None => {
                self.sets.push(name.into());
                SetId::new(self.sets.len() as u32 - 1)
            }
        }
    }

    /// Names of the membership sets, by [`SetId`].
    pub fn sets(&self) -> &[Arc<str>] {
        &self.sets
    }

    /// Registers a host function.
    pub fn add_function(&mut self, sig: FunctionSignature) -> Result<FunctionId, IrError> {
        if self.functions.iter().any(|f| f.name == sig.name) {
            return Err(IrError::DuplicateFunction(sig.name.to_string()));
        }
        self.functions.push(sig);
        Ok(FunctionId::new(self.functions.len() as u32 - 1))
    }

    /// Host functions, by [`FunctionId`].
    pub fn functions(&self) -> &[FunctionSignature] {
        &self.functions
    }

    /// Checks and normalizes `rule`, then adds it. On error the set is unchanged.
    pub fn add_rule(&mut self, rule: Rule) -> Result<RuleId, IrError> {
        if self.rule_names.contains_key(&rule.name) {
            return Err(IrError::DuplicateRule(rule.name.to_string()));
        }
        let shapes = validate::check_rule(self, &rule)?;
        let rule = normalize::normalize_rule(self, &shapes, rule);
        let id = RuleId::new(self.rules.len() as u32);
        self.rule_names.insert(rule.name.clone(), id);
        self.rules.push(rule);
        Ok(id)
    }

    /// The rules, by [`RuleId`].
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Checks every rule again, as `add_rule` did: a rule set that was
    /// deserialized rather than built may hold anything.
    pub fn validate(&self) -> Result<(), IrError> {
        for r in &self.rules {
            validate::check_rule(self, r)?;
        }
        Ok(())
    }

    /// Rebuilds lookup indexes after deserializing.
    pub fn reindex(&mut self) {
        self.schema.reindex();
        self.rule_names = self
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.clone(), RuleId::new(i as u32)))
            .collect();
    }

    /// Looks a rule up by name.
    pub fn rule_id(&self, name: &str) -> Option<RuleId> {
        self.rule_names.get(name).copied()
    }
}
