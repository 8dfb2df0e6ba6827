//! Rule text to syntax tree: the pest grammar, item-level error recovery,
//! and the conversion of parse pairs into [`crate::ast`] nodes.

use crate::ast::*;
use crate::diagnostic::{Diagnostic, ErrorKind};
use nudge_core::{Duration, FactKind};
use nudge_rete::ir::{AggFunc, ArithOp, CmpOp};
use pest::iterators::{Pair, Pairs};
use pest::pratt_parser::{Assoc, Op, PrattParser};
use pest::Parser as _;
use std::sync::OnceLock;

#[derive(pest_derive::Parser)]
#[grammar = "grammar.pest"]
struct Grammar;

/// How deeply brackets may nest: deep enough for any real rule, shallow
/// enough that no input can exhaust the stack.
pub const MAX_NESTING: usize = 48;

/// How deep one expression tree may grow through operators.
pub const MAX_EXPR_DEPTH: usize = 256;

/// Top-level keywords: a line starting with one of them (and a name) is where
/// the parser picks up again after a syntax error.
const ITEM_KEYWORDS: [&str; 13] = [
    "include",
    "event",
    "fact",
    "context",
    "audience",
    "machine",
    "cap",
    "coupon",
    "experiment",
    "campaign",
    "action",
    "function",
    "rule",
];

/// Parses one file. Every syntax error that item-level recovery can reach is
/// reported; the items that parsed are returned either way.
pub fn parse_module(file: FileId, text: &str) -> (Module, Vec<Diagnostic>) {
    let mut module = Module::default();
    let mut diags = Vec::new();
    let scan = scan(text);
    module.comments = scan
        .comments
        .iter()
        .map(|&(s, e)| Comment {
            text: text[s..e].to_string(),
            span: Span::new(file, s, e),
        })
        .collect();
    if let Some(at) = scan.unterminated {
        diags.push(
            Diagnostic::new(
                ErrorKind::Syntax,
                Span::new(file, at, at + 2),
                "this comment is never closed",
                "opened here",
            )
            .help("end a block comment with `*/`"),
        );
    }
    let mut pos = 0;
    loop {
        pos = skip_trivia(text, pos, &scan.comments);
        if pos >= text.len() {
            break;
        }
        let next_sync = next_item_start(text, pos);
        let limit = next_sync.unwrap_or(text.len());
        if let Some(&deep) = scan.too_deep.iter().find(|&&d| d >= pos && d < limit) {
            diags.push(Diagnostic::new(
                ErrorKind::Syntax,
                Span::new(file, deep, deep + 1),
                format!("brackets nest more than {MAX_NESTING} deep"),
                "nested too deeply",
            ));
            match next_sync {
                Some(s) => {
                    pos = s;
                    continue;
                }
                None => break,
            }
        }
        match parse_item(&text[pos..]) {
            Ok(mut pairs) => {
                let item_at = pairs.next().expect("item_at always yields itself");
                let item = item_at.into_inner().next().expect("item_at holds one item");
                let end = pos + item.as_span().end();
                let mut cx = Cx {
                    file,
                    base: pos,
                    diags: &mut diags,
                };
                let before = cx.diags.len();
                match cx.item(item) {
                    Some(item) => module.items.push(item),
                    // Never drop an item without saying so.
                    None if diags.len() == before => diags.push(Diagnostic::new(
                        ErrorKind::Syntax,
                        Span::new(file, pos, end),
                        "this item could not be read",
                        "not understood",
                    )),
                    None => {}
                }
                pos = end;
            }
            Err(err) => {
                diags.push(syntax_error(file, text, pos, &err));
                match next_sync {
                    Some(s) => pos = s,
                    None => break,
                }
            }
        }
    }
    (module, diags)
}

/// Parses one item. Tracking what pest expected makes parsing several times
/// slower, so it is switched on only to explain a failure: the failing item
/// is parsed again with tracking on. pest's switch is global, hence the lock;
/// other threads parsing meanwhile only run slower.
fn parse_item(text: &str) -> Result<Pairs<'_, Rule>, pest::error::Error<Rule>> {
    static DETAIL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    match Grammar::parse(Rule::item_at, text) {
        Ok(pairs) => Ok(pairs),
        Err(quick) => {
            let _only_one = DETAIL
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            pest::set_error_detail(true);
            let detailed = Grammar::parse(Rule::item_at, text);
            pest::set_error_detail(false);
            Err(detailed.err().unwrap_or(quick))
        }
    }
}

struct Scan {
    comments: Vec<(usize, usize)>,
    /// Where a block comment starts that never ends.
    unterminated: Option<usize>,
    /// Offsets where bracket nesting first exceeds the limit.
    too_deep: Vec<usize>,
}

/// One pass over the text that finds comments and over-deep nesting, aware
/// of string literals.
fn scan(text: &str) -> Scan {
    let bytes = text.as_bytes();
    let mut out = Scan {
        comments: Vec::new(),
        too_deep: Vec::new(),
        unterminated: None,
    };
    let (mut i, mut depth) = (0, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                let end = text[i..].find('\n').map_or(text.len(), |n| i + n);
                out.comments.push((i, end));
                i = end;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let end = match text[i + 2..].find("*/") {
                    Some(n) => i + 2 + n + 2,
                    None => {
                        out.unterminated = Some(i);
                        text.len()
                    }
                };
                out.comments.push((i, end));
                i = end;
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth == MAX_NESTING + 1 {
                    out.too_deep.push(i);
                }
                i += 1;
            }
            b')' | b']' | b'}' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            _ => i += 1,
        }
    }
    out
}

fn skip_trivia(text: &str, mut pos: usize, comments: &[(usize, usize)]) -> usize {
    loop {
        let rest = &text[pos..];
        let trimmed = rest.trim_start_matches([' ', '\t', '\r', '\n', '\u{feff}']);
        pos += rest.len() - trimmed.len();
        match comments.iter().find(|(s, _)| *s == pos) {
            Some(&(_, end)) => pos = end,
            None => return pos,
        }
    }
}

/// The start of the first line after `pos` that begins with an item keyword
/// followed by a name.
fn next_item_start(text: &str, pos: usize) -> Option<usize> {
    let mut line_start = text[pos..].find('\n').map(|n| pos + n + 1)?;
    loop {
        let line = &text[line_start..];
        let trimmed = line.trim_start_matches([' ', '\t']);
        let indent = line.len() - trimmed.len();
        let starts_item = ITEM_KEYWORDS.iter().any(|k| {
            trimmed.strip_prefix(k).is_some_and(|after| {
                let after_ws = after.trim_start_matches([' ', '\t']);
                let named = after_ws.len() < after.len()
                    && after_ws
                        .starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || c == '"');
                // `context` is a common name: only `context NAME for` starts an item.
                named && (*k != "context" || names_then_for(after_ws))
            })
        });
        if starts_item {
            return Some(line_start + indent);
        }
        line_start += line.find('\n')? + 1;
    }
}

/// Whether `text` starts with a name, blanks and the word `for`.
fn names_then_for(text: &str) -> bool {
    let name_len = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    let after = &text[name_len..];
    let after_ws = after.trim_start_matches([' ', '\t']);
    name_len > 0
        && after_ws.len() < after.len()
        && after_ws
            .strip_prefix("for")
            .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
}

/// A human name for every grammar rule, for "expected ..." messages.
fn describe(rule: Rule) -> &'static str {
    match rule {
        Rule::EOI => "end of file",
        Rule::WHITESPACE | Rule::COMMENT | Rule::line_comment | Rule::block_comment => "a comment",
        Rule::file | Rule::item_at | Rule::item => "a declaration or rule",
        Rule::ident_char | Rule::ident | Rule::setting_ident => "a name",
        Rule::keyword => "a keyword",
        Rule::kw_and | Rule::and_op => "`and`",
        Rule::kw_or | Rule::or_op => "`or`",
        Rule::kw_not | Rule::not_op => "`not`",
        Rule::kw_in | Rule::in_op => "`in`",
        Rule::kw_xor => "`xor`",
        Rule::kw_exists => "`exists`",
        Rule::kw_when => "`when`",
        Rule::kw_then => "`then`",
        Rule::kw_after => "`after`",
        Rule::kw_before | Rule::before_q => "`before`",
        Rule::kw_within | Rule::within_q => "`within`",
        Rule::kw_by | Rule::agg_by => "`by`",
        Rule::kw_audience => "`audience`",
        Rule::kw_include | Rule::include_decl => "`include`",
        Rule::kw_machine | Rule::machine_decl => "`machine`",
        Rule::kw_action | Rule::action_decl => "`action`",
        Rule::kw_function | Rule::function_decl => "`function`",
        Rule::kw_rule | Rule::rule_decl => "`rule`",
        Rule::kw_salience | Rule::salience => "`salience`",
        Rule::kw_group | Rule::group => "`group`",
        Rule::kw_campaign | Rule::campaign_attr => "`campaign`",
        Rule::kw_insert | Rule::insert => "`insert`",
        Rule::kw_modify | Rule::modify => "`modify`",
        Rule::kw_retract | Rule::retract => "`retract`",
        Rule::kw_context | Rule::context_decl => "`context`",
        Rule::kw_for => "`for`",
        Rule::regardless => "`regardless`",
        Rule::string | Rule::string_inner | Rule::escape => "a string",
        Rule::duration => "a duration such as `10m`",
        Rule::percent => "a percentage",
        Rule::float => "a number",
        Rule::int | Rule::signed_int => "an integer",
        Rule::boolean => "`true` or `false`",
        Rule::null => "`null`",
        Rule::type_decl | Rule::type_kind => "`event` or `fact`",
        Rule::field_decl => "a field such as `amount: float`",
        Rule::field_role => "`key` or `time`",
        Rule::type_ref | Rule::list_type => "a type",
        Rule::optional_mark => "`?`",
        Rule::audience_decl => "`audience`",
        Rule::audience_expr | Rule::audience_term => "an audience",
        Rule::audience_op | Rule::and_not => "`and`, `or`, `and not` or `xor`",
        Rule::transition_decl => "a transition such as `new -> active`",
        Rule::settings_decl | Rule::settings_kind => "a declaration",
        Rule::setting => "a setting such as `limit: 2 per calendar day`",
        Rule::setting_value | Rule::setting_word => "a value",
        Rule::setting_list => "a list",
        Rule::setting_map | Rule::map_entry => "`{ name: value }`",
        Rule::param_decl => "a parameter such as `user: string`",
        Rule::no_loop => "`no-loop`",
        Rule::condition | Rule::pattern_ce | Rule::test_ce => "a condition",
        Rule::binding => "a binding such as `o:`",
        Rule::pattern => "a pattern such as `order_paid(amount > 100)`",
        Rule::not_ce => "`not`",
        Rule::exists_ce => "`exists`",
        Rule::qualifier | Rule::after_q => "`after`, `before` or `within`",
        Rule::aggregate_ce | Rule::agg_fn => "an aggregate such as `count(...)`",
        Rule::agg_having | Rule::agg_cmp => "a comparison",
        Rule::expr | Rule::prefix | Rule::primary | Rule::neg => "an expression",
        Rule::postfix | Rule::in_audience | Rule::not_in_audience => "`in audience`",
        Rule::infix_op | Rule::cmp_op => "an operator",
        Rule::eq => "`==`",
        Rule::ne => "`!=`",
        Rule::le => "`<=`",
        Rule::ge => "`>=`",
        Rule::lt => "`<`",
        Rule::gt => "`>`",
        Rule::not_in => "`not in`",
        Rule::contains => "`contains`",
        Rule::starts_with => "`starts_with`",
        Rule::ends_with => "`ends_with`",
        Rule::add => "`+`",
        Rule::sub => "`-`",
        Rule::mul => "`*`",
        Rule::div => "`/`",
        Rule::rem => "`%`",
        Rule::list => "a list",
        Rule::call => "a call",
        Rule::path => "a name",
        Rule::action | Rule::immediate | Rule::call_action | Rule::delayed => "an action",
        Rule::named_args | Rule::named_arg => "an argument such as `user: o.user_id`",
        Rule::branches | Rule::branch => "a branch such as `a => action(...)`",
        Rule::action_block => "a block of actions",
        Rule::literal => "a literal",
        Rule::machine_entry => "a transition or setting",
        Rule::rule_attr => "`salience`, `group`, `no-loop` or `campaign`",
    }
}

fn syntax_error(
    file: FileId,
    text: &str,
    base: usize,
    err: &pest::error::Error<Rule>,
) -> Diagnostic {
    use pest::error::{ErrorVariant, InputLocation};
    let at = base
        + match err.location {
            InputLocation::Pos(p) => p,
            InputLocation::Span((s, _)) => s,
        };
    let found = found_token(text, at);
    if let Some(d) = string_trouble(file, text, base, at) {
        return d;
    }
    let mut expected: Vec<String> = match &err.variant {
        ErrorVariant::ParsingError { positives, .. } => {
            positives.iter().map(|r| describe(*r).to_string()).collect()
        }
        ErrorVariant::CustomError { .. } => Vec::new(),
    };
    // pest names rules, not the punctuation a rule was waiting for: add it.
    if let Some(attempts) = err.parse_attempts() {
        for token in attempts.expected_tokens() {
            let token = token.to_string();
            if !token.is_empty()
                && !token.contains("..")
                && token.chars().all(|c| c.is_ascii_punctuation())
            {
                expected.push(format!("`{token}`"));
            }
        }
    }
    expected.retain(|e| !matches!(e.as_str(), "a comment" | "`/*`" | "`//`" | "`_`"));
    let mut seen = Vec::new();
    expected.retain(|e| {
        let new = !seen.contains(e);
        seen.push(e.clone());
        new
    });
    let is_operator = |e: &String| OPERATORS.contains(&e.as_str());
    if expected.iter().filter(|e| is_operator(e)).count() >= 4 {
        let first = expected.iter().position(is_operator).unwrap_or(0);
        expected.retain(|e| !is_operator(e));
        expected.insert(first.min(expected.len()), "an operator".to_string());
    }
    let expected_text = match expected.len() {
        0 => "something else".to_string(),
        1 => expected[0].to_string(),
        n => format!("{} or {}", expected[..n - 1].join(", "), expected[n - 1]),
    };
    let end = (at + found.len().max(1)).min(text.len().max(at));
    let mut d = Diagnostic::new(
        ErrorKind::Syntax,
        Span::new(file, at, end),
        format!("expected {expected_text}, found {}", found_text(&found)),
        format!("expected {expected_text}"),
    );
    if found == "=" {
        d = d.help("compare with `==`");
    } else if found == "}" && expected.iter().any(|e| e == "`then`") {
        d = d.help("a rule needs a `then` part with at least one action");
    } else if found == "&&" || found == "||" {
        d = d.help("write `and` and `or`");
    } else if found.starts_with('\'') {
        d = d.help("strings use double quotes");
    }
    d
}

/// Operator descriptions, folded into "an operator" when many are expected at once.
const OPERATORS: [&str; 21] = [
    "`and`",
    "`or`",
    "`in`",
    "`not in`",
    "`==`",
    "`!=`",
    "`<=`",
    "`>=`",
    "`<`",
    "`>`",
    "`contains`",
    "`starts_with`",
    "`ends_with`",
    "`+`",
    "`-`",
    "`*`",
    "`/`",
    "`%`",
    "`=`",
    "`!`",
    "`in audience`",
];

fn found_token(text: &str, at: usize) -> String {
    let rest = text.get(at..).unwrap_or("");
    let Some(c) = rest.chars().next() else {
        return String::new();
    };
    if c.is_alphanumeric() || c == '_' {
        rest.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    } else if "=!<>&|-".contains(c) {
        rest.chars()
            .take_while(|c| "=!<>&|-".contains(*c))
            .take(2)
            .collect()
    } else {
        c.to_string()
    }
}

fn found_text(found: &str) -> String {
    match found {
        "" => "end of file".to_string(),
        "\n" | "\r" => "end of line".to_string(),
        f if f.chars().any(char::is_control) => format!("{f:?}"),
        f => format!("`{f}`"),
    }
}

/// A syntax error inside a string literal gets a message of its own: an
/// unknown escape, or a string not closed on its line.
fn string_trouble(file: FileId, text: &str, base: usize, at: usize) -> Option<Diagnostic> {
    // Find the string literal (if any) that contains `at`, scanning the line
    // from the item start so that quotes inside comments do not count.
    let line_start = text[..at.min(text.len())]
        .rfind('\n')
        .map_or(0, |n| n + 1)
        .max(base);
    let line_end = text[at.min(text.len())..]
        .find('\n')
        .map_or(text.len(), |n| at + n);
    let bytes = text.as_bytes();
    let mut i = line_start;
    while i < line_end {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => return None,
            b'"' => {
                let open = i;
                i += 1;
                while i < line_end && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        let esc = text[i + 1..].chars().next().unwrap_or(' ');
                        // pest fails a string as a whole, at its opening quote.
                        if !matches!(esc, '"' | '\\' | 'n' | 'r' | 't' | 'u')
                            && open <= at
                            && at <= i
                        {
                            return Some(
                                Diagnostic::new(
                                    ErrorKind::BadLiteral,
                                    Span::new(file, i, i + 1 + esc.len_utf8()),
                                    format!("unknown escape `\\{esc}`"),
                                    "unknown escape",
                                )
                                .help("escapes are \\n, \\r, \\t, \\\", \\\\ and \\u{...}"),
                            );
                        }
                        i += 2;
                        continue;
                    }
                    i += 1;
                }
                if i >= line_end && open <= at {
                    return Some(
                        Diagnostic::new(
                            ErrorKind::Syntax,
                            Span::new(file, open, open + 1),
                            "this string is not closed",
                            "opened here",
                        )
                        .help("a string ends with `\"` on the same line"),
                    );
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    None
}

fn pratt() -> &'static PrattParser<Rule> {
    static PRATT: OnceLock<PrattParser<Rule>> = OnceLock::new();
    PRATT.get_or_init(|| {
        let cmp = [
            Rule::eq,
            Rule::ne,
            Rule::le,
            Rule::ge,
            Rule::lt,
            Rule::gt,
            Rule::not_in,
            Rule::in_op,
            Rule::contains,
            Rule::starts_with,
            Rule::ends_with,
        ];
        let mut cmp_ops = Op::postfix(Rule::in_audience) | Op::postfix(Rule::not_in_audience);
        for r in cmp {
            cmp_ops = cmp_ops | Op::infix(r, Assoc::Left);
        }
        PrattParser::new()
            .op(Op::infix(Rule::or_op, Assoc::Left))
            .op(Op::infix(Rule::and_op, Assoc::Left))
            .op(Op::prefix(Rule::not_op))
            .op(cmp_ops)
            .op(Op::infix(Rule::add, Assoc::Left) | Op::infix(Rule::sub, Assoc::Left))
            .op(Op::infix(Rule::mul, Assoc::Left)
                | Op::infix(Rule::div, Assoc::Left)
                | Op::infix(Rule::rem, Assoc::Left))
            .op(Op::prefix(Rule::neg))
    })
}

/// Conversion context: the file, the offset of the parsed slice, and where
/// literal errors go.
struct Cx<'d> {
    file: FileId,
    base: usize,
    diags: &'d mut Vec<Diagnostic>,
}

impl Cx<'_> {
    /// The pair's span without the trailing whitespace that pest counts in
    /// when a rule ends with an optional part that did not match.
    fn span(&self, p: &Pair<'_, Rule>) -> Span {
        let s = p.as_span();
        let trimmed = s.as_str().trim_end_matches([' ', '\t', '\r', '\n']).len();
        Span::new(
            self.file,
            self.base + s.start(),
            self.base + s.start() + trimmed.max(usize::from(s.start() == s.end())),
        )
    }

    fn ident(&self, p: Pair<'_, Rule>) -> Ident {
        Ident {
            name: p.as_str().to_string(),
            span: self.span(&p),
        }
    }

    fn error(&mut self, kind: ErrorKind, span: Span, message: String, label: &str) {
        self.diags.push(Diagnostic::new(kind, span, message, label));
    }

    fn item(&mut self, p: Pair<'_, Rule>) -> Option<Item> {
        let span = self.span(&p);
        let rule = p.as_rule();
        let mut inner = p.into_inner();
        Some(match rule {
            Rule::include_decl => {
                let s = inner.nth(1)?;
                Item::Include(Include {
                    path: self.string(s)?,
                    span,
                })
            }
            Rule::type_decl => {
                let kind = match inner.next()?.as_str() {
                    "event" => FactKind::Event,
                    _ => FactKind::Fact,
                };
                let name = self.ident(inner.next()?);
                let fields = inner.map(|f| self.field(f)).collect::<Option<_>>()?;
                Item::Type(TypeDecl {
                    kind,
                    name,
                    fields,
                    span,
                })
            }
            Rule::context_decl => {
                inner.next(); // `context`
                let name = self.ident(inner.next()?);
                inner.next(); // `for`
                let target = self.ident(inner.next()?);
                let fields = inner.map(|f| self.field(f)).collect::<Option<_>>()?;
                Item::Context(ContextDecl {
                    name,
                    target,
                    fields,
                    span,
                })
            }
            Rule::audience_decl => {
                inner.next(); // the keyword
                let name = self.ident(inner.next()?);
                let definition = match inner.next() {
                    Some(e) => Some(self.audience_expr(e)?),
                    None => None,
                };
                Item::Audience(AudienceDecl {
                    name,
                    definition,
                    span,
                })
            }
            Rule::machine_decl => {
                inner.next();
                let name = self.ident(inner.next()?);
                let entries = inner
                    .map(|e| match e.as_rule() {
                        Rule::transition_decl => {
                            let span = self.span(&e);
                            let mut names = e.into_inner().map(|i| self.ident(i));
                            let from = names.next()?;
                            Some(MachineEntry::Transition(Transition {
                                from,
                                to: names.collect(),
                                span,
                            }))
                        }
                        _ => self.setting(e).map(MachineEntry::Setting),
                    })
                    .collect::<Option<_>>()?;
                Item::Machine(MachineDecl {
                    name,
                    entries,
                    span,
                })
            }
            Rule::settings_decl => {
                let kind = match inner.next()?.as_str() {
                    "cap" => SettingsKind::Cap,
                    "coupon" => SettingsKind::Coupon,
                    "experiment" => SettingsKind::Experiment,
                    _ => SettingsKind::Campaign,
                };
                let name = self.ident(inner.next()?);
                let settings = inner.map(|s| self.setting(s)).collect::<Option<_>>()?;
                Item::Settings(SettingsDecl {
                    kind,
                    name,
                    settings,
                    span,
                })
            }
            Rule::action_decl => {
                inner.next();
                let name = self.ident(inner.next()?);
                let params = inner.map(|p| self.param(p)).collect::<Option<_>>()?;
                Item::Action(ActionDecl { name, params, span })
            }
            Rule::function_decl => {
                inner.next();
                let name = self.ident(inner.next()?);
                let mut params = Vec::new();
                let mut returns = None;
                for p in inner {
                    match p.as_rule() {
                        Rule::param_decl => params.push(self.param(p)?),
                        _ => returns = Some(self.type_ref(p)?),
                    }
                }
                Item::Function(FunctionDecl {
                    name,
                    params,
                    returns: returns?,
                    span,
                })
            }
            Rule::rule_decl => Item::Rule(self.rule(inner, span)?),
            _ => return None,
        })
    }

    fn string(&mut self, p: Pair<'_, Rule>) -> Option<String> {
        let span = self.span(&p);
        let raw = p.into_inner().next()?.as_str();
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some('u') => {
                    let hex: String = chars.by_ref().skip(1).take_while(|c| *c != '}').collect();
                    match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                        Some(ch) => out.push(ch),
                        None => {
                            self.error(
                                ErrorKind::BadLiteral,
                                span,
                                format!("`\\u{{{hex}}}` is not a Unicode character"),
                                "bad escape",
                            );
                            return None;
                        }
                    }
                }
                Some(other) => out.push(other),
                None => {}
            }
        }
        Some(out)
    }

    /// Reports a malformed literal under `p`.
    fn bad_literal(&mut self, p: &Pair<'_, Rule>, message: String, label: &str) {
        let span = self.span(p);
        self.error(ErrorKind::BadLiteral, span, message, label);
    }

    fn int(&mut self, p: &Pair<'_, Rule>) -> Option<i64> {
        let parsed = p.as_str().parse().ok();
        if parsed.is_none() {
            self.bad_literal(
                p,
                format!("integer `{}` does not fit in 64 bits", p.as_str()),
                "out of range",
            );
        }
        parsed
    }

    fn float(&mut self, p: &Pair<'_, Rule>) -> Option<f64> {
        let parsed = p.as_str().parse::<f64>().ok().filter(|f| f.is_finite());
        if parsed.is_none() {
            self.bad_literal(
                p,
                format!("number `{}` is out of range", p.as_str()),
                "out of range",
            );
        }
        parsed
    }

    fn duration(&mut self, p: &Pair<'_, Rule>) -> Option<Duration> {
        match p.as_str().parse() {
            Ok(d) => Some(d),
            Err(e) => {
                self.bad_literal(p, format!("duration `{}`: {e}", p.as_str()), "bad duration");
                None
            }
        }
    }

    /// A literal; a malformed one is reported and read as `null`, so the
    /// item around it is still checked (the checker drops the follow-on
    /// complaints about it).
    fn literal(&mut self, p: Pair<'_, Rule>) -> Option<Literal> {
        Some(match p.as_rule() {
            Rule::string => self.string(p).map_or(Literal::Null, Literal::Str),
            Rule::int => self.int(&p).map_or(Literal::Null, Literal::Int),
            Rule::float => self.float(&p).map_or(Literal::Null, Literal::Float),
            Rule::boolean => Literal::Bool(p.as_str() == "true"),
            Rule::null => Literal::Null,
            Rule::duration => self.duration(&p).map_or(Literal::Null, Literal::Duration),
            _ => return None,
        })
    }

    fn field(&mut self, p: Pair<'_, Rule>) -> Option<FieldDecl> {
        let span = self.span(&p);
        let mut role = None;
        let mut name = None;
        let mut ty = None;
        let mut optional = false;
        for f in p.into_inner() {
            match f.as_rule() {
                Rule::field_role => {
                    role = Some(if f.as_str() == "key" {
                        FieldRole::Key
                    } else {
                        FieldRole::Time
                    })
                }
                Rule::ident => name = Some(self.ident(f)),
                Rule::type_ref => ty = Some(self.type_ref(f)?),
                Rule::optional_mark => optional = true,
                _ => {}
            }
        }
        Some(FieldDecl {
            role,
            name: name?,
            ty: ty?,
            optional,
            span,
        })
    }

    fn type_ref(&mut self, p: Pair<'_, Rule>) -> Option<TypeRef> {
        let span = self.span(&p);
        let inner = p.into_inner().next()?;
        Some(match inner.as_rule() {
            Rule::list_type => TypeRef {
                name: self.ident(inner.into_inner().next()?),
                list: true,
                span,
            },
            _ => TypeRef {
                name: self.ident(inner),
                list: false,
                span,
            },
        })
    }

    fn param(&mut self, p: Pair<'_, Rule>) -> Option<ParamDecl> {
        let span = self.span(&p);
        let mut inner = p.into_inner();
        let name = self.ident(inner.next()?);
        let ty = self.type_ref(inner.next()?)?;
        Some(ParamDecl {
            name,
            ty,
            optional: inner.next().is_some(),
            span,
        })
    }

    fn audience_expr(&mut self, p: Pair<'_, Rule>) -> Option<AudienceExpr> {
        let span = self.span(&p);
        if p.clone().into_inner().count() > 2 * MAX_EXPR_DEPTH {
            self.error(
                ErrorKind::Syntax,
                span,
                format!("an audience may combine at most {MAX_EXPR_DEPTH} others"),
                "too long",
            );
            return None;
        }
        let mut inner = p.into_inner();
        let mut acc = self.audience_term(inner.next()?)?;
        while let Some(op) = inner.next() {
            let op = match op.into_inner().next()?.as_rule() {
                Rule::and_not => SetOp::AndNot,
                Rule::kw_and => SetOp::And,
                Rule::kw_or => SetOp::Or,
                _ => SetOp::Xor,
            };
            let rhs = self.audience_term(inner.next()?)?;
            acc = AudienceExpr::Binary(op, Box::new(acc), Box::new(rhs));
        }
        Some(acc)
    }

    fn audience_term(&mut self, p: Pair<'_, Rule>) -> Option<AudienceExpr> {
        match p.as_rule() {
            Rule::ident => Some(AudienceExpr::Name(self.ident(p))),
            _ => self.audience_expr(p),
        }
    }

    fn setting(&mut self, p: Pair<'_, Rule>) -> Option<Setting> {
        let span = self.span(&p);
        let mut inner = p.into_inner();
        let name = self.ident(inner.next()?);
        let value = self.setting_value(inner.next()?)?;
        Some(Setting { name, value, span })
    }

    fn setting_value(&mut self, p: Pair<'_, Rule>) -> Option<SettingValue> {
        let span = self.span(&p);
        let words = p
            .into_inner()
            .map(|w| self.word(w))
            .collect::<Option<_>>()?;
        Some(SettingValue { words, span })
    }

    fn word(&mut self, p: Pair<'_, Rule>) -> Option<Word> {
        let span = self.span(&p);
        Some(match p.as_rule() {
            Rule::setting_ident => Word::Name(self.ident(p)),
            Rule::percent => {
                let text = p.as_str().trim_end_matches('%');
                match text.parse::<f64>() {
                    Ok(v) if v.is_finite() => Word::Percent(v, span),
                    _ => {
                        self.error(
                            ErrorKind::BadLiteral,
                            span,
                            format!("percentage `{}` is out of range", p.as_str()),
                            "out of range",
                        );
                        Word::Lit(Literal::Null, span)
                    }
                }
            }
            Rule::setting_list => Word::List(
                p.into_inner()
                    .map(|v| self.setting_value(v))
                    .collect::<Option<_>>()?,
                span,
            ),
            Rule::setting_map => Word::Map(
                p.into_inner()
                    .map(|e| {
                        let mut kv = e.into_inner();
                        let k = self.ident(kv.next()?);
                        Some((k, self.setting_value(kv.next()?)?))
                    })
                    .collect::<Option<_>>()?,
                span,
            ),
            _ => Word::Lit(self.literal(p)?, span),
        })
    }

    fn rule(&mut self, mut inner: Pairs<'_, Rule>, span: Span) -> Option<RuleDecl> {
        inner.next(); // `rule`
        let name = self.ident(inner.next()?);
        let mut attrs = Vec::new();
        let mut conditions = Vec::new();
        let mut actions = Vec::new();
        let mut in_then = false;
        for p in inner {
            let pspan = self.span(&p);
            match p.as_rule() {
                Rule::salience => {
                    let n = p.into_inner().nth(1)?;
                    attrs.push(RuleAttr::Salience(self.int(&n)?, pspan));
                }
                Rule::group => {
                    attrs.push(RuleAttr::Group(self.ident(p.into_inner().nth(1)?), pspan))
                }
                Rule::no_loop => attrs.push(RuleAttr::NoLoop(pspan)),
                Rule::campaign_attr => attrs.push(RuleAttr::Campaign(
                    self.ident(p.into_inner().nth(1)?),
                    pspan,
                )),
                Rule::kw_when => {}
                Rule::kw_then => in_then = true,
                _ if in_then => actions.push(self.action(p)?),
                _ => conditions.push(self.condition(p)?),
            }
        }
        Some(RuleDecl {
            name,
            attrs,
            conditions,
            actions,
            span,
        })
    }

    fn condition(&mut self, p: Pair<'_, Rule>) -> Option<Cond> {
        let span = self.span(&p);
        let rule = p.as_rule();
        let mut inner = p.into_inner();
        Some(match rule {
            Rule::pattern_ce => Cond::Pattern(self.pattern(inner.next()?)?),
            Rule::not_ce => Cond::Not(self.pattern(inner.nth(1)?)?, span),
            Rule::exists_ce => Cond::Exists(self.pattern(inner.nth(1)?)?, span),
            Rule::test_ce => Cond::Test(self.expr(inner.next()?)?),
            Rule::aggregate_ce => Cond::Aggregate(self.aggregate(inner, span)?),
            _ => return None,
        })
    }

    fn pattern(&mut self, p: Pair<'_, Rule>) -> Option<PatternAst> {
        let span = self.span(&p);
        let mut binding = None;
        let mut ty = None;
        let mut tests = Vec::new();
        let mut qualifiers = Vec::new();
        for q in p.into_inner() {
            match q.as_rule() {
                Rule::binding => binding = Some(self.ident(q.into_inner().next()?)),
                Rule::ident => ty = Some(self.ident(q)),
                Rule::expr => tests.push(self.expr(q)?),
                Rule::after_q | Rule::before_q | Rule::within_q => {
                    qualifiers.push(self.qualifier(q)?)
                }
                _ => {}
            }
        }
        Some(PatternAst {
            binding,
            ty: ty?,
            tests,
            qualifiers,
            span,
        })
    }

    fn qualifier(&mut self, q: Pair<'_, Rule>) -> Option<Qualifier> {
        let span = self.span(&q);
        let rule = q.as_rule();
        let arg = q.into_inner().nth(1)?;
        Some(match rule {
            Rule::after_q => Qualifier::After(self.ident(arg), span),
            Rule::before_q => Qualifier::Before(self.ident(arg), span),
            _ => Qualifier::Within(self.duration(&arg).unwrap_or(Duration::ZERO), span),
        })
    }

    fn aggregate(&mut self, inner: Pairs<'_, Rule>, span: Span) -> Option<AggregateAst> {
        let mut binding = None;
        let mut func = None;
        let mut source = None;
        let mut value = None;
        let mut having = None;
        let mut within = None;
        let mut by = Vec::new();
        for q in inner {
            let qspan = self.span(&q);
            match q.as_rule() {
                Rule::binding => binding = Some(self.ident(q.into_inner().next()?)),
                Rule::agg_fn => func = Some((AggFunc::from_name(q.as_str())?, qspan)),
                Rule::pattern => source = Some(self.pattern(q)?),
                Rule::expr => value = Some(self.expr(q)?),
                Rule::agg_having => {
                    let mut h = q.into_inner();
                    let op = cmp_op(h.next()?.as_rule())?;
                    having = Some((op, self.expr(h.next()?)?));
                }
                Rule::within_q => {
                    let d = q.into_inner().nth(1)?;
                    within = Some((self.duration(&d).unwrap_or(Duration::ZERO), qspan));
                }
                Rule::agg_by => by = q.into_inner().skip(1).map(|i| self.ident(i)).collect(),
                _ => {}
            }
        }
        Some(AggregateAst {
            binding,
            func: func?,
            source: source?,
            value,
            having,
            within,
            by,
            span,
        })
    }

    /// Converts an `expr` pair with the Pratt parser, tracking depth so that
    /// no input builds a tree deep enough to overflow a later recursive walk.
    fn expr(&mut self, p: Pair<'_, Rule>) -> Option<Expr> {
        let span = self.span(&p);
        // A long operator chain builds a tree as deep as it is long; refuse
        // it before building, as dropping such a tree recurses.
        let operators = p
            .clone()
            .into_inner()
            .filter(|q| is_operator(q.as_rule()))
            .count();
        if longest_prefix_run(p.clone().into_inner()) > MAX_EXPR_DEPTH
            || operators > 4 * MAX_EXPR_DEPTH
        {
            self.error(
                ErrorKind::Syntax,
                span,
                format!("expression is more than {MAX_EXPR_DEPTH} operators deep"),
                "too deep",
            );
            return None;
        }
        let (e, depth) = self.pratt_expr(p.into_inner())?;
        if depth > MAX_EXPR_DEPTH {
            self.error(
                ErrorKind::Syntax,
                span,
                format!("expression is more than {MAX_EXPR_DEPTH} operators deep"),
                "too deep",
            );
            return None;
        }
        Some(e)
    }

    fn pratt_expr(&mut self, pairs: Pairs<'_, Rule>) -> Option<(Expr, usize)> {
        // The closures share `self` through a RefCell-free trick: collect the
        // errors into a local vector and append them afterwards.
        let file = self.file;
        let base = self.base;
        let errors = std::cell::RefCell::new(Vec::new());
        let result = pratt()
            .map_primary(|p| {
                let mut diags = Vec::new();
                let mut cx = Cx {
                    file,
                    base,
                    diags: &mut diags,
                };
                let r = cx.primary(p);
                errors.borrow_mut().extend(diags);
                r
            })
            .map_prefix(|op, rhs| {
                let (rhs, d) = rhs?;
                let span = Span::new(file, base + op.as_span().start(), 0).to(rhs.span);
                let op = if op.as_rule() == Rule::not_op {
                    UnOp::Not
                } else {
                    UnOp::Neg
                };
                Some((
                    Expr {
                        kind: ExprKind::Unary(op, Box::new(rhs)),
                        span,
                    },
                    d + 1,
                ))
            })
            .map_postfix(|lhs, op| {
                let (lhs, d) = lhs?;
                let span = lhs.span.to(Span::new(
                    file,
                    base + op.as_span().start(),
                    base + op.as_span().end(),
                ));
                let negated = op.as_rule() == Rule::not_in_audience;
                let name = op.into_inner().last()?;
                let audience = Ident {
                    name: name.as_str().to_string(),
                    span: Span::new(
                        file,
                        base + name.as_span().start(),
                        base + name.as_span().end(),
                    ),
                };
                Some((
                    Expr {
                        kind: ExprKind::InAudience {
                            expr: Box::new(lhs),
                            audience,
                            negated,
                        },
                        span,
                    },
                    d + 1,
                ))
            })
            .map_infix(|lhs, op, rhs| {
                let ((lhs, dl), (rhs, dr)) = (lhs?, rhs?);
                let span = lhs.span.to(rhs.span);
                let op = bin_op(op.as_rule())?;
                Some((
                    Expr {
                        kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
                        span,
                    },
                    dl.max(dr) + 1,
                ))
            })
            .parse(pairs);
        self.diags.extend(errors.into_inner());
        result
    }

    fn primary(&mut self, p: Pair<'_, Rule>) -> Option<(Expr, usize)> {
        let span = self.span(&p);
        let (kind, depth) = match p.as_rule() {
            Rule::expr => {
                let (e, d) = self.pratt_expr(p.into_inner())?;
                return Some((e, d));
            }
            Rule::path => {
                let mut parts = p.into_inner();
                let first = self.ident(parts.next()?);
                (
                    ExprKind::Path(first, parts.next().map(|f| self.ident(f))),
                    0,
                )
            }
            Rule::list => {
                let mut items = Vec::new();
                let mut depth = 0;
                for i in p.into_inner() {
                    let (e, d) = self.pratt_expr(i.into_inner())?;
                    depth = depth.max(d + 1);
                    items.push(e);
                }
                (ExprKind::List(items), depth)
            }
            Rule::call => {
                let mut inner = p.into_inner();
                let name = self.ident(inner.next()?);
                let mut args = Vec::new();
                let mut depth = 0;
                for i in inner {
                    let (e, d) = self.pratt_expr(i.into_inner())?;
                    depth = depth.max(d + 1);
                    args.push(e);
                }
                (ExprKind::Call(name, args), depth)
            }
            _ => (ExprKind::Lit(self.literal(p)?), 0),
        };
        Some((Expr { kind, span }, depth))
    }

    fn action(&mut self, p: Pair<'_, Rule>) -> Option<ActionStmt> {
        let span = self.span(&p);
        let rule = p.as_rule();
        let mut inner = p.into_inner();
        let kind = match rule {
            Rule::delayed => {
                inner.next(); // `after`
                let after = self.duration(&inner.next()?).unwrap_or(Duration::ZERO);
                let mut next = inner.next()?;
                let regardless = next.as_rule() == Rule::regardless;
                if regardless {
                    next = inner.next()?;
                }
                ActionKind::Delayed {
                    after,
                    regardless,
                    action: Box::new(self.action(next)?),
                }
            }
            Rule::insert => {
                inner.next();
                let ty = self.ident(inner.next()?);
                ActionKind::Insert(ty, self.named_args(inner.next()?)?)
            }
            Rule::modify => {
                inner.next();
                let b = self.ident(inner.next()?);
                ActionKind::Modify(b, self.named_args(inner.next()?)?)
            }
            Rule::retract => {
                inner.next();
                ActionKind::Retract(self.ident(inner.next()?))
            }
            Rule::call_action => {
                let name = self.ident(inner.next()?);
                let args = self.named_args(inner.next()?)?;
                let branches = match inner.next() {
                    Some(b) => Some(
                        b.into_inner()
                            .map(|b| self.branch(b))
                            .collect::<Option<_>>()?,
                    ),
                    None => None,
                };
                ActionKind::Call {
                    name,
                    args,
                    branches,
                }
            }
            _ => return None,
        };
        Some(ActionStmt { kind, span })
    }

    fn branch(&mut self, p: Pair<'_, Rule>) -> Option<Branch> {
        let span = self.span(&p);
        let mut inner = p.into_inner();
        let label = self.ident(inner.next()?);
        let body = inner.next()?;
        let actions = if body.as_rule() == Rule::action_block {
            body.into_inner()
                .map(|a| self.action(a))
                .collect::<Option<_>>()?
        } else {
            vec![self.action(body)?]
        };
        Some(Branch {
            label,
            actions,
            span,
        })
    }

    fn named_args(&mut self, p: Pair<'_, Rule>) -> Option<Vec<NamedArg>> {
        p.into_inner()
            .map(|a| {
                let span = self.span(&a);
                let mut kv = a.into_inner();
                let name = self.ident(kv.next()?);
                let value = self.expr(kv.next()?)?;
                Some(NamedArg { name, value, span })
            })
            .collect()
    }
}

fn is_operator(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::or_op
            | Rule::and_op
            | Rule::eq
            | Rule::ne
            | Rule::le
            | Rule::ge
            | Rule::lt
            | Rule::gt
            | Rule::in_op
            | Rule::not_in
            | Rule::contains
            | Rule::starts_with
            | Rule::ends_with
            | Rule::add
            | Rule::sub
            | Rule::mul
            | Rule::div
            | Rule::rem
            | Rule::in_audience
            | Rule::not_in_audience
    )
}

/// The longest run of prefix operators (`not`, `-`) in an expression's
/// flat pairs: the Pratt parser recurses once per prefix.
fn longest_prefix_run(pairs: Pairs<'_, Rule>) -> usize {
    let (mut run, mut longest) = (0, 0);
    for p in pairs {
        if matches!(p.as_rule(), Rule::not_op | Rule::neg) {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    longest
}

fn cmp_op(rule: Rule) -> Option<CmpOp> {
    Some(match rule {
        Rule::eq => CmpOp::Eq,
        Rule::ne => CmpOp::Ne,
        Rule::lt => CmpOp::Lt,
        Rule::le => CmpOp::Le,
        Rule::gt => CmpOp::Gt,
        Rule::ge => CmpOp::Ge,
        Rule::contains => CmpOp::Contains,
        Rule::starts_with => CmpOp::StartsWith,
        Rule::ends_with => CmpOp::EndsWith,
        _ => return None,
    })
}

fn bin_op(rule: Rule) -> Option<BinOp> {
    Some(match rule {
        Rule::or_op => BinOp::Or,
        Rule::and_op => BinOp::And,
        Rule::in_op => BinOp::In,
        Rule::not_in => BinOp::NotIn,
        Rule::add => BinOp::Arith(ArithOp::Add),
        Rule::sub => BinOp::Arith(ArithOp::Sub),
        Rule::mul => BinOp::Arith(ArithOp::Mul),
        Rule::div => BinOp::Arith(ArithOp::Div),
        Rule::rem => BinOp::Arith(ArithOp::Rem),
        r => BinOp::Cmp(cmp_op(r)?),
    })
}
