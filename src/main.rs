//! The `nudge` command-line tool.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
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

#[derive(Subcommand)]
enum Command {
    /// Parse and type-check rule files (and the files they include).
    Check {
        /// Rule files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
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
    }
}

fn check(files: &[PathBuf]) -> ExitCode {
    let mut sources = nudge::Sources::new();
    match nudge::check_files(&mut sources, files) {
        Ok(ruleset) => {
            let s = ruleset.summary();
            println!(
                "ok: {} rules, {} types, {} declarations in {} files",
                s.rules,
                s.types,
                s.declarations,
                sources.len()
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
