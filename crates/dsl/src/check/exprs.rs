//! Expressions: name resolution and type checking, lowered into IR
//! expressions.

use super::names::{unknown, unknown_with};
use super::rules::{RuleCx, Shape};
use crate::ast::{self, BinOp, ExprKind, Ident, Literal, UnOp};
use crate::diagnostic::{Diagnostic, ErrorKind};
use nudge_core::{FieldId, Timestamp, TypeId, Value, ValueType};
use nudge_rete::ir::{
    arith_type, cmp_fits, eval, AggFunc, ArithOp, Builtin, CmpOp, ConstEnv, Expr, FunctionId, SetId,
};

/// A type as the checker sees it: a value type, or the `null` literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Val(ValueType),
    Null,
}

impl Ty {
    fn name(self) -> String {
        match self {
            Ty::Val(v) => v.to_string(),
            Ty::Null => "null".to_string(),
        }
    }
}

/// A lowered expression with its type and whether it may be null.
pub(crate) struct Typed {
    pub expr: Expr,
    pub ty: Ty,
    pub nullable: bool,
}

/// The fact a pattern tests, if the expression is inside one.
#[derive(Clone, Copy)]
pub(crate) struct Own<'a> {
    pub ty: TypeId,
    pub binding: Option<&'a str>,
}

fn article(t: Ty) -> String {
    match t {
        Ty::Val(ValueType::Int) => "an int".into(),
        Ty::Null => "null".into(),
        t => format!("a {}", t.name()),
    }
}

impl RuleCx<'_> {
    fn field_of(&mut self, ty: TypeId, field: &Ident) -> Option<(FieldId, ValueType, bool)> {
        let t = self.env.schema.get(ty);
        match t.field_id(&field.name) {
            Some(id) => {
                let def = t.field_def(id);
                Some((id, def.ty, def.optional))
            }
            None => {
                let known: Vec<&str> = t.fields().iter().map(|f| &*f.name).collect();
                let d = unknown_with(
                    ErrorKind::UnknownField,
                    format!("`{}` has no field `{}`", t.name(), field.name),
                    "no such field".to_string(),
                    field,
                    known,
                );
                self.diags.push(d);
                None
            }
        }
    }

    /// Lowers and checks an expression that must be a condition.
    pub fn condition_expr(&mut self, e: &ast::Expr, own: Option<Own<'_>>) -> Option<Expr> {
        let t = self.expr(e, own)?;
        if t.ty != Ty::Val(ValueType::Bool) {
            self.diags.push(Diagnostic::new(
                ErrorKind::TypeMismatch,
                e.span,
                format!(
                    "a condition must be true or false, but this is {}",
                    article(t.ty)
                ),
                "not a condition",
            ));
            return None;
        }
        Some(t.expr)
    }

    pub fn expr(&mut self, e: &ast::Expr, own: Option<Own<'_>>) -> Option<Typed> {
        match &e.kind {
            ExprKind::Lit(l) => Some(literal(l)),
            ExprKind::Path(first, field) => self.path(first, field.as_ref(), own),
            ExprKind::List(items) => {
                let values = self.constant_list(items, own)?;
                if values.iter().all(|v| matches!(v, Value::Str(_))) {
                    let strings = values.into_iter().map(|v| match v {
                        Value::Str(s) => s,
                        _ => unreachable!("all items are strings"),
                    });
                    Some(Typed {
                        expr: Expr::Const(Value::List(strings.collect())),
                        ty: Ty::Val(ValueType::StringList),
                        nullable: false,
                    })
                } else {
                    self.diags.push(
                        Diagnostic::new(
                            ErrorKind::TypeMismatch,
                            e.span,
                            "only lists of strings are values".to_string(),
                            "not a list of strings",
                        )
                        .help("a list of numbers can only follow `in`, as in `level in [1, 2]`"),
                    );
                    None
                }
            }
            ExprKind::Call(name, args) => self.call(e, name, args, own),
            ExprKind::Unary(op, operand) => {
                let t = self.expr(operand, own)?;
                match (op, t.ty) {
                    (UnOp::Not, Ty::Val(ValueType::Bool)) => Some(Typed {
                        expr: Expr::Not(Box::new(t.expr)),
                        ty: t.ty,
                        nullable: false,
                    }),
                    (
                        UnOp::Neg,
                        Ty::Val(ValueType::Int | ValueType::Float | ValueType::Duration),
                    ) => Some(Typed {
                        expr: Expr::Neg(Box::new(t.expr)),
                        ty: t.ty,
                        nullable: t.nullable,
                    }),
                    (UnOp::Not, ty) => self.mismatch(
                        operand.span,
                        format!("`not` needs a condition, not {}", article(ty)),
                        None,
                    ),
                    (UnOp::Neg, ty) => {
                        self.mismatch(operand.span, format!("cannot negate {}", article(ty)), None)
                    }
                }
            }
            ExprKind::Binary(op, l, r) => self.binary(e, *op, l, r, own),
            ExprKind::InAudience {
                expr,
                audience,
                negated,
            } => {
                let t = self.expr(expr, own);
                let set = self.audience(audience);
                let (t, set) = (t?, set?);
                if !matches!(t.ty, Ty::Val(ValueType::String | ValueType::Int)) {
                    return self.mismatch(
                        expr.span,
                        format!(
                            "audience members are user ids (string or int), not {}",
                            article(t.ty)
                        ),
                        None,
                    );
                }
                let test = Expr::InSet(Box::new(t.expr), set);
                let expr = if *negated {
                    Expr::Not(Box::new(test))
                } else {
                    test
                };
                Some(Typed {
                    expr,
                    ty: Ty::Val(ValueType::Bool),
                    nullable: false,
                })
            }
        }
    }

    fn mismatch(
        &mut self,
        span: ast::Span,
        message: String,
        help: Option<String>,
    ) -> Option<Typed> {
        let mut d = Diagnostic::new(ErrorKind::TypeMismatch, span, message, "type mismatch");
        if let Some(h) = help {
            d = d.help(h);
        }
        self.diags.push(d);
        None
    }

    pub fn audience(&mut self, name: &Ident) -> Option<SetId> {
        self.env
            .audiences
            .resolve(name, ErrorKind::UnknownName, self.diags)
            .map(|(i, _)| SetId::new(i as u32))
    }

    fn path(
        &mut self,
        first: &Ident,
        field: Option<&Ident>,
        own: Option<Own<'_>>,
    ) -> Option<Typed> {
        let Some(field) = field else {
            if let Some(own) = own {
                let t = self.env.schema.get(own.ty);
                if let Some(id) = t.field_id(&first.name) {
                    let def = t.field_def(id);
                    return Some(Typed {
                        expr: Expr::Own(id),
                        ty: Ty::Val(def.ty),
                        nullable: def.optional,
                    });
                }
            }
            if let Some(b) = self.binding(&first.name) {
                let example = match &b.shape {
                    Shape::Fact { ty, .. } => self
                        .env
                        .schema
                        .get(*ty)
                        .fields()
                        .first()
                        .map(|f| f.name.to_string()),
                    Shape::Group(fields) => fields.first().map(|f| f.0.clone()),
                    Shape::Poison => return None,
                };
                let d = Diagnostic::new(
                    ErrorKind::TypeMismatch,
                    first.span,
                    format!("`{}` is a binding, not a value", first.name),
                    "a whole fact",
                );
                self.diags.push(match example {
                    Some(f) => d.help(format!("use one of its fields, as in `{}.{f}`", first.name)),
                    None => d,
                });
                return None;
            }
            return match own {
                Some(own) => {
                    self.field_of(own.ty, first);
                    None
                }
                None => {
                    let d = unknown(ErrorKind::UnknownName, "name", first, self.binding_names());
                    self.diags.push(
                        if d.help.is_none() && self.env.types.get(&first.name).is_some() {
                            d.help(format!(
                                "bind the fact first, as in `x: {}(...)`, then use `x.field`",
                                first.name
                            ))
                        } else {
                            d
                        },
                    );
                    None
                }
            };
        };
        if let Some(own) = own {
            if own.binding == Some(first.name.as_str()) {
                let (id, ty, optional) = self.field_of(own.ty, field)?;
                return Some(Typed {
                    expr: Expr::Own(id),
                    ty: Ty::Val(ty),
                    nullable: optional,
                });
            }
        }
        let Some(b) = self.binding(&first.name) else {
            let mut d = unknown(
                ErrorKind::UnknownName,
                "binding",
                first,
                self.binding_names(),
            );
            if d.help.is_none() && self.env.types.get(&first.name).is_some() {
                d = d.help(format!(
                    "bind the fact first, as in `x: {}(...)`, then use `x.{}`",
                    first.name, field.name
                ));
            }
            self.diags.push(d);
            return None;
        };
        let slot = b.slot;
        match b.shape.clone() {
            Shape::Poison => None,
            Shape::Fact { ty, .. } => {
                let (id, vt, optional) = self.field_of(ty, field)?;
                Some(Typed {
                    expr: Expr::Bound(slot, id),
                    ty: Ty::Val(vt),
                    nullable: optional,
                })
            }
            Shape::Group(fields) => match fields.iter().position(|(n, _)| *n == field.name) {
                Some(i) => Some(Typed {
                    expr: Expr::Bound(slot, FieldId::new(i as u16)),
                    ty: Ty::Val(fields[i].1),
                    nullable: false,
                }),
                None => {
                    let d = unknown_with(
                        ErrorKind::UnknownField,
                        format!("aggregate `{}` has no field `{}`", first.name, field.name),
                        "no such field".to_string(),
                        field,
                        fields.iter().map(|f| f.0.as_str()),
                    );
                    self.diags.push(d);
                    None
                }
            },
        }
    }

    fn constant_list(&mut self, items: &[ast::Expr], own: Option<Own<'_>>) -> Option<Vec<Value>> {
        let mut values = Vec::new();
        let mut ok = true;
        for item in items {
            match self.expr(item, own) {
                Some(t) if t.expr.is_constant() => values.push(eval(&t.expr, &ConstEnv)),
                Some(_) => {
                    self.diags.push(
                        Diagnostic::new(
                            ErrorKind::TypeMismatch,
                            item.span,
                            "list items must be constants".to_string(),
                            "not a constant",
                        )
                        .help("compare with `==` and join the tests with `or`"),
                    );
                    ok = false;
                }
                None => ok = false,
            }
        }
        ok.then_some(values)
    }

    fn call(
        &mut self,
        e: &ast::Expr,
        name: &Ident,
        args: &[ast::Expr],
        own: Option<Own<'_>>,
    ) -> Option<Typed> {
        if name.name == "time" {
            return match args {
                [ast::Expr {
                    kind: ExprKind::Lit(Literal::Str(s)),
                    span,
                }] => match s.parse::<Timestamp>() {
                    Ok(t) => Some(Typed {
                        expr: Expr::Const(Value::Timestamp(t)),
                        ty: Ty::Val(ValueType::Timestamp),
                        nullable: false,
                    }),
                    Err(err) => {
                        self.diags.push(Diagnostic::new(
                            ErrorKind::BadLiteral,
                            *span,
                            err.to_string(),
                            "not a timestamp",
                        ));
                        None
                    }
                },
                _ => {
                    self.diags.push(
                        Diagnostic::new(
                            ErrorKind::BadArgument,
                            e.span,
                            "`time` takes one string literal".to_string(),
                            "bad argument",
                        )
                        .help("write `time(\"2026-11-22T08:00:00Z\")`"),
                    );
                    None
                }
            };
        }
        if AggFunc::from_name(&name.name).is_some() {
            self.diags.push(
                Diagnostic::new(
                    ErrorKind::UnknownName,
                    name.span,
                    format!("`{}` is an aggregate, not a function", name.name),
                    "aggregate",
                )
                .help(format!(
                    "aggregates are conditions of their own: `n: {}(pattern(...)) >= 3 within 30m`",
                    name.name
                )),
            );
            return None;
        }
        let lowered: Vec<Option<Typed>> = args.iter().map(|a| self.expr(a, own)).collect();
        let builtin = Builtin::from_name(&name.name);
        let host = self
            .env
            .functions
            .get(&name.name)
            .map(|(i, sig)| (i, sig.clone()));
        if builtin.is_none() && host.is_none() {
            let known = Builtin::ALL
                .iter()
                .map(|b| b.name())
                .chain(["time"])
                .chain(self.env.functions.names());
            let mut d = unknown(ErrorKind::UnknownName, "function", name, known);
            if self.env.types.get(&name.name).is_some() {
                d = d.help(format!(
                    "`{}` is a fact type: match it as a condition of its own line",
                    name.name
                ));
            }
            self.diags.push(d);
            return None;
        }
        let lowered: Vec<Typed> = lowered.into_iter().collect::<Option<_>>()?;
        let tys: Vec<Option<ValueType>> = lowered
            .iter()
            .map(|t| match t.ty {
                Ty::Val(v) => Some(v),
                Ty::Null => None,
            })
            .collect();
        let Some(tys) = tys.into_iter().collect::<Option<Vec<_>>>() else {
            return self.mismatch(e.span, format!("`{}` cannot take null", name.name), None);
        };
        if let Some(b) = builtin {
            let Some(ret) = b.result_type(&tys) else {
                return self.mismatch(
                    e.span,
                    format!("`{}` expects {}", b.name(), b.signature()),
                    None,
                );
            };
            let exprs = lowered.into_iter().map(|t| t.expr).collect();
            return Some(Typed {
                expr: Expr::Call(b, exprs),
                ty: Ty::Val(ret),
                nullable: b != Builtin::Now,
            });
        }
        let (index, sig) = host?;
        let fits = tys.len() == sig.params.len()
            && tys
                .iter()
                .zip(&sig.params)
                .all(|(a, p)| a == p || (*a == ValueType::Int && *p == ValueType::Float));
        if !fits {
            let params: Vec<String> = sig.params.iter().map(|p| p.to_string()).collect();
            return self.mismatch(
                e.span,
                format!("`{}` expects ({})", sig.name, params.join(", ")),
                None,
            );
        }
        let exprs = lowered
            .into_iter()
            .zip(&sig.params)
            .map(|(t, p)| {
                if t.ty == Ty::Val(ValueType::Int) && *p == ValueType::Float {
                    Expr::ToFloat(Box::new(t.expr))
                } else {
                    t.expr
                }
            })
            .collect();
        Some(Typed {
            expr: Expr::Host(FunctionId::new(index as u32), exprs),
            ty: Ty::Val(sig.returns),
            nullable: true,
        })
    }

    fn binary(
        &mut self,
        e: &ast::Expr,
        op: BinOp,
        l: &ast::Expr,
        r: &ast::Expr,
        own: Option<Own<'_>>,
    ) -> Option<Typed> {
        let bool_ty = Ty::Val(ValueType::Bool);
        match op {
            BinOp::And | BinOp::Or => {
                // A long `a or b or c ...` is a left-leaning tree: walk its
                // spine in a loop rather than recurse once per operand.
                let mut operands = vec![r];
                let mut left = l;
                while let ExprKind::Binary(inner, ll, lr) = &left.kind {
                    if *inner != op {
                        break;
                    }
                    operands.push(lr);
                    left = ll;
                }
                operands.push(left);
                operands.reverse();
                let mut lowered = Vec::with_capacity(operands.len());
                let mut ok = true;
                for o in operands {
                    match self.condition_expr(o, own) {
                        Some(x) => lowered.push(x),
                        None => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
                let expr = if op == BinOp::And {
                    Expr::And(lowered)
                } else {
                    Expr::Or(lowered)
                };
                Some(Typed {
                    expr,
                    ty: bool_ty,
                    nullable: false,
                })
            }
            BinOp::In | BinOp::NotIn => {
                let lhs = self.expr(l, own);
                let test = match &r.kind {
                    ExprKind::List(items) => {
                        let values = self.constant_list(items, own);
                        let (lhs, values) = (lhs?, values?);
                        for (v, item) in values.iter().zip(items) {
                            let fits = match (lhs.ty, v.value_type()) {
                                (Ty::Val(a), Some(b)) => {
                                    a == b || (a.is_numeric() && b.is_numeric())
                                }
                                _ => false,
                            };
                            if !fits && lhs.ty == Ty::Val(ValueType::StringList) {
                                return self.mismatch(
                                    l.span,
                                    format!("`{}` is a list<string>: `in` tests one value against a list", describe(l)),
                                    Some(format!("to test the list's items, write `{} contains \"...\"`, joined with `or`", describe(l))),
                                );
                            }
                            if !fits {
                                return self.mismatch(
                                    item.span,
                                    format!(
                                        "`{}` is {}, so its list must hold {} values",
                                        describe(l),
                                        article(lhs.ty),
                                        lhs.ty.name()
                                    ),
                                    None,
                                );
                            }
                        }
                        for item in items {
                            self.check_state(&lhs.expr, item, own);
                        }
                        Expr::In(Box::new(lhs.expr), values)
                    }
                    _ => {
                        let rhs = self.expr(r, own);
                        let (lhs, rhs) = (lhs?, rhs?);
                        match (lhs.ty, rhs.ty) {
                            (Ty::Val(ValueType::String), Ty::Val(ValueType::StringList | ValueType::String)) => {
                                Expr::Cmp(CmpOp::Contains, Box::new(rhs.expr), Box::new(lhs.expr))
                            }
                            _ => {
                                return self.mismatch(
                                    r.span,
                                    format!("`in` needs a list, such as `[\"a\", \"b\"]` or a list<string> field, not {}", article(rhs.ty)),
                                    None,
                                )
                            }
                        }
                    }
                };
                let expr = if op == BinOp::NotIn {
                    Expr::Not(Box::new(test))
                } else {
                    test
                };
                Some(Typed {
                    expr,
                    ty: bool_ty,
                    nullable: false,
                })
            }
            BinOp::Cmp(cmp) => {
                let (a, b) = (self.expr(l, own), self.expr(r, own));
                let (a, b) = (a?, b?);
                if matches!(cmp, CmpOp::Eq | CmpOp::Ne) {
                    self.check_state(&a.expr, r, own);
                    self.check_state(&b.expr, l, own);
                }
                match (a.ty, b.ty) {
                    (Ty::Null, Ty::Null) => {
                        return self.mismatch(e.span, "comparing null with null".to_string(), None)
                    }
                    (Ty::Null, _) | (_, Ty::Null) => {
                        let (other, other_ast) = if a.ty == Ty::Null { (&b, r) } else { (&a, l) };
                        if !matches!(cmp, CmpOp::Eq | CmpOp::Ne) {
                            return self.mismatch(
                                e.span,
                                format!(
                                    "only `==` and `!=` compare with null, not `{}`",
                                    cmp.symbol()
                                ),
                                None,
                            );
                        }
                        if !other.nullable {
                            return self.mismatch(
                                other_ast.span,
                                format!("`{}` is never null", describe(other_ast)),
                                Some(
                                    "only optional fields (declared with `?`) can be null"
                                        .to_string(),
                                ),
                            );
                        }
                    }
                    (Ty::Val(x), Ty::Val(y)) if !cmp_fits(cmp, x, y) => {
                        let help = match (&r.kind, x) {
                            (ExprKind::Lit(Literal::Str(s)), t)
                                if t.is_numeric()
                                    && !matches!(
                                        cmp,
                                        CmpOp::Contains | CmpOp::StartsWith | CmpOp::EndsWith
                                    )
                                    && s.trim().parse::<f64>().is_ok() =>
                            {
                                Some(format!("write the number without quotes: `{}`", s.trim()))
                            }
                            _ => None,
                        };
                        let message = match cmp {
                            CmpOp::Contains => format!("`contains` looks for a string in a string or a list<string>, not {} in {}", article(b.ty), article(a.ty)),
                            CmpOp::StartsWith | CmpOp::EndsWith => format!("`{}` works on strings, not {} and {}", cmp.symbol(), article(a.ty), article(b.ty)),
                            _ => format!("cannot compare `{}` ({x}) with {}", describe(l), article(b.ty)),
                        };
                        return self.mismatch(r.span, message, help);
                    }
                    _ => {}
                }
                Some(Typed {
                    expr: Expr::Cmp(cmp, Box::new(a.expr), Box::new(b.expr)),
                    ty: bool_ty,
                    nullable: false,
                })
            }
            BinOp::Arith(arith) => {
                let (a, b) = (self.expr(l, own), self.expr(r, own));
                let (a, b) = (a?, b?);
                let ty = match (a.ty, b.ty) {
                    (Ty::Val(x), Ty::Val(y)) => arith_type(arith, x, y),
                    _ => None,
                };
                match ty {
                    Some(t) => {
                        let expr = Expr::Arith(arith, Box::new(a.expr), Box::new(b.expr));
                        // Constant arithmetic is done now: an overflow or a division by
                        // zero would make the condition silently never hold.
                        if expr.is_constant() && eval(&expr, &ConstEnv) == Value::Null {
                            let why = match arith {
                                ArithOp::Div | ArithOp::Rem => "divides by zero or overflows",
                                _ => "overflows",
                            };
                            self.diags.push(Diagnostic::new(
                                ErrorKind::BadLiteral,
                                e.span,
                                format!("this arithmetic {why}"),
                                "no value",
                            ));
                            return None;
                        }
                        Some(Typed {
                            expr,
                            ty: Ty::Val(t),
                            nullable: true,
                        })
                    }
                    None => self.mismatch(
                        e.span,
                        format!(
                            "cannot apply `{}` to {} and {}",
                            arith.symbol(),
                            article(a.ty),
                            article(b.ty)
                        ),
                        None,
                    ),
                }
            }
        }
    }

    /// A string compared with a state machine's `state` field must name one
    /// of its states.
    fn check_state(&mut self, field: &Expr, literal: &ast::Expr, own: Option<Own<'_>>) {
        let ExprKind::Lit(Literal::Str(state)) = &literal.kind else {
            return;
        };
        let (ty, f) = match (field, own) {
            (Expr::Own(f), Some(own)) => (own.ty, *f),
            (Expr::Bound(slot, f), _) => match self
                .bindings
                .iter()
                .find(|b| b.slot == *slot)
                .map(|b| &b.shape)
            {
                Some(Shape::Fact { ty }) => (*ty, *f),
                _ => return,
            },
            _ => return,
        };
        let t = self.env.schema.get(ty);
        if &*t.field_def(f).name != "state" {
            return;
        }
        let Some((_, states)) = self.env.machines.get(t.name()) else {
            return;
        };
        if !states.iter().any(|s| s == state) {
            let ident = Ident {
                name: state.clone(),
                span: literal.span,
            };
            let d = unknown_with(
                ErrorKind::UnknownState,
                format!("machine `{}` has no state `{state}`", t.name()),
                "no such state".to_string(),
                &ident,
                states.iter().map(String::as_str),
            );
            self.diags.push(d);
        }
    }

    fn binding_names(&self) -> Vec<&str> {
        self.bindings.iter().map(|b| b.name.name.as_str()).collect()
    }
}

fn literal(l: &Literal) -> Typed {
    let (v, ty) = match l {
        Literal::Str(s) => (Value::Str(s.as_str().into()), Ty::Val(ValueType::String)),
        Literal::Int(i) => (Value::Int(*i), Ty::Val(ValueType::Int)),
        Literal::Float(f) => (Value::Float(*f), Ty::Val(ValueType::Float)),
        Literal::Bool(b) => (Value::Bool(*b), Ty::Val(ValueType::Bool)),
        Literal::Null => (Value::Null, Ty::Null),
        Literal::Duration(d) => (Value::Duration(*d), Ty::Val(ValueType::Duration)),
    };
    Typed {
        nullable: ty == Ty::Null,
        expr: Expr::Const(v),
        ty,
    }
}

/// A short rendering of an operand for messages: `o.amount`, `amount`, or "this".
fn describe(e: &ast::Expr) -> String {
    match &e.kind {
        ExprKind::Path(a, Some(f)) => format!("{}.{}", a.name, f.name),
        ExprKind::Path(a, None) => a.name.clone(),
        ExprKind::Call(n, _) => format!("{}(...)", n.name),
        _ => "this".to_string(),
    }
}
