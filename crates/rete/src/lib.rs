//! The nudge rule model and engine.
//!
//! [`ir`] is the checked rule model: fact patterns, joins, negation,
//! aggregates, time windows and actions, as plain serializable data. The
//! engine compiles it; it knows nothing of the rule language or of
//! marketing.
#![deny(missing_docs)]

pub mod ir;
