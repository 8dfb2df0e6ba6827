//! Compiling rules: `compile`, `compile_files`, `Ruleset` and `Diagnostic`.

use crate::errors;
use crate::host::PyHost;
use crate::session::{Session, SessionOptions};
use nudge::{CheckedRuleset, ErrorKind, FactKind, Sources};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use std::path::PathBuf;

/// One mistake in rule text, with its position.
///
/// ``str(d)`` renders it as ``nudge check`` does: the position, the line, a
/// caret under the culprit, and a suggestion where one is obvious.
#[pyclass(frozen, module = "nudge._native", name = "Diagnostic")]
#[derive(Clone)]
pub(crate) struct PyDiagnostic {
    /// The code: ``E001`` to ``E015`` (see the language reference).
    #[pyo3(get)]
    code: &'static str,
    /// The kind, in words: ``"syntax"``, ``"unknown_field"``...
    #[pyo3(get)]
    kind: &'static str,
    /// What is wrong, in one line.
    #[pyo3(get)]
    message: String,
    /// The file.
    #[pyo3(get)]
    file: String,
    /// The line of the culprit's start, from 1.
    #[pyo3(get)]
    line: usize,
    /// The column of the culprit's start, from 1, in characters.
    #[pyo3(get)]
    column: usize,
    /// The line of the culprit's end.
    #[pyo3(get)]
    end_line: usize,
    /// The column just past the culprit's end.
    #[pyo3(get)]
    end_column: usize,
    /// What the caret says.
    #[pyo3(get)]
    label: String,
    /// A suggested fix, if any.
    #[pyo3(get)]
    help: Option<String>,
    rendered: String,
}

#[pymethods]
impl PyDiagnostic {
    fn __str__(&self) -> &str {
        &self.rendered
    }

    fn __repr__(&self) -> String {
        format!(
            "Diagnostic({} at {}:{}:{}: {})",
            self.code, self.file, self.line, self.column, self.message
        )
    }
}

fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Syntax => "syntax",
        ErrorKind::BadLiteral => "bad_literal",
        ErrorKind::Include => "include",
        ErrorKind::Duplicate => "duplicate",
        ErrorKind::UnknownType => "unknown_type",
        ErrorKind::UnknownField => "unknown_field",
        ErrorKind::UnknownName => "unknown_name",
        ErrorKind::DuplicateBinding => "duplicate_binding",
        ErrorKind::TypeMismatch => "type_mismatch",
        ErrorKind::UnknownAction => "unknown_action",
        ErrorKind::BadArgument => "bad_argument",
        ErrorKind::UnknownState => "unknown_state",
        ErrorKind::BadSetting => "bad_setting",
        ErrorKind::BadTime => "bad_time",
        ErrorKind::Cycle => "cycle",
        _ => "other",
    }
}

/// Whether a mistake stops the text from being read (a syntax error) rather
/// than from checking (a type error). `nudge/_errors.py` lists the same codes.
fn is_syntax(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Syntax | ErrorKind::BadLiteral | ErrorKind::Include
    )
}

/// Why rules did not compile, computed without the GIL.
enum BuildError {
    Rules {
        diagnostics: Vec<PyDiagnostic>,
        syntax: bool,
        rendered: String,
    },
    Compile(String),
}

fn build(
    check: impl FnOnce(&mut Sources) -> Result<CheckedRuleset, Vec<nudge::Diagnostic>>,
) -> Result<nudge::Ruleset, BuildError> {
    let mut sources = Sources::new();
    let checked = match check(&mut sources) {
        Ok(c) => c,
        Err(diags) => {
            let diagnostics = diags
                .iter()
                .map(|d| {
                    let start = sources.line_col(d.span.file, d.span.start);
                    let end = sources.line_col(d.span.file, d.span.end);
                    PyDiagnostic {
                        code: d.kind.code(),
                        kind: kind_name(d.kind),
                        message: d.message.clone(),
                        file: sources.name(d.span.file).to_string(),
                        line: start.line,
                        column: start.col,
                        end_line: end.line,
                        end_column: end.col,
                        label: d.label.clone(),
                        help: d.help.clone(),
                        rendered: sources.render(std::slice::from_ref(d)),
                    }
                })
                .collect();
            return Err(BuildError::Rules {
                diagnostics,
                syntax: diags.iter().any(|d| is_syntax(d.kind)),
                rendered: sources.render(&diags),
            });
        }
    };
    nudge::Ruleset::compile(checked).map_err(|e| BuildError::Compile(e.to_string()))
}

fn raise(py: Python<'_>, e: BuildError) -> PyErr {
    match e {
        BuildError::Rules {
            diagnostics,
            syntax,
            rendered,
        } => {
            let name = if syntax {
                "RuleSyntaxError"
            } else {
                "RuleTypeError"
            };
            let made = errors::class(py, name).and_then(|c| {
                let list = PyList::new(py, diagnostics)?;
                c.call1((rendered.trim_end().to_string(), list))
            });
            match made {
                Ok(e) => PyErr::from_value(e),
                Err(e) => e,
            }
        }
        BuildError::Compile(message) => errors::new(py, "CompileError", message),
    }
}

/// Checks and compiles rule text held in a string.
///
/// ``filename`` names the text in diagnostics; ``include`` lines are read
/// from disk relative to it. The work runs without the GIL.
///
/// Raises ``RuleSyntaxError`` or ``RuleTypeError`` (both ``RuleError``,
/// a ``ValueError``) listing every mistake, or ``CompileError``.
#[pyfunction]
#[pyo3(signature = (text, *, filename = "rules.nudge"))]
pub(crate) fn compile(py: Python<'_>, text: &str, filename: &str) -> PyResult<Ruleset> {
    let built = py.detach(|| build(|s| nudge::check_str(s, filename, text)));
    match built {
        Ok(rules) => Ruleset::new(py, rules),
        Err(e) => Err(raise(py, e)),
    }
}

/// Checks and compiles rule files (each a ``str`` or ``os.PathLike``), with
/// the files they include, as one ruleset. The work runs without the GIL.
///
/// Raises ``RuleSyntaxError``, ``RuleTypeError`` or ``CompileError``; a file
/// that cannot be read is a ``RuleSyntaxError`` with code ``E003``.
#[pyfunction]
pub(crate) fn compile_files(py: Python<'_>, paths: Vec<PathBuf>) -> PyResult<Ruleset> {
    if paths.is_empty() {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "compile_files needs at least one path",
        ));
    }
    let built = py.detach(move || build(|s| nudge::check_files(s, &paths)));
    match built {
        Ok(rules) => Ruleset::new(py, rules),
        Err(e) => Err(raise(py, e)),
    }
}

/// A checked and compiled ruleset.
///
/// Immutable: share one between any number of sessions and threads. Make
/// one with :func:`nudge.compile` or :func:`nudge.compile_files`. Its
/// sessions share the state its primitives count in: coupon stock and
/// budgets, issued coupons, frequency caps and campaign limits, identity
/// links.
#[pyclass(frozen, module = "nudge._native", name = "Ruleset")]
pub(crate) struct Ruleset {
    pub(crate) inner: nudge::Ruleset,
    /// Per fact type, its field names as Python strings (dict keys).
    pub(crate) field_names: Vec<Vec<Py<PyString>>>,
}

impl Ruleset {
    fn new(py: Python<'_>, inner: nudge::Ruleset) -> PyResult<Ruleset> {
        let field_names = inner
            .network()
            .rules()
            .schema()
            .types()
            .iter()
            .map(|t| {
                t.fields()
                    .iter()
                    .map(|f| PyString::intern(py, &f.name).unbind())
                    .collect()
            })
            .collect();
        Ok(Ruleset { inner, field_names })
    }
}

#[pymethods]
impl Ruleset {
    /// A new session over these rules, with an empty working memory.
    ///
    /// ``lateness`` (a ``timedelta``, a literal such as ``"5m"``, or
    /// milliseconds) is how late an event may arrive and still count;
    /// ``late`` is what happens to a later one: ``"reject"`` (raise
    /// ``LateEventError``) or ``"at_watermark"`` (take it as if it happened
    /// at the watermark). ``clock`` is ``"pseudo"`` (moved by
    /// ``advance_to``/``advance_by``) or ``"system"`` (``fire`` first moves
    /// it to the system time). ``max_firings`` bounds the firings of one
    /// call, against rules that activate each other for ever.
    #[pyo3(signature = (*, lateness = None, clock = "pseudo", late = "reject", max_firings = 100_000))]
    fn session(
        slf: &Bound<'_, Self>,
        lateness: Option<&Bound<'_, PyAny>>,
        clock: &str,
        late: &str,
        max_firings: usize,
    ) -> PyResult<Session> {
        let options = SessionOptions::parse(lateness, clock, late, max_firings)?;
        Ok(Session::create(slf.clone().unbind(), options))
    }

    /// The names of the rules, in the order written.
    #[getter]
    fn rule_names(&self) -> Vec<String> {
        let rules = self.inner.network().rules().rules();
        rules.iter().map(|r| r.name.to_string()).collect()
    }

    /// The fact and event types: ``{type: {field: type}}``, where a field
    /// type is ``"string"``, ``"int"``, ``"float"``, ``"bool"``,
    /// ``"timestamp"``, ``"duration"`` or ``"list<string>"``, with a
    /// trailing ``?`` when the field is optional.
    #[getter]
    fn types<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for t in self.inner.network().rules().schema().types() {
            let fields = PyDict::new(py);
            for f in t.fields() {
                let opt = if f.optional { "?" } else { "" };
                fields.set_item(&*f.name, format!("{}{opt}", f.ty))?;
            }
            out.set_item(t.name(), fields)?;
        }
        Ok(out)
    }

    /// The names of the event types (the other types are facts).
    #[getter]
    fn event_types(&self) -> Vec<String> {
        let schema = self.inner.network().rules().schema();
        schema
            .types()
            .iter()
            .filter(|t| t.kind() == FactKind::Event)
            .map(|t| t.name().to_string())
            .collect()
    }

    /// The audiences a host loads with ``Session.set_audience`` or
    /// ``Session.set_audience_bytes`` (those declared without a
    /// definition).
    #[getter]
    fn audiences(&self) -> Vec<String> {
        let decls = &self.inner.declarations().audiences;
        decls
            .iter()
            .filter(|a| a.definition.is_none())
            .map(|a| a.name.to_string())
            .collect()
    }

    /// The host functions the rules declare, which
    /// ``Session.register_function`` provides.
    #[getter]
    fn functions(&self) -> Vec<String> {
        let functions = self.inner.network().rules().functions();
        functions.iter().map(|f| f.name.to_string()).collect()
    }

    /// The context providers the rules declare (``context NAME for TYPE``),
    /// each once, which ``Session.register_provider`` provides.
    #[getter]
    fn contexts(&self) -> Vec<String> {
        PyHost::context_names(self.inner.network())
            .iter()
            .map(|n| n.to_string())
            .collect()
    }

    fn __repr__(&self) -> String {
        let rules = self.inner.network().rules();
        let count = |n: usize, what: &str| {
            let s = if n == 1 { "" } else { "s" };
            format!("{n} {what}{s}")
        };
        format!(
            "<nudge.Ruleset: {}, {}>",
            count(rules.rules().len(), "rule"),
            count(rules.schema().types().len(), "type")
        )
    }
}
