//! Decisions as Python objects.

use crate::convert::{datetime, to_py};
use nudge::ir::RuleSet;
use nudge::{DecisionRef, Status, Timestamp, Value};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::sync::Arc;

/// What a rule asked the host to do: a message to send, a coupon to issue,
/// a transition, an experiment's split, a host action; and what became of
/// it once the ruleset's primitives checked it (``status``, ``reason``,
/// ``until``, ``details``).
///
/// Sending the message, handing out the coupon is the caller's job: nudge
/// decides, the host acts. Decisions compare equal when every attribute is
/// equal.
#[pyclass(frozen, eq, module = "nudge._native", name = "Decision")]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Decision {
    seq: u64,
    rule: Arc<str>,
    action: Arc<str>,
    args: Vec<(Arc<str>, Value)>,
    facts: Vec<u64>,
    time: Timestamp,
    branch: Option<Arc<str>>,
    status: Status,
    details: Vec<(Arc<str>, Value)>,
}

impl Decision {
    /// An owned copy of a decision the engine holds.
    pub(crate) fn from_ref(d: &DecisionRef<'_>, rules: &RuleSet) -> Decision {
        let rule = rules.rules()[d.rule().index()].name.clone();
        Decision {
            seq: d.seq(),
            rule,
            action: Arc::from(d.action()),
            args: d.args().map(|(n, v)| (Arc::from(n), v.clone())).collect(),
            facts: d.facts().iter().map(|f| f.as_u64()).collect(),
            time: d.time(),
            branch: d.branch().map(Arc::from),
            status: d.status().clone(),
            details: d
                .details()
                .map(|(n, v)| (Arc::from(n), v.clone()))
                .collect(),
        }
    }

    fn args_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        pairs_dict(py, &self.args)
    }

    fn reason_text(&self) -> Option<&str> {
        match &self.status {
            Status::Suppressed(r) | Status::Failed(r) => Some(r),
            _ => None,
        }
    }

    fn until_time(&self) -> Option<Timestamp> {
        match self.status {
            Status::Deferred(t) => Some(t),
            _ => None,
        }
    }
}

fn pairs_dict<'py>(py: Python<'py>, pairs: &[(Arc<str>, Value)]) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    for (n, v) in pairs {
        out.set_item(&**n, to_py(py, v)?)?;
    }
    Ok(out)
}

/// A decision as a Python object.
pub(crate) fn new_decision(py: Python<'_>, d: Decision) -> PyResult<Bound<'_, Decision>> {
    let obj = Bound::new(py, d)?;
    untrack(&obj);
    Ok(obj)
}

/// Decisions as a Python list.
pub(crate) fn decision_list(py: Python<'_>, ds: Vec<Decision>) -> PyResult<Bound<'_, PyList>> {
    let list = PyList::empty(py);
    for d in ds {
        list.append(new_decision(py, d)?)?;
    }
    Ok(list)
}

/// Takes a decision out of the cyclic garbage collector's view.
///
/// A decision holds no Python object, so it can never be part of a
/// reference cycle, yet every pyo3 class is a GC type: without this, each
/// collection walks every decision still alive, and a batch at 37 decisions
/// per event spends a third of its time there (measured on W2, R = 10,000).
#[allow(unsafe_code)]
fn untrack(obj: &Bound<'_, Decision>) {
    // SAFETY: `obj` is a live object of a GC type and the GIL is held.
    // Untracking an object that references no Python object cannot hide a
    // cycle, and CPython's deallocator only untracks objects still tracked.
    unsafe { pyo3::ffi::PyObject_GC_UnTrack(obj.as_ptr().cast()) }
}

#[pymethods]
impl Decision {
    /// Position in the session's stream of decisions, from 1.
    #[getter]
    fn seq(&self) -> u64 {
        self.seq
    }

    /// The name of the rule that fired.
    #[getter]
    fn rule(&self) -> &str {
        &self.rule
    }

    /// The action asked for: ``"message"``, ``"coupon"``, ``"transition"``,
    /// ``"split"``, ``"link_identity"``, or a host action declared with
    /// ``action``.
    #[getter]
    fn action(&self) -> &str {
        &self.action
    }

    /// The arguments, by name, in the order written (a new dict each time).
    /// Declaration names (a coupon template, a machine) are strings.
    #[getter]
    fn args<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.args_dict(py)
    }

    /// The ids of the facts the rule matched, one per binding pattern.
    #[getter]
    fn facts(&self) -> Vec<u64> {
        self.facts.clone()
    }

    /// When the decision was made, on the session clock (an aware
    /// ``datetime`` in UTC).
    #[getter]
    fn time<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        datetime(py, self.time)
    }

    /// When the decision was made, in milliseconds since the epoch.
    #[getter]
    fn time_ms(&self) -> i64 {
        self.time.as_millis()
    }

    /// The branch the primitives picked and ran (an experiment's arm,
    /// ``"issued"`` or ``"refused"`` for a coupon), or ``None``.
    #[getter]
    fn branch(&self) -> Option<&str> {
        self.branch.as_deref()
    }

    /// What became of the decision: ``"done"`` (carried out, or the
    /// caller's to carry out), ``"suppressed"`` (not carried out: see
    /// ``reason``), ``"deferred"`` (put off until ``until``, when the
    /// session decides it again) or ``"failed"`` (it could not be decided:
    /// an illegal transition, a missing argument).
    #[getter]
    fn status(&self) -> &'static str {
        self.status.name()
    }

    /// Why a decision was suppressed (``"out_of_stock"``, ``"capped"``,
    /// ``"already_issued"``, ``"quiet_hours"``...) or failed
    /// (``"illegal_transition"``...); ``None`` otherwise.
    #[getter]
    fn reason(&self) -> Option<&str> {
        self.reason_text()
    }

    /// For a deferred decision, when the session decides it again (an
    /// aware ``datetime`` in UTC); ``None`` otherwise.
    #[getter]
    fn until<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.until_time().map(|t| datetime(py, t)).transpose()
    }

    /// What the primitives recorded, by name (a new dict each time): the
    /// ``coupon_id`` issued, the ``channel`` used and the channels
    /// ``skipped``, the ``cap`` that stopped a message, the experiment
    /// ``arm`` and ``bucket``, a transition's ``from`` and ``to``...
    #[getter]
    fn details<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        pairs_dict(py, &self.details)
    }

    /// The value of detail ``name``, or ``default``.
    #[pyo3(signature = (name, default = None))]
    fn detail<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match self.details.iter().find(|(n, _)| &**n == name) {
            Some((_, v)) => to_py(py, v),
            None => Ok(default.unwrap_or_else(|| py.None().into_bound(py))),
        }
    }

    /// The value of argument ``name``, or ``default``.
    #[pyo3(signature = (name, default = None))]
    fn arg<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match self.args.iter().find(|(n, _)| &**n == name) {
            Some((_, v)) => to_py(py, v),
            None => Ok(default.unwrap_or_else(|| py.None().into_bound(py))),
        }
    }

    /// The decision as a dict: ``seq``, ``rule``, ``action``, ``args``,
    /// ``facts``, ``time`` (a ``datetime``) and ``branch``; then, as
    /// ``nudge replay`` prints them, ``status`` with ``reason`` (or
    /// ``until``) unless the decision is done, and ``details`` unless
    /// there are none.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        out.set_item("seq", self.seq)?;
        out.set_item("rule", &*self.rule)?;
        out.set_item("action", &*self.action)?;
        out.set_item("args", self.args_dict(py)?)?;
        out.set_item("facts", self.facts.clone())?;
        out.set_item("time", datetime(py, self.time)?)?;
        out.set_item("branch", self.branch.as_deref())?;
        if !self.status.is_done() {
            out.set_item("status", self.status.name())?;
        }
        if let Some(r) = self.reason_text() {
            out.set_item("reason", r)?;
        }
        if let Some(t) = self.until_time() {
            out.set_item("until", datetime(py, t)?)?;
        }
        if !self.details.is_empty() {
            out.set_item("details", pairs_dict(py, &self.details)?)?;
        }
        Ok(out)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let args = self.args_dict(py)?.repr()?;
        let branch = match &self.branch {
            Some(b) => format!(", branch='{b}'"),
            None => String::new(),
        };
        let status = match &self.status {
            Status::Done => String::new(),
            Status::Deferred(t) => format!(", status='deferred', until={t}"),
            other => format!(
                ", status='{}', reason='{}'",
                other.name(),
                self.reason_text().unwrap_or_default()
            ),
        };
        Ok(format!(
            "Decision(rule='{}', action='{}', args={args}, time={}{branch}{status})",
            &*self.rule, &*self.action, self.time
        ))
    }
}
