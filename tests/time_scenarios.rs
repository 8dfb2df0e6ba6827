//! The time scenarios of `examples/scenarios/` and the examples of
//! `examples/time/`, replayed from their event files and checked against
//! their expected decisions.
//!
//! An expected file holds one decision per line, `{"time", "rule",
//! "action", "args"}`, worked out from the scenario's text and from
//! `docs/time.md`. Decisions are compared in the order they are made.
//!
//! Scenario `sNN` replays `examples/scenarios/data/sNN.events.jsonl` into
//! `examples/scenarios/sNN_*.nudge` (or into `data/sNN.nudge` when there is
//! one, which includes the scenario and adds to it) and expects
//! `data/sNN.expected.jsonl`. Every example `NAME.nudge` of `examples/time/`
//! replays `NAME.events.jsonl` and expects `NAME.expected.jsonl`, with the
//! lateness its header's `Try:` line gives.
//!
//! Replays run without a host: `split` decisions record no arm and run no
//! branch, and a `transition` changes no state by itself. Where a scenario
//! needs the state, its events insert and modify the machine's fact as the
//! host would after each transition.

use nudge::replay::{LineError, Replayer};
use nudge::{Duration, Ruleset, SessionConfig, Timestamp};
use serde_json::Value as Json;
use std::fmt;
use std::io::BufReader;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One decision, as the expected files write it.
#[derive(Debug, Clone, PartialEq)]
struct Decision {
    time: Timestamp,
    rule: String,
    action: String,
    args: Json,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}  {}  {}  {}",
            self.time, self.rule, self.action, self.args
        )
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
            let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
            keys.sort_unstable();
            if keys != ["action", "args", "rule", "time"] {
                return Err(format!(
                    "keys are {keys:?}, not exactly time, rule, action, args"
                ));
            }
        }
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
        })
    }
}

fn read_expected(path: &Path) -> Vec<Decision> {
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
fn replay(rules: &Path, events: &Path, lateness: Duration) -> (Vec<Decision>, Vec<LineError>) {
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
fn common(a: &[Decision], b: &[Decision]) -> Vec<(usize, usize)> {
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
fn diff(expected: &[Decision], actual: &[Decision]) -> String {
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

fn check(
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

fn scenario(id: &str) {
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

/// S1: the tag follows the count of distinct orders of the last 30 days,
/// up on every order and down as orders leave the window, 30 days and 1 ms
/// after them. A retried order (same id) rewrites the tag with the same
/// count. When the last order leaves the count's window, `o`, which sees the
/// rule's horizon of 30 days and 1 ms, still sees it for that millisecond:
/// the count is 0 then, and the tag is written 0.
#[test]
fn s01_order_count_tag() {
    scenario("s01");
}

/// S2: each paid order starts a 30-day timer that the user's next order
/// cancels; the coupon goes out at the first millisecond after the 30 days. A user whose spend passes 1000 with an order (the host updates
/// the profile just after) is timed from that order.
#[test]
fn s02_high_value_lapsed() {
    scenario("s02");
}

/// S3: at 10:00 local time on the birthday, in each user's zone (a
/// half-hour zone gets it at the first hourly tick after 10:00).
#[test]
fn s03_birthday_coupon() {
    scenario("s03");
}

/// S5: the host applies the transitions (the events insert the lifecycle
/// fact in state "new" after registration, and set it to "active" after
/// the first order). Ordering within 7 days drops the reminder; the user
/// who orders later gets the reminder first.
#[test]
fn s05_new_user_first_order() {
    scenario("s05");
}

/// S6: tips 7 days after a phone order; a refund on day 3 drops them, a
/// refund after they went out changes nothing.
#[test]
fn s06_phone_usage_tips() {
    scenario("s06");
}

/// S7: a day (and 1 ms) after a checkout view with no payment since, even
/// when the user had paid before the view; a payment after the day is too
/// late.
#[test]
fn s07_checkout_no_payment() {
    scenario("s07");
}

/// S8: three purchases within 7 days fire once; three spread over 10 days
/// do not; a third purchase exactly 7 days after the first still counts.
#[test]
fn s08_three_purchases_coupon() {
    scenario("s08");
}

/// S11: the SMS goes out 10 minutes and 1 ms after an unpaid order, as
/// soon as the 10 minutes are over; a payment in time cancels it, a payment
/// after it does not; an order of a user without a profile joins nothing.
#[test]
fn s11_unpaid_order_sms() {
    scenario("s11");
}

/// S14: without a host, `split` is a decision that records no arm, and
/// neither arm's coupon runs. The campaign's limit of one per user per 7
/// days is the host's to apply: every unanswered product view is decided
/// on its own (an order cancels only the views of the 2 hours before it),
/// 2 hours and 1 ms after the view.
#[test]
fn s14_browse_abandon_ab() {
    scenario("s14");
}

/// S15: the host inserts users in state "prospect" and applies each
/// transition to "high_intent". The scenario says "never ordered", but
/// `not order_created(...)` without a window sees the events of the rule's
/// horizon, 30 days and 1 ms: an order older than that does not stop the
/// transition (u3).
#[test]
fn s15_views_to_high_intent() {
    scenario("s15");
}

/// S17: three product views of one category within 30 minutes and no order
/// in those 30 minutes; views spread over categories, or over more than 30
/// minutes, or a recent order, earn nothing.
#[test]
fn s17_category_interest() {
    scenario("s17");
}

/// Lines of `examples/time/` event files that the engine must refuse.
const REFUSED: &[(&str, &[usize])] = &[
    // A payment older than the watermark.
    ("lateness", &[7]),
];

/// The lateness an example's `Try:` line passes (`--lateness 5m`), or 0.
fn lateness_of(rules: &str) -> Duration {
    rules
        .lines()
        .find_map(|l| l.split("--lateness ").nth(1))
        .map(|d| {
            d.split_whitespace()
                .next()
                .unwrap_or_default()
                .parse()
                .unwrap_or_else(|e| panic!("bad lateness `{d}`: {e}"))
        })
        .unwrap_or(Duration::ZERO)
}

fn time_examples() -> Vec<String> {
    let dir = root().join("examples/time");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "nudge"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn time_example(name: &str) {
    let dir = root().join("examples/time");
    let rules = dir.join(format!("{name}.nudge"));
    let text = std::fs::read_to_string(&rules).unwrap();
    let refused = REFUSED
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(&[][..], |(_, l)| l);
    check(
        name,
        &rules,
        &dir.join(format!("{name}.events.jsonl")),
        &dir.join(format!("{name}.expected.jsonl")),
        lateness_of(&text),
        refused,
    );
}

/// One example per time construct: absence, inactivity, sequence, sliding
/// aggregate by key, delayed actions (rechecked and `regardless`), lateness.
#[test]
fn every_time_example() {
    let names = time_examples();
    assert!(names.len() >= 6, "examples/time holds {names:?}");
    for name in &names {
        time_example(name);
    }
}

/// Every example is in canonical layout, as `nudge fmt --check` wants it.
#[test]
fn time_examples_are_formatted() {
    let dir = root().join("examples/time");
    for name in time_examples() {
        let path = dir.join(format!("{name}.nudge"));
        let text = std::fs::read_to_string(&path).unwrap();
        let mut sources = nudge::Sources::new();
        let file = sources.add(path.display().to_string(), text.clone());
        let (module, diags) = nudge::lang::parse_module(file, &text);
        assert!(diags.is_empty(), "{}", sources.render(&diags));
        assert!(
            nudge::lang::format_module(&module, &text) == text,
            "{} is not formatted: run `nudge fmt` on it",
            path.display()
        );
    }
}
