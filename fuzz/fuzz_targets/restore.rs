//! Any bytes as a session snapshot: a restore either gives a session that
//! runs on, or a `SnapshotError`; it never panics. The corpus starts from
//! nothing: libFuzzer's comparison tracing finds the magic and the
//! version, and the rules have windows, absences, aggregates and delayed
//! actions for what follows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nudge_rete::{Network, NoHost, Session};
use std::sync::{Arc, OnceLock};

const RULES: &str = r#"
event view { key user_id: string  time at: timestamp  page: string }
event order { key user_id: string  time at: timestamp  order_id: string  amount: float }
fact profile { key user_id: string  tier: int }
rule busy { when v: count(view()) >= 2 within 30m by user_id then push(user: v.user_id) }
rule unpaid {
    when
        o: order()
        p: profile(user_id == o.user_id)
        not view(user_id == o.user_id, page == "pay") after o within 10m
    then
        after 1h regardless mail(user: o.user_id, tier: p.tier)
}
action push(user: string)
action mail(user: string, tier: int)
"#;

fn network() -> &'static Arc<Network> {
    static NET: OnceLock<Arc<Network>> = OnceLock::new();
    NET.get_or_init(|| {
        let mut sources = nudge_dsl::Sources::new();
        let root = sources.add("fuzz.nudge", RULES);
        let mut no_includes = |_: &std::path::Path| Err(std::io::Error::other("no includes"));
        let checked = nudge_dsl::check(&mut sources, &[root], &mut no_includes)
            .unwrap_or_else(|_| panic!("the fuzz rules check"));
        let (rules, _) = checked.into_parts();
        Network::shared(rules).expect("the fuzz rules compile")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(mut session) = Session::restore(network().clone(), NoHost, data) {
        let now = session.now().as_millis();
        let later = nudge_core::Timestamp::from_millis(now.saturating_add(7_200_000));
        let _ = session.advance_to(later);
        let _ = session.snapshot();
    }
});
