//! Time, written as rule text: calendar conditions rechecked at local
//! boundaries, aggregates over sliding windows, delayed actions, lateness,
//! the clock's guard rails, and snapshots that continue exactly.

use nudge::{
    FactError, LatePolicy, Ruleset, Session, SessionConfig, SessionError, SnapshotError, Timestamp,
    Value,
};
use serde_json::json;

const TYPES: &str = r#"
event page_view {
    key user_id: string
    time at: timestamp
    category: string
}

event order_created {
    key user_id: string
    time at: timestamp
    order_id: string
    amount: float
}

event order_paid {
    key user_id: string
    time at: timestamp
    order_id: string
}

fact profile {
    key user_id: string
    birthday: timestamp?
    timezone: string
}
"#;

fn rules(body: &str) -> Ruleset {
    Ruleset::from_str("time.nudge", &format!("{TYPES}\n{body}")).unwrap_or_else(|e| panic!("{e}"))
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn insert(r: &Ruleset, s: &mut Session, ty: &str, j: serde_json::Value) -> nudge::FactId {
    let (t, v) = r.fact_from_json(ty, &j).unwrap_or_else(|e| panic!("{e}"));
    s.insert(t, v).unwrap_or_else(|e| panic!("{e}"))
}

/// (time, rule, the `user` argument) of each decision, then cleared.
fn taken(s: &mut Session) -> Vec<(String, String, String)> {
    let out = s
        .decisions()
        .map(|d| {
            let user = match d.arg("user") {
                Some(Value::Str(u)) => u.to_string(),
                Some(v) => v.to_string(),
                None => String::new(),
            };
            (d.time().to_string(), d.rule_name().to_string(), user)
        })
        .collect();
    s.clear_decisions();
    out
}

fn d(time: &str, rule: &str, user: &str) -> (String, String, String) {
    (time.into(), rule.into(), user.into())
}

#[test]
fn a_birthday_is_noticed_at_local_midnight() {
    let r = rules(
        r#"
rule birthday {
    when
        p: profile(birthday != null, is_anniversary(birthday, timezone))
    then
        greet(user: p.user_id)
}
action greet(user: string)
"#,
    );
    let mut s = r.bare_session(nudge::SessionConfig::default());
    s.advance_to(ts("2026-11-20T00:00:00Z")).unwrap();
    let profile = |u: &str, tz: &str| json!({"user_id": u, "birthday": "1990-11-22T12:00:00Z", "timezone": tz});
    insert(&r, &mut s, "profile", profile("shanghai", "Asia/Shanghai"));
    insert(
        &r,
        &mut s,
        "profile",
        profile("new_york", "America/New_York"),
    );
    insert(
        &r,
        &mut s,
        "profile",
        profile("unknown_zone", "Mars/Olympus"),
    );
    s.fire().unwrap();
    assert_eq!(taken(&mut s), vec![], "not their birthday yet");
    s.advance_to(ts("2026-11-24T00:00:00Z")).unwrap();
    assert_eq!(
        taken(&mut s),
        vec![
            // Midnight on 22 November in each user's own zone.
            d("2026-11-21T16:00:00Z", "birthday", "shanghai"),
            d("2026-11-22T05:00:00Z", "birthday", "new_york"),
        ]
    );
    // A year later it comes round again, once.
    s.advance_to(ts("2027-11-23T00:00:00Z")).unwrap();
    assert_eq!(
        taken(&mut s),
        vec![
            d("2027-11-21T16:00:00Z", "birthday", "shanghai"),
            d("2027-11-22T05:00:00Z", "birthday", "new_york"),
        ]
    );
}

#[test]
fn a_window_count_fires_per_group_and_again_when_it_changes() {
    let r = rules(
        r#"
rule hot_category {
    when
        v: count(page_view()) >= 3 within 30m by user_id, category
    then
        push(user: v.user_id, category: v.category, views: v.count)
}
action push(user: string, category: string, views: int)
"#,
    );
    let mut s = r.bare_session(nudge::SessionConfig::default());
    let view = |u: &str, c: &str, at: &str| json!({"user_id": u, "category": c, "at": at});
    s.advance_to(ts("2026-11-22T10:00:00Z")).unwrap();
    for (u, c, at) in [
        ("u1", "shoes", "2026-11-22T10:00:00Z"),
        ("u1", "bags", "2026-11-22T10:01:00Z"),
        ("u1", "shoes", "2026-11-22T10:05:00Z"),
        ("u2", "shoes", "2026-11-22T10:06:00Z"),
    ] {
        s.advance_to(ts(at)).unwrap();
        insert(&r, &mut s, "page_view", view(u, c, at));
        s.fire().unwrap();
    }
    assert_eq!(taken(&mut s), vec![], "two shoes for u1, one for u2");
    // The third shoe view 29 minutes after the first: three in 30 minutes.
    s.advance_to(ts("2026-11-22T10:29:00Z")).unwrap();
    insert(
        &r,
        &mut s,
        "page_view",
        view("u1", "shoes", "2026-11-22T10:29:00Z"),
    );
    s.fire().unwrap();
    let got: Vec<_> = s
        .decisions()
        .map(|d| (d.arg("category").cloned(), d.arg("views").cloned()))
        .collect();
    assert_eq!(got, vec![(Some(Value::from("shoes")), Some(Value::Int(3)))]);
    s.clear_decisions();
    // At 10:30:00.001 the first view leaves the window: two remain.
    s.advance_to(ts("2026-11-22T10:31:00Z")).unwrap();
    assert_eq!(taken(&mut s), vec![]);
    insert(
        &r,
        &mut s,
        "page_view",
        view("u1", "shoes", "2026-11-22T10:31:00Z"),
    );
    s.fire().unwrap();
    assert_eq!(
        taken(&mut s),
        vec![d("2026-11-22T10:31:00Z", "hot_category", "u1")],
        "three again"
    );
}

#[test]
fn a_delayed_action_is_cancelled_by_a_fact_but_not_by_time() {
    let r = rules(
        r#"
rule remind {
    when
        o: order_created()
        not order_paid(order_id == o.order_id)
    then
        after 1h push(user: o.user_id)
        after 1h regardless audit(user: o.user_id)
}
action push(user: string)
action audit(user: string)
"#,
    );
    let mut s = r.bare_session(nudge::SessionConfig::default());
    s.advance_to(ts("2026-11-22T10:00:00Z")).unwrap();
    let order = |u: &str, id: &str| json!({"user_id": u, "order_id": id, "amount": 10.0, "at": "2026-11-22T10:00:00Z"});
    insert(&r, &mut s, "order_created", order("u1", "o1"));
    insert(&r, &mut s, "order_created", order("u2", "o2"));
    s.fire().unwrap();
    s.advance_to(ts("2026-11-22T10:20:00Z")).unwrap();
    insert(
        &r,
        &mut s,
        "order_paid",
        json!({"user_id": "u1", "order_id": "o1", "at": "2026-11-22T10:20:00Z"}),
    );
    s.advance_to(ts("2026-11-22T12:00:00Z")).unwrap();
    let mut got = taken(&mut s);
    got.sort();
    assert_eq!(
        got,
        vec![
            d("2026-11-22T11:00:00Z", "remind", "u1"),
            d("2026-11-22T11:00:00Z", "remind", "u2"),
            d("2026-11-22T11:00:00Z", "remind", "u2"),
        ],
        "u1 paid: only the `regardless` audit; u2: push and audit"
    );
}

#[test]
fn late_events_are_refused_or_moved_and_the_clock_never_goes_back() {
    let r = rules(
        r#"
rule unpaid {
    when
        o: order_created()
        not order_paid(order_id == o.order_id) after o within 10m
    then
        sms(user: o.user_id)
}
action sms(user: string)
"#,
    );
    let config = SessionConfig {
        lateness: "2m".parse().unwrap(),
        ..SessionConfig::default()
    };
    let mut s = r.bare_session(config);
    s.advance_to(ts("2026-11-22T10:00:00Z")).unwrap();
    insert(
        &r,
        &mut s,
        "order_created",
        json!({"user_id": "u1", "order_id": "o1", "amount": 5.0, "at": "2026-11-22T10:00:00Z"}),
    );
    // At 10:11 the watermark is 10:09: the window (to 10:10) is still open.
    s.advance_to(ts("2026-11-22T10:11:00Z")).unwrap();
    assert_eq!(taken(&mut s), vec![]);
    // A payment made at 10:09:30, arriving 90 s late, still counts.
    insert(
        &r,
        &mut s,
        "order_paid",
        json!({"user_id": "u1", "order_id": "o1", "at": "2026-11-22T10:09:30Z"}),
    );
    s.advance_to(ts("2026-11-22T11:00:00Z")).unwrap();
    assert_eq!(taken(&mut s), vec![], "paid in time, if late to arrive");
    // One older than the watermark is refused, and nothing changes.
    let facts = s.fact_count();
    let (t, v) = r
        .fact_from_json(
            "order_paid",
            &json!({"user_id": "u1", "order_id": "o9", "at": "2026-11-22T10:30:00Z"}),
        )
        .unwrap();
    assert!(matches!(
        s.insert(t, v.clone()),
        Err(FactError::Late { .. })
    ));
    assert_eq!(s.fact_count(), facts);
    assert_eq!(s.counters().late_events, 1);
    // The clock does not go back, nor past the last time there is.
    assert!(matches!(
        s.advance_to(ts("2026-11-22T10:00:00Z")),
        Err(SessionError::ClockBackwards { .. })
    ));
    let now = s.now();
    let err = s
        .advance_by(nudge::Duration::from_millis(i64::MAX))
        .unwrap_err();
    assert!(matches!(err, SessionError::ClockOverflow { .. }), "{err}");
    assert!(err.to_string().contains("cannot move on by"), "{err}");
    assert_eq!(s.now(), now);
    // Under `AtWatermark`, the late event is taken at the watermark.
    let mut s2 = r.bare_session(SessionConfig {
        late: LatePolicy::AtWatermark,
        ..config
    });
    s2.advance_to(ts("2026-11-22T11:00:00Z")).unwrap();
    let id = s2.insert(t, v).unwrap();
    assert_eq!(s2.event_time(id), Some(ts("2026-11-22T10:58:00Z")));
}

const SNAPSHOT_RULES: &str = r#"
rule unpaid {
    when
        o: order_created()
        not order_paid(order_id == o.order_id) after o within 10m
    then
        sms(user: o.user_id)
}
rule busy {
    when
        v: count(page_view()) >= 2 within 90m by user_id
    then
        push(user: v.user_id)
}
rule thank {
    when
        o: order_created()
    then
        after 1h mail(user: o.user_id)
}
action sms(user: string)
action push(user: string)
action mail(user: string)
"#;

/// A stream of operations: every 3 minutes an order, a view and sometimes
/// a payment, for 20 users.
fn stream(r: &Ruleset, s: &mut Session, from: usize, to: usize) -> Vec<(String, String, String)> {
    let base = ts("2026-11-22T10:00:00Z").as_millis();
    let mut out = Vec::new();
    for i in from..to {
        let at = Timestamp::from_millis(base + i as i64 * 180_000);
        s.advance_to(at).unwrap();
        let u = format!("u{}", i % 20);
        let time = at.to_string();
        insert(
            r,
            s,
            "page_view",
            json!({"user_id": u, "category": "c", "at": time}),
        );
        insert(
            r,
            s,
            "order_created",
            json!({"user_id": u, "order_id": format!("o{i}"), "amount": 1.0, "at": time}),
        );
        if i % 3 == 0 && i > 0 {
            insert(
                r,
                s,
                "order_paid",
                json!({"user_id": u, "order_id": format!("o{}", i - 1), "at": time}),
            );
        }
        s.fire().unwrap();
        out.extend(taken(s));
    }
    out
}

#[test]
fn a_restored_snapshot_continues_exactly() {
    let r = rules(SNAPSHOT_RULES);
    let mut original = r.bare_session(nudge::SessionConfig::default());
    let mut first = stream(&r, &mut original, 0, 40);
    let bytes = original.snapshot();
    let mut restored = Session::restore(r.network().clone(), nudge::NoHost, &bytes)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(restored.fact_count(), original.fact_count());
    assert_eq!(restored.now(), original.now());
    // Aggregate bindings are rebuilt under new ids: compare by values.
    let by_value = |s: &Session| {
        let mut m: Vec<String> = s
            .matches()
            .into_iter()
            .map(|(r, ids)| {
                format!(
                    "{r:?} {:?}",
                    ids.iter().map(|&i| s.binding(i)).collect::<Vec<_>>()
                )
            })
            .collect();
        m.sort();
        m
    };
    assert_eq!(by_value(&restored), by_value(&original));
    let a = stream(&r, &mut original, 40, 120);
    let b = stream(&r, &mut restored, 40, 120);
    assert!(!a.is_empty());
    assert_eq!(a, b, "the restored session decides exactly as the original");
    first.extend(a);
    assert!(first.iter().any(|x| x.1 == "unpaid"));
    assert!(first.iter().any(|x| x.1 == "busy"));
    assert!(first.iter().any(|x| x.1 == "thank"));
    // And once more after the end, when the last timers fire.
    original.advance_to(ts("2026-11-23T10:00:00Z")).unwrap();
    restored.advance_to(ts("2026-11-23T10:00:00Z")).unwrap();
    assert_eq!(taken(&mut original), taken(&mut restored));
}

#[test]
fn bad_snapshots_are_clear_errors() {
    let r = rules(SNAPSHOT_RULES);
    let mut s = r.bare_session(nudge::SessionConfig::default());
    stream(&r, &mut s, 0, 10);
    let bytes = s.snapshot();
    let restore = |b: &[u8]| Session::restore(r.network().clone(), nudge::NoHost, b).err();
    assert_eq!(restore(b"hello"), Some(SnapshotError::NotASnapshot));
    let mut future = bytes.clone();
    future[8] = 99;
    assert!(matches!(
        restore(&future),
        Some(SnapshotError::Version { found: 99, .. })
    ));
    for cut in [12, 20, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            matches!(restore(&bytes[..cut]), Some(SnapshotError::Corrupt(_))),
            "cut at {cut}"
        );
    }
    let other = rules(&SNAPSHOT_RULES.replace("10m", "20m"));
    assert!(matches!(
        Session::restore(other.network().clone(), nudge::NoHost, &bytes).err(),
        Some(SnapshotError::OtherRules { .. })
    ));
    // Flipping any byte of the body never panics.
    for i in 12..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x5a;
        let _ = restore(&b);
    }
}

#[test]
fn the_system_clock_moves_on_fire() {
    let r = rules(
        r#"
rule seen {
    when
        v: page_view()
    then
        push(user: v.user_id)
}
action push(user: string)
"#,
    );
    // The event is stamped before it is inserted, as a live service's events
    // are: the lateness absorbs the milliseconds in between, which a session
    // with no lateness would refuse as late.
    let mut s = r.bare_session(SessionConfig {
        clock: nudge::Clock::System,
        lateness: nudge::Duration::from_secs(60),
        ..SessionConfig::default()
    });
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (t, v) = r
        .fact_from_json("page_view", &json!({"user_id": "u1", "category": "c", "at": null}))
        .map_err(|e| e.to_string())
        .unwrap_or_else(|_| {
            // `at` is required: stamp it with the system time ourselves.
            r.fact_from_json(
                "page_view",
                &json!({"user_id": "u1", "category": "c", "at": Timestamp::from_millis(before).to_string()}),
            )
            .unwrap()
        });
    // In transit for a few milliseconds, as on a busy machine.
    std::thread::sleep(std::time::Duration::from_millis(5));
    s.insert(t, v).unwrap();
    assert_eq!(s.fire().unwrap(), 1);
    assert!(
        s.now().as_millis() >= before,
        "fire moved the clock to the system time"
    );
    let d = s.decisions().next().unwrap();
    assert!(d.time().as_millis() >= before);
}

#[test]
fn local_hours_and_minutes_are_rechecked_on_their_boundaries() {
    let r = rules(
        r#"
rule morning_in_kolkata {
    when
        p: profile(timezone == "Asia/Kolkata")
        hour_of_day(now(), p.timezone) == 9
    then
        greet(user: p.user_id)
}
rule a_minute_after_noon {
    when
        p: profile(timezone == "UTC")
        now() > time("2026-11-22T12:00:00Z")
    then
        greet(user: p.user_id)
}
action greet(user: string)
"#,
    );
    let mut s = r.bare_session(nudge::SessionConfig::default());
    s.advance_to(ts("2026-11-22T00:00:00Z")).unwrap();
    insert(
        &r,
        &mut s,
        "profile",
        json!({"user_id": "k", "timezone": "Asia/Kolkata"}),
    );
    insert(
        &r,
        &mut s,
        "profile",
        json!({"user_id": "u", "timezone": "UTC"}),
    );
    s.fire().unwrap();
    s.advance_to(ts("2026-11-22T13:00:00Z")).unwrap();
    assert_eq!(
        taken(&mut s),
        vec![
            // 09:00 in Kolkata is 03:30 UTC.
            d("2026-11-22T03:30:00Z", "morning_in_kolkata", "k"),
            // `now()` alone is checked at each whole minute.
            d("2026-11-22T12:01:00Z", "a_minute_after_noon", "u"),
        ]
    );
    // At 10:00 in Kolkata the morning match ends; it comes back the next day.
    s.advance_to(ts("2026-11-23T05:00:00Z")).unwrap();
    assert_eq!(
        taken(&mut s),
        vec![d("2026-11-23T03:30:00Z", "morning_in_kolkata", "k")]
    );
}

/// `before o within D`: the window is measured back from `o`, ends with
/// it, includes its far end, and orders events of one millisecond by
/// insertion; with lateness, the absence waits until no earlier event can
/// still arrive, so a late earlier order still counts.
#[test]
fn a_first_order_is_first_before_its_own_time() {
    let r = rules(
        r#"
rule first_order {
    when
        o: order_created()
        not order_created(user_id == o.user_id, order_id != o.order_id) before o within 10s
    then
        reward(user: o.user_id, order: o.order_id)
}
action reward(user: string, order: string)
"#,
    );
    let order = |user: &str, id: &str, at: &str| json!({"user_id": user, "order_id": id, "amount": 10.0, "at": at});
    let orders = |s: &mut Session| -> Vec<(String, String)> {
        let out = s
            .decisions()
            .map(|d| (d.time().to_string(), d.arg("order").unwrap().to_string()))
            .collect();
        s.clear_decisions();
        out
    };

    let mut s = r.bare_session(SessionConfig::default());
    s.advance_to(ts("2026-11-22T10:00:00Z")).unwrap();
    // u1: the far end of the window is in; u2: 1 ms past it is out; u3: two
    // orders of one millisecond, the one inserted first is the earlier.
    for (user, id, at) in [
        ("u1", "a1", "2026-11-22T10:00:00Z"),
        ("u2", "b1", "2026-11-22T10:00:00Z"),
        ("u3", "c1", "2026-11-22T10:00:10Z"),
        ("u3", "c2", "2026-11-22T10:00:10Z"),
        ("u1", "a2", "2026-11-22T10:00:10Z"),
        ("u2", "b2", "2026-11-22T10:00:10.001Z"),
    ] {
        if ts(at) > s.now() {
            s.advance_to(ts(at)).unwrap();
        }
        insert(&r, &mut s, "order_created", order(user, id, at));
        s.fire().unwrap();
    }
    let firsts: Vec<String> = orders(&mut s).into_iter().map(|(_, o)| o).collect();
    assert_eq!(firsts, ["\"a1\"", "\"b1\"", "\"c1\"", "\"b2\""]);
    // A year on, nothing more: the window is measured from each order, not
    // from the clock.
    s.advance_to(ts("2027-11-23T00:00:00Z")).unwrap();
    assert_eq!(orders(&mut s), []);

    // With a lateness of 5 s, a first order is decided 5 s after it, and an
    // earlier order arriving up to 5 s late takes its place.
    let mut s = r.bare_session(SessionConfig {
        lateness: nudge::Duration::from_secs(5),
        ..SessionConfig::default()
    });
    s.advance_to(ts("2026-11-22T10:00:00Z")).unwrap();
    insert(
        &r,
        &mut s,
        "order_created",
        order("u1", "late_second", "2026-11-22T10:00:00Z"),
    );
    s.fire().unwrap();
    assert_eq!(
        orders(&mut s),
        [],
        "not decided while an earlier order may still come"
    );
    s.advance_to(ts("2026-11-22T10:00:03Z")).unwrap();
    insert(
        &r,
        &mut s,
        "order_created",
        order("u1", "late_first", "2026-11-22T09:59:59Z"),
    );
    s.fire().unwrap();
    s.advance_to(ts("2026-11-22T10:01:00Z")).unwrap();
    assert_eq!(
        orders(&mut s),
        [(
            "2026-11-22T10:00:04Z".to_string(),
            "\"late_first\"".to_string()
        )]
    );
}
