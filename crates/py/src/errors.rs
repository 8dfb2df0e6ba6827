//! Engine errors as Python exceptions.
//!
//! The exception classes are defined in Python (`nudge/_errors.py`), where
//! they can also subclass `ValueError` or `LookupError`; every mapping from
//! an engine error to a class is in [`session_error`] and [`fact_error`]
//! (audience errors are all `AudienceError`, made by
//! `audience::audience_error`).

use nudge::{FactError, SessionError, SnapshotError};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyList, PyModule, PyType};

fn errors_module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    MODULE
        .get_or_try_init(py, || py.import("nudge._errors").map(Bound::unbind))
        .map(|m| m.bind(py))
}

/// The exception class `name` of `nudge._errors`.
pub(crate) fn class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    Ok(errors_module(py)?.getattr(name)?.cast_into::<PyType>()?)
}

/// An instance of exception class `name` with `message`; a `RuntimeError`
/// if the class cannot be loaded.
pub(crate) fn new(py: Python<'_>, name: &str, message: impl Into<String>) -> PyErr {
    let message = message.into();
    match class(py, name).and_then(|c| c.call1((message.clone(),))) {
        Ok(e) => PyErr::from_value(e),
        Err(_) => PyRuntimeError::new_err(message),
    }
}

/// Sets an attribute of the exception `err` (best effort: a failure leaves
/// the exception as it is).
pub(crate) fn set_attr<'py>(
    py: Python<'py>,
    err: &PyErr,
    name: &str,
    value: impl IntoPyObject<'py>,
) {
    let _ = err.value(py).setattr(name, value);
}

/// Attaches the decisions made before an error, and the position of the
/// failing item of a batch, to the exception.
pub(crate) fn annotate(
    py: Python<'_>,
    err: PyErr,
    decisions: Option<Bound<'_, PyList>>,
    index: Option<usize>,
) -> PyErr {
    if let Some(d) = decisions {
        set_attr(py, &err, "decisions", d);
    }
    if let Some(i) = index {
        set_attr(py, &err, "index", i);
        // Python 3.11 and later show notes under the message.
        let value = err.value(py);
        if value.hasattr("add_note").unwrap_or(false) {
            let _ = value.call_method1("add_note", (format!("at item {i} of the batch"),));
        }
    }
    err
}

/// A fact refused by the engine.
pub(crate) fn fact_error(py: Python<'_>, e: &FactError) -> PyErr {
    let class = match e {
        FactError::Late { .. } => "LateEventError",
        FactError::NoSuchFact(_) => "NoSuchFactError",
        _ => "FactError",
    };
    new(py, class, e.to_string())
}

/// A failed session call.
pub(crate) fn session_error(py: Python<'_>, e: &SessionError) -> PyErr {
    match e {
        SessionError::Fact(f) => fact_error(py, f),
        SessionError::RunLimit { .. } => new(py, "RunLimitError", e.to_string()),
        SessionError::Action { rule, .. } => {
            let err = new(py, "ActionError", e.to_string());
            set_attr(py, &err, "rule", rule.as_str());
            err
        }
        SessionError::ClockBackwards { .. } | SessionError::ClockOverflow { .. } => {
            new(py, "ClockError", e.to_string())
        }
        _ => new(py, "SessionError", e.to_string()),
    }
}

/// A snapshot that cannot be restored.
pub(crate) fn snapshot_error(py: Python<'_>, e: &SnapshotError) -> PyErr {
    new(py, "SnapshotError", e.to_string())
}
