//! Diagnostics: what is wrong, where, and how to fix it.

use crate::ast::{FileId, Span};
use codespan_reporting::diagnostic as cs;
use codespan_reporting::files::{Files, SimpleFiles};
use codespan_reporting::term;
use std::fmt;

/// Every kind of mistake the language front end reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The text does not follow the grammar.
    Syntax,
    /// A literal is out of range or malformed (an integer too large, a bad escape).
    BadLiteral,
    /// An included file cannot be read, or includes itself.
    Include,
    /// A name is declared twice.
    Duplicate,
    /// A fact or event type that is not declared.
    UnknownType,
    /// A field that the type does not have.
    UnknownField,
    /// A name that is not bound, declared or built in.
    UnknownName,
    /// A binding name used twice in one rule.
    DuplicateBinding,
    /// Operand or argument types that do not fit.
    TypeMismatch,
    /// An action that is neither built in nor declared.
    UnknownAction,
    /// A missing, unknown or ill-typed action argument.
    BadArgument,
    /// A state that the machine does not have, or a transition it forbids.
    UnknownState,
    /// A declaration setting that is missing, unknown or ill-formed.
    BadSetting,
    /// A time construct used where it cannot mean anything.
    BadTime,
    /// A definition that depends on itself.
    Cycle,
}

impl ErrorKind {
    /// A stable code, for documentation and tests.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::Syntax => "E001",
            ErrorKind::BadLiteral => "E002",
            ErrorKind::Include => "E003",
            ErrorKind::Duplicate => "E004",
            ErrorKind::UnknownType => "E005",
            ErrorKind::UnknownField => "E006",
            ErrorKind::UnknownName => "E007",
            ErrorKind::DuplicateBinding => "E008",
            ErrorKind::TypeMismatch => "E009",
            ErrorKind::UnknownAction => "E010",
            ErrorKind::BadArgument => "E011",
            ErrorKind::UnknownState => "E012",
            ErrorKind::BadSetting => "E013",
            ErrorKind::BadTime => "E014",
            ErrorKind::Cycle => "E015",
        }
    }
}

/// One reported mistake.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// What kind of mistake.
    pub kind: ErrorKind,
    /// One line saying what is wrong.
    pub message: String,
    /// Where: the caret goes under this span.
    pub span: Span,
    /// What the caret says (what was expected).
    pub label: String,
    /// Other places worth showing (the first declaration of a duplicate...).
    pub notes: Vec<(Span, String)>,
    /// A suggested fix.
    pub help: Option<String>,
}

impl Diagnostic {
    /// A diagnostic with a message and a label under `span`.
    pub fn new(
        kind: ErrorKind,
        span: Span,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> Self {
        Diagnostic {
            kind,
            message: message.into(),
            span,
            label: label.into(),
            notes: Vec::new(),
            help: None,
        }
    }

    /// Adds a help line (builder style).
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Points at another place (builder style).
    pub fn note(mut self, span: Span, what: impl Into<String>) -> Self {
        self.notes.push((span, what.into()));
        self
    }
}

/// The source files of a ruleset, for positions and rendering.
#[derive(Default)]
pub struct Sources {
    files: SimpleFiles<String, String>,
    count: usize,
}

impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sources")
            .field("files", &self.count)
            .finish()
    }
}

/// A line and column, both from 1 (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineCol {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
}

impl Sources {
    /// No files yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a file; returns its id.
    /// A byte order mark at the start is dropped: it is not a column.
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        self.count += 1;
        let mut text = text.into();
        if text.starts_with('\u{feff}') {
            text.drain(..'\u{feff}'.len_utf8());
        }
        self.files.add(name.into(), text)
    }

    /// The text of `file`.
    pub fn text(&self, file: FileId) -> &str {
        self.files
            .get(file)
            .map(|f| f.source().as_str())
            .unwrap_or("")
    }

    /// The name of `file`.
    pub fn name(&self, file: FileId) -> &str {
        self.files
            .get(file)
            .map(|f| f.name().as_str())
            .unwrap_or("<unknown>")
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are no files.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Line and column of a byte offset.
    pub fn line_col(&self, file: FileId, offset: usize) -> LineCol {
        match self.files.location(file, offset) {
            Ok(loc) => LineCol {
                line: loc.line_number,
                col: loc.column_number,
            },
            Err(_) => LineCol { line: 1, col: 1 },
        }
    }

    /// `file:line:col` of the start of `span`.
    pub fn position(&self, span: Span) -> String {
        let lc = self.line_col(span.file, span.start);
        format!("{}:{}:{}", self.name(span.file), lc.line, lc.col)
    }

    /// Renders diagnostics as text: the position, the line, a caret under
    /// the culprit, and any help.
    pub fn render(&self, diagnostics: &[Diagnostic]) -> String {
        let config = term::Config::default();
        let mut out = String::new();
        for d in diagnostics {
            let mut labels =
                vec![cs::Label::primary(d.span.file, self.clamp(d.span)).with_message(&d.label)];
            for (span, what) in &d.notes {
                labels.push(cs::Label::secondary(span.file, self.clamp(*span)).with_message(what));
            }
            let mut notes = Vec::new();
            if let Some(h) = &d.help {
                notes.push(format!("help: {h}"));
            }
            let diag = cs::Diagnostic::error()
                .with_code(d.kind.code())
                .with_message(format!("{}: {}", self.position(d.span), d.message))
                .with_labels(labels)
                .with_notes(notes);
            if term::emit_to_string(&mut out, &config, &self.files, &diag).is_err() {
                out.push_str(&format!(
                    "error[{}]: {}: {}\n",
                    d.kind.code(),
                    self.position(d.span),
                    d.message
                ));
            }
        }
        out
    }

    /// Keeps a span inside its file and on character boundaries, so rendering never fails.
    fn clamp(&self, span: Span) -> std::ops::Range<usize> {
        let text = self.text(span.file);
        let fix = |mut i: usize| {
            i = i.min(text.len());
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            i
        };
        let start = fix(span.start);
        start..fix(span.end).max(start)
    }
}
