//! The `nudge` command-line tool.

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "nudge",
    version,
    about = "Rules and decisions for marketing automation"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum GraphFormat {
    Dot,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and type-check rule files (and the files they include).
    Check {
        /// Rule files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Show the compiled network: every node, its kind, its test and the
    /// rules that share it.
    Graph {
        /// Rule files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
    /// Feed JSON-lines facts and events into a session and print its
    /// decisions as JSON lines.
    Replay {
        /// Rule files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Operations to replay, one JSON object per line.
        #[arg(long)]
        events: PathBuf,
        /// Operations to apply first (profiles and other facts).
        #[arg(long)]
        facts: Option<PathBuf>,
        /// Print a table of firings per rule and decisions per action
        /// instead of the decisions.
        #[arg(long)]
        summary: bool,
        /// Stop at the first bad line instead of reporting and skipping it.
        #[arg(long)]
        strict: bool,
        /// How late an event may arrive and still count (e.g. `5m`).
        #[arg(long, default_value = "0ms")]
        lateness: nudge_core::Duration,
        /// Run the clock on to this time (RFC 3339) or for this long after
        /// the last line (e.g. `7d`), so that pending timers fire.
        #[arg(long)]
        until: Option<String>,
    },
    /// Print rule files in canonical layout, rewriting them in place.
    Fmt {
        /// Rule files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Change nothing; exit 1 if a file is not formatted.
        #[arg(long)]
        check: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { files } => check(&files),
        Command::Fmt { files, check } => fmt(&files, check),
        Command::Graph { files, format } => graph(&files, format),
        Command::Replay {
            files,
            events,
            facts,
            summary,
            strict,
            lateness,
            until,
        } => replay(
            &files,
            &events,
            facts.as_deref(),
            summary,
            strict,
            lateness,
            until.as_deref(),
        ),
    }
}

enum Until {
    At(nudge_core::Timestamp),
    After(nudge_core::Duration),
}

fn parse_until(s: &str) -> Result<Until, String> {
    if let Ok(t) = s.parse() {
        return Ok(Until::At(t));
    }
    s.parse().map(Until::After).map_err(|_| {
        format!("--until `{s}` is neither an RFC 3339 time nor a duration such as `7d`")
    })
}

fn load(files: &[PathBuf]) -> Option<nudge::Ruleset> {
    match nudge::Ruleset::from_files(files) {
        Ok(r) => Some(r),
        Err(e) => {
            eprint!("{e}");
            if let nudge::Error::Compile(_) = e {
                eprintln!();
            }
            None
        }
    }
}

fn graph(files: &[PathBuf], format: GraphFormat) -> ExitCode {
    let Some(rules) = load(files) else {
        return ExitCode::FAILURE;
    };
    let net = rules.network();
    match format {
        GraphFormat::Dot => print!("{}", net.to_dot()),
        GraphFormat::Json => {
            let g = net.graph();
            let nodes: Vec<_> = g.node_weights().collect();
            let edges: Vec<_> = g
                .edge_indices()
                .filter_map(|e| {
                    let (a, b) = g.edge_endpoints(e)?;
                    Some(serde_json::json!({"from": g[a].id, "to": g[b].id, "kind": g[e]}))
                })
                .collect();
            let stats = net.stats();
            let doc = serde_json::json!({
                "stats": {
                    "rules": stats.rules,
                    "alpha_nodes": stats.alpha_nodes,
                    "alpha_memories": stats.alpha_memories,
                    "beta_nodes": stats.beta_nodes,
                    "shared_nodes": stats.shared_nodes,
                },
                "nodes": nodes,
                "edges": edges,
            });
            match serde_json::to_string_pretty(&doc) {
                Ok(s) => println!("{s}"),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    ExitCode::SUCCESS
}

fn replay(
    files: &[PathBuf],
    events: &Path,
    facts: Option<&Path>,
    summary: bool,
    strict: bool,
    lateness: nudge_core::Duration,
    until: Option<&str>,
) -> ExitCode {
    use std::io::{BufReader, BufWriter, IsTerminal, Write};
    let until = match until.map(parse_until).transpose() {
        Ok(u) => u,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(rules) = load(files) else {
        return ExitCode::FAILURE;
    };
    let config = nudge::SessionConfig {
        lateness,
        ..nudge::SessionConfig::default()
    };
    let mut replayer = nudge::replay::Replayer::with_config(&rules, config);
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let started = std::time::Instant::now();
    let inputs: Vec<&Path> = facts.into_iter().chain([events]).collect();
    for path in inputs {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: cannot read `{}`: {e}", path.display());
                return ExitCode::FAILURE;
            }
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let bar = if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(len);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:40}] {bytes}/{total_bytes} {elapsed}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_message(path.display().to_string());
            Some(bar)
        } else {
            None
        };
        let sink: Option<&mut dyn Write> = if summary { None } else { Some(&mut out) };
        let result = replayer.run(
            &path.display().to_string(),
            BufReader::new(file),
            sink,
            strict,
            |n| {
                if let Some(b) = &bar {
                    b.inc(n);
                }
            },
        );
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        match result {
            Ok(()) => {}
            // Whoever reads the decisions has seen enough (`| head`).
            Err(nudge::replay::ReplayError::Output(e))
                if e.kind() == std::io::ErrorKind::BrokenPipe =>
            {
                return ExitCode::SUCCESS
            }
            Err(e) => {
                let _ = out.flush();
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if let Some(until) = until {
        let t = match until {
            Until::At(t) => t,
            Until::After(d) => replayer
                .session()
                .now()
                .checked_add(d)
                .unwrap_or(replayer.session().now()),
        };
        let sink: Option<&mut dyn Write> = if summary { None } else { Some(&mut out) };
        if let Err(e) = replayer.advance_to(t, sink) {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    let elapsed = started.elapsed();
    let report = replayer.report();
    for e in &report.errors {
        eprintln!("skipped {e}");
    }
    if summary {
        let _ = write!(out, "{}", replayer.summary());
        let _ = writeln!(
            out,
            "
{} facts in memory, {:.2}s, {:.0} lines/s",
            replayer.session().fact_count(),
            elapsed.as_secs_f64(),
            report.lines as f64 / elapsed.as_secs_f64().max(1e-9)
        );
    }
    if let Err(e) = out.flush() {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return ExitCode::SUCCESS;
        }
        eprintln!("error: cannot write decisions: {e}");
        return ExitCode::FAILURE;
    }
    if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "{} bad line{} skipped",
            report.errors.len(),
            if report.errors.len() == 1 { "" } else { "s" }
        );
        ExitCode::SUCCESS
    }
}

fn check(files: &[PathBuf]) -> ExitCode {
    let mut sources = nudge::Sources::new();
    match nudge::check_files(&mut sources, files) {
        Ok(ruleset) => {
            let s = ruleset.summary();
            println!(
                "ok: {}, {}, {} in {}",
                plural(s.rules, "rule"),
                plural(s.types, "type"),
                plural(s.declarations, "declaration"),
                plural(sources.len(), "file")
            );
            ExitCode::SUCCESS
        }
        Err(diags) => {
            eprint!("{}", sources.render(&diags));
            eprintln!(
                "error: {} problem{} found",
                diags.len(),
                if diags.len() == 1 { "" } else { "s" }
            );
            ExitCode::FAILURE
        }
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn fmt(files: &[PathBuf], check_only: bool) -> ExitCode {
    let mut failed = false;
    for path in files {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: cannot read `{}`: {e}", path.display());
                failed = true;
                continue;
            }
        };
        let mut sources = nudge::Sources::new();
        let file = sources.add(path.display().to_string(), text.clone());
        let (module, diags) = nudge::lang::parse_module(file, &text);
        if !diags.is_empty() {
            eprint!("{}", sources.render(&diags));
            eprintln!(
                "error: `{}` was left as it is: fix its syntax first",
                path.display()
            );
            failed = true;
            continue;
        }
        let formatted = nudge::lang::format_module(&module, &text);
        if formatted == text {
            continue;
        }
        if check_only {
            println!("would reformat {}", path.display());
            failed = true;
        } else if let Err(e) = std::fs::write(path, formatted) {
            eprintln!("error: cannot write `{}`: {e}", path.display());
            failed = true;
        } else {
            println!("formatted {}", path.display());
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
