//! The state scenarios of `examples/scenarios/` (S19 to S24: machines,
//! coupons, experiments, context providers, identity), replayed from their
//! event files and checked against their expected decisions, suppressed and
//! failed ones included.
//!
//! Each expected file was worked out from the scenario's text and the
//! documented semantics of the primitives (`nudge_core::primitives::decide`)
//! and of time (`docs/time.md`). S21 is also run for real: 10,000 grabs of
//! one flash coupon from eight threads, each with its own session of one
//! ruleset, sharing its stock, budget and campaign limits.

mod support;

use nudge::{Ruleset, Status, Timestamp, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Barrier};
use std::time::Instant;
use support::{root, scenario};

/// S19: two pricing-page views within a day move a prospect to
/// "high_intent" (views 25 hours apart do not; views exactly a day apart
/// do). A third view is a new count and asks again: suppressed
/// `already_in_state`, and again when the first view leaves the window
/// (count 3 → 2). Paid orders activate users, including one the machine
/// has not seen (u2 starts in "prospect"); 60 days and 1 ms without an
/// order make them dormant, and 120 days of dormancy churned, unless an order comes
/// first (u2 drops its pending churn). A churned user's two pricing views
/// ask for churned → high_intent, which fails `illegal_transition`, and
/// only an order brings them back to "active".
#[test]
fn s19_lifecycle_rules() {
    scenario("s19");
}

/// S20: a first order over 100 gets the coupon (1000 in stock, ids in
/// issue order) and, on its `issued` branch, a push; a user unreachable on
/// push gets the SMS with `push: unreachable` skipped; one opted out of push
/// and unreachable on SMS keeps the coupon but the message is suppressed
/// `unreachable`. Orders of 100 exactly, later orders, and a first order
/// over 100 after a smaller one earn nothing, also a year on, when the
/// earlier orders are past the rule's 365-day `before` window (they would
/// be past a window measured back from the clock, and those later orders
/// would count as first then). The host delivering u1's order twice
/// re-fires the rule, and so does u1's order more than 365 days after the
/// last: the coupon is suppressed `already_issued` with the first coupon's
/// id, and no message is sent.
#[test]
fn s20_first_order_coupon_chain() {
    scenario("s20");
}

/// S21, replayed: 100 users take the 100 coupons (each starts at the
/// sub-stock its hash picks and walks on when that one is empty, so ids run
/// `flash_50-<sub-stock>-<serial>`); the 101st user finds every sub-stock
/// empty, `out_of_stock` with `campaign_stopped`, and so does the next one
/// (the breaker answers). A second grab, by a winner or by a user who got
/// nothing, is suppressed `campaign_limit`; a grab on another banner
/// matches no rule.
#[test]
fn s21_flash_coupon() {
    scenario("s21");
}

/// S22: in layer `home_feed`, each user is in exactly one of the two
/// experiments (banner for layer buckets below 0.5, recommendations above),
/// and the other split is suppressed `not_in_experiment`; `push_send_time`
/// buckets the same users independently (carousel users land in morning
/// and evening, control users in all three arms). Buckets are GrowthBook v2
/// FNV-1a hashes, checked with an independent computation. A cart with an
/// order within 3 hours gets no push.
#[test]
fn s22_experiment_layers() {
    scenario("s22");
}

/// S22 over many users: no user is in both experiments of `home_feed`,
/// each gets about half of it, and the `push_send_time` arm does not
/// depend on the `home_feed` experiment (every combination occurs, in
/// proportions close to the arms' shares).
#[test]
fn s22_layers_are_exclusive_within_and_independent_across() {
    let rules =
        Ruleset::from_files(&[root().join("examples/scenarios/s22_experiment_layers.nudge")])
            .unwrap_or_else(|e| panic!("{e}"));
    let experiments =
        nudge::primitives::experiment::Experiments::new(&rules.declarations().experiments).unwrap();
    let users = 20_000;
    let mut combos: BTreeMap<(&str, String), u32> = BTreeMap::new();
    for i in 0..users {
        let user = format!("user-{i}");
        let banner = experiments.assign("feed_banner_style", &user).unwrap();
        let recs = experiments.assign("feed_recommendations", &user).unwrap();
        let feed = match (banner.arm(), recs.arm()) {
            (Some(_), Some(_)) => panic!("{user} is in both experiments of home_feed"),
            (None, None) => panic!("{user} is in neither experiment of home_feed"),
            (Some(_), None) => "banner",
            (None, Some(_)) => "recs",
        };
        let push = experiments.assign("push_send_time", &user).unwrap();
        let arm = push
            .arm()
            .expect("push_send_time takes all users")
            .to_string();
        *combos.entry((feed, arm)).or_default() += 1;
    }
    let share = |n: u32| f64::from(n) / f64::from(users);
    for feed in ["banner", "recs"] {
        let in_feed: u32 = combos
            .iter()
            .filter(|(k, _)| k.0 == feed)
            .map(|(_, n)| n)
            .sum();
        assert!((share(in_feed) - 0.5).abs() < 0.02, "{feed}: {combos:?}");
        for (arm, want) in [("control", 0.34), ("morning", 0.33), ("evening", 0.33)] {
            let n = combos[&(feed, arm.to_string())];
            let within = f64::from(n) / f64::from(in_feed);
            assert!(
                (within - want).abs() < 0.03,
                "{feed}/{arm}: {within} of the layer's slice, not about {want}: {combos:?}"
            );
        }
    }
}

/// S23: the host's uplift model fills `uplift_segment` of each cart when
/// it is inserted. Persuadables whose cart goes an hour without an order
/// get the coupon and the push; sure things, sleeping dogs, lost causes,
/// users the model has not scored (null) and a persuadable who orders get
/// nothing. A cart keeps the segment it was inserted with: u4's cart before
/// the model re-scores u4 as persuadable earns nothing, the next one does.
/// The campaign's 1 per 7d suppresses both decisions of u1's next cart
/// (`campaign_limit`). Later claims within the coupon's 1 per rolling 30d
/// are new claims (other carts), refused `per_user_limit` however the days
/// fall; the push goes out both times. More than 30 days after the first,
/// u1 gets a new coupon.
#[test]
fn s23_uplift_persuadables() {
    scenario("s23");
}

/// S24: before the device and the phone are linked, the SMS to the phone
/// and the push to the device count against `one_message_per_day`
/// separately, and both go out. `link_identity` merges device, phone and
/// openid into one person named by the smallest identifier, the phone
/// number; from then on the device's push is capped by the SMS counted on
/// the phone that day (`capped`, with the `person`), and the next day the
/// device's push, counted on the person, caps the phone's SMS.
#[test]
fn s24_identity_merge() {
    scenario("s24");
}

/// What became of the grabs of one flash-sale run.
#[derive(Debug, Default)]
struct FlashRun {
    /// (user, coupon id) of every coupon issued.
    issued: Vec<(String, String)>,
    /// Suppressed decisions per reason.
    reasons: BTreeMap<String, usize>,
    /// Refusals by the coupon that did not say the campaign stopped.
    refused_running: usize,
    decisions: usize,
    users: usize,
    elapsed: std::time::Duration,
}

/// One coupon decision of a grab: the user, its status, branch and details.
type Grabbed = (String, Status, Option<String>, HashMap<String, Value>);

/// Grabs of `user(i)` for `i` in `0..triggers`, trigger `i` in thread
/// `i % threads`, each thread with its own session of `rules`.
fn flash_run(rules: &Ruleset, threads: usize, triggers: usize, users: usize) -> FlashRun {
    let user = |i: usize| format!("fan-{:05}", i % users);
    let at: Timestamp = "2026-11-11T00:00:00Z".parse().unwrap();
    let start = Arc::new(Barrier::new(threads));
    let began = Instant::now();
    let outcomes: Vec<Vec<Grabbed>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                let start = start.clone();
                scope.spawn(move || {
                    let mut session = rules.session();
                    session.advance_to(at).unwrap();
                    let mut out = Vec::new();
                    start.wait();
                    for i in (k..triggers).step_by(threads) {
                        let u = user(i);
                        let grab = serde_json::json!({
                            "user_id": u,
                            "banner": "1111_flash",
                            "at": "2026-11-11T00:00:00Z",
                        });
                        let (ty, values) = rules.fact_from_json("flash_grab", &grab).unwrap();
                        session.insert(ty, values).unwrap();
                        session.fire().unwrap();
                        for d in session.decisions() {
                            assert_eq!(d.action(), "coupon");
                            assert_eq!(d.arg("user"), Some(&Value::from(u.as_str())));
                            out.push((
                                u.clone(),
                                d.status().clone(),
                                d.branch().map(str::to_string),
                                d.details()
                                    .map(|(n, v)| (n.to_string(), v.clone()))
                                    .collect(),
                            ));
                        }
                        session.clear_decisions();
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut run = FlashRun {
        elapsed: began.elapsed(),
        users: (0..triggers).map(user).collect::<HashSet<_>>().len(),
        ..FlashRun::default()
    };
    for (u, status, branch, details) in outcomes.into_iter().flatten() {
        run.decisions += 1;
        match status {
            Status::Done => {
                assert_eq!(branch.as_deref(), Some("issued"), "{u}: {details:?}");
                let Some(Value::Str(id)) = details.get("coupon_id") else {
                    panic!("{u}: issued without a coupon id: {details:?}");
                };
                run.issued.push((u, id.to_string()));
            }
            Status::Suppressed(reason) => {
                if matches!(&*reason, "out_of_stock" | "budget_spent") {
                    assert_eq!(branch.as_deref(), Some("refused"), "{u}: {details:?}");
                    if details.get("campaign_stopped") != Some(&Value::Bool(true)) {
                        run.refused_running += 1;
                    }
                }
                *run.reasons.entry(reason.to_string()).or_default() += 1;
            }
            other => panic!("{u}: {other:?} {details:?}"),
        }
    }
    run
}

/// Checks what every flash run must show: `stock` coupons issued, distinct,
/// never two to one user; every other grab suppressed for a known reason,
/// the counts adding up; the refusals naming `why` the campaign stopped.
fn check_flash_run(run: &FlashRun, triggers: usize, stock: usize, why: &str) {
    assert_eq!(run.decisions, triggers, "one coupon decision per grab");
    assert_eq!(run.issued.len(), stock, "{run:?}");
    let ids: HashSet<&str> = run.issued.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(ids.len(), stock, "coupon ids repeat");
    let winners: HashSet<&str> = run.issued.iter().map(|(u, _)| u.as_str()).collect();
    assert_eq!(winners.len(), stock, "a user got two coupons");
    for reason in run.reasons.keys() {
        assert!(
            [
                "out_of_stock",
                "budget_spent",
                "already_issued",
                "campaign_limit"
            ]
            .contains(&reason.as_str()),
            "unexpected reason {reason}: {:?}",
            run.reasons
        );
    }
    let count = |r: &str| run.reasons.get(r).copied().unwrap_or(0);
    // Every user's first grab passes the campaign's 1-per-lifetime limit,
    // whichever thread makes it; every later grab is stopped by it.
    assert_eq!(
        count("campaign_limit"),
        triggers - run.users,
        "{:?}",
        run.reasons
    );
    assert_eq!(count("already_issued"), 0, "{:?}", run.reasons);
    // The other first grabs find the coupon spent, for the reason given.
    assert_eq!(count(why), run.users - stock, "{:?}", run.reasons);
    assert_eq!(
        stock + run.reasons.values().sum::<usize>(),
        triggers,
        "{:?}",
        run.reasons
    );
    // The first refusal opens the breaker: the campaign has stopped, and
    // every refusal says so.
    assert_eq!(run.refused_running, 0, "{run:?}");
}

const THREADS: usize = 8;
const TRIGGERS: usize = 10_000;
/// Fewer users than grabs: each user grabs three times or so, from
/// different threads (3,333 is not a multiple of 8).
const USERS: usize = 3_333;

/// S21 under load: 10,000 grabs of 3,333 users from 8 threads, each with
/// its own session of one ruleset. Exactly 100 coupons are issued, with
/// distinct ids, to 100 distinct users; every user's later grabs are
/// suppressed `campaign_limit` (6,667) and the other first grabs
/// `out_of_stock` (3,233), each saying the campaign stopped.
#[test]
fn s21_flash_coupon_under_concurrent_grabs() {
    let rules = Ruleset::from_files(&[root().join("examples/scenarios/s21_flash_coupon.nudge")])
        .unwrap_or_else(|e| panic!("{e}"));
    let run = flash_run(&rules, THREADS, TRIGGERS, USERS);
    eprintln!(
        "s21: {THREADS} threads, {TRIGGERS} grabs, {} users: {} issued, {:?} in {:?}",
        run.users,
        run.issued.len(),
        run.reasons,
        run.elapsed
    );
    check_flash_run(&run, TRIGGERS, 100, "out_of_stock");
    assert_eq!(run.reasons.get("budget_spent"), None, "{:?}", run.reasons);
}

/// S21 with a budget of 2,000: it pays for 40 coupons of 50, fewer than
/// the stock of 100. Exactly 40 are issued; the other first grabs are
/// suppressed `budget_spent`, each saying the campaign stopped.
#[test]
fn s21_flash_coupon_budget_binds_before_stock() {
    let path = root().join("examples/scenarios/s21_flash_coupon.nudge");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("budget: 5000.0"));
    let text = text.replace("budget: 5000.0", "budget: 2000.0");
    let rules =
        Ruleset::from_str(&path.display().to_string(), &text).unwrap_or_else(|e| panic!("{e}"));
    let run = flash_run(&rules, THREADS, TRIGGERS, USERS);
    eprintln!(
        "s21 (budget 2000): {THREADS} threads, {TRIGGERS} grabs, {} users: {} issued, {:?} in {:?}",
        run.users,
        run.issued.len(),
        run.reasons,
        run.elapsed
    );
    check_flash_run(&run, TRIGGERS, 40, "budget_spent");
    assert_eq!(run.reasons.get("out_of_stock"), None, "{:?}", run.reasons);
}
