//! The meaning of an [`Expr`]: evaluation against an environment.
//!
//! This is the one definition of what an expression means. Constant folding
//! uses it at compile time, and the engine and the reference evaluator use it
//! at run time, so the three cannot disagree.

use super::expr::{ArithOp, Builtin, CmpOp, Expr, FunctionId, SetId, Slot};
use nudge_core::{civil_time, next_civil_boundary, CivilUnit, Duration, FieldId, Timestamp, Value};
use std::cmp::Ordering;
use std::sync::Arc;

/// What an expression may read while it is evaluated.
pub trait Env {
    /// A field of the fact under test; `Value::Null` if there is none.
    fn own(&self, field: FieldId) -> Value;
    /// A field of the fact or group bound at `slot`.
    fn bound(&self, slot: Slot, field: FieldId) -> Value;
    /// Whether `key` is a member of set `set`.
    fn in_set(&self, set: SetId, key: &Value) -> bool;
    /// The session clock.
    fn now(&self) -> Timestamp;
    /// Calls a host function; `Value::Null` if it failed.
    fn call_host(&self, f: FunctionId, args: &[Value]) -> Value;
}

/// An environment with no facts, no sets, no host functions and the clock at
/// the epoch: enough to fold constant expressions.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConstEnv;

impl Env for ConstEnv {
    fn own(&self, _: FieldId) -> Value {
        Value::Null
    }
    fn bound(&self, _: Slot, _: FieldId) -> Value {
        Value::Null
    }
    fn in_set(&self, _: SetId, _: &Value) -> bool {
        false
    }
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(0)
    }
    fn call_host(&self, _: FunctionId, _: &[Value]) -> Value {
        Value::Null
    }
}

/// An environment of one fact's values and nothing else: what single-fact
/// (alpha) tests read. Bound facts, sets and host functions answer nothing
/// and the clock stands at the epoch.
#[derive(Debug, Clone, Copy)]
pub struct FactEnv<'a>(pub &'a [Value]);

impl Env for FactEnv<'_> {
    fn own(&self, field: FieldId) -> Value {
        self.0.get(field.index()).cloned().unwrap_or(Value::Null)
    }
    fn bound(&self, _: Slot, _: FieldId) -> Value {
        Value::Null
    }
    fn in_set(&self, _: SetId, _: &Value) -> bool {
        false
    }
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(0)
    }
    fn call_host(&self, _: FunctionId, _: &[Value]) -> Value {
        Value::Null
    }
}

/// Evaluates `expr` as a condition: anything but `true` is false.
pub fn test(expr: &Expr, env: &impl Env) -> bool {
    matches!(eval(expr, env), Value::Bool(true))
}

/// Evaluates `expr`.
pub fn eval(expr: &Expr, env: &impl Env) -> Value {
    match expr {
        Expr::Const(v) => v.clone(),
        Expr::Own(f) => env.own(*f),
        Expr::Bound(s, f) => env.bound(*s, *f),
        Expr::Neg(a) => match eval(a, env) {
            Value::Int(i) => i.checked_neg().map_or(Value::Null, Value::Int),
            Value::Float(x) => Value::Float(-x),
            Value::Duration(d) => Value::Duration(Duration::from_millis(-d.as_millis())),
            _ => Value::Null,
        },
        Expr::Not(a) => Value::Bool(!test(a, env)),
        Expr::ToFloat(a) => match eval(a, env) {
            Value::Int(i) => Value::Float(i as f64),
            other => other,
        },
        Expr::Arith(op, a, b) => arith(*op, eval(a, env), eval(b, env)),
        Expr::Cmp(op, a, b) => Value::Bool(compare(*op, &eval(a, env), &eval(b, env))),
        Expr::In(a, values) => {
            let v = eval(a, env);
            Value::Bool(!matches!(v, Value::Null) && values.binary_search(&v).is_ok())
        }
        Expr::InSet(a, set) => {
            let v = eval(a, env);
            Value::Bool(!matches!(v, Value::Null) && env.in_set(*set, &v))
        }
        Expr::IsNull(a) => Value::Bool(matches!(eval(a, env), Value::Null)),
        Expr::And(xs) => Value::Bool(xs.iter().all(|x| test(x, env))),
        Expr::Or(xs) => Value::Bool(xs.iter().any(|x| test(x, env))),
        Expr::Call(b, args) => {
            let args: Vec<Value> = args.iter().map(|a| eval(a, env)).collect();
            call_builtin(*b, &args, env)
        }
        Expr::Host(f, args) => {
            let args: Vec<Value> = args.iter().map(|a| eval(a, env)).collect();
            if args.iter().any(|a| matches!(a, Value::Null)) {
                Value::Null
            } else {
                env.call_host(*f, &args)
            }
        }
    }
}

/// `a op b`; `false` whenever an ordering meets null or a mismatched type.
pub fn compare(op: CmpOp, a: &Value, b: &Value) -> bool {
    match op {
        CmpOp::Eq => values_equal(a, b),
        CmpOp::Ne => !values_equal(a, b),
        CmpOp::Lt => order(a, b) == Some(Ordering::Less),
        CmpOp::Le => matches!(order(a, b), Some(Ordering::Less | Ordering::Equal)),
        CmpOp::Gt => order(a, b) == Some(Ordering::Greater),
        CmpOp::Ge => matches!(order(a, b), Some(Ordering::Greater | Ordering::Equal)),
        CmpOp::Contains => match (a, b) {
            (Value::List(items), Value::Str(s)) => items.iter().any(|i| i == s),
            (Value::Str(h), Value::Str(n)) => h.contains(&**n),
            _ => false,
        },
        CmpOp::StartsWith => {
            matches!((a, b), (Value::Str(h), Value::Str(n)) if h.starts_with(&**n))
        }
        CmpOp::EndsWith => matches!((a, b), (Value::Str(h), Value::Str(n)) if h.ends_with(&**n)),
    }
}

fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Int(i), Value::Float(x)) | (Value::Float(x), Value::Int(i)) => (*i as f64) == *x,
        _ => a == b,
    }
}

fn order(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
        (Value::Int(x), Value::Float(y)) => (*x as f64).partial_cmp(y),
        (Value::Float(x), Value::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
        (Value::Timestamp(x), Value::Timestamp(y)) => Some(x.cmp(y)),
        (Value::Duration(x), Value::Duration(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn arith(op: ArithOp, a: Value, b: Value) -> Value {
    use Value::{Float, Int, Null, Str};
    let ms = |d: Duration| d.as_millis();
    match (op, a, b) {
        (op, Int(x), Int(y)) => int_arith(op, x, y).map_or(Null, Int),
        (op, Int(x), Float(y)) => float_arith(op, x as f64, y),
        (op, Float(x), Int(y)) => float_arith(op, x, y as f64),
        (op, Float(x), Float(y)) => float_arith(op, x, y),
        (ArithOp::Add, Str(x), Str(y)) => Str(Arc::from(format!("{x}{y}"))),
        (ArithOp::Add, Value::Timestamp(t), Value::Duration(d)) => {
            t.checked_add(d).map_or(Null, Value::Timestamp)
        }
        (ArithOp::Sub, Value::Timestamp(t), Value::Duration(d)) => ms(d)
            .checked_neg()
            .and_then(|n| t.checked_add(Duration::from_millis(n)))
            .map_or(Null, Value::Timestamp),
        (ArithOp::Sub, Value::Timestamp(t), Value::Timestamp(u)) => {
            duration(t.as_millis().checked_sub(u.as_millis()))
        }
        (ArithOp::Add, Value::Duration(x), Value::Duration(y)) => {
            duration(ms(x).checked_add(ms(y)))
        }
        (ArithOp::Sub, Value::Duration(x), Value::Duration(y)) => {
            duration(ms(x).checked_sub(ms(y)))
        }
        (ArithOp::Mul, Value::Duration(x), Int(y)) => duration(ms(x).checked_mul(y)),
        (ArithOp::Div, Value::Duration(x), Int(y)) => duration(ms(x).checked_div(y)),
        _ => Null,
    }
}

fn duration(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, |m| Value::Duration(Duration::from_millis(m)))
}

fn int_arith(op: ArithOp, x: i64, y: i64) -> Option<i64> {
    match op {
        ArithOp::Add => x.checked_add(y),
        ArithOp::Sub => x.checked_sub(y),
        ArithOp::Mul => x.checked_mul(y),
        ArithOp::Div => x.checked_div(y),
        ArithOp::Rem => x.checked_rem(y),
    }
}

fn float_arith(op: ArithOp, x: f64, y: f64) -> Value {
    let r = match op {
        ArithOp::Add => x + y,
        ArithOp::Sub => x - y,
        ArithOp::Mul => x * y,
        ArithOp::Div if y == 0.0 => return Value::Null,
        ArithOp::Div => x / y,
        ArithOp::Rem if y == 0.0 => return Value::Null,
        ArithOp::Rem => x % y,
    };
    if r.is_finite() {
        Value::Float(r)
    } else {
        Value::Null
    }
}

/// The next instant at which `expr` may change value with the clock alone,
/// or `None` if it does not read the clock: the next local midnight for
/// `is_anniversary(ts, zone)` and `day_of_week(now(), zone)`, the next local
/// hour for `hour_of_day(now(), zone)`, and the next whole minute for any
/// other use of `now()`.
pub fn clock_changes(expr: &Expr, env: &impl Env) -> Option<Timestamp> {
    let now = env.now();
    let mut next: Option<Timestamp> = None;
    let mut earliest = |t: Option<Timestamp>| {
        if let Some(t) = t {
            next = Some(next.map_or(t, |n| n.min(t)));
        }
    };
    let (mut nows, mut calendar_nows) = (0usize, 0usize);
    let zone_of = |z: &Expr| match eval(z, env) {
        Value::Str(s) => Some(s),
        _ => None,
    };
    expr.visit(&mut |e| {
        let Expr::Call(b, args) = e else { return };
        match (b, &args[..]) {
            (Builtin::Now, []) => nows += 1,
            (Builtin::IsAnniversary, [_, z]) => {
                earliest(zone_of(z).and_then(|z| next_civil_boundary(now, &z, CivilUnit::Day)))
            }
            (Builtin::DayOfWeek | Builtin::HourOfDay, [Expr::Call(Builtin::Now, a), z])
                if a.is_empty() =>
            {
                calendar_nows += 1;
                let unit = if *b == Builtin::DayOfWeek {
                    CivilUnit::Day
                } else {
                    CivilUnit::Hour
                };
                earliest(zone_of(z).and_then(|z| next_civil_boundary(now, &z, unit)));
            }
            _ => {}
        }
    });
    if nows > calendar_nows {
        let ms = now.as_millis();
        earliest(Some(Timestamp::from_millis(
            ms.saturating_sub(ms.rem_euclid(60_000))
                .saturating_add(60_000),
        )));
    }
    next
}

/// Whether `expr` reads the clock.
pub fn reads_clock(expr: &Expr) -> bool {
    let mut found = false;
    expr.visit(&mut |e| {
        if let Expr::Call(b, _) = e {
            found |= b.reads_clock();
        }
    });
    found
}

fn call_builtin(b: Builtin, args: &[Value], env: &impl Env) -> Value {
    match (b, args) {
        (Builtin::Now, []) => Value::Timestamp(env.now()),
        (Builtin::IsAnniversary, [Value::Timestamp(t), Value::Str(zone)]) => {
            match (civil_time(*t, zone), civil_time(env.now(), zone)) {
                (Some(date), Some(today)) => {
                    Value::Bool((date.month, date.day) == (today.month, today.day))
                }
                _ => Value::Null,
            }
        }
        (Builtin::DayOfWeek, [Value::Timestamp(t), Value::Str(zone)]) => {
            civil_time(*t, zone).map_or(Value::Null, |c| Value::Int(c.weekday.into()))
        }
        (Builtin::HourOfDay, [Value::Timestamp(t), Value::Str(zone)]) => {
            civil_time(*t, zone).map_or(Value::Null, |c| Value::Int(c.hour.into()))
        }
        (Builtin::Len, [Value::Str(s)]) => Value::Int(s.chars().count() as i64),
        (Builtin::Len, [Value::List(l)]) => Value::Int(l.len() as i64),
        (Builtin::Lower, [Value::Str(s)]) => Value::Str(s.to_lowercase().into()),
        (Builtin::Upper, [Value::Str(s)]) => Value::Str(s.to_uppercase().into()),
        (Builtin::Abs, [Value::Int(i)]) => i.checked_abs().map_or(Value::Null, Value::Int),
        (Builtin::Abs, [Value::Float(x)]) => Value::Float(x.abs()),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(e: Expr) -> Value {
        eval(&e, &ConstEnv)
    }

    #[test]
    fn null_semantics() {
        let null = || Expr::Const(Value::Null);
        assert_eq!(ev(null().eq(Expr::value(1))), Value::Bool(false));
        assert_eq!(ev(null().cmp(CmpOp::Ne, Expr::value(1))), Value::Bool(true));
        assert_eq!(ev(null().lt(Expr::value(1))), Value::Bool(false));
        assert_eq!(
            ev(Expr::Not(Box::new(null().lt(Expr::value(1))))),
            Value::Bool(true)
        );
        assert_eq!(ev(null().eq(null())), Value::Bool(true));
        assert_eq!(ev(null().is_in(vec![Value::Null])), Value::Bool(false));
    }

    #[test]
    fn arithmetic_never_panics() {
        let div = |a: i64, b: i64| {
            ev(Expr::Arith(
                ArithOp::Div,
                Box::new(Expr::value(a)),
                Box::new(Expr::value(b)),
            ))
        };
        assert_eq!(div(7, 2), Value::Int(3));
        assert_eq!(div(7, 0), Value::Null);
        assert_eq!(div(i64::MIN, -1), Value::Null);
        let add = Expr::Arith(
            ArithOp::Add,
            Box::new(Expr::value(i64::MAX)),
            Box::new(Expr::value(1)),
        );
        assert_eq!(ev(add), Value::Null);
    }

    #[test]
    fn mixed_numbers_compare_numerically() {
        assert!(compare(CmpOp::Eq, &Value::Int(2), &Value::Float(2.0)));
        assert!(compare(CmpOp::Lt, &Value::Int(2), &Value::Float(2.5)));
        assert!(!compare(CmpOp::Lt, &Value::from("a"), &Value::Int(1)));
    }

    #[test]
    fn string_operators() {
        let tags = Value::List(vec![Arc::from("vip"), Arc::from("new")].into());
        assert!(compare(CmpOp::Contains, &tags, &Value::from("vip")));
        assert!(compare(
            CmpOp::Contains,
            &Value::from("优惠券包"),
            &Value::from("券")
        ));
        assert!(compare(
            CmpOp::StartsWith,
            &Value::from("sku-1"),
            &Value::from("sku")
        ));
        assert!(!compare(
            CmpOp::EndsWith,
            &Value::from("sku-1"),
            &Value::from("sku")
        ));
    }
}
