//! The canonical layout of rule files.
//!
//! The output depends only on the syntax tree and on where the comments of
//! the original text were, so formatting is idempotent, and the output parses
//! back to the same tree. The one deliberate difference: a pattern's time
//! qualifiers come out with every `after` before every `within`.
//!
//! Spans are trusted for where nodes start but not for where they end: the
//! grammar lets some rules swallow the whitespace and comments that follow
//! them. Ends are therefore recomputed by stepping back over that trivia.

use crate::ast::*;
use nudge_core::write_quoted;
use nudge_rete::ir::AggFunc;
use std::fmt::Write as _;

const INDENT: &str = "    ";

/// Whitespace as the grammar defines it.
const BLANKS: [char; 5] = [' ', '\t', '\r', '\n', '\u{feff}'];

/// Formats `module` in the canonical layout. `source` is the text the module
/// was parsed from; it is read only to put `module.comments` back in place.
pub fn format_module(module: &Module, source: &str) -> String {
    let mut comments: Vec<&Comment> = module.comments.iter().collect();
    comments.sort_by_key(|c| (c.span.start, c.span.end));
    let mut p = Printer {
        src: source,
        comments,
        next: 0,
        out: String::new(),
        anchor: None,
        line_closed: false,
    };
    p.module(&module.items);
    p.out
}

struct Printer<'a> {
    src: &'a str,
    comments: Vec<&'a Comment>,
    /// The first comment not yet printed.
    next: usize,
    out: String,
    /// Where, in the source, the text of the last output line ends: a comment
    /// on that same source line is kept at the end of the output line.
    anchor: Option<usize>,
    /// The last output line ends in a line comment, which would swallow
    /// anything appended to it.
    line_closed: bool,
}

impl<'a> Printer<'a> {
    // ------------------------------------------------------------ output

    fn line(&mut self, depth: usize, text: &str, anchor: usize) {
        for _ in 0..depth {
            self.out.push_str(INDENT);
        }
        self.out.push_str(text);
        self.out.push('\n');
        self.anchor = Some(anchor);
        self.line_closed = false;
    }

    fn blank(&mut self) {
        if !self.out.is_empty() && !self.out.ends_with("\n\n") {
            self.out.push('\n');
        }
        self.anchor = None;
    }

    // ------------------------------------------------------------ source positions

    fn same_line(&self, a: usize, b: usize) -> bool {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        self.src.get(lo..hi).is_some_and(|t| !t.contains('\n'))
    }

    fn blank_between(&self, a: usize, b: usize) -> bool {
        a < b
            && self
                .src
                .get(a..b)
                .is_some_and(|t| t.matches('\n').count() >= 2)
    }

    /// Steps back from `pos` over whitespace and comments.
    fn trim_back(&self, mut pos: usize) -> usize {
        loop {
            let Some(before) = self.src.get(..pos) else {
                return pos;
            };
            pos = before.trim_end_matches(BLANKS).len();
            match self.comments.binary_search_by_key(&pos, |c| c.span.end) {
                Ok(i) if self.comments[i].span.start < pos => pos = self.comments[i].span.start,
                _ => return pos,
            }
        }
    }

    /// Steps forward from `pos` over whitespace and comments.
    fn skip_forward(&self, mut pos: usize) -> usize {
        loop {
            let Some(after) = self.src.get(pos..) else {
                return pos;
            };
            pos += after.len() - after.trim_start_matches(BLANKS).len();
            match self.comments.binary_search_by_key(&pos, |c| c.span.start) {
                Ok(i) if self.comments[i].span.end > pos => pos = self.comments[i].span.end,
                _ => return pos,
            }
        }
    }

    fn end(&self, span: Span) -> usize {
        self.trim_back(span.end).max(span.start)
    }

    /// The position of the `}` that ends `span`.
    fn close_brace(&self, span: Span) -> usize {
        let end = self.end(span);
        match end.checked_sub(1) {
            Some(b) if self.src.as_bytes().get(b) == Some(&b'}') => b,
            _ => end,
        }
    }

    /// Where the keyword `kw` ends and starts, given the start of what follows it.
    fn keyword_before(&self, next: usize, kw: &str) -> (usize, usize) {
        let end = self.trim_back(next);
        match end.checked_sub(kw.len()) {
            Some(start) if self.src.get(start..end) == Some(kw) => (start, end),
            _ => (end, end),
        }
    }

    /// Expression spans leave out enclosing parentheses; a condition's
    /// extent includes them.
    fn cond_range(&self, c: &Cond) -> (usize, usize) {
        let span = c.span();
        let (mut start, mut end) = (span.start, self.end(span));
        if let Cond::Test(_) = c {
            loop {
                let p = self.trim_back(start);
                match p.checked_sub(1) {
                    Some(q) if self.src.as_bytes().get(q) == Some(&b'(') => start = q,
                    _ => break,
                }
            }
            loop {
                let p = self.skip_forward(end);
                if self.src.as_bytes().get(p) == Some(&b')') {
                    end = p + 1;
                } else {
                    break;
                }
            }
        }
        (start, end)
    }

    // ------------------------------------------------------------ comments

    fn pending(&self, limit: usize) -> Option<&'a Comment> {
        self.comments
            .get(self.next)
            .copied()
            .filter(|c| c.span.start < limit)
    }

    fn has_comment_in(&self, lo: usize, hi: usize) -> bool {
        self.comments[self.next.min(self.comments.len())..]
            .iter()
            .take_while(|c| c.span.start < hi)
            .any(|c| c.span.start > lo)
    }

    fn trails(&self, c: &Comment) -> bool {
        !self.line_closed
            && self.out.ends_with('\n')
            && self.anchor.is_some_and(|a| self.same_line(a, c.span.start))
    }

    fn attach(&mut self, c: &Comment) {
        self.out.pop();
        self.out.push_str("  ");
        self.out.push_str(&c.text);
        self.out.push('\n');
        self.anchor = self.anchor.map(|a| a.max(c.span.end));
        self.line_closed = c.text.starts_with("//");
    }

    fn own_line(&mut self, depth: usize, c: &Comment) {
        self.line(depth, &c.text, c.span.end);
        self.line_closed = c.text.starts_with("//");
    }

    /// Prints the comments before `limit`, trailing the last line when they
    /// were on its source line, else on lines of their own.
    fn flush(&mut self, depth: usize, limit: usize) {
        while let Some(c) = self.pending(limit) {
            self.next += 1;
            if self.trails(c) {
                self.attach(c);
            } else {
                self.own_line(depth, c);
            }
        }
    }

    fn flush_trailing(&mut self, limit: usize) {
        while let Some(c) = self.pending(limit).filter(|c| self.trails(c)) {
            self.next += 1;
            self.attach(c);
        }
    }

    /// Top-level comments keep a blank line where the source had one, so
    /// that a file header stays apart from the first item.
    fn flush_top(&mut self, limit: usize, mut prev_end: Option<usize>) {
        let mut printed = false;
        while let Some(c) = self.pending(limit) {
            self.next += 1;
            if self.trails(c) {
                self.attach(c);
            } else {
                if prev_end.is_some_and(|e| self.blank_between(e, c.span.start)) {
                    self.blank();
                }
                self.own_line(0, c);
            }
            prev_end = Some(c.span.end);
            printed = true;
        }
        if printed && prev_end.is_some_and(|e| self.blank_between(e, limit)) {
            self.blank();
        }
    }

    // ------------------------------------------------------------ layout

    fn module(&mut self, items: &[Item]) {
        for (i, item) in items.iter().enumerate() {
            let start = item.span().start;
            if i > 0 {
                self.flush_trailing(start);
                self.blank();
            }
            self.flush_top(start, None);
            self.item(item);
        }
        self.flush_trailing(usize::MAX);
        let after_last = self.anchor;
        self.flush_top(usize::MAX, after_last);
    }

    /// `head {`, the children one per line, `}`; `head {}` when empty.
    fn block<T>(
        &mut self,
        depth: usize,
        head: &str,
        span: Span,
        children: &[T],
        start_of: impl Fn(&Self, &T) -> usize,
        mut each: impl FnMut(&mut Self, usize, &T),
    ) {
        let close = self.close_brace(span);
        if children.is_empty() && !self.has_comment_in(span.start, close) {
            self.line(depth, &format!("{head} {{}}"), close + 1);
            return;
        }
        let first = children.first().map_or(close, |c| start_of(self, c));
        let anchor = self.trim_back(first);
        self.line(depth, &format!("{head} {{"), anchor);
        for child in children {
            let start = start_of(self, child);
            self.flush(depth + 1, start);
            each(self, depth + 1, child);
        }
        self.flush(depth + 1, close);
        self.line(depth, "}", close + 1);
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Include(i) => {
                let mut s = String::from("include ");
                quoted(&mut s, &i.path);
                self.line(0, &s, self.end(i.span));
            }
            Item::Type(t) => {
                let kind = match t.kind {
                    nudge_core::FactKind::Event => "event",
                    nudge_core::FactKind::Fact => "fact",
                };
                let head = format!("{kind} {}", t.name.name);
                self.block(
                    0,
                    &head,
                    t.span,
                    &t.fields,
                    |_, f| f.span.start,
                    |p, d, f| {
                        let mut s = String::new();
                        match f.role {
                            Some(FieldRole::Key) => s.push_str("key "),
                            Some(FieldRole::Time) => s.push_str("time "),
                            None => {}
                        }
                        s.push_str(&f.name.name);
                        s.push_str(": ");
                        type_ref(&mut s, &f.ty);
                        if f.optional {
                            s.push('?');
                        }
                        p.line(d, &s, p.end(f.span));
                    },
                );
            }
            Item::Audience(a) => {
                let mut s = format!("audience {}", a.name.name);
                if let Some(def) = &a.definition {
                    s.push_str(" = ");
                    audience(&mut s, def);
                }
                self.line(0, &s, self.end(a.span));
            }
            Item::Machine(m) => {
                let head = format!("machine {}", m.name.name);
                self.block(
                    0,
                    &head,
                    m.span,
                    &m.entries,
                    |_, e| entry_span(e).start,
                    |p, d, e| {
                        let mut s = String::new();
                        match e {
                            MachineEntry::Setting(st) => setting(&mut s, st),
                            MachineEntry::Transition(t) => {
                                s.push_str(&t.from.name);
                                s.push_str(" ->");
                                for (i, to) in t.to.iter().enumerate() {
                                    s.push_str(if i == 0 { " " } else { ", " });
                                    s.push_str(&to.name);
                                }
                            }
                        }
                        p.line(d, &s, p.end(entry_span(e)));
                    },
                );
            }
            Item::Settings(st) => {
                let head = format!("{} {}", st.kind.keyword(), st.name.name);
                self.block(
                    0,
                    &head,
                    st.span,
                    &st.settings,
                    |_, s| s.span.start,
                    |p, d, s| {
                        let mut text = String::new();
                        setting(&mut text, s);
                        p.line(d, &text, p.end(s.span));
                    },
                );
            }
            Item::Action(a) => {
                let mut s = format!("action {}", a.name.name);
                params(&mut s, &a.params);
                self.line(0, &s, self.end(a.span));
            }
            Item::Function(f) => {
                let mut s = format!("function {}", f.name.name);
                params(&mut s, &f.params);
                s.push_str(" -> ");
                type_ref(&mut s, &f.returns);
                self.line(0, &s, self.end(f.span));
            }
            Item::Rule(r) => self.rule(r),
        }
    }

    fn rule(&mut self, r: &RuleDecl) {
        let close = self.close_brace(r.span);
        let first_action = r.actions.first().map_or(close, |a| a.span.start);
        let (then_start, then_end) = self.keyword_before(first_action, "then");
        let first_cond = r
            .conditions
            .first()
            .map_or(then_start, |c| self.cond_range(c).0);
        let (when_start, when_end) = self.keyword_before(first_cond, "when");
        let first_member = r.attrs.first().map_or(when_start, |a| a.span().start);
        self.line(
            0,
            &format!("rule {} {{", r.name.name),
            self.trim_back(first_member),
        );
        for attr in &r.attrs {
            self.flush(1, attr.span().start);
            let text = match attr {
                RuleAttr::Salience(n, _) => format!("salience {n}"),
                RuleAttr::Group(g, _) => format!("group {}", g.name),
                RuleAttr::NoLoop(_) => "no-loop".to_string(),
                RuleAttr::Campaign(c, _) => format!("campaign {}", c.name),
            };
            self.line(1, &text, self.end(attr.span()));
        }
        self.flush(1, when_start);
        self.line(1, "when", when_end);
        for (cond, text) in r.conditions.iter().zip(condition_texts(&r.conditions)) {
            let (start, end) = self.cond_range(cond);
            self.flush(2, start);
            self.line(2, &text, end);
        }
        self.flush(2, then_start);
        self.line(1, "then", then_end);
        for action in &r.actions {
            self.flush(2, action.span.start);
            self.action(2, action, "");
        }
        self.flush(2, close);
        self.line(0, "}", close + 1);
    }

    /// One action, `lead` written before it on its first line.
    fn action(&mut self, depth: usize, a: &ActionStmt, lead: &str) {
        let mut s = String::from(lead);
        match &a.kind {
            ActionKind::Delayed {
                after,
                regardless,
                action,
            } => {
                let _ = write!(s, "after {after} ");
                if *regardless {
                    s.push_str("regardless ");
                }
                return self.action(depth, action, &s);
            }
            ActionKind::Insert(ty, args) => {
                let _ = write!(s, "insert {}", ty.name);
                named_args(&mut s, args);
            }
            ActionKind::Modify(b, args) => {
                let _ = write!(s, "modify {}", b.name);
                named_args(&mut s, args);
            }
            ActionKind::Retract(b) => {
                let _ = write!(s, "retract {}", b.name);
            }
            ActionKind::Call {
                name,
                args,
                branches,
            } => {
                s.push_str(&name.name);
                named_args(&mut s, args);
                if let Some(branches) = branches {
                    return self.block(
                        depth,
                        &s,
                        a.span,
                        branches,
                        |_, b| b.span.start,
                        |p, d, b| p.branch(d, b),
                    );
                }
            }
        }
        self.line(depth, &s, self.end(a.span));
    }

    fn branch(&mut self, depth: usize, b: &Branch) {
        let lead = format!("{} =>", b.label.name);
        match b.actions.as_slice() {
            [only] => self.action(depth, only, &format!("{lead} ")),
            actions => self.block(
                depth,
                &lead,
                b.span,
                actions,
                |_, a| a.span.start,
                |p, d, a| p.action(d, a, ""),
            ),
        }
    }
}

fn entry_span(e: &MachineEntry) -> Span {
    match e {
        MachineEntry::Setting(s) => s.span,
        MachineEntry::Transition(t) => t.span,
    }
}

// ---------------------------------------------------------------- conditions

/// The conditions of a `when` part, one text each.
///
/// Conditions are separated by nothing but whitespace, so a test condition
/// is parenthesised whenever its bare text would read as another kind of
/// condition or run into its neighbour.
fn condition_texts(conds: &[Cond]) -> Vec<String> {
    let mut texts = vec![String::new(); conds.len()];
    // Whether the condition after the current one starts with `(`: a bare
    // name before it would turn into a call.
    let mut next_opens = false;
    for (i, cond) in conds.iter().enumerate().rev() {
        let mut s = String::new();
        match cond {
            Cond::Pattern(p) => pattern(&mut s, p),
            Cond::Not(p, _) => {
                s.push_str("not ");
                pattern(&mut s, p);
            }
            Cond::Exists(p, _) => {
                s.push_str("exists ");
                pattern(&mut s, p);
            }
            Cond::Aggregate(a) => aggregate(&mut s, a, next_opens),
            Cond::Test(e) => {
                let mut text = String::new();
                expr(&mut text, e, 0);
                let wrap = text.starts_with('-')
                    || reads_as_condition(e)
                    || (next_opens && ends_in_bare_name(e));
                if wrap {
                    s.push('(');
                    s.push_str(&text);
                    s.push(')');
                } else {
                    s = text;
                }
            }
        }
        next_opens = s.starts_with('(');
        texts[i] = s;
    }
    texts
}

/// Whether the text of test `e` would parse as a pattern, a `not` pattern or
/// an aggregate, or continue the condition before it.
fn reads_as_condition(e: &Expr) -> bool {
    if let ExprKind::Call(..) = e.kind {
        return true;
    }
    match &leftmost(e).kind {
        ExprKind::Unary(UnOp::Not, x) => {
            prec(x) >= NOT_OPERAND && matches!(leftmost(x).kind, ExprKind::Call(..))
        }
        ExprKind::Call(name, args) => {
            is_word_operator(&name.name)
                || (AggFunc::from_name(&name.name).is_some()
                    && (1..=2).contains(&args.len())
                    && matches!(args[0].kind, ExprKind::Call(..)))
        }
        ExprKind::Path(name, _) => is_word_operator(&name.name),
        _ => false,
    }
}

/// Operators spelled like names: a condition starting with one would be
/// read as the operator applied to the condition before it.
fn is_word_operator(name: &str) -> bool {
    matches!(name, "contains" | "starts_with" | "ends_with")
}

fn pattern(s: &mut String, p: &PatternAst) {
    if let Some(b) = &p.binding {
        s.push_str(&b.name);
        s.push_str(": ");
    }
    s.push_str(&p.ty.name);
    expr_list(s, "(", &p.tests, ")");
    for q in &p.qualifiers {
        if let Qualifier::After(b, _) = q {
            s.push_str(" after ");
            s.push_str(&b.name);
        }
    }
    for q in &p.qualifiers {
        if let Qualifier::Within(d, _) = q {
            let _ = write!(s, " within {d}");
        }
    }
}

fn aggregate(s: &mut String, a: &AggregateAst, next_opens: bool) {
    if let Some(b) = &a.binding {
        s.push_str(&b.name);
        s.push_str(": ");
    }
    s.push_str(a.func.0.name());
    s.push('(');
    pattern(s, &a.source);
    if let Some(v) = &a.value {
        s.push_str(", ");
        expr(s, v, 0);
    }
    s.push(')');
    if let Some((op, e)) = &a.having {
        let _ = write!(s, " {} ", op.symbol());
        // The comparison is the last thing in the condition unless `within`
        // or `by` follows; a bare name there would call the next condition.
        let last = a.within.is_none() && a.by.is_empty();
        if last && next_opens && ends_in_bare_name(e) {
            s.push('(');
            expr(s, e, 0);
            s.push(')');
        } else {
            expr(s, e, 0);
        }
    }
    if let Some((d, _)) = &a.within {
        let _ = write!(s, " within {d}");
    }
    for (i, b) in a.by.iter().enumerate() {
        s.push_str(if i == 0 { " by " } else { ", " });
        s.push_str(&b.name);
    }
}

// ---------------------------------------------------------------- expressions

/// The operand of prefix `not` binds anything from comparisons up.
const NOT_OPERAND: u8 = 3;
/// The operand of `in audience` is a comparison operand or tighter.
const IN_AUDIENCE: u8 = 4;
/// Prefix `-` binds tighter than every infix operator.
const NEG: u8 = 7;
const ATOM: u8 = 8;

fn prec(e: &Expr) -> u8 {
    match &e.kind {
        ExprKind::Binary(op, ..) => op.precedence(),
        ExprKind::Unary(UnOp::Not, _) => NOT_OPERAND,
        ExprKind::Unary(UnOp::Neg, _) => NEG,
        ExprKind::InAudience { .. } => IN_AUDIENCE,
        _ => ATOM,
    }
}

/// The node whose text starts the text of `e`, looking through operands
/// printed without parentheses.
fn leftmost(e: &Expr) -> &Expr {
    match &e.kind {
        ExprKind::Binary(op, l, _) if prec(l) >= op.precedence() => leftmost(l),
        ExprKind::InAudience { expr, .. } if prec(expr) >= IN_AUDIENCE => leftmost(expr),
        _ => e,
    }
}

/// Whether the text of `e` ends with a name that `(` would turn into a call.
fn ends_in_bare_name(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Path(_, None) => true,
        ExprKind::Binary(op, _, r) => prec(r) > op.precedence() && ends_in_bare_name(r),
        ExprKind::Unary(UnOp::Not, x) => prec(x) >= NOT_OPERAND && ends_in_bare_name(x),
        ExprKind::Unary(UnOp::Neg, x) => prec(x) >= NEG && ends_in_bare_name(x),
        _ => false,
    }
}

/// Writes `e`, in parentheses if it binds looser than `min`.
fn expr(s: &mut String, e: &Expr, min: u8) {
    if prec(e) < min {
        s.push('(');
        expr(s, e, 0);
        s.push(')');
        return;
    }
    match &e.kind {
        ExprKind::Lit(l) => literal(s, l),
        ExprKind::Path(a, b) => {
            s.push_str(&a.name);
            if let Some(b) = b {
                s.push('.');
                s.push_str(&b.name);
            }
        }
        ExprKind::List(items) => expr_list(s, "[", items, "]"),
        ExprKind::Call(name, args) => {
            s.push_str(&name.name);
            expr_list(s, "(", args, ")");
        }
        ExprKind::Unary(UnOp::Not, x) => {
            s.push_str("not ");
            expr(s, x, NOT_OPERAND);
        }
        ExprKind::Unary(UnOp::Neg, x) => {
            s.push('-');
            if matches!(x.kind, ExprKind::Unary(UnOp::Neg, _)) {
                s.push(' ');
            }
            expr(s, x, NEG);
        }
        ExprKind::Binary(op, l, r) => {
            let p = op.precedence();
            expr(s, l, p);
            s.push(' ');
            s.push_str(op.symbol());
            s.push(' ');
            // Left-associative: an equal operator on the right needs parentheses.
            expr(s, r, p + 1);
        }
        ExprKind::InAudience {
            expr: x,
            audience,
            negated,
        } => {
            expr(s, x, IN_AUDIENCE);
            s.push_str(if *negated {
                " not in audience "
            } else {
                " in audience "
            });
            s.push_str(&audience.name);
        }
    }
}

fn expr_list(s: &mut String, open: &str, items: &[Expr], close: &str) {
    s.push_str(open);
    for (i, e) in items.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        expr(s, e, 0);
    }
    s.push_str(close);
}

fn named_args(s: &mut String, args: &[NamedArg]) {
    s.push('(');
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&a.name.name);
        s.push_str(": ");
        expr(s, &a.value, 0);
    }
    s.push(')');
}

// ---------------------------------------------------------------- literals and declarations

fn quoted(s: &mut String, text: &str) {
    // Writing to a String cannot fail.
    let _ = write_quoted(s, text);
}

fn literal(s: &mut String, l: &Literal) {
    match l {
        Literal::Str(t) => quoted(s, t),
        Literal::Int(i) => {
            let _ = write!(s, "{i}");
        }
        Literal::Float(f) => float(s, *f),
        Literal::Bool(b) => s.push_str(if *b { "true" } else { "false" }),
        Literal::Null => s.push_str("null"),
        Literal::Duration(d) => {
            let _ = write!(s, "{d}");
        }
    }
}

/// The shortest text that reads back as `f`: Rust's `Display` never uses an
/// exponent, and the grammar wants a `.` in every float.
fn float(s: &mut String, f: f64) {
    let start = s.len();
    let _ = write!(s, "{f}");
    if f.is_finite() && !s[start..].contains('.') {
        s.push_str(".0");
    }
}

fn type_ref(s: &mut String, t: &TypeRef) {
    if t.list {
        s.push_str("list<");
        s.push_str(&t.name.name);
        s.push('>');
    } else {
        s.push_str(&t.name.name);
    }
}

fn params(s: &mut String, ps: &[ParamDecl]) {
    s.push('(');
    for (i, p) in ps.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&p.name.name);
        s.push_str(": ");
        type_ref(s, &p.ty);
        if p.optional {
            s.push('?');
        }
    }
    s.push(')');
}

/// Audience algebra applies left to right, so only a right operand that is
/// itself an operation needs parentheses.
fn audience(s: &mut String, e: &AudienceExpr) {
    match e {
        AudienceExpr::Name(n) => s.push_str(&n.name),
        AudienceExpr::Binary(op, l, r) => {
            audience(s, l);
            s.push(' ');
            s.push_str(op.symbol());
            s.push(' ');
            if let AudienceExpr::Binary(..) = **r {
                s.push('(');
                audience(s, r);
                s.push(')');
            } else {
                audience(s, r);
            }
        }
    }
}

fn setting(s: &mut String, st: &Setting) {
    s.push_str(&st.name.name);
    s.push_str(": ");
    setting_value(s, &st.value);
}

fn setting_value(s: &mut String, v: &SettingValue) {
    for (i, w) in v.words.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        word(s, w);
    }
}

fn word(s: &mut String, w: &Word) {
    match w {
        Word::Lit(l, _) => literal(s, l),
        Word::Percent(p, _) => {
            let _ = write!(s, "{p}%");
        }
        Word::Name(n) => s.push_str(&n.name),
        Word::List(items, _) => {
            s.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                setting_value(s, v);
            }
            s.push(']');
        }
        Word::Map(entries, _) if entries.is_empty() => s.push_str("{}"),
        Word::Map(entries, _) => {
            s.push_str("{ ");
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                s.push_str(&k.name);
                s.push_str(": ");
                setting_value(s, v);
            }
            s.push_str(" }");
        }
    }
}
