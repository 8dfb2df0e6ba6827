//! Action signatures: what an action accepts, so rules are checked before
//! they run. Built-in marketing actions and host-declared ones share this
//! shape.

use crate::value::ValueType;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A declaration an action argument may name instead of holding a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeclKind {
    /// A `coupon` template.
    Coupon,
    /// A state `machine`.
    Machine,
    /// A state of the machine named by the action's `machine` argument.
    State,
    /// An `experiment`.
    Experiment,
    /// A frequency `cap`.
    Cap,
    /// An `audience`.
    Audience,
    /// A `campaign`.
    Campaign,
}

impl DeclKind {
    /// The keyword that declares this kind.
    pub fn keyword(self) -> &'static str {
        match self {
            DeclKind::Coupon => "coupon",
            DeclKind::Machine => "machine",
            DeclKind::State => "state",
            DeclKind::Experiment => "experiment",
            DeclKind::Cap => "cap",
            DeclKind::Audience => "audience",
            DeclKind::Campaign => "campaign",
        }
    }
}

/// What one parameter accepts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    /// A value of one of these types.
    Value(Vec<ValueType>),
    /// The name of a declaration of this kind (written as a bare identifier).
    Decl(DeclKind),
    /// A list of declaration names of this kind.
    DeclList(DeclKind),
}

/// One named parameter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Param {
    /// Name used in `action(name: value)`.
    pub name: Arc<str>,
    /// What it accepts.
    pub ty: ParamType,
    /// Whether a call must pass it.
    pub required: bool,
}

/// The signature of an action callable from a rule's `then` part.
///
/// ```
/// use nudge_core::{ActionSignature, ValueType};
/// let sig = ActionSignature::new("tag_user")
///     .param("user", ValueType::String)
///     .param("tag", ValueType::String);
/// assert_eq!(sig.params().len(), 2);
/// assert!(sig.param_named("tag").is_some());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ActionSignature {
    name: Arc<str>,
    params: Vec<Param>,
    /// Whether arguments beyond `params` are accepted as variables (template
    /// variables of a message, attributes of a coupon).
    extra_vars: bool,
    /// Whether the action takes a block of branches, and what labels them.
    branches: Option<Branches>,
}

/// What labels the branches of an action's block.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Branches {
    /// The arms of the declaration passed in the parameter of this kind
    /// (the arms of a split's experiment).
    Arms(DeclKind),
    /// A fixed set of outcomes (a coupon is `issued` or `refused`).
    Outcomes(Vec<Arc<str>>),
}

impl ActionSignature {
    /// A signature with no parameters.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        ActionSignature {
            name: name.into(),
            params: Vec::new(),
            extra_vars: false,
            branches: None,
        }
    }

    /// Adds a required parameter of one value type.
    pub fn param(self, name: &str, ty: ValueType) -> Self {
        self.param_of(name, ParamType::Value(vec![ty]), true)
    }

    /// Adds a parameter of any [`ParamType`].
    pub fn param_of(mut self, name: &str, ty: ParamType, required: bool) -> Self {
        self.params.push(Param {
            name: name.into(),
            ty,
            required,
        });
        self
    }

    /// Accepts extra arguments as variables.
    pub fn with_extra_vars(mut self) -> Self {
        self.extra_vars = true;
        self
    }

    /// Takes a block of branches labelled as `branches` says.
    pub fn with_branches(mut self, branches: Branches) -> Self {
        self.branches = Some(branches);
        self
    }

    /// The action's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Declared parameters, in order.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// Looks a parameter up by name.
    pub fn param_named(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| &*p.name == name)
    }

    /// Whether extra arguments are accepted as variables.
    pub fn extra_vars(&self) -> bool {
        self.extra_vars
    }

    /// What labels the action's branches, if it takes any.
    pub fn branches(&self) -> Option<&Branches> {
        self.branches.as_ref()
    }
}

/// The signature of a host function callable inside conditions (a feature
/// provider such as an uplift score).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FunctionSignature {
    /// Name used in calls.
    pub name: Arc<str>,
    /// Parameter types, positional.
    pub params: Vec<ValueType>,
    /// Result type.
    pub returns: ValueType,
}

/// The marketing actions every ruleset may call.
///
/// - `coupon(template: T, user: "u", ...attributes) { issued => ... refused => ... }`
///   issues a coupon from template `T`; the optional branches run on the outcome.
/// - `message(channel: "sms" | ["wechat", "sms"], template: "t", user: "u", ...vars)`
///   sends a message, falling back along a channel list.
/// - `transition(machine: M, user: "u", to: S)` moves a user to state `S`.
/// - `split(experiment: E, user: "u") { arm => actions ... }` assigns an arm.
/// - `link_identity(id: "a", same_as: "b")` records that two identifiers
///   are one person, for caps, coupons and campaign limits.
pub fn builtin_actions() -> Vec<ActionSignature> {
    use DeclKind::*;
    let string = || ParamType::Value(vec![ValueType::String]);
    vec![
        ActionSignature::new("coupon")
            .param_of("template", ParamType::Decl(Coupon), true)
            .param_of("user", string(), true)
            .with_extra_vars()
            .with_branches(Branches::Outcomes(vec!["issued".into(), "refused".into()])),
        ActionSignature::new("message")
            .param_of(
                "channel",
                ParamType::Value(vec![ValueType::String, ValueType::StringList]),
                true,
            )
            .param_of("template", string(), true)
            .param_of("user", string(), true)
            .with_extra_vars(),
        ActionSignature::new("transition")
            .param_of("machine", ParamType::Decl(Machine), true)
            .param_of("user", string(), true)
            .param_of("to", ParamType::Decl(State), true),
        ActionSignature::new("split")
            .param_of("experiment", ParamType::Decl(Experiment), true)
            .param_of("user", string(), true)
            .with_branches(Branches::Arms(Experiment)),
        ActionSignature::new("link_identity")
            .param_of("id", string(), true)
            .param_of("same_as", string(), true),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_have_unique_names_and_a_user() {
        let b = builtin_actions();
        let mut names: Vec<_> = b.iter().map(|s| s.name().to_string()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), b.len());
        assert!(b
            .iter()
            .all(|s| s.param_named("user").is_some() || s.name() == "link_identity"));
    }
}
