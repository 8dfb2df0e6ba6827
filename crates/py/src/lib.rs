//! Python bindings of nudge: the native module `nudge._native`.
//!
//! The Python package `nudge` (in `python/nudge/`) wraps this module. The
//! bindings convert and delegate: rules are checked and compiled by the
//! `nudge` crate, and sessions are the engine's own, with a host that
//! forwards to Python callables. See `docs/python.md`.
#![deny(missing_docs)]

use pyo3::prelude::*;

mod audience;
mod convert;
mod decision;
mod errors;
mod host;
mod ruleset;
mod session;

/// The native part of the `nudge` package.
#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ruleset::Ruleset>()?;
    m.add_class::<ruleset::PyDiagnostic>()?;
    m.add_class::<session::Session>()?;
    m.add_class::<decision::Decision>()?;
    m.add_class::<audience::PyIdDictionary>()?;
    m.add_function(wrap_pyfunction!(ruleset::compile, m)?)?;
    m.add_function(wrap_pyfunction!(ruleset::compile_files, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
