//! Replaying example event files and checking their decisions against
//! expected files, shared by the scenario tests.
//!
//! An expected file holds one decision per line: `{"time", "rule",
//! "action", "args"}`, and, when the primitives said more than "carried
//! out", the `branch`, `status`, `reason`, `until` and `details` the replay
//! prints. Decisions are compared in the order they are made, every key
//! included.

#![allow(dead_code)]

use nudge::campaign::CampaignHost;
use nudge::replay::{LineError, Replayer};
use nudge::{Duration, Ruleset, Session, SessionConfig, Status, Timestamp};
use serde_json::Value as Json;
use std::fmt;
use std::io::BufReader;
use std::path::{Path, PathBuf};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The keys of what became of a decision, besides what the rule asked.
const OUTCOME_KEYS: [&str; 5] = ["branch", "status", "reason", "until", "details"];

/// One decision, as the expected files write it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub time: Timestamp,
    pub rule: String,
    pub action: String,
    pub args: Json,
    /// `branch`, `status`, `reason`, `until` and `details`, those present.
    pub outcome: Json,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}  {}  {}  {}",
            self.time, self.rule, self.action, self.args
        )?;
        match &self.outcome {
            Json::Object(o) if !o.is_empty() => write!(f, "  {}", self.outcome),
            _ => Ok(()),
        }
    }
}

impl Decision {
    /// Reads a decision from a JSON object; `exact` requires the four keys
    /// and no other.
    fn from_json(j: &Json, exact: bool) -> Result<Decision, String> {
        let Json::Object(o) = j else {
            return Err("a decision is a JSON object".into());
        };
        if exact {
            let mut keys: Vec<&str> = o
                .keys()
                .map(String::as_str)
                .filter(|k| !OUTCOME_KEYS.contains(k))
                .collect();
            keys.sort_unstable();
            if keys != ["action", "args", "rule", "time"] {
                return Err(format!(
                    "keys are {keys:?}, not time, rule, action, args and {OUTCOME_KEYS:?}"
                ));
            }
        }
        let outcome: serde_json::Map<String, Json> = o
            .iter()
            .filter(|(k, _)| OUTCOME_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let text = |k: &str| {
            o.get(k)
                .and_then(Json::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("`{k}` is not a string"))
        };
        let time = text("time")?
            .parse::<Timestamp>()
            .map_err(|e| format!("`time`: {e}"))?;
        let args = o.get("args").cloned().unwrap_or(Json::Null);
        if !args.is_object() {
            return Err("`args` is not an object".into());
        }
        Ok(Decision {
            time,
            rule: text("rule")?,
            action: text("action")?,
            args,
            outcome: Json::Object(outcome),
        })
    }
}

pub fn read_expected(path: &Path) -> Vec<Decision> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let j: Json = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1));
            Decision::from_json(&j, true)
                .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}

/// Replays `events` into `rules` and returns the decisions made and the
/// lines refused.
pub fn replay(rules: &Path, events: &Path, lateness: Duration) -> (Vec<Decision>, Vec<LineError>) {
    let ruleset = Ruleset::from_files(&[rules]).unwrap_or_else(|e| panic!("{e}"));
    let config = SessionConfig {
        lateness,
        ..SessionConfig::default()
    };
    let mut replayer = Replayer::with_config(&ruleset, config);
    let file = std::fs::File::open(events)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", events.display()));
    let mut out: Vec<u8> = Vec::new();
    replayer
        .run(
            &events.display().to_string(),
            BufReader::new(file),
            Some(&mut out),
            false,
            |_| {},
        )
        .unwrap_or_else(|e| panic!("{e}"));
    // Timers still pending after the last line are left pending: an event
    // file that needs them ends with an `advance` line.
    let decisions = String::from_utf8(out)
        .expect("decisions are UTF-8")
        .lines()
        .map(|l| {
            let j: Json = serde_json::from_str(l).expect("a decision is JSON");
            Decision::from_json(&j, false).unwrap_or_else(|e| panic!("{e}: {l}"))
        })
        .collect();
    (decisions, replayer.report().errors.clone())
}

/// The longest common subsequence of `a` and `b`, as pairs of indexes.
pub fn common(a: &[Decision], b: &[Decision]) -> Vec<(usize, usize)> {
    let (n, m) = (a.len(), b.len());
    let mut len = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            len[i][j] = if a[i] == b[j] {
                len[i + 1][j + 1] + 1
            } else {
                len[i + 1][j].max(len[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut pairs) = (0, 0, Vec::new());
    while i < n && j < m {
        if a[i] == b[j] {
            pairs.push((i, j));
            i += 1;
            j += 1;
        } else if len[i + 1][j] >= len[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    pairs
}

/// A line diff: `-` expected and not made, `+` made and not expected.
pub fn diff(expected: &[Decision], actual: &[Decision]) -> String {
    let mut s = String::new();
    let (mut i, mut j) = (0, 0);
    let pairs = common(expected, actual);
    for (pi, pj) in pairs.into_iter().chain([(expected.len(), actual.len())]) {
        for e in &expected[i..pi] {
            s.push_str(&format!("- {e}\n"));
        }
        for a in &actual[j..pj] {
            s.push_str(&format!("+ {a}\n"));
        }
        if pi < expected.len() {
            s.push_str(&format!("  {}\n", expected[pi]));
        }
        (i, j) = (pi + 1, pj + 1);
    }
    s
}

pub fn check(
    name: &str,
    rules: &Path,
    events: &Path,
    expected: &Path,
    lateness: Duration,
    refused: &[usize],
) {
    let want = read_expected(expected);
    let (got, errors) = replay(rules, events, lateness);
    let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
    assert_eq!(
        lines,
        refused,
        "{name}: refused lines differ from those expected:\n{}",
        errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The only lines an example may have refused are late events.
    for e in &errors {
        assert!(e.message.contains("late"), "{name}: {e}");
    }
    assert!(
        got == want,
        "{name}: decisions differ from {} (- expected, + made):\n{}",
        expected.display(),
        diff(&want, &got)
    );
}

pub fn scenario(id: &str) {
    let dir = root().join("examples/scenarios");
    let data = dir.join("data");
    let own = data.join(format!("{id}.nudge"));
    let rules = if own.exists() {
        own
    } else {
        let prefix = format!("{id}_");
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.extension().is_some_and(|x| x == "nudge")
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(&prefix))
            })
            .unwrap_or_else(|| panic!("no examples/scenarios/{prefix}*.nudge"))
    };
    check(
        id,
        &rules,
        &data.join(format!("{id}.events.jsonl")),
        &data.join(format!("{id}.expected.jsonl")),
        Duration::ZERO,
        &[],
    );
}

/// A time written in RFC 3339.
pub fn ts(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// What became of each decision the session holds, as `(action, status)`:
/// `done`, the reason of a suppression, `deferred <until>` or
/// `failed <reason>`; the decisions are cleared.
pub fn outcomes(s: &mut Session<CampaignHost>) -> Vec<(String, String)> {
    let out = s
        .decisions()
        .map(|d| {
            let status = match d.status() {
                Status::Done => "done".to_string(),
                Status::Suppressed(r) => r.to_string(),
                Status::Deferred(t) => format!("deferred {t}"),
                Status::Failed(r) => format!("failed {r}"),
            };
            (d.action().to_string(), status)
        })
        .collect();
    s.clear_decisions();
    out
}

/// Inserts a fact of `ty` given as JSON (the clock moved first to its `at`,
/// when it has a later one) and fires; returns the [`outcomes`].
pub fn insert_and_fire(
    r: &Ruleset,
    s: &mut Session<CampaignHost>,
    ty: &str,
    j: Json,
) -> Vec<(String, String)> {
    if let Some(at) = j.get("at").and_then(Json::as_str) {
        let at = ts(at);
        if at > s.now() {
            s.advance_to(at).unwrap();
        }
    }
    let (t, v) = r.fact_from_json(ty, &j).unwrap_or_else(|e| panic!("{e}"));
    s.insert(t, v).unwrap();
    s.fire().unwrap();
    outcomes(s)
}
