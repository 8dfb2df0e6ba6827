//! The checker's output: the IR rules and declarations a valid ruleset lowers
//! to, the equality of conditions written differently, includes (cycles
//! too), reporting every error rather than the first, and robustness against
//! hostile input.
//!
//! Tests marked `//! does not have yet; run them with `cargo test -p nudge-dsl --test checker
//! -- --ignored`.

use nudge_core::decl::{
    AudienceDecl, AudienceExpr, CalendarUnit, CampaignDecl, CapDecl, CapScope, CouponDecl,
    ExperimentDecl, Limit, MachineDecl, Period, QuietHours, QuietPolicy, Zone,
};
use nudge_core::{
    ActionSignature, Duration, FactKind, FactType, FieldId, FunctionSignature, ParamType, TypeId,
    Value, ValueType,
};
use nudge_dsl::{check, check_str, CheckedRuleset, Diagnostic, ErrorKind, Sources};
use nudge_rete::ir::{
    Action, AggFunc, Aggregate, Arg, CmpOp, Condition, Emit, Expr, FunctionId, Join, Pattern, Rule,
    SetId, Slot, Window,
};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

// ------------------------------------------------------------------ helpers

/// Checks `text`, failing the test with the rendered diagnostics if it has any.
fn ok(text: &str) -> CheckedRuleset {
    let mut sources = Sources::new();
    match check_str(&mut sources, "test.nudge", text) {
        Ok(r) => r,
        Err(d) => panic!("expected no diagnostics, got:\n{}", sources.render(&d)),
    }
}

/// Checks `text`, which must have mistakes; returns them and their rendering.
fn errors(text: &str) -> (Vec<Diagnostic>, String) {
    let mut sources = Sources::new();
    match check_str(&mut sources, "test.nudge", text) {
        Ok(r) => panic!("expected diagnostics, but it checked: {:?}", r.summary()),
        Err(d) => {
            let rendered = sources.render(&d);
            (d, rendered)
        }
    }
}

/// `(code, "line:col", message)` of every diagnostic, in reported order.
fn summary(text: &str) -> Vec<(&'static str, String, String)> {
    let mut sources = Sources::new();
    let diags = match check_str(&mut sources, "test.nudge", text) {
        Ok(r) => panic!("expected diagnostics, but it checked: {:?}", r.summary()),
        Err(d) => d,
    };
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

/// The text a diagnostic's span covers.
fn spanned<'a>(text: &'a str, d: &Diagnostic) -> &'a str {
    &text[d.span.start..d.span.end]
}

fn f(i: u16) -> FieldId {
    FieldId::new(i)
}

fn ty(i: u32) -> TypeId {
    TypeId::new(i)
}

fn s(text: &str) -> Expr {
    Expr::Const(Value::Str(text.into()))
}

fn float(x: f64) -> Expr {
    Expr::Const(Value::Float(x))
}

fn int(i: i64) -> Expr {
    Expr::Const(Value::Int(i))
}

fn cmp(op: CmpOp, a: Expr, b: Expr) -> Expr {
    Expr::Cmp(op, Box::new(a), Box::new(b))
}

fn dur(text: &str) -> Duration {
    text.parse().expect("a valid duration")
}

fn expr_arg(name: &str, e: Expr) -> (Arc<str>, Arg) {
    (name.into(), Arg::Expr(e))
}

fn name_arg(name: &str, value: &str) -> (Arc<str>, Arg) {
    (name.into(), Arg::Name(value.into()))
}

fn emit(action: &str, args: Vec<(Arc<str>, Arg)>) -> Action {
    Action::Emit(Emit {
        action: action.into(),
        args,
        branches: Vec::new(),
    })
}

/// Runs `f` on a thread with the default 2 MiB test stack, so a test of
/// stack safety does not depend on the thread it happens to run on.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .expect("spawn a thread")
        .join()
        .expect("the checker panicked")
}

/// Whether checking `text` returns (either way) without panicking.
fn survives(text: String) -> Result<(), Vec<(ErrorKind, String)>> {
    on_small_stack(move || {
        let mut sources = Sources::new();
        let result = check_str(&mut sources, "nasty.nudge", &text);
        match result {
            Ok(_) => Ok(()),
            Err(d) => {
                // Rendering must not panic either, whatever the spans are.
                let rendered = sources.render(&d);
                assert!(!rendered.is_empty());
                Err(d.into_iter().map(|d| (d.kind, d.message)).collect())
            }
        }
    })
}

// ------------------------------------------------------------------ a valid ruleset, lowered

const VALID: &str = r#"
// Every kind of declaration, and rules that use each kind of condition and action.
event order_paid {
    key user_id: string
    order_id: string
    amount: float
    time paid_at: timestamp
    coupon: string?
}
event page_view { key user_id: string  category: string }
fact profile { key user_id: string  name: string  tier: int? }
machine lifecycle {
    initial: new
    prospect -> new
    new -> active, dormant
    dormant -> active
}
audience vip
audience staff
audience vip_not_staff = vip and not staff
cap sms_daily { limit: 2 per calendar day  channel: "sms"  zone: "Asia/Shanghai"  exempt: [staff] }
cap welcome_weekly { limit: 5 per 7d  campaign: welcome }
coupon gift { value: 20.0  min_spend: 100  stock: 1000  budget: 5000  per_user: 1 per calendar year  valid_for: 30d  shards: 4 }
experiment copy { layer: messaging  traffic: 50%  arms: { control: 10%, a: 45%, b: 45% }  seed: "copy-v2" }
campaign welcome { per_user: 3 per rolling 7d  suppress: [staff]  quiet_hours: "21:00-09:00" drop }
action tag_user(user: string, tag: string, note: string?)
function uplift(user_id: string) -> float

rule unpaid_big_order {
    salience -10
    group best
    no-loop
    campaign welcome
    when
        o: order_paid(amount > 100, coupon == null)
        p: profile(user_id == o.user_id)
        not order_paid(order_id == o.order_id) after o within 10m
        n: count(page_view(user_id == o.user_id)) >= 3 within 30m by category
        o.user_id in audience vip
        uplift(o.user_id) > 0.5
    then
        message(channel: ["wechat", "sms"], template: "waiting", user: o.user_id, name: p.name, views: n.count)
        after 7d regardless coupon(template: gift, user: o.user_id)
        after 1h transition(machine: lifecycle, user: o.user_id, to: active)
        split(experiment: copy, user: o.user_id) {
            a => message(channel: "push", template: "a", user: o.user_id)
            b => { tag_user(user: o.user_id, tag: "b") }
            control => {}
        }
        insert profile(user_id: o.user_id, name: "new")
        modify p(tier: 2)
        retract o
}

rule active_shoppers {
    when
        s: lifecycle(state == "active")
        v: page_view(user_id == s.user_id, category == "shoes")
    then
        tag_user(user: v.user_id, tag: "shoes", note: null)
}
"#;

// Type ids, in declaration order; the machine's fact type comes after the
// types declared before it.
const ORDER: u32 = 0;
const VIEW: u32 = 1;
const PROFILE: u32 = 2;
const LIFECYCLE: u32 = 3;

#[test]
fn valid_ruleset_summary_and_schema() {
    let r = ok(VALID);
    let summary = r.summary();
    assert_eq!(summary.rules, 2);
    assert_eq!(summary.types, 4);
    // 3 audiences, 2 caps, 1 coupon, 1 machine, 1 experiment, 1 campaign, 1 action, 1 function.
    assert_eq!(summary.declarations, 11);

    let schema = r.rules().schema();
    let order = FactType::new("order_paid", FactKind::Event)
        .field("user_id", ValueType::String, false)
        .field("order_id", ValueType::String, false)
        .field("amount", ValueType::Float, false)
        .field("paid_at", ValueType::Timestamp, false)
        .field("coupon", ValueType::String, true)
        .with_key("user_id")
        .and_then(|t| t.with_time("paid_at"))
        .expect("a valid type");
    let view = FactType::new("page_view", FactKind::Event)
        .field("user_id", ValueType::String, false)
        .field("category", ValueType::String, false)
        .with_key("user_id")
        .expect("a valid type");
    let profile = FactType::new("profile", FactKind::Fact)
        .field("user_id", ValueType::String, false)
        .field("name", ValueType::String, false)
        .field("tier", ValueType::Int, true)
        .with_key("user_id")
        .expect("a valid type");
    // A machine is also a fact type: the user's current state and since when.
    let lifecycle = FactType::new("lifecycle", FactKind::Fact)
        .field("user_id", ValueType::String, false)
        .field("state", ValueType::String, false)
        .field("since", ValueType::Timestamp, false)
        .with_key("user_id")
        .expect("a valid type");
    assert_eq!(schema.types(), &[order, view, profile, lifecycle]);
    assert_eq!(schema.id("lifecycle"), Some(ty(LIFECYCLE)));

    let sets: Vec<&str> = r.rules().sets().iter().map(|s| &**s).collect();
    assert_eq!(sets, ["vip", "staff", "vip_not_staff"]);
    assert_eq!(
        r.rules().functions(),
        &[FunctionSignature {
            name: "uplift".into(),
            params: vec![ValueType::String],
            returns: ValueType::Float,
        }]
    );
}

#[test]
fn valid_ruleset_conditions() {
    let r = ok(VALID);
    let rule = &r.rules().rules()[0];
    assert_eq!(&*rule.name, "unpaid_big_order");
    assert_eq!(rule.salience, -10);
    assert_eq!(rule.group.as_deref(), Some("best"));
    assert!(rule.no_loop);

    // Slots: o = 0, p = 1, n = 2 (`not` binds nothing). The two free-standing
    // tests read only `o`, so they move into o's pattern, as filters: the
    // audience's members and the host function's answers change at run time.
    let o = Pattern {
        ty: ty(ORDER),
        tests: vec![
            cmp(CmpOp::Gt, Expr::Own(f(2)), float(100.0)),
            Expr::IsNull(Box::new(Expr::Own(f(4)))),
        ],
        joins: vec![],
        filters: vec![
            cmp(
                CmpOp::Gt,
                Expr::Host(FunctionId::new(0), vec![Expr::Own(f(0))]),
                float(0.5),
            ),
            Expr::InSet(Box::new(Expr::Own(f(0))), SetId::new(0)),
        ],
        window: Window::default(),
    };
    let p = Pattern {
        ty: ty(PROFILE),
        tests: vec![],
        joins: vec![Join {
            field: f(0),
            slot: Slot::new(0),
            other: f(0),
        }],
        filters: vec![],
        window: Window::default(),
    };
    let not_paid = Pattern {
        ty: ty(ORDER),
        tests: vec![],
        joins: vec![Join {
            field: f(1),
            slot: Slot::new(0),
            other: f(1),
        }],
        filters: vec![],
        window: Window::after_within(Slot::new(0), dur("10m")),
    };
    let views = Aggregate {
        func: AggFunc::Count,
        source: Pattern {
            ty: ty(VIEW),
            tests: vec![],
            joins: vec![Join {
                field: f(0),
                slot: Slot::new(0),
                other: f(0),
            }],
            filters: vec![],
            window: Window::default(),
        },
        value: None,
        by: vec![f(1)],
        having: Some((CmpOp::Ge, int(3))),
        within: Some(dur("30m")),
    };
    assert_eq!(
        rule.conditions,
        vec![
            Condition::Pattern(o),
            Condition::Pattern(p),
            Condition::Not(not_paid),
            Condition::Aggregate(views),
        ]
    );

    // The machine's fact type is matched like any other; `user_id == s.user_id` is a join.
    let shoppers = &r.rules().rules()[1];
    assert_eq!(
        shoppers.conditions,
        vec![
            Condition::Pattern(Pattern {
                ty: ty(LIFECYCLE),
                tests: vec![cmp(CmpOp::Eq, Expr::Own(f(1)), s("active"))],
                joins: vec![],
                filters: vec![],
                window: Window::default(),
            }),
            Condition::Pattern(Pattern {
                ty: ty(VIEW),
                tests: vec![cmp(CmpOp::Eq, Expr::Own(f(1)), s("shoes"))],
                joins: vec![Join {
                    field: f(0),
                    slot: Slot::new(0),
                    other: f(0),
                }],
                filters: vec![],
                window: Window::default(),
            }),
        ]
    );
    assert_eq!(shoppers.salience, 0);
    assert_eq!(shoppers.group, None);
    assert!(!shoppers.no_loop);
}

#[test]
fn valid_ruleset_actions() {
    let r = ok(VALID);
    let rule = &r.rules().rules()[0];
    let o_user = || Expr::Bound(Slot::new(0), f(0));
    let expected = vec![
        // Arguments keep the order written; the channel list keeps its
        // fallback order; `n.count` is the aggregate slot's field after its
        // one `by` field.
        emit(
            "message",
            vec![
                expr_arg(
                    "channel",
                    Expr::Const(Value::List(vec!["wechat".into(), "sms".into()].into())),
                ),
                expr_arg("template", s("waiting")),
                expr_arg("user", o_user()),
                expr_arg("name", Expr::Bound(Slot::new(1), f(1))),
                expr_arg("views", Expr::Bound(Slot::new(2), f(1))),
            ],
        ),
        Action::Delayed {
            after: dur("7d"),
            recheck: false,
            action: Box::new(emit(
                "coupon",
                vec![name_arg("template", "gift"), expr_arg("user", o_user())],
            )),
        },
        Action::Delayed {
            after: dur("1h"),
            recheck: true,
            action: Box::new(emit(
                "transition",
                vec![
                    name_arg("machine", "lifecycle"),
                    expr_arg("user", o_user()),
                    name_arg("to", "active"),
                ],
            )),
        },
        Action::Emit(Emit {
            action: "split".into(),
            args: vec![name_arg("experiment", "copy"), expr_arg("user", o_user())],
            branches: vec![
                (
                    "a".into(),
                    vec![emit(
                        "message",
                        vec![
                            expr_arg("channel", s("push")),
                            expr_arg("template", s("a")),
                            expr_arg("user", o_user()),
                        ],
                    )],
                ),
                (
                    "b".into(),
                    vec![emit(
                        "tag_user",
                        vec![expr_arg("user", o_user()), expr_arg("tag", s("b"))],
                    )],
                ),
                ("control".into(), vec![]),
            ],
        }),
        Action::Insert {
            ty: ty(PROFILE),
            fields: vec![(f(0), o_user()), (f(1), s("new"))],
        },
        Action::Modify {
            slot: Slot::new(1),
            fields: vec![(f(2), int(2))],
        },
        Action::Retract { slot: Slot::new(0) },
    ];
    assert_eq!(rule.actions, expected);

    let shoppers = &r.rules().rules()[1];
    assert_eq!(
        shoppers.actions,
        vec![emit(
            "tag_user",
            vec![
                expr_arg("user", Expr::Bound(Slot::new(1), f(0))),
                expr_arg("tag", s("shoes")),
                expr_arg("note", Expr::Const(Value::Null)),
            ],
        )]
    );
}

#[test]
fn valid_ruleset_declarations() {
    let r = ok(VALID);
    let d = r.declarations();
    let named = |n: &str| Box::new(AudienceExpr::Named(n.into()));
    assert_eq!(
        d.audiences,
        vec![
            AudienceDecl {
                name: "vip".into(),
                definition: None,
            },
            AudienceDecl {
                name: "staff".into(),
                definition: None,
            },
            AudienceDecl {
                name: "vip_not_staff".into(),
                definition: Some(AudienceExpr::AndNot(named("vip"), named("staff"))),
            },
        ]
    );
    assert_eq!(
        d.caps,
        vec![
            CapDecl {
                name: "sms_daily".into(),
                limit: Limit {
                    count: 2,
                    period: Period::Calendar(CalendarUnit::Day),
                },
                scope: CapScope::Channel("sms".into()),
                zone: Zone::Named("Asia/Shanghai".into()),
                exempt: vec!["staff".into()],
            },
            CapDecl {
                name: "welcome_weekly".into(),
                limit: Limit {
                    count: 5,
                    period: Period::Rolling(dur("7d")),
                },
                scope: CapScope::Campaign("welcome".into()),
                zone: Zone::User,
                exempt: vec![],
            },
        ]
    );
    assert_eq!(
        d.coupons,
        vec![CouponDecl {
            name: "gift".into(),
            value: 20.0,
            min_spend: Some(100.0),
            discount_bp: None,
            stock: Some(1000),
            budget: Some(5000.0),
            per_user: Some(Limit {
                count: 1,
                period: Period::Calendar(CalendarUnit::Year),
            }),
            valid_for: Some(dur("30d")),
            shards: 4,
        }]
    );
    assert_eq!(
        d.experiments,
        vec![ExperimentDecl {
            name: "copy".into(),
            layer: Some("messaging".into()),
            traffic_bp: 5_000,
            arms: vec![
                ("control".into(), 1_000),
                ("a".into(), 4_500),
                ("b".into(), 4_500)
            ],
            seed: "copy-v2".into(),
        }]
    );
    assert_eq!(
        d.campaigns,
        vec![CampaignDecl {
            name: "welcome".into(),
            per_user: Some(Limit {
                count: 3,
                period: Period::Rolling(dur("7d")),
            }),
            suppress: vec!["staff".into()],
            quiet_hours: Some(QuietHours {
                start: 21 * 60,
                end: 9 * 60,
                policy: QuietPolicy::Drop,
            }),
            zone: Zone::User,
        }]
    );
    assert_eq!(
        d.machines,
        vec![MachineDecl {
            name: "lifecycle".into(),
            states: vec![
                "prospect".into(),
                "new".into(),
                "active".into(),
                "dormant".into()
            ],
            initial: 1,
            transitions: vec![(0, 1), (1, 2), (1, 3), (3, 2)],
        }]
    );
    let string = || ParamType::Value(vec![ValueType::String]);
    assert_eq!(
        d.actions,
        vec![ActionSignature::new("tag_user")
            .param_of("user", string(), true)
            .param_of("tag", string(), true)
            .param_of("note", string(), false)]
    );
    assert_eq!(
        d.functions,
        vec![FunctionSignature {
            name: "uplift".into(),
            params: vec![ValueType::String],
            returns: ValueType::Float,
        }]
    );
    // The first rule belongs to campaign 0 (`welcome`), the second to none.
    assert_eq!(d.rule_campaigns, vec![Some(0), None]);
}

#[test]
fn settings_defaults() {
    let r = ok(r#"
        cap all_channels { limit: 3 }
        coupon plain { value: 5 }
        experiment solo { arms: { only: 100% } }
        campaign quiet { quiet_hours: "22:30-07:15" }
    "#);
    let d = r.declarations();
    assert_eq!(
        d.caps,
        vec![CapDecl {
            name: "all_channels".into(),
            limit: Limit {
                count: 3,
                period: Period::Lifetime,
            },
            scope: CapScope::All,
            zone: Zone::User,
            exempt: vec![],
        }]
    );
    assert_eq!(
        d.coupons,
        vec![CouponDecl {
            name: "plain".into(),
            value: 5.0,
            min_spend: None,
            discount_bp: None,
            stock: None,
            budget: None,
            per_user: None,
            valid_for: None,
            shards: 1,
        }]
    );
    assert_eq!(
        d.experiments,
        vec![ExperimentDecl {
            name: "solo".into(),
            layer: None,
            traffic_bp: 10_000,
            arms: vec![("only".into(), 10_000)],
            seed: "solo".into(),
        }]
    );
    assert_eq!(
        d.campaigns[0].quiet_hours,
        Some(QuietHours {
            start: 22 * 60 + 30,
            end: 7 * 60 + 15,
            policy: QuietPolicy::Defer,
        })
    );
    assert_eq!(d.campaigns[0].per_user, None);
    assert!(r.rules().rules().is_empty());
}

#[test]
fn aggregates_over_values() {
    let r = ok(r#"
        event order_paid { key user_id: string  amount: float  qty: int  time at: timestamp }
        rule spenders {
            when
                o: order_paid()
                total: sum(order_paid(user_id == o.user_id), amount) > 100 within 30d
                avg_qty: avg(order_paid(user_id == o.user_id), qty) >= 2
                last: max(order_paid(user_id == o.user_id), at) by user_id
            then
                message(channel: "push", template: "t", user: o.user_id, total: total.sum, last: last.max, who: last.user_id)
        }
    "#);
    let rule = &r.rules().rules()[0];
    let source = || Pattern {
        ty: ty(0),
        tests: vec![],
        joins: vec![Join {
            field: f(0),
            slot: Slot::new(0),
            other: f(0),
        }],
        filters: vec![],
        window: Window::default(),
    };
    assert_eq!(
        rule.conditions[1..],
        [
            Condition::Aggregate(Aggregate {
                func: AggFunc::Sum,
                source: source(),
                value: Some(Expr::Own(f(1))),
                by: vec![],
                // `sum` of a float compared with an int constant: the constant becomes a float.
                having: Some((CmpOp::Gt, float(100.0))),
                within: Some(dur("30d")),
            }),
            Condition::Aggregate(Aggregate {
                func: AggFunc::Avg,
                source: source(),
                value: Some(Expr::Own(f(2))),
                by: vec![],
                having: Some((CmpOp::Ge, float(2.0))),
                within: None,
            }),
            Condition::Aggregate(Aggregate {
                func: AggFunc::Max,
                source: source(),
                value: Some(Expr::Own(f(3))),
                by: vec![f(0)],
                having: None,
                within: None,
            }),
        ]
    );
    // An aggregate binding's fields: its `by` fields, then the value named after the function.
    assert_eq!(
        rule.actions,
        vec![emit(
            "message",
            vec![
                expr_arg("channel", s("push")),
                expr_arg("template", s("t")),
                expr_arg("user", Expr::Bound(Slot::new(0), f(0))),
                expr_arg("total", Expr::Bound(Slot::new(1), f(0))),
                expr_arg("last", Expr::Bound(Slot::new(3), f(1))),
                expr_arg("who", Expr::Bound(Slot::new(3), f(0))),
            ],
        )]
    );
}

#[test]
fn exists_and_clock_tests_stay_where_they_are() {
    let r = ok(r#"
        event order_paid { key user_id: string  amount: float  time paid_at: timestamp }
        event page_view { key user_id: string  category: string }
        rule recent {
            when
                o: order_paid(amount > 10)
                exists page_view(user_id == o.user_id) within 1h
                now() - o.paid_at > 2h
            then
                message(channel: "push", template: "t", user: o.user_id)
        }
    "#);
    let rule = &r.rules().rules()[0];
    assert_eq!(rule.conditions.len(), 3);
    assert_eq!(
        rule.conditions[1],
        Condition::Exists(Pattern {
            ty: ty(1),
            tests: vec![],
            joins: vec![Join {
                field: f(0),
                slot: Slot::new(0),
                other: f(0),
            }],
            filters: vec![],
            window: Window::within(dur("1h")),
        })
    );
    // A test that reads the clock is not moved into a pattern.
    let Condition::Test(test) = &rule.conditions[2] else {
        panic!("expected a test, got {:?}", rule.conditions[2]);
    };
    let mut reads_clock = false;
    test.visit(&mut |e| reads_clock |= matches!(e, Expr::Call(b, _) if b.reads_clock()));
    assert!(reads_clock, "{test:?}");
}

#[test]
fn coupon_outcome_branches() {
    let r = ok(r#"
        event order_paid { key user_id: string  amount: float }
        coupon gift { value: 10 }
        rule r {
            when o: order_paid(amount > 100)
            then coupon(template: gift, user: o.user_id, reason: "big order") {
                refused => message(channel: "push", template: "sorry", user: o.user_id)
                issued => {}
            }
        }
    "#);
    let user = || Expr::Bound(Slot::new(0), f(0));
    assert_eq!(
        r.rules().rules()[0].actions,
        vec![Action::Emit(Emit {
            action: "coupon".into(),
            args: vec![
                name_arg("template", "gift"),
                expr_arg("user", user()),
                expr_arg("reason", s("big order")),
            ],
            branches: vec![
                (
                    "refused".into(),
                    vec![emit(
                        "message",
                        vec![
                            expr_arg("channel", s("push")),
                            expr_arg("template", s("sorry")),
                            expr_arg("user", user()),
                        ],
                    )],
                ),
                ("issued".into(), vec![]),
            ],
        })]
    );
}

// ------------------------------------------------------------------ equal meanings, equal IR

/// Checks two rules over one schema and returns their conditions.
fn both(first_when: &str, second_when: &str) -> (Vec<Condition>, Vec<Condition>) {
    let text = format!(
        r#"
        event order_paid {{ key user_id: string  order_id: string  amount: float  category: string  level: int  coupon: string? }}
        fact profile {{ key user_id: string  tier: int? }}
        rule first {{ when {first_when} then message(channel: "push", template: "t", user: "u") }}
        rule second {{ when {second_when} then message(channel: "push", template: "t", user: "u") }}
        "#
    );
    let r = ok(&text);
    let rules: &[Rule] = r.rules().rules();
    (rules[0].conditions.clone(), rules[1].conditions.clone())
}

fn assert_same(first_when: &str, second_when: &str) {
    let (a, b) = both(first_when, second_when);
    assert_eq!(a, b, "`{first_when}` and `{second_when}` lower differently");
}

#[test]
fn flipped_comparison_is_the_same_pattern() {
    assert_same("o: order_paid(amount > 100)", "o: order_paid(100 < amount)");
    assert_same("o: order_paid(level <= 3)", "o: order_paid(3 >= level)");
    // And what it is: the field on the left, the int widened to the field's float.
    let (a, _) = both("o: order_paid(100 < amount)", "o: order_paid()");
    assert_eq!(
        a,
        vec![Condition::Pattern(Pattern {
            ty: ty(0),
            tests: vec![cmp(CmpOp::Gt, Expr::Own(f(2)), float(100.0))],
            joins: vec![],
            filters: vec![],
            window: Window::default(),
        })]
    );
}

#[test]
fn or_of_equalities_is_the_same_as_in_list() {
    assert_same(
        r#"o: order_paid(category == "x" or category == "y")"#,
        r#"o: order_paid(category in ["y", "x"])"#,
    );
    assert_same(
        r#"o: order_paid(category in ["x", "y", "x"])"#,
        r#"o: order_paid("y" == category or category == "x")"#,
    );
    let (a, _) = both(
        r#"o: order_paid(category in ["y", "x"])"#,
        "o: order_paid()",
    );
    let Condition::Pattern(p) = &a[0] else {
        panic!("expected a pattern, got {:?}", a[0]);
    };
    assert_eq!(
        p.tests,
        vec![Expr::In(
            Box::new(Expr::Own(f(3))),
            vec![Value::from("x"), Value::from("y")]
        )]
    );
}

#[test]
fn separate_test_line_is_the_same_as_inside_the_pattern() {
    assert_same(
        "o: order_paid() o.amount > 100",
        "o: order_paid(amount > 100)",
    );
    assert_same(
        "o: order_paid() o.amount > 100 o.level == 2",
        "o: order_paid(level == 2, amount > 100)",
    );
    // A join written as a test after both bindings is the join inside the later pattern.
    assert_same(
        "o: order_paid() p: profile() p.user_id == o.user_id",
        "o: order_paid() p: profile(user_id == o.user_id)",
    );
    assert_same(
        "o: order_paid() p: profile() o.user_id == p.user_id",
        "o: order_paid() p: profile(o.user_id == user_id)",
    );
    // The pattern's own binding may name its fields.
    assert_same(
        "o: order_paid(o.amount > 100)",
        "o: order_paid(amount > 100)",
    );
}

#[test]
fn other_spellings_of_one_condition() {
    // `and` inside a pattern is a comma.
    assert_same(
        "o: order_paid(amount > 100 and level == 2)",
        "o: order_paid(level == 2, amount > 100)",
    );
    // Constants fold.
    assert_same(
        "o: order_paid(amount > 50 * 2)",
        "o: order_paid(amount > 100.0)",
    );
    // A negated comparison of non-optional values is the opposite comparison.
    assert_same(
        "o: order_paid(not (amount < 100))",
        "o: order_paid(amount >= 100)",
    );
    // Null tests read the same both ways round.
    assert_same(
        "o: order_paid(null == coupon)",
        "o: order_paid(coupon == null)",
    );
    assert_same(
        "o: order_paid(not (coupon == null))",
        "o: order_paid(coupon != null)",
    );
    // Layout, comments and redundant parentheses do not matter.
    assert_same(
        "o: order_paid( ( amount ) > /* big */ 100 ,\n level == 2 )",
        "o: order_paid(amount>100,level==2)",
    );
}

#[test]
fn different_conditions_stay_different() {
    let (a, b) = both(
        "o: order_paid(amount > 100)",
        "o: order_paid(amount >= 100)",
    );
    assert_ne!(a, b);
    let (a, b) = both(
        r#"o: order_paid(category in ["x", "y"])"#,
        r#"o: order_paid(category not in ["x", "y"])"#,
    );
    assert_ne!(a, b);
    // A negated comparison of an optional field keeps its `not`: with a null
    // tier, `not (tier < 2)` holds but `tier >= 2` does not.
    let (a, b) = both("p: profile(not (tier < 2))", "p: profile(tier >= 2)");
    assert_ne!(a, b);
}

// ------------------------------------------------------------------ includes

/// Checks `root` with `files` as the file system; returns the result, the
/// sources, and the paths read, in order.
fn check_in_memory(
    root: &str,
    files: &[(&str, &str)],
) -> (
    Result<CheckedRuleset, Vec<Diagnostic>>,
    Sources,
    Vec<PathBuf>,
) {
    let fs: HashMap<PathBuf, String> = files
        .iter()
        .map(|(p, t)| (PathBuf::from(p), t.to_string()))
        .collect();
    let mut sources = Sources::new();
    let text = fs.get(Path::new(root)).cloned().unwrap_or_default();
    let id = sources.add(root, text);
    let mut reads = Vec::new();
    let mut read = |p: &Path| -> io::Result<String> {
        reads.push(p.to_path_buf());
        fs.get(p)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
    };
    let result = check(&mut sources, &[id], &mut read);
    (result, sources, reads)
}

const TYPES: &str = "event order_paid { key user_id: string  amount: float }";
const RULE: &str = r#"
    rule big { when o: order_paid(amount > 100) then message(channel: "push", template: "t", user: o.user_id) }
"#;

#[test]
fn includes_are_relative_to_the_including_file_and_loaded_once() {
    let main = r#"
        include "lib/types.nudge"
        include "rules/big.nudge"
    "#;
    let big = format!("include \"../lib/types.nudge\"\ninclude \"./../lib/./types.nudge\"\n{RULE}");
    let (result, sources, reads) = check_in_memory(
        "app/main.nudge",
        &[
            ("app/main.nudge", main),
            ("app/lib/types.nudge", TYPES),
            ("app/rules/big.nudge", &big),
        ],
    );
    let r = match result {
        Ok(r) => r,
        Err(d) => panic!("{}", sources.render(&d)),
    };
    assert_eq!(r.summary().rules, 1);
    assert_eq!(r.summary().types, 1);
    // The types file is reached by three spellings, and read once.
    assert_eq!(
        reads,
        [
            PathBuf::from("app/lib/types.nudge"),
            PathBuf::from("app/rules/big.nudge")
        ]
    );
    assert_eq!(sources.len(), 3);
}

#[test]
fn include_cycles_end_by_themselves() {
    let a = format!("include \"b.nudge\"\n{TYPES}");
    let b = format!("include \"a.nudge\"\ninclude \"b.nudge\"\n{RULE}");
    let (result, sources, reads) = check_in_memory("a.nudge", &[("a.nudge", &a), ("b.nudge", &b)]);
    match result {
        Ok(r) => assert_eq!(r.summary().rules, 1),
        Err(d) => panic!("{}", sources.render(&d)),
    }
    assert_eq!(reads, [PathBuf::from("b.nudge")]);

    // A file that includes itself.
    let selfish = format!("include \"selfish.nudge\"\n{TYPES}\n{RULE}");
    let (result, _, reads) = check_in_memory("selfish.nudge", &[("selfish.nudge", &selfish)]);
    assert!(result.is_ok());
    assert!(reads.is_empty(), "{reads:?}");
}

#[test]
fn missing_include_is_reported_and_the_rest_is_still_checked() {
    let main = format!(
        "include \"types.nudge\"\ninclude \"gone.nudge\"\n{RULE}\nrule bad {{ when o: order_paid(amout > 1) then retract o }}"
    );
    let (result, sources, _) = check_in_memory(
        "dir/main.nudge",
        &[("dir/main.nudge", &main), ("dir/types.nudge", TYPES)],
    );
    let diags = result.expect_err("a missing include is an error");
    let kinds: Vec<ErrorKind> = diags.iter().map(|d| d.kind).collect();
    assert_eq!(kinds, [ErrorKind::Include, ErrorKind::UnknownField]);
    assert_eq!(sources.position(diags[0].span), "dir/main.nudge:2:1");
    assert!(
        diags[0].message.contains("dir/gone.nudge"),
        "{}",
        diags[0].message
    );
}

#[test]
fn mistakes_in_included_files_name_those_files() {
    let lib = format!("{TYPES}\nrule bad {{ when o: order_paid(amount > \"1\") then retract o }}");
    let main = "include \"lib.nudge\"\nrule worse { when o: order_payed() then retract o }";
    let (result, sources, _) =
        check_in_memory("main.nudge", &[("main.nudge", main), ("lib.nudge", &lib)]);
    let diags = result.expect_err("both files have mistakes");
    let positions: Vec<String> = diags.iter().map(|d| sources.position(d.span)).collect();
    // Sorted by file (the root first), then by position.
    assert_eq!(positions, ["main.nudge:2:22", "lib.nudge:2:40"]);
    assert_eq!(diags[0].kind, ErrorKind::UnknownType);
    assert_eq!(diags[1].kind, ErrorKind::TypeMismatch);
}

#[test]
fn declarations_may_come_from_any_file_in_any_order() {
    // The rule file comes first and uses names declared in the file it includes.
    let main = r#"
        include "decls.nudge"
        rule welcome_gift {
            campaign welcome
            when o: order_paid(amount > 100)
            then coupon(template: gift, user: o.user_id)
        }
    "#;
    let decls = format!(
        "{TYPES}\ncoupon gift {{ value: 10 }}\ncampaign welcome {{ per_user: 1 per lifetime }}"
    );
    let (result, sources, _) = check_in_memory(
        "main.nudge",
        &[("main.nudge", main), ("decls.nudge", &decls)],
    );
    let r = result.unwrap_or_else(|d| panic!("{}", sources.render(&d)));
    assert_eq!(r.declarations().rule_campaigns, vec![Some(0)]);
}

// ------------------------------------------------------------------ every error is reported

#[test]
fn every_error_is_reported_not_only_the_first() {
    let text = r#"event order_paid { key user_id: string  amount: float  amount: int }
fact profile { key user_id: string  tier: int? }
cap c { limit: 2 per fortnight }
coupon gift { value: 10 }
rule one {
    when
        o: order_paid(amout > 1, amount == "x")
        p: profile(user_id == o.user_id, tier == "gold")
    then
        coupon(template: gif, user: o.user_id)
        mesage(user: o.user_id)
}
rule two {
    when o: order_payed()
    then message(channel: "push", template: 1, user: "u")
}
rule one {
    when o: order_paid() within 0s
    then after 0s retract o
}
"#;
    let got = summary(text);
    let short: Vec<(&str, &str)> = got.iter().map(|(c, p, _)| (*c, p.as_str())).collect();
    assert_eq!(
        short,
        [
            ("E004", "1:56"),  // field `amount` declared twice
            ("E013", "3:16"),  // limit per fortnight
            ("E006", "7:23"),  // amout
            ("E009", "7:44"),  // amount == "x"
            ("E009", "8:50"),  // tier == "gold"
            ("E007", "10:26"), // unknown coupon gif
            ("E010", "11:9"),  // mesage
            ("E005", "14:13"), // order_payed
            ("E009", "15:45"), // template: 1
            ("E004", "17:6"),  // rule one twice
            ("E014", "18:26"), // within 0s
            ("E014", "19:10"), // after 0s
        ],
        "{got:#?}"
    );
}

#[test]
fn syntax_errors_in_several_items_are_all_reported_with_the_checker_errors() {
    let text = r#"event e { key user_id: string  amount: float }
rule a { when o: e(amount = 1) then retract o }
rule b { when o: e(amount > 1) && o.amount < 5 then retract o }
rule c { when o: e(amont > 1) then retract o }
rule d { when o: e(amount > 1) }
"#;
    let got = summary(text);
    let short: Vec<(&str, &str)> = got.iter().map(|(c, p, _)| (*c, p.as_str())).collect();
    assert_eq!(
        short,
        [
            ("E001", "2:27"),
            ("E001", "3:32"),
            ("E006", "4:20"),
            ("E001", "5:32")
        ],
        "{got:#?}"
    );
}

#[test]
fn diagnostics_point_at_the_culprit() {
    let text = r#"event e { key user_id: string  amount: float  coupon: string? }
rule r {
    when
        o: e(amount > "100", coupon == 3)
        q: e()
        q.amount > threshold
    then
        message(channel: "push", template: "t", user: q.user_id, extra: q.nothing)
}
"#;
    let (diags, rendered) = errors(text);
    let culprits: Vec<&str> = diags.iter().map(|d| spanned(text, d)).collect();
    assert_eq!(
        culprits,
        ["\"100\"", "3", "threshold", "nothing"],
        "{rendered}"
    );
    assert_eq!(
        diags[0].help.as_deref(),
        Some("write the number without quotes: `100`")
    );
    assert!(rendered.contains("test.nudge:4:23"), "{rendered}");
}

#[test]
fn references_to_a_broken_binding_report_nothing_more() {
    // `o` has an unknown type: its uses are not reported again.
    let got = summary(
        r#"event e { key user_id: string }
rule r {
    when
        o: nope(x > 1)
        o.x > 2
    then
        message(channel: "push", template: "t", user: o.user_id)
        retract o
}
"#,
    );
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].0, "E005");
}

// ------------------------------------------------------------------ nasty inputs

const E: &str = "event e { key user_id: string  amount: float  name: string }\n";

fn rule_with(cond: &str) -> String {
    format!(
        "{E}rule r {{ when o: e() {cond} then message(channel: \"push\", template: \"t\", user: o.user_id) }}\n"
    )
}

fn kinds(r: &Result<(), Vec<(ErrorKind, String)>>) -> Vec<ErrorKind> {
    match r {
        Ok(()) => Vec::new(),
        Err(d) => d.iter().map(|(k, _)| *k).collect(),
    }
}

#[test]
fn nesting_beyond_the_limit_is_one_syntax_error() {
    let limit = nudge_dsl::MAX_NESTING;
    let at_limit = rule_with(&format!(
        "{}true{}",
        "(".repeat(limit - 1),
        ")".repeat(limit - 1)
    ));
    assert_eq!(survives(at_limit), Ok(()));
    for depth in [limit + 1, 1_000, 100_000] {
        let deep = rule_with(&format!("{}true{}", "(".repeat(depth), ")".repeat(depth)));
        let r = survives(deep);
        assert_eq!(kinds(&r), [ErrorKind::Syntax], "depth {depth}: {r:?}");
    }
    // Unbalanced, and in every kind of bracket.
    for deep in [
        rule_with(&"(".repeat(10_000)),
        rule_with(&format!("o.name in {}", "[".repeat(10_000))),
        format!("cap c {{ limit: {}", "{".repeat(10_000)),
        format!(
            "{E}rule r {{ when o: e() then split(experiment: x, user: \"u\") {} }}",
            "{ a => ".repeat(10_000)
        ),
    ] {
        let r = survives(deep);
        assert!(kinds(&r).contains(&ErrorKind::Syntax), "{r:?}");
    }
    // Brackets inside strings and comments do not count.
    let quoted = rule_with(&format!(
        "o.name == \"{}\" // {}\n",
        "(".repeat(1_000),
        "[".repeat(1_000)
    ));
    assert_eq!(survives(quoted), Ok(()));
}

#[test]
fn ten_thousand_term_expressions() {
    let and_chain = (0..10_000)
        .map(|i| format!("o.amount > {i}"))
        .collect::<Vec<_>>()
        .join(" and ");
    let sum = vec!["1"; 10_000].join(" + ");
    let list = (0..10_000)
        .map(|i| format!("\"{i}\""))
        .collect::<Vec<_>>()
        .join(", ");
    for (what, cond) in [
        ("and", and_chain),
        ("sum", format!("o.amount > {sum}")),
        ("list", format!("o.name in [{list}]")),
    ] {
        let r = survives(rule_with(&cond));
        // Deep operator chains are refused with a syntax error; a long flat list is fine.
        match what {
            "list" => assert_eq!(r, Ok(()), "{what}"),
            _ => assert_eq!(kinds(&r), [ErrorKind::Syntax], "{what}: {r:?}"),
        }
    }
    // Within the depth limit, a long chain is accepted.
    let ok_chain = (0..100)
        .map(|i| format!("o.amount != {i}"))
        .collect::<Vec<_>>()
        .join(" and ");
    assert_eq!(survives(rule_with(&ok_chain)), Ok(()));
}

#[test]
fn empty_and_comment_only_files_are_empty_rulesets() {
    for text in [
        "",
        "   \n\t\r\n",
        "// only a comment",
        "/* a */ // b\n/* c\n d */\n",
        "\u{feff}",
    ] {
        let r = ok(text);
        assert_eq!(r.summary().rules, 0, "{text:?}");
        assert_eq!(r.summary().types, 0, "{text:?}");
        assert_eq!(r.summary().declarations, 0, "{text:?}");
    }
}

#[test]
fn byte_order_mark_is_ignored() {
    let r = ok(&format!("\u{feff}{}", rule_with("o.amount > 1")));
    assert_eq!(r.summary().rules, 1);
    // A mistake after it is still found on its line.
    let got = summary(&format!("\u{feff}{}", rule_with("o.amount > \"x\"")));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "E009");
    assert!(got[0].1.starts_with("2:"), "{got:?}");
}

#[test]
fn crlf_line_endings_check_and_report_like_lf() {
    let lf = rule_with("o.amount > \"x\"\n o.name == \"y\"");
    let crlf = lf.replace('\n', "\r\n");
    assert_eq!(summary(&crlf), summary(&lf));
    let good = rule_with("o.amount > 1\n// a comment\n o.name == \"y\"").replace('\n', "\r\n");
    assert_eq!(ok(&good).summary().rules, 1);
    let (_, rendered) = errors(&crlf);
    assert!(!rendered.contains('\r'), "{rendered:?}");
}

#[test]
fn chinese_text_in_strings_and_columns_in_characters() {
    let r = ok(&rule_with("o.name == \"优惠券 🎁 \\u{1F600}\""));
    let Condition::Pattern(p) = &r.rules().rules()[0].conditions[0] else {
        panic!("expected a pattern");
    };
    assert_eq!(
        p.tests,
        vec![cmp(CmpOp::Eq, Expr::Own(f(2)), s("优惠券 🎁 😀"))]
    );
    // Columns count characters, not bytes.
    let got = summary(&rule_with("o.name == \"优惠券\" and o.amount > \"优惠\""));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, "2:53", "{got:?}");
    // An identifier outside ASCII is a syntax error, not a panic.
    let r = survives(rule_with("o.名字 == \"x\""));
    assert_eq!(kinds(&r), [ErrorKind::Syntax]);
}

#[test]
fn nul_bytes_and_other_control_characters() {
    for text in [
        "\0".to_string(),
        "\0\0\0rule".to_string(),
        format!("{E}\0rule r {{ when o: e() then retract o }}"),
        rule_with("o.name == \"a\0b\""),
        format!("{E}rule r {{ when o: e(name == \"\u{7}\u{1b}[31m\") then retract o }}"),
        "event \u{0} { }".to_string(),
    ] {
        let _ = survives(text);
    }
    // A NUL inside a string is just a character of the string.
    let r = ok(&rule_with("o.name == \"a\0b\""));
    let Condition::Pattern(p) = &r.rules().rules()[0].conditions[0] else {
        panic!("expected a pattern");
    };
    assert_eq!(p.tests, vec![cmp(CmpOp::Eq, Expr::Own(f(2)), s("a\0b"))]);
}

#[test]
fn truncated_and_garbled_inputs_never_panic() {
    let full = rule_with("o.amount > 1 and o.name in [\"a\", \"b\"]");
    // Every prefix of a valid file, cut at a character boundary.
    let mut cuts = 0;
    for (i, _) in full.char_indices() {
        let _ = survives(full[..i].to_string());
        cuts += 1;
    }
    assert!(cuts > 100);
    for text in [
        "\"",
        "rule",
        "rule r {",
        "rule r { when",
        "event",
        "event e {",
        "}}}}}}",
        "include",
        "include \"",
        "include \"\"",
        "machine m { a -> }",
        "experiment x { arms: { a: 101% } }",
        "experiment x { arms: { a: 99999999999999999999999999999999999999% } }",
        "coupon c { value: 1.7976931348623157e308 }",
        "coupon c { value: 99999999999999999999999999999.5 }",
        "audience a = a",
        "audience a = (((b)))",
        "rule r { when o: e(x == \"\\u{}\") then retract o }",
        "rule r { when o: e(x == \"\\u{FFFFFF}\") then retract o }",
        "rule r { when o: e(x == \"\\",
        "/* never closed",
        "function f() -> list<list<string>>",
        "action a(x: string?, x: int)",
    ] {
        let _ = survives(text.to_string());
        let _ = survives(format!("{E}{text}\n{}", rule_with("true")));
    }
}

#[test]
fn huge_literals_are_bad_literals_not_panics() {
    for cond in [
        "o.amount > 99999999999999999999",
        "o.amount > 1.0e999",
        "o.amount > -9223372036854775808",
    ] {
        let r = survives(rule_with(cond));
        assert!(r.is_err(), "{cond}");
    }
    let r = survives(format!(
        "{E}rule r {{ when o: e() within 99999999999999999999w then retract o }}"
    ));
    assert_eq!(kinds(&r), [ErrorKind::BadLiteral], "{r:?}");
    let r = survives(format!(
        "{E}rule r {{ salience 99999999999 when o: e() then retract o }}"
    ));
    assert_eq!(kinds(&r), [ErrorKind::BadLiteral], "{r:?}");
}

#[test]
fn many_rules_and_many_errors() {
    let mut good = E.to_string();
    let mut bad = E.to_string();
    for i in 0..300 {
        good += &format!("rule r{i} {{ when o: e(amount > {i}) then retract o }}\n");
        bad += &format!("rule r{i} {{ when o: e(amout > {i}) then retract o }}\n");
    }
    assert_eq!(ok(&good).summary().rules, 300);
    let (diags, _) = errors(&bad);
    assert_eq!(diags.len(), 300);
    assert!(diags.iter().all(|d| d.kind == ErrorKind::UnknownField));
}

mod random_input {
    use super::*;
    use proptest::prelude::*;

    /// Tokens of the language, and some that are not.
    const TOKENS: &[&str] = &[
        "rule",
        "r",
        "{",
        "}",
        "when",
        "then",
        "o",
        ":",
        "e",
        "(",
        ")",
        "amount",
        ">",
        "==",
        "=",
        "1",
        "1.5",
        "\"x\"",
        "\"",
        ",",
        ".",
        "o.amount",
        "not",
        "exists",
        "and",
        "or",
        "in",
        "[",
        "]",
        "after",
        "before",
        "within",
        "10m",
        "0s",
        "by",
        "count",
        "sum",
        "retract",
        "modify",
        "insert",
        "message",
        "channel",
        "event",
        "fact",
        "context",
        "for",
        "key",
        "time",
        "string",
        "float",
        "int?",
        "list<string>",
        "cap",
        "limit",
        "per",
        "calendar",
        "day",
        "experiment",
        "arms",
        "50%",
        "machine",
        "->",
        "audience",
        "include",
        "//",
        "/*",
        "*/",
        "\n",
        "\0",
        "优惠",
        "\u{feff}",
        "-",
        "+",
        "*",
        "/",
        "%",
        "null",
        "true",
        "regardless",
        "=>",
        "salience",
        "-5",
        "99999999999999999999",
        "\\",
        "\\u{D800}",
        "split",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

        #[test]
        fn token_soup_never_panics(picks in proptest::collection::vec(0..TOKENS.len(), 0..60)) {
            let text: Vec<&str> = picks.iter().map(|&i| TOKENS[i]).collect();
            let _ = survives(text.join(" "));
        }

        #[test]
        fn token_soup_after_a_valid_prefix_never_panics(picks in proptest::collection::vec(0..TOKENS.len(), 0..40)) {
            let text: Vec<&str> = picks.iter().map(|&i| TOKENS[i]).collect();
            let _ = survives(format!("{}{}", rule_with("o.amount > 1"), text.join(" ")));
        }
    }
}

// ------------------------------------------------------------------ known checker bugs

/// Runs the case `name` of [`child_case`] in a child process, so a stack
/// overflow (which aborts the process) fails only the test that asked.
fn survives_in_child(name: &str) -> bool {
    let exe = std::env::current_exe().expect("the test binary");
    let status = std::process::Command::new(exe)
        .args([
            "--exact",
            "child_case",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("NUDGE_CHECKER_CHILD_CASE", name)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run the test binary");
    status.success()
}

fn child_input(name: &str) -> String {
    match name {
        "not" => rule_with(&format!("{}true", "not ".repeat(2_000))),
        "neg" => rule_with(&format!("o.amount > {}1", "- ".repeat(2_000))),
        "after" => format!(
            "{E}rule r {{ when o: e() then {}retract o }}",
            "after 1d ".repeat(1_000)
        ),
        "chain_at_limit" => rule_with(
            &(0..nudge_dsl::MAX_EXPR_DEPTH)
                .map(|i| format!("o.amount != {i}"))
                .collect::<Vec<_>>()
                .join(" and "),
        ),
        other => panic!("no child case {other}"),
    }
}

/// Not a test of its own: the body of [`survives_in_child`].
#[test]
#[ignore = "helper: run in a child process by the stack-depth tests"]
fn child_case() {
    let Ok(name) = std::env::var("NUDGE_CHECKER_CHILD_CASE") else {
        return;
    };
    let r = survives(child_input(&name));
    if name == "chain_at_limit" {
        // As deep as the parser allows: accepted.
        assert_eq!(r, Ok(()));
    } else {
        // Too deep is a syntax error, never a crash.
        assert!(kinds(&r).contains(&ErrorKind::Syntax), "{r:?}");
    }
}

#[test]
fn expression_at_the_depth_limit_fits_the_stack() {
    assert!(survives_in_child("chain_at_limit"));
}

#[test]
fn deep_not_chain_is_a_syntax_error_not_a_stack_overflow() {
    assert!(survives_in_child("not"));
}

#[test]
fn deep_negation_chain_is_a_syntax_error_not_a_stack_overflow() {
    assert!(survives_in_child("neg"));
}

#[test]
fn deep_after_chain_is_a_syntax_error_not_a_stack_overflow() {
    assert!(survives_in_child("after"));
}

#[test]
fn unterminated_block_comment_is_a_syntax_error() {
    let text = format!("{E}/* forgot to close\n{}", rule_with("o.amount > 1"));
    let got = summary(&text);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].0, got[0].1.as_str()), ("E001", "2:1"));
}

#[test]
fn negated_host_function_line_is_accepted() {
    ok(r#"
        event order_paid { key user_id: string  amount: float }
        function is_vip(user_id: string) -> bool
        rule r {
            when
                o: order_paid(amount > 1)
                not is_vip(o.user_id)
            then
                retract o
        }
    "#);
}

#[test]
fn negated_builtin_comparison_line_is_accepted() {
    ok(r#"
        event order_paid { key user_id: string  tags: list<string> }
        rule r {
            when
                o: order_paid()
                not len(o.tags) > 2
            then
                retract o
        }
    "#);
}

#[test]
fn constant_overflow_and_division_by_zero_are_reported() {
    for cond in [
        "n > 9223372036854775807 + 1",
        "n > 9223372036854775807 * 2",
        "n > 1 / 0",
        "n < 7 % 0",
    ] {
        let text = format!(
            "event e {{ key user_id: string  n: int }}\nrule r {{ when o: e({cond}) then retract o }}"
        );
        let mut sources = Sources::new();
        assert!(
            check_str(&mut sources, "test.nudge", &text).is_err(),
            "`{cond}` was accepted"
        );
    }
}

#[test]
fn bad_literal_in_a_declaration_is_reported_once() {
    let got = summary(
        r#"event e { key user_id: string }
coupon gift { value: 20.0  stock: 99999999999999999999 }
rule r { when o: e() then coupon(template: gift, user: o.user_id) }
"#,
    );
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].0, "E002");
}

#[test]
fn bad_arms_are_reported_once() {
    let got = summary(
        r#"event e { key user_id: string }
experiment copy { arms: { a: 50%, b: 40% } }
rule r {
    when o: e()
    then split(experiment: copy, user: o.user_id) { a => retract o  b => {} }
}
"#,
    );
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].0, "E013");
}

#[test]
fn no_remove_quotes_help_for_string_operators() {
    let (diags, rendered) = errors(
        "event e { key user_id: string  code: int }\nrule r { when o: e(code starts_with \"1\") then retract o }",
    );
    assert_eq!(diags.len(), 1, "{rendered}");
    assert_eq!(diags[0].help, None, "{rendered}");
}

#[test]
fn aggregate_binding_in_retract_and_modify_is_worded_right() {
    let (diags, rendered) = errors(&format!(
        "{E}rule r {{ when o: e() n: count(e()) >= 1 then retract n modify n(count: 2) }}"
    ));
    assert!(
        !rendered.contains("retractd") && !rendered.contains("modifyd"),
        "{rendered}"
    );
    assert_eq!(diags.len(), 2);
}

#[test]
fn spans_do_not_cover_trailing_whitespace() {
    // A bare field name before an operator.
    let text =
        "event e { key user_id: string  n: int }\nrule r { when o: e(n    == null) then retract o }";
    let (diags, _) = errors(text);
    assert_eq!(spanned(text, &diags[0]), "n");
    // A setting value followed by another setting.
    let text = "coupon c { value: \"20\"    stock: 1 }";
    let (diags, _) = errors(text);
    assert_eq!(spanned(text, &diags[0]), "\"20\"");
    // A field declaration followed by another: the note on the first key.
    let text = "fact p {\n    key a: string\n    key b: string\n}";
    let (diags, _) = errors(text);
    assert_eq!(spanned(text, &diags[0]), "key b: string");
    let note = diags[0].notes[0].0;
    assert_eq!(&text[note.start..note.end], "key a: string");
    // A delayed action followed by the end of the rule.
    let text = format!("{E}rule r {{ when o: e() then after 0m retract o\n}}");
    let (diags, _) = errors(&text);
    assert!(
        !spanned(&text, &diags[0]).ends_with(char::is_whitespace),
        "{:?}",
        spanned(&text, &diags[0])
    );
}

#[test]
fn unterminated_string_is_named() {
    let (diags, rendered) = errors(&format!(
        "{E}rule r {{ when o: e() then message(channel: \"push\", user: o.user_id, template: \"oops)\n}}"
    ));
    assert_eq!(diags.len(), 1);
    let m = diags[0].message.to_lowercase();
    assert!(
        m.contains("string")
            && (m.contains("unterminated") || m.contains("not closed") || m.contains("closing")),
        "{rendered}"
    );
}

#[test]
fn unknown_escape_is_named() {
    let (diags, rendered) = errors(&rule_with("o.name == \"a\\xb\""));
    assert_eq!(diags.len(), 1);
    assert!(diags[0].message.contains("escape"), "{rendered}");
}

#[test]
fn misspelt_required_setting_is_reported_once() {
    let got = summary("cap sms { limt: 2 per calendar day }");
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].0, "E013");
    assert!(got[0].2.contains("limt"), "{got:#?}");
}

#[test]
fn misspelt_required_argument_is_reported_once() {
    let got = summary(&format!(
        "{E}action tag_user(user: string, tag: string)\nrule r {{ when o: e() then tag_user(user: o.user_id, tags: \"x\") }}"
    ));
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(got[0].2.contains("tags"), "{got:#?}");
}

#[test]
fn audience_cycle_is_reported_once() {
    let got = summary("audience a = b\naudience b = a\n");
    assert_eq!(got.len(), 1, "{got:#?}");
}

#[test]
fn misspelt_function_line_suggests_the_function() {
    let (diags, rendered) = errors(&format!(
        "{E}function is_vip(user_id: string) -> bool\nrule r {{ when o: e() is_vp(o.user_id) then retract o }}"
    ));
    assert_eq!(diags.len(), 1);
    assert_eq!(
        diags[0].help.as_deref(),
        Some("did you mean `is_vip`?"),
        "{rendered}"
    );
}

#[test]
fn in_list_on_a_list_field_gives_a_useful_message() {
    let (diags, rendered) = errors(
        "event e { key user_id: string  tags: list<string> }\nrule r { when o: e(tags in [\"a\", \"b\"]) then retract o }",
    );
    assert_eq!(diags.len(), 1);
    assert!(
        !diags[0].message.contains("list<string> values"),
        "{rendered}"
    );
    assert!(rendered.contains("contains"), "{rendered}");
}

#[test]
fn byte_order_mark_is_not_a_column() {
    let plain = summary("event e { key user_id: strin }");
    let bom = summary("\u{feff}event e { key user_id: strin }");
    assert_eq!(bom, plain);
}

/// The time this thread has spent on a CPU, where the system says it
/// (Linux: `/proc/thread-self/schedstat`, in nanoseconds).
fn thread_cpu_time() -> Option<std::time::Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    // A kernel that keeps no such account writes zeros.
    (ns > 0).then(|| std::time::Duration::from_nanos(ns))
}

#[test]
fn long_audience_chains_check_quickly() {
    let mut text = String::from("audience a0\n");
    for i in 1..2_000 {
        text += &format!("audience a{i} = a{}\n", i - 1);
    }
    // The bound is on the checker's work: the CPU time of this thread, which
    // the other tests and processes of a busy machine do not stretch as they
    // do the wall-clock time (used only where the CPU time is not known).
    let (cpu, wall) = (thread_cpu_time(), std::time::Instant::now());
    assert_eq!(ok(&text).summary().declarations, 2_000);
    let took = match (cpu, thread_cpu_time()) {
        (Some(before), Some(after)) => after.saturating_sub(before),
        _ => wall.elapsed(),
    };
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
}

#[test]
fn unknown_coupon_outcome_is_called_an_outcome() {
    let (diags, rendered) = errors(&format!(
        "{E}coupon gift {{ value: 1 }}\nrule r {{ when o: e() then coupon(template: gift, user: o.user_id) {{ lost => retract o }} }}"
    ));
    assert_eq!(diags.len(), 1);
    assert!(!diags[0].message.contains("arm"), "{rendered}");
    assert!(diags[0].message.contains("outcome"), "{rendered}");
}

#[test]
fn comments_may_sit_between_a_role_or_setting_and_its_name() {
    let r = ok(
        "event e { key /* the user */ user_id: string  time /* when */ at: timestamp }\n\
        cap c { limit /* per day */ : 2 per calendar day }",
    );
    let t = &r.rules().schema().types()[0];
    assert_eq!(t.key().map(|k| k.index()), Some(0));
    assert_eq!(t.time().map(|k| k.index()), Some(1));
    assert_eq!(r.declarations().caps.len(), 1);
}

#[test]
fn a_trailing_comma_in_a_transition_line_keeps_the_next_line_apart() {
    let r = ok("machine m { initial: a\n a -> b, c,\n d -> e }");
    let m = &r.declarations().machines[0];
    let names: Vec<&str> = m.states.iter().map(|s| &**s).collect();
    assert_eq!(names, ["a", "b", "c", "d", "e"]);
    let d = m.state("d").unwrap();
    let e = m.state("e").unwrap();
    assert!(m.allows(d, e));
    assert!(!m.allows(m.state("a").unwrap(), d));
}

#[test]
fn before_is_measured_from_its_binding_and_leaves_the_horizon_alone() {
    let r = ok(r#"
        event order_paid { key user_id: string  order_id: string  amount: float  time paid_at: timestamp }
        rule first_order {
            when
                o: order_paid(amount > 100)
                not order_paid(user_id == o.user_id, order_id != o.order_id) before o within 365d
            then
                message(channel: "push", template: "t", user: o.user_id)
        }
    "#);
    let rule = &r.rules().rules()[0];
    let Condition::Not(p) = &rule.conditions[1] else {
        panic!("expected a `not`, got {:?}", rule.conditions[1]);
    };
    assert_eq!(p.window, Window::before_within(Slot::new(0), dur("365d")));
    // The window is measured from `o`, so `o` itself is seen only at the
    // moment it happens: the rule has no horizon.
    assert_eq!(rule.horizon(), dur("0s"));
}
