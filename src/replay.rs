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

use crate::{Ruleset, Session, SessionConfig, Value};
use nudge_core::{Duration, FieldId, Timestamp};
use serde_json::{json, Map, Value as Json};
use std::collections::HashMap;
use std::io::{BufRead, Write};

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
    /// Decisions in all.
    pub decisions: u64,
}

/// Feeds JSON lines into a session.
pub struct Replayer<'r> {
    rules: &'r Ruleset,
    session: Session,
    refs: HashMap<String, crate::FactId>,
    report: ReplayReport,
}

impl<'r> Replayer<'r> {
    /// A replayer over a new session of `rules`.
    pub fn new(rules: &'r Ruleset) -> Self {
        Self::with_config(rules, SessionConfig::default())
    }

    /// A replayer whose session has the given settings (lateness...).
    pub fn with_config(rules: &'r Ruleset, config: SessionConfig) -> Self {
        Replayer {
            rules,
            session: rules.session_with(config),
            refs: HashMap::new(),
            report: ReplayReport::default(),
        }
    }

    /// The session.
    pub fn session(&self) -> &Session {
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
        if let Some(at) = obj.get("at") {
            let at = at.as_str().ok_or("`at` is an RFC 3339 time")?;
            let t: Timestamp = at.parse().map_err(|e| format!("`at`: {e}"))?;
            self.clock_to(t)?;
        }
        if let Some(to) = obj.get("advance") {
            let to = to.as_str().ok_or("`advance` is a time or a duration")?;
            let t = match to.parse::<Timestamp>() {
                Ok(t) => t,
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
            Err("a line needs `insert`, `modify`, `retract` or `advance`".to_string())
        }
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
        s
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
