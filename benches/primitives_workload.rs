//! The checked-decisions workload, shared by `benches/primitives.rs` and
//! `examples/checked_profile.rs`: rules that use every built-in action, and
//! a deterministic stream of 100,000 users' events, one every 10 ms.

#![allow(dead_code)]

use nudge::{Ruleset, Timestamp, TypeId, Value};

/// Four event types, two caps, a coupon, an experiment, a campaign with a
/// suppression list, a machine, and one rule per built-in action.
pub const RULES: &str = r#"
event page_view { key user: string  time at: timestamp  category: string  amount: int }
event add_to_cart { key user: string  time at: timestamp  category: string  amount: int }
event app_open { key user: string  time at: timestamp  channel: string }
event order_paid { key user: string  time at: timestamp  amount: int }

audience blocked
cap push_daily { limit: 3 per calendar day  channel: "push"  zone: "Asia/Shanghai" }
cap any_weekly { limit: 10 per rolling 7d }
coupon cart10 { value: 10.0  stock: 10000000  budget: 100000000.0  per_user: 1 per calendar day }
experiment copy { arms: { a: 50%, b: 50% } }
campaign promo { per_user: 5 per calendar day  suppress: [blocked]  zone: "Asia/Shanghai" }
machine funnel {
    initial: visitor
    visitor -> browsing, buyer
    browsing -> buyer
    buyer -> browsing
}

rule big_view_push {
    campaign promo
    when v: page_view(amount > 1500)
    then message(channel: ["push", "sms"], template: "deal", user: v.user, category: v.category)
}

rule big_cart_coupon {
    campaign promo
    when c: add_to_cart(amount > 1000)
    then coupon(template: cart10, user: c.user)
}

rule open_split {
    when o: app_open(channel == "ios")
    then split(experiment: copy, user: o.user) {
        a => message(channel: "push", template: "copy_a", user: o.user)
        b => {}
    }
}

rule paid_buyer {
    when p: order_paid()
    then transition(machine: funnel, user: p.user, to: buyer)
}
"#;

/// One event: its type and field values.
pub type Event = (TypeId, Vec<Value>);

/// A deterministic stream: xorshift over users, types and fields.
pub fn stream(rules: &Ruleset, n: usize, seed: u64) -> Vec<Event> {
    let types = ["page_view", "add_to_cart", "app_open", "order_paid"]
        .map(|t| rules.type_id(t).expect("declared"));
    let users: Vec<Value> = (0..100_000)
        .map(|u| Value::from(format!("u{u}").as_str()))
        .collect();
    let categories: Vec<Value> = (0..50)
        .map(|c| Value::from(format!("cat{c}").as_str()))
        .collect();
    let channels = ["ios", "android", "web", "mini"].map(Value::from);
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let start = 1_795_000_000_000i64;
    (0..n)
        .map(|i| {
            let at = Value::Timestamp(Timestamp::from_millis(start + 10 * i as i64));
            let user = users[(next() % 100_000) as usize].clone();
            let kind = (next() % 100) as usize;
            let amount = Value::Int((next() % 2000) as i64);
            let cat = categories[(next() % 50) as usize].clone();
            match kind {
                0..=44 => (types[0], vec![user, at, cat, amount]),
                45..=69 => (types[1], vec![user, at, cat, amount]),
                70..=89 => {
                    let ch = channels[(next() % 4) as usize].clone();
                    (types[2], vec![user, at, ch])
                }
                _ => (types[3], vec![user, at, amount]),
            }
        })
        .collect()
}
