//! The canonical layout of rule files.
//!
//! The output depends only on the syntax tree and on where the comments of
//! the original text were, so formatting is idempotent, and the output parses
//! back to the same tree.
//!
//! Spans are trusted for where nodes start but not for where they end: a
//! grammar rule that ends in an optional part takes in the comments after
//! it, and an expression's span leaves out its parentheses. Ends are
//! therefore recomputed from the source, stepping back over comments.

use crate::ast::*;
use nudge_core::write_quoted;
use nudge_rete::ir::AggFunc;
use std::fmt::Write as _;

const INDENT: &str = "    ";

/// Actions longer than this put their arguments one per line.
const MAX_WIDTH: usize = 100;

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

    /// Whether only whitespace, with an empty line in it, lies between.
    fn blank_between(&self, a: usize, b: usize) -> bool {
        self.src
            .get(a..b)
            .is_some_and(|t| t.trim_matches(BLANKS).is_empty() && t.matches('\n').count() >= 2)
    }

    fn has_empty_line(&self, a: usize, b: usize) -> bool {
        self.src.get(a..b).is_some_and(|t| {
            let lines: Vec<&str> = t.split('\n').collect();
            lines.len() > 2
                && lines[1..lines.len() - 1]
                    .iter()
                    .any(|l| l.trim_matches(BLANKS).is_empty())
        })
    }

    /// Steps back from `pos` over whitespace and comments.
    fn trim_back(&self, mut pos: usize) -> usize {
        loop {
            let Some(before) = self.src.get(..pos) else {
                return pos;
            };
            pos = before.trim_end_matches(BLANKS).len();
            // Trimming can stop inside a line comment that ends in blanks.
            let i = self.comments.partition_point(|c| c.span.start < pos);
            match i.checked_sub(1).map(|i| self.comments[i]) {
                Some(c) if c.span.end >= pos => pos = c.span.start,
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

    /// The position of the `)` after the last of `args`.
    fn close_paren(&self, args: &[NamedArg]) -> usize {
        let Some(last) = args.last() else {
            return 0;
        };
        let mut p = self.skip_forward(self.end(last.span));
        if self.src.as_bytes().get(p) == Some(&b',') {
            p = self.skip_forward(p + 1);
        }
        p
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

    /// The next comment if it starts before `limit`; `usize::MAX` takes
    /// every comment that is left, whatever its span says.
    fn pending(&self, limit: usize) -> Option<&'a Comment> {
        self.comments
            .get(self.next)
            .copied()
            .filter(|c| c.span.start < limit || limit == usize::MAX)
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
        self.end_comment(c);
    }

    fn own_line(&mut self, depth: usize, c: &Comment) {
        self.line(depth, &c.text, c.span.end);
        self.end_comment(c);
    }

    fn end_comment(&mut self, c: &Comment) {
        self.line_closed = c.text.starts_with("//");
        // The parser lets a block comment left open at the end of the file
        // run to its end: a newline after it would become part of it.
        let open = c.text.starts_with("/*") && (c.text.len() < 4 || !c.text.ends_with("*/"));
        if open {
            self.out.pop();
        }
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
            if let Some(prev) = i.checked_sub(1).map(|p| &items[p]) {
                self.flush_trailing(start);
                // Runs of one-line declarations (includes, audiences...) stay
                // together where the source wrote them together.
                let next = self.pending(start).map_or(start, |c| c.span.start);
                let grouped = one_line(prev)
                    && one_line(item)
                    && !self.has_empty_line(self.end(prev.span()), next);
                if grouped {
                    self.anchor = None;
                } else {
                    self.blank();
                }
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
            self.line(depth, &format!("{head} {{}}"), close.saturating_add(1));
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
        self.line(depth, "}", close.saturating_add(1));
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
                self.fields(&head, t.span, &t.fields);
            }
            Item::Context(c) => {
                let head = format!("context {} for {}", c.name.name, c.target.name);
                self.fields(&head, c.span, &c.fields);
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

    /// A block of field declarations: a type's or a context's.
    fn fields(&mut self, head: &str, span: Span, fields: &[FieldDecl]) {
        self.block(
            0,
            head,
            span,
            fields,
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
        self.line(0, "}", close.saturating_add(1));
    }

    /// One action, `lead` written before it on its first line.
    fn action(&mut self, depth: usize, a: &ActionStmt, lead: &str) {
        let mut s = String::from(lead);
        // Delays nest without brackets, so their depth is not bounded by the
        // parser's nesting limit: unwind them in a loop.
        let mut a = a;
        while let ActionKind::Delayed {
            after,
            regardless,
            action,
        } = &a.kind
        {
            let _ = write!(s, "after {after} ");
            if *regardless {
                s.push_str("regardless ");
            }
            a = action;
        }
        let (args, branches) = match &a.kind {
            ActionKind::Delayed { .. } => (&[][..], None),
            ActionKind::Insert(ty, args) => {
                let _ = write!(s, "insert {}", ty.name);
                (&args[..], None)
            }
            ActionKind::Modify(b, args) => {
                let _ = write!(s, "modify {}", b.name);
                (&args[..], None)
            }
            ActionKind::Retract(b) => {
                let _ = write!(s, "retract {}", b.name);
                return self.line(depth, &s, self.end(a.span));
            }
            ActionKind::Call {
                name,
                args,
                branches,
            } => {
                s.push_str(&name.name);
                (&args[..], branches.as_deref())
            }
        };
        let mut one_line = s.clone();
        named_args(&mut one_line, args);
        let width = depth * INDENT.len() + one_line.chars().count();
        // What follows the arguments: `{` and the branches, or the line end.
        let (tail, tail_anchor) = if width <= MAX_WIDTH || args.is_empty() {
            (one_line, None)
        } else {
            s.push('(');
            let first = self.trim_back(args[0].span.start);
            self.line(depth, &s, first);
            for arg in args {
                self.flush(depth + 1, arg.span.start);
                let mut text = format!("{}: ", arg.name.name);
                expr(&mut text, &arg.value, 0);
                text.push(',');
                self.line(depth + 1, &text, self.end(arg.span));
            }
            let close = self.close_paren(args);
            self.flush(depth + 1, close);
            (")".to_string(), Some(close.saturating_add(1)))
        };
        match branches {
            Some(branches) => self.block(
                depth,
                &tail,
                a.span,
                branches,
                |_, b| b.span.start,
                |p, d, b| p.branch(d, b),
            ),
            None => {
                let anchor = tail_anchor.unwrap_or_else(|| self.end(a.span));
                self.line(depth, &tail, anchor);
            }
        }
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

fn one_line(item: &Item) -> bool {
    matches!(
        item,
        Item::Include(_) | Item::Audience(_) | Item::Action(_) | Item::Function(_)
    )
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
    match &e.kind {
        // Patterns and `not` patterns refuse to be followed by an operator,
        // so only a call with nothing after it is taken for one.
        ExprKind::Call(..) => return true,
        ExprKind::Unary(UnOp::Not, x) if matches!(x.kind, ExprKind::Call(..)) => return true,
        _ => {}
    }
    match &leftmost(e).kind {
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
    // Qualifiers keep the order they were written in, so that the text
    // parses back to the very same tree.
    for q in &p.qualifiers {
        match q {
            Qualifier::After(b, _) => {
                s.push_str(" after ");
                s.push_str(&b.name);
            }
            Qualifier::Before(b, _) => {
                s.push_str(" before ");
                s.push_str(&b.name);
            }
            Qualifier::Within(d, _) => {
                let _ = write!(s, " within {d}");
            }
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
/// itself an operation needs parentheses. The left spine can be as long as
/// the declaration, so it is walked in a loop rather than by recursion.
fn audience(s: &mut String, e: &AudienceExpr) {
    let mut spine = Vec::new();
    let mut first = e;
    while let AudienceExpr::Binary(op, l, r) = first {
        spine.push((*op, &**r));
        first = l;
    }
    if let AudienceExpr::Name(n) = first {
        s.push_str(&n.name);
    }
    for (op, r) in spine.into_iter().rev() {
        s.push(' ');
        s.push_str(op.symbol());
        s.push(' ');
        match r {
            AudienceExpr::Name(n) => s.push_str(&n.name),
            AudienceExpr::Binary(..) => {
                s.push('(');
                audience(s, r);
                s.push(')');
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_module;

    /// Formats `src`, checking on the way that both texts parse cleanly, to
    /// the same items, and that the output is a fixed point.
    fn fmt(src: &str) -> String {
        let (module, diags) = parse_module(0, src);
        assert!(diags.is_empty(), "{diags:?}");
        let out = format_module(&module, src);
        let (again, diags) = parse_module(0, &out);
        assert!(diags.is_empty(), "{diags:?}\n{out}");
        assert_eq!(again.items, module.items, "\n{out}");
        assert_eq!(again.comments.len(), module.comments.len(), "\n{out}");
        assert_eq!(format_module(&again, &out), out);
        out
    }

    #[track_caller]
    fn same(src: &str, expected: &str) {
        assert_eq!(fmt(src), expected);
    }

    /// The conditions of a rule, one per line, as formatted.
    fn conditions(when: &str) -> Vec<String> {
        let out = fmt(&format!("rule r {{ when {when} then m() }}"));
        out.lines()
            .skip_while(|l| l.trim() != "when")
            .skip(1)
            .take_while(|l| l.trim() != "then")
            .map(|l| l.trim().to_string())
            .collect()
    }

    fn condition(when: &str) -> String {
        let mut c = conditions(when);
        assert_eq!(c.len(), 1, "{c:?}");
        c.remove(0)
    }

    #[test]
    fn every_construct() {
        let src = r#"include "common.nudge"
event order_created { key user_id: string, order_id: string amount: float
  time created_at: timestamp  tags: list<string> coupon: string? }
fact profile { key user_id: string birthday: timestamp? time: int key: string }
audience vip
audience mix = active and not bought or (a xor b)
cap sms_daily { limit: 2 per calendar day, channel: "sms" exempt: [vip] }
coupon gift { value: 20.0 stock: 1000 }
experiment copy { layer: messaging arms: { control: 0%, a: 50%, b: 50% } }
campaign welcome { budget: 1000 }
machine lifecycle { initial: prospect prospect -> new, high_intent new -> active }
action tag_user(user: string, tag: string, note: string?)
function uplift(user_id: string) -> string
rule unpaid {
    salience -10 group best no-loop campaign welcome
    when
        o: order_created(amount > 100 and coupon == null, "vip" in tags) within 10m after x
        not order_paid(order_id == o.order_id) after o within 10m
        exists profile(user_id == o.user_id)
        views: count(page_view(user_id == o.user_id)) >= 3 within 30m by user_id, category
        total: sum(order_created(user_id == o.user_id), amount) > 500.5
        o.user_id in audience vip
        uplift(o.user_id) == "persuadable"
    then
        message(channel: ["wechat", "sms"], template: "waiting", user: o.user_id)
        after 1440m regardless coupon(template: gift, user: o.user_id)
        after 2h message(channel: "push", template: "t", user: o.user_id)
        split(experiment: copy, user: o.user_id) {
            a => message(channel: "push", template: "a", user: o.user_id)
            b => { message(channel: "sms", template: "b", user: o.user_id) coupon(template: gift, user: o.user_id) }
            control => {}
        }
        insert tag(user_id: o.user_id, name: "x")
        modify o(amount: 0.0)
        retract o
}"#;
        let expected = r#"include "common.nudge"

event order_created {
    key user_id: string
    order_id: string
    amount: float
    time created_at: timestamp
    tags: list<string>
    coupon: string?
}

fact profile {
    key user_id: string
    birthday: timestamp?
    time: int
    key: string
}

audience vip
audience mix = active and not bought or (a xor b)

cap sms_daily {
    limit: 2 per calendar day
    channel: "sms"
    exempt: [vip]
}

coupon gift {
    value: 20.0
    stock: 1000
}

experiment copy {
    layer: messaging
    arms: { control: 0%, a: 50%, b: 50% }
}

campaign welcome {
    budget: 1000
}

machine lifecycle {
    initial: prospect
    prospect -> new, high_intent
    new -> active
}

action tag_user(user: string, tag: string, note: string?)
function uplift(user_id: string) -> string

rule unpaid {
    salience -10
    group best
    no-loop
    campaign welcome
    when
        o: order_created(amount > 100 and coupon == null, "vip" in tags) within 10m after x
        not order_paid(order_id == o.order_id) after o within 10m
        exists profile(user_id == o.user_id)
        views: count(page_view(user_id == o.user_id)) >= 3 within 30m by user_id, category
        total: sum(order_created(user_id == o.user_id), amount) > 500.5
        o.user_id in audience vip
        uplift(o.user_id) == "persuadable"
    then
        message(channel: ["wechat", "sms"], template: "waiting", user: o.user_id)
        after 1d regardless coupon(template: gift, user: o.user_id)
        after 2h message(channel: "push", template: "t", user: o.user_id)
        split(experiment: copy, user: o.user_id) {
            a => message(channel: "push", template: "a", user: o.user_id)
            b => {
                message(channel: "sms", template: "b", user: o.user_id)
                coupon(template: gift, user: o.user_id)
            }
            control => {}
        }
        insert tag(user_id: o.user_id, name: "x")
        modify o(amount: 0.0)
        retract o
}
"#;
        let (module, _) = parse_module(0, src);
        let out = format_module(&module, src);
        assert_eq!(out, expected);
        let (again, diags) = parse_module(0, &out);
        assert!(diags.is_empty());
        assert_eq!(format_module(&again, &out), out);
        assert_eq!(again.items, module.items);
    }

    #[test]
    fn qualifiers_keep_their_order() {
        let (m, _) = parse_module(
            0,
            "rule r { when p() within 1m after a within 2m after b then m() }",
        );
        let out = format_module(&m, "");
        assert!(
            out.contains("p() within 1m after a within 2m after b\n"),
            "{out}"
        );
        assert_eq!(fmt(&out), out);
    }

    #[test]
    fn empty_input() {
        assert_eq!(format_module(&Module::default(), ""), "");
        same("  \n\n", "");
        same("// only a comment", "// only a comment\n");
    }

    #[test]
    fn comments_survive() {
        let src = "// File header.
// Second line.

include \"common.nudge\" // trailing include

/* block before type */
event order_paid { // after brace
    key user_id: string, // the key
    amount: float   /* money */
    // before last
    time at: timestamp
    // end of fields
}
event empty {}
fact with_comment {
  // nothing yet
}

rule r {
    salience 10 // high
    when // conditions
        o: order_paid(amount > /* inline */ 100)
        // between
        o.amount > 5
    // before then
    then
        message(user: o.user_id) // sent
        split(experiment: copy, user: o.user_id) { // arms
            a => { message(user: o.user_id) } // one
            b => {
                // first
                message(user: o.user_id)
                coupon(user: o.user_id)
            }
            control => {}
        }
    // last
} // after rule

// trailing file comment

/* really
   the end */
";
        let expected = "// File header.
// Second line.

include \"common.nudge\"  // trailing include

/* block before type */
event order_paid {  // after brace
    key user_id: string  // the key
    amount: float  /* money */
    // before last
    time at: timestamp
    // end of fields
}

event empty {}

fact with_comment {
    // nothing yet
}

rule r {
    salience 10  // high
    when  // conditions
        o: order_paid(amount > 100)  /* inline */
        // between
        o.amount > 5
        // before then
    then
        message(user: o.user_id)  // sent
        split(experiment: copy, user: o.user_id) {  // arms
            a => message(user: o.user_id)  // one
            b => {
                // first
                message(user: o.user_id)
                coupon(user: o.user_id)
            }
            control => {}
        }
        // last
}  // after rule

// trailing file comment

/* really
   the end */
";
        same(src, expected);
    }

    #[test]
    fn comments_inside_one_line_nodes_follow_them() {
        same(
            "action f(a: int, // first\n b: int)\naction g()",
            "action f(a: int, b: int)\n// first\naction g()\n",
        );
        same(
            "rule r { when a > /* x */ 1 then m(a: /* y */ 1) /* z */ }",
            "rule r {\n    when\n        a > 1  /* x */\n    then\n        m(a: 1)  /* y */  /* z */\n}\n",
        );
    }

    #[test]
    fn comments_in_parenthesised_conditions() {
        same(
            "rule r { when ( // why\n a > 1) then m() }",
            "rule r {\n    when\n        a > 1\n        // why\n    then\n        m()\n}\n",
        );
    }

    #[test]
    fn contexts() {
        same(
            "// The host's feature store.\ncontext features for add_to_cart { // per insert\n\
             uplift_segment: string?, member_level : int\n  tags: list<string> /* crm */ }\n\
             context crm for add_to_cart {}",
            "// The host's feature store.\ncontext features for add_to_cart {  // per insert\n    \
             uplift_segment: string?\n    member_level: int\n    tags: list<string>  /* crm */\n}\n\n\
             context crm for add_to_cart {}\n",
        );
        // The words of the syntax are names like any other.
        same(
            "context for for context { key key: int time time: timestamp }",
            "context for for context {\n    key key: int\n    time time: timestamp\n}\n",
        );
        same("context context for for {}", "context context for for {}\n");
    }

    #[test]
    fn blank_lines_between_items_only() {
        same(
            "event a {}\n\n\n\nevent b {\n\n x: int\n\n y: int }",
            "event a {}\n\nevent b {\n    x: int\n    y: int\n}\n",
        );
        same("event a {} event b {}", "event a {}\n\nevent b {}\n");
    }

    #[test]
    fn one_line_items_keep_their_grouping() {
        same(
            "include \"a\"\n\n\ninclude \"b\" include \"c\"\naudience d\n// e\naction f()\nevent g {}\nfunction h() -> int",
            "include \"a\"\n\ninclude \"b\"\ninclude \"c\"\naudience d\n// e\naction f()\n\nevent g {}\n\nfunction h() -> int\n",
        );
        same(
            "audience a\n\n// about b\naudience b\n// about c\n\naudience c",
            "audience a\n\n// about b\naudience b\n// about c\n\naudience c\n",
        );
    }

    #[test]
    fn strings_keep_unicode_and_escape_controls() {
        same(
            r#"include "优惠券 \u{1F600} \"q\" \\ \n\t\r\u{7} ok""#,
            "include \"优惠券 😀 \\\"q\\\" \\\\ \\n\\t\\r\\u{7} ok\"\n",
        );
        same("include \"tab\there\"", "include \"tab\\there\"\n");
        same(
            "include \"\u{feff}\u{2028}\"",
            "include \"\u{feff}\u{2028}\"\n",
        );
    }

    #[test]
    fn numbers() {
        same(
            "coupon c { a: 20.0 b: 0.10 c: 1000000000000000000000.0 d: 0.50% e: 12.5% f: 50% g: 007 }",
            "coupon c {\n    a: 20.0\n    b: 0.1\n    c: 1000000000000000000000.0\n    \
             d: 0.5%\n    e: 12.5%\n    f: 50%\n    g: 7\n}\n",
        );
        for f in [0.0, 0.1, 1.5, 1e21, 1e300, 5e-324, f64::MAX, 2.5e-7] {
            let mut s = String::new();
            float(&mut s, f);
            assert!(s.contains('.') && !s.contains('e'), "{s}");
            let src = format!("rule r {{ when a == {s} then m() }}");
            let (m, d) = parse_module(0, &src);
            assert!(d.is_empty(), "{d:?}");
            let Item::Rule(r) = &m.items[0] else { panic!() };
            let Cond::Test(e) = &r.conditions[0] else {
                panic!()
            };
            let ExprKind::Binary(_, _, rhs) = &e.kind else {
                panic!()
            };
            assert_eq!(rhs.kind, ExprKind::Lit(Literal::Float(f)));
            assert_eq!(fmt(&src), fmt(&fmt(&src)));
        }
    }

    #[test]
    fn durations_use_the_largest_exact_unit() {
        let out = fmt("rule r { when p() within 60m then m(a: 90s, b: 0ms, c: 1000ms, d: 1440m) }");
        assert!(out.contains("p() within 1h\n"), "{out}");
        assert!(out.contains("m(a: 90s, b: 0s, c: 1s, d: 1d)"), "{out}");
    }

    #[test]
    fn salience_extremes() {
        same(
            "rule r { salience -9223372036854775808 when a then m() }",
            "rule r {\n    salience -9223372036854775808\n    when\n        a\n    then\n        m()\n}\n",
        );
    }

    #[test]
    fn minimal_parentheses() {
        assert_eq!(
            condition("((a + b)) * c > (a - (b - c)) - ((a - b) - c)"),
            "(a + b) * c > a - (b - c) - (a - b - c)"
        );
        assert_eq!(
            condition("not (a == b) and (not a) == b"),
            "not a == b and (not a) == b"
        );
        assert_eq!(condition("a == (- (a * b)) * (- a)"), "a == -(a * b) * -a");
        assert_eq!(condition("a == - - - b"), "a == - - -b");
        assert_eq!(
            condition("a == (b in audience x) or (a == b) in audience x"),
            "a == (b in audience x) or a == b in audience x"
        );
        assert_eq!(
            condition("(not a) in audience x and not (a in audience x)"),
            "(not a) in audience x and not a in audience x"
        );
        assert_eq!(
            condition("a or (b and c) or ((a or b) and c)"),
            "a or b and c or (a or b) and c"
        );
        assert_eq!(condition("a and (b and c)"), "a and (b and c)");
        assert_eq!(
            condition("(x not in [1, 2.5, \"s\"]) and (y not in audience vip)"),
            "x not in [1, 2.5, \"s\"] and y not in audience vip"
        );
        assert_eq!(condition("not (not a)"), "not not a");
        assert_eq!(condition("(f((a or b), [(c)]))"), "(f(a or b, [c]))");
        assert_eq!(condition("f((a or b), [(c)])"), "f(a or b, [c])");
        assert_eq!(condition("a - (-1)"), "a - -1");
        assert_eq!(condition("a % (b * c) / d"), "a % (b * c) / d");
        assert_eq!(
            condition("a contains (b starts_with c)"),
            "a contains (b starts_with c)"
        );
    }

    #[test]
    fn test_conditions_that_need_parentheses() {
        // A leading `-` would continue the condition before it.
        assert_eq!(condition("(- a > 0)"), "(-a > 0)");
        // A bare call reads as a pattern, `not` and a call as a negated pattern.
        assert_eq!(condition("(f(x))"), "(f(x))");
        assert_eq!(condition("f(x) == 1"), "f(x) == 1");
        assert_eq!(condition("(not f(x))"), "(not f(x))");
        assert_eq!(condition("not f(x) == 1"), "not f(x) == 1");
        assert_eq!(condition("not f(x) and g(y)"), "not f(x) and g(y)");
        assert_eq!(condition("not not f(x)"), "not not f(x)");
        assert_eq!(condition("not -f(x)"), "not -f(x)");
        assert_eq!(condition("not g(x)"), "not g(x)");
        // An aggregate name called on a call reads as an aggregate.
        assert_eq!(condition("(count(p(x)) > 3)"), "(count(p(x)) > 3)");
        assert_eq!(condition("(sum(p(x), y) > 3)"), "(sum(p(x), y) > 3)");
        assert_eq!(condition("count(x) > 3"), "count(x) > 3");
        assert_eq!(condition("count(p(x), y, z) > 3"), "count(p(x), y, z) > 3");
        // Operators spelled as names would apply to the condition before.
        assert_eq!(condition("(contains == 1)"), "(contains == 1)");
        assert_eq!(condition("(ends_with(x))"), "(ends_with(x))");
        assert_eq!(condition("contains_x == 1"), "contains_x == 1");
    }

    #[test]
    fn conditions_that_would_run_together() {
        // `b` followed by `(` would become a call of `b`.
        assert_eq!(
            conditions("a > (b) (c or d) == e"),
            ["(a > b)", "(c or d) == e"]
        );
        assert_eq!(conditions("a > (b) (-c < 0)"), ["(a > b)", "(-c < 0)"]);
        assert_eq!(conditions("a > b.c (-c < 0)"), ["a > b.c", "(-c < 0)"]);
        assert_eq!(conditions("a > (b) c"), ["a > b", "c"]);
        assert_eq!(
            conditions("n: count(p()) >= (m) (c or d) == e"),
            ["n: count(p()) >= (m)", "(c or d) == e"]
        );
        assert_eq!(
            conditions("count(p()) >= (m) by k (c or d) == e"),
            ["count(p()) >= m by k", "(c or d) == e"]
        );
        assert_eq!(
            conditions("not p() (-a > 0) exists q() (x in audience a) (c or d) == 1"),
            [
                "not p()",
                "(-a > 0)",
                "exists q()",
                "x in audience a",
                "(c or d) == 1"
            ]
        );
    }

    #[test]
    fn branches() {
        same(
            "rule r { when a then s() { x => { m() } y => {} z => { m() n() } w => s() {} } t() {} }",
            "rule r {
    when
        a
    then
        s() {
            x => m()
            y => {}
            z => {
                m()
                n()
            }
            w => s() {}
        }
        t() {}
}
",
        );
        same(
            "rule r { when a then s() { x => after 1h regardless s() { y => m() } } }",
            "rule r {
    when
        a
    then
        s() {
            x => after 1h regardless s() {
                y => m()
            }
        }
}
",
        );
    }

    #[test]
    fn long_argument_lists_go_one_per_line() {
        same(
            r#"rule r { when a then
    message(channel: ["wechat", "sms"], template: "welcome", user: o.user_id, title: "欢迎来到 Lumen！")
    after 3d split(experiment: copy, user: o.user_id, note: "a long enough note to need more room") {
        a => message(channel: "push", template: "a", /* why */ user: o.user_id, extra: 1,
                     more_arguments: 2) // done
    }
    m(a: 1)
}"#,
            r#"rule r {
    when
        a
    then
        message(
            channel: ["wechat", "sms"],
            template: "welcome",
            user: o.user_id,
            title: "欢迎来到 Lumen！",
        )
        after 3d split(
            experiment: copy,
            user: o.user_id,
            note: "a long enough note to need more room",
        ) {
            a => message(
                channel: "push",
                template: "a",  /* why */
                user: o.user_id,
                extra: 1,
                more_arguments: 2,
            )  // done
        }
        m(a: 1)
}
"#,
        );
    }

    #[test]
    fn settings_words() {
        same(
            "cap c { list: [a b, \"c\", [1, 2],] map: {} m2: { a: 1 2, b: { c: d } } n: null t: true }",
            "cap c {
    list: [a b, \"c\", [1, 2]]
    map: {}
    m2: { a: 1 2, b: { c: d } }
    n: null
    t: true
}
",
        );
        same(
            "audience y = ((a or b) or c) and (d and not (e xor f))",
            "audience y = a or b or c and (d and not (e xor f))\n",
        );
    }

    #[test]
    fn names_that_look_like_keywords() {
        same(
            "event e { key key: string time time: int key: int time: int list: list<list> }",
            "event e {\n    key key: string\n    time time: int\n    key: int\n    time: int\n    list: list<list>\n}\n",
        );
        same(
            "rule r { when a then insert(x: 1) retract(y: 2) modify m(z: 3) after 1s regardless regardless() }",
            "rule r {
    when
        a
    then
        insert(x: 1)
        retract(y: 2)
        modify m(z: 3)
        after 1s regardless regardless()
}
",
        );
    }

    #[test]
    fn never_panics_on_nonsense_spans() {
        let src = "event e {} rule r { when a then s() {} } // c";
        let (mut m, _) = parse_module(0, src);
        for item in &mut m.items {
            if let Item::Rule(r) = item {
                r.span = Span::new(0, usize::MAX - 1, usize::MAX);
            }
            if let Item::Type(t) = item {
                t.span = Span::new(0, 5, 2);
            }
        }
        m.comments[0].span = Span::new(0, usize::MAX, 3);
        let out = format_module(&m, src);
        assert!(out.contains("// c") && out.contains("rule r {"), "{out}");
    }

    #[test]
    fn never_panics_on_a_mismatched_source() {
        let src = "rule r { when a > 1 // c\n then m() }";
        let (m, _) = parse_module(0, src);
        for other in ["", "x", "日本語のテキスト", &src[..10]] {
            let out = format_module(&m, other);
            assert!(out.contains("// c"));
        }
    }
}
