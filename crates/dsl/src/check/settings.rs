//! Reading the settings of `cap`, `coupon`, `experiment`, `campaign` and
//! `machine` blocks: which names are allowed, and what each value means.

use super::names::{suggest, Table};
use crate::ast::{Ident, Literal, Setting, SettingValue, Span, Word};
use crate::diagnostic::{Diagnostic, ErrorKind};
use nudge_core::decl::{CalendarUnit, Limit, Period, Zone};
use nudge_core::{is_known_zone, Duration};
use std::sync::Arc;

/// The settings of one block, checked for unknown and repeated names.
pub(crate) struct Block<'a> {
    what: &'static str,
    name: &'a Ident,
    settings: Vec<&'a Setting>,
    /// Settings that unknown names were taken to mean (`limt` → `limit`).
    meant: Vec<&'static str>,
}

impl<'a> Block<'a> {
    pub fn new(
        what: &'static str,
        name: &'a Ident,
        settings: impl IntoIterator<Item = &'a Setting>,
        allowed: &[&'static str],
        diags: &mut Vec<Diagnostic>,
    ) -> Self {
        let mut kept: Vec<&Setting> = Vec::new();
        let mut meant: Vec<&'static str> = Vec::new();
        for s in settings {
            if !allowed.contains(&s.name.name.as_str()) {
                let mut d = Diagnostic::new(
                    ErrorKind::BadSetting,
                    s.name.span,
                    format!("`{}` is not a setting of a {what}", s.name.name),
                    "unknown setting",
                );
                d = match suggest(&s.name.name, allowed.iter().copied()) {
                    Some(g) => {
                        meant.extend(allowed.iter().copied().find(|a| *a == g));
                        d.help(format!("did you mean `{g}`?"))
                    }
                    None => d.help(format!("a {what} takes {}", list(allowed))),
                };
                diags.push(d);
            } else if let Some(first) = kept.iter().find(|k| k.name.name == s.name.name) {
                diags.push(
                    Diagnostic::new(
                        ErrorKind::BadSetting,
                        s.name.span,
                        format!("`{}` is set twice", s.name.name),
                        "set again here",
                    )
                    .note(first.span, "first set here"),
                );
            } else {
                kept.push(s);
            }
        }
        Block {
            what,
            name,
            settings: kept,
            meant,
        }
    }

    pub fn get(&self, name: &str) -> Option<&'a Setting> {
        self.settings.iter().copied().find(|s| s.name.name == name)
    }

    /// A setting that must be present.
    pub fn required(
        &self,
        name: &str,
        example: &str,
        diags: &mut Vec<Diagnostic>,
    ) -> Option<&'a Setting> {
        let s = self.get(name);
        // A misspelt setting is reported once, as misspelt.
        if s.is_none() && !self.meant.contains(&name) {
            diags.push(
                Diagnostic::new(
                    ErrorKind::BadSetting,
                    self.name.span,
                    format!("{} `{}` has no `{name}`", self.what, self.name.name),
                    format!("needs `{name}`"),
                )
                .help(format!("add `{name}: {example}`")),
            );
        }
        s
    }
}

fn list(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn bad(s: &SettingValue, expected: &str) -> Diagnostic {
    Diagnostic::new(
        ErrorKind::BadSetting,
        s.span,
        format!("expected {expected}"),
        format!("expected {expected}"),
    )
}

fn single(v: &SettingValue) -> Option<&Word> {
    match v.words.as_slice() {
        [w] => Some(w),
        _ => None,
    }
}

pub(crate) fn name(v: &SettingValue, diags: &mut Vec<Diagnostic>) -> Option<Ident> {
    match single(v) {
        Some(Word::Name(i)) => Some(i.clone()),
        _ => {
            diags.push(bad(v, "a name"));
            None
        }
    }
}

pub(crate) fn string(v: &SettingValue, diags: &mut Vec<Diagnostic>) -> Option<String> {
    match single(v) {
        Some(Word::Lit(Literal::Str(s), _)) => Some(s.clone()),
        _ => {
            diags.push(bad(v, "a string in double quotes"));
            None
        }
    }
}

pub(crate) fn count(
    v: &SettingValue,
    min: i64,
    max: i64,
    diags: &mut Vec<Diagnostic>,
) -> Option<i64> {
    match single(v) {
        Some(Word::Lit(Literal::Int(i), _)) if (min..=max).contains(i) => Some(*i),
        _ => {
            diags.push(bad(v, &format!("a whole number from {min} to {max}")));
            None
        }
    }
}

pub(crate) fn amount(v: &SettingValue, diags: &mut Vec<Diagnostic>) -> Option<f64> {
    match single(v) {
        Some(Word::Lit(Literal::Int(i), _)) if *i >= 0 => Some(*i as f64),
        Some(Word::Lit(Literal::Float(f), _)) if *f >= 0.0 => Some(*f),
        _ => {
            diags.push(bad(v, "a number, zero or more"));
            None
        }
    }
}

pub(crate) fn duration(v: &SettingValue, diags: &mut Vec<Diagnostic>) -> Option<Duration> {
    match single(v) {
        Some(Word::Lit(Literal::Duration(d), _)) if d.as_millis() > 0 => Some(*d),
        _ => {
            diags.push(bad(v, "a duration such as `30d`"));
            None
        }
    }
}

/// A percentage, in basis points (1/100 of a percent).
pub(crate) fn basis_points(w: &Word, span: Span, diags: &mut Vec<Diagnostic>) -> Option<u32> {
    match w {
        Word::Percent(p, _) if (0.0..=100.0).contains(p) && (p * 100.0).fract().abs() < 1e-9 => {
            Some((p * 100.0).round() as u32)
        }
        _ => {
            diags.push(Diagnostic::new(
                ErrorKind::BadSetting,
                span,
                "expected a percentage from 0% to 100%, in steps of 0.01%".to_string(),
                "expected a percentage",
            ));
            None
        }
    }
}

/// `user` or an IANA zone name.
pub(crate) fn zone(v: &SettingValue, diags: &mut Vec<Diagnostic>) -> Option<Zone> {
    match single(v) {
        Some(Word::Name(i)) if i.name == "user" => Some(Zone::User),
        Some(Word::Lit(Literal::Str(z), span)) => {
            if is_known_zone(z) {
                Some(Zone::Named(z.as_str().into()))
            } else {
                diags.push(
                    Diagnostic::new(
                        ErrorKind::BadSetting,
                        *span,
                        format!("unknown time zone `{z}`"),
                        "not an IANA time zone",
                    )
                    .help("use a name such as \"Asia/Shanghai\" or \"Europe/Paris\", or `user`"),
                );
                None
            }
        }
        _ => {
            diags.push(bad(v, "`user` or a time zone such as \"Asia/Shanghai\""));
            None
        }
    }
}

/// `N`, or `N per PERIOD`.
pub(crate) fn limit(v: &SettingValue, diags: &mut Vec<Diagnostic>) -> Option<Limit> {
    let expected = "`N per PERIOD`, as in `2 per calendar day`, `5 per 7d` or `1 per lifetime`";
    let (n, rest) = match v.words.split_first() {
        Some((Word::Lit(Literal::Int(n), _), rest)) if *n >= 0 && *n <= u32::MAX as i64 => {
            (*n as u32, rest)
        }
        _ => {
            diags.push(bad(v, expected));
            return None;
        }
    };
    let period = match rest {
        [] => Some(Period::Lifetime),
        [Word::Name(per), period @ ..] if per.name == "per" => parse_period(period),
        _ => None,
    };
    match period {
        Some(period) => Some(Limit { count: n, period }),
        None => {
            diags.push(bad(v, expected));
            None
        }
    }
}

fn parse_period(words: &[Word]) -> Option<Period> {
    match words {
        [Word::Lit(Literal::Duration(d), _)] if d.as_millis() > 0 => Some(Period::Rolling(*d)),
        [Word::Name(r), Word::Lit(Literal::Duration(d), _)]
            if r.name == "rolling" && d.as_millis() > 0 =>
        {
            Some(Period::Rolling(*d))
        }
        [Word::Name(c), Word::Name(unit)] if c.name == "calendar" => {
            CalendarUnit::from_name(&unit.name).map(Period::Calendar)
        }
        [Word::Name(l)] if l.name == "lifetime" => Some(Period::Lifetime),
        _ => None,
    }
}

/// `[a, b]` where each name is declared in `table`.
pub(crate) fn names_in<T>(
    v: &SettingValue,
    table: &Table<T>,
    kind: ErrorKind,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Arc<str>> {
    let items: Vec<&SettingValue> = match single(v) {
        Some(Word::List(items, _)) => items.iter().collect(),
        Some(Word::Name(_)) => vec![v],
        _ => {
            diags.push(bad(v, "a list of names such as `[vip, staff]`"));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for item in items {
        if let Some(n) = name(item, diags) {
            if table.resolve(&n, kind, diags).is_some() {
                out.push(Arc::from(n.name.as_str()));
            }
        }
    }
    out
}

/// Minutes after midnight of `HH:MM`.
pub(crate) fn clock_minutes(text: &str) -> Option<u16> {
    let (h, m) = text.split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && text.len() == 5).then_some(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_minutes_are_strict() {
        assert_eq!(clock_minutes("21:00"), Some(1260));
        assert_eq!(clock_minutes("09:30"), Some(570));
        assert_eq!(clock_minutes("24:00"), None);
        assert_eq!(clock_minutes("9:30"), None);
        assert_eq!(clock_minutes("ab:cd"), None);
    }
}
