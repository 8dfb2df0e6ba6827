//! The example campaign of `examples/campaign/` (26 rules over every
//! primitive) replayed from `events.jsonl`, checked decision by decision
//! against `expected.jsonl`: coupons issued, refused as already issued,
//! suppressed by an audience or a campaign limit; messages sent, falling
//! back along their channel chain, capped, deferred out of quiet hours and
//! decided again, dropped in quiet hours; transitions, an illegal one
//! failing; splits by GrowthBook hash; identity links; and a rule matching
//! a field filled by a context provider.

mod support;

use nudge::Duration;
use support::{check, root};

#[test]
fn example_campaign_replays_to_its_expected_decisions() {
    let dir = root().join("examples/campaign");
    check(
        "campaign",
        &dir.join("main.nudge"),
        &dir.join("events.jsonl"),
        &dir.join("expected.jsonl"),
        Duration::ZERO,
        &[],
    );
}

/// Every kind of outcome the primitives give shows up in the example, so
/// the example keeps exercising all of them as it changes.
#[test]
fn example_campaign_shows_every_kind_of_outcome() {
    let text = std::fs::read_to_string(root().join("examples/campaign/expected.jsonl")).unwrap();
    for needle in [
        r#""branch": "issued""#,
        r#""reason": "already_issued""#,
        r#""reason": "suppressed""#,
        r#""reason": "campaign_limit""#,
        r#""reason": "capped""#,
        r#""status": "deferred""#,
        r#""reason": "quiet_hours""#,
        r#""reason": "illegal_transition""#,
        r#""reason": "not_in_experiment""#,
        r#""skipped": ["#,
        r#""arm": "#,
        r#""person": "#,
        r#""rule": "lapsed_high_value_winback""#,
    ] {
        assert!(text.contains(needle), "no decision with {needle}");
    }
}
