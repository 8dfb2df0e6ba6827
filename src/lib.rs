//! nudge: an embeddable rules-and-decisioning engine for marketing
//! automation.
//!
//! Marketing rules are written in nudge's rule language, checked and
//! lowered into a rule model, and (with the engine) compiled into one Rete
//! network whose condition nodes are shared between rules. This crate is the
//! facade: it re-exports what a Rust user needs and holds the `nudge`
//! command-line tool.
//!
//! ```
//! let mut sources = nudge::Sources::new();
//! let text = r#"
//!     event order_paid { key user_id: string  amount: float }
//!     coupon thanks20 { value: 20.0  stock: 1000  per_user: 1 }
//!     rule big_first_order {
//!         when o: order_paid(amount > 100)
//!         then coupon(template: thanks20, user: o.user_id)
//!     }
//! "#;
//! let ruleset = nudge::check_str(&mut sources, "campaign.nudge", text)
//!     .map_err(|d| sources.render(&d))?;
//! assert_eq!(ruleset.summary().rules, 1);
//! assert_eq!(ruleset.declarations().coupons[0].stock, Some(1000));
//! Ok::<(), String>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use nudge_core::{
    decl, primitives, ActionSignature, Decision, Duration, Effect, FactKind, FactType, FieldId,
    Outcome, Schema, Status, Timestamp, TypeId, Value, ValueType,
};
pub use nudge_dsl::{
    check, check_files, check_str, CheckedRuleset, Diagnostic, ErrorKind, Sources, Summary,
};
pub use nudge_rete::{
    ir, Clock, CompileError, Counters, DecisionRef, FactError, FactId, Host, LatePolicy, Memory,
    Network, NetworkStats, NoHost, Session, SessionConfig, SessionError, SnapshotError,
};

pub mod campaign;
mod engine;
pub mod replay;
pub use engine::{json_value, Error, InputError, Ruleset};

/// The rule language's syntax tree, parser and formatter.
pub mod lang {
    pub use nudge_dsl::{ast, format_module, parse_module};
}
