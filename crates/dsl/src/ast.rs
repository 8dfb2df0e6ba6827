//! The syntax tree: rule text as written, every node with its span.
//!
//! Spans never take part in equality, so two trees that differ only in
//! layout, comments or parentheses compare equal: this is what the
//! formatter's round-trip property is stated in.

use nudge_core::{Duration, FactKind};
use nudge_rete::ir::{AggFunc, ArithOp, CmpOp};
use std::fmt;

/// Index of a source file inside a [`crate::Sources`].
pub type FileId = usize;

/// A byte range of one source file.
#[derive(Clone, Copy, Default, Eq)]
pub struct Span {
    /// The file.
    pub file: FileId,
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// A span of `file` from `start` to `end`.
    pub fn new(file: FileId, start: usize, end: usize) -> Self {
        Span { file, start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span {
            file: self.file,
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

impl PartialEq for Span {
    fn eq(&self, _: &Span) -> bool {
        true
    }
}

impl std::hash::Hash for Span {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// A name as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ident {
    /// The name.
    pub name: String,
    /// Where.
    pub span: Span,
}

/// One parsed file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Module {
    /// Top-level items in order.
    pub items: Vec<Item>,
    /// Comments, with their spans, for the formatter.
    pub comments: Vec<Comment>,
}

/// A comment kept for the formatter.
#[derive(Debug, Clone, PartialEq)]
pub struct Comment {
    /// The text, delimiters included.
    pub text: String,
    /// Where.
    pub span: Span,
}

/// A top-level item.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// `include "file.nudge"`
    Include(Include),
    /// `event x { ... }` or `fact x { ... }`
    Type(TypeDecl),
    /// `context provider for type { ... }`
    Context(ContextDecl),
    /// `audience vip` or `audience a = b and not c`
    Audience(AudienceDecl),
    /// `machine m { ... }`
    Machine(MachineDecl),
    /// `cap`, `coupon`, `experiment`, `campaign` blocks of settings.
    Settings(SettingsDecl),
    /// `action name(param: type, ...)`
    Action(ActionDecl),
    /// `function name(param: type, ...) -> type`
    Function(FunctionDecl),
    /// `rule name { ... }`
    Rule(RuleDecl),
}

impl Item {
    /// The item's span.
    pub fn span(&self) -> Span {
        match self {
            Item::Include(i) => i.span,
            Item::Type(i) => i.span,
            Item::Context(i) => i.span,
            Item::Audience(i) => i.span,
            Item::Machine(i) => i.span,
            Item::Settings(i) => i.span,
            Item::Action(i) => i.span,
            Item::Function(i) => i.span,
            Item::Rule(i) => i.span,
        }
    }
}

/// `include "path"`: another file of the same ruleset, relative to this one.
#[derive(Debug, Clone, PartialEq)]
pub struct Include {
    /// The path as written.
    pub path: String,
    /// Where.
    pub span: Span,
}

/// A fact or event type.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeDecl {
    /// Fact or event.
    pub kind: FactKind,
    /// Type name.
    pub name: Ident,
    /// Fields.
    pub fields: Vec<FieldDecl>,
    /// Where.
    pub span: Span,
}

/// A context provider: fields that host code, registered under `name`,
/// adds to every inserted fact of type `target`, before matching.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextDecl {
    /// The provider's name.
    pub name: Ident,
    /// The type whose facts it enriches.
    pub target: Ident,
    /// The fields it fills, appended to the type's own.
    pub fields: Vec<FieldDecl>,
    /// Where.
    pub span: Span,
}

/// What a field is for, beyond holding a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldRole {
    /// The entity the fact is about (`key user_id: string`).
    Key,
    /// The event time (`time at: timestamp`).
    Time,
}

/// One field of a type.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDecl {
    /// `key` or `time`, if given.
    pub role: Option<FieldRole>,
    /// Field name.
    pub name: Ident,
    /// Field type.
    pub ty: TypeRef,
    /// `?` after the type.
    pub optional: bool,
    /// Where.
    pub span: Span,
}

/// A type as written: `string`, `list<string>`...
#[derive(Debug, Clone, PartialEq)]
pub struct TypeRef {
    /// The base name (`string` in `list<string>`).
    pub name: Ident,
    /// Whether it is `list<...>`.
    pub list: bool,
    /// Where.
    pub span: Span,
}

/// An audience.
#[derive(Debug, Clone, PartialEq)]
pub struct AudienceDecl {
    /// Name.
    pub name: Ident,
    /// Set algebra over other audiences, if computed.
    pub definition: Option<AudienceExpr>,
    /// Where.
    pub span: Span,
}

/// Operators of audience algebra.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOp {
    /// `and`
    And,
    /// `or`
    Or,
    /// `and not`
    AndNot,
    /// `xor`
    Xor,
}

impl SetOp {
    /// As written.
    pub fn symbol(self) -> &'static str {
        match self {
            SetOp::And => "and",
            SetOp::Or => "or",
            SetOp::AndNot => "and not",
            SetOp::Xor => "xor",
        }
    }
}

/// Audience algebra, applied left to right.
#[derive(Debug, Clone, PartialEq)]
pub enum AudienceExpr {
    /// Another audience.
    Name(Ident),
    /// `lhs op rhs`.
    Binary(SetOp, Box<AudienceExpr>, Box<AudienceExpr>),
}

/// A state machine.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineDecl {
    /// Name.
    pub name: Ident,
    /// Settings (`initial: s`) and transitions, in order.
    pub entries: Vec<MachineEntry>,
    /// Where.
    pub span: Span,
}

/// One line of a machine.
#[derive(Debug, Clone, PartialEq)]
pub enum MachineEntry {
    /// `name: value`
    Setting(Setting),
    /// `from -> to, to2`
    Transition(Transition),
}

/// `from -> to, ...`
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// Source state.
    pub from: Ident,
    /// Target states.
    pub to: Vec<Ident>,
    /// Where.
    pub span: Span,
}

/// Which declaration a settings block is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingsKind {
    /// `cap`
    Cap,
    /// `coupon`
    Coupon,
    /// `experiment`
    Experiment,
    /// `campaign`
    Campaign,
}

impl SettingsKind {
    /// As written.
    pub fn keyword(self) -> &'static str {
        match self {
            SettingsKind::Cap => "cap",
            SettingsKind::Coupon => "coupon",
            SettingsKind::Experiment => "experiment",
            SettingsKind::Campaign => "campaign",
        }
    }
}

/// A block of named settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingsDecl {
    /// What it declares.
    pub kind: SettingsKind,
    /// Name.
    pub name: Ident,
    /// Settings in order.
    pub settings: Vec<Setting>,
    /// Where.
    pub span: Span,
}

/// `name: word word ...`
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    /// Setting name.
    pub name: Ident,
    /// Its value.
    pub value: SettingValue,
    /// Where.
    pub span: Span,
}

/// A setting's value: one or more words, as in `2 per calendar day`.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingValue {
    /// The words.
    pub words: Vec<Word>,
    /// Where.
    pub span: Span,
}

/// One word of a setting value.
#[derive(Debug, Clone, PartialEq)]
pub enum Word {
    /// A literal.
    Lit(Literal, Span),
    /// A percentage, as written without `%`.
    Percent(f64, Span),
    /// A bare name.
    Name(Ident),
    /// `[a, b]`
    List(Vec<SettingValue>, Span),
    /// `{k: v, ...}`
    Map(Vec<(Ident, SettingValue)>, Span),
}

impl Word {
    /// Where.
    pub fn span(&self) -> Span {
        match self {
            Word::Lit(_, s) | Word::Percent(_, s) | Word::List(_, s) | Word::Map(_, s) => *s,
            Word::Name(i) => i.span,
        }
    }
}

/// A host action declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionDecl {
    /// Name.
    pub name: Ident,
    /// Parameters.
    pub params: Vec<ParamDecl>,
    /// Where.
    pub span: Span,
}

/// A host function declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionDecl {
    /// Name.
    pub name: Ident,
    /// Parameters.
    pub params: Vec<ParamDecl>,
    /// Result type.
    pub returns: TypeRef,
    /// Where.
    pub span: Span,
}

/// `name: type` (with `?` for an optional action argument).
#[derive(Debug, Clone, PartialEq)]
pub struct ParamDecl {
    /// Name.
    pub name: Ident,
    /// Type.
    pub ty: TypeRef,
    /// Whether a call may leave it out.
    pub optional: bool,
    /// Where.
    pub span: Span,
}

/// A rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleDecl {
    /// Name.
    pub name: Ident,
    /// Attributes before `when`.
    pub attrs: Vec<RuleAttr>,
    /// The `when` part.
    pub conditions: Vec<Cond>,
    /// The `then` part.
    pub actions: Vec<ActionStmt>,
    /// Where.
    pub span: Span,
}

/// A rule attribute.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleAttr {
    /// `salience N`
    Salience(i64, Span),
    /// `group name`
    Group(Ident, Span),
    /// `no-loop`
    NoLoop(Span),
    /// `campaign name`
    Campaign(Ident, Span),
}

impl RuleAttr {
    /// Where.
    pub fn span(&self) -> Span {
        match self {
            RuleAttr::Salience(_, s)
            | RuleAttr::Group(_, s)
            | RuleAttr::NoLoop(s)
            | RuleAttr::Campaign(_, s) => *s,
        }
    }
}

/// A condition of the `when` part.
// Conditions live in one Vec per rule, built once: their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// `b: type(tests) qualifiers`
    Pattern(PatternAst),
    /// `not type(...)`
    Not(PatternAst, Span),
    /// `exists type(...)`
    Exists(PatternAst, Span),
    /// `b: count(type(...)) >= 3 within 30m by f`
    Aggregate(AggregateAst),
    /// A boolean expression over bindings.
    Test(Expr),
}

impl Cond {
    /// Where.
    pub fn span(&self) -> Span {
        match self {
            Cond::Pattern(p) => p.span,
            Cond::Not(_, s) | Cond::Exists(_, s) => *s,
            Cond::Aggregate(a) => a.span,
            Cond::Test(e) => e.span,
        }
    }
}

/// A time qualifier on a pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum Qualifier {
    /// `after b`
    After(Ident, Span),
    /// `before b` (with a `within`, which says how long before)
    Before(Ident, Span),
    /// `within 10m`
    Within(Duration, Span),
}

impl Qualifier {
    /// Where.
    pub fn span(&self) -> Span {
        match self {
            Qualifier::After(_, s) | Qualifier::Before(_, s) | Qualifier::Within(_, s) => *s,
        }
    }
}

/// A pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct PatternAst {
    /// `b:` before the type.
    pub binding: Option<Ident>,
    /// The fact type.
    pub ty: Ident,
    /// Tests inside the parentheses (all must hold).
    pub tests: Vec<Expr>,
    /// `after` / `before` / `within`, in the order written.
    pub qualifiers: Vec<Qualifier>,
    /// Where.
    pub span: Span,
}

/// An aggregate condition.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateAst {
    /// `b:` before the function.
    pub binding: Option<Ident>,
    /// The function and where it is written.
    pub func: (AggFunc, Span),
    /// The aggregated pattern.
    pub source: PatternAst,
    /// The aggregated value, over the pattern's fields.
    pub value: Option<Expr>,
    /// `>= 3`
    pub having: Option<(CmpOp, Expr)>,
    /// `within 30m`
    pub within: Option<(Duration, Span)>,
    /// `by f, g`
    pub by: Vec<Ident>,
    /// Where.
    pub span: Span,
}

/// A literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `"text"`, escapes resolved.
    Str(String),
    /// `42`
    Int(i64),
    /// `4.2`
    Float(f64),
    /// `true` / `false`
    Bool(bool),
    /// `null`
    Null,
    /// `10m`
    Duration(Duration),
}

/// Operators of the expression language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `or`
    Or,
    /// `and`
    And,
    /// A comparison.
    Cmp(CmpOp),
    /// `in`
    In,
    /// `not in`
    NotIn,
    /// Arithmetic.
    Arith(ArithOp),
}

impl BinOp {
    /// As written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "or",
            BinOp::And => "and",
            BinOp::Cmp(op) => op.symbol(),
            BinOp::In => "in",
            BinOp::NotIn => "not in",
            BinOp::Arith(op) => op.symbol(),
        }
    }

    /// Binding power: higher binds tighter.
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And => 2,
            BinOp::Cmp(_) | BinOp::In | BinOp::NotIn => 4,
            BinOp::Arith(ArithOp::Add | ArithOp::Sub) => 5,
            BinOp::Arith(_) => 6,
        }
    }
}

/// Prefix operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnOp {
    /// `not`
    Not,
    /// `-`
    Neg,
}

/// An expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where.
    pub span: Span,
}

/// The kinds of expression.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// A literal.
    Lit(Literal),
    /// `name` or `binding.field`.
    Path(Ident, Option<Ident>),
    /// `[a, b]`
    List(Vec<Expr>),
    /// `f(a, b)`
    Call(Ident, Vec<Expr>),
    /// A prefix operator.
    Unary(UnOp, Box<Expr>),
    /// A binary operator.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `e in audience a` (`negated`: `not in audience`).
    InAudience {
        /// The member tested.
        expr: Box<Expr>,
        /// The audience.
        audience: Ident,
        /// `not in audience`.
        negated: bool,
    },
}

/// An action statement of the `then` part.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionStmt {
    /// What it does.
    pub kind: ActionKind,
    /// Where.
    pub span: Span,
}

/// The kinds of action.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionKind {
    /// `after 10m [regardless] action`
    Delayed {
        /// Delay.
        after: Duration,
        /// Fire even if the conditions no longer hold.
        regardless: bool,
        /// What to do.
        action: Box<ActionStmt>,
    },
    /// `insert type(field: value, ...)`
    Insert(Ident, Vec<NamedArg>),
    /// `modify binding(field: value, ...)`
    Modify(Ident, Vec<NamedArg>),
    /// `retract binding`
    Retract(Ident),
    /// `name(arg: value, ...) { label => action ... }`
    Call {
        /// Action name.
        name: Ident,
        /// Arguments.
        args: Vec<NamedArg>,
        /// Branches, if a block follows.
        branches: Option<Vec<Branch>>,
    },
}

/// `name: value`
#[derive(Debug, Clone, PartialEq)]
pub struct NamedArg {
    /// Argument name.
    pub name: Ident,
    /// Value.
    pub value: Expr,
    /// Where.
    pub span: Span,
}

/// `label => action` or `label => { actions }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Branch {
    /// The label (an experiment arm).
    pub label: Ident,
    /// The actions.
    pub actions: Vec<ActionStmt>,
    /// Where.
    pub span: Span,
}
