//! Memory over a long event stream with time windows, printed as a table:
//! `cargo bench --bench memory_time`.
//!
//! Rules with a 30-minute aggregate window, a 30-minute inactivity and a
//! 10-minute absence read a synthetic stream (100,000 users, one event every
//! 10 ms of event time, each carrying its time field; rules and stream are
//! in `benches/time_workload.rs`): 85% page views and 15% orders, 70% of
//! which are paid 0 to 15 minutes later. The pseudo clock follows the
//! event times, so events leave working memory once their windows are
//! over: live facts, tokens, timers and heap bytes stay flat however long
//! the stream runs.
//!
//! `NUDGE_MEM_EVENTS` sets the stream length (default 10,000,000);
//! `NUDGE_MEM_CONTRAST` the length of a second stream fed without moving
//! the clock, where nothing expires (default 1,000,000; 0 skips it).
//!
//! A counting allocator (`benches/alloc_count.rs`) measures live and peak
//! heap bytes of the process.

use nudge::{Ruleset, Session, Timestamp};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

mod alloc_count;
mod time_workload;
use alloc_count::{mb, LIVE, PEAK};
use time_workload::{ruleset, Stream, MIXED, START_MS, STEP_MS};

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
    let mut stream = Stream::new(rules, 42, 85);
    let mut s = rules.bare_session(nudge::SessionConfig::default());
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
    let rules = ruleset("memory_time.nudge", &MIXED);
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
