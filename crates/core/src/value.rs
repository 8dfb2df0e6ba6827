//! Field values and their types.

use crate::time::{Duration, Timestamp};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// The type of a fact field or of an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    /// UTF-8 text.
    String,
    /// A 64-bit signed integer.
    Int,
    /// A 64-bit float; never NaN inside nudge.
    Float,
    /// `true` or `false`.
    Bool,
    /// An instant (see [`Timestamp`]).
    Timestamp,
    /// A span of time (see [`Duration`]).
    Duration,
    /// A list of strings, e.g. tags.
    StringList,
}

impl ValueType {
    /// Whether arithmetic and ordering apply as to numbers.
    pub fn is_numeric(self) -> bool {
        matches!(self, ValueType::Int | ValueType::Float)
    }

    /// The spelling used in rule files.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::Int => "int",
            ValueType::Float => "float",
            ValueType::Bool => "bool",
            ValueType::Timestamp => "timestamp",
            ValueType::Duration => "duration",
            ValueType::StringList => "list<string>",
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A value held by a fact field or produced by an expression.
///
/// Floats compare by total order and `-0.0` equals `0.0`, so that values can
/// be hashed and two equal constants in two rules are one value.
///
/// ```
/// use nudge_core::{Value, ValueType};
/// assert_eq!(Value::from("shoes").value_type(), Some(ValueType::String));
/// assert_eq!(Value::Float(-0.0), Value::Float(0.0));
/// assert_eq!(Value::Null.value_type(), None);
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Value {
    /// An optional field that is absent.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(Arc<str>),
    /// An instant.
    Timestamp(Timestamp),
    /// A span of time.
    Duration(Duration),
    /// A list of strings.
    List(Arc<[Arc<str>]>),
}

impl Value {
    /// The type of this value; `None` for [`Value::Null`].
    pub fn value_type(&self) -> Option<ValueType> {
        Some(match self {
            Value::Null => return None,
            Value::Bool(_) => ValueType::Bool,
            Value::Int(_) => ValueType::Int,
            Value::Float(_) => ValueType::Float,
            Value::Str(_) => ValueType::String,
            Value::Timestamp(_) => ValueType::Timestamp,
            Value::Duration(_) => ValueType::Duration,
            Value::List(_) => ValueType::StringList,
        })
    }

    fn rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Int(_) => 2,
            Value::Float(_) => 3,
            Value::Str(_) => 4,
            Value::Timestamp(_) => 5,
            Value::Duration(_) => 6,
            Value::List(_) => 7,
        }
    }

    fn float_key(f: f64) -> f64 {
        // -0.0 and 0.0 are one number to a marketer.
        if f == 0.0 {
            0.0
        } else {
            f
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Value {}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Value {
    /// A total order: by kind first, then by value. Used for canonical
    /// sorting of constants, not for the rule language's comparisons (which
    /// compare an int with a float numerically).
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (Value::Int(a), Value::Int(b)) => a.cmp(b),
            (Value::Float(a), Value::Float(b)) => {
                Value::float_key(*a).total_cmp(&Value::float_key(*b))
            }
            (Value::Str(a), Value::Str(b)) => a.cmp(b),
            (Value::Timestamp(a), Value::Timestamp(b)) => a.cmp(b),
            (Value::Duration(a), Value::Duration(b)) => a.cmp(b),
            (Value::List(a), Value::List(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.rank().hash(state);
        match self {
            Value::Null => {}
            Value::Bool(b) => b.hash(state),
            Value::Int(i) => i.hash(state),
            Value::Float(f) => Value::float_key(*f).to_bits().hash(state),
            Value::Str(s) => s.hash(state),
            Value::Timestamp(t) => t.hash(state),
            Value::Duration(d) => d.hash(state),
            Value::List(l) => l.hash(state),
        }
    }
}

impl fmt::Display for Value {
    /// Prints the value as a rule-language literal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => {
                if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e15 {
                    write!(f, "{x:.1}")
                } else {
                    write!(f, "{x}")
                }
            }
            Value::Str(s) => write_quoted(f, s),
            Value::Timestamp(t) => write!(f, "time(\"{t}\")"),
            Value::Duration(d) => write!(f, "{d}"),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write_quoted(f, item)?;
                }
                f.write_str("]")
            }
        }
    }
}

/// Writes `s` as a double-quoted rule-language string with escapes.
pub fn write_quoted(f: &mut impl fmt::Write, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c.is_control() => write!(f, "\\u{{{:x}}}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.into())
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn equal_constants_hash_alike() {
        let set: HashSet<Value> = [Value::Float(0.0), Value::Float(-0.0), Value::Int(0)]
            .into_iter()
            .collect();
        assert_eq!(set.len(), 2, "int 0 and float 0 are different constants");
    }

    #[test]
    fn displays_as_literals() {
        assert_eq!(Value::from("a\"b\n").to_string(), r#""a\"b\n""#);
        assert_eq!(Value::Float(2.0).to_string(), "2.0");
        assert_eq!(Value::Float(2.5).to_string(), "2.5");
        assert_eq!(Value::Str("优惠券".into()).to_string(), "\"优惠券\"");
        let list = Value::List(vec![Arc::from("a"), Arc::from("b")].into());
        assert_eq!(list.to_string(), r#"["a", "b"]"#);
    }

    #[test]
    fn order_is_total_across_kinds() {
        let mut v = [
            Value::from("x"),
            Value::Int(3),
            Value::Null,
            Value::Bool(true),
        ];
        v.sort();
        assert_eq!(v[0], Value::Null);
        assert_eq!(v[3], Value::from("x"));
    }
}
