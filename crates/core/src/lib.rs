//! Core vocabulary of nudge: values, fact types, time, decisions, and the
//! declarations of marketing primitives.
//!
//! Every other nudge crate speaks these types; this crate depends on none of
//! them.
//!
//! ```
//! use nudge_core::{Duration, FactKind, FactType, Schema, ValueType};
//! let mut schema = Schema::new();
//! schema.add(
//!     FactType::new("page_view", FactKind::Event)
//!         .field("user_id", ValueType::String, false)
//!         .field("category", ValueType::String, false),
//! )?;
//! assert!(schema.id("page_view").is_some());
//! assert_eq!("30m".parse::<Duration>()?.as_millis(), 1_800_000);
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod action;
mod decision;
pub mod decl;
pub mod primitives;
mod schema;
mod time;
mod value;

pub use action::{
    builtin_actions, ActionSignature, Branches, DeclKind, FunctionSignature, Param, ParamType,
};
pub use decision::{Decision, Effect, Outcome, Status};
pub use schema::{ContextDef, FactKind, FactType, FieldDef, FieldId, Schema, SchemaError, TypeId};
pub use time::{
    civil_time, is_known_zone, next_civil_boundary, Civil, CivilUnit, Duration, DurationError,
    Timestamp, TimestampError,
};
pub use value::{write_quoted, Value, ValueType};
