//! Criterion benches of the time constructs, on the pseudo clock following
//! the event times: events/s through an absence (`not ... after o within
//! 10m`, decided by timers), through a grouped count over a 30-minute
//! window, and through both with a 30-minute inactivity; then the time and
//! size of a snapshot and a restore of a session holding 100,000 events.
//!
//! `cargo bench --bench time` (add `-- --quick` for a short run). The
//! rules and the stream are those of `benches/time_workload.rs`, shared
//! with `benches/memory_time.rs`: 100,000 users, one event every 10 ms of
//! event time, each carrying its time field.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use nudge::{NoHost, Session, Timestamp};
use std::hint::black_box;
use std::time::{Duration, Instant};

mod time_workload;
use time_workload::{ruleset, Event, Stream, ABSENCE, AGGREGATE, MIXED, START_MS, STEP_MS};

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
fn throughput(c: &mut Criterion, name: &str, rules: &[&str], views: u64, warm: usize) {
    let rules = ruleset("time.nudge", rules);
    let mut stream = Stream::new(&rules, 7, views);
    let mut s = rules.bare_session(nudge::SessionConfig::default());
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
    throughput(c, "absence_10m", &[ABSENCE], 0, 200_000);
}

fn aggregate(c: &mut Criterion) {
    // Page views only; the window is 30 minutes (180,000 events).
    throughput(c, "count_30m_by_user", &[AGGREGATE], 100, 400_000);
}

fn mixed(c: &mut Criterion) {
    throughput(c, "count_not_absence_mixed", &MIXED, 85, 400_000);
}

/// Snapshot and restore of a session holding 100,000 events, all within
/// their windows (100,000 x 10 ms is under 30 minutes).
fn snapshot(c: &mut Criterion) {
    let rules = ruleset("time.nudge", &MIXED);
    let mut stream = Stream::new(&rules, 11, 85);
    let mut s = rules.bare_session(nudge::SessionConfig::default());
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
