//! Memory and compile-time measurements, printed as a table:
//! `cargo bench --bench memory`.
//!
//! A counting allocator (`benches/alloc_count.rs`) measures live and peak
//! heap bytes around each step.

use nudge::{Network, Session, Value};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

mod alloc_count;
mod workload;
use alloc_count::{mb, LIVE, PEAK};
use workload::*;

fn main() {
    println!("{:<44} {:>12} {:>12}", "step", "time", "memory");
    for r in [1_000, 10_000] {
        let base = LIVE.load(Relaxed);
        PEAK.store(base, Relaxed);
        let t = Instant::now();
        let (rules, _, _) = w2_rules(r, 7);
        let net = Network::compile(rules).expect("compiles");
        let el = t.elapsed();
        println!(
            "{:<44} {:>10.0}ms {:>9.1} MB  (peak {:.1} MB)",
            format!("compile W2, R = {r}"),
            el.as_secs_f64() * 1e3,
            mb(LIVE.load(Relaxed) - base),
            mb(PEAK.load(Relaxed) - base)
        );
        drop(net);
    }

    // Rule text to network, through the parser and checker.
    for r in [1_000, 10_000] {
        let mut text = String::from("event e { key user: int  category: string  amount: int  channel: string  city: string  level: int }\n");
        let mut rng = Rng(3);
        for i in 0..r {
            text.push_str(&format!(
                "rule r{i} {{ when x: e(category == \"cat{}\", amount > {}, level >= {}) then fire(user: x.user) }}\n",
                rng.below(10),
                [100, 200, 500, 1000, 1500][rng.below(5) as usize],
                [3, 5, 7, 9][rng.below(4) as usize]
            ));
        }
        text.push_str("action fire(user: int)\n");
        let base = LIVE.load(Relaxed);
        PEAK.store(base, Relaxed);
        let t = Instant::now();
        let ruleset = nudge::Ruleset::from_str("w.nudge", &text).expect("valid rules");
        let el = t.elapsed();
        println!(
            "{:<44} {:>10.0}ms {:>9.1} MB  (peak {:.1} MB)",
            format!("compile rule text, R = {r}"),
            el.as_secs_f64() * 1e3,
            mb(LIVE.load(Relaxed) - base),
            mb(PEAK.load(Relaxed) - base)
        );
        drop(ruleset);
    }

    // Memory per stored fact: W3 profiles held in a session whose rules join on them.
    let net = Network::shared(w3_rules(5)).expect("compiles");
    let profile = net.rules().schema().id("profile").expect("declared");
    let profiles = w3_profiles(100_000, 5);
    let payload: usize = profiles
        .iter()
        .map(|p| {
            p.len() * std::mem::size_of::<Value>()
                + p.iter()
                    .map(|v| if let Value::Str(s) = v { s.len() } else { 0 })
                    .sum::<usize>()
        })
        .sum();
    let mut s = Session::new(net.clone());
    let base = LIVE.load(Relaxed);
    let t = Instant::now();
    for p in profiles.iter().cloned() {
        s.insert(profile, p).expect("valid");
    }
    let el = t.elapsed();
    let used = LIVE.load(Relaxed) - base;
    // The cloned values hold their strings: count them as payload.
    let n = profiles.len();
    println!(
        "{:<44} {:>10.0}ms {:>9.1} MB  ({} bytes per fact beyond its {} byte payload)",
        "insert 100,000 W3 profiles",
        el.as_secs_f64() * 1e3,
        mb(used),
        (used.saturating_sub(payload)) / n,
        payload / n
    );
    drop(s);

    // W2 replay: memory stays flat when events are retracted after firing.
    let (rules, _, _) = w2_rules(1_000, 7);
    let net = Network::shared(rules).expect("compiles");
    let events = w2_events(100_000, 21);
    let mut s = Session::new(net);
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    let (mut f, mut c) = (0, 0);
    run_engine(&mut s, &events, &mut f, &mut c);
    println!(
        "{:<44} {:>12} {:>9.2} MB  (peak {:.2} MB)",
        "W2 R = 1,000: 100,000 events, after",
        "",
        mb(LIVE.load(Relaxed).saturating_sub(base)),
        mb(PEAK.load(Relaxed) - base)
    );
}
