//! Any bytes as a replay stream into a ruleset with every primitive: each
//! line is applied or refused with a line error, and the checked decisions
//! come out; nothing panics. Lines may load audiences, set context rows,
//! reachability and channel addresses, and move the clock, so the fuzzer
//! reaches coupons, caps, quiet hours, transitions, splits and identity
//! links through the host as well as the engine.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nudge::replay::Replayer;
use nudge::Ruleset;
use std::sync::OnceLock;

const RULES: &str = r#"
event cart { key user_id: string  time at: timestamp  amount: float  device: string? }
fact profile { key user_id: string  timezone: string  wechat: string? }
context features for cart { segment: string? }
audience vip
audience blocked
cap sms_daily { limit: 1 per calendar day  channel: "sms"  exempt: [vip] }
coupon c10 { value: 10.0  stock: 3  budget: 25.0  per_user: 1 per calendar day  shards: 2 }
campaign promo { per_user: 2 per 1h  suppress: [blocked]  quiet_hours: "22:00-08:00" defer }
experiment copy { arms: { a: 50%, b: 50% } }
machine stage { initial: seen  seen -> carted  carted -> seen }
rule offer {
    campaign promo
    when c: cart(amount > 10)
    then
        coupon(template: c10, user: c.user_id) { issued => message(channel: ["wechat", "sms"], template: "t", user: c.user_id) }
        transition(machine: stage, user: c.user_id, to: carted)
}
rule copy_test {
    when c: cart(segment == "x")
    then split(experiment: copy, user: c.user_id) { a => message(channel: "sms", template: "a", user: c.user_id) }
}
rule link {
    when c: cart(device != null)
    then link_identity(id: c.device, same_as: c.user_id)
}
"#;

fn rules() -> &'static Ruleset {
    static RULESET: OnceLock<Ruleset> = OnceLock::new();
    RULESET.get_or_init(|| Ruleset::from_str("fuzz.nudge", RULES).expect("the fuzz rules compile"))
}

fuzz_target!(|data: &[u8]| {
    // A fresh store per input, so that inputs do not depend on each other.
    let store = std::sync::Arc::new(nudge::primitives::store::MemoryStore::new());
    let rules = rules().clone().with_store(store).expect("the same declarations");
    let mut replayer = Replayer::new(&rules);
    let mut out = Vec::new();
    let _ = replayer.run("fuzz", data, Some(&mut out), false, |_| {});
});
