//! The formatter's contract, checked on random modules.
//!
//! Random syntax trees are written out as rule text by a deliberately naive
//! writer (every compound expression in parentheses, random whitespace and
//! comments between tokens, optional braces and commas where the grammar
//! allows them). The text must parse back to the generated tree; then the
//! formatted text must parse to the same tree, keep every comment in order,
//! and format to itself.

use nudge_core::{write_quoted, Duration, FactKind};
use nudge_dsl::ast::*;
use nudge_dsl::{format_module, parse_module};
use nudge_rete::ir::{AggFunc, ArithOp, CmpOp};
use proptest::prelude::*;
use std::fmt::Write as _;

// ---------------------------------------------------------------- names

/// Words that cannot be names anywhere, or that change the parse where a
/// name starts a condition, an action, a field or a setting.
const RESERVED: &[&str] = &[
    "and",
    "or",
    "not",
    "in",
    "exists",
    "when",
    "then",
    "after",
    "before",
    "within",
    "by",
    "true",
    "false",
    "null",
    "audience",
    "xor",
    "contains",
    "starts_with",
    "ends_with",
    "regardless",
    "count",
    "count_distinct",
    "sum",
    "min",
    "max",
    "avg",
    "list",
    "key",
    "time",
    "insert",
    "modify",
    "retract",
    "include",
    "event",
    "fact",
    "machine",
    "cap",
    "coupon",
    "experiment",
    "campaign",
    "action",
    "function",
    "rule",
];

/// Words that are fine as names inside expressions, where they exercise the
/// formatter's care at the start of a condition.
const EXPR_ONLY: &[&str] = &[
    "count",
    "count_distinct",
    "sum",
    "min",
    "max",
    "avg",
    "contains",
    "starts_with",
    "ends_with",
    "regardless",
    "list",
    "key",
    "time",
    "xor",
    "insert",
    "retract",
    "rule",
    "event",
];

fn ident_of(name: impl Into<String>) -> Ident {
    Ident {
        name: name.into(),
        span: Span::default(),
    }
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "o", "p", "user_id", "amount", "order_paid", "vip", "_", "x1", "Tag", "a_b",
        ])
        .prop_map(str::to_string),
        2 => "[a-zA-Z_][a-zA-Z0-9_]{0,7}",
    ]
    .prop_filter("reserved word", |n| !RESERVED.contains(&n.as_str()))
}

fn ident() -> impl Strategy<Value = Ident> {
    name().prop_map(ident_of)
}

fn expr_ident() -> impl Strategy<Value = Ident> {
    prop_oneof![
        4 => name(),
        1 => prop::sample::select(EXPR_ONLY).prop_map(str::to_string),
    ]
    .prop_map(ident_of)
}

/// Calls named like aggregates read as aggregates at the start of a condition.
fn call_name() -> impl Strategy<Value = Ident> {
    prop_oneof![
        3 => expr_ident(),
        1 => prop::sample::select(vec!["count", "sum", "min", "max", "avg", "count_distinct"])
            .prop_map(ident_of),
    ]
}

/// Field and type names may also be the words that are roles elsewhere.
fn field_ident() -> impl Strategy<Value = Ident> {
    prop_oneof![
        4 => name(),
        1 => prop::sample::select(vec!["key", "time", "list"]).prop_map(str::to_string),
    ]
    .prop_map(ident_of)
}

// ---------------------------------------------------------------- literals

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z \"\\\\\n\r\t]{0,10}",
        prop::sample::select(vec![
            "",
            "优惠券",
            "\u{1F600} emoji",
            "tab\there",
            "quote \" and \\ backslash",
            "\u{0}\u{7f}\u{9f}",
            "\u{feff}bom",
            "// not a comment",
            "/* nor this */",
        ])
        .prop_map(str::to_string),
    ]
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        prop::sample::select(vec![0.0, 0.1, 1.5, 20.0, 1e21, 1e300, 5e-324, f64::MAX]),
        any::<f64>().prop_filter("finite, non-negative", |f| {
            f.is_finite() && f.is_sign_positive()
        }),
    ]
}

fn duration() -> impl Strategy<Value = Duration> {
    let scale = prop::sample::select(vec![
        1i64,
        1_000,
        60_000,
        3_600_000,
        86_400_000,
        604_800_000,
    ]);
    (0i64..100_000, scale).prop_map(|(n, s)| Duration::from_millis(n * s))
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        text().prop_map(Literal::Str),
        (0..=i64::MAX).prop_map(Literal::Int),
        float().prop_map(Literal::Float),
        any::<bool>().prop_map(Literal::Bool),
        Just(Literal::Null),
        duration().prop_map(Literal::Duration),
    ]
}

// ---------------------------------------------------------------- expressions

fn bin_op() -> impl Strategy<Value = BinOp> {
    use CmpOp::*;
    prop::sample::select(vec![
        BinOp::Or,
        BinOp::And,
        BinOp::In,
        BinOp::NotIn,
        BinOp::Cmp(Eq),
        BinOp::Cmp(Ne),
        BinOp::Cmp(Lt),
        BinOp::Cmp(Le),
        BinOp::Cmp(Gt),
        BinOp::Cmp(Ge),
        BinOp::Cmp(Contains),
        BinOp::Cmp(StartsWith),
        BinOp::Cmp(EndsWith),
        BinOp::Arith(ArithOp::Add),
        BinOp::Arith(ArithOp::Sub),
        BinOp::Arith(ArithOp::Mul),
        BinOp::Arith(ArithOp::Div),
        BinOp::Arith(ArithOp::Rem),
    ])
}

/// An aggregate's condition compares its value: no string operators.
fn having_op() -> impl Strategy<Value = CmpOp> {
    use CmpOp::*;
    prop::sample::select(vec![Eq, Ne, Lt, Le, Gt, Ge])
}

fn mk(kind: ExprKind) -> Expr {
    Expr {
        kind,
        span: Span::default(),
    }
}

fn expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        literal().prop_map(|l| mk(ExprKind::Lit(l))),
        (expr_ident(), prop::option::of(expr_ident())).prop_map(|(a, b)| mk(ExprKind::Path(a, b))),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            1 => prop::collection::vec(inner.clone(), 0..3).prop_map(|v| mk(ExprKind::List(v))),
            2 => (call_name(), prop::collection::vec(inner.clone(), 0..3))
                .prop_map(|(n, a)| mk(ExprKind::Call(n, a))),
            1 => (prop::bool::ANY, inner.clone()).prop_map(|(not, e)| {
                let op = if not { UnOp::Not } else { UnOp::Neg };
                mk(ExprKind::Unary(op, Box::new(e)))
            }),
            3 => (bin_op(), inner.clone(), inner.clone())
                .prop_map(|(op, l, r)| mk(ExprKind::Binary(op, Box::new(l), Box::new(r)))),
            1 => (inner, ident(), any::<bool>()).prop_map(|(e, audience, negated)| {
                mk(ExprKind::InAudience {
                    expr: Box::new(e),
                    audience,
                    negated,
                })
            }),
        ]
    })
}

// ---------------------------------------------------------------- conditions

fn qualifier() -> impl Strategy<Value = Qualifier> {
    prop_oneof![
        ident().prop_map(|i| Qualifier::After(i, Span::default())),
        ident().prop_map(|i| Qualifier::Before(i, Span::default())),
        duration().prop_map(|d| Qualifier::Within(d, Span::default())),
    ]
}

fn pattern() -> impl Strategy<Value = PatternAst> {
    (
        prop::option::of(ident()),
        ident(),
        prop::collection::vec(expr(), 0..3),
        prop::collection::vec(qualifier(), 0..3),
    )
        .prop_map(|(binding, ty, tests, qualifiers)| PatternAst {
            binding,
            ty,
            tests,
            qualifiers,
            span: Span::default(),
        })
}

fn agg_func() -> impl Strategy<Value = AggFunc> {
    use AggFunc::*;
    prop::sample::select(vec![Count, CountDistinct, Sum, Min, Max, Avg])
}

fn condition() -> impl Strategy<Value = Cond> {
    prop_oneof![
        3 => pattern().prop_map(Cond::Pattern),
        1 => pattern().prop_map(|p| Cond::Not(p, Span::default())),
        1 => pattern().prop_map(|p| Cond::Exists(p, Span::default())),
        2 => (
            prop::option::of(ident()),
            agg_func(),
            pattern(),
            prop::option::of(expr()),
            prop::option::of((having_op(), expr())),
            prop::option::of(duration()),
            prop::collection::vec(ident(), 0..3),
        )
            .prop_map(|(binding, f, source, value, having, within, by)| {
                Cond::Aggregate(AggregateAst {
                    binding,
                    func: (f, Span::default()),
                    source,
                    value,
                    having,
                    within: within.map(|d| (d, Span::default())),
                    by,
                    span: Span::default(),
                })
            }),
        4 => expr().prop_map(Cond::Test),
    ]
}

// ---------------------------------------------------------------- actions

fn named_args() -> impl Strategy<Value = Vec<NamedArg>> {
    prop::collection::vec(
        (ident(), expr()).prop_map(|(name, value)| NamedArg {
            name,
            value,
            span: Span::default(),
        }),
        0..3,
    )
}

fn action_name() -> impl Strategy<Value = Ident> {
    prop_oneof![
        4 => name(),
        1 => prop::sample::select(vec!["insert", "modify", "retract"]).prop_map(str::to_string),
    ]
    .prop_map(ident_of)
}

fn act(kind: ActionKind) -> ActionStmt {
    ActionStmt {
        kind,
        span: Span::default(),
    }
}

fn action() -> impl Strategy<Value = ActionStmt> {
    let leaf = prop_oneof![
        3 => (action_name(), named_args()).prop_map(|(name, args)| act(ActionKind::Call {
            name,
            args,
            branches: None,
        })),
        1 => (ident(), named_args()).prop_map(|(t, a)| act(ActionKind::Insert(t, a))),
        1 => (ident(), named_args()).prop_map(|(b, a)| act(ActionKind::Modify(b, a))),
        1 => ident().prop_map(|b| act(ActionKind::Retract(b))),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            (
                duration(),
                any::<bool>(),
                // The grammar allows one delay per action.
                inner.clone().prop_filter("one delay", |a| !matches!(
                    a.kind,
                    ActionKind::Delayed { .. }
                )),
            )
                .prop_map(|(after, regardless, a)| {
                    act(ActionKind::Delayed {
                        after,
                        regardless,
                        action: Box::new(a),
                    })
                }),
            (
                action_name(),
                named_args(),
                prop::collection::vec(
                    (ident(), prop::collection::vec(inner, 0..3)).prop_map(|(label, actions)| {
                        Branch {
                            label,
                            actions,
                            span: Span::default(),
                        }
                    }),
                    0..3,
                ),
            )
                .prop_map(|(name, args, branches)| act(ActionKind::Call {
                    name,
                    args,
                    branches: Some(branches),
                })),
        ]
    })
}

// ---------------------------------------------------------------- items

fn type_ref() -> impl Strategy<Value = TypeRef> {
    (field_ident(), any::<bool>()).prop_map(|(name, list)| TypeRef {
        name,
        list,
        span: Span::default(),
    })
}

fn params() -> impl Strategy<Value = Vec<ParamDecl>> {
    prop::collection::vec(
        (field_ident(), type_ref(), any::<bool>()).prop_map(|(name, ty, optional)| ParamDecl {
            name,
            ty,
            optional,
            span: Span::default(),
        }),
        0..3,
    )
}

fn audience_expr() -> impl Strategy<Value = AudienceExpr> {
    let op = prop::sample::select(vec![SetOp::And, SetOp::Or, SetOp::AndNot, SetOp::Xor]);
    ident()
        .prop_map(AudienceExpr::Name)
        .prop_recursive(3, 8, 2, move |inner| {
            (op.clone(), inner.clone(), inner)
                .prop_map(|(op, l, r)| AudienceExpr::Binary(op, Box::new(l), Box::new(r)))
        })
}

fn setting_value() -> impl Strategy<Value = SettingValue> {
    let word = prop_oneof![
        3 => literal().prop_map(|l| Word::Lit(l, Span::default())),
        2 => prop_oneof![
            (0u32..100_000).prop_map(|n| f64::from(n) / 100.0),
            float(),
        ]
        .prop_map(|p| Word::Percent(p, Span::default())),
        3 => ident().prop_map(Word::Name),
    ];
    let words = |w: BoxedStrategy<Word>| {
        prop::collection::vec(w, 1..4).prop_map(|words| SettingValue {
            words,
            span: Span::default(),
        })
    };
    let word = word.boxed().prop_recursive(2, 12, 3, move |inner| {
        let value = words(inner);
        prop_oneof![
            prop::collection::vec(value.clone(), 0..3).prop_map(|v| Word::List(v, Span::default())),
            prop::collection::vec((ident(), value), 0..3)
                .prop_map(|v| Word::Map(v, Span::default())),
        ]
        .boxed()
    });
    words(word.boxed())
}

fn setting() -> impl Strategy<Value = Setting> {
    (ident(), setting_value()).prop_map(|(name, value)| Setting {
        name,
        value,
        span: Span::default(),
    })
}

fn rule_attr() -> impl Strategy<Value = RuleAttr> {
    prop_oneof![
        any::<i64>().prop_map(|n| RuleAttr::Salience(n, Span::default())),
        ident().prop_map(|g| RuleAttr::Group(g, Span::default())),
        Just(RuleAttr::NoLoop(Span::default())),
        ident().prop_map(|c| RuleAttr::Campaign(c, Span::default())),
    ]
}

/// A field of a type or a context; roles parse in both (the checker
/// refuses them in a context).
fn field_decl() -> impl Strategy<Value = FieldDecl> {
    (
        prop::sample::select(vec![None, Some(FieldRole::Key), Some(FieldRole::Time)]),
        field_ident(),
        type_ref(),
        any::<bool>(),
    )
        .prop_map(|(role, name, ty, optional)| FieldDecl {
            role,
            name,
            ty,
            optional,
            span: Span::default(),
        })
}

/// A context's name and target may be the words of its own syntax.
fn context_ident() -> impl Strategy<Value = Ident> {
    prop_oneof![
        4 => name(),
        1 => prop::sample::select(vec!["context", "for"]).prop_map(str::to_string),
    ]
    .prop_map(ident_of)
}

fn item() -> impl Strategy<Value = Item> {
    let sp = Span::default;
    prop_oneof![
        1 => text().prop_map(move |path| Item::Include(Include { path, span: sp() })),
        1 => (
            any::<bool>(),
            ident(),
            prop::collection::vec(field_decl(), 0..4),
        )
            .prop_map(move |(event, name, fields)| Item::Type(TypeDecl {
                kind: if event { FactKind::Event } else { FactKind::Fact },
                name,
                fields,
                span: sp(),
            })),
        1 => (
            context_ident(),
            context_ident(),
            prop::collection::vec(field_decl(), 0..4),
        )
            .prop_map(move |(name, target, fields)| Item::Context(ContextDecl {
                name,
                target,
                fields,
                span: sp(),
            })),
        1 => (ident(), prop::option::of(audience_expr())).prop_map(move |(name, definition)| {
            Item::Audience(AudienceDecl {
                name,
                definition,
                span: sp(),
            })
        }),
        1 => (
            ident(),
            prop::collection::vec(
                prop_oneof![
                    setting().prop_map(MachineEntry::Setting),
                    (ident(), prop::collection::vec(ident(), 1..4)).prop_map(move |(from, to)| {
                        MachineEntry::Transition(Transition {
                            from,
                            to,
                            span: sp(),
                        })
                    }),
                ],
                0..4,
            ),
        )
            .prop_map(move |(name, entries)| Item::Machine(MachineDecl {
                name,
                entries,
                span: sp(),
            })),
        1 => (
            prop::sample::select(vec![
                SettingsKind::Cap,
                SettingsKind::Coupon,
                SettingsKind::Experiment,
                SettingsKind::Campaign,
            ]),
            ident(),
            prop::collection::vec(setting(), 0..4),
        )
            .prop_map(move |(kind, name, settings)| Item::Settings(SettingsDecl {
                kind,
                name,
                settings,
                span: sp(),
            })),
        1 => (ident(), params()).prop_map(move |(name, params)| Item::Action(ActionDecl {
            name,
            params,
            span: sp(),
        })),
        1 => (ident(), params(), type_ref()).prop_map(move |(name, params, returns)| {
            Item::Function(FunctionDecl {
                name,
                params,
                returns,
                span: sp(),
            })
        }),
        4 => (
            ident(),
            prop::collection::vec(rule_attr(), 0..4),
            prop::collection::vec(condition(), 1..5),
            prop::collection::vec(action(), 1..4),
        )
            .prop_map(move |(name, attrs, conditions, actions)| Item::Rule(RuleDecl {
                name,
                attrs,
                conditions,
                actions,
                span: sp(),
            })),
    ]
}

// ---------------------------------------------------------------- the naive writer

/// Writes a tree as rule text, taking its layout choices from `choices`.
struct Writer<'a> {
    out: String,
    choices: &'a [u8],
    next: usize,
    comments: usize,
}

impl Writer<'_> {
    fn choice(&mut self) -> u8 {
        let c = if self.choices.is_empty() {
            255
        } else {
            self.choices[self.next % self.choices.len()]
        };
        self.next += 1;
        c
    }

    /// Whitespace, or a comment, between two tokens.
    fn gap(&mut self) {
        let n = self.comments;
        match self.choice() % 24 {
            0 => {
                let _ = write!(self.out, " /* c{n} */ ");
                self.comments += 1;
            }
            1 => {
                // Blanks at the end of a comment belong to it.
                let _ = writeln!(
                    self.out,
                    " // c{n}{}",
                    if n.is_multiple_of(3) { " \t" } else { "" }
                );
                self.comments += 1;
            }
            2 => {
                let _ = write!(self.out, "\n/* 多行\n   c{n} */\n");
                self.comments += 1;
            }
            3 => self.out.push('\n'),
            4 => self.out.push_str("\n\n"),
            5 => self.out.push('\t'),
            _ => self.out.push(' '),
        }
    }

    /// Plain whitespace, where the grammar looks ahead over whitespace only.
    fn space(&mut self) {
        let newline = self.choice().is_multiple_of(4);
        self.out.push(if newline { '\n' } else { ' ' });
    }

    /// A token, with a gap before it.
    fn tok(&mut self, t: &str) {
        self.gap();
        self.out.push_str(t);
    }

    fn comma(&mut self, i: usize) {
        if i > 0 {
            self.tok(",");
        }
    }

    /// An optional trailing comma.
    fn maybe_comma(&mut self, any: bool) {
        if any && self.choice().is_multiple_of(3) {
            self.tok(",");
        }
    }

    fn module(&mut self, items: &[Item]) {
        for item in items {
            self.item(item);
            self.gap();
            self.out.push('\n');
        }
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Include(i) => {
                self.tok("include");
                self.string(&i.path);
            }
            Item::Type(t) => {
                self.tok(match t.kind {
                    FactKind::Event => "event",
                    FactKind::Fact => "fact",
                });
                self.tok(&t.name.name);
                self.fields(&t.fields);
            }
            Item::Context(c) => {
                self.tok("context");
                self.tok(&c.name.name);
                self.tok("for");
                self.tok(&c.target.name);
                self.fields(&c.fields);
            }
            Item::Audience(a) => {
                self.tok("audience");
                self.tok(&a.name.name);
                if let Some(d) = &a.definition {
                    self.tok("=");
                    self.audience(d);
                }
            }
            Item::Machine(m) => {
                self.tok("machine");
                self.tok(&m.name.name);
                self.tok("{");
                for e in &m.entries {
                    match e {
                        MachineEntry::Setting(s) => self.setting(s),
                        MachineEntry::Transition(t) => {
                            self.tok(&t.from.name);
                            self.space();
                            self.out.push_str("->");
                            for (i, to) in t.to.iter().enumerate() {
                                self.comma(i);
                                self.tok(&to.name);
                            }
                        }
                    }
                }
                self.tok("}");
            }
            Item::Settings(s) => {
                self.tok(s.kind.keyword());
                self.tok(&s.name.name);
                self.tok("{");
                for st in &s.settings {
                    self.setting(st);
                }
                self.tok("}");
            }
            Item::Action(a) => {
                self.tok("action");
                self.tok(&a.name.name);
                self.params(&a.params);
            }
            Item::Function(f) => {
                self.tok("function");
                self.tok(&f.name.name);
                self.params(&f.params);
                self.tok("->");
                self.type_ref(&f.returns);
            }
            Item::Rule(r) => self.rule(r),
        }
    }

    fn fields(&mut self, fields: &[FieldDecl]) {
        self.tok("{");
        for f in fields {
            match f.role {
                Some(FieldRole::Key) => {
                    self.tok("key");
                    self.space();
                }
                Some(FieldRole::Time) => {
                    self.tok("time");
                    self.space();
                }
                None => self.gap(),
            }
            self.out.push_str(&f.name.name);
            self.tok(":");
            self.type_ref(&f.ty);
            if f.optional {
                self.tok("?");
            }
            self.maybe_comma(true);
        }
        self.tok("}");
    }

    fn string(&mut self, s: &str) {
        self.gap();
        let _ = write_quoted(&mut self.out, s);
    }

    fn type_ref(&mut self, t: &TypeRef) {
        if t.list {
            self.tok("list");
            self.tok("<");
            self.tok(&t.name.name);
            self.tok(">");
        } else {
            self.tok(&t.name.name);
        }
    }

    fn params(&mut self, ps: &[ParamDecl]) {
        self.tok("(");
        for (i, p) in ps.iter().enumerate() {
            self.comma(i);
            self.tok(&p.name.name);
            self.tok(":");
            self.type_ref(&p.ty);
            if p.optional {
                self.tok("?");
            }
        }
        self.maybe_comma(!ps.is_empty());
        self.tok(")");
    }

    fn audience(&mut self, e: &AudienceExpr) {
        match e {
            AudienceExpr::Name(n) => self.tok(&n.name),
            AudienceExpr::Binary(op, l, r) => {
                self.audience_term(l);
                for w in op.symbol().split(' ') {
                    self.tok(w);
                }
                self.audience_term(r);
            }
        }
    }

    fn audience_term(&mut self, e: &AudienceExpr) {
        if let AudienceExpr::Binary(..) = e {
            self.tok("(");
            self.audience(e);
            self.tok(")");
        } else {
            self.audience(e);
        }
    }

    fn setting(&mut self, s: &Setting) {
        self.tok(&s.name.name);
        self.out.push(':');
        self.setting_value(&s.value);
        self.maybe_comma(true);
    }

    fn setting_value(&mut self, v: &SettingValue) {
        for w in &v.words {
            match w {
                Word::Lit(l, _) => self.literal(l),
                Word::Percent(p, _) => self.tok(&format!("{p}%")),
                Word::Name(n) => self.tok(&n.name),
                Word::List(items, _) => {
                    self.tok("[");
                    for (i, v) in items.iter().enumerate() {
                        self.comma(i);
                        self.setting_value(v);
                    }
                    self.maybe_comma(!items.is_empty());
                    self.tok("]");
                }
                Word::Map(entries, _) => {
                    self.tok("{");
                    for (i, (k, v)) in entries.iter().enumerate() {
                        self.comma(i);
                        self.tok(&k.name);
                        self.out.push(':');
                        self.setting_value(v);
                    }
                    self.maybe_comma(!entries.is_empty());
                    self.tok("}");
                }
            }
        }
    }

    fn literal(&mut self, l: &Literal) {
        match l {
            Literal::Str(s) => self.string(s),
            Literal::Int(i) => self.tok(&i.to_string()),
            Literal::Float(f) => {
                let mut t = f.to_string();
                if !t.contains('.') {
                    t.push_str(".0");
                }
                self.tok(&t);
            }
            Literal::Bool(b) => self.tok(if *b { "true" } else { "false" }),
            Literal::Null => self.tok("null"),
            Literal::Duration(d) => {
                // Not always the canonical unit, so the formatter has to pick it.
                let text = if self.choice().is_multiple_of(2) {
                    format!("{}ms", d.as_millis())
                } else {
                    d.to_string()
                };
                self.tok(&text);
            }
        }
    }

    fn rule(&mut self, r: &RuleDecl) {
        self.tok("rule");
        self.tok(&r.name.name);
        self.tok("{");
        for a in &r.attrs {
            match a {
                RuleAttr::Salience(n, _) => {
                    self.tok("salience");
                    self.tok(&n.to_string());
                }
                RuleAttr::Group(g, _) => {
                    self.tok("group");
                    self.tok(&g.name);
                }
                RuleAttr::NoLoop(_) => self.tok("no-loop"),
                RuleAttr::Campaign(c, _) => {
                    self.tok("campaign");
                    self.tok(&c.name);
                }
            }
        }
        self.tok("when");
        for c in &r.conditions {
            self.condition(c);
        }
        self.tok("then");
        for a in &r.actions {
            self.action(a);
        }
        self.tok("}");
    }

    fn condition(&mut self, c: &Cond) {
        match c {
            Cond::Pattern(p) => self.pattern(p),
            Cond::Not(p, _) => {
                self.tok("not");
                self.pattern(p);
            }
            Cond::Exists(p, _) => {
                self.tok("exists");
                self.pattern(p);
            }
            Cond::Aggregate(a) => {
                if let Some(b) = &a.binding {
                    self.tok(&b.name);
                    self.tok(":");
                }
                self.tok(a.func.0.name());
                self.tok("(");
                self.pattern(&a.source);
                if let Some(v) = &a.value {
                    self.tok(",");
                    self.expr(v);
                }
                self.tok(")");
                if let Some((op, e)) = &a.having {
                    self.tok(op.symbol());
                    self.tok("(");
                    self.expr(e);
                    self.tok(")");
                }
                if let Some((d, _)) = &a.within {
                    self.tok("within");
                    self.literal(&Literal::Duration(*d));
                }
                for (i, b) in a.by.iter().enumerate() {
                    self.tok(if i == 0 { "by" } else { "," });
                    self.tok(&b.name);
                }
            }
            Cond::Test(e) => {
                self.tok("(");
                self.expr(e);
                self.tok(")");
            }
        }
    }

    fn pattern(&mut self, p: &PatternAst) {
        if let Some(b) = &p.binding {
            self.tok(&b.name);
            self.tok(":");
        }
        self.tok(&p.ty.name);
        self.exprs("(", &p.tests, ")");
        for q in &p.qualifiers {
            match q {
                Qualifier::After(b, _) => {
                    self.tok("after");
                    self.tok(&b.name);
                }
                Qualifier::Before(b, _) => {
                    self.tok("before");
                    self.tok(&b.name);
                }
                Qualifier::Within(d, _) => {
                    self.tok("within");
                    self.literal(&Literal::Duration(*d));
                }
            }
        }
    }

    fn exprs(&mut self, open: &str, items: &[Expr], close: &str) {
        self.tok(open);
        for (i, e) in items.iter().enumerate() {
            self.comma(i);
            self.expr(e);
        }
        self.maybe_comma(!items.is_empty());
        self.tok(close);
    }

    /// Every compound expression in parentheses: always right, never minimal.
    fn expr(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Lit(l) => self.literal(l),
            ExprKind::Path(a, b) => {
                self.tok(&a.name);
                if let Some(b) = b {
                    self.tok(".");
                    self.tok(&b.name);
                }
            }
            ExprKind::List(items) => self.exprs("[", items, "]"),
            ExprKind::Call(n, args) => {
                self.tok(&n.name);
                self.exprs("(", args, ")");
            }
            ExprKind::Unary(op, x) => {
                self.tok("(");
                self.tok(if *op == UnOp::Not { "not" } else { "-" });
                self.expr(x);
                self.tok(")");
            }
            ExprKind::Binary(op, l, r) => {
                self.tok("(");
                self.expr(l);
                for w in op.symbol().split(' ') {
                    self.tok(w);
                }
                self.expr(r);
                self.tok(")");
            }
            ExprKind::InAudience {
                expr,
                audience,
                negated,
            } => {
                self.tok("(");
                self.expr(expr);
                if *negated {
                    self.tok("not");
                }
                self.tok("in");
                self.tok("audience");
                self.tok(&audience.name);
                self.tok(")");
            }
        }
    }

    fn named_args(&mut self, args: &[NamedArg]) {
        self.tok("(");
        for (i, a) in args.iter().enumerate() {
            self.comma(i);
            self.tok(&a.name.name);
            self.tok(":");
            self.expr(&a.value);
        }
        self.maybe_comma(!args.is_empty());
        self.tok(")");
    }

    fn action(&mut self, a: &ActionStmt) {
        match &a.kind {
            ActionKind::Delayed {
                after,
                regardless,
                action,
            } => {
                self.tok("after");
                self.literal(&Literal::Duration(*after));
                if *regardless {
                    self.tok("regardless");
                }
                self.action(action);
            }
            ActionKind::Insert(t, args) => {
                self.tok("insert");
                self.tok(&t.name);
                self.named_args(args);
            }
            ActionKind::Modify(b, args) => {
                self.tok("modify");
                self.tok(&b.name);
                self.named_args(args);
            }
            ActionKind::Retract(b) => {
                self.tok("retract");
                self.tok(&b.name);
            }
            ActionKind::Call {
                name,
                args,
                branches,
            } => {
                self.tok(&name.name);
                self.named_args(args);
                if let Some(branches) = branches {
                    self.tok("{");
                    for b in branches {
                        self.tok(&b.label.name);
                        self.tok("=>");
                        let braces = b.actions.len() != 1 || self.choice().is_multiple_of(2);
                        if braces {
                            self.tok("{");
                        }
                        for a in &b.actions {
                            self.action(a);
                        }
                        if braces {
                            self.tok("}");
                        }
                    }
                    self.tok("}");
                }
            }
        }
    }
}

fn write_module(items: &[Item], choices: &[u8]) -> (String, usize) {
    let mut w = Writer {
        out: String::new(),
        choices,
        next: 0,
        comments: 0,
    };
    w.module(items);
    (w.out, w.comments)
}

fn comment_texts(m: &Module) -> Vec<&str> {
    m.comments.iter().map(|c| c.text.as_str()).collect()
}

fn check_roundtrip(items: &[Item], choices: &[u8]) -> Result<(), TestCaseError> {
    let (text, written_comments) = write_module(items, choices);
    let (parsed, diags) = parse_module(0, &text);
    prop_assert!(diags.is_empty(), "{diags:?}\n--- text:\n{text}");
    prop_assert_eq!(
        &parsed.items,
        items,
        "the writer and the parser disagree:\n{}",
        text
    );
    prop_assert_eq!(parsed.comments.len(), written_comments);

    let formatted = format_module(&parsed, &text);
    let (reparsed, diags) = parse_module(0, &formatted);
    prop_assert!(
        diags.is_empty(),
        "{diags:?}\n--- text:\n{text}\n--- formatted:\n{formatted}"
    );
    prop_assert_eq!(
        &reparsed.items,
        &parsed.items,
        "\n--- text:\n{}\n--- formatted:\n{}",
        text,
        formatted
    );
    prop_assert_eq!(comment_texts(&reparsed), comment_texts(&parsed));
    for line in formatted.lines().filter(|l| !l.contains("//")) {
        prop_assert!(!line.ends_with([' ', '\t']), "trailing blank: {line:?}");
    }

    let again = format_module(&reparsed, &formatted);
    prop_assert_eq!(&again, &formatted, "\n--- text:\n{}", text);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: ProptestConfig::default().cases.max(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn formatting_round_trips(
        items in prop::collection::vec(item(), 0..5),
        choices in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        check_roundtrip(&items, &choices)?;
    }

    /// Rules alone, many at once: the part of the grammar with the most ways
    /// to go wrong.
    #[test]
    fn rules_round_trip(
        rules in prop::collection::vec(
            (
                ident(),
                prop::collection::vec(rule_attr(), 0..3),
                prop::collection::vec(condition(), 1..7),
                prop::collection::vec(action(), 1..4),
            ),
            1..4,
        ),
        choices in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let items: Vec<Item> = rules
            .into_iter()
            .map(|(name, attrs, conditions, actions)| Item::Rule(RuleDecl {
                name,
                attrs,
                conditions,
                actions,
                span: Span::default(),
            }))
            .collect();
        check_roundtrip(&items, &choices)?;
    }

    /// Layout alone never changes the formatted text, except for which runs
    /// of one-line declarations stay together.
    #[test]
    fn layout_does_not_matter(
        items in prop::collection::vec(item(), 1..4),
        choices in prop::collection::vec(any::<u8>(), 1..64),
    ) {
        // Only whitespace choices: no comments in either text.
        let spaces: Vec<u8> = choices.iter().map(|c| 3 + c % 21).collect();
        let (a, _) = write_module(&items, &spaces);
        let (b, _) = write_module(&items, &[255]);
        let (ma, da) = parse_module(0, &a);
        let (mb, db) = parse_module(0, &b);
        prop_assert!(da.is_empty() && db.is_empty());
        let lines = |text: String| -> Vec<String> {
            text.lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
        };
        prop_assert_eq!(lines(format_module(&ma, &a)), lines(format_module(&mb, &b)));
    }
}
