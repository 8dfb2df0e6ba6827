//! The nudge rule language: parse rule text, check it, and lower it into
//! the rule model that the engine compiles.
//!
//! The pipeline is text → [`ast`] (with spans) → [`check`](check_str) →
//! [`nudge_rete::ir::RuleSet`]. Every mistake is reported as a
//! [`Diagnostic`] with its file, line and column, rendered by
//! [`Sources::render`] with the source line and a caret.
//!
//! ```
//! let mut sources = nudge_dsl::Sources::new();
//! let text = r#"
//!     event order_paid { key user_id: string  amount: float }
//!     rule big_order {
//!         when o: order_paid(amount > "100")
//!         then message(channel: "push", template: "thanks", user: o.user_id)
//!     }
//! "#;
//! let diagnostics = nudge_dsl::check_str(&mut sources, "rules.nudge", text).unwrap_err();
//! let report = sources.render(&diagnostics);
//! assert!(report.contains("rules.nudge:4:37"));
//! assert!(report.contains("write the number without quotes"));
//! ```
//!
//! # Untrusted input
//!
//! Rule files are written by many hands. Bracket nesting is limited to
//! [`MAX_NESTING`] and expression depth to [`MAX_EXPR_DEPTH`], so no input
//! can exhaust the stack; every other problem is a diagnostic, never a panic.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod ast;
mod check;
mod diagnostic;
mod parser;

pub use check::{check, check_files, check_str, CheckedRuleset, Summary};
pub use diagnostic::{Diagnostic, ErrorKind, LineCol, Sources};
pub use parser::{parse_module, MAX_EXPR_DEPTH, MAX_NESTING};
mod format;
pub use format::format_module;
