//! Rules: bindings, conditions and attributes, lowered into IR rules.

use super::decls::Env;
use super::exprs::Own;
use crate::ast::{self, Cond, ExprKind, Ident, PatternAst, Qualifier, RuleAttr, RuleDecl};
use crate::diagnostic::{Diagnostic, ErrorKind};
use nudge_core::{FactKind, FieldId, TypeId, ValueType};
use nudge_rete::ir::{self, cmp_fits, Aggregate, Builtin, Condition, Pattern, Slot, Window};
use std::sync::Arc;

/// What a binding holds.
#[derive(Debug, Clone)]
pub(crate) enum Shape {
    /// A fact; `positive` is false for nothing (kept for `modify` checks).
    Fact { ty: TypeId },
    /// An aggregate group: its `by` fields then its value, by name.
    Group(Vec<(String, ValueType)>),
    /// The binding's condition had errors: references to it report nothing more.
    Poison,
}

#[derive(Debug, Clone)]
pub(crate) struct Binding {
    pub name: Ident,
    pub slot: Slot,
    pub shape: Shape,
}

/// Most patterns and aggregates one rule may bind: far beyond any real rule,
/// and well inside the engine's slot numbers.
pub(crate) const MAX_PATTERNS: usize = 1024;

/// The state of checking one rule.
pub(crate) struct RuleCx<'a> {
    pub env: &'a Env,
    pub diags: &'a mut Vec<Diagnostic>,
    pub bindings: Vec<Binding>,
    slots: u16,
    /// Optional fields the conditions require to be present (`x != null`),
    /// as bound-field expressions: actions may pass them where a value is required.
    pub present: Vec<ir::Expr>,
}

/// A checked rule: the IR rule and its campaign, if any.
pub(crate) struct CheckedRule {
    pub rule: ir::Rule,
    pub campaign: Option<usize>,
}

pub(crate) fn check_rule(
    env: &Env,
    r: &RuleDecl,
    diags: &mut Vec<Diagnostic>,
) -> Option<CheckedRule> {
    let before = diags.len();
    let mut cx = RuleCx {
        env,
        diags,
        bindings: Vec::new(),
        slots: 0,
        present: Vec::new(),
    };
    let mut rule = ir::Rule::new(r.name.name.as_str());
    let campaign = cx.attributes(&r.attrs, &mut rule);
    let mut conditions = Vec::new();
    // Where each event pattern without `after` or `before` is written, by
    // type.
    let mut events: Vec<(ast::Span, TypeId)> = Vec::new();
    for c in &r.conditions {
        if let Some(lowered) = cx.condition(c) {
            let (span, p) = match (c, &lowered) {
                (
                    Cond::Pattern(a) | Cond::Not(a, _) | Cond::Exists(a, _),
                    Condition::Pattern(p) | Condition::Not(p) | Condition::Exists(p),
                ) => (a.span, p),
                (Cond::Aggregate(a), Condition::Aggregate(agg)) => (a.span, &agg.source),
                _ => {
                    conditions.push(lowered);
                    continue;
                }
            };
            let is_event = env.schema.get(p.ty).kind() == FactKind::Event;
            if is_event && p.window.after.is_none() && p.window.before.is_none() {
                events.push((span, p.ty));
            }
            conditions.push(lowered);
        }
    }
    let mut actions = Vec::new();
    for a in &r.actions {
        if let Some(a) = cx.action(a) {
            actions.push(a);
        }
    }
    if cx.diags.len() > before {
        return None;
    }
    rule.conditions = conditions;
    rule.actions = actions;
    // With no window and no delay a rule sees its events only at the moment
    // the first one happens: a second event pattern would need the other
    // event at that very millisecond, which is never what is meant.
    if rule.horizon() == nudge_core::Duration::ZERO {
        if let [(_, first), (span, ty), ..] = events[..] {
            let name = |t: TypeId| env.schema.get(t).name().to_string();
            cx.diags.push(
                Diagnostic::new(
                    ErrorKind::BadTime,
                    span,
                    format!(
                        "`{}` is an event, and this rule has no window measured from now (a `before` window does not count): it would only see `{}` events of the very moment `{}` happens",
                        name(ty),
                        name(ty),
                        name(first)
                    ),
                    "say how far back to look",
                )
                .help("add a window, e.g. `within 30d`, or put it `after` or `before` a binding"),
            );
            return None;
        }
    }
    Some(CheckedRule {
        rule,
        campaign: campaign.flatten(),
    })
}

impl RuleCx<'_> {
    pub fn binding(&self, name: &str) -> Option<&Binding> {
        self.bindings.iter().find(|b| b.name.name == name)
    }

    fn bind(&mut self, name: Option<&Ident>, shape: Shape) {
        if self.slots as usize == MAX_PATTERNS {
            let span = name.map_or_else(ast::Span::default, |n| n.span);
            self.diags.push(Diagnostic::new(
                ErrorKind::Syntax,
                span,
                format!("a rule may bind at most {MAX_PATTERNS} patterns"),
                "one too many",
            ));
        }
        let slot = Slot::new(self.slots);
        self.slots = self.slots.saturating_add(1);
        let Some(name) = name else { return };
        if let Some(first) = self.binding(&name.name) {
            let first = first.name.span;
            self.diags.push(
                Diagnostic::new(
                    ErrorKind::DuplicateBinding,
                    name.span,
                    format!("`{}` is bound twice", name.name),
                    "bound again here",
                )
                .note(first, "first bound here")
                .help("give each pattern its own name"),
            );
            return;
        }
        self.bindings.push(Binding {
            name: name.clone(),
            slot,
            shape,
        });
    }

    /// Returns the campaign: `None` if unset, `Some(None)` if it did not resolve.
    fn attributes(&mut self, attrs: &[RuleAttr], rule: &mut ir::Rule) -> Option<Option<usize>> {
        let mut seen: Vec<(&'static str, ast::Span)> = Vec::new();
        let mut campaign = None;
        for a in attrs {
            let key = match a {
                RuleAttr::Salience(..) => "salience",
                RuleAttr::Group(..) => "group",
                RuleAttr::NoLoop(_) => "no-loop",
                RuleAttr::Campaign(..) => "campaign",
            };
            if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::Duplicate,
                        a.span(),
                        format!("`{key}` is given twice"),
                        "given again here",
                    )
                    .note(*first, "first given here"),
                );
                continue;
            }
            seen.push((key, a.span()));
            match a {
                RuleAttr::Salience(n, span) => match i32::try_from(*n) {
                    Ok(s) => rule.salience = s,
                    Err(_) => self.diags.push(Diagnostic::new(
                        ErrorKind::BadLiteral,
                        *span,
                        format!("salience {n} is out of range"),
                        "must fit in 32 bits",
                    )),
                },
                RuleAttr::Group(g, _) => rule.group = Some(Arc::from(g.name.as_str())),
                RuleAttr::NoLoop(_) => rule.no_loop = true,
                RuleAttr::Campaign(c, _) => {
                    campaign = Some(
                        self.env
                            .campaigns
                            .resolve(c, ErrorKind::UnknownName, self.diags)
                            .map(|(i, _)| i),
                    );
                }
            }
        }
        campaign
    }

    fn condition(&mut self, c: &Cond) -> Option<Condition> {
        match c {
            Cond::Pattern(p) if self.is_call(p) => {
                let call = ast::Expr {
                    kind: ExprKind::Call(p.ty.clone(), p.tests.clone()),
                    span: p.span,
                };
                self.condition_expr(&call, None).map(Condition::Test)
            }
            Cond::Pattern(p) => {
                let lowered = self.pattern(p, "");
                let shape = match &lowered {
                    Some(pat) => Shape::Fact { ty: pat.ty },
                    None => Shape::Poison,
                };
                self.bind(p.binding.as_ref(), shape);
                lowered.map(Condition::Pattern)
            }
            Cond::Not(p, span) if self.is_call(p) => {
                let call = ast::Expr {
                    kind: ExprKind::Call(p.ty.clone(), p.tests.clone()),
                    span: p.span,
                };
                let negated = ast::Expr {
                    kind: ExprKind::Unary(ast::UnOp::Not, Box::new(call)),
                    span: *span,
                };
                self.condition_expr(&negated, None).map(Condition::Test)
            }
            Cond::Not(p, _) => self.pattern(p, "not").map(Condition::Not),
            Cond::Exists(p, _) => self.pattern(p, "exists").map(Condition::Exists),
            Cond::Aggregate(a) => {
                let lowered = self.aggregate(a);
                let shape = match &lowered {
                    Some((_, fields)) => Shape::Group(fields.clone()),
                    None => Shape::Poison,
                };
                self.bind(a.binding.as_ref(), shape);
                lowered.map(|(agg, _)| Condition::Aggregate(agg))
            }
            Cond::Test(e) => {
                let test = self.condition_expr(e, None)?;
                self.note_present(&test, None);
                Some(Condition::Test(test))
            }
        }
    }

    /// Records the fields a condition requires to be present; `own` is the
    /// slot a pattern's own fields will be bound at.
    fn note_present(&mut self, e: &ir::Expr, own: Option<Slot>) {
        use ir::{CmpOp, Expr};
        match e {
            Expr::And(xs) => xs.iter().for_each(|x| self.note_present(x, own)),
            Expr::Cmp(CmpOp::Ne, a, b) if matches!(**b, Expr::Const(nudge_core::Value::Null)) => {
                match (&**a, own) {
                    (Expr::Own(f), Some(slot)) => self.present.push(Expr::Bound(slot, *f)),
                    (bound @ Expr::Bound(..), _) => self.present.push(bound.clone()),
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// A bare `f(x)` line names a function, not a fact type, when `f` is one.
    fn is_call(&self, p: &PatternAst) -> bool {
        p.binding.is_none()
            && p.qualifiers.is_empty()
            && self.env.types.get(&p.ty.name).is_none()
            && (Builtin::from_name(&p.ty.name).is_some()
                || self.env.functions.get(&p.ty.name).is_some())
    }

    /// Checks a pattern; `keyword` is "not" or "exists" for those forms, which bind nothing.
    fn pattern(&mut self, p: &PatternAst, keyword: &str) -> Option<Pattern> {
        if let (Some(b), false) = (&p.binding, keyword.is_empty()) {
            self.diags.push(
                Diagnostic::new(
                    ErrorKind::DuplicateBinding,
                    b.span,
                    format!("a `{keyword}` pattern binds nothing"),
                    "cannot bind here",
                )
                .help(format!("remove `{}:`", b.name)),
            );
        }
        let Some((_, &ty)) = self.env.types.get(&p.ty.name) else {
            // A bare `name(...)` line may be a misspelt function as well as a type.
            let bare = p.binding.is_none() && p.qualifiers.is_empty();
            let functions: Vec<&str> = if bare {
                Builtin::ALL
                    .iter()
                    .map(|b| b.name())
                    .chain(self.env.functions.names())
                    .collect()
            } else {
                Vec::new()
            };
            let what = if bare {
                "fact type or function"
            } else {
                "fact type"
            };
            let known = self.env.types.names().chain(functions.iter().copied());
            self.diags.push(super::names::unknown(
                ErrorKind::UnknownType,
                what,
                &p.ty,
                known,
            ));
            return None;
        };
        let own = Own {
            ty,
            binding: p.binding.as_ref().map(|b| b.name.as_str()),
        };
        let mut pattern = Pattern::new(ty);
        let mut ok = true;
        for t in &p.tests {
            match self.condition_expr(t, Some(own)) {
                Some(e) => pattern.tests.push(e),
                None => ok = false,
            }
        }
        if keyword.is_empty() {
            let slot = Slot::new(self.slots);
            for t in &pattern.tests {
                self.note_present(t, Some(slot));
            }
        }
        match self.window(ty, &p.ty, &p.qualifiers) {
            Some(w) => pattern.window = w,
            None => ok = false,
        }
        ok.then_some(pattern)
    }

    fn window(&mut self, ty: TypeId, name: &Ident, qualifiers: &[Qualifier]) -> Option<Window> {
        let mut window = Window::default();
        let mut before_span = None;
        let mut within_written = false;
        let mut ok = true;
        if let Some(q) = qualifiers.first() {
            if self.env.schema.get(ty).kind() != FactKind::Event {
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::BadTime,
                        q.span(),
                        format!(
                            "`{}` is a fact: it has no time for `after`, `before` or `within`",
                            name.name
                        ),
                        "not an event",
                    )
                    .help(format!(
                        "declare `{}` as an `event`, or drop the time qualifier",
                        name.name
                    )),
                );
                return None;
            }
        }
        for q in qualifiers {
            match q {
                Qualifier::Within(d, span) => {
                    within_written = true;
                    if window.within.is_some() {
                        self.diags.push(Diagnostic::new(
                            ErrorKind::BadTime,
                            *span,
                            "`within` is given twice".to_string(),
                            "repeated",
                        ));
                        ok = false;
                    } else if d.as_millis() <= 0 {
                        self.diags.push(Diagnostic::new(
                            ErrorKind::BadTime,
                            *span,
                            "a window must be longer than zero".to_string(),
                            "empty window",
                        ));
                        ok = false;
                    } else {
                        window.within = Some(*d);
                    }
                }
                Qualifier::After(b, span) | Qualifier::Before(b, span) => {
                    let (word, other) = match q {
                        Qualifier::After(..) => ("after", "before"),
                        _ => ("before", "after"),
                    };
                    if window.after.is_some() || window.before.is_some() {
                        let (message, label) = if (word == "after") == window.after.is_some() {
                            (format!("`{word}` is given twice"), "repeated")
                        } else {
                            (
                                format!(
                                    "a pattern is `{other}` one event or `{word}` one, not both"
                                ),
                                "one or the other",
                            )
                        };
                        self.diags
                            .push(Diagnostic::new(ErrorKind::BadTime, *span, message, label));
                        ok = false;
                        continue;
                    }
                    match self.binding(&b.name).map(|b| (b.slot, b.shape.clone())) {
                        Some((slot, Shape::Fact { ty }))
                            if self.env.schema.get(ty).kind() == FactKind::Event =>
                        {
                            if word == "after" {
                                window.after = Some(slot);
                            } else {
                                window.before = Some(slot);
                                before_span = Some((*span, b.name.clone()));
                            }
                        }
                        Some((_, Shape::Poison)) => ok = false,
                        Some(_) => {
                            self.diags.push(Diagnostic::new(
                                ErrorKind::BadTime,
                                b.span,
                                format!("`{word} {}` needs an event binding", b.name),
                                "not an event",
                            ));
                            ok = false;
                        }
                        None => {
                            let d = super::names::unknown(
                                ErrorKind::UnknownName,
                                "binding",
                                b,
                                self.bindings.iter().map(|b| b.name.name.as_str()),
                            );
                            self.diags.push(d);
                            ok = false;
                        }
                    }
                }
            }
        }
        // `before` without a window would keep every event for ever, in
        // case a later one needs it.
        if let (Some((span, name)), false) = (before_span, within_written) {
            self.diags.push(
                Diagnostic::new(
                    ErrorKind::BadTime,
                    span,
                    format!("`before {name}` needs a window: how long before `{name}` to look"),
                    "no window",
                )
                .help(format!("write e.g. `before {name} within 30d`")),
            );
            ok = false;
        }
        ok.then_some(window)
    }

    fn aggregate(
        &mut self,
        a: &ast::AggregateAst,
    ) -> Option<(Aggregate, Vec<(String, ValueType)>)> {
        let (func, func_span) = a.func;
        let mut ok = true;
        if let Some(b) = &a.source.binding {
            self.diags.push(
                Diagnostic::new(
                    ErrorKind::DuplicateBinding,
                    b.span,
                    "the pattern inside an aggregate binds nothing".to_string(),
                    "cannot bind here",
                )
                .help("bind the aggregate instead: `n: count(...)`"),
            );
            ok = false;
        }
        if let Some(q) = a.source.qualifiers.first() {
            let d = match q {
                Qualifier::Within(..) => Diagnostic::new(
                    ErrorKind::BadTime,
                    q.span(),
                    "time qualifiers of an aggregate go after it".to_string(),
                    "move this",
                )
                .help("write `n: count(page_view(...)) >= 3 within 30m`"),
                _ => Diagnostic::new(
                    ErrorKind::BadTime,
                    q.span(),
                    "an aggregate counts the events of a window ending now: it takes `within` only, not `after` or `before`".to_string(),
                    "not in an aggregate",
                )
                .help("write `n: count(page_view(...)) >= 3 within 30m`, or match the events one by one with a pattern"),
            };
            self.diags.push(d);
            ok = false;
        }
        let source = Own {
            ty: self
                .env
                .types
                .resolve(&a.source.ty, ErrorKind::UnknownType, self.diags)
                .map(|(_, t)| *t)?,
            binding: None,
        };
        let mut pattern = Pattern::new(source.ty);
        for t in &a.source.tests {
            match self.condition_expr(t, Some(source)) {
                Some(e) => pattern.tests.push(e),
                None => ok = false,
            }
        }
        let value = match (&a.value, func) {
            (Some(v), ir::AggFunc::Count) => {
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::BadArgument,
                        v.span,
                        "`count` counts facts: it takes no value".to_string(),
                        "extra value",
                    )
                    .help("use `count_distinct(pattern, field)` to count distinct values"),
                );
                ok = false;
                None
            }
            (None, ir::AggFunc::Count) => None,
            (None, f) => {
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::BadArgument,
                        func_span,
                        format!("`{}` needs a value to aggregate", f.name()),
                        "missing value",
                    )
                    .help(format!(
                        "write `{}({}(...), field)`",
                        f.name(),
                        a.source.ty.name
                    )),
                );
                ok = false;
                None
            }
            (Some(v), _) => match self.expr(v, Some(source)) {
                Some(t) => Some((t, v.span)),
                None => {
                    ok = false;
                    None
                }
            },
        };
        let value_type = value.as_ref().and_then(|(t, _)| match t.ty {
            super::exprs::Ty::Val(v) => Some(v),
            super::exprs::Ty::Null => None,
        });
        let result = func.result_type(value_type);
        if result.is_none() && ok {
            let span = value.as_ref().map_or(func_span, |(_, s)| *s);
            self.diags.push(Diagnostic::new(
                ErrorKind::TypeMismatch,
                span,
                format!(
                    "`{}` cannot aggregate {}",
                    func.name(),
                    value_type.map_or("null".to_string(), |t| t.to_string())
                ),
                "wrong type",
            ));
            ok = false;
        }
        let mut by: Vec<FieldId> = Vec::new();
        let mut fields: Vec<(String, ValueType)> = Vec::new();
        for f in &a.by {
            let t = self.env.schema.get(source.ty);
            match t.field_id(&f.name) {
                Some(id) if by.contains(&id) => {
                    self.diags.push(Diagnostic::new(
                        ErrorKind::Duplicate,
                        f.span,
                        format!("`{}` is listed twice", f.name),
                        "repeated",
                    ));
                    ok = false;
                }
                Some(id) => {
                    by.push(id);
                    fields.push((f.name.clone(), t.field_def(id).ty));
                }
                None => {
                    let known: Vec<&str> = t.fields().iter().map(|f| &*f.name).collect();
                    self.diags.push(super::names::unknown_with(
                        ErrorKind::UnknownField,
                        format!("`{}` has no field `{}`", t.name(), f.name),
                        "no such field".to_string(),
                        f,
                        known,
                    ));
                    ok = false;
                }
            }
        }
        let having = match &a.having {
            Some((op, e)) => match self.expr(e, None) {
                Some(t) => {
                    let fits = match (result, t.ty) {
                        (Some(r), super::exprs::Ty::Val(v)) => cmp_fits(*op, r, v),
                        _ => false,
                    };
                    if !fits && result.is_some() {
                        self.diags.push(Diagnostic::new(
                            ErrorKind::TypeMismatch,
                            e.span,
                            format!(
                                "cannot compare the {} of `{}` with this",
                                func.name(),
                                a.source.ty.name
                            ),
                            "type mismatch",
                        ));
                        ok = false;
                    }
                    Some((*op, t.expr))
                }
                None => {
                    ok = false;
                    None
                }
            },
            None => None,
        };
        let within = match a.within {
            Some((d, span)) => {
                if self.env.schema.get(source.ty).kind() != FactKind::Event {
                    self.diags.push(Diagnostic::new(
                        ErrorKind::BadTime,
                        span,
                        format!(
                            "`{}` is a fact: only events are aggregated within a window",
                            a.source.ty.name
                        ),
                        "not an event",
                    ));
                    ok = false;
                } else if d.as_millis() <= 0 {
                    self.diags.push(Diagnostic::new(
                        ErrorKind::BadTime,
                        span,
                        "a window must be longer than zero".to_string(),
                        "empty window",
                    ));
                    ok = false;
                }
                Some(d)
            }
            None => None,
        };
        if !ok {
            return None;
        }
        fields.push((func.name().to_string(), result?));
        let agg = Aggregate {
            func,
            source: pattern,
            value: value.map(|(t, _)| t.expr),
            by,
            having,
            within,
        };
        Some((agg, fields))
    }
}
