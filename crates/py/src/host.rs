//! The host a Python session gives the engine: audiences as membership sets,
//! host functions and branch choosers as Python callables.
//!
//! The engine asks its host synchronously, while it matches and fires, and
//! a host's answer cannot fail: `call` returns a value, `choose` a label.
//! So a callable that raises (or answers with a wrong type) is recorded
//! here, answers `None` (no value, no branch) for the rest of the engine
//! call, and the session raises the recorded error once the engine call has
//! returned. The engine's state stays consistent throughout.

use crate::convert::{show, to_py, to_value};
use crate::decision::Decision;
use crate::errors;
use nudge::decl::{AudienceDecl, AudienceExpr};
use nudge::ir::{Action, Arg, Condition, Expr, FunctionId, Pattern, RuleSet, SetId};
use nudge::{DecisionRef, Host, Network, Value};
use nudge_core::primitives::audience::{Audience, Audiences, IdDictionary, Membership};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};
use std::cell::RefCell;
use std::collections::HashSet;
use std::io::Write;
use std::sync::Arc;

/// User ids for an audience, read from a Python iterable of `str` and
/// `int`. Audiences hold ids as text: the int `42` is the id `"42"`.
pub(crate) fn member_ids(ids: &Bound<'_, PyAny>, audience: &str) -> PyResult<Vec<String>> {
    let what = format!("members of audience `{audience}` are");
    ids.try_iter()?
        .map(|id| user_id(&id?, &what))
        .collect::<PyResult<_>>()
}

/// A user id from a `str` or an `int` (as text: `42` is `"42"`); `what`
/// starts the message of the `TypeError` for anything else.
pub(crate) fn user_id(id: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    if let Ok(s) = id.cast::<PyString>() {
        Ok(s.to_cow()?.into_owned())
    } else if id.is_instance_of::<pyo3::types::PyInt>()
        && !id.is_instance_of::<pyo3::types::PyBool>()
    {
        Ok(id.extract::<i128>()?.to_string())
    } else {
        Err(PyTypeError::new_err(format!(
            "{what} user ids (str or int), not {}",
            show(id)
        )))
    }
}

/// The audiences of a session: those the host loads, and those the rules
/// define from others, kept computed (as `nudge-core` bitmaps over the
/// session's id dictionary, which Python reads and extends through
/// `IdDictionary`).
struct AudienceSets {
    all: Audiences,
    /// Audience names by [`SetId`].
    names: Vec<Arc<str>>,
    /// Names of the audiences the host loads.
    loaded: Vec<Arc<str>>,
    /// Defined audiences, each after the audiences it names.
    defined: Vec<(Arc<str>, AudienceExpr)>,
}

impl AudienceSets {
    fn new(names: &[Arc<str>], decls: &[AudienceDecl]) -> AudienceSets {
        let mut all = Audiences::new();
        let mut loaded = Vec::new();
        let mut pending = Vec::new();
        for d in decls {
            match &d.definition {
                None => {
                    all.insert(d.name.clone(), Audience::new());
                    loaded.push(d.name.clone());
                }
                Some(e) => pending.push((d.name.clone(), e.clone())),
            }
        }
        // Order definitions so each follows those it names (the checker
        // refuses cycles; one left over would stay empty).
        let mut known: HashSet<Arc<str>> = loaded.iter().cloned().collect();
        let mut defined = Vec::new();
        while !pending.is_empty() {
            let before = pending.len();
            pending.retain(|(name, e): &(Arc<str>, AudienceExpr)| {
                if named(e).iter().all(|n| known.contains(*n)) {
                    known.insert(name.clone());
                    defined.push((name.clone(), e.clone()));
                    false
                } else {
                    true
                }
            });
            if pending.len() == before {
                break;
            }
        }
        for (name, _) in &pending {
            all.insert(name.clone(), Audience::new());
        }
        let mut sets = AudienceSets {
            all,
            names: names.to_vec(),
            loaded,
            defined,
        };
        sets.recompute();
        sets
    }

    fn recompute(&mut self) {
        for (name, e) in &self.defined {
            // Every name is loaded or computed before: evaluation cannot fail.
            let a = self.all.evaluate(e).unwrap_or_default();
            self.all.insert(name.clone(), a);
        }
    }

    fn contains(&self, set: SetId, key: &Value) -> bool {
        let Some(name) = self.names.get(set.index()) else {
            return false;
        };
        match key {
            Value::Str(s) => self.all.is_member(name, s),
            Value::Int(i) => {
                let mut buf = [0u8; 20];
                let mut w = &mut buf[..];
                let _ = write!(w, "{i}");
                let len = 20 - w.len();
                std::str::from_utf8(&buf[..len]).is_ok_and(|s| self.all.is_member(name, s))
            }
            _ => false,
        }
    }
}

/// The audience names an expression reads.
fn named(e: &AudienceExpr) -> Vec<&str> {
    let mut out = Vec::new();
    let mut todo = vec![e];
    while let Some(e) = todo.pop() {
        match e {
            AudienceExpr::Named(n) => out.push(&**n),
            AudienceExpr::And(a, b)
            | AudienceExpr::Or(a, b)
            | AudienceExpr::AndNot(a, b)
            | AudienceExpr::Xor(a, b) => {
                todo.push(a);
                todo.push(b);
            }
        }
    }
    out
}

/// A Python callable that failed while the engine ran.
pub(crate) struct Failure(pub(crate) PyErr);

/// The engine's host for a Python session.
pub(crate) struct PyHost {
    net: Arc<Network>,
    functions: Vec<Option<Py<PyAny>>>,
    choosers: Vec<(Arc<str>, Py<PyAny>)>,
    audiences: AudienceSets,
    failure: RefCell<Option<Failure>>,
}

impl PyHost {
    /// A host with empty audiences, no functions and no choosers.
    pub(crate) fn new(net: Arc<Network>, decls: &nudge::decl::Declarations) -> PyHost {
        let rules = net.rules();
        PyHost {
            functions: rules.functions().iter().map(|_| None).collect(),
            choosers: Vec::new(),
            audiences: AudienceSets::new(rules.sets(), &decls.audiences),
            failure: RefCell::new(None),
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

    /// Sets the chooser of the branches of action `action`.
    pub(crate) fn set_chooser(&mut self, action: &str, f: Py<PyAny>) {
        match self.choosers.iter_mut().find(|(a, _)| &**a == action) {
            Some(slot) => slot.1 = f,
            None => self.choosers.push((Arc::from(action), f)),
        }
    }

    /// Replaces the members of audience `name` with user ids, interning
    /// them.
    pub(crate) fn set_audience(&mut self, name: &str, ids: &[String]) -> Result<(), String> {
        self.check_loaded(name)?;
        let sets = &mut self.audiences;
        sets.all
            .insert_ids(name, ids.iter().map(String::as_str))
            .map_err(|e| format!("audience `{name}`: {e}"))?;
        sets.recompute();
        Ok(())
    }

    /// Replaces the members of audience `name` with a set of user indices
    /// of the session's dictionary. Every index must belong to an id: an
    /// index beyond the dictionary would make a member of whichever id is
    /// interned next.
    pub(crate) fn set_audience_set(&mut self, name: &str, members: Audience) -> Result<(), String> {
        self.check_loaded(name)?;
        let sets = &mut self.audiences;
        let len = sets.all.dictionary().len();
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
        sets.all.insert(name, members);
        sets.recompute();
        Ok(())
    }

    /// The members of audience `name`, loaded or defined.
    pub(crate) fn audience(&self, name: &str) -> Result<&Audience, String> {
        let sets = &self.audiences;
        let declared = sets.loaded.iter().any(|n| &**n == name)
            || sets.defined.iter().any(|(n, _)| &**n == name);
        match sets.all.get(name) {
            Some(a) if declared => Ok(a),
            _ => Err(format!(
                "the rules declare no audience `{name}`{}",
                known(
                    sets.loaded
                        .iter()
                        .chain(sets.defined.iter().map(|(n, _)| n))
                        .map(|n| &**n)
                )
            )),
        }
    }

    /// Whether `name` is an audience the host loads; why not otherwise.
    fn check_loaded(&self, name: &str) -> Result<(), String> {
        let sets = &self.audiences;
        if sets.loaded.iter().any(|n| &**n == name) {
            return Ok(());
        }
        let problem = if sets.defined.iter().any(|(n, _)| &**n == name) {
            format!("audience `{name}` is defined from other audiences: set those instead")
        } else {
            format!("the rules declare no audience `{name}`")
        };
        Err(format!(
            "{problem}{}",
            known(sets.loaded.iter().map(|n| &**n))
        ))
    }

    /// The dictionary between user ids and the indices audiences hold.
    pub(crate) fn dictionary(&self) -> &IdDictionary {
        self.audiences.all.dictionary()
    }

    /// The dictionary, to intern new ids.
    pub(crate) fn dictionary_mut(&mut self) -> &mut IdDictionary {
        self.audiences.all.dictionary_mut()
    }

    /// The number of members of each audience, loaded or defined.
    pub(crate) fn audience_sizes(&self) -> Vec<(String, u64)> {
        let sets = &self.audiences;
        let names = sets
            .loaded
            .iter()
            .chain(sets.defined.iter().map(|(n, _)| n));
        names
            .map(|n| (n.to_string(), sets.all.get(n).map_or(0, |a| a.len())))
            .collect()
    }

    /// The Python callables held, for the garbage collector.
    pub(crate) fn callables(&self) -> impl Iterator<Item = &Py<PyAny>> {
        let functions = self.functions.iter().flatten();
        functions.chain(self.choosers.iter().map(|(_, f)| f))
    }

    /// Drops the Python callables (breaking reference cycles through them).
    pub(crate) fn clear_callables(&mut self) {
        self.functions.iter_mut().for_each(|f| *f = None);
        self.choosers.clear();
    }

    /// The failure recorded during the last engine call, if any; clears it.
    pub(crate) fn take_failure(&self) -> Option<Failure> {
        self.failure.borrow_mut().take()
    }

    fn failed(&self) -> bool {
        self.failure.borrow().is_some()
    }

    fn record(&self, err: PyErr) {
        let mut slot = self.failure.borrow_mut();
        if slot.is_none() {
            *slot = Some(Failure(err));
        }
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
        self.audiences.contains(set, key)
    }

    fn call(&self, function: FunctionId, args: &[Value]) -> Value {
        if self.failed() {
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
                let rules = rules_calling(self.net.rules(), function);
                let err = callback_error(
                    py,
                    cause,
                    "function",
                    &sig.name,
                    &format!("host function `{}`", sig.name),
                    rules,
                );
                self.record(err);
                Value::Null
            })
        })
    }

    fn choose(&mut self, decision: DecisionRef<'_>) -> Option<Arc<str>> {
        if self.failed() {
            return None;
        }
        let (_, f) = self
            .choosers
            .iter()
            .find(|(a, _)| &**a == decision.action())?;
        Python::attach(|py| {
            let d = Decision::from_ref(&decision, self.net.rules());
            let answer = (|| {
                let out = f.bind(py).call1((d,))?;
                if out.is_none() {
                    return Ok(None);
                }
                match out.cast::<PyString>() {
                    Ok(s) => Ok(Some(Arc::from(&*s.to_cow()?))),
                    Err(_) => Err(PyTypeError::new_err(format!(
                        "a chooser answers with a branch name (str) or None, not {}",
                        show(&out)
                    ))),
                }
            })();
            answer.unwrap_or_else(|cause| {
                let rule = decision.rule_name().to_string();
                let err = callback_error(
                    py,
                    cause,
                    "chooser",
                    decision.action(),
                    &format!("the chooser of `{}`", decision.action()),
                    vec![rule],
                );
                self.record(err);
                None
            })
        })
    }
}

fn callback_error(
    py: Python<'_>,
    cause: PyErr,
    kind: &str,
    name: &str,
    what: &str,
    rules: Vec<String>,
) -> PyErr {
    let by = match rules.len() {
        0 => String::new(),
        1 => format!(" (for rule `{}`)", rules[0]),
        _ => format!(
            " (for one of the rules {})",
            rules
                .iter()
                .map(|r| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
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
    let err = errors::new(
        py,
        "CallbackError",
        format!("{what}{by} raised {cause_type}: {cause_text}"),
    );
    err.set_cause(py, Some(cause));
    errors::set_attr(py, &err, "callback", name);
    errors::set_attr(py, &err, "kind", kind);
    errors::set_attr(py, &err, "rules", rules);
    err
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
