//! The `nudge` command line, run as a user would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn nudge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nudge"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the nudge binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_accepts_the_example_campaign_with_a_summary() {
    let out = nudge(&["check", "examples/campaign/main.nudge"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("ok: "), "{stdout}");
    assert!(
        stdout.contains(" rules, ")
            && stdout.contains(" types, ")
            && stdout.contains(" declarations"),
        "{stdout}"
    );
}

#[test]
fn check_reports_three_mistakes_with_positions_and_carets() {
    let out = nudge(&["check", "testdata/cli/three_mistakes.nudge"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    for position in [
        "three_mistakes.nudge:14:23",
        "three_mistakes.nudge:21:28",
        "three_mistakes.nudge:30:54",
    ] {
        assert!(
            stderr.contains(position),
            "missing {position} in:\n{stderr}"
        );
    }
    assert_eq!(
        stderr.lines().filter(|l| l.contains('^')).count(),
        3,
        "one caret line each:\n{stderr}"
    );
    assert!(stderr.contains("did you mean `amount`?"), "{stderr}");
    assert!(stderr.contains("error: 3 problems found"), "{stderr}");
}

#[test]
fn check_reports_an_unreadable_file() {
    let out = nudge(&["check", "no/such/file.nudge"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read `no/such/file.nudge`"));
}

/// `rules.nudge` holding `content`, in a fresh directory of its own (no
/// other test or process shares it), removed when the directory is dropped.
fn scratch(name: &str, content: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix(&format!("nudge-cli-{name}-"))
        .tempdir()
        .unwrap();
    let path = dir.path().join("rules.nudge");
    std::fs::write(&path, content).unwrap();
    (dir, path)
}

#[test]
fn fmt_check_flags_unformatted_files_and_fmt_fixes_them() {
    let messy = "event e{key user_id:string}\nrule r{when x:e() then message(channel:\"sms\",template:\"t\",user:x.user_id)}\n";
    let (_dir, path) = scratch("fmt", messy);
    let p = path.to_str().unwrap();
    let out = nudge(&["fmt", "--check", p]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("would reformat"));
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        messy,
        "--check changes nothing"
    );
    assert!(nudge(&["fmt", p]).status.success());
    let formatted = std::fs::read_to_string(&path).unwrap();
    assert_ne!(formatted, messy);
    assert!(
        nudge(&["fmt", "--check", p]).status.success(),
        "formatting is idempotent"
    );
    assert!(nudge(&["check", p]).status.success());
}

#[test]
fn fmt_leaves_files_with_syntax_errors_alone() {
    let broken = "rule r { when then }\n";
    let (_dir, path) = scratch("broken", broken);
    let out = nudge(&["fmt", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("fix its syntax first"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), broken);
}

#[test]
fn readme_quick_start_checks_as_written() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let after = readme
        .split("A rule file, `first.nudge`:")
        .nth(1)
        .expect("the quick start is in the README");
    let block = after.split("```").nth(1).expect("a code block follows");
    let (_dir, path) = scratch("quickstart", block.trim_start_matches('\n'));
    let out = nudge(&["check", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "ok: 1 rule, 3 types, 0 declarations in 1 file"
    );
    assert!(
        nudge(&["fmt", "--check", path.to_str().unwrap()])
            .status
            .success(),
        "the quick start is formatted"
    );
}

#[test]
fn graph_json_shows_one_alpha_node_shared_by_two_rules() {
    let rules = "event order_paid { key user_id: string  amount: float }\n\
        rule a { when o: order_paid(amount > 100) then message(channel: \"push\", template: \"a\", user: o.user_id) }\n\
        rule b { when o: order_paid(amount > 100) then message(channel: \"sms\", template: \"b\", user: o.user_id) }\n";
    let (_dir, path) = scratch("graph", rules);
    let out = nudge(&["graph", path.to_str().unwrap(), "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let alpha: Vec<&serde_json::Value> = doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "alpha")
        .collect();
    assert_eq!(alpha.len(), 1, "{doc:#}");
    assert_eq!(alpha[0]["label"], "amount > 100.0");
    assert_eq!(alpha[0]["rules"], serde_json::json!(["a", "b"]));
    assert_eq!(doc["stats"]["alpha_nodes"], 1);
    let dot = nudge(&["graph", path.to_str().unwrap()]);
    assert!(text(&dot.stdout).starts_with("digraph nudge {"));
}

#[test]
fn replay_prints_decisions_and_reports_bad_lines() {
    let rules = "event order_paid { key user_id: string  amount: float }\n\
        rule big { when o: order_paid(amount > 100) then message(channel: \"push\", template: \"thanks\", user: o.user_id) }\n";
    let (_dir, path) = scratch("replay", rules);
    let events = path.with_file_name("events.jsonl");
    std::fs::write(
        &events,
        concat!(
            "{\"insert\": \"order_paid\", \"fields\": {\"user_id\": \"u1\", \"amount\": 150}, \"ref\": \"o1\"}\n",
            "{\"insert\": \"order_paid\", \"fields\": {\"user_id\": \"u2\", \"amount\": \"lots\"}}\n",
            "not json\n",
            "{\"modify\": \"o1\", \"fields\": {\"amount\": 300}}\n",
            "{\"retract\": \"o1\"}\n",
            "{\"retract\": \"o1\"}\n",
        ),
    )
    .unwrap();
    let (p, e) = (path.to_str().unwrap(), events.to_str().unwrap());
    let out = nudge(&["replay", p, "--events", e]);
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "the insert and the modify each fire");
    assert_eq!(
        (lines[0]["line"].as_u64(), lines[1]["line"].as_u64()),
        (Some(1), Some(4))
    );
    assert_eq!(lines[0]["args"]["user"], "u1");
    let stderr = text(&out.stderr);
    for bad in ["events.jsonl:2:", "events.jsonl:3:", "events.jsonl:6:"] {
        assert!(stderr.contains(bad), "{bad} missing in:\n{stderr}");
    }
    assert!(stderr.contains("3 bad lines skipped"), "{stderr}");
    let strict = nudge(&["replay", p, "--events", e, "--strict"]);
    assert_eq!(strict.status.code(), Some(1));
    assert!(
        text(&strict.stderr).contains("events.jsonl:2: field `amount` of `order_paid` is float")
    );
    let summary = nudge(&["replay", p, "--events", e, "--summary"]);
    assert!(
        text(&summary.stdout).contains("6 lines, 3 applied, 3 refused, 2 decisions"),
        "{}",
        text(&summary.stdout)
    );
}

#[test]
fn replay_runs_the_clock_from_event_times_lateness_and_until() {
    let rules = "event order_created { key user_id: string  time at: timestamp  order_id: string }\n\
        event order_paid { key user_id: string  time at: timestamp  order_id: string }\n\
        rule unpaid {\n    when\n        o: order_created()\n        not order_paid(order_id == o.order_id) after o within 10m\n    then\n        message(channel: \"sms\", template: \"waiting\", user: o.user_id)\n}\n";
    let (_dir, path) = scratch("replay-time", rules);
    let events = path.with_file_name("events.jsonl");
    std::fs::write(
        &events,
        concat!(
            "{\"insert\": \"order_created\", \"fields\": {\"user_id\": \"u1\", \"at\": \"2026-11-22T10:00:00Z\", \"order_id\": \"o1\"}}\n",
            "{\"insert\": \"order_created\", \"fields\": {\"user_id\": \"u2\", \"at\": \"2026-11-22T10:01:00Z\", \"order_id\": \"o2\"}}\n",
            "{\"insert\": \"order_created\", \"fields\": {\"user_id\": \"u3\", \"at\": \"2026-11-22T10:15:00Z\", \"order_id\": \"o3\"}}\n",
            "{\"insert\": \"order_paid\", \"fields\": {\"user_id\": \"u2\", \"at\": \"2026-11-22T10:09:00Z\", \"order_id\": \"o2\"}}\n",
        ),
    )
    .unwrap();
    let (p, e) = (path.to_str().unwrap(), events.to_str().unwrap());
    let times = |args: &[&str]| -> (Vec<(String, String)>, String) {
        let out = nudge(args);
        let lines = text(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|d| {
                (
                    d["time"].as_str().unwrap().to_string(),
                    d["args"]["user"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        (lines, text(&out.stderr))
    };
    // Without lateness, o2's payment (10:09) arrives after the clock reached
    // 10:15: it is late, refused, and o2 goes out too.
    let (got, stderr) = times(&["replay", p, "--events", e]);
    assert_eq!(
        got,
        vec![
            ("2026-11-22T10:10:00.001Z".to_string(), "u1".to_string()),
            ("2026-11-22T10:11:00.001Z".to_string(), "u2".to_string()),
        ]
    );
    assert!(
        stderr.contains("events.jsonl:4:") && stderr.contains("late"),
        "{stderr}"
    );
    // With 10 minutes of lateness the payment counts; `--until` lets o3's
    // window run out.
    let (got, stderr) = times(&[
        "replay",
        p,
        "--events",
        e,
        "--lateness",
        "10m",
        "--until",
        "1h",
    ]);
    assert_eq!(
        got,
        vec![
            ("2026-11-22T10:20:00.001Z".to_string(), "u1".to_string()),
            ("2026-11-22T10:35:00.001Z".to_string(), "u3".to_string()),
        ]
    );
    assert!(stderr.is_empty(), "{stderr}");
    let bad = nudge(&["replay", p, "--events", e, "--until", "soon"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("--until `soon`"));
}
