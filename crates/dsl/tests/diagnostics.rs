//! The diagnostics corpus: every `testdata/diagnostics/*.nudge` file is
//! checked from disk with `check_files` (so includes resolve relative to the
//! file), and its rendered diagnostics are compared with a reviewed snapshot.
//!
//! A file is named after the error codes it must produce, as in
//! `e009_type_mismatch_string_vs_float.nudge` or
//! `e006_e009_e012_three_mistakes_in_three_rules.nudge`: besides the snapshot,
//! each named code must appear in the output, so a diagnostic of the wrong
//! kind fails even if its snapshot is accepted without reading it.
//!
//! Files under `testdata/diagnostics/include/` are helpers that corpus files
//! include; they are not cases of their own.

use nudge_dsl::{check_files, ErrorKind, Sources};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The repository root, without a trailing separator.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

fn corpus_dir() -> PathBuf {
    repo_root().join("testdata").join("diagnostics")
}

/// Every code `ErrorKind` has; kept in step with the enum by hand.
const ALL_KINDS: [ErrorKind; 14] = [
    ErrorKind::Syntax,
    ErrorKind::BadLiteral,
    ErrorKind::Include,
    ErrorKind::Duplicate,
    ErrorKind::UnknownType,
    ErrorKind::UnknownField,
    ErrorKind::UnknownName,
    ErrorKind::DuplicateBinding,
    ErrorKind::TypeMismatch,
    ErrorKind::UnknownAction,
    ErrorKind::BadArgument,
    ErrorKind::UnknownState,
    ErrorKind::BadSetting,
    ErrorKind::BadTime,
];

/// The codes a corpus file's name promises: every `eNNN` word of its stem.
fn codes_in_name(path: &Path) -> BTreeSet<String> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    stem.split('_')
        .filter(|w| {
            w.len() == 4 && w.starts_with('e') && w[1..].chars().all(|c| c.is_ascii_digit())
        })
        .map(|w| w.to_ascii_uppercase())
        .collect()
}

/// The codes of a rendered report: every `error[ENNN]`.
fn codes_in_report(report: &str) -> BTreeSet<String> {
    report
        .match_indices("error[E")
        .filter_map(|(i, _)| report.get(i + 6..i + 10))
        .map(str::to_string)
        .collect()
}

/// The `.nudge` files of the corpus (not the include helpers), sorted.
fn corpus_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("testdata/diagnostics exists")
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "nudge"))
        .collect();
    files.sort();
    files
}

/// Checks one file from disk and renders its diagnostics with paths relative
/// to the repository, so snapshots do not depend on where it is checked out.
fn render(path: &Path) -> Result<String, String> {
    let mut sources = Sources::new();
    match check_files(&mut sources, &[path]) {
        Ok(ruleset) => Err(format!(
            "{} was accepted ({:?}), but corpus files must have mistakes",
            path.display(),
            ruleset.summary()
        )),
        Err(diags) => {
            if diags.is_empty() {
                return Err(format!("{}: an error with no diagnostics", path.display()));
            }
            let root = format!("{}{}", repo_root().display(), std::path::MAIN_SEPARATOR);
            Ok(sources.render(&diags).replace(&root, ""))
        }
    }
}

#[test]
fn corpus_snapshots() {
    insta::glob!("../../../testdata/diagnostics", "*.nudge", |path| {
        let report = render(path).unwrap_or_else(|e| format!("NOT A DIAGNOSTIC: {e}"));
        insta::assert_snapshot!(report);
    });
}

/// Apart from the snapshots, so a wrong kind is reported even when a
/// snapshot fails or was accepted blindly.
#[test]
fn corpus_reports_the_codes_in_the_file_names() {
    let mut failures: Vec<String> = Vec::new();
    let root = repo_root().display().to_string();
    let files = corpus_files();
    assert!(files.len() >= 14, "the corpus is missing");
    for path in files {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let report = match render(&path) {
            Ok(r) => r,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        let expected = codes_in_name(&path);
        if expected.is_empty() {
            failures.push(format!("{name}: the file name names no error code"));
        }
        let found = codes_in_report(&report);
        let missing: Vec<&String> = expected.difference(&found).collect();
        if !missing.is_empty() {
            failures.push(format!(
                "{name}: expected codes {missing:?} among the reported {found:?}"
            ));
        }
        // Paths are shown relative to the repository, never absolute.
        if !report.contains(" testdata/diagnostics/") || report.contains(&*root) {
            failures.push(format!(
                "{name}: the report does not name files by their repo path"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "corpus failures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_error_kind_has_a_corpus_file() {
    let named: BTreeSet<String> = corpus_files()
        .iter()
        .flat_map(|p| codes_in_name(p))
        .collect();
    let missing: Vec<&str> = ALL_KINDS
        .iter()
        .map(|k| k.code())
        .filter(|c| !named.contains(*c))
        .collect();
    assert!(missing.is_empty(), "no corpus file for {missing:?}");
}

#[test]
fn every_corpus_file_says_what_it_tests() {
    let mut bad = Vec::new();
    for path in corpus_files() {
        let text = std::fs::read_to_string(&path).expect("readable corpus file");
        if !text.starts_with("// Tests: ") {
            bad.push(path.display().to_string());
        }
    }
    assert!(
        bad.is_empty(),
        "corpus files without a leading `// Tests:` comment: {bad:?}"
    );
}

#[test]
fn every_snapshot_has_its_corpus_file() {
    let names: BTreeSet<String> = corpus_files()
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let mut stale = Vec::new();
    for entry in std::fs::read_dir(dir).expect("the snapshots directory exists") {
        let file = entry.expect("readable directory entry").file_name();
        let file = file.to_string_lossy();
        if let Some(rest) = file.strip_prefix("diagnostics__corpus_snapshots@") {
            let source = rest.trim_end_matches(".new").trim_end_matches(".snap");
            if !names.contains(source) {
                stale.push(file.into_owned());
            }
        }
    }
    assert!(
        stale.is_empty(),
        "snapshots whose corpus file is gone: {stale:?}"
    );
}

#[test]
fn the_three_mistakes_are_reported_in_order_with_positions_and_carets() {
    let path = corpus_dir().join("e006_e009_e012_three_mistakes_in_three_rules.nudge");
    let report = render(&path).expect("the file has mistakes");
    let file = "testdata/diagnostics/e006_e009_e012_three_mistakes_in_three_rules.nudge";
    let heads: Vec<&str> = report.lines().filter(|l| l.starts_with("error[")).collect();
    assert_eq!(
        heads,
        [
            format!("error[E006]: {file}:9:23: `order_paid` has no field `amout`"),
            format!("error[E009]: {file}:16:28: cannot compare `tier` (int) with a string"),
            format!("error[E012]: {file}:25:61: unknown state `churned`"),
        ]
    );
    // One caret line per mistake, under the culprit's exact width.
    for caret in [
        "│                       ^^^^^ no such field",
        "│                            ^^^^^^ type mismatch",
        "│                                                             ^^^^^^^ not a known state",
    ] {
        assert!(
            report.contains(caret),
            "missing caret line {caret:?} in\n{report}"
        );
    }
}
