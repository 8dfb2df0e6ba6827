//! Decisions: what firing a rule asks the host to do.

use crate::schema::TypeId;
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
    /// What became of it: carried out, suppressed (and why), deferred.
    #[serde(default, skip_serializing_if = "Status::is_done")]
    pub status: Status,
    /// What the host added: the coupon issued, the channel used, the arm...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<(Arc<str>, Value)>,
}

/// What became of a decision once the host checked it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Carried out, or handed to the caller to carry out.
    #[default]
    Done,
    /// Not carried out; the reason names what stopped it (`out_of_stock`,
    /// `capped`, `suppressed`...), and the details say more.
    Suppressed(Arc<str>),
    /// Put off until this instant, when the session decides it again.
    Deferred(Timestamp),
    /// The host could not decide it (a bad argument, the store failed).
    Failed(Arc<str>),
}

impl Status {
    /// Whether the decision was carried out.
    pub fn is_done(&self) -> bool {
        matches!(self, Status::Done)
    }

    /// `done`, `suppressed`, `deferred` or `failed`.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Done => "done",
            Status::Suppressed(_) => "suppressed",
            Status::Deferred(_) => "deferred",
            Status::Failed(_) => "failed",
        }
    }
}

/// A change a host asks working memory to make as part of a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Make the fact of type `ty` whose key is that of `values` hold
    /// `values`: modified in place if one exists, inserted if none does
    /// (a user's current state in a state machine).
    Upsert {
        /// The fact type; it must have a key field.
        ty: TypeId,
        /// One value per field.
        values: Vec<Value>,
    },
}

/// The host's answer for one decision: the branch to run, what became of
/// the decision, what to record with it, and changes to working memory.
///
/// ```
/// use nudge_core::{Outcome, Status, Value};
/// let refused = Outcome::suppressed("out_of_stock")
///     .with_branch("refused")
///     .with_detail("coupon", Value::from("flash_50"));
/// assert_eq!(refused.status, Status::Suppressed("out_of_stock".into()));
/// assert_eq!(refused.branch.as_deref(), Some("refused"));
/// assert!(Outcome::done().status.is_done());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]

pub struct Outcome {
    /// The branch of the action's block to run, if any.
    pub branch: Option<Arc<str>>,
    /// What became of the decision.
    pub status: Status,
    /// Values recorded with the decision.
    pub details: Vec<(Arc<str>, Value)>,
    /// Changes to working memory, made right after the decision.
    pub effects: Vec<Effect>,
}

impl Outcome {
    /// Carried out, nothing added.
    pub fn done() -> Self {
        Outcome::default()
    }

    /// Suppressed for `reason`.
    pub fn suppressed(reason: impl Into<Arc<str>>) -> Self {
        Outcome {
            status: Status::Suppressed(reason.into()),
            ..Outcome::default()
        }
    }

    /// Put off until `until`.
    pub fn deferred(until: Timestamp) -> Self {
        Outcome {
            status: Status::Deferred(until),
            ..Outcome::default()
        }
    }

    /// Failed with `error`.
    pub fn failed(error: impl Into<Arc<str>>) -> Self {
        Outcome {
            status: Status::Failed(error.into()),
            ..Outcome::default()
        }
    }

    /// Runs branch `label` (builder style).
    pub fn with_branch(mut self, label: impl Into<Arc<str>>) -> Self {
        self.branch = Some(label.into());
        self
    }

    /// Records a detail (builder style).
    pub fn with_detail(mut self, name: impl Into<Arc<str>>, value: Value) -> Self {
        self.details.push((name.into(), value));
        self
    }

    /// Adds an effect (builder style).
    pub fn with_effect(mut self, effect: Effect) -> Self {
        self.effects.push(effect);
        self
    }
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
            status: Status::Done,
            details: Vec::new(),
        }
    }

    /// Adds an argument (builder style).
    pub fn arg(mut self, name: impl Into<Arc<str>>, value: Value) -> Self {
        self.args.push((name.into(), value));
        self
    }

    /// The value of detail `name`.
    pub fn detail(&self, name: &str) -> Option<&Value> {
        self.details
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| v)
    }

    /// The value of argument `name`.
    pub fn arg_value(&self, name: &str) -> Option<&Value> {
        self.args.iter().find(|(n, _)| &**n == name).map(|(_, v)| v)
    }
}
