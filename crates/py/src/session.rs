//! Sessions: working memory, the clock and the host, driven from Python.
//!
//! A `Session` guards its engine session with a mutex: any thread may use
//! it, one call at a time. A thread waiting for the mutex does so without
//! the GIL, and engine work that can take long (firing, the clock, batches)
//! runs without the GIL too, re-taking it only to call the session's Python
//! callables. A callable that calls back into the session it is running in
//! gets a `SessionError` instead of a deadlock.

use crate::audience::{audience_error, bytes_of, Format, PyIdDictionary};
use crate::convert::{self, fact_values, field_changes, fields_dict, show, to_py, Strings};
use crate::decision::{decision_list, new_decision, Decision};
use crate::errors;
use crate::host::{member_ids, user_id, Failure, PyHost};
use crate::ruleset::Ruleset;
use nudge::replay::OperationError;
use nudge::{
    Clock, Duration, FactError, FactId, LatePolicy, SessionConfig, SessionError, Timestamp, TypeId,
    Value,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::{PyBool, PyBytes, PyDict, PyInt, PyList, PyString};
use pyo3::PyTraverseError;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

/// How many items of a batch are converted before the engine runs them
/// without the GIL.
const CHUNK: usize = 4096;

/// Session settings read from Python keywords.
pub(crate) struct SessionOptions {
    config: SessionConfig,
}

impl SessionOptions {
    pub(crate) fn parse(
        lateness: Option<&Bound<'_, PyAny>>,
        clock: &str,
        late: &str,
        max_firings: usize,
    ) -> PyResult<SessionOptions> {
        let mut config = SessionConfig {
            max_firings,
            ..SessionConfig::default()
        };
        if let Some(l) = lateness.filter(|l| !l.is_none()) {
            let d = convert::duration(l, &"`lateness`".to_string())?;
            if d.as_millis() < 0 {
                return Err(PyValueError::new_err("`lateness` cannot be negative"));
            }
            config.lateness = d;
        }
        config.clock = match clock {
            "pseudo" => Clock::Pseudo,
            "system" => Clock::System,
            other => {
                return Err(PyValueError::new_err(format!(
                    "`clock` is \"pseudo\" or \"system\", not {other:?}"
                )))
            }
        };
        config.late = match late {
            "reject" => LatePolicy::Reject,
            "at_watermark" => LatePolicy::AtWatermark,
            other => {
                return Err(PyValueError::new_err(format!(
                    "`late` is \"reject\" or \"at_watermark\", not {other:?}"
                )))
            }
        };
        Ok(SessionOptions { config })
    }
}

/// The engine session and what the bindings keep beside it.
struct Inner {
    session: nudge::Session<PyHost>,
    /// Facts named by `ref`, for `modify`, `retract` and replays.
    refs: HashMap<String, FactId>,
}

/// Why a batch stopped, computed without the GIL.
enum Stop {
    Session(SessionError),
    Fact(FactError),
    NoRef(String),
    Value(String),
    Audience(String),
    Callback(Box<Failure>),
}

impl Stop {
    fn into_py(self, py: Python<'_>) -> PyErr {
        match self {
            Stop::Session(e) => errors::session_error(py, &e),
            Stop::Fact(e) => errors::fact_error(py, &e),
            Stop::NoRef(name) => errors::new(
                py,
                "NoSuchFactError",
                format!("no fact has the ref `{name}`"),
            ),
            Stop::Value(m) => PyValueError::new_err(m),
            Stop::Audience(m) => audience_error(py, m),
            Stop::Callback(f) => f.into_err(py),
        }
    }
}

/// A fact named by its id or by its ref.
enum Target {
    Id(FactId),
    Ref(String),
}

/// How far a replay's `advance` goes.
enum Advance {
    To(Timestamp),
    By(Duration),
}

/// One operation of a batch, converted from Python.
enum Op {
    Insert {
        ty: TypeId,
        values: Vec<Value>,
        name: Option<String>,
        /// Retract the fact once its rules have fired (`run(retract=True)`).
        transient: bool,
    },
    Modify {
        target: Target,
        changes: Vec<(nudge::FieldId, Value)>,
    },
    Retract(Target),
    Advance(Advance),
    /// Loads an audience (a replayed `audience` operation).
    Audience {
        name: String,
        ids: Vec<String>,
    },
    /// Sets a context's row for a key (a replayed `context` operation).
    Context {
        name: String,
        key: Value,
        row: Vec<(Arc<str>, Value)>,
    },
    /// Makes a fact field the users' address on a channel (a replayed
    /// `address` operation).
    Address {
        channel: String,
        ty: String,
        field: String,
    },
    /// Records reachability or an opt-out (a replayed `reach` operation).
    Reach {
        user: String,
        channel: String,
        reachable: Option<bool>,
        opted_out: Option<bool>,
    },
}

/// One operation with the time to move the clock to first.
struct Step {
    at: Option<Timestamp>,
    op: Op,
}

/// A small number per thread, to tell which thread holds a session.
fn thread_token() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local!(static TOKEN: u64 = NEXT.fetch_add(1, Ordering::Relaxed));
    TOKEN.with(|t| *t)
}

/// A fact id from the number Python holds.
fn fact_id(n: u64) -> Option<FactId> {
    // `FactId` has no public constructor; its serde form is its two halves.
    let fields = [("index", n as u32), ("generation", (n >> 32) as u32)];
    let de =
        serde::de::value::MapDeserializer::<_, serde::de::value::Error>::new(fields.into_iter());
    let id = FactId::deserialize(de).ok()?;
    (id.as_u64() == n).then_some(id)
}

fn target(obj: &Bound<'_, PyAny>) -> PyResult<Target> {
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Target::Ref(s.to_cow()?.into_owned()));
    }
    if obj.is_instance_of::<PyInt>() && !obj.is_instance_of::<PyBool>() {
        let n: i128 = obj.extract()?;
        return u64::try_from(n)
            .ok()
            .and_then(fact_id)
            .map(Target::Id)
            .ok_or_else(|| {
                errors::new(
                    obj.py(),
                    "NoSuchFactError",
                    format!("fact {n} does not exist"),
                )
            });
    }
    Err(PyTypeError::new_err(format!(
        "a fact is named by its id (int) or its ref (str), not {}",
        show(obj)
    )))
}

impl Inner {
    fn resolve(&self, t: &Target) -> Result<FactId, Stop> {
        match t {
            Target::Id(id) => Ok(*id),
            Target::Ref(name) => self
                .refs
                .get(name)
                .copied()
                .ok_or_else(|| Stop::NoRef(name.clone())),
        }
    }

    /// Moves the clock to `t` if it is ahead (replays never move it back).
    fn clock_to(&mut self, t: Timestamp) -> Result<(), Stop> {
        if t > self.session.now() {
            self.session.advance_to(t).map_err(Stop::Session)?;
        }
        Ok(())
    }

    /// Applies one step and fires; `inserted` receives the id of the fact
    /// an insert put in, which stays in whatever fails after it.
    fn apply(
        &mut self,
        rules: &nudge::Ruleset,
        step: Step,
        inserted: &mut Option<FactId>,
    ) -> Result<(), Stop> {
        if let Some(at) = step.at {
            self.clock_to(at)?;
        }
        match step.op {
            Op::Insert {
                ty,
                values,
                name,
                transient,
            } => {
                // Replaying history: the clock follows the events' own times.
                let schema = rules.network().rules().schema();
                if let Some(f) = schema.get(ty).time() {
                    if let Some(Value::Timestamp(at)) = values.get(f.index()) {
                        self.clock_to(*at)?;
                    }
                }
                let id = self.session.insert(ty, values).map_err(Stop::Fact)?;
                *inserted = Some(id);
                if let Some(name) = name {
                    self.refs.insert(name, id);
                }
                let fired = self.session.fire().map_err(Stop::Session).map(drop);
                if transient {
                    // A rule may have retracted it already.
                    let _ = self.session.retract(id);
                }
                fired
            }
            Op::Modify { target, changes } => {
                let id = self.resolve(&target)?;
                self.session.modify(id, &changes).map_err(Stop::Fact)?;
                self.session.fire().map_err(Stop::Session).map(drop)
            }
            Op::Retract(target) => {
                let id = self.resolve(&target)?;
                self.session.retract(id).map_err(Stop::Fact)?;
                if let Target::Ref(name) = target {
                    self.refs.remove(&name);
                }
                self.session.fire().map_err(Stop::Session).map(drop)
            }
            Op::Advance(Advance::To(t)) => self.clock_to(t),
            Op::Advance(Advance::By(d)) => {
                let t = self
                    .session
                    .now()
                    .checked_add(d)
                    .filter(|t| *t <= convert::LATEST)
                    .ok_or_else(|| Stop::Value(past_the_latest("`advance`", d)))?;
                self.clock_to(t)
            }
            Op::Audience { name, ids } => {
                let host = self.session.host_mut();
                host.set_audience(&name, &ids).map_err(Stop::Audience)?;
                self.session.fire().map_err(Stop::Session).map(drop)
            }
            Op::Context { name, key, row } => {
                let host = self.session.host_mut();
                host.set_context_row(&name, key, row).map_err(Stop::Value)?;
                self.session.fire().map_err(Stop::Session).map(drop)
            }
            Op::Address { channel, ty, field } => {
                let host = self.session.host_mut();
                host.set_channel_address(&channel, &ty, &field)
                    .map_err(Stop::Value)?;
                self.session.fire().map_err(Stop::Session).map(drop)
            }
            Op::Reach {
                user,
                channel,
                reachable,
                opted_out,
            } => {
                let host = self.session.host_mut();
                if let Some(r) = reachable {
                    host.set_reachable(&user, &channel, r);
                }
                if let Some(o) = opted_out {
                    host.set_opted_out(&user, &channel, o);
                }
                self.session.fire().map_err(Stop::Session).map(drop)
            }
        }
    }

    /// Moves the decisions the engine holds to `out`.
    fn drain(&mut self, rules: &nudge::Ruleset, out: &mut Vec<Decision>) {
        let ir = rules.network().rules();
        out.extend(self.session.decisions().map(|d| Decision::from_ref(&d, ir)));
        self.session.clear_decisions();
    }

    /// Applies `steps` in order, firing after each; stops at the first
    /// failure, with its position counted from `first`.
    fn run_steps(
        &mut self,
        rules: &nudge::Ruleset,
        steps: Vec<Step>,
        first: usize,
        out: &mut Vec<Decision>,
    ) -> Result<(), (usize, Stop)> {
        for (k, step) in steps.into_iter().enumerate() {
            let mut inserted = None;
            let result = self.apply(rules, step, &mut inserted);
            let failure = self.session.host().take_failure();
            self.drain(rules, out);
            settle(result, failure).map_err(|mut e| {
                if let (Stop::Callback(f), Some(id)) = (&mut e, inserted) {
                    f.inserted(id.as_u64());
                }
                (first + k, e)
            })?;
        }
        Ok(())
    }

    /// Runs one engine call, then collects its decisions and any failure of
    /// a callable.
    fn call<T>(
        &mut self,
        rules: &nudge::Ruleset,
        f: impl FnOnce(&mut nudge::Session<PyHost>) -> Result<T, Stop>,
    ) -> (Result<T, Stop>, Vec<Decision>) {
        let result = f(&mut self.session);
        let failure = self.session.host().take_failure();
        let mut out = Vec::new();
        self.drain(rules, &mut out);
        (settle(result, failure), out)
    }
}

/// The outcome of an engine call given the failure of a callable during
/// it, if any: the failure wins, naming the rule whose action it stopped.
fn settle<T>(result: Result<T, Stop>, failure: Option<Failure>) -> Result<T, Stop> {
    match failure {
        None => result,
        Some(mut f) => {
            if let Err(Stop::Session(SessionError::Action { rule, .. })) = &result {
                f.blame(rule);
            }
            Err(Stop::Callback(Box::new(f)))
        }
    }
}

/// The session's mutex, held; clears the owner on release.
struct Locked<'a> {
    guard: MutexGuard<'a, Inner>,
    owner: &'a AtomicU64,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.owner.store(0, Ordering::Release);
    }
}

impl std::ops::Deref for Locked<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.guard
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        &mut self.guard
    }
}

/// A working memory, a clock and a host over a :class:`Ruleset`: facts and
/// events go in, decisions come out, each checked by the ruleset's
/// primitives (coupon stock, caps, quiet hours, state machines,
/// experiments) with what became of it.
///
/// Make one with ``ruleset.session(...)`` (or ``Session(ruleset, ...)``).
/// Any thread may use a session, one call at a time (calls from several
/// threads wait for each other); batch calls and firing run without the GIL.
#[pyclass(frozen, module = "nudge._native", name = "Session")]
pub(crate) struct Session {
    ruleset: Py<Ruleset>,
    rules: nudge::Ruleset,
    inner: Mutex<Inner>,
    owner: AtomicU64,
}

impl Session {
    pub(crate) fn create(ruleset: Py<Ruleset>, options: SessionOptions) -> Session {
        let rules = ruleset.get().inner.clone();
        let host = PyHost::new(&rules);
        let session = nudge::Session::with_config(rules.network().clone(), host, options.config);
        Session::wrap(ruleset, rules, session)
    }

    fn wrap(
        ruleset: Py<Ruleset>,
        rules: nudge::Ruleset,
        session: nudge::Session<PyHost>,
    ) -> Session {
        Session {
            ruleset,
            rules,
            inner: Mutex::new(Inner {
                session,
                refs: HashMap::new(),
            }),
            owner: AtomicU64::new(0),
        }
    }

    fn lock(&self, py: Python<'_>) -> PyResult<Locked<'_>> {
        let me = thread_token();
        let guard = match self.inner.try_lock() {
            Ok(g) => g,
            Err(TryLockError::WouldBlock) => {
                if self.owner.load(Ordering::Acquire) == me {
                    return Err(errors::new(
                        py,
                        "SessionError",
                        "a callback cannot use the session that is calling it; \
                         record what it needs and act after the call returns",
                    ));
                }
                self.inner.lock_py_attached(py).map_err(|_| poisoned(py))?
            }
            Err(TryLockError::Poisoned(_)) => return Err(poisoned(py)),
        };
        self.owner.store(me, Ordering::Release);
        Ok(Locked {
            guard,
            owner: &self.owner,
        })
    }

    /// Runs `f` on the session's host, the session held.
    pub(crate) fn with_host<T>(&self, py: Python<'_>, f: impl FnOnce(&PyHost) -> T) -> PyResult<T> {
        Ok(f(self.lock(py)?.session.host()))
    }

    /// Runs `f` on the session's host if the session is free now.
    pub(crate) fn try_with_host<T>(&self, f: impl FnOnce(&PyHost) -> T) -> Option<T> {
        let inner = self.inner.try_lock().ok()?;
        Some(f(inner.session.host()))
    }

    /// Runs `f` on the session's host, to change it, the session held.
    pub(crate) fn with_host_mut<T>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut PyHost) -> T,
    ) -> PyResult<T> {
        Ok(f(self.lock(py)?.session.host_mut()))
    }

    /// Raises `stop` with `decisions` attached, or returns the decisions.
    fn finish<'py>(
        py: Python<'py>,
        result: Result<(), (Option<usize>, Stop)>,
        decisions: Vec<Decision>,
    ) -> PyResult<Bound<'py, PyList>> {
        let list = decision_list(py, decisions)?;
        match result {
            Ok(()) => Ok(list),
            Err((index, stop)) => Err(errors::annotate(py, stop.into_py(py), Some(list), index)),
        }
    }

    fn type_of(&self, name: &Bound<'_, PyAny>) -> PyResult<TypeId> {
        let s = name.cast::<PyString>().map_err(|_| {
            PyTypeError::new_err(format!("a fact type is named by a str, not {}", show(name)))
        })?;
        let s = s.to_cow()?;
        self.rules.type_id(&s).ok_or_else(|| {
            let schema = self.rules.network().rules().schema();
            let names: Vec<&str> = schema.types().iter().map(|t| t.name()).collect();
            PyValueError::new_err(format!(
                "unknown fact type `{s}`; the rules declare {}",
                names.join(", ")
            ))
        })
    }

    /// The type and values of a fact given as a type name and its fields.
    fn fact_input(
        &self,
        ty: &Bound<'_, PyAny>,
        fields: &Bound<'_, PyAny>,
        strings: Option<&mut Strings>,
    ) -> PyResult<(TypeId, Vec<Value>)> {
        let id = self.type_of(ty)?;
        let t = self.rules.network().rules().schema().get(id);
        let dict = fields_dict(fields, t.name())?;
        let names = &self.ruleset.get().field_names[id.index()];
        Ok((id, fact_values(&dict, t, names, strings)?))
    }

    /// Replay operation number `index` from its dict.
    fn step(
        &self,
        py: Python<'_>,
        inner: &Inner,
        index: usize,
        op: &Bound<'_, PyAny>,
    ) -> PyResult<Step> {
        let op = op.cast::<PyDict>().map_err(|_| {
            PyTypeError::new_err(format!(
                "a replay operation is a dict such as {{\"insert\": type, \"fields\": {{...}}}}, not {}",
                show(op)
            ))
        })?;
        let kind = op_kind(op, index)?;
        let at = match op.get_item("at")? {
            Some(a) if !a.is_none() => Some(convert::timestamp(&a, &"`at`".to_string())?),
            _ => None,
        };
        // `op_kind` saw every key needed.
        let needs = |key: &str| {
            op.get_item(key)?.ok_or_else(|| {
                PyValueError::new_err(format!("replay operation {index}: `{kind}` needs `{key}`"))
            })
        };
        let value = needs(kind)?;
        let op = match kind {
            "advance" => Op::Advance(advance(&value)?),
            "audience" => {
                let name = text_of(&value, "`audience` names an audience")?;
                Op::Audience {
                    ids: member_ids(&needs("members")?, &name)?,
                    name,
                }
            }
            "context" => self.context_op(&value, &needs("key")?, &needs("values")?)?,
            "address" => {
                let channel = text_of(&value, "`address` names a channel")?;
                let field = text_of(&needs("field")?, "`field` is a str, `type.field`")?;
                let Some((ty, field)) = field.split_once('.') else {
                    return Err(PyValueError::new_err(format!(
                        "`field` is `type.field`, not `{field}`"
                    )));
                };
                Op::Address {
                    channel,
                    ty: ty.to_string(),
                    field: field.to_string(),
                }
            }
            "reach" => reach_op(&value, index)?,
            "insert" => {
                let empty = PyDict::new(py).into_any();
                let fields = op.get_item("fields")?;
                let (ty, values) =
                    self.fact_input(&value, fields.as_ref().unwrap_or(&empty), None)?;
                let name = match op.get_item("ref")? {
                    Some(r) if !r.is_none() => Some(
                        r.cast::<PyString>()
                            .map_err(|_| PyTypeError::new_err("`ref` is a str"))?
                            .to_cow()?
                            .into_owned(),
                    ),
                    _ => None,
                };
                Op::Insert {
                    ty,
                    values,
                    name,
                    transient: false,
                }
            }
            "modify" => {
                let target = target(&value)?;
                let changes = self.changes_for(py, inner, &target, &needs("fields")?)?;
                Op::Modify { target, changes }
            }
            _ => Op::Retract(target(&value)?),
        };
        Ok(Step { at, op })
    }

    /// A replayed `context` operation: `{"context": name, "key": key,
    /// "values": {field: value}}`, the values checked against the fields
    /// the context fills.
    fn context_op(
        &self,
        name: &Bound<'_, PyAny>,
        key: &Bound<'_, PyAny>,
        values: &Bound<'_, PyAny>,
    ) -> PyResult<Op> {
        let name = text_of(name, "`context` names a context")?;
        let schema = self.rules.network().rules().schema();
        let serving: Vec<&nudge::FactType> = schema
            .types()
            .iter()
            .filter(|t| t.contexts().iter().any(|c| *c.name == *name))
            .collect();
        if serving.is_empty() {
            return Err(PyValueError::new_err(format!(
                "the rules declare no context `{name}`"
            )));
        }
        let key = if key.is_instance_of::<PyString>() {
            Value::Str(Arc::from(&*key.cast::<PyString>()?.to_cow()?))
        } else if key.is_instance_of::<PyInt>() && !key.is_instance_of::<PyBool>() {
            Value::Int(key.extract().map_err(|_| {
                PyValueError::new_err(format!(
                    "the `key` of a context row: {} does not fit in 64 bits",
                    show(key)
                ))
            })?)
        } else {
            return Err(PyTypeError::new_err(format!(
                "the `key` of a context row is a str or an int, not {}",
                show(key)
            )));
        };
        let values = values.cast::<PyDict>().map_err(|_| {
            PyTypeError::new_err(format!(
                "`values` is a dict of fields, not {}",
                show(values)
            ))
        })?;
        let mut row = Vec::with_capacity(values.len());
        for (field, v) in values.iter() {
            let field_name = field
                .cast::<PyString>()
                .map_err(|_| PyTypeError::new_err("field names are str"))?
                .to_cow()?
                .into_owned();
            // The field's type: from any type the context fills.
            let def = serving
                .iter()
                .find_map(|t| {
                    let f = t.field_id(&field_name)?;
                    t.contexts()
                        .iter()
                        .any(|c| *c.name == *name && c.fields.contains(&f))
                        .then(|| t.field_def(f))
                })
                .ok_or_else(|| {
                    PyValueError::new_err(format!("context `{name}` fills no field `{field_name}`"))
                })?;
            let place = format!("field `{field_name}` of context `{name}`");
            row.push((
                def.name.clone(),
                convert::to_value(&v, def.ty, def.optional, &place)?,
            ));
        }
        Ok(Op::Context { name, key, row })
    }

    /// Field changes for the fact `target`, checked against its type.
    fn changes_for(
        &self,
        py: Python<'_>,
        inner: &Inner,
        target: &Target,
        fields: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<(nudge::FieldId, Value)>> {
        let id = inner.resolve(target).map_err(|s| s.into_py(py))?;
        let Some((ty, _)) = inner.session.fact(id) else {
            return Err(errors::fact_error(py, &FactError::NoSuchFact(id)));
        };
        let t = self.rules.network().rules().schema().get(ty);
        let dict = fields.cast::<PyDict>().map_err(|_| {
            PyTypeError::new_err(format!("`fields` is a dict, not {}", show(fields)))
        })?;
        field_changes(dict, t)
    }

    /// Runs the engine part of a batch without the GIL.
    fn run_chunk(
        &self,
        py: Python<'_>,
        inner: &mut Inner,
        steps: Vec<Step>,
        first: usize,
        out: &mut Vec<Decision>,
    ) -> Result<(), (usize, Stop)> {
        if steps.is_empty() {
            return Ok(());
        }
        let rules = &self.rules;
        py.detach(|| inner.run_steps(rules, steps, first, out))
    }

    /// Feeds a batch: `convert` turns each item (and its position) into a
    /// step (with the GIL); steps run in chunks without it. A `Modify` needs
    /// the current type of its fact, so `convert` sees the session as the
    /// steps before it left it. With `tables`, contexts nothing serves are
    /// served by empty tables from the first step run on (as in a replay).
    fn batch<'py>(
        &self,
        py: Python<'py>,
        items: &Bound<'py, PyAny>,
        tables: bool,
        mut convert: impl FnMut(&Inner, usize, &Bound<'py, PyAny>) -> PyResult<Step>,
    ) -> PyResult<Bound<'py, PyList>> {
        let mut guard = self.lock(py)?;
        let inner: &mut Inner = &mut guard;
        let made = PyList::empty(py);
        let mut steps = Vec::with_capacity(CHUNK);
        let mut first = 0;
        let iter = items.try_iter().map_err(|e| {
            if e.is_instance_of::<PyTypeError>(py) {
                PyTypeError::new_err(format!("a batch is an iterable, not {}", show(items)))
            } else {
                e
            }
        })?;
        // Runs the steps so far; the error to raise if they stopped.
        let run = |inner: &mut Inner, steps: &mut Vec<Step>, first: usize| {
            if tables && !steps.is_empty() {
                inner
                    .session
                    .host_mut()
                    .serve_contexts_with_tables()
                    .map_err(PyValueError::new_err)?;
            }
            let ready = std::mem::replace(steps, Vec::with_capacity(CHUNK));
            let mut out = Vec::new();
            let result = self.run_chunk(py, inner, ready, first, &mut out);
            for d in out {
                made.append(new_decision(py, d)?)?;
            }
            match result {
                Ok(()) => Ok(()),
                Err((k, s)) => Err(errors::annotate(
                    py,
                    s.into_py(py),
                    Some(made.clone()),
                    Some(k),
                )),
            }
        };
        for (i, item) in iter.enumerate() {
            if let Ok(item) = &item {
                if is_modify(item) && !steps.is_empty() {
                    // Its fact may come from a step not yet run.
                    run(inner, &mut steps, first)?;
                    first = i;
                }
            }
            match item.and_then(|item| convert(inner, i, &item)) {
                Ok(step) => steps.push(step),
                Err(e) => {
                    // The items before the failing one take effect.
                    run(inner, &mut steps, first)?;
                    return Err(errors::annotate(py, e, Some(made.clone()), Some(i)));
                }
            }
            if steps.len() == CHUNK {
                run(inner, &mut steps, first)?;
                first = i + 1;
                py.check_signals()
                    .map_err(|e| errors::annotate(py, e, Some(made.clone()), Some(first)))?;
            }
        }
        run(inner, &mut steps, first)?;
        Ok(made)
    }
}

/// The text of a `str`, or a `TypeError` saying `what`.
fn text_of(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    let s = obj
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err(format!("{what}, not {}", show(obj))))?;
    Ok(s.to_cow()?.into_owned())
}

/// The keys of a dict, which must be `str`; `index` is the replay
/// operation's position.
fn keys_of(dict: &Bound<'_, PyDict>, index: usize) -> PyResult<Vec<String>> {
    let mut keys = Vec::with_capacity(dict.len());
    for key in dict.keys() {
        let key = key.cast::<PyString>().map_err(|_| {
            PyTypeError::new_err(format!(
                "replay operation {index}: keys are str, not {}",
                show(&key)
            ))
        })?;
        keys.push(key.to_cow()?.into_owned());
    }
    Ok(keys)
}

/// A `ValueError` about replay operation `index`.
fn op_error(index: usize, e: OperationError) -> PyErr {
    PyValueError::new_err(format!("replay operation {index}: {e}"))
}

/// The kind of replay operation number `index`, its keys checked as `nudge
/// replay` checks a line's.
fn op_kind(op: &Bound<'_, PyDict>, index: usize) -> PyResult<&'static str> {
    let keys = keys_of(op, index)?;
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    nudge::replay::operation(&keys).map_err(|e| op_error(index, e))
}

/// A replayed `reach` operation: `{"reach": {"user": id, "channel": name,
/// "reachable": bool, "opted_out": bool}}`, with one flag or both.
fn reach_op(reach: &Bound<'_, PyAny>, index: usize) -> PyResult<Op> {
    let reach = reach.cast::<PyDict>().map_err(|_| {
        PyTypeError::new_err(format!(
            "`reach` is a dict with `user`, `channel` and `reachable` or `opted_out`, not {}",
            show(reach)
        ))
    })?;
    let keys = keys_of(reach, index)?;
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    nudge::replay::reach_keys(&keys).map_err(|e| op_error(index, e))?;
    // `reach_keys` saw both.
    let (Some(user), Some(channel)) = (reach.get_item("user")?, reach.get_item("channel")?) else {
        return Err(PyValueError::new_err("`reach` needs `user` and `channel`"));
    };
    let flag = |name: &str| -> PyResult<Option<bool>> {
        match reach.get_item(name)? {
            None => Ok(None),
            Some(b) if b.is_instance_of::<PyBool>() => Ok(Some(b.extract()?)),
            Some(b) => Err(PyTypeError::new_err(format!(
                "`{name}` is True or False, not {}",
                show(&b)
            ))),
        }
    };
    Ok(Op::Reach {
        user: user_id(&user, "`user` of a `reach` operation")?,
        channel: text_of(&channel, "a channel is named by a str")?,
        reachable: flag("reachable")?,
        opted_out: flag("opted_out")?,
    })
}

/// Why moving the clock by `d` is refused: it would leave the times
/// Python's `datetime` holds.
fn past_the_latest(what: &str, d: Duration) -> String {
    format!(
        "{what}: {d} from now goes past 9999-12-31T23:59:59.999Z, the latest time \
         Python's datetime holds"
    )
}

fn is_modify(item: &Bound<'_, PyAny>) -> bool {
    item.cast::<PyDict>()
        .ok()
        .and_then(|d| d.get_item("modify").ok().flatten())
        .is_some()
}

fn poisoned(py: Python<'_>) -> PyErr {
    errors::new(
        py,
        "SessionError",
        "the session is unusable: an internal error stopped it in the middle of a call",
    )
}

/// A replay's `advance`: a time, or a duration from now.
fn advance(to: &Bound<'_, PyAny>) -> PyResult<Advance> {
    let place = "`advance`".to_string();
    if let Ok(s) = to.cast::<PyString>() {
        let s = s.to_cow()?;
        if let Ok(t) = s.parse::<Timestamp>() {
            return Ok(Advance::To(t));
        }
        return s.parse::<Duration>().map(Advance::By).map_err(|_| {
            PyValueError::new_err(format!("`advance`: `{s}` is neither a time nor a duration"))
        });
    }
    if to.is_instance_of::<pyo3::types::PyDelta>() {
        return convert::duration(to, &place).map(Advance::By);
    }
    convert::timestamp(to, &place).map(Advance::To)
}

#[pymethods]
impl Session {
    /// The same as ``ruleset.session(...)``.
    #[new]
    #[pyo3(signature = (ruleset, *, lateness = None, clock = "pseudo", late = "reject", max_firings = 100_000))]
    fn py_new(
        ruleset: Py<Ruleset>,
        lateness: Option<&Bound<'_, PyAny>>,
        clock: &str,
        late: &str,
        max_firings: usize,
    ) -> PyResult<Session> {
        let options = SessionOptions::parse(lateness, clock, late, max_firings)?;
        Ok(Session::create(ruleset, options))
    }

    /// The ruleset the session runs.
    #[getter]
    fn ruleset(&self, py: Python<'_>) -> Py<Ruleset> {
        self.ruleset.clone_ref(py)
    }

    /// Inserts a fact or event of type ``type_name`` and returns its id.
    ///
    /// ``fields`` is a dict of field values, a dataclass instance, a
    /// pydantic model, a named tuple or any mapping. Optional fields may be
    /// left out. ``ref`` names the fact for ``modify``, ``retract`` and
    /// ``replay``. Rules do not fire until ``fire`` (or a clock move).
    ///
    /// The type's context providers (``register_provider``) fill their
    /// fields first. Raises ``TypeError``/``ValueError`` for fields that do
    /// not fit the type (the session is unchanged), ``LateEventError`` for
    /// an event older than the watermark, ``CallbackError`` for a provider
    /// that failed and ``FactError`` for a context with no provider (the
    /// insert is refused).
    #[pyo3(signature = (type_name, fields, r#ref = None))]
    fn insert(
        &self,
        py: Python<'_>,
        type_name: &Bound<'_, PyAny>,
        fields: &Bound<'_, PyAny>,
        r#ref: Option<String>,
    ) -> PyResult<u64> {
        let (ty, values) = self.fact_input(type_name, fields, None)?;
        let mut inner = self.lock(py)?;
        let result = inner.session.insert(ty, values);
        let failure = inner.session.host().take_failure();
        if let (Ok(id), Some(name)) = (&result, r#ref) {
            inner.refs.insert(name, *id);
        }
        match (result, failure) {
            (Ok(id), None) => Ok(id.as_u64()),
            // The fact is in: matching went on as if the callable answered
            // None. Its id travels with the error.
            (Ok(id), Some(mut f)) => {
                f.inserted(id.as_u64());
                Err(f.into_err(py))
            }
            // A provider failed: the insert was refused.
            (Err(_), Some(f)) => Err(f.into_err(py)),
            (Err(e), None) => Err(errors::fact_error(py, &e)),
        }
    }

    /// Inserts many facts of one type; returns their ids. Nothing fires.
    ///
    /// Items are converted in chunks, each inserted without the GIL. On an
    /// error, the items before the failing one are inserted, and the
    /// exception's ``index`` is the failing item's position. That item was
    /// refused, unless the error is a ``CallbackError`` with a ``fact_id``:
    /// a host function failed while the item's fact was matched, and the
    /// fact is in (carry on from ``index + 1``). A provider's failure
    /// refuses the item (``fact_id`` is ``None``).
    fn insert_many(
        &self,
        py: Python<'_>,
        type_name: &Bound<'_, PyAny>,
        items: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<u64>> {
        let ty = self.type_of(type_name)?;
        let t = self.rules.network().rules().schema().get(ty);
        let names = &self.ruleset.get().field_names[ty.index()];
        let mut guard = self.lock(py)?;
        let inner: &mut Inner = &mut guard;
        let mut ids = Vec::new();
        let mut chunk: Vec<Vec<Value>> = Vec::with_capacity(CHUNK);
        let flush = |inner: &mut Inner, chunk: Vec<Vec<Value>>, ids: &mut Vec<u64>| {
            py.detach(|| {
                for values in chunk {
                    let result = inner.session.insert(ty, values);
                    let failure = inner.session.host().take_failure();
                    if let Ok(id) = result {
                        ids.push(id.as_u64());
                    }
                    let index = ids.len() - usize::from(result.is_ok());
                    if let Some(mut f) = failure {
                        // A host function failed while the fact matched: it
                        // is in, and its id goes with the error.
                        if let Ok(id) = result {
                            f.inserted(id.as_u64());
                        }
                        return Err((index, Stop::Callback(Box::new(f))));
                    }
                    result.map_err(|e| (index, Stop::Fact(e)))?;
                }
                Ok(())
            })
            .map_err(|(index, stop)| errors::annotate(py, stop.into_py(py), None, Some(index)))
        };
        let mut strings = Strings::default();
        let iter = items.try_iter()?;
        for (i, item) in iter.enumerate() {
            let values = item.and_then(|item| {
                fact_values(&fields_dict(&item, t.name())?, t, names, Some(&mut strings))
            });
            match values {
                Ok(v) => chunk.push(v),
                Err(e) => {
                    // The items before the failing one are inserted.
                    flush(inner, std::mem::take(&mut chunk), &mut ids)?;
                    return Err(errors::annotate(py, e, None, Some(i)));
                }
            }
            if chunk.len() == CHUNK {
                let ready = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                flush(inner, ready, &mut ids)?;
                py.check_signals()?;
            }
        }
        flush(inner, chunk, &mut ids)?;
        Ok(ids)
    }

    /// Changes fields of a fact (by id or ref), keeping its identity: its
    /// matches are made again with the new values. Give the changes as a
    /// dict, as keywords, or both. Rules do not fire until ``fire``.
    #[pyo3(signature = (fact, changes = None, /, **fields))]
    fn modify(
        &self,
        py: Python<'_>,
        fact: &Bound<'_, PyAny>,
        changes: Option<&Bound<'_, PyAny>>,
        fields: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let target = target(fact)?;
        let all = PyDict::new(py);
        if let Some(c) = changes {
            let c = c.cast::<PyDict>().map_err(|_| {
                PyTypeError::new_err(format!("changes are a dict of fields, not {}", show(c)))
            })?;
            all.update(c.as_mapping())?;
        }
        if let Some(f) = fields {
            all.update(f.as_mapping())?;
        }
        let mut inner = self.lock(py)?;
        let changes = self.changes_for(py, &inner, &target, all.as_any())?;
        let id = inner.resolve(&target).map_err(|s| s.into_py(py))?;
        let (result, _) = inner.call(&self.rules, |s| s.modify(id, &changes).map_err(Stop::Fact));
        result.map_err(|s| s.into_py(py))
    }

    /// Removes a fact (by id or ref), with every match it took part in.
    fn retract(&self, py: Python<'_>, fact: &Bound<'_, PyAny>) -> PyResult<()> {
        let target = target(fact)?;
        let mut inner = self.lock(py)?;
        let id = inner.resolve(&target).map_err(|s| s.into_py(py))?;
        let (result, _) = inner.call(&self.rules, |s| s.retract(id).map_err(Stop::Fact));
        result.map_err(|s| s.into_py(py))?;
        if let Target::Ref(name) = target {
            inner.refs.remove(&name);
        }
        Ok(())
    }

    /// Fires the rules whose conditions hold, in conflict-resolution order,
    /// and returns the decisions made (the session no longer holds them).
    /// On the system clock, first moves the clock to the system time.
    fn fire<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let mut guard = self.lock(py)?;
        let inner: &mut Inner = &mut guard;
        let (result, decisions) =
            py.detach(|| inner.call(&self.rules, |s| s.fire().map_err(Stop::Session)));
        Self::finish(py, result.map(drop).map_err(|s| (None, s)), decisions)
    }

    /// Moves the clock to ``when`` (a ``datetime``, milliseconds since the
    /// epoch, or RFC 3339 text), firing on the way, at its own instant,
    /// every timer that falls due (absences, windows, delayed actions).
    /// Returns the decisions made. The clock never goes back: an earlier
    /// time raises ``ClockError``.
    fn advance_to<'py>(
        &self,
        py: Python<'py>,
        when: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let t = convert::timestamp(when, &"the time to advance to".to_string())?;
        let mut guard = self.lock(py)?;
        let inner: &mut Inner = &mut guard;
        let (result, decisions) =
            py.detach(|| inner.call(&self.rules, |s| s.advance_to(t).map_err(Stop::Session)));
        Self::finish(py, result.map(drop).map_err(|s| (None, s)), decisions)
    }

    /// Moves the clock forward by ``delta`` (a ``timedelta``, a literal such
    /// as ``"30m"``, or milliseconds); see ``advance_to``.
    fn advance_by<'py>(
        &self,
        py: Python<'py>,
        delta: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let d = convert::duration(delta, &"the time to advance by".to_string())?;
        let mut guard = self.lock(py)?;
        let inner: &mut Inner = &mut guard;
        let t = inner
            .session
            .now()
            .checked_add(d)
            .filter(|t| *t <= convert::LATEST)
            .ok_or_else(|| PyValueError::new_err(past_the_latest("the time to advance by", d)))?;
        let (result, decisions) =
            py.detach(|| inner.call(&self.rules, |s| s.advance_to(t).map_err(Stop::Session)));
        Self::finish(py, result.map(drop).map_err(|s| (None, s)), decisions)
    }

    /// The session clock, what ``now()`` reads in rules (an aware
    /// ``datetime`` in UTC). A new session's pseudo clock is at the epoch.
    #[getter]
    fn now<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let t = self.lock(py)?.session.now();
        convert::datetime(py, t)
    }

    /// The clock less the lateness: windows close and absences are decided
    /// on it. A lateness reaching back before year 1 reads as the earliest
    /// ``datetime``.
    #[getter]
    fn watermark<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let t = self.lock(py)?.session.watermark();
        convert::datetime(py, t.max(convert::EARLIEST))
    }

    /// Feeds events and returns the decisions made: for each
    /// ``(type_name, fields)``, the clock moves to the event's time (if its
    /// type has a ``time`` field and the time is ahead), the event is
    /// inserted, and the rules fire. With ``retract=True`` each event is
    /// retracted once its rules have fired (a stream of transient events).
    ///
    /// Items are converted in chunks, each run without the GIL. On an error
    /// the items before the failing one took effect; the exception carries
    /// ``index`` and the ``decisions`` made before it. The failing item took
    /// effect as well when the error came once its event was in: a
    /// ``CallbackError`` with a ``fact_id`` (a host function failed while
    /// the event's rules matched or fired, the event's id in ``fact_id``),
    /// an ``ActionError`` or a ``RunLimitError``; carry on from
    /// ``index + 1`` then. A provider's failure refuses the event
    /// (``fact_id`` is ``None``).
    #[pyo3(signature = (events, *, retract = false))]
    fn run<'py>(
        &self,
        py: Python<'py>,
        events: &Bound<'py, PyAny>,
        retract: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        let mut strings = Strings::default();
        self.batch(py, events, false, |_, _, item| {
            let (ty, fields) = item
                .extract::<(Bound<'py, PyAny>, Bound<'py, PyAny>)>()
                .map_err(|_| {
                    PyTypeError::new_err(format!(
                        "an event is a (type_name, fields) pair, not {}",
                        show(item)
                    ))
                })?;
            let (ty, values) = self.fact_input(&ty, &fields, Some(&mut strings))?;
            Ok(Step {
                at: None,
                op: Op::Insert {
                    ty,
                    values,
                    name: None,
                    transient: retract,
                },
            })
        })
    }

    /// Replays operations, as ``nudge replay`` does with JSON lines, and
    /// returns the decisions made. Each operation is a dict:
    ///
    /// - ``{"insert": type, "fields": {...}, "ref": name}``: the clock first
    ///   moves to the event's time, if its type has a ``time`` field;
    /// - ``{"modify": ref_or_id, "fields": {...}}``;
    /// - ``{"retract": ref_or_id}``;
    /// - ``{"advance": time_or_duration}`` (``"2026-11-22T11:00:00Z"``,
    ///   ``"30m"``, a ``datetime`` or a ``timedelta``);
    /// - ``{"audience": name, "members": ids}``, as ``set_audience``;
    /// - ``{"context": name, "key": key, "values": {...}}``: the context
    ///   answers ``values`` for facts whose key is ``key`` (the context is
    ///   served by a table of such rows from then on, replacing a provider);
    /// - ``{"reach": {"user": id, "channel": name, "reachable": bool}}``
    ///   (or ``"opted_out": bool``), as ``set_reachable``/``set_opted_out``;
    /// - ``{"address": channel, "field": "type.field"}``, as
    ///   ``set_channel_address``.
    ///
    /// Any operation may carry ``"at"``, a time to move the clock to first.
    /// An operation has one of the keys above, and only the keys shown for
    /// it: two operations in one dict, a key the operation does not take,
    /// or one it needs left out (``members``, ``key``, ``values``,
    /// ``field``, a ``modify``'s ``fields``, a ``reach``'s ``user``,
    /// ``channel`` and ``reachable`` or ``opted_out``) raise ``ValueError``,
    /// as ``nudge replay`` refuses such lines.
    ///
    /// As ``nudge replay`` does, a replay serves every context that has no
    /// provider with an empty table (which answers nulls), from its first
    /// operation on, until a ``context`` operation or ``register_provider``
    /// says more. A replay that fails before running an operation changes
    /// nothing.
    ///
    /// Rules fire after every operation; the clock never moves back.
    /// Converted in chunks, each run without the GIL; on an error the
    /// operations before the failing one took effect, and the exception
    /// carries ``index`` and the ``decisions`` made before it. A
    /// ``CallbackError`` with a ``fact_id`` means the failing insert's fact
    /// is in, and one from a host function on another operation that the
    /// operation took effect: carry on from ``index + 1``. A provider's
    /// failure refuses the insert it was asked for (``fact_id`` is
    /// ``None``).
    fn replay<'py>(
        &self,
        py: Python<'py>,
        ops: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        self.batch(py, ops, true, |inner, i, item| {
            self.step(py, inner, i, item)
        })
    }

    /// The session's state as bytes: working memory (with the same ids),
    /// the clock, pending activations, delayed actions and counters.
    /// Registered callables, audiences (with the id dictionary),
    /// reachability and refs are not part of it; what the primitives count
    /// (coupons, caps) lives in the ruleset, not in the session.
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let mut guard = self.lock(py)?;
        let inner: &mut Inner = &mut guard;
        let session = &mut inner.session;
        let bytes = py.detach(move || session.snapshot());
        Ok(PyBytes::new(py, &bytes))
    }

    /// A new session restored from ``snapshot()`` bytes over the same
    /// rules. Raises ``SnapshotError`` for bytes that are not a snapshot of
    /// a session over these rules.
    ///
    /// The matches are rebuilt by running the facts through the rules
    /// again, with a host that has no audience, host function or provider:
    /// matches and timers that depend on those are lost. For such rules,
    /// set a session up first (register callables, load audiences, the id
    /// dictionary and reachability) and call ``load_snapshot`` on it.
    #[staticmethod]
    fn restore(py: Python<'_>, ruleset: Py<Ruleset>, data: &[u8]) -> PyResult<Session> {
        let rules = ruleset.get().inner.clone();
        let host = PyHost::new(&rules);
        let net = rules.network().clone();
        let restored = py.detach(|| nudge::Session::restore(net, host, data));
        match restored {
            Ok(session) => Ok(Session::wrap(ruleset, rules, session)),
            Err(e) => Err(errors::snapshot_error(py, &e)),
        }
    }

    /// Replaces this session's state with ``snapshot()`` bytes of a session
    /// over the same rules, keeping its host: registered callables,
    /// audiences and the id dictionary, reachability and addresses. The
    /// matches are rebuilt by running the facts through the rules again,
    /// asking that host, so set it up as the original's was before: the
    /// session then goes on exactly as the original would have. The
    /// snapshot's settings (lateness, clock, ``max_firings``) replace the
    /// session's, and refs are dropped (they named the old facts).
    ///
    /// Raises ``SnapshotError`` for bytes that are not such a snapshot; the
    /// session is then unchanged. If a callable failed while the matches
    /// were rebuilt, the session is restored (the callable answered
    /// ``None`` from then on) and ``CallbackError`` is raised.
    fn load_snapshot(&self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        let mut guard = self.lock(py)?;
        let inner: &mut Inner = &mut guard;
        let rules = &self.rules;
        let restored = py.detach(|| {
            let host = std::mem::replace(inner.session.host_mut(), PyHost::new(rules));
            match nudge::Session::try_restore(rules.network().clone(), host, data) {
                Ok(session) => {
                    inner.session = session;
                    inner.refs.clear();
                    Ok(())
                }
                Err((e, host)) => {
                    *inner.session.host_mut() = host;
                    Err(e)
                }
            }
        });
        // A restore fires nothing: there are no decisions to collect.
        let failure = inner.session.host().take_failure();
        match (restored, failure) {
            (Err(e), _) => Err(errors::snapshot_error(py, &e)),
            (Ok(()), Some(f)) => Err(f.into_err(py)),
            (Ok(()), None) => Ok(()),
        }
    }

    /// The type name and fields of a live fact (by id or ref), or ``None``.
    fn fact<'py>(
        &self,
        py: Python<'py>,
        fact: &Bound<'py, PyAny>,
    ) -> PyResult<Option<(String, Bound<'py, PyDict>)>> {
        let target = target(fact)?;
        let inner = self.lock(py)?;
        let Ok(id) = inner.resolve(&target) else {
            return Ok(None);
        };
        match inner.session.fact(id) {
            Some((ty, values)) => Ok(Some(self.describe(py, ty, values)?)),
            None => Ok(None),
        }
    }

    /// The live facts and events, as ``(id, type_name, fields)``; only those
    /// of type ``type_name`` if given.
    #[pyo3(signature = (type_name = None))]
    fn facts<'py>(
        &self,
        py: Python<'py>,
        type_name: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Vec<(u64, String, Bound<'py, PyDict>)>> {
        let only = type_name.map(|t| self.type_of(t)).transpose()?;
        let inner = self.lock(py)?;
        let count = self.rules.network().rules().schema().types().len();
        let mut out = Vec::new();
        for (id, ty, values) in inner.session.facts() {
            // Aggregate bindings live beside the facts under their own type.
            if ty.index() >= count || only.is_some_and(|o| o != ty) {
                continue;
            }
            let (name, dict) = self.describe(py, ty, values)?;
            out.push((id.as_u64(), name, dict));
        }
        Ok(out)
    }

    /// The number of live facts and events.
    #[getter]
    fn fact_count(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.lock(py)?.session.fact_count())
    }

    /// The work done so far: ``alpha_tests``, ``firings``,
    /// ``late_events``, ``expired_events`` and ``timers``.
    #[getter]
    fn counters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = self.lock(py)?.session.counters();
        let out = PyDict::new(py);
        out.set_item("alpha_tests", c.alpha_tests)?;
        out.set_item("firings", c.firings)?;
        out.set_item("late_events", c.late_events)?;
        out.set_item("expired_events", c.expired_events)?;
        out.set_item("timers", c.timers)?;
        Ok(out)
    }

    /// Provides host function ``name`` (declared in the rules with
    /// ``function``): ``fn`` is called with the arguments as Python values
    /// and answers a value of the declared result type, or ``None`` for no
    /// answer. Until one is registered, the function answers ``None``.
    ///
    /// It is called while rules match and fire (it takes the GIL to run).
    /// If it raises, or answers a value of the wrong type, the engine call
    /// goes on as if every callable answered ``None`` from then on, and
    /// ``CallbackError`` (with the exception as its cause) is raised when
    /// the call returns; what the call did stands. A callable must not use
    /// the session that calls it (it gets a ``SessionError``).
    fn register_function(
        &self,
        py: Python<'_>,
        name: &str,
        r#fn: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        if !r#fn.is_callable() {
            return Err(PyTypeError::new_err(format!(
                "host function `{name}` must be callable, not {}",
                show(r#fn)
            )));
        }
        let mut inner = self.lock(py)?;
        inner
            .session
            .host_mut()
            .set_function(name, r#fn.clone().unbind())
            .map_err(PyValueError::new_err)
    }

    /// Registers the provider of context ``context_name`` (declared in the
    /// rules with ``context NAME for TYPE { fields }``), replacing any:
    /// ``fn`` is called once per inserted fact of each type the context
    /// fills, before the fact is matched, with the fact's fields as a dict
    /// (the context's own fields ``None``), and answers a dict of the
    /// context's fields (optional ones may be left out; ``None`` answers
    /// none). The fact holds the answer: rules match it like any other
    /// field. Until one is registered, inserting a fact of such a type
    /// raises ``FactError``.
    ///
    /// If ``fn`` raises, or answers a field the context does not fill or a
    /// value of the wrong type, the insert is refused (the session is
    /// unchanged) and ``CallbackError`` is raised, with the exception as its
    /// cause, ``kind`` ``"provider"`` and the context in ``callback``. A
    /// provider called for a rule's ``insert`` fails that rule's action
    /// instead, and the error names the rule. A provider must not use the
    /// session that calls it.
    fn register_provider(
        &self,
        py: Python<'_>,
        context_name: &str,
        r#fn: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        if !r#fn.is_callable() {
            return Err(PyTypeError::new_err(format!(
                "the provider of context `{context_name}` must be callable, not {}",
                show(r#fn)
            )));
        }
        let mut inner = self.lock(py)?;
        inner
            .session
            .host_mut()
            .set_provider(context_name, r#fn.clone().unbind())
            .map_err(PyValueError::new_err)
    }

    /// Records whether ``user`` (a ``str`` or an ``int``) can be reached on
    /// ``channel`` (a push token, a WeChat binding): a ``message`` skips
    /// the channels its user cannot be reached on, falling back to the next
    /// channel of its list (the decision's ``details["skipped"]`` says
    /// why), and is suppressed with reason ``"unreachable"`` when none is
    /// left. Everyone is reachable everywhere until told otherwise. An int
    /// ``user`` beyond 128 bits raises ``ValueError``.
    fn set_reachable(
        &self,
        py: Python<'_>,
        user: &Bound<'_, PyAny>,
        channel: &str,
        reachable: bool,
    ) -> PyResult<()> {
        let user = user_id(user, "argument `user` of `set_reachable`")?;
        let mut inner = self.lock(py)?;
        inner
            .session
            .host_mut()
            .set_reachable(&user, channel, reachable);
        Ok(())
    }

    /// Makes field ``field`` of the keyed fact type ``type_name`` the users'
    /// address on ``channel`` (``"profile"``, ``"wechat_openid"`` for
    /// ``"wechat"``): a user whose fact has the field ``None``, or who has
    /// no such fact, cannot be reached on the channel. Raises
    /// ``ValueError`` for a type that is not a fact type with a key, or a
    /// field it does not have.
    fn set_channel_address(
        &self,
        py: Python<'_>,
        channel: &str,
        type_name: &str,
        field: &str,
    ) -> PyResult<()> {
        let mut inner = self.lock(py)?;
        inner
            .session
            .host_mut()
            .set_channel_address(channel, type_name, field)
            .map_err(PyValueError::new_err)
    }

    /// Records whether ``user`` opted out of ``channel``: a ``message``
    /// skips such channels as it skips unreachable ones.
    fn set_opted_out(
        &self,
        py: Python<'_>,
        user: &Bound<'_, PyAny>,
        channel: &str,
        opted_out: bool,
    ) -> PyResult<()> {
        let user = user_id(user, "argument `user` of `set_opted_out`")?;
        let mut inner = self.lock(py)?;
        inner
            .session
            .host_mut()
            .set_opted_out(&user, channel, opted_out);
        Ok(())
    }

    /// Replaces the members of audience ``name`` (one the rules declare
    /// without a definition) with ``ids``, an iterable of user ids (``str``
    /// or ``int``, compared as text: ``42`` is ``"42"``), interning them in
    /// the session's id dictionary (``ids``). Audiences defined from others
    /// follow their parts.
    ///
    /// Membership is read when facts are matched: facts already in working
    /// memory keep the matches they made. Raises ``AudienceError`` for a
    /// name that is not a loaded audience, ``TypeError`` for a single
    /// ``str`` in place of the iterable and ``ValueError`` for an int id
    /// beyond 128 bits.
    fn set_audience(&self, py: Python<'_>, name: &str, ids: &Bound<'_, PyAny>) -> PyResult<()> {
        let ids = member_ids(ids, name)?;
        let mut inner = self.lock(py)?;
        inner
            .session
            .host_mut()
            .set_audience(name, &ids)
            .map_err(|m| audience_error(py, m))
    }

    /// Replaces the members of audience ``name`` (one the rules declare
    /// without a definition) with a bitmap's bytes: dense user indices of
    /// the session's id dictionary (``ids``), not the ids themselves.
    ///
    /// ``format`` is ``"portable"``, the Roaring portable format that
    /// pyroaring's ``BitMap.serialize()`` writes (as do CRoaring, Java's
    /// ``RoaringBitmap`` and roaring-rs), or ``"clickhouse"``, the state of
    /// ``groupBitmap`` over a ``UInt32`` column. ``data`` is ``bytes``,
    /// ``bytearray`` or ``memoryview``; it is read without the GIL.
    ///
    /// Every index must belong to an id of the dictionary (an index beyond
    /// it would make a member of whichever id is interned next): intern the
    /// users' ids first. Raises ``AudienceError`` (a ``ValueError``) naming
    /// the audience for bytes that are not a bitmap in ``format``, for an
    /// index the dictionary has not given, and for a name that is not a
    /// loaded audience; the audience is then unchanged.
    #[pyo3(signature = (name, data, *, format = "portable"))]
    fn set_audience_bytes(
        &self,
        py: Python<'_>,
        name: &str,
        data: &Bound<'_, PyAny>,
        format: &str,
    ) -> PyResult<()> {
        let format = Format::parse(format)?;
        let data = bytes_of(data, name)?;
        let bytes = data.as_bytes();
        let members = py
            .detach(|| format.read(bytes, name))
            .map_err(|m| audience_error(py, m))?;
        let mut inner = self.lock(py)?;
        inner
            .session
            .host_mut()
            .set_audience_set(name, members)
            .map_err(|m| audience_error(py, m))
    }

    /// The members of audience ``name`` (loaded or defined) as a bitmap's
    /// bytes: dense user indices of the session's id dictionary (``ids``).
    ///
    /// ``format`` is ``"portable"`` (read it with pyroaring's
    /// ``BitMap.deserialize``) or ``"clickhouse"`` (a ``groupBitmap``
    /// state of a ``UInt32`` column: up to 32 members as a small set, more
    /// as a bitmap, as ClickHouse writes it). Raises ``AudienceError`` for
    /// a name the rules do not declare.
    #[pyo3(signature = (name, *, format = "portable"))]
    fn audience_bytes<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        format: &str,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let format = Format::parse(format)?;
        let inner = self.lock(py)?;
        let members = inner
            .session
            .host()
            .audience(name)
            .map_err(|m| audience_error(py, m))?;
        let bytes = py.detach(|| format.write(members));
        Ok(PyBytes::new(py, &bytes))
    }

    /// The session's id dictionary: user ids to the dense indices that its
    /// audiences (and their bytes) hold, and back. The session's own, not
    /// a copy; an :class:`IdDictionary`.
    #[getter]
    fn ids(slf: &Bound<'_, Self>) -> PyIdDictionary {
        PyIdDictionary::new(slf.clone().unbind())
    }

    /// The number of members of each audience, loaded or defined.
    #[getter]
    fn audiences(&self, py: Python<'_>) -> PyResult<HashMap<String, u64>> {
        let inner = self.lock(py)?;
        Ok(inner.session.host().audience_sizes().into_iter().collect())
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.ruleset)?;
        // A session busy in a call is skipped: an edge left out only keeps
        // objects alive longer, never frees one in use.
        if let Ok(inner) = self.inner.try_lock() {
            inner.session.host().visit(&visit)?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        if let Ok(mut inner) = self.inner.try_lock() {
            inner.session.host_mut().clear_callables();
        }
    }

    fn __repr__(&self) -> String {
        match self.inner.try_lock() {
            Ok(inner) => {
                let n = inner.session.fact_count();
                let s = if n == 1 { "" } else { "s" };
                format!(
                    "<nudge.Session: {n} fact{s}, clock at {}>",
                    inner.session.now()
                )
            }
            Err(_) => "<nudge.Session (in use)>".to_string(),
        }
    }
}

impl Session {
    fn describe<'py>(
        &self,
        py: Python<'py>,
        ty: TypeId,
        values: &[Value],
    ) -> PyResult<(String, Bound<'py, PyDict>)> {
        let t = self.rules.network().rules().schema().get(ty);
        let dict = PyDict::new(py);
        for (f, v) in t.fields().iter().zip(values) {
            dict.set_item(&*f.name, to_py(py, v)?)?;
        }
        Ok((t.name().to_string(), dict))
    }
}
