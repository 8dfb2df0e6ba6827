//! The host a Python session gives the engine: the ruleset's campaign host
//! (built-in actions checked by the primitives, audiences, reachability,
//! context providers), with Python callables as host functions and context
//! providers.
//!
//! The engine asks its host synchronously, while it matches and fires, and
//! a host function's answer cannot fail: `call` returns a value. So a
//! callable that raises (or answers with a wrong type) is recorded here,
//! and for the rest of the engine call every callable answers `None` (a
//! function no value, a provider no field) without being called; the
//! session raises the recorded error once the engine call has returned. A
//! provider's failure also refuses the insert it was asked for. The
//! engine's state stays consistent throughout.

use crate::convert::{fields_dict, show, to_py, to_value};
use crate::errors;
use nudge::campaign::{CampaignHost, ContextFact, ContextTable, Provider};
use nudge::ir::{Action, Arg, Condition, Expr, FunctionId, Pattern, RuleSet, SetId};
use nudge::{DecisionRef, FactType, Host, Memory, Network, Outcome, TypeId, Value};
use nudge_core::primitives::audience::{Audience, IdDictionary};
use pyo3::exceptions::{PyException, PyOverflowError, PyTypeError, PyValueError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDict, PyInt, PyString, PyTuple};
use pyo3::PyTraverseError;
use std::sync::{Arc, Mutex, MutexGuard};

/// User ids for an audience, read from a Python iterable of `str` and
/// `int`. Audiences hold ids as text: the int `42` is the id `"42"`.
pub(crate) fn member_ids(ids: &Bound<'_, PyAny>, audience: &str) -> PyResult<Vec<String>> {
    user_ids(
        ids,
        &format!("the members of audience `{audience}`"),
        &format!("a member of audience `{audience}`"),
    )
}

/// User ids from a Python iterable of `str` and `int`; `what` names the
/// iterable and `each` an item, for error messages. A single `str` (or
/// `bytes`) is refused rather than read as its characters.
pub(crate) fn user_ids(ids: &Bound<'_, PyAny>, what: &str, each: &str) -> PyResult<Vec<String>> {
    if ids.is_instance_of::<PyString>()
        || ids.is_instance_of::<PyBytes>()
        || ids.is_instance_of::<PyByteArray>()
    {
        return Err(PyTypeError::new_err(format!(
            "{what} are an iterable of user ids (str or int), not one {}; \
             a single id goes in a list",
            show(ids)
        )));
    }
    ids.try_iter()?
        .map(|id| user_id(&id?, each))
        .collect::<PyResult<_>>()
}

/// A user id from a `str` or an `int` (as text: `42` is `"42"`); `place`
/// names the argument in the `TypeError` for anything else and in the
/// `ValueError` for an int beyond 128 bits.
pub(crate) fn user_id(id: &Bound<'_, PyAny>, place: &str) -> PyResult<String> {
    if let Ok(s) = id.cast::<PyString>() {
        Ok(s.to_cow()?.into_owned())
    } else if id.is_instance_of::<PyInt>() && !id.is_instance_of::<PyBool>() {
        match id.extract::<i128>() {
            Ok(n) => Ok(n.to_string()),
            Err(e) if e.is_instance_of::<PyOverflowError>(id.py()) => {
                Err(PyValueError::new_err(format!(
                    "{place} is a user id (str or int): {} does not fit in 128 bits",
                    show(id)
                )))
            }
            Err(e) => Err(e),
        }
    } else {
        Err(PyTypeError::new_err(format!(
            "{place} is a user id (str or int), not {}",
            show(id)
        )))
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A Python callable that failed while the engine ran: the exception and
/// what to say about it, made into a `CallbackError` once the engine call
/// has returned (and the GIL is held).
pub(crate) struct Failure {
    cause: PyErr,
    /// `"function"` or `"provider"`.
    kind: &'static str,
    /// The host function's or the context's name.
    callback: String,
    /// The callable, in words.
    what: String,
    /// The rules concerned.
    rules: Vec<String>,
    /// The fact inserted before the callable failed (it stays in).
    fact: Option<u64>,
}

impl Failure {
    /// Names the rule whose action failed because of a provider's failure
    /// (a rule inserting a fact whose provider failed).
    pub(crate) fn blame(&mut self, rule: &str) {
        if self.kind == "provider" && !self.rules.iter().any(|r| r == rule) {
            self.rules.push(rule.to_string());
        }
    }

    /// Records that the fact `id` went in before the failure (or despite
    /// it): its id travels with the error.
    pub(crate) fn inserted(&mut self, id: u64) {
        self.fact = Some(id);
    }

    /// The `CallbackError` to raise; an exception that is not an
    /// `Exception` (`KeyboardInterrupt`, `SystemExit`) is raised as itself.
    pub(crate) fn into_err(self, py: Python<'_>) -> PyErr {
        if !self.cause.is_instance_of::<PyException>(py) {
            return self.cause;
        }
        let by = match self.rules.len() {
            0 => String::new(),
            1 => format!(" (for rule `{}`)", self.rules[0]),
            _ => format!(
                " (for one of the rules {})",
                self.rules
                    .iter()
                    .map(|r| format!("`{r}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let cause = &self.cause;
        let cause_text = cause
            .value(py)
            .str()
            .map(|s| s.to_string())
            .unwrap_or_default();
        let cause_type = cause
            .get_type(py)
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "an exception".into());
        let refused = if self.kind == "provider" {
            "; the fact was not inserted"
        } else {
            ""
        };
        let err = errors::new(
            py,
            "CallbackError",
            format!(
                "{}{by} raised {cause_type}: {cause_text}{refused}",
                self.what
            ),
        );
        err.set_cause(py, Some(self.cause));
        errors::set_attr(py, &err, "callback", self.callback);
        errors::set_attr(py, &err, "kind", self.kind);
        errors::set_attr(py, &err, "rules", self.rules);
        if let Some(id) = self.fact {
            errors::set_attr(py, &err, "fact_id", id);
        }
        err
    }
}

/// Where a failure is recorded: shared by the host and the providers it
/// registered with its campaign host.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Option<Failure>>>);

impl Recorder {
    fn failed(&self) -> bool {
        lock(&self.0).is_some()
    }

    /// Records `failure` unless one is recorded already.
    fn record(&self, failure: Failure) {
        let mut slot = lock(&self.0);
        if slot.is_none() {
            *slot = Some(failure);
        }
    }

    fn take(&self) -> Option<Failure> {
        lock(&self.0).take()
    }
}

/// A Python context provider, as the campaign host holds it. The callable
/// sits in a slot the session shares, so that registering again replaces
/// it and the garbage collector can see and clear it.
#[derive(Clone)]
struct PyProvider {
    context: Arc<str>,
    slot: Arc<Mutex<Option<Py<PyAny>>>>,
    failure: Recorder,
    net: Arc<Network>,
}

impl PyProvider {
    /// Asks the callable for the context's fields of `fact`.
    fn ask(
        &self,
        py: Python<'_>,
        f: &Py<PyAny>,
        t: &FactType,
        fact: &ContextFact<'_>,
    ) -> PyResult<Vec<(Arc<str>, Value)>> {
        let seen = PyDict::new(py);
        for field in t.fields() {
            let v = fact.get(&field.name).unwrap_or(&Value::Null);
            seen.set_item(&*field.name, to_py(py, v)?)?;
        }
        let out = f.bind(py).call1((seen,))?;
        let context = &*self.context;
        let answer = if out.is_none() {
            PyDict::new(py)
        } else {
            fields_dict(&out, t.name()).map_err(|e| {
                if e.is_instance_of::<PyTypeError>(py) {
                    PyTypeError::new_err(format!(
                        "the provider of context `{context}` answers with a dict of its fields \
                         (or None), not {}",
                        show(&out)
                    ))
                } else {
                    e
                }
            })?
        };
        let own: Vec<&str> = fact.fields().collect();
        for key in answer.keys() {
            let known = key
                .cast::<PyString>()
                .ok()
                .and_then(|k| k.to_cow().ok().map(|k| own.contains(&&*k)))
                .unwrap_or(false);
            if !known {
                let listed: Vec<String> = own.iter().map(|f| format!("`{f}`")).collect();
                return Err(PyTypeError::new_err(format!(
                    "context `{context}` fills no field {} of `{}`; it fills {}",
                    match key.cast::<PyString>() {
                        Ok(k) => format!("`{}`", k.to_string_lossy()),
                        Err(_) => show(&key),
                    },
                    t.name(),
                    listed.join(", ")
                )));
            }
        }
        let mut values = Vec::with_capacity(own.len());
        for name in own {
            let Some(id) = t.field_id(name) else { continue };
            let def = t.field_def(id);
            let place = format!("field `{name}` of `{}` (context `{context}`)", t.name());
            let v = match answer.get_item(name)? {
                Some(v) => to_value(&v, def.ty, def.optional, &place)?,
                None if def.optional => Value::Null,
                None => {
                    return Err(PyTypeError::new_err(format!(
                        "{place} is {} and required: the provider did not give it",
                        def.ty
                    )))
                }
            };
            values.push((def.name.clone(), v));
        }
        Ok(values)
    }
}

impl Provider for PyProvider {
    fn provide(&mut self, fact: &mut ContextFact<'_>) -> Result<(), String> {
        if self.failure.failed() {
            // A callable failed earlier in this engine call: the provider
            // answers as if with None (its optional fields stay null).
            return Ok(());
        }
        let schema = self.net.rules().schema();
        let Some(t) = schema.id(fact.type_name()).map(|ty| schema.get(ty)) else {
            return Err(format!("no fact type `{}`", fact.type_name()));
        };
        let values = Python::attach(|py| {
            let f = lock(&self.slot).as_ref().map(|f| f.clone_ref(py));
            let Some(f) = f else {
                return Err(format!(
                    "no provider is registered for context `{}`",
                    self.context
                ));
            };
            self.ask(py, &f, t, fact).map_err(|cause| {
                let message = format!(
                    "the provider raised {}",
                    cause
                        .get_type(py)
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_else(|_| "an exception".into())
                );
                self.failure.record(Failure {
                    cause,
                    kind: "provider",
                    callback: self.context.to_string(),
                    what: format!(
                        "the provider of context `{}` of `{}`",
                        self.context,
                        t.name()
                    ),
                    rules: Vec::new(),
                    fact: None,
                });
                message
            })
        })?;
        for (name, v) in values {
            fact.set(&name, v)?;
        }
        Ok(())
    }
}

/// A table of rows by key, filled by replayed `context` operations, as a
/// provider.
#[derive(Clone, Default)]
struct TableProvider(Arc<Mutex<ContextTable>>);

impl Provider for TableProvider {
    fn provide(&mut self, fact: &mut ContextFact<'_>) -> Result<(), String> {
        lock(&self.0).provide(fact)
    }
}

/// What serves a context the session registered.
enum Served {
    Python(Arc<Mutex<Option<Py<PyAny>>>>),
    Table(Arc<Mutex<ContextTable>>),
}

/// The engine's host for a Python session.
pub(crate) struct PyHost {
    campaign: CampaignHost,
    net: Arc<Network>,
    functions: Vec<Option<Py<PyAny>>>,
    /// The contexts registered, by name.
    contexts: Vec<(Arc<str>, Served)>,
    failure: Recorder,
}

impl PyHost {
    /// A host over the ruleset's primitives, with empty audiences, everyone
    /// reachable, and no function or provider registered.
    pub(crate) fn new(rules: &nudge::Ruleset) -> PyHost {
        let net = rules.network().clone();
        PyHost {
            campaign: rules.host(),
            functions: net.rules().functions().iter().map(|_| None).collect(),
            contexts: Vec::new(),
            failure: Recorder::default(),
            net,
        }
    }

    /// Provides host function `name`.
    pub(crate) fn set_function(&mut self, name: &str, f: Py<PyAny>) -> Result<(), String> {
        let functions = self.net.rules().functions();
        match functions.iter().position(|s| &*s.name == name) {
            Some(i) => {
                self.functions[i] = Some(f);
                Ok(())
            }
            None => Err(format!(
                "the rules declare no function `{name}`{}",
                known(functions.iter().map(|f| &*f.name))
            )),
        }
    }

    /// The context names the rules declare, each once, in order.
    pub(crate) fn context_names(net: &Network) -> Vec<Arc<str>> {
        let mut names: Vec<Arc<str>> = Vec::new();
        for t in net.rules().schema().types() {
            for c in t.contexts() {
                if !names.contains(&c.name) {
                    names.push(c.name.clone());
                }
            }
        }
        names
    }

    fn check_context(&self, name: &str) -> Result<(), String> {
        let names = Self::context_names(&self.net);
        if names.iter().any(|n| &**n == name) {
            Ok(())
        } else {
            Err(format!(
                "the rules declare no context `{name}`{}",
                known(names.iter().map(|n| &**n))
            ))
        }
    }

    /// Registers `f` as the provider of context `name`, replacing any.
    pub(crate) fn set_provider(&mut self, name: &str, f: Py<PyAny>) -> Result<(), String> {
        self.check_context(name)?;
        if let Some((_, Served::Python(slot))) = self.contexts.iter().find(|(n, _)| &**n == name) {
            *lock(slot) = Some(f);
            return Ok(());
        }
        let slot = Arc::new(Mutex::new(Some(f)));
        let provider = PyProvider {
            context: Arc::from(name),
            slot: slot.clone(),
            failure: self.failure.clone(),
            net: self.net.clone(),
        };
        self.campaign.set_provider(name, provider)?;
        self.serve(name, Served::Python(slot));
        Ok(())
    }

    /// Sets the row a context answers for facts whose key is `key` (a
    /// replayed `context` operation), serving the context from a table
    /// from then on.
    pub(crate) fn set_context_row(
        &mut self,
        name: &str,
        key: Value,
        row: Vec<(Arc<str>, Value)>,
    ) -> Result<(), String> {
        self.check_context(name)?;
        let table = match self.contexts.iter().find(|(n, _)| &**n == name) {
            Some((_, Served::Table(t))) => t.clone(),
            _ => {
                let table = TableProvider::default();
                self.campaign.set_provider(name, table.clone())?;
                self.serve(name, Served::Table(table.0.clone()));
                table.0
            }
        };
        lock(&table).set(key, row);
        Ok(())
    }

    /// Serves every context nothing serves yet with an empty table, which
    /// answers nulls (as `nudge replay` starts).
    pub(crate) fn serve_contexts_with_tables(&mut self) -> Result<(), String> {
        for name in Self::context_names(&self.net) {
            if !self.contexts.iter().any(|(n, _)| *n == name) {
                let table = TableProvider::default();
                self.campaign.set_provider(&name, table.clone())?;
                self.serve(&name, Served::Table(table.0));
            }
        }
        Ok(())
    }

    fn serve(&mut self, name: &str, served: Served) {
        match self.contexts.iter_mut().find(|(n, _)| &**n == name) {
            Some(slot) => slot.1 = served,
            None => self.contexts.push((Arc::from(name), served)),
        }
    }

    /// Records whether `user` can be reached on `channel`.
    pub(crate) fn set_reachable(&mut self, user: &str, channel: &str, reachable: bool) {
        self.campaign
            .contacts_mut()
            .set_reachable(user, channel, reachable);
    }

    /// Makes field `field` of keyed fact type `ty` the users' address on
    /// `channel`.
    pub(crate) fn set_channel_address(
        &mut self,
        channel: &str,
        ty: &str,
        field: &str,
    ) -> Result<(), String> {
        self.campaign.set_channel_address(channel, ty, field)
    }

    /// Records whether `user` opted out of `channel`.
    pub(crate) fn set_opted_out(&mut self, user: &str, channel: &str, opted_out: bool) {
        self.campaign
            .contacts_mut()
            .set_opted_out(user, channel, opted_out);
    }

    /// Replaces the members of audience `name` with user ids, interning
    /// them.
    pub(crate) fn set_audience(&mut self, name: &str, ids: &[String]) -> Result<(), String> {
        self.check_loaded(name)?;
        self.campaign
            .load_audience(name, ids.iter().map(String::as_str))
            .map_err(|e| format!("audience `{name}`: {e}"))
    }

    /// Replaces the members of audience `name` with a set of user indices
    /// of the session's dictionary. Every index must belong to an id: an
    /// index beyond the dictionary would make a member of whichever id is
    /// interned next.
    pub(crate) fn set_audience_set(&mut self, name: &str, members: Audience) -> Result<(), String> {
        self.check_loaded(name)?;
        let len = self.dictionary().len();
        if let Some(max) = members.as_bitmap().max() {
            if u64::from(max) >= len as u64 {
                let held = match len {
                    0 => "is empty".to_string(),
                    1 => "has 1 id (index 0)".to_string(),
                    n => format!("has {n} ids (indices 0 to {})", n - 1),
                };
                return Err(format!(
                    "audience `{name}`: the bitmap holds user index {max}, but the session's \
                     id dictionary {held}; intern the users' ids first (`session.ids.intern`)"
                ));
            }
        }
        self.campaign
            .load_bitmap(name, members)
            .map_err(|e| format!("audience `{name}`: {e}"))
    }

    /// The members of audience `name`, loaded or defined.
    pub(crate) fn audience(&self, name: &str) -> Result<&Audience, String> {
        let segments = self.campaign.segments();
        let declared = segments.names().iter().any(|n| &**n == name);
        match segments.get(name) {
            Some(a) if declared => Ok(a),
            _ => Err(format!(
                "the rules declare no audience `{name}`{}",
                known(segments.names().iter().map(|n| &**n))
            )),
        }
    }

    /// Whether `name` is an audience the host loads; why not otherwise.
    fn check_loaded(&self, name: &str) -> Result<(), String> {
        let segments = self.campaign.segments();
        if segments.loaded().iter().any(|n| &**n == name) {
            return Ok(());
        }
        let problem = if segments.names().iter().any(|n| &**n == name) {
            format!("audience `{name}` is defined from other audiences: set those instead")
        } else {
            format!("the rules declare no audience `{name}`")
        };
        Err(format!(
            "{problem}{}",
            known(segments.loaded().iter().map(|n| &**n))
        ))
    }

    /// The dictionary between user ids and the indices audiences hold.
    pub(crate) fn dictionary(&self) -> &IdDictionary {
        self.campaign.segments().dictionary()
    }

    /// The dictionary, to intern new ids.
    pub(crate) fn dictionary_mut(&mut self) -> &mut IdDictionary {
        self.campaign.segments_mut().dictionary_mut()
    }

    /// The number of members of each audience, loaded or defined.
    pub(crate) fn audience_sizes(&self) -> Vec<(String, u64)> {
        let segments = self.campaign.segments();
        segments
            .names()
            .iter()
            .map(|n| (n.to_string(), segments.get(n).map_or(0, Audience::len)))
            .collect()
    }

    /// Shows the garbage collector the Python callables held.
    pub(crate) fn visit(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        for f in self.functions.iter().flatten() {
            visit.call(f)?;
        }
        for (_, served) in &self.contexts {
            if let Served::Python(slot) = served {
                // A provider being called is skipped: an edge left out only
                // keeps objects alive longer.
                if let Ok(f) = slot.try_lock() {
                    if let Some(f) = f.as_ref() {
                        visit.call(f)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Drops the Python callables (breaking reference cycles through them).
    pub(crate) fn clear_callables(&mut self) {
        self.functions.iter_mut().for_each(|f| *f = None);
        for (_, served) in &self.contexts {
            if let Served::Python(slot) = served {
                let f = lock(slot).take();
                drop(f);
            }
        }
    }

    /// The failure recorded during the last engine call, if any; clears it.
    pub(crate) fn take_failure(&self) -> Option<Failure> {
        self.failure.take()
    }
}

fn known<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.map(|n| format!("`{n}`")).collect();
    if names.is_empty() {
        String::new()
    } else {
        format!(" (it declares {})", names.join(", "))
    }
}

impl Host for PyHost {
    fn in_set(&self, set: SetId, key: &Value) -> bool {
        self.campaign.in_set(set, key)
    }

    fn call(&self, function: FunctionId, args: &[Value]) -> Value {
        if self.failure.failed() {
            return Value::Null;
        }
        let Some(Some(f)) = self.functions.get(function.index()) else {
            return Value::Null;
        };
        let sig = &self.net.rules().functions()[function.index()];
        Python::attach(|py| {
            let answer = (|| {
                let args = args
                    .iter()
                    .map(|a| to_py(py, a))
                    .collect::<PyResult<Vec<_>>>()?;
                let out = f.bind(py).call1(PyTuple::new(py, args)?)?;
                let place = format!("the result of host function `{}`", sig.name);
                to_value(&out, sig.returns, true, &place)
            })();
            answer.unwrap_or_else(|cause| {
                self.failure.record(Failure {
                    cause,
                    kind: "function",
                    callback: sig.name.to_string(),
                    what: format!("host function `{}`", sig.name),
                    rules: rules_calling(self.net.rules(), function),
                    fact: None,
                });
                Value::Null
            })
        })
    }

    fn decides(&self, action: &str, has_branches: bool) -> bool {
        self.campaign.decides(action, has_branches)
    }

    fn decide(&mut self, decision: DecisionRef<'_>, memory: Memory<'_>) -> Outcome {
        self.campaign.decide(decision, memory)
    }

    fn provide(&mut self, ty: TypeId, context: usize, fact: &mut [Value]) -> Result<(), String> {
        self.campaign.provide(ty, context, fact)
    }
}

/// The rules whose conditions or actions call host function `f`.
fn rules_calling(rules: &RuleSet, f: FunctionId) -> Vec<String> {
    rules
        .rules()
        .iter()
        .filter(|r| {
            r.conditions.iter().any(|c| condition_calls(c, f))
                || r.actions.iter().any(|a| action_calls(a, f))
        })
        .map(|r| r.name.to_string())
        .collect()
}

fn condition_calls(c: &Condition, f: FunctionId) -> bool {
    match c {
        Condition::Pattern(p) | Condition::Not(p) | Condition::Exists(p) => pattern_calls(p, f),
        Condition::Aggregate(a) => {
            pattern_calls(&a.source, f)
                || a.value.as_ref().is_some_and(|e| expr_calls(e, f))
                || a.having.as_ref().is_some_and(|(_, e)| expr_calls(e, f))
        }
        Condition::Test(e) => expr_calls(e, f),
    }
}

fn pattern_calls(p: &Pattern, f: FunctionId) -> bool {
    p.tests.iter().chain(&p.filters).any(|e| expr_calls(e, f))
}

fn action_calls(a: &Action, f: FunctionId) -> bool {
    match a {
        Action::Insert { fields, .. } | Action::Modify { fields, .. } => {
            fields.iter().any(|(_, e)| expr_calls(e, f))
        }
        Action::Retract { .. } => false,
        Action::Emit(emit) => {
            emit.args
                .iter()
                .any(|(_, arg)| matches!(arg, Arg::Expr(e) if expr_calls(e, f)))
                || emit
                    .branches
                    .iter()
                    .any(|(_, acts)| acts.iter().any(|a| action_calls(a, f)))
        }
        Action::Delayed { action, .. } => action_calls(action, f),
    }
}

fn expr_calls(e: &Expr, f: FunctionId) -> bool {
    match e {
        Expr::Host(g, args) => *g == f || args.iter().any(|a| expr_calls(a, f)),
        Expr::Neg(a)
        | Expr::Not(a)
        | Expr::ToFloat(a)
        | Expr::IsNull(a)
        | Expr::In(a, _)
        | Expr::InSet(a, _) => expr_calls(a, f),
        Expr::Arith(_, a, b) | Expr::Cmp(_, a, b) => expr_calls(a, f) || expr_calls(b, f),
        Expr::And(items) | Expr::Or(items) | Expr::Call(_, items) => {
            items.iter().any(|a| expr_calls(a, f))
        }
        _ => false,
    }
}
