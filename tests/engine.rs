//! Engine semantics, written as rule text: sharing, agenda order,
//! refraction, no-loop, activation groups, negation, forward chaining, and
//! error handling that leaves a session unchanged.

use nudge::{Ruleset, SessionConfig, SessionError, Value};
use serde_json::json;

const TYPES: &str = r#"
event order_paid {
    key user_id: string
    order_id: string
    amount: float
    category: string
}

fact profile {
    key user_id: string
    level: int
    tags: list<string>
}

fact reward {
    key user_id: string
    kind: string
}

coupon c20 { value: 20.0 }
coupon c10 { value: 10.0 }
"#;

fn rules(body: &str) -> Ruleset {
    match Ruleset::from_str("test.nudge", &format!("{TYPES}\n{body}")) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    }
}

fn insert(
    rules: &Ruleset,
    s: &mut nudge::Session,
    ty: &str,
    j: serde_json::Value,
) -> nudge::FactId {
    let (t, v) = rules.fact_from_json(ty, &j).unwrap();
    s.insert(t, v).unwrap()
}

fn fired_rules(s: &mut nudge::Session) -> Vec<String> {
    let names = s.decisions().map(|d| d.rule_name().to_string()).collect();
    s.clear_decisions();
    names
}

fn order(user: &str, id: &str, amount: f64) -> serde_json::Value {
    json!({"user_id": user, "order_id": id, "amount": amount, "category": "shoes"})
}

#[test]
fn two_rules_share_one_alpha_node_for_the_same_test() {
    let r = rules(
        r#"
        rule a { when o: order_paid(amount > 100) then coupon(template: c20, user: o.user_id) }
        rule b { when o: order_paid(100 < amount) then coupon(template: c10, user: o.user_id) }
        "#,
    );
    let stats = r.network().stats();
    assert_eq!(stats.alpha_nodes, 1, "{stats:?}");
    assert_eq!(stats.alpha_memories, 1);
    assert_eq!(stats.beta_nodes, 1, "the single-pattern join is shared too");
    assert_eq!(stats.shared_nodes, 2);
    let g = r.network().graph();
    let shared: Vec<_> = g
        .node_weights()
        .filter(|n| n.kind == nudge_rete::NodeKind::Alpha)
        .collect();
    assert_eq!(shared.len(), 1);
    assert_eq!(shared[0].label, "amount > 100.0");
    assert_eq!(shared[0].rules, vec!["a".to_string(), "b".to_string()]);
}

#[test]
fn fires_by_salience_then_recency_then_rule_order() {
    let r = rules(
        r#"
        rule low { when o: order_paid() then coupon(template: c10, user: o.user_id) }
        rule high { salience 10 when o: order_paid() then coupon(template: c20, user: o.user_id) }
        rule low_too { when o: order_paid() then coupon(template: c10, user: o.user_id) }
        "#,
    );
    let mut s = r.bare_session(nudge::SessionConfig::default());
    insert(&r, &mut s, "order_paid", order("u1", "o1", 5.0));
    insert(&r, &mut s, "order_paid", order("u2", "o2", 5.0));
    s.fire().unwrap();
    let fired: Vec<(String, Value)> = s
        .decisions()
        .map(|d| (d.rule_name().to_string(), d.arg("user").unwrap().clone()))
        .collect();
    let expected = [
        ("high", "u2"),
        ("high", "u1"),
        ("low", "u2"),
        ("low_too", "u2"),
        ("low", "u1"),
        ("low_too", "u1"),
    ];
    let expected: Vec<(String, Value)> = expected
        .iter()
        .map(|(r, u)| (r.to_string(), Value::from(*u)))
        .collect();
    assert_eq!(fired, expected);
}

#[test]
fn an_activation_fires_once_and_retraction_cancels_pending_ones() {
    let r = rules("rule a { when o: order_paid() then coupon(template: c20, user: o.user_id) }");
    let mut s = r.bare_session(nudge::SessionConfig::default());
    let o1 = insert(&r, &mut s, "order_paid", order("u1", "o1", 5.0));
    assert_eq!(s.fire().unwrap(), 1);
    assert_eq!(s.fire().unwrap(), 0, "refraction");
    let o2 = insert(&r, &mut s, "order_paid", order("u2", "o2", 5.0));
    s.retract(o2).unwrap();
    assert_eq!(
        s.fire().unwrap(),
        0,
        "the retracted fact's activation is gone"
    );
    assert_eq!(s.matches().len(), 1);
    s.retract(o1).unwrap();
    assert!(s.matches().is_empty());
    assert_eq!(s.token_count(), 1, "only the root token is left");
    assert!(matches!(
        s.retract(o1),
        Err(nudge::FactError::NoSuchFact(_))
    ));
}

#[test]
fn modify_keeps_identity_and_rematches() {
    let r = rules(
        "rule big { when o: order_paid(amount > 100) then coupon(template: c20, user: o.user_id) }",
    );
    let mut s = r.bare_session(nudge::SessionConfig::default());
    let id = insert(&r, &mut s, "order_paid", order("u1", "o1", 5.0));
    assert_eq!(s.fire().unwrap(), 0);
    let amount = r
        .network()
        .rules()
        .schema()
        .get(r.type_id("order_paid").unwrap())
        .field_id("amount")
        .unwrap();
    s.modify(id, &[(amount, Value::Float(500.0))]).unwrap();
    assert_eq!(s.fire().unwrap(), 1);
    assert_eq!(s.decisions().next().unwrap().facts(), &[id]);
    assert_eq!(s.fact(id).unwrap().1[2], Value::Float(500.0));
}

#[test]
fn no_loop_stops_a_rule_from_reactivating_itself() {
    let body = |flag: &str| {
        format!(
            r#"rule bump {{
                {flag}
                when p: profile(level < 100)
                then modify p(level: p.level + 1)
            }}"#
        )
    };
    let r = rules(&body("no-loop"));
    let mut s = r.bare_session(nudge::SessionConfig::default());
    let p = insert(
        &r,
        &mut s,
        "profile",
        json!({"user_id": "u1", "level": 1, "tags": []}),
    );
    assert_eq!(s.fire().unwrap(), 1);
    assert_eq!(s.fact(p).unwrap().1[1], Value::Int(2));

    let r = rules(&body(""));
    let mut s = r.bare_session(nudge::SessionConfig::default());
    let p = insert(
        &r,
        &mut s,
        "profile",
        json!({"user_id": "u1", "level": 1, "tags": []}),
    );
    assert_eq!(
        s.fire().unwrap(),
        99,
        "without no-loop it climbs to 100 and stops"
    );
    assert_eq!(s.fact(p).unwrap().1[1], Value::Int(100));
}

#[test]
fn run_limit_stops_runaway_chaining_with_an_error() {
    let r = rules(
        r#"rule forever {
            when p: profile()
            then modify p(level: p.level + 1)
        }"#,
    );
    let mut s = r.bare_session(nudge::SessionConfig::default());
    s.set_config(SessionConfig {
        max_firings: 50,
        ..SessionConfig::default()
    });
    insert(
        &r,
        &mut s,
        "profile",
        json!({"user_id": "u1", "level": 1, "tags": []}),
    );
    match s.fire() {
        Err(SessionError::RunLimit { fired: 50 }) => {}
        other => panic!("expected the run limit, got {other:?}"),
    }
    assert!(s.fire().is_err(), "still runaway on the next call");
}

#[test]
fn activation_group_fires_only_the_best_strategy_per_trigger() {
    // S13: three strategies of one campaign match; only the best fires.
    let r = rules(
        r#"
        rule coupon_20 { salience 30 group best_offer when o: order_paid(amount > 100) then coupon(template: c20, user: o.user_id) }
        rule coupon_10 { salience 20 group best_offer when o: order_paid(amount > 50) then coupon(template: c10, user: o.user_id) }
        rule push_only { salience 10 group best_offer when o: order_paid() then message(channel: "push", template: "t", user: o.user_id) }
        rule audit { when o: order_paid() then message(channel: "log", template: "audit", user: o.user_id) }
        "#,
    );
    let mut s = r.bare_session(nudge::SessionConfig::default());
    insert(&r, &mut s, "order_paid", order("u1", "o1", 150.0));
    s.fire().unwrap();
    assert_eq!(fired_rules(&mut s), vec!["coupon_20", "audit"]);
    insert(&r, &mut s, "order_paid", order("u1", "o2", 60.0));
    s.fire().unwrap();
    assert_eq!(
        fired_rules(&mut s),
        vec!["coupon_10", "audit"],
        "a new trigger picks again"
    );
    insert(&r, &mut s, "order_paid", order("u2", "o3", 5.0));
    s.fire().unwrap();
    assert_eq!(fired_rules(&mut s), vec!["push_only", "audit"]);
}

#[test]
fn not_and_exists_follow_working_memory() {
    let r = rules(
        r#"
        rule unrewarded {
            when p: profile()
                 not reward(user_id == p.user_id)
            then message(channel: "push", template: "nudge", user: p.user_id)
        }
        rule has_orders {
            when p: profile()
                 exists order_paid(user_id == p.user_id)
            then message(channel: "push", template: "thanks", user: p.user_id)
        }
        "#,
    );
    let mut s = r.bare_session(nudge::SessionConfig::default());
    insert(
        &r,
        &mut s,
        "profile",
        json!({"user_id": "u1", "level": 1, "tags": []}),
    );
    assert_eq!(s.fire().unwrap(), 1);
    assert_eq!(fired_rules(&mut s), vec!["unrewarded"]);
    let reward = insert(&r, &mut s, "reward", json!({"user_id": "u1", "kind": "x"}));
    assert!(
        s.matches().iter().all(|(rule, _)| rule.index() != 0),
        "blocked by the reward"
    );
    s.retract(reward).unwrap();
    assert_eq!(s.fire().unwrap(), 1, "unblocked: a new activation");
    fired_rules(&mut s);
    let o1 = insert(&r, &mut s, "order_paid", order("u1", "o1", 1.0));
    let o2 = insert(&r, &mut s, "order_paid", order("u1", "o2", 1.0));
    assert_eq!(s.fire().unwrap(), 1, "exists fires once for two orders");
    s.retract(o1).unwrap();
    assert_eq!(s.fire().unwrap(), 0, "still exists");
    s.retract(o2).unwrap();
    assert_eq!(
        s.matches()
            .iter()
            .filter(|(rule, _)| rule.index() == 1)
            .count(),
        0
    );
}

#[test]
fn joins_and_forward_chaining() {
    let r = rules(
        r#"
        rule vip_big_order {
            when
                o: order_paid(amount > 100)
                p: profile(user_id == o.user_id, level >= 5, "vip" in tags)
                not reward(user_id == o.user_id)
            then
                insert reward(user_id: o.user_id, kind: "vip_big_order")
        }
        rule reward_message {
            when r: reward()
            then message(channel: "sms", template: r.kind, user: r.user_id)
        }
        "#,
    );
    let mut s = r.bare_session(nudge::SessionConfig::default());
    insert(
        &r,
        &mut s,
        "profile",
        json!({"user_id": "u1", "level": 7, "tags": ["vip"]}),
    );
    insert(
        &r,
        &mut s,
        "profile",
        json!({"user_id": "u2", "level": 7, "tags": []}),
    );
    insert(&r, &mut s, "order_paid", order("u1", "o1", 500.0));
    insert(&r, &mut s, "order_paid", order("u2", "o2", 500.0));
    insert(&r, &mut s, "order_paid", order("u1", "o3", 500.0));
    s.fire().unwrap();
    let msgs: Vec<_> = s
        .decisions()
        .map(|d| (d.rule_name().to_string(), d.arg("user").cloned()))
        .collect();
    assert_eq!(
        msgs,
        vec![("reward_message".to_string(), Some(Value::from("u1")))],
        "one reward, then blocked"
    );
}

#[test]
fn bad_facts_are_refused_and_change_nothing() {
    let r = rules("rule a { when o: order_paid() then coupon(template: c20, user: o.user_id) }");
    let mut s = r.bare_session(nudge::SessionConfig::default());
    let good = insert(&r, &mut s, "order_paid", order("u1", "o1", 5.0));
    let before = (s.fact_count(), s.matches(), s.token_count());
    let ty = r.type_id("order_paid").unwrap();
    assert!(
        s.insert(ty, vec![Value::from("u1")]).is_err(),
        "too few values"
    );
    assert!(s
        .insert(
            ty,
            vec![
                Value::from("u"),
                Value::from("o"),
                Value::from("x"),
                Value::from("c")
            ]
        )
        .is_err());
    assert!(s
        .insert(
            ty,
            vec![
                Value::from("u"),
                Value::from("o"),
                Value::Float(f64::NAN),
                Value::from("c")
            ]
        )
        .is_err());
    assert!(s
        .insert(
            ty,
            vec![
                Value::Null,
                Value::from("o"),
                Value::Float(1.0),
                Value::from("c")
            ]
        )
        .is_err());
    let amount = nudge::FieldId::new(2);
    assert!(s.modify(good, &[(amount, Value::from("lots"))]).is_err());
    assert!(s
        .modify(good, &[(nudge::FieldId::new(9), Value::Int(1))])
        .is_err());
    assert_eq!((s.fact_count(), s.matches(), s.token_count()), before);
    for bad in [
        r.fact_from_json("order_paid", &json!({"user_id": "u1"}))
            .unwrap_err()
            .to_string(),
        r.fact_from_json("order_paid", &json!([1, 2]))
            .unwrap_err()
            .to_string(),
        r.fact_from_json("nope", &json!({}))
            .unwrap_err()
            .to_string(),
        r.fact_from_json(
            "order_paid",
            &json!({"user_id": "u", "order_id": "o", "amount": "1", "category": "c"}),
        )
        .unwrap_err()
        .to_string(),
        r.fact_from_json(
            "order_paid",
            &json!({"user_id": "u", "order_id": "o", "amount": 1, "category": "c", "x": 1}),
        )
        .unwrap_err()
        .to_string(),
    ] {
        assert!(!bad.is_empty());
    }
}

#[test]
fn s18_a_test_shared_by_500_rules_is_evaluated_once_per_event() {
    let mut body = String::from(
        "event member_event { key user_id: string  member_level: int  category: string }\n",
    );
    for i in 0..500 {
        body.push_str(&format!(
            "rule r{i} {{ when e: member_event(member_level > 5, category == \"c{}\") then message(channel: \"push\", template: \"t{i}\", user: e.user_id) }}\n",
            i % 50
        ));
    }
    let r = rules(&body);
    let stats = r.network().stats();
    assert_eq!(stats.rules, 500);
    let mut s = r.bare_session(nudge::SessionConfig::default());
    let ty = r.type_id("member_event").unwrap();
    s.insert(
        ty,
        vec![Value::from("u1"), Value::Int(7), Value::from("c3")],
    )
    .unwrap();
    // The event reaches `category == "c3"` and then `member_level > 5` below
    // it, once each: two test nodes, however many rules share them.
    assert_eq!(s.counters().alpha_tests, 2);
    assert_eq!(s.fire().unwrap(), 10, "the ten rules of category c3");
}

#[test]
fn rulesets_are_shared_across_threads() {
    let r = rules(
        "rule a { when o: order_paid(amount > 10) then coupon(template: c20, user: o.user_id) }",
    );
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let r = r.clone();
            std::thread::spawn(move || {
                let mut s = r.bare_session(nudge::SessionConfig::default());
                for i in 0..100 {
                    let (ty, v) = r
                        .fact_from_json(
                            "order_paid",
                            &order(&format!("u{t}"), &format!("o{i}"), i as f64),
                        )
                        .unwrap();
                    s.insert(ty, v).unwrap();
                }
                s.fire().unwrap()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 89);
    }
}
