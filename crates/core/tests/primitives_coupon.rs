//! Coupon issuing under concurrency: any interleaving of many threads
//! issuing from one stock issues exactly min(demand, stock, budget ÷ value)
//! coupons, never two to one user, and never spends past the budget (S21).

use nudge_core::decl::{CalendarUnit, CouponDecl, Limit, Period};
use nudge_core::primitives::coupon::{
    CouponIssuer, IssueOutcome, IssueRequest, Refusal, BUDGET_UNITS,
};
use nudge_core::primitives::store::{KeyLayout, MemoryStore, StateStore};
use nudge_core::Timestamp;
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::thread;

fn decl(stock: Option<u64>, budget: Option<f64>, shards: u32) -> CouponDecl {
    CouponDecl {
        name: "flash".into(),
        value: 20.0,
        min_spend: None,
        discount_bp: None,
        stock,
        budget,
        per_user: Some(Limit {
            count: 1,
            period: Period::Lifetime,
        }),
        valid_for: Some("7d".parse().unwrap()),
        shards,
    }
}

/// Runs `requests` (user indices) spread over `threads` threads, each in the
/// order given; returns every (user, outcome).
fn run(
    issuer: &Arc<CouponIssuer>,
    store: &Arc<MemoryStore>,
    requests: &[usize],
    threads: usize,
) -> Vec<(usize, IssueOutcome)> {
    let now = Timestamp::from_millis(1_000);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let mine: Vec<usize> = requests.iter().copied().skip(t).step_by(threads).collect();
            let (issuer, store) = (issuer.clone(), store.clone());
            thread::spawn(move || {
                mine.into_iter()
                    .map(|u| {
                        let user = format!("user{u}");
                        let out = issuer
                            .issue(&*store, &IssueRequest::new(&user, now))
                            .expect("the memory store does not fail");
                        (u, out)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().expect("no thread panics"))
        .collect()
}

fn check(
    outcomes: &[(usize, IssueOutcome)],
    issuer: &CouponIssuer,
    store: &MemoryStore,
    users: usize,
    stock: Option<u64>,
    affordable: Option<u64>,
) -> Result<(), TestCaseError> {
    let limit = stock
        .unwrap_or(u64::MAX)
        .min(affordable.unwrap_or(u64::MAX));
    let expected = (users as u64).min(limit);
    let mut first: HashMap<usize, String> = HashMap::new();
    for (u, out) in outcomes {
        if let IssueOutcome::Issued(c) = out {
            prop_assert!(
                first.insert(*u, c.id.clone()).is_none(),
                "user{u} got two coupons"
            );
        }
    }
    prop_assert_eq!(first.len() as u64, expected);
    let ids: HashSet<&String> = first.values().collect();
    prop_assert_eq!(ids.len(), first.len(), "coupon ids are unique");
    for (u, out) in outcomes {
        match out {
            IssueOutcome::Duplicate(c) => {
                prop_assert_eq!(
                    Some(&c.id),
                    first.get(u),
                    "a retry returns the first result"
                )
            }
            IssueOutcome::Refused(reason) => {
                let want = if affordable.unwrap_or(u64::MAX) < stock.unwrap_or(u64::MAX) {
                    Refusal::BudgetSpent
                } else {
                    Refusal::OutOfStock
                };
                prop_assert_eq!(*reason, want);
            }
            IssueOutcome::Issued(_) => {}
        }
    }
    // The store agrees: issued units and spent budget add up.
    let keys = KeyLayout::default();
    let now = Timestamp::from_millis(1_000);
    let (mut issued, mut spent) = (0, 0);
    for shard in 0..issuer.shards() {
        issued += store
            .count(&keys.coupon_stock("flash", shard), now)
            .unwrap();
        spent += store
            .count(&keys.coupon_budget("flash", shard), now)
            .unwrap();
    }
    prop_assert_eq!(issued, expected);
    if let Some(b) = issuer.decl().budget {
        prop_assert!(spent as f64 <= b * BUDGET_UNITS, "budget exceeded: {spent}");
        prop_assert_eq!(spent, expected * 20 * BUDGET_UNITS as u64);
    }
    Ok(())
}

fn scenario() -> impl Strategy<Value = (Option<u64>, Option<u64>, u32, usize, Vec<usize>, usize)> {
    (
        prop::option::of(0u64..40),
        prop::option::weighted(0.5, 0u64..45),
        1u32..6,
        0usize..60,
        1usize..4,
        2usize..7,
    )
        .prop_flat_map(|(stock, affordable, shards, users, retries, threads)| {
            let requests: Vec<usize> = (0..users)
                .flat_map(|u| std::iter::repeat_n(u, retries))
                .collect();
            (
                Just(stock),
                Just(affordable),
                Just(shards),
                Just(users),
                Just(requests).prop_shuffle(),
                Just(threads),
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn concurrent_issuing_is_exact((stock, affordable, shards, users, requests, threads) in scenario()) {
        // A budget paying for `affordable` coupons of 20, and a fraction.
        let budget = affordable.map(|k| k as f64 * 20.0 + 7.5);
        let issuer = Arc::new(CouponIssuer::new("spring", decl(stock, budget, shards)).unwrap());
        let store = Arc::new(MemoryStore::with_lock_shards(8));
        let outcomes = run(&issuer, &store, &requests, threads);
        prop_assert_eq!(outcomes.len(), requests.len());
        check(&outcomes, &issuer, &store, users, stock, affordable)?;
    }
}

/// S21: a flash coupon with stock 100 under 10,000 concurrent triggers.
#[test]
fn s21_flash_stock_under_ten_thousand_triggers() {
    let issuer =
        Arc::new(CouponIssuer::new("flash_sale", decl(Some(100), Some(20_000.0), 8)).unwrap());
    let store = Arc::new(MemoryStore::new());
    // 2,500 users, each triggering 4 times.
    let requests: Vec<usize> = (0..10_000).map(|i| (i * 7919) % 2_500).collect();
    let outcomes = run(&issuer, &store, &requests, 8);
    let issued = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, IssueOutcome::Issued(_)))
        .count();
    assert_eq!(issued, 100);
    assert_eq!(issuer.breaker(), Some(Refusal::OutOfStock));
}

/// S21: when the budget is spent the campaign stops and says why.
#[test]
fn s21_budget_breaker_says_why() {
    let issuer =
        Arc::new(CouponIssuer::new("flash_sale", decl(Some(1_000), Some(1_000.0), 4)).unwrap());
    let store = Arc::new(MemoryStore::new());
    let requests: Vec<usize> = (0..500).collect();
    let outcomes = run(&issuer, &store, &requests, 4);
    let issued = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, IssueOutcome::Issued(_)))
        .count();
    assert_eq!(issued, 50, "1,000 of budget pays for 50 coupons of 20");
    assert_eq!(issuer.breaker(), Some(Refusal::BudgetSpent));
    let late = issuer
        .issue(
            &*store,
            &IssueRequest::new("late", Timestamp::from_millis(0)),
        )
        .unwrap();
    assert_eq!(late, IssueOutcome::Refused(Refusal::BudgetSpent));
}

/// S3 in part: a yearly coupon, once per user per calendar year in the
/// user's zone, idempotent per occasion.
#[test]
fn yearly_coupon_per_occasion_and_calendar_limit() {
    let mut d = decl(None, None, 2);
    d.per_user = Some(Limit {
        count: 1,
        period: Period::Calendar(CalendarUnit::Year),
    });
    let issuer = CouponIssuer::new("birthday", d).unwrap();
    let store = MemoryStore::new();
    let at = |s: &str| s.parse::<Timestamp>().unwrap();
    let req = |occasion, t| {
        IssueRequest::new("u1", t)
            .occasion(occasion)
            .zone("Asia/Shanghai")
    };
    let first = issuer
        .issue(&store, &req("2026", at("2026-03-01T00:00:00Z")))
        .unwrap();
    let coupon = first.coupon().unwrap().clone();
    assert_eq!(coupon.expires_at, Some(at("2026-03-08T00:00:00Z")));
    assert!(coupon.is_valid_at(at("2026-03-07T23:59:59Z")));
    assert!(!coupon.is_valid_at(at("2026-03-08T00:00:00Z")));
    // A replay of the same occasion returns the same coupon.
    assert_eq!(
        issuer
            .issue(&store, &req("2026", at("2026-06-01T00:00:00Z")))
            .unwrap(),
        IssueOutcome::Duplicate(coupon)
    );
    // Another claim the same local year is over the per-user limit.
    assert_eq!(
        issuer
            .issue(&store, &req("2026-bis", at("2026-12-31T15:59:59Z")))
            .unwrap(),
        IssueOutcome::Refused(Refusal::PerUserLimit)
    );
    // 16:00 UTC on 31 December is New Year in Shanghai.
    assert!(matches!(
        issuer
            .issue(&store, &req("2027", at("2026-12-31T16:00:00Z")))
            .unwrap(),
        IssueOutcome::Issued(_)
    ));
}

/// The claim of a user lives with the sub-stock that served it, and every
/// key of one reservation shares that sub-stock's hash tag.
#[test]
fn claims_live_with_the_serving_sub_stock() {
    let issuer = CouponIssuer::new("c", decl(Some(3), None, 3)).unwrap();
    assert_eq!(issuer.sub_stocks(), vec![Some(1), Some(1), Some(1)]);
    let store = MemoryStore::new();
    let now = Timestamp::from_millis(0);
    let keys = KeyLayout::default();
    // Fill the home sub-stock of "a" with another user sharing it.
    let home = issuer.home_shard("a");
    let rival = (0..)
        .map(|i| format!("r{i}"))
        .find(|u| issuer.home_shard(u) == home)
        .unwrap();
    assert!(matches!(
        issuer
            .issue(&store, &IssueRequest::new(&rival, now))
            .unwrap(),
        IssueOutcome::Issued(_)
    ));
    let got = issuer.issue(&store, &IssueRequest::new("a", now)).unwrap();
    let shard = got.coupon().unwrap().shard;
    assert_ne!(shard, home);
    let claim = keys.coupon_claim("flash", shard, "c", "a", "");
    assert_eq!(claim.hash_tag(), format!("cpn:flash:{shard}"));
    assert!(store.claim(&claim, now).unwrap().is_some());
    assert!(store
        .claim(&keys.coupon_claim("flash", home, "c", "a", ""), now)
        .unwrap()
        .is_none());
    assert_eq!(
        issuer.find(&store, "a", "", now).unwrap().as_ref(),
        got.coupon()
    );
}
