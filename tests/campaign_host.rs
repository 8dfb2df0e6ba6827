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
