//! Message routing: channel fallback (S9), suppression and allow-lists
//! (S10), quiet hours, and a coupon followed by a push falling back to SMS
//! (S20).

use nudge_core::decl::{
    CalendarUnit, CampaignDecl, CapDecl, CapScope, CouponDecl, Limit, Period, QuietHours,
    QuietPolicy, Zone,
};
use nudge_core::primitives::audience::Audiences;
use nudge_core::primitives::caps::FrequencyCaps;
use nudge_core::primitives::coupon::{CouponIssuer, IssueOutcome, IssueRequest};
use nudge_core::primitives::message::{
    Delivery, DropReason, MessagePolicy, MessageRequest, MessageRouter, Reachability, Skip,
    SkipReason,
};
use nudge_core::primitives::store::MemoryStore;
use nudge_core::Timestamp;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn daily(name: &str, count: u32, scope: CapScope) -> CapDecl {
    CapDecl {
        name: name.into(),
        limit: Limit {
            count,
            period: Period::Calendar(CalendarUnit::Day),
        },
        scope,
        zone: Zone::User,
        exempt: vec![],
    }
}

/// Who has which channel, and who opted out of what.
struct Bindings;

impl Reachability for Bindings {
    fn reachable(&self, user: &str, channel: &str) -> bool {
        match channel {
            "wechat" => user.starts_with("wx"),
            "push" => user != "no_app",
            _ => true,
        }
    }

    fn opted_out(&self, user: &str, channel: &str) -> bool {
        user == "wx_quiet" && channel == "wechat"
    }
}

/// S9: send on WeChat; users with no WeChat binding, or where WeChat is
/// capped, get SMS instead.
#[test]
fn s9_wechat_falls_back_to_sms() {
    let router = MessageRouter::new(
        MessagePolicy::new("s9", ["wechat", "sms"]),
        FrequencyCaps::new(vec![daily(
            "wechat_daily",
            1,
            CapScope::Channel("wechat".into()),
        )])
        .unwrap(),
    )
    .unwrap();
    let store = MemoryStore::new();
    let at = ts("2026-11-23T02:00:00Z");
    let route = |user| {
        router
            .route(
                &store,
                &Audiences::new(),
                &Bindings,
                &MessageRequest::new(user, at),
            )
            .unwrap()
    };
    let sms = Delivery::Send {
        channel: "sms".into(),
    };
    assert_eq!(
        route("wx1").delivery,
        Delivery::Send {
            channel: "wechat".into()
        }
    );
    let capped = route("wx1");
    assert_eq!(capped.delivery, sms);
    assert_eq!(
        capped.skipped,
        vec![Skip {
            channel: "wechat".into(),
            reason: SkipReason::Capped {
                cap: "wechat_daily".into(),
                limit: 1,
                count: 1
            }
        }]
    );
    assert_eq!(route("plain").skipped[0].reason, SkipReason::Unreachable);
    assert_eq!(route("plain").delivery, sms);
    assert_eq!(route("wx_quiet").skipped[0].reason, SkipReason::OptedOut);
}

/// S10: the complaint list gets nothing, even VIPs on it; VIPs bypass the
/// campaign cap.
#[test]
fn s10_suppression_beats_the_allow_list() {
    let mut campaign_cap = daily("promo_daily", 1, CapScope::Campaign("promo".into()));
    campaign_cap.exempt = vec!["vip".into()];
    let campaign = CampaignDecl {
        name: "promo".into(),
        per_user: None,
        suppress: vec!["complaints".into()],
        quiet_hours: None,
        zone: Zone::User,
    };
    let router = MessageRouter::new(
        MessagePolicy::for_campaign(&campaign, ["sms"]),
        FrequencyCaps::new(vec![campaign_cap]).unwrap(),
    )
    .unwrap();
    let mut audiences = Audiences::new();
    audiences
        .insert_ids("vip", ["vip_ok", "vip_angry"])
        .unwrap();
    audiences
        .insert_ids("complaints", ["vip_angry", "angry"])
        .unwrap();
    let store = MemoryStore::new();
    let at = ts("2026-11-23T02:00:00Z");
    let route = |user| {
        router
            .route(
                &store,
                &audiences,
                &Bindings,
                &MessageRequest::new(user, at),
            )
            .unwrap()
            .delivery
    };
    let suppressed = Delivery::Drop(DropReason::Suppressed {
        audience: "complaints".into(),
    });
    assert_eq!(route("vip_angry"), suppressed);
    assert_eq!(route("angry"), suppressed);
    assert!(matches!(route("vip_ok"), Delivery::Send { .. }));
    assert!(matches!(route("vip_ok"), Delivery::Send { .. }));
    assert!(matches!(route("normal"), Delivery::Send { .. }));
    assert_eq!(route("normal"), Delivery::Drop(DropReason::NoChannel));
}

#[test]
fn quiet_hours_defer_or_drop_in_the_users_zone() {
    let mut policy = MessagePolicy::new("night", ["push"]);
    policy.quiet_hours = Some(QuietHours {
        start: 22 * 60,
        end: 8 * 60,
        policy: QuietPolicy::Defer,
    });
    let caps = FrequencyCaps::new(vec![daily("push_daily", 1, CapScope::All)]).unwrap();
    let router = MessageRouter::new(policy.clone(), caps.clone()).unwrap();
    let store = MemoryStore::new();
    // 15:30 UTC is 23:30 in Shanghai and 15:30 in London.
    let at = ts("2026-11-23T15:30:00Z");
    let mut req = MessageRequest::new("u", at);
    req.user_zone = Some("Asia/Shanghai");
    let deferred = router
        .route(&store, &Audiences::new(), &Bindings, &req)
        .unwrap();
    assert_eq!(
        deferred.delivery,
        Delivery::Defer {
            until: ts("2026-11-24T00:00:00Z")
        }
    );
    // Nothing was counted: when it comes due, it goes.
    req.at = ts("2026-11-24T00:00:00Z");
    assert!(matches!(
        router
            .route(&store, &Audiences::new(), &Bindings, &req)
            .unwrap()
            .delivery,
        Delivery::Send { .. }
    ));
    let mut london = MessageRequest::new("v", at);
    london.user_zone = Some("Europe/London");
    assert!(matches!(
        router
            .route(&store, &Audiences::new(), &Bindings, &london)
            .unwrap()
            .delivery,
        Delivery::Send { .. }
    ));
    policy.quiet_hours = Some(QuietHours {
        policy: QuietPolicy::Drop,
        ..policy.quiet_hours.unwrap()
    });
    let dropping = MessageRouter::new(policy, caps).unwrap();
    let mut req = MessageRequest::new("w", at);
    req.user_zone = Some("Asia/Shanghai");
    assert_eq!(
        dropping
            .route(&store, &Audiences::new(), &Bindings, &req)
            .unwrap()
            .delivery,
        Delivery::Drop(DropReason::QuietHours)
    );
}

/// S20: first order over 100 → a coupon (stock 1000, budget 20,000, one
/// per user) → notify by push, falling back to SMS.
#[test]
fn s20_coupon_then_push_falling_back_to_sms() {
    let coupon = CouponDecl {
        name: "first_order_20".into(),
        value: 20.0,
        min_spend: Some(100.0),
        discount_bp: None,
        stock: Some(1_000),
        budget: Some(20_000.0),
        per_user: Some(Limit {
            count: 1,
            period: Period::Lifetime,
        }),
        valid_for: Some("30d".parse().unwrap()),
        shards: 4,
    };
    let issuer = CouponIssuer::new("first_order", coupon).unwrap();
    let router = MessageRouter::new(
        MessagePolicy::new("first_order", ["push", "sms"]),
        FrequencyCaps::new(vec![]).unwrap(),
    )
    .unwrap();
    let store = MemoryStore::new();
    let at = ts("2026-11-23T02:00:00Z");
    let mut notified = Vec::new();
    for (user, amount) in [
        ("app_user", 150.0),
        ("no_app", 120.0),
        ("small", 50.0),
        ("app_user", 300.0),
    ] {
        if amount <= 100.0 {
            continue;
        }
        let IssueOutcome::Issued(c) = issuer.issue(&store, &IssueRequest::new(user, at)).unwrap()
        else {
            continue;
        };
        let r = router
            .route(
                &store,
                &Audiences::new(),
                &Bindings,
                &MessageRequest::new(user, at),
            )
            .unwrap();
        notified.push((user, c.id, r.delivery));
    }
    assert_eq!(notified.len(), 2, "the repeat order gets no second coupon");
    assert_eq!(
        notified[0].2,
        Delivery::Send {
            channel: "push".into()
        }
    );
    assert_eq!(
        notified[1].2,
        Delivery::Send {
            channel: "sms".into()
        }
    );
    assert_ne!(notified[0].1, notified[1].1);
}
