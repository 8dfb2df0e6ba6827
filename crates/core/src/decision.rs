//! Decisions: what firing a rule asks the host to do.

use crate::time::Timestamp;
use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One decision returned to the host: a rule fired and asked for an action.
///
/// ```
/// use nudge_core::{Decision, Value};
/// let d = Decision::new(7, "birthday_coupon", "coupon")
///     .arg("user", Value::from("u42"));
/// assert_eq!(d.arg_value("user"), Some(&Value::from("u42")));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Decision {
    /// Position in the session's stream of decisions, from 1.
    pub seq: u64,
    /// The rule that fired.
    pub rule: Arc<str>,
    /// The action asked for.
    pub action: Arc<str>,
    /// Arguments, resolved from the rule's bindings.
    pub args: Vec<(Arc<str>, Value)>,
    /// Ids of the facts the rule matched, in pattern order.
    pub facts: Vec<u64>,
    /// When the decision was made, on the session clock.
    pub time: Timestamp,
}

impl Decision {
    /// A decision with no arguments yet.
    pub fn new(seq: u64, rule: impl Into<Arc<str>>, action: impl Into<Arc<str>>) -> Self {
        Decision {
            seq,
            rule: rule.into(),
            action: action.into(),
            args: Vec::new(),
            facts: Vec::new(),
            time: Timestamp::from_millis(0),
        }
    }

    /// Adds an argument (builder style).
    pub fn arg(mut self, name: impl Into<Arc<str>>, value: Value) -> Self {
        self.args.push((name.into(), value));
        self
    }

    /// The value of argument `name`.
    pub fn arg_value(&self, name: &str) -> Option<&Value> {
        self.args.iter().find(|(n, _)| &**n == name).map(|(_, v)| v)
    }
}
