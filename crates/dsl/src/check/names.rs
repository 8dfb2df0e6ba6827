//! Symbol tables: every declared name, where it was declared, and
//! "did you mean" suggestions for names that are not there.

use crate::ast::{Ident, Span};
use crate::diagnostic::{Diagnostic, ErrorKind};
use std::collections::HashMap;

/// Names of one kind (types, audiences...) with their declaration sites.
#[derive(Debug)]
pub(crate) struct Table<T> {
    what: &'static str,
    entries: Vec<(String, Span, T)>,
    index: HashMap<String, usize>,
}

impl<T> Table<T> {
    pub fn new(what: &'static str) -> Self {
        Table {
            what,
            entries: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// Declares `name`; a second declaration is reported and ignored.
    pub fn declare(
        &mut self,
        name: &Ident,
        value: T,
        diags: &mut Vec<Diagnostic>,
    ) -> Option<usize> {
        if let Some(&i) = self.index.get(&name.name) {
            diags.push(
                Diagnostic::new(
                    ErrorKind::Duplicate,
                    name.span,
                    format!("{} `{}` is declared twice", self.what, name.name),
                    "declared again here",
                )
                .note(self.entries[i].1, "first declared here")
                .help("rename one of them"),
            );
            return None;
        }
        self.index.insert(name.name.clone(), self.entries.len());
        self.entries.push((name.name.clone(), name.span, value));
        Some(self.entries.len() - 1)
    }

    pub fn get(&self, name: &str) -> Option<(usize, &T)> {
        self.index.get(name).map(|&i| (i, &self.entries[i].2))
    }

    pub fn set(&mut self, i: usize, value: T) {
        self.entries[i].2 = value;
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(n, _, _)| n.as_str())
    }

    /// Looks `name` up, reporting an unknown name with a suggestion.
    pub fn resolve(
        &self,
        name: &Ident,
        kind: ErrorKind,
        diags: &mut Vec<Diagnostic>,
    ) -> Option<(usize, &T)> {
        let found = self.get(&name.name);
        if found.is_none() {
            diags.push(unknown(kind, self.what, name, self.names()));
        }
        found
    }
}

/// "unknown X `name`", with the closest known name as a suggestion, or the
/// short list of known names when none is close.
pub(crate) fn unknown<'a>(
    kind: ErrorKind,
    what: &str,
    name: &Ident,
    known: impl IntoIterator<Item = &'a str>,
) -> Diagnostic {
    unknown_with(
        kind,
        format!("unknown {what} `{}`", name.name),
        format!("not a known {what}"),
        name,
        known,
    )
}

/// Like [`unknown`] with a message of the caller's.
pub(crate) fn unknown_with<'a>(
    kind: ErrorKind,
    message: String,
    label: String,
    name: &Ident,
    known: impl IntoIterator<Item = &'a str>,
) -> Diagnostic {
    let known: Vec<&str> = known.into_iter().collect();
    let d = Diagnostic::new(kind, name.span, message, label);
    match suggest(&name.name, known.iter().copied()) {
        Some(s) => d.help(format!("did you mean `{s}`?")),
        None if !known.is_empty() && known.len() <= 8 => d.help(format!(
            "expected one of {}",
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        None => d,
    }
}

/// The known name closest to `name`, if one is close enough to be a typo.
pub(crate) fn suggest<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (strsim::damerau_levenshtein(name, k), k))
        .filter(|(d, k)| *d <= (name.chars().count().max(k.chars().count()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let known = ["amount", "user_id", "category"];
        assert_eq!(suggest("amout", known), Some("amount"));
        assert_eq!(suggest("catgory", known), Some("category"));
        assert_eq!(suggest("zzz", known), None);
        assert_eq!(suggest("usr_id", known), Some("user_id"));
    }
}
