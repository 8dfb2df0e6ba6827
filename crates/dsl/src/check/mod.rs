//! The checker: loads a ruleset's files (following includes), collects its
//! declarations, and type-checks and lowers every rule into the IR.
//!
//! It never stops at the first mistake: every item and every rule is
//! checked, and all diagnostics are returned together.

mod actions;
mod decls;
mod exprs;
mod names;
mod rules;
mod settings;

use crate::ast::{FileId, Item, Module};
use crate::diagnostic::{Diagnostic, ErrorKind, Sources};
use crate::parser::parse_module;
use names::Table;
use nudge_core::decl::Declarations;
use nudge_rete::ir::RuleSet;
use std::io;
use std::path::{Component, Path, PathBuf};

/// A ruleset that passed every check: the rule model for the engine and the
/// declarations for the marketing primitives.
#[derive(Debug, Clone)]
pub struct CheckedRuleset {
    rules: RuleSet,
    decls: Declarations,
}

/// Counts for a one-line summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Rules.
    pub rules: usize,
    /// Fact and event types (state machines' included).
    pub types: usize,
    /// Other declarations.
    pub declarations: usize,
}

impl CheckedRuleset {
    /// The rule model.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// The declarations of marketing primitives and host extensions.
    pub fn declarations(&self) -> &Declarations {
        &self.decls
    }

    /// The rule model and the declarations, taken apart (the network takes
    /// the rules without a copy).
    pub fn into_parts(self) -> (RuleSet, Declarations) {
        (self.rules, self.decls)
    }

    /// Counts of rules, types and declarations.
    pub fn summary(&self) -> Summary {
        Summary {
            rules: self.rules.rules().len(),
            types: self.rules.schema().types().len(),
            declarations: self.decls.len(),
        }
    }
}

/// Parses and checks the files `roots` (already in `sources`), reading
/// included files through `read`. Every problem found is returned.
pub fn check(
    sources: &mut Sources,
    roots: &[FileId],
    read: &mut dyn FnMut(&Path) -> io::Result<String>,
) -> Result<CheckedRuleset, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let modules = load(sources, roots, read, &mut diags);
    let items: Vec<&Item> = modules.iter().flat_map(|m| &m.items).collect();
    let mut env = decls::Env::build(&items, &mut diags);
    drop(items);
    let mut rules = RuleSet::new(env.schema.clone());
    for name in env.audiences.names() {
        rules.add_set(name);
    }
    for f in &env.decls.functions {
        if let Err(e) = rules.add_function(f.clone()) {
            unreachable!("function names were checked for duplicates: {e}");
        }
    }
    let mut names: Table<()> = Table::new("rule");
    // Rules are taken out of the syntax trees one by one, so each rule's
    // tree is freed once it is lowered: a large ruleset never holds all its
    // trees and all its rule model at once.
    let rules_in_order = modules
        .into_iter()
        .flat_map(|m| m.items)
        .filter_map(|i| match i {
            Item::Rule(r) => Some(r),
            _ => None,
        });
    for r in rules_in_order {
        let r = &r;
        let fresh = names.declare(&r.name, (), &mut diags).is_some();
        let Some(checked) = rules::check_rule(&env, r, &mut diags) else {
            continue;
        };
        if !fresh {
            continue;
        }
        match rules.add_rule(checked.rule) {
            Ok(_) => env.decls.rule_campaigns.push(checked.campaign),
            Err(e) => diags.push(Diagnostic::new(
                ErrorKind::TypeMismatch,
                r.name.span,
                format!("internal check failed: {e}"),
                "this rule",
            )),
        }
    }
    if diags.is_empty() {
        Ok(CheckedRuleset {
            rules,
            decls: env.decls,
        })
    } else {
        Err(without_follow_ons(diags))
    }
}

/// Sorts diagnostics by position and drops those that only repeat a
/// malformed literal's problem (a bad number read as null, then found to be
/// the wrong type).
fn without_follow_ons(mut diags: Vec<Diagnostic>) -> Vec<Diagnostic> {
    diags.sort_by_key(|d| (d.span.file, d.span.start));
    let roots: Vec<crate::ast::Span> = diags
        .iter()
        .filter(|d| d.kind == ErrorKind::BadLiteral)
        .map(|d| d.span)
        .collect();
    diags.retain(|d| {
        d.kind == ErrorKind::BadLiteral
            || !roots
                .iter()
                .any(|r| r.file == d.span.file && d.span.start <= r.start && r.end <= d.span.end)
    });
    diags
}

/// Checks files on disk.
///
/// ```no_run
/// let mut sources = nudge_dsl::Sources::new();
/// match nudge_dsl::check_files(&mut sources, &["rules/main.nudge"]) {
///     Ok(ruleset) => println!("{} rules", ruleset.summary().rules),
///     Err(diags) => eprint!("{}", sources.render(&diags)),
/// }
/// ```
pub fn check_files(
    sources: &mut Sources,
    paths: &[impl AsRef<Path>],
) -> Result<CheckedRuleset, Vec<Diagnostic>> {
    let mut roots = Vec::new();
    let mut diags = Vec::new();
    for p in paths {
        let p = p.as_ref();
        match std::fs::read_to_string(p) {
            Ok(text) => roots.push(sources.add(p.display().to_string(), text)),
            Err(e) => {
                let file = sources.add(p.display().to_string(), String::new());
                diags.push(Diagnostic::new(
                    ErrorKind::Include,
                    crate::ast::Span::new(file, 0, 0),
                    format!("cannot read `{}`: {e}", p.display()),
                    "unreadable",
                ));
            }
        }
    }
    let result = check(sources, &roots, &mut |p| std::fs::read_to_string(p));
    match (result, diags.is_empty()) {
        (Ok(r), true) => Ok(r),
        (Ok(_), false) => Err(diags),
        (Err(mut more), _) => {
            diags.append(&mut more);
            Err(diags)
        }
    }
}

/// Checks rule text held in memory; `name` names it in diagnostics and is
/// the base for relative includes, which are read from disk.
///
/// ```
/// let mut sources = nudge_dsl::Sources::new();
/// let text = r#"
///     event order_paid { key user_id: string  amount: float }
///     rule big_order {
///         when o: order_paid(amount > 100)
///         then message(channel: "push", template: "thanks", user: o.user_id)
///     }
/// "#;
/// let ruleset = nudge_dsl::check_str(&mut sources, "inline.nudge", text).map_err(|d| sources.render(&d))?;
/// assert_eq!(ruleset.summary().rules, 1);
/// Ok::<(), String>(())
/// ```
pub fn check_str(
    sources: &mut Sources,
    name: &str,
    text: &str,
) -> Result<CheckedRuleset, Vec<Diagnostic>> {
    let root = sources.add(name, text);
    check(sources, &[root], &mut |p| std::fs::read_to_string(p))
}

/// Parses every file, following includes; each file is loaded once, so
/// include cycles end by themselves.
fn load(
    sources: &mut Sources,
    roots: &[FileId],
    read: &mut dyn FnMut(&Path) -> io::Result<String>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Module> {
    let mut seen: Vec<PathBuf> = roots
        .iter()
        .map(|&f| normalize(Path::new(sources.name(f))))
        .collect();
    let mut queue: Vec<FileId> = roots.to_vec();
    let mut modules = Vec::new();
    let mut next = 0;
    while next < queue.len() {
        let file = queue[next];
        next += 1;
        let (module, mut parse_diags) = parse_module(file, sources.text(file));
        diags.append(&mut parse_diags);
        let base = Path::new(sources.name(file))
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        for item in &module.items {
            let Item::Include(inc) = item else { continue };
            let path = normalize(&base.join(&inc.path));
            if seen.contains(&path) {
                continue;
            }
            seen.push(path.clone());
            match read(&path) {
                Ok(text) => queue.push(sources.add(path.display().to_string(), text)),
                Err(e) => diags.push(
                    Diagnostic::new(
                        ErrorKind::Include,
                        inc.span,
                        format!("cannot read `{}`: {e}", path.display()),
                        "included here",
                    )
                    .help("include paths are relative to the including file"),
                ),
            }
        }
        modules.push(module);
    }
    modules
}

/// Removes `.` and `a/..` from a path without touching the file system, so
/// one file reached by two spellings is loaded once.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}
