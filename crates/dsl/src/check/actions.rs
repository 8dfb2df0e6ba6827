//! Actions: built-in, host-declared and forward-chaining, checked against
//! their signatures and lowered into IR actions.

use super::exprs::Ty;
use super::names::unknown;
use super::rules::{RuleCx, Shape};
use crate::ast::{ActionKind, ActionStmt, Branch, ExprKind, Ident, NamedArg, Span};
use crate::diagnostic::{Diagnostic, ErrorKind};
use nudge_core::{
    builtin_actions, ActionSignature, Branches, DeclKind, FieldId, ParamType, TypeId, ValueType,
};
use nudge_rete::ir::{Action, Arg, Emit, Expr, Slot};
use std::sync::Arc;

impl RuleCx<'_> {
    pub fn action(&mut self, a: &ActionStmt) -> Option<Action> {
        match &a.kind {
            ActionKind::Delayed {
                after,
                regardless,
                action,
            } => {
                let inner = self.action(action);
                if after.as_millis() <= 0 {
                    self.diags.push(Diagnostic::new(
                        ErrorKind::BadTime,
                        a.span,
                        "a delay must be longer than zero".to_string(),
                        "no delay",
                    ));
                    return None;
                }
                Some(Action::Delayed {
                    after: *after,
                    recheck: !regardless,
                    action: Box::new(inner?),
                })
            }
            ActionKind::Insert(ty, args) => {
                let ty = self
                    .env
                    .types
                    .resolve(ty, ErrorKind::UnknownType, self.diags)
                    .map(|(_, t)| *t)?;
                let fields = self.field_values(ty, args)?;
                let t = self.env.schema.get(ty);
                // A context provider fills its fields on insert.
                let provided = |i: usize| {
                    t.contexts()
                        .iter()
                        .any(|c| c.fields.iter().any(|f| f.index() == i))
                };
                let missing: Vec<String> = t
                    .fields()
                    .iter()
                    .enumerate()
                    .filter(|(i, f)| {
                        !f.optional
                            && !provided(*i)
                            && !fields.iter().any(|(id, _)| id.index() == *i)
                    })
                    .map(|(_, f)| format!("`{}`", f.name))
                    .collect();
                if !missing.is_empty() {
                    self.diags.push(Diagnostic::new(
                        ErrorKind::BadArgument,
                        a.span,
                        format!("inserting `{}` needs {}", t.name(), missing.join(", ")),
                        "missing fields",
                    ));
                    return None;
                }
                Some(Action::Insert { ty, fields })
            }
            ActionKind::Modify(b, args) => {
                let (slot, ty) = self.fact_binding(b, "modify")?;
                let fields = self.field_values(ty, args)?;
                Some(Action::Modify { slot, fields })
            }
            ActionKind::Retract(b) => {
                let (slot, _) = self.fact_binding(b, "retract")?;
                Some(Action::Retract { slot })
            }
            ActionKind::Call {
                name,
                args,
                branches,
            } => self.call_action(a.span, name, args, branches.as_deref()),
        }
    }

    fn fact_binding(&mut self, b: &Ident, verb: &str) -> Option<(Slot, TypeId)> {
        match self.binding(&b.name).map(|x| (x.slot, x.shape.clone())) {
            Some((slot, Shape::Fact { ty })) => {
                if verb == "modify" && self.env.schema.get(ty).kind() == nudge_core::FactKind::Event
                {
                    self.diags.push(
                        Diagnostic::new(
                            ErrorKind::TypeMismatch,
                            b.span,
                            format!("`{}` is an event: what happened cannot be modified", b.name),
                            "an event",
                        )
                        .help("insert or modify a fact that records it instead"),
                    );
                    return None;
                }
                Some((slot, ty))
            }
            Some((_, Shape::Poison)) => None,
            Some((_, Shape::Group(_))) => {
                self.diags.push(Diagnostic::new(
                    ErrorKind::TypeMismatch,
                    b.span,
                    format!(
                        "`{}` is an aggregate: only facts can be {}",
                        b.name,
                        if verb == "modify" {
                            "modified"
                        } else {
                            "retracted"
                        }
                    ),
                    "not a fact",
                ));
                None
            }
            None => {
                let names: Vec<String> =
                    self.bindings.iter().map(|b| b.name.name.clone()).collect();
                self.diags.push(unknown(
                    ErrorKind::UnknownName,
                    "binding",
                    b,
                    names.iter().map(String::as_str),
                ));
                None
            }
        }
    }

    fn field_values(&mut self, ty: TypeId, args: &[NamedArg]) -> Option<Vec<(FieldId, Expr)>> {
        let mut out: Vec<(FieldId, Expr)> = Vec::new();
        let mut ok = true;
        for arg in args {
            let t = self.env.schema.get(ty);
            let Some(id) = t.field_id(&arg.name.name) else {
                let known: Vec<&str> = t.fields().iter().map(|f| &*f.name).collect();
                self.diags.push(super::names::unknown_with(
                    ErrorKind::UnknownField,
                    format!("`{}` has no field `{}`", t.name(), arg.name.name),
                    "no such field".to_string(),
                    &arg.name,
                    known,
                ));
                ok = false;
                continue;
            };
            let def = t.field_def(id).clone();
            if out.iter().any(|(f, _)| *f == id) {
                self.diags.push(Diagnostic::new(
                    ErrorKind::Duplicate,
                    arg.name.span,
                    format!("field `{}` is given twice", arg.name.name),
                    "repeated",
                ));
                ok = false;
                continue;
            }
            let Some(v) = self.expr(&arg.value, None) else {
                ok = false;
                continue;
            };
            if !def.optional && self.may_be_missing(&v) {
                let d =
                    self.missing_value(&arg.value, &format!("field `{}` needs a value", def.name));
                self.diags.push(d);
                ok = false;
                continue;
            }
            let fits = match v.ty {
                Ty::Val(vt) => vt == def.ty || (vt == ValueType::Int && def.ty == ValueType::Float),
                Ty::Null => def.optional,
            };
            if !fits {
                self.diags.push(Diagnostic::new(
                    ErrorKind::TypeMismatch,
                    arg.value.span,
                    format!(
                        "field `{}` is {}{}, not {}",
                        def.name,
                        def.ty,
                        if def.optional { "?" } else { "" },
                        ty_name(v.ty)
                    ),
                    "wrong type",
                ));
                ok = false;
                continue;
            }
            out.push((id, v.expr));
        }
        ok.then_some(out)
    }

    fn signature(&mut self, name: &Ident) -> Option<ActionSignature> {
        if let Some(b) = builtin_actions()
            .into_iter()
            .find(|s| s.name() == name.name)
        {
            return Some(b);
        }
        if let Some((_, sig)) = self.env.actions.get(&name.name) {
            return Some(sig.clone());
        }
        let builtins = builtin_actions();
        let known: Vec<&str> = builtins
            .iter()
            .map(|s| s.name())
            .chain(self.env.actions.names())
            .chain(["insert", "modify", "retract"])
            .collect();
        let d = Diagnostic::new(
            ErrorKind::UnknownAction,
            name.span,
            format!("unknown action `{}`", name.name),
            "not a known action",
        );
        let d = if self.env.types.get(&name.name).is_some() {
            d.help(format!("to add a fact, write `insert {}(...)`", name.name))
        } else if let Some(s) = super::names::suggest(&name.name, known) {
            d.help(format!("did you mean `{s}`?"))
        } else {
            d.help(format!(
                "declare a host action before using it: `action {}(user: string)`",
                name.name
            ))
        };
        self.diags.push(d);
        None
    }

    fn call_action(
        &mut self,
        span: Span,
        name: &Ident,
        args: &[NamedArg],
        branches: Option<&[Branch]>,
    ) -> Option<Action> {
        let sig = self.signature(name)?;
        let mut ok = true;
        let mut out: Vec<(Arc<str>, Arg)> = Vec::new();
        // Names a later argument depends on: the machine of `to`, the experiment of the branches.
        let mut machine_states: Option<Vec<String>> = None;
        let mut arms: Option<Vec<String>> = None;
        let mut ordered: Vec<&NamedArg> = args.iter().collect();
        ordered.sort_by_key(|a| {
            !matches!(
                sig.param_named(&a.name.name).map(|p| &p.ty),
                Some(ParamType::Decl(DeclKind::Machine | DeclKind::Experiment))
            )
        });
        for arg in ordered {
            if out.iter().any(|(n, _)| **n == arg.name.name) {
                self.diags.push(Diagnostic::new(
                    ErrorKind::BadArgument,
                    arg.name.span,
                    format!("argument `{}` is given twice", arg.name.name),
                    "repeated",
                ));
                ok = false;
                continue;
            }
            let lowered = match sig
                .param_named(&arg.name.name)
                .map(|p| (p.ty.clone(), p.required))
            {
                None if sig.extra_vars() => self.expr(&arg.value, None).map(|t| Arg::Expr(t.expr)),
                None => {
                    let known: Vec<&str> = sig.params().iter().map(|p| &*p.name).collect();
                    let mut d = super::names::unknown_with(
                        ErrorKind::BadArgument,
                        format!("`{}` has no argument `{}`", sig.name(), arg.name.name),
                        "no such argument".to_string(),
                        &arg.name,
                        known.iter().copied(),
                    );
                    if d.help.is_none() {
                        d = d.help(format!(
                            "`{}` takes {}",
                            sig.name(),
                            known
                                .iter()
                                .map(|k| format!("`{k}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                    self.diags.push(d);
                    None
                }
                Some((ParamType::Value(types), required)) => {
                    let lowered = self.value_arg(sig.name(), arg, &types, required);
                    // A required argument written as an empty string or
                    // list names nothing: no channel, no template, nobody.
                    let empty = match &lowered {
                        Some(Arg::Expr(nudge_rete::ir::Expr::Const(nudge_core::Value::Str(s)))) => {
                            s.is_empty()
                        }
                        Some(Arg::Expr(nudge_rete::ir::Expr::Const(nudge_core::Value::List(
                            l,
                        )))) => l.is_empty(),
                        _ => false,
                    };
                    if required && empty {
                        self.diags.push(Diagnostic::new(
                            ErrorKind::BadArgument,
                            arg.value.span,
                            format!("`{}` of `{}` is empty", arg.name.name, sig.name()),
                            "names nothing",
                        ));
                        None
                    } else {
                        lowered
                    }
                }
                Some((ParamType::Decl(kind), _)) => {
                    let names = match kind {
                        DeclKind::State => machine_states.clone(),
                        _ => None,
                    };
                    let r = self.decl_arg(arg, kind, names.as_deref());
                    if let Some(n) = &r {
                        match kind {
                            DeclKind::Machine => {
                                machine_states = self.env.machines.get(n).map(|(_, s)| s.clone())
                            }
                            DeclKind::Experiment => {
                                arms = self.env.experiments.get(n).map(|(_, a)| a.clone())
                            }
                            _ => {}
                        }
                    }
                    r.map(|n| Arg::Name(n.as_str().into()))
                }
                Some((ParamType::DeclList(kind), _)) => {
                    self.decl_list_arg(arg, kind).map(Arg::Names)
                }
            };
            match lowered {
                Some(l) => out.push((arg.name.name.as_str().into(), l)),
                None => ok = false,
            }
        }
        // A misspelt argument is reported once, as misspelt, not also as missing.
        let meant: Vec<&str> = args
            .iter()
            .filter(|a| sig.param_named(&a.name.name).is_none())
            .filter_map(|a| {
                super::names::suggest(&a.name.name, sig.params().iter().map(|p| &*p.name))
            })
            .collect();
        for p in sig.params() {
            if p.required
                && !args.iter().any(|a| a.name.name == *p.name)
                && !meant.contains(&&*p.name)
            {
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::BadArgument,
                        name.span,
                        format!("`{}` needs the argument `{}`", sig.name(), p.name),
                        format!("missing `{}`", p.name),
                    )
                    .help(format!("add `{}: ...`", p.name)),
                );
                ok = false;
            }
        }
        // Keep the arguments in the order written.
        out.sort_by_key(|(n, _)| args.iter().position(|a| *a.name.name == **n));
        let branches = match (branches, sig.branches()) {
            (None, _) => Vec::new(),
            (Some(bs), Some(labels)) => {
                match self.branches(bs, labels_of(labels, arms).as_deref(), label_word(labels)) {
                    Some(b) => b,
                    None => {
                        ok = false;
                        Vec::new()
                    }
                }
            }
            (Some(_), None) => {
                self.diags.push(Diagnostic::new(
                    ErrorKind::BadArgument,
                    span,
                    format!("`{}` takes no branches", sig.name()),
                    "unexpected block",
                ));
                return None;
            }
        };
        ok.then(|| {
            Action::Emit(Emit {
                action: sig.name().into(),
                args: out,
                branches,
            })
        })
    }

    fn value_arg(
        &mut self,
        action: &str,
        arg: &NamedArg,
        types: &[ValueType],
        required: bool,
    ) -> Option<Arg> {
        let t = self.expr(&arg.value, None)?;
        if required && self.may_be_missing(&t) {
            let d = self.missing_value(
                &arg.value,
                &format!("`{}` of `{action}` needs a value", arg.name.name),
            );
            self.diags.push(d);
            return None;
        }
        let fits = match t.ty {
            Ty::Val(v) => {
                types.contains(&v) || (v == ValueType::Int && types.contains(&ValueType::Float))
            }
            Ty::Null => !required,
        };
        if !fits {
            let expected: Vec<String> = types.iter().map(|t| t.to_string()).collect();
            self.diags.push(Diagnostic::new(
                ErrorKind::TypeMismatch,
                arg.value.span,
                format!(
                    "`{}` of `{action}` takes {}, not {}",
                    arg.name.name,
                    expected.join(" or "),
                    ty_name(t.ty)
                ),
                "wrong type",
            ));
            return None;
        }
        let widen = t.ty == Ty::Val(ValueType::Int) && !types.contains(&ValueType::Int);
        Some(Arg::Expr(if widen {
            Expr::ToFloat(Box::new(t.expr))
        } else {
            t.expr
        }))
    }

    /// A bare name of a declaration of `kind`; for states, one of `states`.
    fn decl_arg(
        &mut self,
        arg: &NamedArg,
        kind: DeclKind,
        states: Option<&[String]>,
    ) -> Option<String> {
        let ExprKind::Path(n, None) = &arg.value.kind else {
            self.diags.push(
                Diagnostic::new(
                    ErrorKind::BadArgument,
                    arg.value.span,
                    format!("`{}` takes the name of a {}", arg.name.name, kind.keyword()),
                    "expected a name",
                )
                .help(format!("write `{}: name`, without quotes", arg.name.name)),
            );
            return None;
        };
        let found = match kind {
            DeclKind::Coupon => self
                .env
                .coupons
                .resolve(n, ErrorKind::UnknownName, self.diags)
                .is_some(),
            DeclKind::Machine => self
                .env
                .machines
                .resolve(n, ErrorKind::UnknownName, self.diags)
                .is_some(),
            DeclKind::Experiment => self
                .env
                .experiments
                .resolve(n, ErrorKind::UnknownName, self.diags)
                .is_some(),
            DeclKind::Cap => self
                .env
                .caps
                .resolve(n, ErrorKind::UnknownName, self.diags)
                .is_some(),
            DeclKind::Audience => self
                .env
                .audiences
                .resolve(n, ErrorKind::UnknownName, self.diags)
                .is_some(),
            DeclKind::Campaign => self
                .env
                .campaigns
                .resolve(n, ErrorKind::UnknownName, self.diags)
                .is_some(),
            DeclKind::State => match states {
                Some(states) if states.contains(&n.name) => true,
                Some(states) => {
                    self.diags.push(unknown(
                        ErrorKind::UnknownState,
                        "state",
                        n,
                        states.iter().map(String::as_str),
                    ));
                    false
                }
                // The machine itself did not resolve: that is already reported.
                None => false,
            },
        };
        found.then(|| n.name.clone())
    }

    fn decl_list_arg(&mut self, arg: &NamedArg, kind: DeclKind) -> Option<Vec<Arc<str>>> {
        let ExprKind::List(items) = &arg.value.kind else {
            self.diags.push(Diagnostic::new(
                ErrorKind::BadArgument,
                arg.value.span,
                format!(
                    "`{}` takes a list of {} names",
                    arg.name.name,
                    kind.keyword()
                ),
                "expected a list",
            ));
            return None;
        };
        let mut out = Vec::new();
        for item in items {
            let one = NamedArg {
                name: arg.name.clone(),
                value: item.clone(),
                span: item.span,
            };
            out.push(Arc::from(self.decl_arg(&one, kind, None)?.as_str()));
        }
        Some(out)
    }

    fn branches(
        &mut self,
        branches: &[Branch],
        arms: Option<&[String]>,
        what: &str,
    ) -> Option<Vec<(Arc<str>, Vec<Action>)>> {
        let mut out: Vec<(Arc<str>, Vec<Action>)> = Vec::new();
        let mut ok = true;
        for b in branches {
            if out.iter().any(|(l, _)| **l == b.label.name) {
                self.diags.push(Diagnostic::new(
                    ErrorKind::Duplicate,
                    b.label.span,
                    format!("{what} `{}` has two branches", b.label.name),
                    "repeated",
                ));
                ok = false;
                continue;
            }
            if let Some(arms) = arms {
                if !arms.contains(&b.label.name) {
                    self.diags.push(unknown(
                        ErrorKind::BadArgument,
                        what,
                        &b.label,
                        arms.iter().map(String::as_str),
                    ));
                    ok = false;
                    continue;
                }
            }
            let mut actions = Vec::new();
            for a in &b.actions {
                match self.action(a) {
                    Some(a) => actions.push(a),
                    None => ok = false,
                }
            }
            out.push((b.label.name.as_str().into(), actions));
        }
        (ok && arms.is_some()).then_some(out)
    }
}

/// What a branch label is called in messages.
fn label_word(branches: &Branches) -> &'static str {
    match branches {
        Branches::Arms(_) => "arm",
        Branches::Outcomes(_) => "outcome",
    }
}

/// The labels an action's branches may use, once its arguments are known.
impl RuleCx<'_> {
    /// Whether `t` reads an optional field that no condition requires.
    fn may_be_missing(&self, t: &super::exprs::Typed) -> bool {
        t.nullable && matches!(t.expr, Expr::Bound(..)) && !self.present.contains(&t.expr)
    }

    fn missing_value(&self, e: &crate::ast::Expr, need: &str) -> Diagnostic {
        let shown = match &e.kind {
            ExprKind::Path(a, Some(f)) => format!("{}.{}", a.name, f.name),
            _ => "this".to_string(),
        };
        Diagnostic::new(
            ErrorKind::TypeMismatch,
            e.span,
            format!("{need}, but `{shown}` is optional and may be missing"),
            "may be missing",
        )
        .help(format!("add the condition `{shown} != null` to the rule"))
    }
}

fn labels_of(branches: &Branches, arms: Option<Vec<String>>) -> Option<Vec<String>> {
    match branches {
        Branches::Arms(_) => arms,
        Branches::Outcomes(outcomes) => Some(outcomes.iter().map(|o| o.to_string()).collect()),
    }
}

fn ty_name(t: Ty) -> String {
    match t {
        Ty::Val(v) => v.to_string(),
        Ty::Null => "null".to_string(),
    }
}
