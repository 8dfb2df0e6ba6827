//! Frequency caps: rolling and calendar windows, calendar boundaries in a
//! zone, several caps checked and counted together, exempt audiences, and
//! concurrent sends (S10, S24).

use nudge_core::decl::{CalendarUnit, CapDecl, CapScope, Limit, Period, Zone};
use nudge_core::primitives::audience::{Audiences, NoAudiences};
use nudge_core::primitives::caps::{CapOutcome, FrequencyCaps, SendAttempt};
use nudge_core::primitives::identity::{Identifier, IdentityGraph};
use nudge_core::primitives::store::{KeyLayout, MemoryStore, StateStore};
use nudge_core::{Duration, Timestamp};
use std::sync::Arc;
use std::thread;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn cap(name: &str, count: u32, period: Period, scope: CapScope, zone: Zone) -> CapDecl {
    CapDecl {
        name: name.into(),
        limit: Limit { count, period },
        scope,
        zone,
        exempt: vec![],
    }
}

fn allowed(o: &CapOutcome) -> bool {
    matches!(o, CapOutcome::Allowed { .. })
}

#[test]
fn rolling_window_slides() {
    let caps = FrequencyCaps::new(vec![cap(
        "push_24h",
        2,
        Period::Rolling(Duration::from_secs(86_400)),
        CapScope::Channel("push".into()),
        Zone::User,
    )])
    .unwrap();
    let store = MemoryStore::new();
    let send = |at| {
        caps.check_and_count(
            &store,
            &SendAttempt::new("u", "push", "c", ts(at)),
            &NoAudiences,
        )
        .unwrap()
    };
    assert!(allowed(&send("2026-01-01T10:00:00Z")));
    assert!(allowed(&send("2026-01-01T20:00:00Z")));
    assert_eq!(send("2026-01-02T09:59:59Z").capped_by(), Some("push_24h"));
    // The first send leaves the window exactly 24 hours later.
    assert!(allowed(&send("2026-01-02T10:00:00Z")));
    assert_eq!(send("2026-01-02T19:59:59Z").capped_by(), Some("push_24h"));
}

#[test]
fn calendar_day_resets_at_local_midnight_across_dst() {
    // New York falls back on 2026-11-01: that day is 25 hours long.
    let caps = FrequencyCaps::new(vec![cap(
        "daily",
        1,
        Period::Calendar(CalendarUnit::Day),
        CapScope::All,
        Zone::Named("America/New_York".into()),
    )])
    .unwrap();
    let store = MemoryStore::new();
    let send = |at| {
        caps.check_and_count(
            &store,
            &SendAttempt::new("u", "sms", "c", ts(at)),
            &NoAudiences,
        )
        .unwrap()
    };
    assert!(allowed(&send("2026-11-01T04:00:00Z"))); // 00:00 EDT
    assert!(!allowed(&send("2026-11-02T04:59:59Z"))); // 23:59:59 EST, same day
    assert!(allowed(&send("2026-11-02T05:00:00Z"))); // 00:00 EST, next day
}

#[test]
fn calendar_week_in_the_users_zone() {
    let caps = FrequencyCaps::new(vec![cap(
        "weekly",
        1,
        Period::Calendar(CalendarUnit::Week),
        CapScope::All,
        Zone::User,
    )])
    .unwrap();
    let store = MemoryStore::new();
    let send = |user, zone, at| {
        let mut s = SendAttempt::new(user, "sms", "c", ts(at));
        s.user_zone = zone;
        caps.check_and_count(&store, &s, &NoAudiences).unwrap()
    };
    // Monday 2026-11-23 00:30 in Shanghai is Sunday 16:30 UTC.
    assert!(allowed(&send(
        "sh",
        Some("Asia/Shanghai"),
        "2026-11-22T15:59:00Z"
    ))); // Sunday 23:59
    assert!(allowed(&send(
        "sh",
        Some("Asia/Shanghai"),
        "2026-11-22T16:30:00Z"
    ))); // Monday
    assert!(!allowed(&send(
        "sh",
        Some("Asia/Shanghai"),
        "2026-11-29T15:59:00Z"
    ))); // Sunday again
         // In UTC both instants fall on Sunday, in the week of Monday the 16th.
    assert!(allowed(&send("utc", None, "2026-11-22T15:59:00Z")));
    assert!(!allowed(&send("utc", None, "2026-11-22T16:30:00Z")));
    // An unknown profile zone counts in UTC rather than failing the send.
    assert!(!allowed(&send(
        "utc",
        Some("Not/AZone"),
        "2026-11-22T23:59:00Z"
    )));
}

/// S10: at most 2 marketing SMS per calendar day in the user's zone and 5
/// messages of any kind per rolling 7 days; the VIP allow-list bypasses the
/// campaign cap.
#[test]
fn s10_several_caps_atomically_with_an_allow_list() {
    let mut campaign_cap = cap(
        "promo_sms_daily",
        2,
        Period::Calendar(CalendarUnit::Day),
        CapScope::Campaign("promo".into()),
        Zone::User,
    );
    campaign_cap.exempt = vec!["vip".into()];
    let caps = FrequencyCaps::new(vec![
        campaign_cap,
        cap(
            "any_7d",
            5,
            Period::Rolling("7d".parse().unwrap()),
            CapScope::All,
            Zone::User,
        ),
    ])
    .unwrap();
    let mut audiences = Audiences::new();
    audiences.insert_ids("vip", ["vip1"]).unwrap();
    let store = MemoryStore::new();
    let send = |user, campaign, at| {
        let mut s = SendAttempt::new(user, "sms", campaign, ts(at));
        s.user_zone = Some("Asia/Shanghai");
        caps.check_and_count(&store, &s, &audiences).unwrap()
    };
    let day1 = "2026-11-23T02:00:00Z";
    assert_eq!(
        send("u", "promo", day1),
        CapOutcome::Allowed {
            counted: vec![("promo_sms_daily".into(), 1), ("any_7d".into(), 1)]
        }
    );
    assert!(allowed(&send("u", "promo", day1)));
    let capped = send("u", "promo", day1);
    assert_eq!(
        capped,
        CapOutcome::Capped {
            cap: "promo_sms_daily".into(),
            limit: 2,
            count: 2
        }
    );
    // The refused send was not counted in the 7-day cap: 3 more fit.
    let keys = KeyLayout::default();
    assert_eq!(
        store.count(&keys.cap("u", "any_7d", ""), ts(day1)).unwrap(),
        2
    );
    for _ in 0..3 {
        assert!(allowed(&send("u", "other", day1)));
    }
    assert_eq!(send("u", "other", day1).capped_by(), Some("any_7d"));
    // The VIP is not capped by the campaign cap, but is by the 7-day cap.
    for _ in 0..5 {
        assert!(allowed(&send("vip1", "promo", day1)));
    }
    assert_eq!(send("vip1", "promo", day1).capped_by(), Some("any_7d"));
}

/// Many threads sending to one user never pass the cap together.
#[test]
fn concurrent_sends_respect_the_cap_exactly() {
    let caps = Arc::new(
        FrequencyCaps::new(vec![
            cap(
                "all_daily",
                20,
                Period::Calendar(CalendarUnit::Day),
                CapScope::All,
                Zone::User,
            ),
            cap(
                "push_hour",
                15,
                Period::Rolling(Duration::from_secs(3_600)),
                CapScope::Channel("push".into()),
                Zone::User,
            ),
        ])
        .unwrap(),
    );
    let store = Arc::new(MemoryStore::with_lock_shards(4));
    let at = ts("2026-11-23T08:00:00Z");
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let (caps, store) = (caps.clone(), store.clone());
            thread::spawn(move || {
                let mut outcomes = Vec::new();
                for i in 0..50 {
                    let user = if i % 2 == 0 { "hot" } else { "other" };
                    let channel = if (i + t) % 3 == 0 { "sms" } else { "push" };
                    let s = SendAttempt::new(user, channel, "c", at);
                    outcomes.push((
                        user,
                        channel,
                        caps.check_and_count(&*store, &s, &NoAudiences).unwrap(),
                    ));
                }
                outcomes
            })
        })
        .collect();
    let outcomes: Vec<_> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    for user in ["hot", "other"] {
        let sent: Vec<_> = outcomes
            .iter()
            .filter(|(u, _, o)| *u == user && allowed(o))
            .collect();
        let pushes = sent.iter().filter(|(_, c, _)| *c == "push").count();
        assert!(pushes <= 15, "{user}: {pushes} pushes");
        assert_eq!(
            sent.len(),
            20,
            "{user}: every allowed send counted once, up to the cap"
        );
        let keys = KeyLayout::default();
        let day = "d2026-11-23";
        assert_eq!(
            store.count(&keys.cap(user, "all_daily", day), at).unwrap(),
            20
        );
        assert_eq!(
            store.count(&keys.cap(user, "push_hour", ""), at).unwrap() as usize,
            pushes
        );
    }
}

/// S24: a device id, a phone number and a WeChat openid seen together are
/// one person: a cap counted on the phone applies to pushes on the device.
#[test]
fn s24_caps_follow_the_merged_person() {
    let mut graph = IdentityGraph::with_kind_order(["phone", "openid", "device"]);
    let device = Identifier::new("device", "d-1");
    let phone = Identifier::new("phone", "13800000000");
    let openid = Identifier::new("openid", "o-1");
    graph.observe([device.clone(), phone.clone()]);
    graph.observe([openid.clone(), device.clone()]);
    let persons = graph.resolve();
    let caps = FrequencyCaps::new(vec![cap(
        "any_daily",
        1,
        Period::Calendar(CalendarUnit::Day),
        CapScope::All,
        Zone::User,
    )])
    .unwrap();
    let store = MemoryStore::new();
    let at = ts("2026-11-23T08:00:00Z");
    let send = |id: &Identifier, channel| {
        let person = persons.person_of(id).unwrap();
        caps.check_and_count(
            &store,
            &SendAttempt::new(person, channel, "c", at),
            &NoAudiences,
        )
        .unwrap()
    };
    assert!(allowed(&send(&phone, "sms")));
    assert_eq!(send(&device, "push").capped_by(), Some("any_daily"));
    assert_eq!(send(&openid, "wechat").capped_by(), Some("any_daily"));
}

#[test]
fn bad_caps_are_refused() {
    assert!(FrequencyCaps::new(vec![cap(
        "x",
        1,
        Period::Calendar(CalendarUnit::Day),
        CapScope::All,
        Zone::Named("Atlantis/Capital".into())
    )])
    .is_err());
    assert!(FrequencyCaps::new(vec![cap(
        "x",
        1,
        Period::Rolling(Duration::ZERO),
        CapScope::All,
        Zone::User
    )])
    .is_err());
    // A zero limit caps everything; a lifetime cap never resets.
    let caps = FrequencyCaps::new(vec![
        cap(
            "never",
            0,
            Period::Lifetime,
            CapScope::Channel("fax".into()),
            Zone::User,
        ),
        cap(
            "once",
            1,
            Period::Lifetime,
            CapScope::Channel("sms".into()),
            Zone::User,
        ),
    ])
    .unwrap();
    let store = MemoryStore::new();
    let send = |ch, at| {
        caps.check_and_count(
            &store,
            &SendAttempt::new("u", ch, "c", ts(at)),
            &NoAudiences,
        )
        .unwrap()
    };
    assert_eq!(
        send("fax", "2026-01-01T00:00:00Z").capped_by(),
        Some("never")
    );
    assert!(allowed(&send("sms", "2026-01-01T00:00:00Z")));
    assert_eq!(
        send("sms", "2036-01-01T00:00:00Z").capped_by(),
        Some("once")
    );
    assert!(
        allowed(&send("push", "2036-01-01T00:00:00Z")),
        "no cap applies to push"
    );
}
