//! Criterion benches on the shared workloads (see `benches/workload.rs`):
//! compile time, W2 events/s against the naive loop, W3 events/s.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nudge::{Network, Session};
use std::hint::black_box;
use std::time::Duration;

mod workload;
use workload::*;

fn compile(c: &mut Criterion) {
    let mut g = c.benchmark_group("compile");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    for r in [1_000, 10_000] {
        g.bench_with_input(BenchmarkId::new("rules_and_network", r), &r, |b, &r| {
            b.iter(|| {
                let (rules, _, _) = w2_rules(r, 7);
                black_box(Network::compile(rules).expect("compiles"))
            })
        });
    }
    g.finish();
}

fn w2(c: &mut Criterion) {
    let events = w2_events(20_000, 11);
    let mut g = c.benchmark_group("w2");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .warm_up_time(Duration::from_secs(2));
    for r in [100, 1_000, 10_000] {
        let (rules, tests, types) = w2_rules(r, 7);
        let net = Network::shared(rules).expect("compiles");
        let naive = Naive::new(&tests, &types);
        // Both must fire the same rules before either is timed.
        let (mut f1, mut c1, mut f2, mut c2) = (0, 0, 0, 0);
        let mut s = Session::new(net.clone());
        run_engine(&mut s, &events[..2_000], &mut f1, &mut c1);
        for e in &events[..2_000] {
            naive.run(e, &mut f2, &mut c2);
        }
        assert_eq!(
            (f1, c1),
            (f2, c2),
            "engine and naive loop disagree at R = {r}"
        );
        eprintln!("R = {r}: {:.1} firings per event", f1 as f64 / 2_000.0);

        g.throughput(Throughput::Elements(events.len() as u64));
        g.bench_with_input(BenchmarkId::new("engine", r), &r, |b, _| {
            let mut s = Session::new(net.clone());
            b.iter(|| {
                let (mut f, mut c) = (0, 0);
                run_engine(&mut s, &events, &mut f, &mut c);
                black_box((f, c))
            })
        });
        let naive_events = if r >= 10_000 {
            &events[..2_000]
        } else {
            &events[..]
        };
        g.throughput(Throughput::Elements(naive_events.len() as u64));
        g.bench_with_input(BenchmarkId::new("naive", r), &r, |b, _| {
            b.iter(|| {
                let (mut f, mut c) = (0, 0);
                for e in naive_events {
                    naive.run(e, &mut f, &mut c);
                }
                black_box((f, c))
            })
        });
    }
    g.finish();
}

fn w3(c: &mut Criterion) {
    let events = w2_events(20_000, 13);
    let net = Network::shared(w3_rules(5)).expect("compiles");
    let profile = net.rules().schema().id("profile").expect("declared");
    let mut g = c.benchmark_group("w3");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(events.len() as u64));
    let mut s = Session::new(net.clone());
    for p in w3_profiles(100_000, 5) {
        s.insert(profile, p).expect("valid profile");
    }
    g.bench_function("engine_100k_profiles", |b| {
        b.iter(|| {
            let (mut f, mut c) = (0, 0);
            run_engine(&mut s, &events, &mut f, &mut c);
            black_box((f, c))
        })
    });
    g.finish();
}

criterion_group!(benches, compile, w2, w3);
criterion_main!(benches);
