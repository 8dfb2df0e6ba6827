//! Context providers: `context NAME for TYPE { fields }` appends fields that
//! host code fills to an event or fact type, and records the provider on the
//! type; rules match those fields like any other. Every misuse is reported.

use nudge_core::{ContextDef, FactKind, FactType, FieldId, Value, ValueType};
use nudge_dsl::ast::Item;
use nudge_dsl::{check, check_str, parse_module, CheckedRuleset, Diagnostic, ErrorKind, Sources};
use nudge_rete::ir::{CmpOp, Condition, Expr, Pattern, Window};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

// ------------------------------------------------------------------ helpers

fn ok(text: &str) -> CheckedRuleset {
    let mut sources = Sources::new();
    check_str(&mut sources, "test.nudge", text)
        .unwrap_or_else(|d| panic!("expected no diagnostics, got:\n{}", sources.render(&d)))
}

/// `(code, "line:col", message)` of every diagnostic, in reported order.
fn summary(text: &str) -> Vec<(&'static str, String, String)> {
    let (diags, sources) = errors(text);
    diags
        .iter()
        .map(|d| {
            let lc = sources.line_col(d.span.file, d.span.start);
            (
                d.kind.code(),
                format!("{}:{}", lc.line, lc.col),
                d.message.clone(),
            )
        })
        .collect()
}

fn errors(text: &str) -> (Vec<Diagnostic>, Sources) {
    let mut sources = Sources::new();
    match check_str(&mut sources, "test.nudge", text) {
        Ok(r) => panic!("expected diagnostics, but it checked: {:?}", r.summary()),
        Err(d) => (d, sources),
    }
}

fn e(code: &'static str, at: &str, message: &str) -> (&'static str, String, String) {
    (code, at.to_string(), message.to_string())
}

fn f(i: u16) -> FieldId {
    FieldId::new(i)
}

fn type_named<'a>(r: &'a CheckedRuleset, name: &str) -> &'a FactType {
    let schema = r.rules().schema();
    schema.get(schema.id(name).expect("the type is declared"))
}

fn field_names(t: &FactType) -> Vec<&str> {
    t.fields().iter().map(|f| &*f.name).collect()
}

/// Checks `root` with `files` as the file system.
fn check_in_memory(
    root: &str,
    files: &[(&str, &str)],
) -> (Result<CheckedRuleset, Vec<Diagnostic>>, Sources) {
    let fs: HashMap<PathBuf, String> = files
        .iter()
        .map(|(p, t)| (PathBuf::from(p), t.to_string()))
        .collect();
    let mut sources = Sources::new();
    let id = sources.add(root, fs.get(Path::new(root)).cloned().unwrap_or_default());
    let mut read = |p: &Path| -> io::Result<String> {
        fs.get(p)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
    };
    let result = check(&mut sources, &[id], &mut read);
    (result, sources)
}

// ------------------------------------------------------------------ the schema

const CART: &str = r#"
// The host's feature store: called once per inserted add_to_cart.
context features for add_to_cart {
    uplift_segment: string?
    member_level: int
}

event add_to_cart {
    key user_id: string
    sku: string
    time at: timestamp
}

context crm for add_to_cart { tags: list<string>, vip: bool? }

rule persuadable_cart {
    when
        c: add_to_cart(uplift_segment == "persuadable", member_level >= 3)
        "gold" in c.tags
    then
        message(channel: "push", template: "cart", user: c.user_id, level: c.member_level)
}
"#;

#[test]
fn context_fields_are_appended_after_the_types_own_in_declaration_order() {
    let r = ok(CART);
    let cart = type_named(&r, "add_to_cart");
    let expected = FactType::new("add_to_cart", FactKind::Event)
        .field("user_id", ValueType::String, false)
        .field("sku", ValueType::String, false)
        .field("at", ValueType::Timestamp, false)
        .field("uplift_segment", ValueType::String, true)
        .field("member_level", ValueType::Int, false)
        .field("tags", ValueType::StringList, false)
        .field("vip", ValueType::Bool, true)
        .with_key("user_id")
        .and_then(|t| t.with_time("at"))
        .and_then(|t| t.with_context("features", &["uplift_segment", "member_level"]))
        .and_then(|t| t.with_context("crm", &["tags", "vip"]))
        .expect("a valid type");
    assert_eq!(cart, &expected);
    assert_eq!(
        cart.contexts(),
        &[
            ContextDef {
                name: "features".into(),
                fields: vec![f(3), f(4)],
            },
            ContextDef {
                name: "crm".into(),
                fields: vec![f(5), f(6)],
            },
        ]
    );
    // A context is not a type of its own.
    assert_eq!(r.summary().types, 1);
}

#[test]
fn rules_match_context_fields_like_any_other() {
    let r = ok(CART);
    let rule = &r.rules().rules()[0];
    let Condition::Pattern(Pattern {
        tests,
        joins,
        window,
        ..
    }) = &rule.conditions[0]
    else {
        panic!("a pattern: {:?}", rule.conditions);
    };
    let cmp = |op, a, b| Expr::Cmp(op, Box::new(a), Box::new(b));
    assert_eq!(
        tests[0],
        cmp(
            CmpOp::Eq,
            Expr::Own(f(3)),
            Expr::Const(Value::Str("persuadable".into()))
        )
    );
    assert_eq!(
        tests[1],
        cmp(CmpOp::Ge, Expr::Own(f(4)), Expr::Const(Value::Int(3)))
    );
    assert_eq!(tests.len(), 3, "{tests:?}");
    assert!(joins.is_empty());
    assert_eq!(*window, Window::default());
}

#[test]
fn one_provider_may_serve_several_types_of_either_kind() {
    let r = ok(r#"
        event add_to_cart { key user_id: string }
        fact profile { key user_id: string  name: string }
        context features for add_to_cart { uplift_segment: string? }
        context features for profile { uplift_segment: string?, member_level: int }
    "#);
    let cart = type_named(&r, "add_to_cart");
    let profile = type_named(&r, "profile");
    assert_eq!(field_names(cart), ["user_id", "uplift_segment"]);
    assert_eq!(
        field_names(profile),
        ["user_id", "name", "uplift_segment", "member_level"]
    );
    assert_eq!(
        cart.contexts(),
        &[ContextDef {
            name: "features".into(),
            fields: vec![f(1)],
        }]
    );
    assert_eq!(
        profile.contexts(),
        &[ContextDef {
            name: "features".into(),
            fields: vec![f(2), f(3)],
        }]
    );
    // Types without a context have none.
    let r = ok("event page_view { key user_id: string }");
    assert!(type_named(&r, "page_view").contexts().is_empty());
}

#[test]
fn a_context_may_extend_a_type_of_another_file() {
    let main = r#"
        include "types.nudge"
        context features for add_to_cart { member_level: int }
        rule r {
            when c: add_to_cart(member_level > 2)
            then message(channel: "push", template: "t", user: c.user_id)
        }
    "#;
    let types = "event add_to_cart { key user_id: string  sku: string }";
    let (result, sources) = check_in_memory(
        "main.nudge",
        &[("main.nudge", main), ("types.nudge", types)],
    );
    let r = result.unwrap_or_else(|d| panic!("{}", sources.render(&d)));
    let cart = type_named(&r, "add_to_cart");
    assert_eq!(field_names(cart), ["user_id", "sku", "member_level"]);
    assert_eq!(&*cart.contexts()[0].name, "features");

    // And the other way round: the context in the included file.
    let main = "include \"features.nudge\"\nevent add_to_cart { key user_id: string }";
    let features = "context features for add_to_cart { member_level: int }";
    let (result, sources) = check_in_memory(
        "main.nudge",
        &[("main.nudge", main), ("features.nudge", features)],
    );
    let r = result.unwrap_or_else(|d| panic!("{}", sources.render(&d)));
    assert_eq!(
        field_names(type_named(&r, "add_to_cart")),
        ["user_id", "member_level"]
    );
}

#[test]
fn an_empty_context_is_registered_with_no_fields() {
    let r = ok("event e { key user_id: string }\ncontext audit for e {}");
    assert_eq!(
        type_named(&r, "e").contexts(),
        &[ContextDef {
            name: "audit".into(),
            fields: vec![],
        }]
    );
}

#[test]
fn the_words_of_the_syntax_stay_usable_as_names() {
    let r = ok(r#"
        fact context { key for: string  context: int }
        context for for context { provided: int }
        rule r {
            when c: context(context > 1, provided > 2)
            then message(channel: "push", template: "t", user: c.for)
        }
    "#);
    let t = type_named(&r, "context");
    assert_eq!(field_names(t), ["for", "context", "provided"]);
    assert_eq!(&*t.contexts()[0].name, "for");
}

// ------------------------------------------------------------------ the syntax tree

#[test]
fn the_parser_keeps_names_fields_and_spans() {
    let text = "context features for add_to_cart {\n    key user_id: string\n    level: int?\n}";
    let (module, diags) = parse_module(0, text);
    assert!(diags.is_empty(), "{diags:?}");
    let [Item::Context(c)] = module.items.as_slice() else {
        panic!("{:?}", module.items)
    };
    let at = |s: nudge_dsl::ast::Span| &text[s.start..s.end];
    assert_eq!(at(c.name.span), "features");
    assert_eq!(at(c.target.span), "add_to_cart");
    assert_eq!(at(c.span), text);
    assert_eq!(c.fields.len(), 2);
    assert_eq!(at(c.fields[0].span), "key user_id: string");
    assert!(c.fields[0].role.is_some());
    assert_eq!(at(c.fields[1].span), "level: int?");
    assert!(c.fields[1].optional);
}

#[test]
fn a_broken_context_does_not_hide_the_next_item() {
    let found = summary(
        "context features add_to_cart { x: int }\n\
         event add_to_cart { key user_id: string }\n\
         context crm for add_to_cart { y: intt }\n",
    );
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!((found[0].0, found[0].1.as_str()), ("E001", "1:18"));
    assert!(found[0].2.contains("`for`"), "{}", found[0].2);
    assert_eq!(found[1], e("E005", "3:34", "unknown field type `intt`"));
}

#[test]
fn a_line_starting_with_the_name_context_is_not_taken_for_an_item() {
    // After the syntax error, the parser looks for the next item; the line
    // `context in audience vip` inside the rule must not be taken for one.
    let text = "event e { key user_id: string }\n\
                rule r {\n\
                    when\n\
                        x: e(user_id == = 1)\n\
                        context in audience vip\n\
                    then m()\n\
                }\n\
                context features for e { level: int }\n";
    let found = summary(text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "E001");
}

// ------------------------------------------------------------------ mistakes

#[test]
fn unknown_target_type_is_reported_with_a_suggestion() {
    let found = summary(
        "event add_to_cart { key user_id: string }\n\
         context features for add_to_crt { member_level: int }\n\
         context crm for zzz_nothing_alike { vip: bool }",
    );
    assert_eq!(
        found,
        [
            e("E005", "2:22", "unknown event or fact type `add_to_crt`"),
            e(
                "E005",
                "3:17",
                "unknown event or fact type `zzz_nothing_alike`"
            ),
        ]
    );
    let (diags, _) = errors("event add_to_cart {}\ncontext features for add_to_crt {}");
    assert_eq!(
        diags[0].help.as_deref(),
        Some("did you mean `add_to_cart`?")
    );
}

#[test]
fn a_machine_is_not_a_target() {
    let text = "machine lifecycle { new -> active }\ncontext features for lifecycle { level: int }";
    let (diags, sources) = errors(text);
    assert_eq!(diags.len(), 1, "{}", sources.render(&diags));
    let d = &diags[0];
    assert_eq!(d.kind, ErrorKind::UnknownType);
    assert_eq!(sources.position(d.span), "test.nudge:2:22");
    assert_eq!(
        d.message,
        "`lifecycle` is a machine: a context cannot add fields to its facts"
    );
    assert_eq!(&text[d.notes[0].0.start..d.notes[0].0.end], "lifecycle");
}

#[test]
fn key_and_time_roles_are_refused() {
    let found = summary(
        "event add_to_cart { key user_id: string }\n\
         context features for add_to_cart {\n\
             key member_id: string\n\
             time scored_at: timestamp\n\
             level: int\n\
         }",
    );
    assert_eq!(
        found,
        [
            e("E013", "3:1", "a context field cannot be a key"),
            e("E014", "4:1", "a context field cannot be the event time"),
        ]
    );
}

#[test]
fn clashing_field_names_are_duplicates() {
    let text = "event add_to_cart { key user_id: string  sku: string }\n\
                context features for add_to_cart { sku: string  level: int  level: int }\n\
                context crm for add_to_cart { level: float  vip: bool }\n";
    let (diags, sources) = errors(text);
    let found: Vec<(ErrorKind, String, String, String)> = diags
        .iter()
        .map(|d| {
            let note = &d.notes[0].0;
            (
                d.kind,
                sources.position(d.span),
                d.message.clone(),
                sources.position(*note),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            (
                ErrorKind::Duplicate,
                "test.nudge:2:36".to_string(),
                "`add_to_cart` already has a field `sku`".to_string(),
                "test.nudge:1:42".to_string(),
            ),
            (
                ErrorKind::Duplicate,
                "test.nudge:2:61".to_string(),
                "field `level` is declared twice".to_string(),
                "test.nudge:2:49".to_string(),
            ),
            (
                ErrorKind::Duplicate,
                "test.nudge:3:31".to_string(),
                "`add_to_cart` already has a field `level`, from context `features`".to_string(),
                "test.nudge:2:49".to_string(),
            ),
        ]
    );
}

#[test]
fn two_contexts_of_one_name_on_one_type_are_duplicates() {
    let found = summary(
        "event add_to_cart { key user_id: string }\n\
         context features for add_to_cart { level: int }\n\
         context features for add_to_cart { segment: string }\n",
    );
    assert_eq!(
        found,
        [e(
            "E004",
            "3:9",
            "context `features` is declared twice for `add_to_cart`"
        )]
    );
}

#[test]
fn a_second_declaration_of_the_type_does_not_repeat_context_errors() {
    let found = summary(
        "event add_to_cart { key user_id: string  level: int }\n\
         event add_to_cart { key user_id: string  level: int }\n\
         context features for add_to_cart { level: int }\n",
    );
    assert_eq!(
        found,
        [
            e("E004", "2:7", "type `add_to_cart` is declared twice"),
            e("E004", "3:36", "`add_to_cart` already has a field `level`"),
        ]
    );
}

#[test]
fn every_context_mistake_is_reported_at_once() {
    let text = r#"event add_to_cart { key user_id: string  sku: string }
machine lifecycle { new -> active }
context features for add_to_crt { level: int }
context features for lifecycle { level: int }
context crm for add_to_cart { key id: string  time at: timestamp  sku: string  tier: integer }
context crm for add_to_cart { other: int }
rule r {
    when c: add_to_cart(tier > 1, missing == 2)
    then message(channel: "push", template: "t", user: c.user_id)
}
"#;
    let codes: Vec<(&str, String)> = summary(text)
        .into_iter()
        .map(|(code, at, _)| (code, at))
        .collect();
    let expected = [
        ("E005", "3:22"),
        ("E005", "4:22"),
        ("E013", "5:31"),
        ("E014", "5:47"),
        ("E004", "5:67"),
        ("E005", "5:86"),
        ("E004", "6:9"),
        // As with a type's own fields, a field of an unknown type is left
        // out, so a rule that reads it is told it is not there.
        ("E006", "8:25"),
        ("E006", "8:35"),
    ];
    let expected: Vec<(&str, String)> = expected
        .iter()
        .map(|(c, at)| (*c, at.to_string()))
        .collect();
    assert_eq!(codes, expected);
}

#[test]
fn the_example_of_the_language_reference_checks() {
    // docs/language.md, "Context providers".
    let r = ok(r#"
event add_to_cart {
    key user_id: string
    sku: string
}

// The host's feature store: called once per inserted add_to_cart.
context features for add_to_cart {
    uplift_segment: string?
    member_level: int
}

rule cart_reminder {
    when
        c: add_to_cart(uplift_segment == "persuadable", member_level >= 3)
    then
        message(channel: "push", template: "cart_reminder", user: c.user_id)
}
"#);
    let cart = type_named(&r, "add_to_cart");
    assert_eq!(
        field_names(cart),
        ["user_id", "sku", "uplift_segment", "member_level"]
    );
    assert_eq!(cart.contexts()[0].fields, [f(2), f(3)]);
}

/// A rule inserting a fact of an enriched type need not pass the context's
/// fields: the provider fills them when the fact is inserted. Its own
/// required fields are still required.
#[test]
fn rule_inserts_leave_context_fields_to_the_provider() {
    let base = "event seen { key user_id: string  time at: timestamp }\n\
                event scored { key user_id: string  time at: timestamp  channel: string }\n\
                context features for scored { score: int }\n";
    ok(&format!(
        "{base}rule copy {{ when s: seen() then insert scored(user_id: s.user_id, at: s.at, channel: \"app\") }}"
    ));
    let (diags, _) = errors(&format!(
        "{base}rule copy {{ when s: seen() then insert scored(user_id: s.user_id, at: s.at) }}"
    ));
    assert_eq!(diags.len(), 1);
    assert!(
        diags[0].message.contains("`channel`"),
        "{}",
        diags[0].message
    );
    assert!(
        !diags[0].message.contains("`score`"),
        "{}",
        diags[0].message
    );
}
