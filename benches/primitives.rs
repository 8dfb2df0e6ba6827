//! Criterion bench of checked decisions: the same rules and event stream
//! run through a bare session (every decision carried out unchecked) and
//! through a ruleset session whose `CampaignHost` checks each built-in
//! action against the primitives (campaign suppression list and per-user
//! limit, two frequency caps and a channel fallback, a coupon's stock,
//! budget and per-user limit, a GrowthBook split, a machine transition),
//! all on the in-memory state store. The difference, divided by the
//! decisions made, is what checking one decision costs.
//!
//! `cargo bench --bench primitives` (add `-- --quick` for a short run).
//! The stream: 100,000 users, one event every 10 ms of event time, of four
//! types; about a third of the events make a decision.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use nudge::{Ruleset, SessionConfig};

mod primitives_workload;
use primitives_workload::{stream, Event, RULES};
use std::hint::black_box;

const BATCH: usize = 20_000;

fn feed<H: nudge::Host>(s: &mut nudge::Session<H>, events: Vec<Event>) -> u64 {
    let mut decisions = 0;
    for (ty, values) in events {
        s.insert(ty, values).expect("valid");
        s.fire().expect("no runaway");
        decisions += s.decisions().count() as u64;
        s.clear_decisions();
    }
    decisions
}

fn bench(c: &mut Criterion) {
    let rules = Ruleset::from_str("checked.nudge", RULES).expect("rules compile");
    let events = stream(&rules, BATCH, 7);
    let mut g = c.benchmark_group("checked_decisions");
    g.throughput(Throughput::Elements(BATCH as u64));
    // Decisions per batch, and how many of them the primitives stopped.
    let mut probe = rules.session();
    let mut made = 0u64;
    let mut stopped = 0u64;
    for (ty, values) in events.clone() {
        probe.insert(ty, values).expect("valid");
        probe.fire().expect("no runaway");
        made += probe.decisions().count() as u64;
        stopped += probe.decisions().filter(|d| !d.status().is_done()).count() as u64;
        probe.clear_decisions();
    }
    eprintln!("{BATCH} events: {made} decisions, {stopped} not carried out");
    g.bench_function("bare_session", |b| {
        b.iter_batched(
            || (rules.bare_session(SessionConfig::default()), events.clone()),
            |(mut s, ev)| black_box(feed(&mut s, ev)),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("campaign_host", |b| {
        b.iter_batched(
            || {
                // A fresh store each batch, so counters start empty.
                let fresh = Ruleset::from_str("checked.nudge", RULES).expect("rules compile");
                (fresh.session(), events.clone())
            },
            |(mut s, ev)| black_box(feed(&mut s, ev)),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
