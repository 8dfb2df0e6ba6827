//! Expressions of the rule model, the operators' typing table, and the
//! builders Rust code uses to write conditions without rule text.

use nudge_core::{FieldId, Value, ValueType};
use serde::{Deserialize, Serialize};

/// A position in a rule's match: the `n`-th binding condition (positive
/// pattern or aggregate) of the rule, counting from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Slot(u16);

impl Slot {
    /// The `i`-th slot.
    pub const fn new(i: u16) -> Self {
        Slot(i)
    }

    /// The slot's position.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// Index of a named membership set (see [`crate::ir::RuleSet::add_set`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SetId(u32);

impl SetId {
    /// The `i`-th set.
    pub const fn new(i: u32) -> Self {
        SetId(i)
    }

    /// Position in [`crate::ir::RuleSet::sets`].
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// Index of a host function (see [`crate::ir::RuleSet::add_function`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FunctionId(u32);

impl FunctionId {
    /// The `i`-th function.
    pub const fn new(i: u32) -> Self {
        FunctionId(i)
    }

    /// Position in [`crate::ir::RuleSet::functions`].
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `contains`: a list holds a string, or a string holds a substring.
    Contains,
    /// `starts_with`
    StartsWith,
    /// `ends_with`
    EndsWith,
}

impl CmpOp {
    /// The operator with its operands swapped (`a < b` is `b > a`), if there is one.
    pub fn flipped(self) -> Option<CmpOp> {
        use CmpOp::*;
        Some(match self {
            Eq => Eq,
            Ne => Ne,
            Lt => Gt,
            Le => Ge,
            Gt => Lt,
            Ge => Le,
            Contains | StartsWith | EndsWith => return None,
        })
    }

    /// The operator meaning `not (a op b)` when neither operand is null.
    pub fn negated(self) -> Option<CmpOp> {
        use CmpOp::*;
        Some(match self {
            Eq => Ne,
            Ne => Eq,
            Lt => Ge,
            Le => Gt,
            Gt => Le,
            Ge => Lt,
            Contains | StartsWith | EndsWith => return None,
        })
    }

    /// Whether the operator orders its operands (so needs comparable types).
    pub fn is_ordering(self) -> bool {
        matches!(self, CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge)
    }

    /// The operator as written in rule files.
    pub fn symbol(self) -> &'static str {
        use CmpOp::*;
        match self {
            Eq => "==",
            Ne => "!=",
            Lt => "<",
            Le => "<=",
            Gt => ">",
            Ge => ">=",
            Contains => "contains",
            StartsWith => "starts_with",
            EndsWith => "ends_with",
        }
    }
}

/// Arithmetic operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArithOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/` (integer division on ints; division by zero yields null)
    Div,
    /// `%` (division by zero yields null)
    Rem,
}

impl ArithOp {
    /// The operator as written in rule files.
    pub fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Rem => "%",
        }
    }
}

/// Functions built into the language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Builtin {
    /// `now()`: the session clock.
    Now,
    /// `is_anniversary(ts, zone)`: today, in `zone`, has the month and day of `ts`.
    IsAnniversary,
    /// `day_of_week(ts, zone)`: 1 (Monday) to 7 (Sunday) in `zone`.
    DayOfWeek,
    /// `hour_of_day(ts, zone)`: 0 to 23 in `zone`.
    HourOfDay,
    /// `len(x)`: characters of a string, items of a list.
    Len,
    /// `lower(s)`
    Lower,
    /// `upper(s)`
    Upper,
    /// `abs(n)`
    Abs,
}

impl Builtin {
    /// All built-in functions.
    pub const ALL: [Builtin; 8] = [
        Builtin::Now,
        Builtin::IsAnniversary,
        Builtin::DayOfWeek,
        Builtin::HourOfDay,
        Builtin::Len,
        Builtin::Lower,
        Builtin::Upper,
        Builtin::Abs,
    ];

    /// The function's name in rule files.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Now => "now",
            Builtin::IsAnniversary => "is_anniversary",
            Builtin::DayOfWeek => "day_of_week",
            Builtin::HourOfDay => "hour_of_day",
            Builtin::Len => "len",
            Builtin::Lower => "lower",
            Builtin::Upper => "upper",
            Builtin::Abs => "abs",
        }
    }

    /// Looks a built-in up by name.
    pub fn from_name(name: &str) -> Option<Builtin> {
        Builtin::ALL.into_iter().find(|b| b.name() == name)
    }

    /// Whether the result depends on the clock (so is never folded).
    pub fn reads_clock(self) -> bool {
        matches!(
            self,
            Builtin::Now | Builtin::IsAnniversary | Builtin::DayOfWeek | Builtin::HourOfDay
        )
    }

    /// The result type for these argument types, or `None` if they do not fit.
    pub fn result_type(self, args: &[ValueType]) -> Option<ValueType> {
        use ValueType::*;
        match (self, args) {
            (Builtin::Now, []) => Some(Timestamp),
            (Builtin::IsAnniversary, [Timestamp, String]) => Some(Bool),
            (Builtin::DayOfWeek | Builtin::HourOfDay, [Timestamp, String]) => Some(Int),
            (Builtin::Len, [String | StringList]) => Some(Int),
            (Builtin::Lower | Builtin::Upper, [String]) => Some(String),
            (Builtin::Abs, [t]) if t.is_numeric() => Some(*t),
            _ => None,
        }
    }

    /// The expected argument list, for error messages.
    pub fn signature(self) -> &'static str {
        match self {
            Builtin::Now => "now()",
            Builtin::IsAnniversary => "is_anniversary(timestamp, string)",
            Builtin::DayOfWeek => "day_of_week(timestamp, string)",
            Builtin::HourOfDay => "hour_of_day(timestamp, string)",
            Builtin::Len => "len(string | list<string>)",
            Builtin::Lower => "lower(string)",
            Builtin::Upper => "upper(string)",
            Builtin::Abs => "abs(int | float)",
        }
    }
}

/// An expression over the fact being tested, earlier bindings and constants.
///
/// Semantics of a missing (null) optional field: `==` is false unless both
/// sides are null, `!=` is its negation, every other comparison, `in` list,
/// membership and arithmetic with null is false (or null), and `not` negates
/// whatever its operand gave.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expr {
    /// A constant.
    Const(Value),
    /// A field of the fact the enclosing pattern tests.
    Own(FieldId),
    /// A field of an earlier binding (for an aggregate binding: its group
    /// keys in `by` order, then the aggregate value).
    Bound(Slot, FieldId),
    /// Arithmetic negation.
    Neg(Box<Expr>),
    /// Logical negation.
    Not(Box<Expr>),
    /// An int widened to a float, so both sides of an operator share a type.
    ToFloat(Box<Expr>),
    /// Arithmetic.
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    /// Comparison.
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    /// Membership in a constant list, kept sorted and free of duplicates.
    In(Box<Expr>, Vec<Value>),
    /// Membership in a named set supplied by the host at run time.
    InSet(Box<Expr>, SetId),
    /// Whether the operand is null.
    IsNull(Box<Expr>),
    /// All of; never fewer than two operands after normalization.
    And(Vec<Expr>),
    /// Any of; never fewer than two operands after normalization.
    Or(Vec<Expr>),
    /// A built-in function.
    Call(Builtin, Vec<Expr>),
    /// A host function.
    Host(FunctionId, Vec<Expr>),
}

impl Expr {
    /// A field of the tested fact.
    pub fn own(field: FieldId) -> Expr {
        Expr::Own(field)
    }

    /// A field of an earlier binding.
    pub fn bound(slot: Slot, field: FieldId) -> Expr {
        Expr::Bound(slot, field)
    }

    /// A constant.
    pub fn value(v: impl Into<Value>) -> Expr {
        Expr::Const(v.into())
    }

    /// `self op rhs`.
    pub fn cmp(self, op: CmpOp, rhs: Expr) -> Expr {
        Expr::Cmp(op, Box::new(self), Box::new(rhs))
    }

    /// `self == rhs`.
    pub fn eq(self, rhs: Expr) -> Expr {
        self.cmp(CmpOp::Eq, rhs)
    }

    /// `self > rhs`.
    pub fn gt(self, rhs: Expr) -> Expr {
        self.cmp(CmpOp::Gt, rhs)
    }

    /// `self < rhs`.
    pub fn lt(self, rhs: Expr) -> Expr {
        self.cmp(CmpOp::Lt, rhs)
    }

    /// `self in [values]`.
    pub fn is_in(self, values: Vec<Value>) -> Expr {
        Expr::In(Box::new(self), values)
    }

    /// Whether the expression reads nothing but constants (so can be folded).
    pub fn is_constant(&self) -> bool {
        let mut constant = true;
        self.visit(&mut |e| match e {
            Expr::Own(_) | Expr::Bound(..) | Expr::Host(..) => constant = false,
            Expr::Call(b, _) if b.reads_clock() => constant = false,
            _ => {}
        });
        constant
    }

    /// The highest slot the expression reads, if any.
    pub fn max_slot(&self) -> Option<Slot> {
        let mut max = None;
        self.visit(&mut |e| {
            if let Expr::Bound(s, _) = e {
                max = max.max(Some(*s));
            }
        });
        max
    }

    /// Whether the expression reads the tested fact.
    pub fn reads_own(&self) -> bool {
        let mut own = false;
        self.visit(&mut |e| own |= matches!(e, Expr::Own(_)));
        own
    }

    /// The direct operands.
    pub fn children(&self) -> Vec<&Expr> {
        match self {
            Expr::Const(_) | Expr::Own(_) | Expr::Bound(..) => Vec::new(),
            Expr::Neg(a) | Expr::Not(a) | Expr::ToFloat(a) | Expr::IsNull(a) => vec![a],
            Expr::In(a, _) | Expr::InSet(a, _) => vec![a],
            Expr::Arith(_, a, b) | Expr::Cmp(_, a, b) => vec![a, b],
            Expr::And(xs) | Expr::Or(xs) | Expr::Call(_, xs) | Expr::Host(_, xs) => {
                xs.iter().collect()
            }
        }
    }

    /// Calls `f` on this expression and every sub-expression, with an
    /// explicit stack so deep input cannot overflow the call stack.
    pub fn visit<'a>(&'a self, f: &mut impl FnMut(&'a Expr)) {
        let mut stack = vec![self];
        while let Some(e) = stack.pop() {
            f(e);
            stack.extend(e.children());
        }
    }
}

/// The type of `lhs op rhs` for arithmetic, or `None` if the operands do not fit.
///
/// Ints widen to floats; a timestamp plus or minus a duration is a
/// timestamp; two timestamps subtract to a duration; durations add up.
pub fn arith_type(op: ArithOp, lhs: ValueType, rhs: ValueType) -> Option<ValueType> {
    use ValueType::*;
    match (op, lhs, rhs) {
        (_, Int, Int) => Some(Int),
        (_, Int | Float, Int | Float) => Some(Float),
        (ArithOp::Add, String, String) => Some(String),
        (ArithOp::Add | ArithOp::Sub, Timestamp, Duration) => Some(Timestamp),
        (ArithOp::Sub, Timestamp, Timestamp) => Some(Duration),
        (ArithOp::Add | ArithOp::Sub, Duration, Duration) => Some(Duration),
        (ArithOp::Mul | ArithOp::Div, Duration, Int) => Some(Duration),
        _ => None,
    }
}

/// Whether `lhs op rhs` is a valid comparison.
pub fn cmp_fits(op: CmpOp, lhs: ValueType, rhs: ValueType) -> bool {
    use ValueType::*;
    match op {
        CmpOp::Eq | CmpOp::Ne => lhs == rhs || (lhs.is_numeric() && rhs.is_numeric()),
        CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge => match (lhs, rhs) {
            (a, b) if a.is_numeric() && b.is_numeric() => true,
            (String, String) | (Timestamp, Timestamp) | (Duration, Duration) => true,
            _ => false,
        },
        CmpOp::Contains => matches!((lhs, rhs), (StringList, String) | (String, String)),
        CmpOp::StartsWith | CmpOp::EndsWith => lhs == String && rhs == String,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flipping_twice_is_identity() {
        use CmpOp::*;
        for op in [Eq, Ne, Lt, Le, Gt, Ge] {
            assert_eq!(op.flipped().and_then(CmpOp::flipped), Some(op));
            assert_eq!(op.negated().and_then(CmpOp::negated), Some(op));
        }
        assert_eq!(Contains.flipped(), None);
    }

    #[test]
    fn typing_table() {
        use ValueType::*;
        assert_eq!(arith_type(ArithOp::Add, Int, Float), Some(Float));
        assert_eq!(
            arith_type(ArithOp::Sub, Timestamp, Timestamp),
            Some(Duration)
        );
        assert_eq!(arith_type(ArithOp::Mul, String, Int), None);
        assert!(cmp_fits(CmpOp::Lt, Int, Float));
        assert!(!cmp_fits(CmpOp::Eq, String, Int));
        assert!(cmp_fits(CmpOp::Contains, StringList, String));
        assert!(!cmp_fits(CmpOp::Lt, Bool, Bool));
    }

    #[test]
    fn constant_detection() {
        let f = FieldId::new(0);
        assert!(Expr::value(1).gt(Expr::value(0)).is_constant());
        assert!(!Expr::own(f).gt(Expr::value(0)).is_constant());
        assert!(!Expr::Call(Builtin::Now, vec![]).is_constant());
        assert_eq!(
            Expr::bound(Slot::new(2), f)
                .eq(Expr::bound(Slot::new(1), f))
                .max_slot(),
            Some(Slot::new(2))
        );
    }

    #[test]
    fn builtins_by_name() {
        for b in Builtin::ALL {
            assert_eq!(Builtin::from_name(b.name()), Some(b));
        }
        assert_eq!(Builtin::from_name("sum"), None);
    }
}
