//! Runs the checked-decisions workload once, for profilers:
//! `cargo run --release --example checked_profile -- 20000 [bare]`
//! (`bare`: the same rules and events in a session with no host).

#[path = "../benches/primitives_workload.rs"]
mod primitives_workload;

use nudge::Ruleset;
use primitives_workload::{stream, RULES};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let bare = std::env::args().nth(2).is_some_and(|a| a == "bare");
    let rules = Ruleset::from_str("checked.nudge", RULES).expect("rules compile");
    let events = stream(&rules, n, 7);
    let (made, stopped, el) = if bare {
        run(rules.bare_session(nudge::SessionConfig::default()), events)
    } else {
        run(rules.session(), events)
    };
    eprintln!(
        "{n} events, {made} decisions ({stopped} not carried out), {:.0} events/s, {:.2} µs per decision",
        n as f64 / el.as_secs_f64(),
        el.as_secs_f64() * 1e6 / made as f64
    );
}

fn run<H: nudge::Host>(
    mut s: nudge::Session<H>,
    events: Vec<primitives_workload::Event>,
) -> (u64, u64, std::time::Duration) {
    let (mut made, mut stopped) = (0u64, 0u64);
    let t = std::time::Instant::now();
    for (ty, values) in events {
        s.insert(ty, values).expect("valid");
        s.fire().expect("no runaway");
        made += s.decisions().count() as u64;
        stopped += s.decisions().filter(|d| !d.status().is_done()).count() as u64;
        s.clear_decisions();
    }
    (made, stopped, t.elapsed())
}
