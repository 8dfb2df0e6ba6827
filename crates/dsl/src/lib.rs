//! The nudge rule language.
#![deny(missing_docs)]

pub mod ast;
mod diagnostic;
mod parser;

pub use diagnostic::{Diagnostic, ErrorKind, LineCol, Sources};
pub use parser::{parse_module, MAX_EXPR_DEPTH, MAX_NESTING};
