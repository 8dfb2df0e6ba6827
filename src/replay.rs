//! Replay: feed a JSON-lines stream of facts and events into a session and
//! report the decisions.
//!
//! Each line is one operation:
//!
//! ```text
//! {"insert": "order_paid", "fields": {"user_id": "u1", "amount": 120.0}, "ref": "o1"}
//! {"modify": "o1", "fields": {"amount": 80.0}}
//! {"retract": "o1"}
//! ```
//!
//! `ref` names a fact so that later lines can modify or retract it. Rules
//! fire after every line, so decisions come in the order a live system would
//! make them.
//!
//! The session runs on a pseudo clock that the input drives: an event whose
//! type has a `time` field moves the clock to that time (never back); any
//! line may carry `"at": "2026-11-22T10:00:00Z"` to move it first; and
//! `{"advance": "2026-11-22T11:00:00Z"}` or `{"advance": "30m"}` moves it
//! alone. Timers that fall due on the way (absences, windows, delayed
//! actions) fire at their own instant, and each decision carries its time.
//!
//! The session's host can be fed too:
//!
//! ```text
//! {"audience": "vip", "members": ["u1", "u2"]}
//! {"context": "features", "key": "u1", "values": {"uplift_segment": "persuadable"}}
//! {"reach": {"user": "u1", "channel": "wechat", "reachable": false}}
//! {"reach": {"user": "u2", "channel": "sms", "opted_out": true}}
//! {"address": "wechat", "field": "profile.wechat_openid"}
//! ```
//!
//! A line holds one operation, with the keys shown for it (and `at`): a
//! line with two operations, a key its operation does not take, or a key
//! it needs left out (a `modify`'s `fields`, a `reach`'s `reachable` or
//! `opted_out`) is refused.
//!
//! An `audience` line loads the audience's members; a `context` line sets
//! the row a context provider answers for a key (every declared context
//! starts as an empty table, which answers nulls); a `reach` line records
//! whether a user can be reached on a channel, or opted out of it; an
//! `address` line makes a field of a keyed fact the users' address on a
//! channel, so that a null there means the user cannot be reached on it.
//!
//! Each decision is written with what became of it: `status` (`suppressed`,
//! `deferred`, `failed`; absent when carried out), the `reason`, and the
//! `details` the primitives recorded (the coupon issued, the channel used,
//! the cap that stopped a message, the experiment arm).

use crate::campaign::{CampaignHost, ContextFact, ContextTable, Provider};
use crate::{Ruleset, Session, SessionConfig, Status, Value};
use nudge_core::{Duration, FieldId, Timestamp};
use serde_json::{json, Map, Value as Json};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};

/// One problem with one line of input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// The input's name (a file name).
    pub source: String,
    /// Line number, from 1.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.source, self.line, self.message)
    }
}

/// Why a replay stopped.
#[derive(Debug)]
pub enum ReplayError {
    /// A bad line, in strict mode (or unreadable input).
    Line(LineError),
    /// The decisions could not be written.
    Output(std::io::Error),
}

impl std::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplayError::Line(e) => write!(f, "{e}"),
            ReplayError::Output(e) => write!(f, "cannot write decisions: {e}"),
        }
    }
}

/// Counts of a replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayReport {
    /// Lines read.
    pub lines: usize,
    /// Operations applied.
    pub applied: usize,
    /// Lines refused.
    pub errors: Vec<LineError>,
    /// Decisions per action name.
    pub actions: Vec<(String, u64)>,
    /// Decisions not carried out, or not yet, per action, status and
    /// reason (`message suppressed: capped`).
    pub outcomes: Vec<(String, u64)>,
    /// Decisions in all.
    pub decisions: u64,
}

/// Feeds JSON lines into a session.
pub struct Replayer<'r> {
    rules: &'r Ruleset,
    session: Session<CampaignHost>,
    refs: HashMap<String, crate::FactId>,
    contexts: HashMap<String, SharedTable>,
    report: ReplayReport,
}

impl<'r> Replayer<'r> {
    /// A replayer over a new session of `rules`.
    pub fn new(rules: &'r Ruleset) -> Self {
        Self::with_config(rules, SessionConfig::default())
    }

    /// A replayer whose session has the given settings (lateness...).
    pub fn with_config(rules: &'r Ruleset, config: SessionConfig) -> Self {
        let mut session = rules.session_with(config);
        let mut contexts = HashMap::new();
        for t in rules.network().rules().schema().types() {
            for c in t.contexts() {
                if !contexts.contains_key(&*c.name) {
                    let table = SharedTable::default();
                    // The name comes from the schema, so registering succeeds.
                    let _ = session.host_mut().set_provider(&c.name, table.clone());
                    contexts.insert(c.name.to_string(), table);
                }
            }
        }
        Replayer {
            rules,
            session,
            refs: HashMap::new(),
            contexts,
            report: ReplayReport::default(),
        }
    }

    /// The session.
    pub fn session(&self) -> &Session<CampaignHost> {
        &self.session
    }

    /// The counts so far.
    pub fn report(&self) -> &ReplayReport {
        &self.report
    }

    /// Reads every line of `input`, applying each and firing after it;
    /// `out` receives each decision as a JSON line (if given). With `strict`
    /// the first bad line stops the replay with its error.
    pub fn run(
        &mut self,
        source: &str,
        input: impl BufRead,
        mut out: Option<&mut dyn Write>,
        strict: bool,
        mut progress: impl FnMut(u64),
    ) -> Result<(), ReplayError> {
        for (i, line) in input.lines().enumerate() {
            let number = i + 1;
            let err = |message: String| LineError {
                source: source.to_string(),
                line: number,
                message,
            };
            let line = match line {
                Ok(l) => l,
                Err(e) => return Err(ReplayError::Line(err(format!("cannot read: {e}")))),
            };
            progress(line.len() as u64 + 1);
            if line.trim().is_empty() {
                continue;
            }
            self.report.lines += 1;
            match self.apply(&line).and_then(|()| self.fire()) {
                Ok(()) => self.report.applied += 1,
                Err(message) => {
                    let e = err(message);
                    if strict {
                        return Err(ReplayError::Line(e));
                    }
                    self.report.errors.push(e);
                }
            }
            self.drain(number, out.as_mut().map(|w| &mut **w as &mut dyn Write))
                .map_err(ReplayError::Output)?;
        }
        Ok(())
    }

    /// Moves the clock to `t` (if it is ahead), firing the timers due on
    /// the way, and writes their decisions.
    pub fn advance_to(
        &mut self,
        t: Timestamp,
        out: Option<&mut dyn Write>,
    ) -> Result<(), ReplayError> {
        if t > self.session.now() {
            self.session.advance_to(t).map_err(|e| {
                ReplayError::Line(LineError {
                    source: "clock".into(),
                    line: 0,
                    message: e.to_string(),
                })
            })?;
        }
        self.drain(0, out).map_err(ReplayError::Output)
    }

    fn clock_to(&mut self, t: Timestamp) -> Result<(), String> {
        if t > self.session.now() {
            self.session.advance_to(t).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn apply(&mut self, line: &str) -> Result<(), String> {
        let j: Json = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
        let Json::Object(obj) = j else {
            return Err("a line is a JSON object".to_string());
        };
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        operation(&keys).map_err(|e| e.to_string())?;
        if let Some(at) = obj.get("at") {
            let at = at.as_str().ok_or("`at` is an RFC 3339 time")?;
            let t: Timestamp = at.parse().map_err(|e| format!("`at`: {e}"))?;
            self.clock_to(t)?;
        }
        if let Some(to) = obj.get("advance") {
            let to = to.as_str().ok_or("`advance` is a time or a duration")?;
            let t = match to.parse::<Timestamp>() {
                Ok(t) => t,
                // Written as a date: say why it is not a time.
                Err(e) if to.len() > 4 && to.as_bytes()[4] == b'-' => {
                    return Err(format!("`advance`: {e}"));
                }
                Err(_) => {
                    let d: Duration = to.parse().map_err(|_| {
                        format!("`advance`: `{to}` is neither a time nor a duration")
                    })?;
                    self.session
                        .now()
                        .checked_add(d)
                        .ok_or("`advance` goes past the end of time")?
                }
            };
            return self.clock_to(t);
        }
        if let Some(name) = obj.get("audience") {
            let name = name.as_str().ok_or("`audience` names an audience")?;
            let members = obj
                .get("members")
                .and_then(Json::as_array)
                .ok_or("`members` is an array of user ids")?;
            let ids = members
                .iter()
                .map(|m| m.as_str().ok_or("user ids are strings"))
                .collect::<Result<Vec<_>, _>>()?;
            return self
                .session
                .host_mut()
                .load_audience(name, ids)
                .map_err(|e| e.to_string());
        }
        if let Some(name) = obj.get("context") {
            return self.context_row(name, &obj);
        }
        if let Some(channel) = obj.get("address") {
            let channel = channel.as_str().ok_or("`address` names a channel")?;
            let field = obj
                .get("field")
                .and_then(Json::as_str)
                .ok_or("`field` is `type.field`")?;
            let (ty, f) = field.split_once('.').ok_or("`field` is `type.field`")?;
            return self.session.host_mut().set_channel_address(channel, ty, f);
        }
        if let Some(reach) = obj.get("reach") {
            let Json::Object(reach) = reach else {
                return Err(
                    "`reach` is an object with `user`, `channel` and `reachable` or `opted_out`"
                        .to_string(),
                );
            };
            let keys: Vec<&str> = reach.keys().map(String::as_str).collect();
            reach_keys(&keys).map_err(|e| e.to_string())?;
            let user = reach.get("user").and_then(Json::as_str);
            let channel = reach.get("channel").and_then(Json::as_str);
            let (Some(user), Some(channel)) = (user, channel) else {
                return Err("`user` and `channel` of `reach` are strings".to_string());
            };
            let contacts = self.session.host_mut().contacts_mut();
            if let Some(r) = reach.get("reachable") {
                let r = r.as_bool().ok_or("`reachable` is true or false")?;
                contacts.set_reachable(user, channel, r);
            }
            if let Some(o) = reach.get("opted_out") {
                let o = o.as_bool().ok_or("`opted_out` is true or false")?;
                contacts.set_opted_out(user, channel, o);
            }
            return Ok(());
        }
        let fields = || {
            obj.get("fields")
                .cloned()
                .unwrap_or_else(|| Json::Object(Map::new()))
        };
        if let Some(ty) = obj.get("insert") {
            let ty = ty.as_str().ok_or("`insert` names a fact type")?;
            let (t, values) = self
                .rules
                .fact_from_json(ty, &fields())
                .map_err(|e| e.to_string())?;
            // Replaying history: the clock follows the events' own times.
            let schema = self.rules.network().rules().schema();
            if let Some(f) = schema.get(t).time() {
                if let Some(Value::Timestamp(at)) = values.get(f.index()) {
                    self.clock_to(*at)?;
                }
            }
            let id = self.session.insert(t, values).map_err(|e| e.to_string())?;
            if let Some(r) = obj.get("ref") {
                let r = r.as_str().ok_or("`ref` is a string")?;
                self.refs.insert(r.to_string(), id);
            }
            Ok(())
        } else if let Some(r) = obj.get("modify") {
            let id = self.lookup(r)?;
            let (ty, _) = self.session.fact(id).ok_or("the fact was retracted")?;
            let t = self.rules.network().rules().schema().get(ty);
            let Json::Object(changes) = fields() else {
                return Err("`fields` is an object".to_string());
            };
            let mut out: Vec<(FieldId, Value)> = Vec::new();
            for (name, v) in &changes {
                let f = t
                    .field_id(name)
                    .ok_or_else(|| format!("`{}` has no field `{name}`", t.name()))?;
                let def = t.field_def(f);
                let value = match v {
                    Json::Null if def.optional => Value::Null,
                    v => crate::json_value(v, def.ty).map_err(|p| {
                        format!("field `{name}` of `{}` is {}: {p}", t.name(), def.ty)
                    })?,
                };
                out.push((f, value));
            }
            self.session.modify(id, &out).map_err(|e| e.to_string())
        } else if let Some(r) = obj.get("retract") {
            let id = self.lookup(r)?;
            self.session.retract(id).map_err(|e| e.to_string())?;
            if let Some(name) = r.as_str() {
                self.refs.remove(name);
            }
            Ok(())
        } else {
            Err(OperationError::NoOperation.to_string())
        }
    }

    /// Sets a row of a context provider's table, registering the table the
    /// first time the context is named.
    fn context_row(&mut self, name: &Json, obj: &Map<String, Json>) -> Result<(), String> {
        let name = name.as_str().ok_or("`context` names a context")?;
        let key = obj
            .get("key")
            .and_then(Json::as_str)
            .ok_or("`key` is a string")?;
        let Some(Json::Object(values)) = obj.get("values") else {
            return Err("`values` is an object of fields".to_string());
        };
        // The fields' types: from any type the context fills.
        let schema = self.rules.network().rules().schema();
        let mut row = Vec::new();
        for (field, v) in values {
            let def = schema
                .types()
                .iter()
                .filter(|t| t.contexts().iter().any(|c| &*c.name == name))
                .find_map(|t| {
                    let f = t.field_id(field)?;
                    t.contexts()
                        .iter()
                        .any(|c| &*c.name == name && c.fields.contains(&f))
                        .then(|| t.field_def(f).clone())
                })
                .ok_or_else(|| format!("context `{name}` fills no field `{field}`"))?;
            let value = match v {
                Json::Null if def.optional => Value::Null,
                Json::Null => {
                    return Err(format!(
                        "field `{field}` of context `{name}` is {} and required: got null",
                        def.ty
                    ))
                }
                v => crate::json_value(v, def.ty).map_err(|p| {
                    format!("field `{field}` of context `{name}` is {}: {p}", def.ty)
                })?,
            };
            row.push((field.clone(), value));
        }
        if !self.contexts.contains_key(name) {
            let table = SharedTable::default();
            self.session.host_mut().set_provider(name, table.clone())?;
            self.contexts.insert(name.to_string(), table);
        }
        let table = &self.contexts[name];
        table
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set(key, row);
        Ok(())
    }

    fn lookup(&self, r: &Json) -> Result<crate::FactId, String> {
        let name = r
            .as_str()
            .ok_or("a fact is referred to by its `ref` string")?;
        self.refs
            .get(name)
            .copied()
            .ok_or_else(|| format!("no fact has the ref `{name}`"))
    }

    fn fire(&mut self) -> Result<(), String> {
        self.session.fire().map(|_| ()).map_err(|e| e.to_string())
    }

    fn drain(&mut self, line: usize, out: Option<&mut dyn Write>) -> std::io::Result<()> {
        let mut out = out;
        for d in self.session.decisions() {
            self.report.decisions += 1;
            match self
                .report
                .actions
                .iter_mut()
                .find(|(a, _)| a == d.action())
            {
                Some((_, n)) => *n += 1,
                None => self.report.actions.push((d.action().to_string(), 1)),
            }
            let outcome = match d.status() {
                Status::Done => None,
                Status::Suppressed(r) | Status::Failed(r) => {
                    Some(format!("{} {}: {r}", d.action(), d.status().name()))
                }
                Status::Deferred(_) => Some(format!("{} deferred", d.action())),
            };
            if let Some(o) = outcome {
                match self.report.outcomes.iter_mut().find(|(k, _)| *k == o) {
                    Some((_, n)) => *n += 1,
                    None => self.report.outcomes.push((o, 1)),
                }
            }
            if let Some(w) = out.as_deref_mut() {
                let args: Map<String, Json> = d
                    .args()
                    .map(|(n, v)| (n.to_string(), value_json(v)))
                    .collect();
                let mut rec = json!({
                    "seq": d.seq(),
                    "time": d.time().to_string(),
                    "line": line,
                    "rule": d.rule_name(),
                    "action": d.action(),
                    "args": args,
                    "facts": d.facts().iter().map(|f| f.as_u64()).collect::<Vec<_>>(),
                });
                if let Some(b) = d.branch() {
                    rec["branch"] = json!(b);
                }
                match d.status() {
                    Status::Done => {}
                    Status::Suppressed(reason) | Status::Failed(reason) => {
                        rec["status"] = json!(d.status().name());
                        rec["reason"] = json!(&**reason);
                    }
                    Status::Deferred(until) => {
                        rec["status"] = json!("deferred");
                        rec["until"] = json!(until.to_string());
                    }
                }
                let details: Map<String, Json> = d
                    .details()
                    .map(|(n, v)| (n.to_string(), value_json(v)))
                    .collect();
                if !details.is_empty() {
                    rec["details"] = Json::Object(details);
                }
                serde_json::to_writer(&mut *w, &rec)?;
                w.write_all(b"\n")?;
            }
        }
        self.session.clear_decisions();
        Ok(())
    }

    /// A table of firings per rule and decisions per action.
    pub fn summary(&self) -> String {
        let r = &self.report;
        let mut s = format!(
            "{} lines, {} applied, {} refused, {} decisions\n\nfirings per rule\n",
            r.lines,
            r.applied,
            r.errors.len(),
            r.decisions
        );
        let rules = self.rules.network().rules().rules();
        let width = rules.iter().map(|x| x.name.len()).max().unwrap_or(4).max(4);
        let mut by_rule: Vec<(usize, u64)> = self
            .session
            .firings_per_rule()
            .iter()
            .copied()
            .enumerate()
            .collect();
        by_rule.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        for (i, n) in by_rule {
            s.push_str(&format!("  {:<width$}  {n:>10}\n", rules[i].name));
        }
        s.push_str("\ndecisions per action\n");
        let mut actions = r.actions.clone();
        actions.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        for (a, n) in actions {
            s.push_str(&format!("  {a:<width$}  {n:>10}\n"));
        }
        if !r.outcomes.is_empty() {
            s.push_str("\ndecisions not carried out, or not yet\n");
            let mut outcomes = r.outcomes.clone();
            outcomes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let width = outcomes
                .iter()
                .map(|o| o.0.len())
                .max()
                .unwrap_or(0)
                .max(width);
            for (o, n) in outcomes {
                s.push_str(&format!("  {o:<width$}  {n:>10}\n"));
            }
        }
        s
    }
}

/// The operations a line may hold, each with the keys it takes besides its
/// own and `at`, and how many of those (the first ones) it needs.
const OPERATIONS: [(&str, &[&str], usize); 8] = [
    ("insert", &["fields", "ref"], 0),
    ("modify", &["fields"], 1),
    ("retract", &[], 0),
    ("advance", &[], 0),
    ("audience", &["members"], 1),
    ("context", &["key", "values"], 2),
    ("reach", &[], 0),
    ("address", &["field"], 1),
];

/// The keys of a `reach` operation's object.
const REACH: [&str; 4] = ["user", "channel", "reachable", "opted_out"];

/// Why the keys of a line (or of an operation replayed from Python) do not
/// make one complete operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OperationError {
    /// No key names an operation.
    #[error(
        "no operation given: one of `insert`, `modify`, `retract`, `advance`, `audience`, \
         `context`, `reach` or `address` is needed"
    )]
    NoOperation,
    /// Keys name more than one operation.
    #[error("{} are {} operations: give one at a time", listed(.0), .0.len())]
    Several(Vec<&'static str>),
    /// A key the operation does not take.
    #[error("`{operation}` takes no key `{key}` (it takes {})", listed(.takes))]
    Unknown {
        /// The operation.
        operation: &'static str,
        /// The key.
        key: String,
        /// The keys the operation takes.
        takes: Vec<&'static str>,
    },
    /// Keys the operation needs are missing.
    #[error("`{operation}` needs {needs}")]
    Missing {
        /// The operation.
        operation: &'static str,
        /// What it needs, in words (`` `fields` ``).
        needs: String,
    },
}

/// The operation that the keys of a line make: exactly one operation's
/// key, no key that operation does not take (besides `at`), and every key
/// it needs. The Python bindings check replayed operations with it too.
///
/// ```
/// use nudge::replay::{operation, OperationError};
/// assert_eq!(operation(&["insert", "fields", "at"]), Ok("insert"));
/// assert!(matches!(operation(&["insert", "advance"]), Err(OperationError::Several(_))));
/// assert_eq!(
///     operation(&["modify"]).unwrap_err().to_string(),
///     "`modify` needs `fields`"
/// );
/// ```
pub fn operation(keys: &[&str]) -> Result<&'static str, OperationError> {
    let kinds: Vec<&(&str, &[&str], usize)> = OPERATIONS
        .iter()
        .filter(|(kind, ..)| keys.contains(kind))
        .collect();
    let &&(kind, takes, required) = match kinds.as_slice() {
        [one] => one,
        [] => return Err(OperationError::NoOperation),
        many => {
            return Err(OperationError::Several(
                many.iter().map(|(kind, ..)| *kind).collect(),
            ))
        }
    };
    if let Some(other) = keys
        .iter()
        .find(|k| **k != kind && **k != "at" && !takes.contains(k))
    {
        let mut known = vec!["at"];
        known.extend_from_slice(takes);
        return Err(OperationError::Unknown {
            operation: kind,
            key: other.to_string(),
            takes: known,
        });
    }
    match takes[..required].iter().find(|k| !keys.contains(k)) {
        Some(missing) => Err(OperationError::Missing {
            operation: kind,
            needs: format!("`{missing}`"),
        }),
        None => Ok(kind),
    }
}

/// Checks the keys of a `reach` operation's object: `user`, `channel`, and
/// `reachable` or `opted_out` or both, and no other.
pub fn reach_keys(keys: &[&str]) -> Result<(), OperationError> {
    if let Some(other) = keys.iter().find(|k| !REACH.contains(k)) {
        return Err(OperationError::Unknown {
            operation: "reach",
            key: other.to_string(),
            takes: REACH.to_vec(),
        });
    }
    let needs = if !keys.contains(&"user") || !keys.contains(&"channel") {
        "`user` and `channel`"
    } else if !keys.contains(&"reachable") && !keys.contains(&"opted_out") {
        "`reachable` or `opted_out`"
    } else {
        return Ok(());
    };
    Err(OperationError::Missing {
        operation: "reach",
        needs: needs.to_string(),
    })
}

/// Names in words: "`a`, `b` and `c`".
fn listed(names: &[&str]) -> String {
    let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// A value as JSON: timestamps as RFC 3339, durations as literals.
pub fn value_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => json!(b),
        Value::Int(i) => json!(i),
        Value::Float(f) => json!(f),
        Value::Str(s) => json!(&**s),
        Value::Timestamp(t) => json!(t.to_string()),
        Value::Duration(d) => json!(d.to_string()),
        Value::List(items) => Json::Array(items.iter().map(|i| json!(&**i)).collect()),
    }
}

/// A context table the replayer keeps filling while the session reads it.
#[derive(Clone, Default)]
struct SharedTable(Arc<Mutex<ContextTable>>);

impl Provider for SharedTable {
    fn provide(&mut self, fact: &mut ContextFact<'_>) -> Result<(), String> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .provide(fact)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"
event visit { key user_id: string }
context features for visit { level: int  segment: string? }
audience vip
rule vip_visit {
    when v: visit(user_id in audience vip)
    then message(channel: "push", template: "hi", user: v.user_id)
}
"#;

    /// The error of each line of `lines`, replayed one by one (`None` for a
    /// line applied), and the session's clock after them.
    fn errors(lines: &[&str]) -> (Vec<Option<String>>, Timestamp) {
        let rules = Ruleset::from_str("rules.nudge", RULES).expect("rules compile");
        let mut replayer = Replayer::new(&rules);
        let mut found = Vec::new();
        for line in lines {
            let r = replayer.run("events", line.as_bytes(), None, true, |_| {});
            found.push(r.err().map(|e| e.to_string()));
        }
        (found, replayer.session().now())
    }

    #[test]
    fn an_advance_to_a_date_past_the_last_time_says_so() {
        let (found, _) = errors(&[
            r#"{"advance": "9999-12-31T23:59:59Z"}"#,
            r#"{"advance": "soon"}"#,
        ]);
        let first = found[0].as_deref().unwrap_or_default();
        assert!(first.contains("invalid timestamp"), "{first}");
        let second = found[1].as_deref().unwrap_or_default();
        assert!(second.contains("neither a time nor a duration"), "{second}");
    }

    #[test]
    fn a_line_holds_one_operation_with_the_keys_it_takes() {
        let (found, now) = errors(&[
            r#"{"insert": "visit", "fields": {"user_id": "u1"}, "advance": "1h"}"#,
            r#"{"advance": "1h", "fields": {}}"#,
            r#"{"insert": "visit", "fieldz": {"user_id": "u1"}}"#,
            r#"{"retract": "v1", "ref": "v1"}"#,
            r#"{"modify": "v1"}"#,
            r#"{"audience": "vip"}"#,
            r#"{"context": "features", "key": "u1"}"#,
            r#"{"address": "sms"}"#,
            r#"{"launch": "x"}"#,
        ]);
        let expected = [
            "events:1: `insert` and `advance` are 2 operations: give one at a time",
            "events:1: `advance` takes no key `fields` (it takes `at`)",
            "events:1: `insert` takes no key `fieldz` (it takes `at`, `fields` and `ref`)",
            "events:1: `retract` takes no key `ref` (it takes `at`)",
            "events:1: `modify` needs `fields`",
            "events:1: `audience` needs `members`",
            "events:1: `context` needs `values`",
            "events:1: `address` needs `field`",
            "events:1: no operation given: one of `insert`, `modify`, `retract`, `advance`, \
             `audience`, `context`, `reach` or `address` is needed",
        ];
        let expected: Vec<Option<String>> = expected.iter().map(|e| Some(e.to_string())).collect();
        assert_eq!(found, expected);
        assert_eq!(
            now,
            Timestamp::from_millis(0),
            "no refused line moved the clock"
        );
    }

    #[test]
    fn reach_lines_and_context_rows_are_complete() {
        let (found, _) = errors(&[
            r#"{"reach": {"user": "u1", "channel": "sms"}}"#,
            r#"{"reach": {"user": "u1", "channel": "sms", "reachable": false, "opt_out": true}}"#,
            r#"{"reach": "u1"}"#,
            r#"{"context": "features", "key": "u1", "values": {"level": null}}"#,
            r#"{"context": "features", "key": "u1", "values": {"level": 2, "segment": null}}"#,
            r#"{"reach": {"user": "u1", "channel": "sms", "opted_out": true}, "at": "2026-01-01T00:00:00Z"}"#,
        ]);
        assert_eq!(
            found,
            [
                Some("events:1: `reach` needs `reachable` or `opted_out`".to_string()),
                Some(
                    "events:1: `reach` takes no key `opt_out` (it takes `user`, `channel`, \
                     `reachable` and `opted_out`)"
                        .to_string()
                ),
                Some(
                    "events:1: `reach` is an object with `user`, `channel` and `reachable` or \
                     `opted_out`"
                        .to_string()
                ),
                Some(
                    "events:1: field `level` of context `features` is int and required: got null"
                        .to_string()
                ),
                None,
                None,
            ]
        );
    }
}
