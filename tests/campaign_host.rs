//! The default host of a ruleset's sessions, through the Rust API: context
//! providers, channel addresses, zones, host functions, and their errors.

use nudge::campaign::{ContextFact, ContextTable};
use nudge::{FactError, Ruleset, Status, Value};

const RULES: &str = r#"
event cart { key user_id: string  time at: timestamp  amount: float }
fact profile { key user_id: string  timezone: string  wechat: string? }
context features for cart { segment: string  score: float? }
function boost(user_id: string) -> float

campaign nudges { quiet_hours: "22:00-08:00" defer }

rule persuadable_cart {
    campaign nudges
    when
        c: cart(segment == "persuadable")
        boost(c.user_id) > 0.5
    then
        message(channel: ["wechat", "sms"], template: "cart", user: c.user_id)
}
"#;

fn rules() -> Ruleset {
    Ruleset::from_str("host.nudge", RULES).expect("rules compile")
}

fn cart(rules: &Ruleset, user: &str, at: &str) -> (nudge::TypeId, Vec<Value>) {
    rules
        .fact_from_json(
            "cart",
            &serde_json::json!({"user_id": user, "at": at, "amount": 30.0}),
        )
        .expect("a provider's fields may be left out")
}

fn profile(
    rules: &Ruleset,
    user: &str,
    zone: &str,
    wechat: Option<&str>,
) -> (nudge::TypeId, Vec<Value>) {
    rules
        .fact_from_json(
            "profile",
            &serde_json::json!({"user_id": user, "timezone": zone, "wechat": wechat}),
        )
        .unwrap()
}

/// A provider fills the context's fields, a host function answers in a
/// condition, the channel address comes from the profile, and quiet hours
/// are reckoned in the profile's zone.
#[test]
fn providers_functions_addresses_and_zones_work_together() {
    let rules = rules();
    let mut s = rules.session();
    let mut table = ContextTable::new();
    table.set("u1", [("segment", Value::from("persuadable"))]);
    table.set("u2", [("segment", Value::from("persuadable"))]);
    table.set("u3", [("segment", Value::from("sure_thing"))]);
    s.host_mut().set_provider("features", table).unwrap();
    s.host_mut()
        .set_function("boost", Box::new(|_| Value::Float(0.9)))
        .unwrap();
    s.host_mut()
        .set_channel_address("wechat", "profile", "wechat")
        .unwrap();
    for (ty, v) in [
        profile(&rules, "u1", "Asia/Shanghai", Some("wx-1")),
        profile(&rules, "u2", "Europe/Paris", None),
        profile(&rules, "u3", "Asia/Shanghai", Some("wx-3")),
    ] {
        s.insert(ty, v).unwrap();
    }
    // 12:00 UTC: 20:00 in Shanghai, 13:00 in Paris. Decisions are made on
    // the session's clock.
    s.advance_to("2026-11-23T12:00:00Z".parse().unwrap())
        .unwrap();
    for user in ["u1", "u2", "u3"] {
        let (ty, v) = cart(&rules, user, "2026-11-23T12:00:00Z");
        s.insert(ty, v).unwrap();
    }
    s.fire().unwrap();
    let mut got: Vec<(String, String)> = s
        .decisions()
        .map(|d| {
            (
                d.arg("user").unwrap().to_string(),
                d.detail("channel")
                    .map_or(format!("{:?}", d.status()), |c| c.to_string()),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (r#""u1""#.to_string(), r#""wechat""#.to_string()),
            (r#""u2""#.to_string(), r#""sms""#.to_string()),
        ],
        "u3 is not persuadable; u2 has no WeChat address"
    );
    // 23:00 in Shanghai: deferred to 08:00 there (00:00 UTC).
    let (ty, v) = cart(&rules, "u1", "2026-11-23T15:00:00Z");
    s.clear_decisions();
    s.advance_to("2026-11-23T15:00:00Z".parse().unwrap())
        .unwrap();
    s.insert(ty, v).unwrap();
    s.fire().unwrap();
    let deferred: Vec<Status> = s.decisions().map(|d| d.status().clone()).collect();
    assert_eq!(
        deferred,
        [Status::Deferred("2026-11-24T00:00:00Z".parse().unwrap())]
    );
}

/// A context row with no value for a required field refuses the insert,
/// naming the context and the field; the session is unchanged.
#[test]
fn a_provider_that_leaves_a_required_field_empty_refuses_the_insert() {
    let rules = rules();
    let mut s = rules.session();
    s.host_mut()
        .set_provider("features", |fact: &mut ContextFact<'_>| {
            fact.set("score", Value::Float(0.1))
        })
        .unwrap();
    let (ty, v) = cart(&rules, "u1", "2026-11-23T12:00:00Z");
    let before = s.fact_count();
    let err = s.insert(ty, v).unwrap_err();
    assert!(
        matches!(&err, FactError::Context { context, .. } if context == "features"),
        "{err:?}"
    );
    assert!(err.to_string().contains("segment"), "{err}");
    assert_eq!(s.fact_count(), before);
}

/// Without a provider, a type with a context cannot take facts: the error
/// says which context has none.
#[test]
fn a_context_without_a_provider_is_named() {
    let rules = rules();
    let mut s = rules.session();
    let (ty, v) = cart(&rules, "u1", "2026-11-23T12:00:00Z");
    let err = s.insert(ty, v).unwrap_err().to_string();
    assert!(
        err.contains("no provider is registered for context `features`"),
        "{err}"
    );
}

/// Registrations naming what the rules do not declare are refused.
#[test]
fn unknown_names_are_refused() {
    let rules = rules();
    let mut s = rules.session();
    let host = s.host_mut();
    assert!(host
        .set_provider("featurez", ContextTable::new())
        .unwrap_err()
        .contains("no context `featurez`"));
    assert!(host
        .set_function("bost", Box::new(|_| Value::Null))
        .unwrap_err()
        .contains("no function `bost`"));
    assert!(host
        .set_channel_address("wechat", "profile", "wechat_id")
        .unwrap_err()
        .contains("no field `wechat_id`"));
    assert!(host
        .set_channel_address("wechat", "cart", "user_id")
        .unwrap_err()
        .contains("not a fact type with a key"));
    assert!(host.set_zone_source("profil", "timezone").is_err());
    assert!(host
        .load_audience("vip", ["u1"])
        .unwrap_err()
        .to_string()
        .contains("unknown audience `vip`"));
}

/// Replays `events` (JSON lines) into `rules` and returns each decision as
/// `action user status reason`.
fn replay(rules: &Ruleset, events: &str) -> Vec<String> {
    let mut replayer = nudge::replay::Replayer::new(rules);
    let mut out = Vec::new();
    replayer
        .run("events", events.as_bytes(), Some(&mut out), true, |_| {})
        .unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| {
            let d: serde_json::Value = serde_json::from_str(l).unwrap();
            format!(
                "{} {} {} {}",
                d["action"].as_str().unwrap(),
                d["args"]["user"].as_str().unwrap_or("-"),
                d["status"].as_str().unwrap_or("done"),
                d["reason"].as_str().unwrap_or("-"),
            )
        })
        .collect()
}

/// A cap's allow-list and a campaign's suppression list name the host's
/// ids: a link that renames the person (to a smaller device id) changes
/// neither.
#[test]
fn audiences_still_apply_after_a_link_renames_the_person() {
    let rules = Ruleset::from_str(
        "link.nudge",
        r#"
        event open { key user_id: string  time at: timestamp  device: string }
        event poke { key user_id: string  time at: timestamp }
        audience vip_allow
        audience blocked
        cap push_daily { limit: 1 per calendar day  channel: "push"  exempt: [vip_allow] }
        campaign pokes { suppress: [blocked] }
        rule link { when o: open() then link_identity(id: o.device, same_as: o.user_id) }
        rule push { campaign pokes  when p: poke() then message(channel: "push", template: "t", user: p.user_id) }
    "#,
    )
    .unwrap();
    let got = replay(
        &rules,
        r#"{"audience": "vip_allow", "members": ["u_vip"]}
{"audience": "blocked", "members": ["u_no"]}
{"insert": "open", "fields": {"user_id": "u_vip", "device": "a-dev", "at": "2026-11-23T01:00:00Z"}}
{"insert": "open", "fields": {"user_id": "u_no", "device": "a-dev2", "at": "2026-11-23T01:00:00Z"}}
{"insert": "poke", "fields": {"user_id": "u_vip", "at": "2026-11-23T02:00:00Z"}}
{"insert": "poke", "fields": {"user_id": "u_vip", "at": "2026-11-23T03:00:00Z"}}
{"insert": "poke", "fields": {"user_id": "u_no", "at": "2026-11-23T04:00:00Z"}}
"#,
    );
    assert_eq!(
        got,
        [
            "link_identity - done -",
            "link_identity - done -",
            "message u_vip done -",
            "message u_vip done -",
            "message u_no suppressed suppressed",
        ]
    );
}

/// A coupon claim without `occasion:` is identified by the rule and what
/// it matched, the same in every session: three orders in three sessions
/// get three coupons; the same order again, in a fourth, gets the first.
#[test]
fn coupon_claims_are_the_same_in_every_session() {
    let rules = Ruleset::from_str(
        "claims.nudge",
        r#"
        event order { key user_id: string  time at: timestamp  order_id: string }
        coupon thanks { value: 5.0  per_user: 3 }
        rule thank { when o: order() then coupon(template: thanks, user: o.user_id) }
    "#,
    )
    .unwrap();
    let order = |id: &str| {
        rules
            .fact_from_json(
                "order",
                &serde_json::json!({"user_id": "u1", "order_id": id, "at": "2026-11-23T01:00:00Z"}),
            )
            .unwrap()
    };
    let mut outcomes = Vec::new();
    for id in ["o1", "o2", "o3", "o2"] {
        let mut s = rules.session();
        let (ty, v) = order(id);
        s.insert(ty, v).unwrap();
        s.fire().unwrap();
        let d = s.decisions().next().unwrap();
        outcomes.push(format!(
            "{:?} {}",
            d.status(),
            d.detail("coupon_id").unwrap()
        ));
    }
    assert_eq!(
        outcomes,
        [
            r#"Done "thanks-0-1""#,
            r#"Done "thanks-0-2""#,
            r#"Done "thanks-0-3""#,
            r#"Suppressed("already_issued") "thanks-0-2""#,
        ]
    );
}

/// A message deferred by quiet hours is checked against the campaign's
/// suppression lists again when it is decided again; its per-user limit,
/// counted the first time, is not counted twice.
#[test]
fn a_deferred_message_meets_the_suppression_list_as_it_is_then() {
    let rules = Ruleset::from_str(
        "quiet.nudge",
        r#"
        event poke { key user_id: string  time at: timestamp }
        audience complaints
        campaign night { per_user: 1 per calendar day  suppress: [complaints]  quiet_hours: "22:00-08:00" defer  zone: "UTC" }
        rule push { campaign night  when p: poke() then message(channel: "push", template: "t", user: p.user_id) }
    "#,
    )
    .unwrap();
    let got = replay(
        &rules,
        r#"{"insert": "poke", "fields": {"user_id": "u1", "at": "2026-11-23T23:00:00Z"}}
{"insert": "poke", "fields": {"user_id": "u2", "at": "2026-11-23T23:00:00Z"}}
{"audience": "complaints", "members": ["u1"]}
{"advance": "2026-11-24T09:00:00Z"}
"#,
    );
    assert_eq!(
        got,
        [
            "message u1 deferred -",
            "message u2 deferred -",
            "message u1 suppressed suppressed",
            "message u2 done -",
        ]
    );
}

/// The delayed actions of one firing that fall due together are one touch
/// of the campaign, as the actions of one firing are.
#[test]
fn delayed_actions_of_one_firing_are_one_touch() {
    let rules = Ruleset::from_str(
        "later.nudge",
        r#"
        event poke { key user_id: string  time at: timestamp }
        coupon c { value: 1.0 }
        campaign once { per_user: 1 per lifetime }
        rule later {
            campaign once
            when p: poke()
            then
                after 1d regardless coupon(template: c, user: p.user_id)
                after 1d regardless message(channel: "push", template: "t", user: p.user_id)
        }
    "#,
    )
    .unwrap();
    let got = replay(
        &rules,
        r#"{"insert": "poke", "fields": {"user_id": "u1", "at": "2026-11-23T01:00:00Z"}}
{"insert": "poke", "fields": {"user_id": "u1", "at": "2026-11-23T02:00:00Z"}}
{"advance": "3d"}
"#,
    );
    assert_eq!(
        got,
        [
            "coupon u1 done -",
            "message u1 done -",
            "coupon u1 suppressed campaign_limit",
            "message u1 suppressed campaign_limit",
        ]
    );
}

/// A profile zone no one knows counts as UTC for a coupon's per-user
/// period, as it does for caps and quiet hours.
#[test]
fn an_unknown_profile_zone_counts_as_utc() {
    let rules = Ruleset::from_str(
        "zone.nudge",
        r#"
        event poke { key user_id: string  time at: timestamp }
        fact profile { key user_id: string  timezone: string }
        coupon daily { value: 1.0  per_user: 1 per calendar day }
        rule give { when p: poke() then coupon(template: daily, user: p.user_id) }
    "#,
    )
    .unwrap();
    let got = replay(
        &rules,
        r#"{"insert": "profile", "fields": {"user_id": "u1", "timezone": "Mars/Olympus"}}
{"insert": "poke", "fields": {"user_id": "u1", "at": "2026-11-23T01:00:00Z"}}
{"insert": "poke", "fields": {"user_id": "u1", "at": "2026-11-23T23:00:00Z"}}
{"insert": "poke", "fields": {"user_id": "u1", "at": "2026-11-24T00:30:00Z"}}
"#,
    );
    assert_eq!(
        got,
        [
            "coupon u1 done -",
            "coupon u1 suppressed already_issued",
            "coupon u1 done -",
        ]
    );
}

/// Audiences hold ids as text: an int field tests as its decimal text,
/// the most negative int included.
#[test]
fn int_ids_are_tested_as_their_text() {
    let rules = Ruleset::from_str(
        "ints.nudge",
        r#"
        event seen { key uid: int  time at: timestamp }
        audience vip
        rule vip_seen { when s: seen(uid in audience vip) then tag(uid: s.uid) }
        action tag(uid: int)
    "#,
    )
    .unwrap();
    let mut s = rules.session();
    s.host_mut()
        .load_audience("vip", ["42", "-9223372036854775808"])
        .unwrap();
    let seen = rules.type_id("seen").unwrap();
    for uid in [42, 43, i64::MIN] {
        let at = Value::Timestamp(nudge::Timestamp::from_millis(0));
        s.insert(seen, vec![Value::Int(uid), at]).unwrap();
    }
    s.fire().unwrap();
    let mut tagged: Vec<String> = s
        .decisions()
        .map(|d| d.arg("uid").unwrap().to_string())
        .collect();
    tagged.sort();
    assert_eq!(tagged, ["-9223372036854775808", "42"]);
}

/// A machine's fact inserted by the host with a state the machine does not
/// declare: the next transition fails `unknown_state`, naming it, and
/// changes nothing.
#[test]
fn an_undeclared_state_in_a_machine_fact_is_reported_by_name() {
    let rules = Ruleset::from_str(
        "machine.nudge",
        r#"
event ping { key user_id: string  time at: timestamp }
machine life {
    initial: new
    new -> active
}
rule activate {
    when
        p: ping()
    then
        transition(machine: life, user: p.user_id, to: active)
}
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut s = rules.session();
    let fact = |ty: &str, j: serde_json::Value| rules.fact_from_json(ty, &j).unwrap();
    let (life, v) = fact(
        "life",
        serde_json::json!({"user_id": "u1", "state": "bogus", "since": "2026-11-20T00:00:00Z"}),
    );
    let id = s.insert(life, v.clone()).unwrap();
    s.advance_to("2026-11-23T09:00:00Z".parse().unwrap())
        .unwrap();
    let (t, ping) = fact(
        "ping",
        serde_json::json!({"user_id": "u1", "at": "2026-11-23T09:00:00Z"}),
    );
    s.insert(t, ping).unwrap();
    s.fire().unwrap();
    let d = s.decisions().next().unwrap();
    assert_eq!(d.status(), &Status::Failed("unknown_state".into()));
    assert_eq!(d.detail("state"), Some(&Value::from("bogus")));
    assert_eq!(s.fact(id), Some((life, &v[..])));
}
