//! Criterion benches of the time constructs, on the pseudo clock following
//! the event times: events/s through an absence (`not ... after o within
//! 10m`, decided by timers), through a grouped count over a 30-minute
//! window, and through both with a 30-minute inactivity; then the time and
//! size of a snapshot and a restore of a session holding 100,000 events.
//!
//! `cargo bench --bench time` (add `-- --quick` for a short run). The
//! stream is the one of `benches/memory_time.rs`: 100,000 users, one event
//! every 10 ms of event time, each carrying its time field.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use nudge::{NoHost, Ruleset, Session, Timestamp, TypeId, Value};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hint::black_box;
use std::time::{Duration, Instant};

const TYPES: &str = r#"
event page_view { key user_id: int  category: string  time at: timestamp }
event order_created { key user_id: int  order_id: int  time at: timestamp }
event order_paid { key user_id: int  order_id: int  time at: timestamp }
action notify(user: int, reason: string)
"#;

/// An absence decided by a timer 10 minutes after each order.
const ABSENCE: &str = r#"
rule unpaid_order {
    when
        o: order_created()
        not order_paid(order_id == o.order_id) after o within 10m
    then
        notify(user: o.user_id, reason: "unpaid")
}
"#;

/// A grouped count over a 30-minute window.
const AGGREGATE: &str = r#"
rule browsing {
    when
        v: count(page_view()) >= 3 within 30m by user_id
    then
        notify(user: v.user_id, reason: "interest")
}
"#;

/// The rules of `benches/memory_time.rs`: the count with a 30-minute
/// inactivity, and the absence.
const MIXED: &str = r#"
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

fn ruleset(rules: &str) -> Ruleset {
    Ruleset::from_str("time.nudge", &format!("{TYPES}{rules}")).expect("valid rules")
}

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

type Event = (TypeId, Vec<Value>, Timestamp);

/// One event every `STEP_MS` of uniform users: `views` percent page views,
/// the rest orders, 70% of which are paid 0 to 15 minutes later.
struct Stream {
    rng: Rng,
    views: u64,
    t: i64,
    next_order: i64,
    payments: BinaryHeap<Reverse<(i64, i64, i64)>>,
    categories: Vec<Value>,
    page_view: TypeId,
    order_created: TypeId,
    order_paid: TypeId,
}

impl Stream {
    fn new(rules: &Ruleset, seed: u64, views: u64) -> Self {
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

    fn next_event(&mut self) -> Event {
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

    fn batch(&mut self, n: usize) -> Vec<Event> {
        (0..n).map(|_| self.next_event()).collect()
    }
}

/// Feeds events with the clock following their times; fires and clears
/// the decisions every 1,024 events and at the end.
fn feed(s: &mut Session, events: Vec<Event>) {
    let n = events.len();
    for (i, (ty, values, at)) in events.into_iter().enumerate() {
        if at > s.now() {
            s.advance_to(at).expect("forward");
        }
        s.insert(ty, values).expect("valid and not late");
        if (i + 1) % 1024 == 0 || i + 1 == n {
            s.fire().expect("no runaway");
            s.clear_decisions();
        }
    }
}

const BATCH: usize = 10_000;

/// Events/s through `rules` in its steady state: a session first fed
/// `warm` events (beyond its longest window), then batches of the stream.
fn throughput(c: &mut Criterion, name: &str, rules: &str, views: u64, warm: usize) {
    let rules = ruleset(rules);
    let mut stream = Stream::new(&rules, 7, views);
    let mut s = rules.session();
    s.advance_to(Timestamp::from_millis(START_MS))
        .expect("forward");
    let t = Instant::now();
    feed(&mut s, stream.batch(warm));
    let el = t.elapsed().as_secs_f64();
    let c0 = s.counters();
    let t0 = stream.t;
    eprintln!(
        "{name}: warmed with {warm} events in {el:.2}s ({:.0} events/s): {} live facts, {} tokens, {} timers waiting; {} timers run, {} firings, {} events expired",
        warm as f64 / el,
        s.fact_count(),
        s.token_count(),
        s.timer_count().0,
        c0.timers,
        c0.firings,
        c0.expired_events
    );
    let mut g = c.benchmark_group("time");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function(name, |b| {
        b.iter_batched(
            || stream.batch(BATCH),
            |events| feed(&mut s, events),
            BatchSize::PerIteration,
        )
    });
    g.finish();
    let c1 = s.counters();
    let fed = ((stream.t - t0) / STEP_MS).max(1) as f64;
    eprintln!(
        "{name}: after {fed} more events: {} live facts, {} tokens, {} timers waiting; per event {:.2} timers run, {:.2} firings, {:.2} expired",
        s.fact_count(),
        s.token_count(),
        s.timer_count().0,
        (c1.timers - c0.timers) as f64 / fed,
        (c1.firings - c0.firings) as f64 / fed,
        (c1.expired_events - c0.expired_events) as f64 / fed,
    );
}

fn absence(c: &mut Criterion) {
    // Orders only; the longest horizon is 10 minutes (60,000 events).
    throughput(c, "absence_10m", ABSENCE, 0, 200_000);
}

fn aggregate(c: &mut Criterion) {
    // Page views only; the window is 30 minutes (180,000 events).
    throughput(c, "count_30m_by_user", AGGREGATE, 100, 400_000);
}

fn mixed(c: &mut Criterion) {
    throughput(c, "count_not_absence_mixed", MIXED, 85, 400_000);
}

/// Snapshot and restore of a session holding 100,000 events, all within
/// their windows (100,000 x 10 ms is under 30 minutes).
fn snapshot(c: &mut Criterion) {
    let rules = ruleset(MIXED);
    let mut stream = Stream::new(&rules, 11, 85);
    let mut s = rules.session();
    s.advance_to(Timestamp::from_millis(START_MS))
        .expect("forward");
    feed(&mut s, stream.batch(100_000));
    let bytes = s.snapshot();
    let restored = Session::restore(rules.network().clone(), NoHost, &bytes).expect("restores");
    assert_eq!(restored.fact_count(), s.fact_count());
    assert_eq!(restored.token_count(), s.token_count());
    assert_eq!(restored.timer_count(), s.timer_count());
    eprintln!(
        "snapshot of {} live facts, {} tokens, {} timers: {} bytes ({:.1} bytes per fact)",
        s.fact_count(),
        s.token_count(),
        s.timer_count().0,
        bytes.len(),
        bytes.len() as f64 / s.fact_count() as f64
    );
    drop(restored);
    let mut g = c.benchmark_group("time_snapshot");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("snapshot_100k_events", |b| {
        b.iter(|| black_box(s.snapshot()))
    });
    g.bench_function("restore_100k_events", |b| {
        b.iter_batched(
            || (),
            |()| Session::restore(rules.network().clone(), NoHost, &bytes).expect("restores"),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, absence, aggregate, mixed, snapshot);
criterion_main!(benches);
