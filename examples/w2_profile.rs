//! Runs the W2 workload once, for profilers: `cargo run --release --example w2_profile -- 10000 2000`.

#[path = "../benches/workload.rs"]
mod workload;

use nudge::{Network, Session};
use workload::*;

fn main() {
    let mut args = std::env::args().skip(1);
    let r: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2_000);
    let (rules, _, _) = w2_rules(r, 7);
    let net = Network::shared(rules).expect("compiles");
    eprintln!("{:?}", net.stats());
    let events = w2_events(n, 11);
    let mut s = Session::new(net);
    let (mut f, mut c) = (0, 0);
    let t = std::time::Instant::now();
    run_engine(&mut s, &events, &mut f, &mut c);
    let el = t.elapsed();
    eprintln!(
        "{n} events, {f} firings, checksum {c}, {:.0} events/s, counters {:?}",
        n as f64 / el.as_secs_f64(),
        s.counters()
    );
}
