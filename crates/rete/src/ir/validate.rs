//! Checks a rule against its rule set: every index in range, every
//! expression well typed. The language checker reports the same mistakes
//! with source positions first; this is the guard for rules built in Rust.

use super::expr::{arith_type, cmp_fits, Expr, Slot};
use super::{Action, Aggregate, Condition, Pattern, Rule, RuleSet};
use nudge_core::{FactKind, FieldId, TypeId, ValueType};

/// Why a rule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IrError {
    /// Two rules share a name.
    #[error("rule `{0}` is defined twice")]
    DuplicateRule(String),
    /// Two host functions share a name.
    #[error("function `{0}` is declared twice")]
    DuplicateFunction(String),
    /// A type id, field id, slot, set or function is out of range.
    #[error("rule `{rule}`: {what} does not exist")]
    Dangling {
        /// The rule.
        rule: String,
        /// What was referenced, e.g. "slot 3".
        what: String,
    },
    /// An expression is ill-typed or used where its type does not fit.
    #[error("rule `{rule}`: {message}")]
    Type {
        /// The rule.
        rule: String,
        /// What is wrong.
        message: String,
    },
    /// A structural rule of the model is broken.
    #[error("rule `{rule}`: {message}")]
    Shape {
        /// The rule.
        rule: String,
        /// What is wrong.
        message: String,
    },
}

/// What a slot holds: a fact of a type, or an aggregate group whose fields
/// are its group keys and then its value.
#[derive(Debug, Clone)]
pub(crate) enum SlotShape {
    Fact(TypeId),
    Group(Vec<(ValueType, bool)>),
}

/// Everything an expression may refer to at one place in a rule.
pub(crate) struct Scope<'a> {
    pub rules: &'a RuleSet,
    pub own: Option<TypeId>,
    pub slots: &'a [SlotShape],
}

/// The type of an expression over the fields of a fact of type `ty` alone.
pub(crate) fn own_type(rules: &RuleSet, ty: TypeId, e: &Expr) -> Option<ValueType> {
    let scope = Scope {
        rules,
        own: Some(ty),
        slots: &[],
    };
    scope.type_of(e).ok().flatten()
}

impl Scope<'_> {
    /// The type of field `field` of slot `slot` and whether it may be null.
    pub fn slot_field(&self, slot: Slot, field: FieldId) -> Result<(ValueType, bool), String> {
        match self.slots.get(slot.index()) {
            None => Err(format!("slot {}", slot.index())),
            Some(SlotShape::Fact(ty)) => self.fact_field(*ty, field),
            Some(SlotShape::Group(fields)) => fields.get(field.index()).copied().ok_or_else(|| {
                format!("field {} of aggregate slot {}", field.index(), slot.index())
            }),
        }
    }

    fn fact_field(&self, ty: TypeId, field: FieldId) -> Result<(ValueType, bool), String> {
        let t = self.rules.schema().get(ty);
        t.fields()
            .get(field.index())
            .map(|f| (f.ty, f.optional))
            .ok_or_else(|| format!("field {} of `{}`", field.index(), t.name()))
    }

    /// The expression's type (`None` for the null constant), checked all the way down.
    pub fn type_of(&self, e: &Expr) -> Result<Option<ValueType>, Problem> {
        use ValueType::*;
        Ok(match e {
            Expr::Const(v) => v.value_type(),
            Expr::Own(f) => match self.own {
                Some(ty) => Some(self.fact_field(ty, *f).map_err(Problem::Dangling)?.0),
                None => {
                    return Err(Problem::Shape(
                        "a pattern field is read outside a pattern".into(),
                    ))
                }
            },
            Expr::Bound(s, f) => Some(self.slot_field(*s, *f).map_err(Problem::Dangling)?.0),
            Expr::Neg(a) => match self.type_of(a)? {
                Some(t @ (Int | Float | Duration)) => Some(t),
                t => return Err(type_err(format!("cannot negate {}", name(t)))),
            },
            Expr::Not(a) => {
                self.expect_bool(a)?;
                Some(Bool)
            }
            Expr::ToFloat(a) => match self.type_of(a)? {
                Some(Int | Float) => Some(Float),
                t => return Err(type_err(format!("cannot widen {} to float", name(t)))),
            },
            Expr::Arith(op, a, b) => {
                let (ta, tb) = (self.type_of(a)?, self.type_of(b)?);
                match (ta, tb) {
                    (Some(x), Some(y)) => Some(arith_type(*op, x, y).ok_or_else(|| {
                        type_err(format!("cannot apply `{}` to {x} and {y}", op.symbol()))
                    })?),
                    _ => return Err(type_err(format!("`{}` on null", op.symbol()))),
                }
            }
            Expr::Cmp(op, a, b) => {
                let (ta, tb) = (self.type_of(a)?, self.type_of(b)?);
                match (ta, tb) {
                    (Some(x), Some(y)) if !cmp_fits(*op, x, y) => {
                        return Err(type_err(format!(
                            "cannot compare {x} `{}` {y}",
                            op.symbol()
                        )))
                    }
                    (None, _) | (_, None) if !matches!(op, super::CmpOp::Eq | super::CmpOp::Ne) => {
                        return Err(type_err(format!("`{}` with null", op.symbol())))
                    }
                    _ => Some(Bool),
                }
            }
            Expr::In(a, values) => {
                let t = self.type_of(a)?;
                for v in values {
                    let vt = v.value_type();
                    let fits = match (t, vt) {
                        (Some(x), Some(y)) => x == y || (x.is_numeric() && y.is_numeric()),
                        _ => false,
                    };
                    if !fits {
                        return Err(type_err(format!(
                            "list item {v} does not match {}",
                            name(t)
                        )));
                    }
                }
                Some(Bool)
            }
            Expr::InSet(a, set) => {
                if set.index() >= self.rules.sets().len() {
                    return Err(Problem::Dangling(format!("set {}", set.index())));
                }
                match self.type_of(a)? {
                    Some(String | Int) => Some(Bool),
                    t => return Err(type_err(format!("set membership of {}", name(t)))),
                }
            }
            Expr::IsNull(a) => {
                self.type_of(a)?;
                Some(Bool)
            }
            Expr::And(xs) | Expr::Or(xs) => {
                for x in xs {
                    self.expect_bool(x)?;
                }
                Some(Bool)
            }
            Expr::Call(b, args) => {
                let tys = self.arg_types(args)?;
                Some(
                    b.result_type(&tys).ok_or_else(|| {
                        type_err(format!("`{}` expects {}", b.name(), b.signature()))
                    })?,
                )
            }
            Expr::Host(f, args) => {
                let sig = self
                    .rules
                    .functions()
                    .get(f.index())
                    .ok_or_else(|| Problem::Dangling(format!("function {}", f.index())))?;
                let tys = self.arg_types(args)?;
                let fits = tys.len() == sig.params.len()
                    && tys
                        .iter()
                        .zip(&sig.params)
                        .all(|(a, p)| a == p || (a.is_numeric() && p.is_numeric()));
                if !fits {
                    return Err(type_err(format!("wrong arguments for `{}`", sig.name)));
                }
                Some(sig.returns)
            }
        })
    }

    fn arg_types(&self, args: &[Expr]) -> Result<Vec<ValueType>, Problem> {
        args.iter()
            .map(|a| {
                self.type_of(a)?
                    .ok_or_else(|| type_err("null argument".into()))
            })
            .collect()
    }

    /// Checks that `e` is a boolean.
    pub fn expect_bool(&self, e: &Expr) -> Result<(), Problem> {
        match self.type_of(e)? {
            Some(ValueType::Bool) => Ok(()),
            t => Err(type_err(format!("expected a bool, found {}", name(t)))),
        }
    }

    /// Whether `e` may evaluate to null.
    pub fn nullable(&self, e: &Expr) -> bool {
        match e {
            Expr::Const(v) => v.value_type().is_none(),
            Expr::Own(f) => self
                .own
                .is_none_or(|ty| self.fact_field(ty, *f).is_ok_and(|(_, o)| o)),
            Expr::Bound(s, f) => self.slot_field(*s, *f).is_ok_and(|(_, o)| o),
            Expr::ToFloat(a) => self.nullable(a),
            Expr::Not(_) | Expr::Cmp(..) | Expr::In(..) | Expr::InSet(..) | Expr::IsNull(_) => {
                false
            }
            Expr::And(_) | Expr::Or(_) => false,
            _ => true,
        }
    }
}

fn name(t: Option<ValueType>) -> String {
    t.map_or_else(|| "null".to_string(), |t| t.to_string())
}

/// A problem found in an expression, before the rule's name is attached.
#[derive(Debug)]
pub(crate) enum Problem {
    Dangling(String),
    Type(String),
    Shape(String),
}

fn type_err(message: String) -> Problem {
    Problem::Type(message)
}

impl Problem {
    fn in_rule(self, rule: &Rule) -> IrError {
        let rule = rule.name.to_string();
        match self {
            Problem::Dangling(what) => IrError::Dangling { rule, what },
            Problem::Type(message) => IrError::Type { rule, message },
            Problem::Shape(message) => IrError::Shape { rule, message },
        }
    }
}

/// The shapes of the slots a rule binds, in order.
pub(crate) fn slot_shapes(rules: &RuleSet, rule: &Rule) -> Result<Vec<SlotShape>, Problem> {
    let mut slots = Vec::new();
    for c in &rule.conditions {
        match c {
            Condition::Pattern(p) => slots.push(SlotShape::Fact(p.ty)),
            Condition::Aggregate(a) => {
                let scope = Scope {
                    rules,
                    own: Some(a.source.ty),
                    slots: &slots,
                };
                let mut fields = Vec::new();
                for f in &a.by {
                    let t = scope
                        .fact_field(a.source.ty, *f)
                        .map_err(Problem::Dangling)?;
                    fields.push(t);
                }
                let vt = match &a.value {
                    Some(v) => scope.type_of(v)?,
                    None => None,
                };
                let rt = a.func.result_type(vt).ok_or_else(|| {
                    type_err(format!("`{}` cannot aggregate {}", a.func.name(), name(vt)))
                })?;
                fields.push((rt, false));
                slots.push(SlotShape::Group(fields));
            }
            _ => {}
        }
    }
    Ok(slots)
}

pub(crate) fn check_rule(rules: &RuleSet, rule: &Rule) -> Result<Vec<SlotShape>, IrError> {
    check(rules, rule).map_err(|p| p.in_rule(rule))
}

fn check(rules: &RuleSet, rule: &Rule) -> Result<Vec<SlotShape>, Problem> {
    let shapes = slot_shapes(rules, rule)?;
    let mut bound = 0;
    for c in &rule.conditions {
        let earlier = &shapes[..bound];
        match c {
            Condition::Pattern(p) | Condition::Not(p) | Condition::Exists(p) => {
                check_pattern(rules, earlier, p)?;
            }
            Condition::Aggregate(a) => check_aggregate(rules, earlier, a)?,
            Condition::Test(e) => Scope {
                rules,
                own: None,
                slots: earlier,
            }
            .expect_bool(e)?,
        }
        if c.binds() {
            bound += 1;
        }
    }
    if rule.conditions.is_empty() {
        return Err(Problem::Shape("a rule needs at least one condition".into()));
    }
    let scope = Scope {
        rules,
        own: None,
        slots: &shapes,
    };
    for a in &rule.actions {
        check_action(&scope, a)?;
    }
    Ok(shapes)
}

fn check_type(rules: &RuleSet, ty: TypeId) -> Result<(), Problem> {
    if ty.index() < rules.schema().types().len() {
        Ok(())
    } else {
        Err(Problem::Dangling(format!("type {}", ty.index())))
    }
}

fn check_pattern(rules: &RuleSet, earlier: &[SlotShape], p: &Pattern) -> Result<(), Problem> {
    check_type(rules, p.ty)?;
    let scope = Scope {
        rules,
        own: Some(p.ty),
        slots: earlier,
    };
    for e in p.tests.iter().chain(&p.filters) {
        scope.expect_bool(e)?;
    }
    for j in &p.joins {
        let (own, _) = scope.fact_field(p.ty, j.field).map_err(Problem::Dangling)?;
        let (other, _) = scope
            .slot_field(j.slot, j.other)
            .map_err(Problem::Dangling)?;
        if own != other {
            return Err(type_err(format!("join of {own} with {other}")));
        }
    }
    let is_event = |ty: TypeId| rules.schema().get(ty).kind() == FactKind::Event;
    if !p.window.is_unbounded() && !is_event(p.ty) {
        return Err(Problem::Shape(format!(
            "`{}` is a fact, not an event: it has no time to window",
            rules.schema().get(p.ty).name()
        )));
    }
    for (word, slot) in [("after", p.window.after), ("before", p.window.before)] {
        let Some(s) = slot else { continue };
        match earlier.get(s.index()) {
            Some(SlotShape::Fact(ty)) if is_event(*ty) => {}
            Some(_) => {
                return Err(Problem::Shape(format!(
                    "`{word}` must name an event binding"
                )))
            }
            None => return Err(Problem::Dangling(format!("slot {}", s.index()))),
        }
    }
    if p.window.after.is_some() && p.window.before.is_some() {
        return Err(Problem::Shape(
            "a pattern is `after` one event or `before` one, not both".into(),
        ));
    }
    if p.window.before.is_some() && p.window.within.is_none() {
        return Err(Problem::Shape(
            "`before` needs `within`: how long before".into(),
        ));
    }
    Ok(())
}

fn check_aggregate(rules: &RuleSet, earlier: &[SlotShape], a: &Aggregate) -> Result<(), Problem> {
    check_pattern(rules, earlier, &a.source)?;
    if !a.source.window.is_unbounded() {
        return Err(Problem::Shape(
            "an aggregate's window goes on the aggregate".into(),
        ));
    }
    if a.within.is_some() && rules.schema().get(a.source.ty).kind() != FactKind::Event {
        return Err(Problem::Shape(
            "only events can be aggregated within a window".into(),
        ));
    }
    if let Some((op, e)) = &a.having {
        let scope = Scope {
            rules,
            own: None,
            slots: earlier,
        };
        let vt = match &a.value {
            Some(v) => Scope {
                rules,
                own: Some(a.source.ty),
                slots: earlier,
            }
            .type_of(v)?,
            None => None,
        };
        let result = a.func.result_type(vt);
        let rhs = scope.type_of(e)?;
        match (result, rhs) {
            (Some(x), Some(y)) if cmp_fits(*op, x, y) => {}
            _ => {
                return Err(type_err(format!(
                    "cannot compare the aggregate with {}",
                    name(rhs)
                )))
            }
        }
    }
    Ok(())
}

fn check_action(scope: &Scope<'_>, a: &Action) -> Result<(), Problem> {
    match a {
        Action::Insert { ty, fields } => {
            check_type(scope.rules, *ty)?;
            check_fields(scope, *ty, fields)?;
            let t = scope.rules.schema().get(*ty);
            // Context providers fill their fields when the fact is inserted.
            let provided = |i: usize| {
                t.contexts()
                    .iter()
                    .any(|c| c.fields.iter().any(|f| f.index() == i))
            };
            for (i, f) in t.fields().iter().enumerate() {
                if !f.optional && !provided(i) && !fields.iter().any(|(id, _)| id.index() == i) {
                    return Err(type_err(format!(
                        "insert of `{}` lacks field `{}`",
                        t.name(),
                        f.name
                    )));
                }
            }
        }
        Action::Modify { slot, fields } => {
            let ty = fact_slot(scope, *slot)?;
            check_fields(scope, ty, fields)?;
        }
        Action::Retract { slot } => {
            fact_slot(scope, *slot)?;
        }
        Action::Emit(emit) => {
            for (_, arg) in &emit.args {
                if let super::Arg::Expr(e) = arg {
                    scope.type_of(e)?;
                }
            }
            for (_, actions) in &emit.branches {
                for a in actions {
                    check_action(scope, a)?;
                }
            }
        }
        Action::Delayed { action, .. } => check_action(scope, action)?,
    }
    Ok(())
}

fn fact_slot(scope: &Scope<'_>, slot: Slot) -> Result<TypeId, Problem> {
    match scope.slots.get(slot.index()) {
        Some(SlotShape::Fact(ty)) => Ok(*ty),
        Some(SlotShape::Group(_)) => Err(Problem::Shape("an aggregate is not a fact".into())),
        None => Err(Problem::Dangling(format!("slot {}", slot.index()))),
    }
}

fn check_fields(scope: &Scope<'_>, ty: TypeId, fields: &[(FieldId, Expr)]) -> Result<(), Problem> {
    for (f, e) in fields {
        let (ft, optional) = scope.fact_field(ty, *f).map_err(Problem::Dangling)?;
        match scope.type_of(e)? {
            Some(t) if t == ft || (ft == ValueType::Float && t == ValueType::Int) => {}
            None if optional => {}
            t => return Err(type_err(format!("field of type {ft} given {}", name(t)))),
        }
    }
    Ok(())
}
