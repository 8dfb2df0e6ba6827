//! The nudge rule model and its Rete engine.
//!
//! - [`ir`] is the checked rule model: fact patterns, joins, negation,
//!   aggregates, time windows and actions, as plain serializable data.
//! - [`Network`] is a rule set compiled into one Rete network: single-fact
//!   tests shared between rules and dispatched through hash and range
//!   indexes, joins hash-indexed on their equality keys, shared between rules
//!   that start alike. It is immutable and `Send + Sync`.
//! - [`Session`] holds working memory and the agenda, and turns facts into
//!   decisions.
//!
//! The engine knows nothing of the rule language or of marketing: a coupon
//! is an action named `coupon`, an audience is a membership set the
//! [`Host`] answers for.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod ir;
mod network;
mod session;

pub use network::{CompileError, GraphEdge, GraphNode, Network, NetworkStats, NodeKind};
pub use session::{
    Clock, Counters, DecisionRef, FactError, FactId, Host, LatePolicy, Memory, NoHost, Session,
    SessionConfig, SessionError, SnapshotError, SNAPSHOT_VERSION,
};
