//! The timed workload shared by `benches/time.rs` and
//! `benches/memory_time.rs`: event types carrying their time field, rules
//! with time windows, and a synthetic stream of 100,000 users, one event
//! every 10 ms of event time, generated deterministically with the `Rng`
//! of `benches/workload.rs`.

// Shared by several targets, each using a part of it.
#![allow(dead_code, missing_docs)]

#[path = "workload.rs"]
mod workload;

use nudge::{Ruleset, Timestamp, TypeId, Value};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use workload::Rng;

/// The event types and the action, read before any rules.
pub const TYPES: &str = r#"
event page_view { key user_id: int  category: string  time at: timestamp }
event order_created { key user_id: int  order_id: int  time at: timestamp }
event order_paid { key user_id: int  order_id: int  time at: timestamp }
action notify(user: int, reason: string)
"#;

/// An absence decided by a timer 10 minutes after each order.
pub const ABSENCE: &str = r#"
rule unpaid_order {
    when
        o: order_created()
        not order_paid(order_id == o.order_id) after o within 10m
    then
        notify(user: o.user_id, reason: "unpaid")
}
"#;

/// A grouped count over a 30-minute window.
pub const AGGREGATE: &str = r#"
rule browsing {
    when
        v: count(page_view()) >= 3 within 30m by user_id
    then
        notify(user: v.user_id, reason: "interest")
}
"#;

/// The grouped count over 30 minutes with an inactivity of 30 minutes.
pub const INACTIVE_AGGREGATE: &str = r#"
rule browsing_without_order {
    when
        v: count(page_view()) >= 3 within 30m by user_id
        not order_created(user_id == v.user_id) within 30m
    then
        notify(user: v.user_id, reason: "interest")
}
"#;

/// The rules of `benches/memory_time.rs`: the count with a 30-minute
/// inactivity, and the absence.
pub const MIXED: [&str; 2] = [INACTIVE_AGGREGATE, ABSENCE];

/// `TYPES` followed by `rules`, compiled; `file` names the text in errors.
pub fn ruleset(file: &str, rules: &[&str]) -> Ruleset {
    Ruleset::from_str(file, &format!("{TYPES}{}", rules.concat())).expect("valid rules")
}

pub const USERS: u64 = 100_000;
pub const STEP_MS: i64 = 10;
/// 2026-01-01T00:00:00Z.
pub const START_MS: i64 = 1_767_225_600_000;

/// An event: its type, its values and its time.
pub type Event = (TypeId, Vec<Value>, Timestamp);

/// The synthetic stream: one event every `STEP_MS` of uniform users,
/// `views` percent page views, the rest orders, 70% of which are paid 0 to
/// 15 minutes later (so about a third of the paid ones after the 10-minute
/// window).
pub struct Stream {
    rng: Rng,
    views: u64,
    /// The time of the last event, in ms.
    pub t: i64,
    next_order: i64,
    payments: BinaryHeap<Reverse<(i64, i64, i64)>>,
    categories: Vec<Value>,
    page_view: TypeId,
    order_created: TypeId,
    order_paid: TypeId,
}

impl Stream {
    pub fn new(rules: &Ruleset, seed: u64, views: u64) -> Self {
        let ty = |n: &str| rules.type_id(n).expect("declared");
        Stream {
            rng: Rng(seed),
            views,
            t: START_MS,
            next_order: 1,
            payments: BinaryHeap::new(),
            categories: (0..20)
                .map(|k| Value::from(format!("cat{k}").as_str()))
                .collect(),
            page_view: ty("page_view"),
            order_created: ty("order_created"),
            order_paid: ty("order_paid"),
        }
    }

    /// The next event, its values built directly.
    pub fn next_event(&mut self) -> Event {
        self.t += STEP_MS;
        let at = Timestamp::from_millis(self.t);
        if let Some(&Reverse((due, user, order))) = self.payments.peek() {
            if due <= self.t {
                self.payments.pop();
                let values = vec![Value::Int(user), Value::Int(order), Value::Timestamp(at)];
                return (self.order_paid, values, at);
            }
        }
        let user = 1 + self.rng.below(USERS) as i64;
        if self.rng.below(100) < self.views {
            let category = self.categories[self.rng.below(20) as usize].clone();
            let values = vec![Value::Int(user), category, Value::Timestamp(at)];
            return (self.page_view, values, at);
        }
        let order = self.next_order;
        self.next_order += 1;
        if self.rng.below(100) < 70 {
            let delay = self.rng.below(15 * 60_000) as i64;
            self.payments.push(Reverse((self.t + delay, user, order)));
        }
        let values = vec![Value::Int(user), Value::Int(order), Value::Timestamp(at)];
        (self.order_created, values, at)
    }

    /// The next `n` events.
    pub fn batch(&mut self, n: usize) -> Vec<Event> {
        (0..n).map(|_| self.next_event()).collect()
    }
}
