//! Audiences after identity links: a list naming any identifier of a person
//! holds for all of them, so a complaint made from a phone stops the pushes
//! to the same person's device, whichever identifier names the person.

mod support;

use nudge::campaign::CampaignHost;
use nudge::{Ruleset, Session};
use support::insert_and_fire;

const RULES: &str = r#"
event seen { time at: timestamp  a: string  b: string }
event ping { key user_id: string  time at: timestamp }
audience complaints
audience vip
cap one_push_a_day { limit: 1 per calendar day  channel: "push"  exempt: [vip] }
campaign care { suppress: [complaints] }

rule link {
    when
        s: seen()
    then
        link_identity(id: s.a, same_as: s.b)
}

rule push_it {
    campaign care
    when
        p: ping()
    then
        message(channel: "push", template: "hello", user: p.user_id)
}
"#;

/// Inserts a fact and fires; returns what became of each decision of
/// `action`: `done` or the reason it was suppressed.
fn insert(
    r: &Ruleset,
    s: &mut Session<CampaignHost>,
    ty: &str,
    j: serde_json::Value,
    action: &str,
) -> Vec<String> {
    insert_and_fire(r, s, ty, j)
        .into_iter()
        .filter(|(a, _)| a == action)
        .map(|(_, status)| status)
        .collect()
}

#[test]
fn lists_hold_for_every_identifier_of_a_person() {
    let r = Ruleset::from_str("identity.nudge", RULES).unwrap_or_else(|e| panic!("{e}"));
    let mut s = r.session();
    // The complaint names the phone, which does not name the person: the
    // device's id is smaller.
    s.host_mut()
        .load_audience("complaints", ["zphone"])
        .unwrap();
    s.host_mut().load_audience("vip", ["ztablet"]).unwrap();
    let mut push = |ty: &str, j: serde_json::Value| insert(&r, &mut s, ty, j, "message");
    let ping = |user: &str, at: &str| serde_json::json!({"user_id": user, "at": at});
    let seen = |a: &str, b: &str, at: &str| serde_json::json!({"a": a, "b": b, "at": at});
    assert_eq!(
        push("ping", ping("adevice", "2026-11-23T09:00:00Z")),
        ["done"]
    );
    push("seen", seen("adevice", "zphone", "2026-11-23T09:01:00Z"));
    assert_eq!(
        push("ping", ping("adevice", "2026-11-23T09:02:00Z")),
        ["suppressed"],
        "the phone's complaint holds for the device"
    );

    // The allow-list too: a tablet on the VIP list lets its person's other
    // device past the daily push cap.
    assert_eq!(
        push("ping", ping("bdevice", "2026-11-23T10:00:00Z")),
        ["done"]
    );
    assert_eq!(
        push("ping", ping("bdevice", "2026-11-23T10:01:00Z")),
        ["capped"]
    );
    push("seen", seen("bdevice", "ztablet", "2026-11-23T10:02:00Z"));
    assert_eq!(
        push("ping", ping("bdevice", "2026-11-23T10:03:00Z")),
        ["done"]
    );
}

/// A coupon of one per user is one per person, whatever name the person had
/// when it claimed: a link that renames the person (a smaller identifier
/// joins) keeps the earlier claim in its count.
#[test]
fn a_person_renamed_by_a_link_keeps_its_coupon_count() {
    let r = Ruleset::from_str(
        "coupons.nudge",
        r#"
event seen { time at: timestamp  a: string  b: string }
event ping { key user_id: string  time at: timestamp }
coupon welcome { value: 5.0  per_user: 1  shards: 4  stock: 100 }
rule link {
    when
        s: seen()
    then
        link_identity(id: s.a, same_as: s.b)
}
rule reward {
    when
        p: ping()
    then
        coupon(template: welcome, user: p.user_id)
}
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut s = r.session();
    let mut step = |ty: &str, j: serde_json::Value| insert(&r, &mut s, ty, j, "coupon");
    let ping = |user: &str, at: &str| serde_json::json!({"user_id": user, "at": at});
    assert_eq!(
        step("ping", ping("zphone", "2026-11-23T09:00:00Z")),
        ["done"]
    );
    // The device's id is smaller: the person is renamed `adevice`.
    step(
        "seen",
        serde_json::json!({"a": "adevice", "b": "zphone", "at": "2026-11-23T09:01:00Z"}),
    );
    assert_eq!(
        step("ping", ping("adevice", "2026-11-23T09:02:00Z")),
        ["per_user_limit"]
    );
    assert_eq!(
        step("ping", ping("zphone", "2026-11-23T09:03:00Z")),
        ["per_user_limit"]
    );
}
