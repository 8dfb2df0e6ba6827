//! A compiled ruleset and the conversions a host needs around it: rule
//! text in, facts from JSON, sessions out.

use crate::campaign::CampaignHost;
use nudge_core::primitives::decide::{Primitives, PrimitivesError};
use nudge_core::primitives::store::{MemoryStore, StateStore};
use nudge_core::{decl::Declarations, Duration, Timestamp, TypeId, Value, ValueType};
use nudge_dsl::{CheckedRuleset, Diagnostic, Sources};
use nudge_rete::{CompileError, Network, NoHost, Session, SessionConfig};
use std::path::Path;
use std::sync::Arc;

/// Why a ruleset could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The rule text has mistakes; `rendered` shows each with its position.
    #[error("{rendered}")]
    Rules {
        /// Every mistake.
        diagnostics: Vec<Diagnostic>,
        /// The mistakes rendered with file:line:col, the line and a caret.
        rendered: String,
    },
    /// The rules are valid but use a construct the engine does not run yet.
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// A declaration cannot be put to work (an unknown time zone...).
    #[error(transparent)]
    Primitives(#[from] PrimitivesError),
}

/// Why a fact given as JSON was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// No fact or event type has this name.
    #[error("unknown fact type `{0}`")]
    UnknownType(String),
    /// The JSON is not an object of fields.
    #[error("a fact is a JSON object of fields, not {0}")]
    NotAnObject(String),
    /// A field the type does not declare.
    #[error("`{ty}` has no field `{field}`")]
    UnknownField {
        /// The type.
        ty: String,
        /// The field.
        field: String,
    },
    /// A required field is absent or null.
    #[error("`{ty}` needs the field `{field}`")]
    MissingField {
        /// The type.
        ty: String,
        /// The field.
        field: String,
    },
    /// A value that does not fit its field.
    #[error("field `{field}` of `{ty}` is {expected}: {problem}")]
    BadValue {
        /// The type.
        ty: String,
        /// The field.
        field: String,
        /// The declared type.
        expected: ValueType,
        /// What is wrong with the value.
        problem: String,
    },
}

/// A checked and compiled ruleset: its declarations and its network.
/// Cheap to clone and share across threads; each [`Session`] runs against it.
///
/// ```
/// let rules = nudge::Ruleset::from_str("shop.nudge", r#"
///     event order_paid { key user_id: string  amount: float }
///     rule big_order {
///         when o: order_paid(amount > 100)
///         then message(channel: "push", template: "thanks", user: o.user_id)
///     }
/// "#)?;
/// let mut session = rules.session();
/// let (ty, values) = rules.fact_from_json("order_paid", &serde_json::json!({"user_id": "u1", "amount": 120}))?;
/// session.insert(ty, values)?;
/// session.fire()?;
/// let decision = session.decisions().next().unwrap();
/// assert_eq!(decision.action(), "message");
/// Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Ruleset {
    declarations: Arc<Declarations>,
    network: Arc<Network>,
    primitives: Arc<Primitives>,
}

impl Ruleset {
    /// Checks and compiles rule text held in memory (includes are read from
    /// disk, relative to `name`).
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(name: &str, text: &str) -> Result<Ruleset, Error> {
        let mut sources = Sources::new();
        let checked =
            nudge_dsl::check_str(&mut sources, name, text).map_err(|d| rules_error(&sources, d))?;
        Self::compile(checked)
    }

    /// Checks and compiles rule files.
    pub fn from_files(paths: &[impl AsRef<Path>]) -> Result<Ruleset, Error> {
        let mut sources = Sources::new();
        let checked =
            nudge_dsl::check_files(&mut sources, paths).map_err(|d| rules_error(&sources, d))?;
        Self::compile(checked)
    }

    /// Compiles an already checked ruleset.
    pub fn compile(checked: CheckedRuleset) -> Result<Ruleset, Error> {
        let (rules, declarations) = checked.into_parts();
        let network = Network::shared(rules)?;
        let declarations = Arc::new(declarations);
        let primitives = Arc::new(Primitives::new(
            declarations.clone(),
            network.rules().schema(),
            Arc::new(MemoryStore::new()),
        )?);
        Ok(Ruleset {
            declarations,
            network,
            primitives,
        })
    }

    /// The same ruleset with its shared state (coupon stock, caps,
    /// idempotency keys) kept in `store` instead of a fresh in-memory one:
    /// sessions of every instance using one store share it.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let rules = nudge::Ruleset::from_str("flash.nudge", r#"
    ///     event grab { key user_id: string }
    ///     coupon flash { value: 50.0  stock: 2  per_user: 1 }
    ///     campaign flash_sale { per_user: 1 per lifetime }
    ///     rule grab_coupon {
    ///         campaign flash_sale
    ///         when g: grab()
    ///         then coupon(template: flash, user: g.user_id)
    ///     }
    /// "#)?;
    /// let store = Arc::new(nudge::primitives::store::MemoryStore::new());
    /// let rules = rules.with_store(store)?;
    /// let mut session = rules.session();
    /// let grab = rules.type_id("grab").unwrap();
    /// for user in ["u1", "u2", "u1", "u3"] {
    ///     session.insert(grab, vec![nudge::Value::from(user)])?;
    ///     session.fire()?;
    /// }
    /// let outcomes: Vec<String> = session
    ///     .decisions()
    ///     .map(|d| format!("{} {:?}", d.arg("user").unwrap(), d.status()))
    ///     .collect();
    /// assert_eq!(outcomes, [
    ///     r#""u1" Done"#,
    ///     r#""u2" Done"#,
    ///     r#""u1" Suppressed("campaign_limit")"#,
    ///     r#""u3" Suppressed("out_of_stock")"#,
    /// ]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_store(mut self, store: Arc<dyn StateStore>) -> Result<Ruleset, Error> {
        self.primitives = Arc::new(Primitives::new(
            self.declarations.clone(),
            self.network.rules().schema(),
            store,
        )?);
        Ok(self)
    }

    /// The deciders of the built-in actions, shared by every session.
    pub fn primitives(&self) -> &Arc<Primitives> {
        &self.primitives
    }

    /// The compiled network.
    pub fn network(&self) -> &Arc<Network> {
        &self.network
    }

    /// The declarations of marketing primitives.
    pub fn declarations(&self) -> &Declarations {
        &self.declarations
    }

    /// A new session whose built-in actions are checked by the ruleset's
    /// primitives (see [`CampaignHost`]).
    pub fn session(&self) -> Session<CampaignHost> {
        self.session_with(SessionConfig::default())
    }

    /// A new session with settings (lateness, clock...).
    pub fn session_with(&self, config: SessionConfig) -> Session<CampaignHost> {
        Session::with_config(self.network.clone(), self.host(), config)
    }

    /// A fresh host for a session of this ruleset.
    pub fn host(&self) -> CampaignHost {
        CampaignHost::new(self.primitives.clone(), self.network.clone())
    }

    /// A session with no host: every decision comes out as the rule made
    /// it, unchecked, for callers that carry all actions out themselves.
    /// With no host there is no context provider either, so facts of a
    /// type with a `context` are refused (`FactError::Context`).
    pub fn bare_session(&self, config: SessionConfig) -> Session<NoHost> {
        Session::with_config(self.network.clone(), NoHost, config)
    }

    /// The id of a fact type by name.
    pub fn type_id(&self, name: &str) -> Option<TypeId> {
        self.network.rules().schema().id(name)
    }

    /// Converts a JSON object into the values of a fact of type `ty`.
    ///
    /// Strings, numbers and booleans map directly; a timestamp is an RFC
    /// 3339 string or milliseconds since the epoch; a duration is a literal
    /// such as `"10m"` or milliseconds; a list is an array of strings.
    /// Fields a context provider fills may be left out.
    pub fn fact_from_json(
        &self,
        ty: &str,
        json: &serde_json::Value,
    ) -> Result<(TypeId, Vec<Value>), InputError> {
        let schema = self.network.rules().schema();
        let id = schema
            .id(ty)
            .ok_or_else(|| InputError::UnknownType(ty.to_string()))?;
        let t = schema.get(id);
        let serde_json::Value::Object(map) = json else {
            return Err(InputError::NotAnObject(json_kind(json).to_string()));
        };
        for key in map.keys() {
            if t.field_id(key).is_none() {
                return Err(InputError::UnknownField {
                    ty: ty.to_string(),
                    field: key.clone(),
                });
            }
        }
        let mut values = Vec::with_capacity(t.fields().len());
        for (i, f) in t.fields().iter().enumerate() {
            // A context provider fills its fields when the fact is inserted.
            let provided = t
                .contexts()
                .iter()
                .any(|c| c.fields.iter().any(|f| f.index() == i));
            let v = match map.get(&*f.name) {
                None | Some(serde_json::Value::Null) if f.optional || provided => Value::Null,
                None | Some(serde_json::Value::Null) => {
                    return Err(InputError::MissingField {
                        ty: ty.to_string(),
                        field: f.name.to_string(),
                    })
                }
                Some(j) => json_value(j, f.ty).map_err(|problem| InputError::BadValue {
                    ty: ty.to_string(),
                    field: f.name.to_string(),
                    expected: f.ty,
                    problem,
                })?,
            };
            values.push(v);
        }
        Ok((id, values))
    }
}

fn rules_error(sources: &Sources, diagnostics: Vec<Diagnostic>) -> Error {
    Error::Rules {
        rendered: sources.render(&diagnostics),
        diagnostics,
    }
}

fn json_kind(j: &serde_json::Value) -> &'static str {
    match j {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Converts one JSON value to a field of type `ty`.
pub fn json_value(j: &serde_json::Value, ty: ValueType) -> Result<Value, String> {
    use serde_json::Value as J;
    let wrong = || format!("got {}", json_kind(j));
    Ok(match (ty, j) {
        (ValueType::String, J::String(s)) => Value::Str(s.as_str().into()),
        (ValueType::Int, J::Number(n)) => Value::Int(
            n.as_i64()
                .ok_or_else(|| format!("{n} is not a 64-bit integer"))?,
        ),
        (ValueType::Float, J::Number(n)) => {
            let f = n.as_f64().ok_or_else(|| format!("{n} is not a number"))?;
            if !f.is_finite() {
                return Err(format!("{n} is not finite"));
            }
            Value::Float(f)
        }
        (ValueType::Bool, J::Bool(b)) => Value::Bool(*b),
        (ValueType::Timestamp, J::String(s)) => {
            Value::Timestamp(s.parse::<Timestamp>().map_err(|e| e.to_string())?)
        }
        (ValueType::Timestamp, J::Number(n)) => Value::Timestamp(Timestamp::from_millis(
            n.as_i64()
                .ok_or_else(|| format!("{n} is not whole milliseconds"))?,
        )),
        (ValueType::Duration, J::String(s)) => {
            Value::Duration(s.parse::<Duration>().map_err(|e| e.to_string())?)
        }
        (ValueType::Duration, J::Number(n)) => Value::Duration(Duration::from_millis(
            n.as_i64()
                .ok_or_else(|| format!("{n} is not whole milliseconds"))?,
        )),
        (ValueType::StringList, J::Array(items)) => {
            let strings: Result<Vec<Arc<str>>, String> = items
                .iter()
                .map(|i| match i {
                    J::String(s) => Ok(Arc::from(s.as_str())),
                    other => Err(format!(
                        "list items must be strings, got {}",
                        json_kind(other)
                    )),
                })
                .collect();
            Value::List(strings?.into())
        }
        _ => return Err(wrong()),
    })
}
