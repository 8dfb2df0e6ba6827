//! Scenarios of `examples/scenarios/` that the engine runs today, fed with
//! events and checked against their expected decisions.

use nudge::{ir::SetId, DecisionRef, Host, Ruleset, Session, Value};
use serde_json::json;
use std::sync::Arc;

fn load(name: &str) -> Ruleset {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/scenarios")
        .join(name);
    Ruleset::from_files(&[path]).unwrap_or_else(|e| panic!("{e}"))
}

/// Audience membership from a fixed list of users.
struct Members(Vec<&'static str>);

impl Host for Members {
    fn in_set(&self, _: SetId, key: &Value) -> bool {
        matches!(key, Value::Str(s) if self.0.contains(&&**s))
    }
    fn choose(&mut self, _: DecisionRef<'_>) -> Option<Arc<str>> {
        None
    }
}

fn insert<H: Host>(r: &Ruleset, s: &mut Session<H>, ty: &str, j: serde_json::Value) {
    let (t, v) = r.fact_from_json(ty, &j).unwrap_or_else(|e| panic!("{e}"));
    s.insert(t, v).unwrap();
}

fn decisions<H: Host>(s: &mut Session<H>) -> Vec<(String, String, Option<Value>)> {
    let out = s
        .decisions()
        .map(|d| {
            (
                d.rule_name().to_string(),
                d.action().to_string(),
                d.arg("template").cloned(),
            )
        })
        .collect();
    s.clear_decisions();
    out
}

#[test]
fn s13_only_the_best_strategy_fires() {
    let r = load("s13_best_offer_group.nudge");
    let mut s = Session::with_host(r.network().clone(), Members(vec!["u1"]));
    let cart = |user: &str, price: f64, quantity: i64| json!({"user_id": user, "at": "2026-11-22T10:00:00Z", "product_id": "p1", "category": "shoes", "price": price, "quantity": quantity});
    insert(&r, &mut s, "add_to_cart", cart("u1", 300.0, 2));
    s.fire().unwrap();
    let tpl = |t: &str| Some(Value::from(t));
    assert_eq!(
        decisions(&mut s),
        vec![
            (
                "cart_offer_coupon_20".into(),
                "coupon".into(),
                tpl("cart_20")
            ),
            (
                "cart_offer_coupon_20".into(),
                "message".into(),
                tpl("cart_coupon")
            ),
        ],
        "a high-value user with a 600 cart gets the 20 coupon only"
    );
    insert(&r, &mut s, "add_to_cart", cart("u2", 300.0, 2));
    s.fire().unwrap();
    assert_eq!(
        decisions(&mut s)[0].0,
        "cart_offer_coupon_10",
        "not in the audience: the next best"
    );
    insert(&r, &mut s, "add_to_cart", cart("u2", 10.0, 1));
    s.fire().unwrap();
    assert_eq!(
        decisions(&mut s),
        vec![(
            "cart_offer_push_only".into(),
            "message".into(),
            tpl("cart_reminder")
        )]
    );
}

#[test]
fn s18_the_shared_level_test_is_reached_once_per_event() {
    let r = load("s18_node_sharing.nudge");
    let stats = r.network().stats();
    assert_eq!(stats.rules, 500);
    let mut s = r.bare_session(nudge::SessionConfig::default());
    let event = |level: i64, price: f64| json!({"user_id": "u1", "at": "2026-11-22T10:00:00Z", "member_level": level, "category": "phone", "price": price});
    insert(&r, &mut s, "vip_cart_item", event(7, 1_000_000.0));
    // One category node, the one `member_level > 5` below it, and the price
    // points of that category: a handful of test nodes, not 500 evaluations.
    let reached = s.counters().alpha_tests;
    assert!(reached <= 12, "{reached} test nodes reached for one event");
    s.fire().unwrap();
    let fired = decisions(&mut s);
    assert_eq!(
        fired.len(),
        1,
        "the group lets the highest price point fire: {fired:?}"
    );
    assert_eq!(
        fired[0].2,
        Some(Value::from("vip_phone_5000")),
        "the top price point"
    );

    let before = s.counters().alpha_tests;
    insert(&r, &mut s, "vip_cart_item", event(3, 1_000_000.0));
    assert_eq!(
        s.counters().alpha_tests - before,
        1,
        "a low level stops after the category test"
    );
    assert_eq!(s.fire().unwrap(), 0);
}
