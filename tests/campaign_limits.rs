//! A campaign's `per_user` limit counts touches that are carried out: a
//! message counts when it goes out (or is deferred to a time it will go out
//! at), not when quiet hours drop it, no channel reaches the user or a
//! channel cap stops it; a firing counts one touch.

mod support;

use nudge::campaign::CampaignHost;
use nudge::{Ruleset, Session};
use support::{insert_and_fire, outcomes as taken, ts};

const TYPES: &str = r#"
event ping { key user_id: string  time at: timestamp  kind: string }
fact profile { key user_id: string  timezone: string }
"#;

fn rules(body: &str) -> Ruleset {
    Ruleset::from_str("limits.nudge", &format!("{TYPES}\n{body}")).unwrap_or_else(|e| panic!("{e}"))
}

/// Inserts a ping at `at` and fires; returns what became of each decision.
fn ping(
    r: &Ruleset,
    s: &mut Session<CampaignHost>,
    user: &str,
    kind: &str,
    at: &str,
) -> Vec<(String, String)> {
    let ping = serde_json::json!({"user_id": user, "at": at, "kind": kind});
    insert_and_fire(r, s, "ping", ping)
}

fn done(action: &str) -> (String, String) {
    (action.into(), "done".into())
}

fn refused(action: &str, reason: &str) -> (String, String) {
    (action.into(), reason.into())
}

#[test]
fn messages_that_do_not_go_out_leave_the_limit_alone() {
    let r = rules(
        r#"
cap one_sms_a_day { limit: 1 per calendar day  channel: "sms" }
campaign once { per_user: 1 per lifetime  quiet_hours: "22:00-08:00" drop }
rule nudge_user {
    campaign once
    when
        p: ping()
    then
        message(channel: ["push", "sms"], template: "hello", user: p.user_id)
}
rule other_sms {
    salience 10
    when
        p: ping(kind == "other")
    then
        message(channel: "sms", template: "other", user: p.user_id)
}
"#,
    );
    let mut s = r.session();
    s.host_mut()
        .contacts_mut()
        .set_reachable("u1", "push", false);
    // Dropped in quiet hours (UTC for a user with no profile).
    assert_eq!(
        ping(&r, &mut s, "u1", "x", "2026-11-23T23:00:00Z"),
        [refused("message", "quiet_hours")]
    );
    // Unreachable on push, and SMS is capped by another rule's send.
    assert_eq!(
        ping(&r, &mut s, "u1", "other", "2026-11-24T09:00:00Z"),
        [done("message"), refused("message", "no_channel")]
    );
    s.host_mut()
        .contacts_mut()
        .set_reachable("u1", "sms", false);
    assert_eq!(
        ping(&r, &mut s, "u1", "x", "2026-11-25T09:00:00Z"),
        [refused("message", "unreachable")]
    );
    // None of those used the campaign's one message up.
    s.host_mut()
        .contacts_mut()
        .set_reachable("u1", "push", true);
    assert_eq!(
        ping(&r, &mut s, "u1", "x", "2026-11-25T10:00:00Z"),
        [done("message")]
    );
    assert_eq!(
        ping(&r, &mut s, "u1", "x", "2026-11-26T10:00:00Z"),
        [refused("message", "campaign_limit")]
    );
}

#[test]
fn a_deferred_message_holds_its_place_in_the_day_it_goes_out() {
    let r = rules(
        r#"
campaign daily { per_user: 1 per calendar day  quiet_hours: "22:00-08:00" defer }
rule nudge_user {
    campaign daily
    when
        p: ping()
    then
        message(channel: "push", template: "hello", user: p.user_id)
}
"#,
    );
    let mut s = r.session();
    // Deferred to 08:00 on the 24th, and counted in that day.
    assert_eq!(
        ping(&r, &mut s, "u1", "x", "2026-11-23T23:00:00Z"),
        [refused("message", "deferred 2026-11-24T08:00:00Z")]
    );
    // A second trigger that night finds the 24th taken.
    assert_eq!(
        ping(&r, &mut s, "u1", "x", "2026-11-23T23:30:00Z"),
        [refused("message", "campaign_limit")]
    );
    s.advance_to(ts("2026-11-24T08:00:00Z")).unwrap();
    assert_eq!(taken(&mut s), [done("message")]);
    assert_eq!(
        ping(&r, &mut s, "u1", "x", "2026-11-24T09:00:00Z"),
        [refused("message", "campaign_limit")]
    );
    assert_eq!(
        ping(&r, &mut s, "u1", "x", "2026-11-25T09:00:00Z"),
        [done("message")]
    );
}

#[test]
fn a_coupon_and_its_message_are_one_touch() {
    let r = rules(
        r#"
coupon welcome { value: 5.0 }
campaign once { per_user: 1 per lifetime  quiet_hours: "22:00-08:00" defer }
rule reward {
    campaign once
    when
        p: ping()
    then
        coupon(template: welcome, user: p.user_id) {
            issued => message(channel: "push", template: "coupon_ready", user: p.user_id)
        }
}
"#,
    );
    let mut s = r.session();
    // The coupon counts the touch; its message, deferred, is part of it.
    assert_eq!(
        ping(&r, &mut s, "u1", "x", "2026-11-23T23:00:00Z"),
        [
            done("coupon"),
            refused("message", "deferred 2026-11-24T08:00:00Z")
        ]
    );
    s.advance_to(ts("2026-11-24T08:00:00Z")).unwrap();
    assert_eq!(taken(&mut s), [done("message")]);
    assert_eq!(
        ping(&r, &mut s, "u2", "x", "2026-11-24T09:00:00Z"),
        [done("coupon"), done("message")]
    );
    assert_eq!(
        ping(&r, &mut s, "u2", "x", "2026-11-24T10:00:00Z"),
        [refused("coupon", "campaign_limit")]
    );
}

/// A coupon claim is identified by what the rule matched: an event with no
/// `time` field counts by when it was inserted, so the same values on
/// other days are new claims (up to the template's limit), while the same
/// event delivered twice at one instant is one claim.
#[test]
fn events_without_a_time_field_claim_by_when_they_came() {
    let r = Ruleset::from_str(
        "grab.nudge",
        r#"
event grab { key user_id: string }
coupon three_each { value: 1.0  per_user: 3 }
rule hand_out {
    when
        g: grab()
    then
        coupon(template: three_each, user: g.user_id)
}
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut s = r.session();
    // A grab has no time of its own: the clock says when it came.
    let grab = |s: &mut Session<CampaignHost>, at: &str| {
        s.advance_to(ts(at)).unwrap();
        insert_and_fire(&r, s, "grab", serde_json::json!({"user_id": "u1"}))
    };
    assert_eq!(grab(&mut s, "2026-11-23T09:00:00Z"), [done("coupon")]);
    assert_eq!(
        grab(&mut s, "2026-11-23T09:00:00Z"),
        [refused("coupon", "already_issued")],
        "delivered twice at one instant"
    );
    assert_eq!(grab(&mut s, "2026-11-24T09:00:00Z"), [done("coupon")]);
    assert_eq!(grab(&mut s, "2026-11-25T09:00:00Z"), [done("coupon")]);
    assert_eq!(
        grab(&mut s, "2026-11-26T09:00:00Z"),
        [refused("coupon", "per_user_limit")]
    );
}
