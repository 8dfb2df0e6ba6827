//! Memory over a long event stream with time windows, printed as a table:
//! `cargo bench --bench memory_time`.
//!
//! Rules with a 30-minute aggregate window, a 30-minute inactivity and a
//! 10-minute absence read a synthetic stream (100,000 users, one event every
//! 10 ms of event time, each carrying its time field). The pseudo clock
//! follows the event times, so events leave working memory once their
//! windows are over: live facts, tokens, timers and heap bytes stay flat
//! however long the stream runs.
//!
//! `NUDGE_MEM_EVENTS` sets the stream length (default 10,000,000);
//! `NUDGE_MEM_CONTRAST` the length of a second stream fed without moving
//! the clock, where nothing expires (default 1,000,000; 0 skips it).
//!
//! A counting allocator measures live and peak heap bytes of the process.

use nudge::{Ruleset, Session, Timestamp, TypeId, Value};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

struct Counting;

// Counting heap bytes needs a global allocator, which is unsafe to write;
// this one only forwards to the system allocator.

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
            PEAK.fetch_max(now, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The rules: a grouped count over 30 minutes with an inactivity of 30
/// minutes, and an absence decided 10 minutes after each order.
const RULES: &str = r#"
event page_view { key user_id: int  category: string  time at: timestamp }
event order_created { key user_id: int  order_id: int  time at: timestamp }
event order_paid { key user_id: int  order_id: int  time at: timestamp }
action notify(user: int, reason: string)

rule browsing_without_order {
    when
        v: count(page_view()) >= 3 within 30m by user_id
        not order_created(user_id == v.user_id) within 30m
    then
        notify(user: v.user_id, reason: "interest")
}

rule unpaid_order {
    when
        o: order_created()
        not order_paid(order_id == o.order_id) after o within 10m
    then
        notify(user: o.user_id, reason: "unpaid")
}
"#;

/// SplitMix64, as in `benches/workload.rs`.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

const USERS: u64 = 100_000;
const STEP_MS: i64 = 10;
/// 2026-01-01T00:00:00Z.
const START_MS: i64 = 1_767_225_600_000;

/// The synthetic stream: one event every `STEP_MS`. 85% page views and 15%
/// orders of uniform users; 70% of orders are paid 0 to 15 minutes later
/// (so about a third of the paid ones after the 10-minute window).
struct Stream {
    rng: Rng,
    t: i64,
    next_order: i64,
    payments: BinaryHeap<Reverse<(i64, i64, i64)>>,
    categories: Vec<Value>,
    page_view: TypeId,
    order_created: TypeId,
    order_paid: TypeId,
}

impl Stream {
    fn new(rules: &Ruleset, seed: u64) -> Self {
        let ty = |n: &str| rules.type_id(n).expect("declared");
        Stream {
            rng: Rng(seed),
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

    /// The next event, its values built directly, and its time.
    fn next_event(&mut self) -> (TypeId, Vec<Value>, Timestamp) {
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
        if self.rng.below(100) < 85 {
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
}

fn mb(bytes: usize) -> f64 {
    bytes as f64 / 1_048_576.0
}

fn env_count(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .replace(['_', ','], "")
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, not {v:?}")),
        Err(_) => default,
    }
}

fn header() {
    println!(
        "{:>12} {:>10} {:>10} {:>9} {:>9} {:>10} {:>10} {:>12} {:>12} {:>12}",
        "events",
        "facts",
        "tokens",
        "timers",
        "delayed",
        "peak MB",
        "cur MB",
        "events/s",
        "firings",
        "expired"
    );
}

fn row(s: &Session, events: usize, rate: f64) {
    let (timers, delayed) = s.timer_count();
    let c = s.counters();
    println!(
        "{:>12} {:>10} {:>10} {:>9} {:>9} {:>10.1} {:>10.1} {:>12.0} {:>12} {:>12}",
        events,
        s.fact_count(),
        s.token_count(),
        timers,
        delayed,
        mb(PEAK.load(Relaxed)),
        mb(LIVE.load(Relaxed)),
        rate,
        c.firings,
        c.expired_events
    );
}

/// Feeds `n` events, printing a row every `every`; with `advance`, the
/// clock follows the event times.
fn run(rules: &Ruleset, n: usize, every: usize, advance: bool) {
    let mut stream = Stream::new(rules, 42);
    let mut s = rules.session();
    if advance {
        s.advance_to(Timestamp::from_millis(START_MS))
            .expect("forward");
    }
    header();
    let mut since = Instant::now();
    let mut last = 0;
    for i in 1..=n {
        let (ty, values, at) = stream.next_event();
        if advance && at > s.now() {
            s.advance_to(at).expect("forward");
        }
        s.insert(ty, values).expect("valid and not late");
        if i % 1024 == 0 || i == n {
            s.fire().expect("no runaway");
            s.clear_decisions();
        }
        if i % every == 0 || i == n {
            let rate = (i - last) as f64 / since.elapsed().as_secs_f64();
            row(&s, i, rate);
            since = Instant::now();
            last = i;
        }
    }
}

fn main() {
    let n = env_count("NUDGE_MEM_EVENTS", 10_000_000);
    let contrast = env_count("NUDGE_MEM_CONTRAST", 1_000_000);
    let rules = Ruleset::from_str("memory_time.nudge", RULES).expect("valid rules");
    println!(
        "heap before the stream: {:.2} MB (rules and network)",
        mb(LIVE.load(Relaxed))
    );

    println!(
        "\nclock follows the event times: {n} events, 100,000 users, one event every {STEP_MS} ms"
    );
    println!("(peak MB is the process peak so far; expired counts events dropped from memory)");
    run(&rules, n, 1_000_000, true);

    if contrast > 0 {
        let base = LIVE.load(Relaxed);
        PEAK.store(base, Relaxed);
        println!(
            "\ncontrast, clock never moved: {contrast} events, nothing expires (peak reset to {:.1} MB)",
            mb(base)
        );
        run(&rules, contrast, (contrast / 4).max(1), false);
    }
}
