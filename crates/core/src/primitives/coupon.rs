//! Coupon issuing against a [`CouponDecl`]: stock and budget reserved
//! together and atomically, a per-user limit, idempotency per (campaign,
//! user, occasion), a circuit breaker per template, and hot stock split into
//! sub-stocks.
//!
//! **Sub-stocks.** The stock (and the budget, in whole coupons) is split into
//! `shards` sub-stocks as evenly as possible; sub-stock `i` holds
//! `stock / n` coupons, plus one if `i < stock % n`, so the parts add up to
//! the stock exactly. A user's request starts at the sub-stock picked by a
//! hash of the user and, if that one is empty, tries the others in order
//! `home, home + 1, ...`. Each sub-stock is its own unit of atomicity with
//! its own hash tag (`{cpn:<coupon>:<i>}`), and the claim record of a user
//! lives with the sub-stock that served the user.
//!
//! **Why this is exact.** A sub-stock never refills (while the declaration
//! is unchanged), so once a request finds it empty it stays empty. Every
//! request of a user walks the same order; the claim is checked before the
//! stock in each sub-stock, so a retry meets the first claim before it can
//! reach a sub-stock with stock left after it. The per-user count is kept
//! per sub-stock; a request carries the counts of the empty sub-stocks it
//! passed (frozen, as they issue no more) into the limit it asks of the
//! next one.
//!
//! **Circuit breaker.** When a request finds every sub-stock empty, the
//! issuer remembers it and refuses later requests without trying to reserve
//! (S21: the campaign stops and says why). It only looks up the request's
//! claim ([`CouponIssuer::find`], one read per sub-stock), so that a retry by
//! a user who already got a coupon is still answered with that coupon, not
//! with the refusal. [`CouponIssuer::reset_breaker`] closes it (after the
//! stock was raised, say).
//!
//! ```
//! use nudge_core::decl::CouponDecl;
//! use nudge_core::primitives::coupon::{CouponIssuer, IssueOutcome, IssueRequest, Refusal};
//! use nudge_core::primitives::store::MemoryStore;
//! use nudge_core::Timestamp;
//! let decl = CouponDecl {
//!     name: "first_order".into(),
//!     value: 20.0,
//!     min_spend: Some(100.0),
//!     discount_bp: None,
//!     stock: Some(1),
//!     budget: Some(20_000.0),
//!     per_user: None,
//!     valid_for: Some("7d".parse()?),
//!     shards: 1,
//! };
//! let issuer = CouponIssuer::new("welcome", decl)?;
//! let store = MemoryStore::new();
//! let now = Timestamp::from_millis(0);
//! let first = issuer.issue(&store, &IssueRequest::new("u1", now))?;
//! assert!(matches!(first, IssueOutcome::Issued(_)));
//! // A retry returns the first result; another user finds the stock spent.
//! assert_eq!(
//!     issuer.issue(&store, &IssueRequest::new("u1", now))?,
//!     IssueOutcome::Duplicate(first.coupon().unwrap().clone())
//! );
//! assert_eq!(
//!     issuer.issue(&store, &IssueRequest::new("u2", now))?,
//!     IssueOutcome::Refused(Refusal::OutOfStock)
//! );
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::caps::{limit_window, CapError};
use super::experiment::{fnv1a32, IdEncoding};
use super::store::{
    Bounded, ClaimRecord, KeyLayout, ReserveOutcome, ReserveRefusal, ReserveRequest, StateStore,
    StoreError,
};
use crate::decl::CouponDecl;
use crate::time::{Duration, Timestamp};
use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// Budget amounts are kept as integers of this many units per currency
/// unit (four decimal places), so that the store adds integers.
pub const BUDGET_UNITS: f64 = 10_000.0;

/// Why a coupon template or a request was refused, or the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CouponError {
    /// The face value is negative, not finite, or too large.
    #[error("coupon `{coupon}`: value {value} is not a usable amount")]
    BadValue {
        /// The template.
        coupon: Arc<str>,
        /// The value.
        value: f64,
    },
    /// The budget is negative, not finite, or too large.
    #[error("coupon `{coupon}`: budget {budget} is not a usable amount")]
    BadBudget {
        /// The template.
        coupon: Arc<str>,
        /// The budget.
        budget: f64,
    },
    /// A per-user period could not be computed (unknown zone, bad window).
    #[error(transparent)]
    Period(#[from] CapError),
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A claim record in the store is not one this issuer wrote.
    #[error("claim record of coupon `{coupon}` is unreadable")]
    CorruptRecord {
        /// The template.
        coupon: Arc<str>,
    },
}

/// One issued coupon.
#[derive(Debug, Clone, PartialEq)]
pub struct Coupon {
    /// Unique id: `<template>-<sub-stock>-<serial>`.
    pub id: String,
    /// The template.
    pub template: Arc<str>,
    /// The campaign that issued it.
    pub campaign: Arc<str>,
    /// The user it was issued to.
    pub user: Arc<str>,
    /// The sub-stock that served it.
    pub shard: u32,
    /// Its number within the sub-stock, from 1.
    pub serial: u64,
    /// Face value.
    pub value: f64,
    /// When it was issued.
    pub issued_at: Timestamp,
    /// When it stops being valid; `None` for never.
    pub expires_at: Option<Timestamp>,
}

impl Coupon {
    /// Whether the coupon is valid at `t`: from issue to expiry, expiry
    /// excluded.
    pub fn is_valid_at(&self, t: Timestamp) -> bool {
        t >= self.issued_at && self.expires_at.is_none_or(|end| t < end)
    }
}

/// Why no coupon was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Every sub-stock is empty.
    OutOfStock,
    /// The budget cannot pay for another coupon.
    BudgetSpent,
    /// The user has had as many as the per-user limit allows.
    PerUserLimit,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::OutOfStock => "out of stock",
            Refusal::BudgetSpent => "budget spent",
            Refusal::PerUserLimit => "per-user limit reached",
        })
    }
}

/// The result of one issuing request.
#[derive(Debug, Clone, PartialEq)]
pub enum IssueOutcome {
    /// A new coupon.
    Issued(Coupon),
    /// The claim was made before: this is the coupon it got; nothing new
    /// was issued.
    Duplicate(Coupon),
    /// Nothing was issued.
    Refused(Refusal),
}

impl IssueOutcome {
    /// The coupon, new or first, if any.
    pub fn coupon(&self) -> Option<&Coupon> {
        match self {
            IssueOutcome::Issued(c) | IssueOutcome::Duplicate(c) => Some(c),
            IssueOutcome::Refused(_) => None,
        }
    }
}

/// One request for a coupon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRequest<'a> {
    /// The user (after identity merging, the person id).
    pub user: &'a str,
    /// What makes two claims of one user different ("2026" for a yearly
    /// birthday coupon); empty for once per campaign.
    pub occasion: &'a str,
    /// The user's time zone, for calendar per-user limits (UTC if `None`).
    pub zone: Option<&'a str>,
    /// The person's other names: identifiers linked to it, under which it
    /// may have claimed before; their claims count toward the per-user
    /// limit.
    pub others: &'a [Arc<str>],
    /// The current time.
    pub now: Timestamp,
}

impl<'a> IssueRequest<'a> {
    /// A request with no occasion and no zone.
    pub fn new(user: &'a str, now: Timestamp) -> Self {
        IssueRequest {
            user,
            occasion: "",
            zone: None,
            others: &[],
            now,
        }
    }

    /// Sets the occasion.
    pub fn occasion(mut self, occasion: &'a str) -> Self {
        self.occasion = occasion;
        self
    }

    /// Sets the user's time zone.
    pub fn zone(mut self, zone: &'a str) -> Self {
        self.zone = Some(zone);
        self
    }

    /// Sets the person's other names, whose claims count toward the
    /// per-user limit.
    pub fn others(mut self, others: &'a [Arc<str>]) -> Self {
        self.others = others;
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SubStock {
    stock: Option<u64>,
    budget: Option<u64>,
    starved: bool,
}

impl SubStock {
    fn is_empty(&self) -> bool {
        self.stock == Some(0)
    }
}

const BREAKER_CLOSED: u8 = 0;
const BREAKER_STOCK: u8 = 1;
const BREAKER_BUDGET: u8 = 2;

/// Issues coupons of one template for one campaign. Share it between
/// threads (`&self` methods); all shared state is in the store.
#[derive(Debug)]
pub struct CouponIssuer {
    campaign: Arc<str>,
    decl: CouponDecl,
    layout: KeyLayout,
    cost: u64,
    subs: Vec<SubStock>,
    claim_ttl: Option<Duration>,
    breaker: AtomicU8,
}

/// Splits `total` into `n` parts differing by at most one, larger first.
fn split(total: u64, n: u32) -> impl Iterator<Item = u64> {
    let n64 = u64::from(n);
    (0..n64).map(move |i| total / n64 + u64::from(i < total % n64))
}

fn to_units(amount: f64) -> Option<u64> {
    let units = (amount * BUDGET_UNITS).round();
    (amount.is_finite() && amount >= 0.0 && units < 2f64.powi(53)).then_some(units as u64)
}

impl CouponIssuer {
    /// An issuer of `decl` coupons for `campaign`.
    pub fn new(campaign: impl Into<Arc<str>>, decl: CouponDecl) -> Result<Self, CouponError> {
        let cost = to_units(decl.value).ok_or_else(|| CouponError::BadValue {
            coupon: decl.name.clone(),
            value: decl.value,
        })?;
        let budget = decl
            .budget
            .map(|b| {
                to_units(b).ok_or_else(|| CouponError::BadBudget {
                    coupon: decl.name.clone(),
                    budget: b,
                })
            })
            .transpose()?;
        if let Some(limit) = &decl.per_user {
            // Reject unusable periods now rather than on the first request.
            limit_window(limit.period, "UTC", Timestamp::from_millis(0))?;
        }
        let n = decl.shards.max(1);
        let stocks: Vec<Option<u64>> = match decl.stock {
            Some(s) => split(s, n).map(Some).collect(),
            None => vec![None; n as usize],
        };
        // The budget is split in whole coupons, like the stock, so that the
        // sub-budgets add up to exactly as many coupons as the budget pays
        // for; the fraction of a coupon left over goes to sub-stock 0.
        let budgets: Vec<Option<u64>> = match (budget, cost) {
            (None, _) => vec![None; n as usize],
            (Some(_), 0) => vec![None; n as usize],
            (Some(b), c) => split(b / c, n)
                .enumerate()
                .map(|(i, coupons)| Some(coupons * c + if i == 0 { b % c } else { 0 }))
                .collect(),
        };
        let subs = stocks
            .into_iter()
            .zip(budgets)
            .map(|(stock, budget)| {
                // A sub-budget that pays for no coupon makes an empty
                // sub-stock, empty for want of budget.
                let starved = budget.is_some_and(|b| b < cost) && stock != Some(0);
                SubStock {
                    stock: if starved { Some(0) } else { stock },
                    budget,
                    starved,
                }
            })
            .collect();
        Ok(CouponIssuer {
            campaign: campaign.into(),
            decl,
            layout: KeyLayout::default(),
            cost,
            subs,
            claim_ttl: None,
            breaker: AtomicU8::new(BREAKER_CLOSED),
        })
    }

    /// Uses `layout` for key names.
    pub fn with_layout(mut self, layout: KeyLayout) -> Self {
        self.layout = layout;
        self
    }

    /// Keeps claim records for `ttl` only (default: for ever). After it, the
    /// same claim may be issued again.
    pub fn with_claim_ttl(mut self, ttl: Duration) -> Self {
        self.claim_ttl = Some(ttl);
        self
    }

    /// The template.
    pub fn decl(&self) -> &CouponDecl {
        &self.decl
    }

    /// Number of sub-stocks.
    pub fn shards(&self) -> u32 {
        self.subs.len() as u32
    }

    /// The stock of each sub-stock (`None` for unlimited).
    pub fn sub_stocks(&self) -> Vec<Option<u64>> {
        self.subs.iter().map(|s| s.stock).collect()
    }

    /// The sub-stock a user's requests start at.
    pub fn home_shard(&self, user: &str) -> u32 {
        let key = format!("{}\u{0}{}", self.decl.name, user);
        fnv1a32(&key, IdEncoding::Utf8) % self.shards()
    }

    /// Why the breaker is open, if it is.
    pub fn breaker(&self) -> Option<Refusal> {
        match self.breaker.load(Ordering::Acquire) {
            BREAKER_STOCK => Some(Refusal::OutOfStock),
            BREAKER_BUDGET => Some(Refusal::BudgetSpent),
            _ => None,
        }
    }

    /// Closes the breaker, so requests reach the store again.
    pub fn reset_breaker(&self) {
        self.breaker.store(BREAKER_CLOSED, Ordering::Release);
    }

    fn order(&self, user: &str) -> impl Iterator<Item = u32> {
        let n = self.shards();
        let home = self.home_shard(user);
        (0..n).map(move |k| (home + k) % n)
    }

    /// Tries to issue one coupon.
    pub fn issue(
        &self,
        store: &dyn StateStore,
        req: &IssueRequest<'_>,
    ) -> Result<IssueOutcome, CouponError> {
        if let Some(reason) = self.breaker() {
            // A user who got a coupon is told so, not that the stock ran
            // out: a retry never runs the `refused` branch of a winner.
            return Ok(match self.find(store, req.user, req.occasion, req.now)? {
                Some(coupon) => IssueOutcome::Duplicate(coupon),
                None => IssueOutcome::Refused(reason),
            });
        }
        let per_user = match &self.decl.per_user {
            Some(limit) => Some((
                limit.count,
                limit_window(limit.period, req.zone.unwrap_or("UTC"), req.now)?,
            )),
            None => None,
        };
        let expires_at = self.decl.valid_for.and_then(|d| req.now.checked_add(d));
        let payload = encode_record(req.now, expires_at);
        // The person's claims under its other names (identifiers linked to
        // it since) count too. No claim is made under those names any more,
        // so their counts only fall: read once, they are carried like the
        // counts of the empty sub-stocks below.
        let mut carried: u32 = 0;
        if let Some((_, (label, window))) = &per_user {
            for other in req.others {
                for (shard, sub) in self.subs.iter().enumerate() {
                    if sub.is_empty() {
                        continue;
                    }
                    let counter = super::store::WindowCounter {
                        key: self
                            .layout
                            .coupon_user(&self.decl.name, shard as u32, other, label),
                        limit: 0,
                        window: *window,
                    };
                    carried = carried.saturating_add(store.window_count(&counter, req.now)?);
                }
            }
        }
        let mut budget_bound = false;
        for shard in self.order(req.user) {
            let sub = self.subs[shard as usize];
            // A sub-stock that never held a coupon holds no claim either.
            if sub.is_empty() {
                budget_bound |= sub.starved;
                continue;
            }
            let per_user_counter = match &per_user {
                Some((count, (label, window))) => {
                    let Some(left) = count.checked_sub(carried).filter(|&l| l > 0) else {
                        return Ok(IssueOutcome::Refused(Refusal::PerUserLimit));
                    };
                    Some(super::store::WindowCounter {
                        key: self
                            .layout
                            .coupon_user(&self.decl.name, shard, req.user, label),
                        limit: left,
                        window: *window,
                    })
                }
                None => None,
            };
            let request = ReserveRequest {
                claim: self.layout.coupon_claim(
                    &self.decl.name,
                    shard,
                    &self.campaign,
                    req.user,
                    req.occasion,
                ),
                claim_ttl: self.claim_ttl,
                stock: Bounded {
                    key: self.layout.coupon_stock(&self.decl.name, shard),
                    limit: sub.stock,
                },
                budget: sub.budget.map(|limit| {
                    (
                        Bounded {
                            key: self.layout.coupon_budget(&self.decl.name, shard),
                            limit: Some(limit),
                        },
                        self.cost,
                    )
                }),
                per_user: per_user_counter,
                payload: payload.clone(),
                now: req.now,
            };
            match store.reserve(&request)? {
                ReserveOutcome::Reserved { serial } => {
                    return Ok(IssueOutcome::Issued(
                        self.coupon(req.user, shard, serial, req.now, expires_at),
                    ))
                }
                ReserveOutcome::Duplicate(record) => {
                    return Ok(IssueOutcome::Duplicate(
                        self.coupon_of_record(req.user, shard, &record)?,
                    ))
                }
                ReserveOutcome::Refused {
                    reason: ReserveRefusal::PerUser,
                    ..
                } => return Ok(IssueOutcome::Refused(Refusal::PerUserLimit)),
                ReserveOutcome::Refused { reason, user_count } => {
                    budget_bound |= reason == ReserveRefusal::Budget;
                    carried = carried.saturating_add(user_count);
                }
            }
        }
        let (reason, state) = if budget_bound {
            (Refusal::BudgetSpent, BREAKER_BUDGET)
        } else {
            (Refusal::OutOfStock, BREAKER_STOCK)
        };
        self.breaker.store(state, Ordering::Release);
        Ok(IssueOutcome::Refused(reason))
    }

    /// The coupon a claim got, if it got one: looks in every sub-stock,
    /// without issuing.
    pub fn find(
        &self,
        store: &dyn StateStore,
        user: &str,
        occasion: &str,
        now: Timestamp,
    ) -> Result<Option<Coupon>, CouponError> {
        for shard in self.order(user) {
            let key =
                self.layout
                    .coupon_claim(&self.decl.name, shard, &self.campaign, user, occasion);
            if let Some(record) = store.claim(&key, now)? {
                return self.coupon_of_record(user, shard, &record).map(Some);
            }
        }
        Ok(None)
    }

    fn coupon(
        &self,
        user: &str,
        shard: u32,
        serial: u64,
        issued_at: Timestamp,
        expires_at: Option<Timestamp>,
    ) -> Coupon {
        Coupon {
            id: format!("{}-{shard}-{serial}", self.decl.name),
            template: self.decl.name.clone(),
            campaign: self.campaign.clone(),
            user: user.into(),
            shard,
            serial,
            value: self.decl.value,
            issued_at,
            expires_at,
        }
    }

    fn coupon_of_record(
        &self,
        user: &str,
        shard: u32,
        record: &ClaimRecord,
    ) -> Result<Coupon, CouponError> {
        let (issued_at, expires_at) =
            decode_record(&record.payload).ok_or_else(|| CouponError::CorruptRecord {
                coupon: self.decl.name.clone(),
            })?;
        Ok(self.coupon(user, shard, record.serial, issued_at, expires_at))
    }
}

/// The claim payload: `c1;<issued ms>;<expiry ms or ->`.
fn encode_record(issued_at: Timestamp, expires_at: Option<Timestamp>) -> Vec<u8> {
    let expiry = expires_at.map_or_else(|| "-".to_string(), |t| t.as_millis().to_string());
    format!("c1;{};{expiry}", issued_at.as_millis()).into_bytes()
}

fn decode_record(bytes: &[u8]) -> Option<(Timestamp, Option<Timestamp>)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut parts = text.split(';');
    if parts.next()? != "c1" {
        return None;
    }
    let issued = Timestamp::from_millis(parts.next()?.parse().ok()?);
    let expiry = match parts.next()? {
        "-" => None,
        ms => Some(Timestamp::from_millis(ms.parse().ok()?)),
    };
    parts.next().is_none().then_some((issued, expiry))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decl::{Limit, Period};
    use crate::primitives::store::MemoryStore;

    fn decl(stock: Option<u64>, budget: Option<f64>, shards: u32) -> CouponDecl {
        CouponDecl {
            name: "c".into(),
            value: 20.0,
            min_spend: None,
            discount_bp: None,
            stock,
            budget,
            per_user: None,
            valid_for: None,
            shards,
        }
    }

    #[test]
    fn splits_add_up_exactly() {
        let issuer = CouponIssuer::new("k", decl(Some(10), None, 4)).unwrap();
        assert_eq!(
            issuer.sub_stocks(),
            vec![Some(3), Some(3), Some(2), Some(2)]
        );
        // 70 currency units pay for 3 coupons of 20: split 1, 1, 1, 0.
        let issuer = CouponIssuer::new("k", decl(None, Some(70.0), 4)).unwrap();
        assert_eq!(
            issuer.subs.iter().map(|s| s.budget).collect::<Vec<_>>(),
            vec![
                Some(30 * 10_000),
                Some(20 * 10_000),
                Some(20 * 10_000),
                Some(0)
            ]
        );
        assert_eq!(issuer.sub_stocks()[3], Some(0));
    }

    #[test]
    fn exhausts_across_sub_stocks_then_opens_the_breaker() {
        let issuer = CouponIssuer::new("k", decl(Some(5), None, 3)).unwrap();
        let store = MemoryStore::new();
        let now = Timestamp::from_millis(0);
        let users: Vec<String> = (0..9).map(|i| format!("u{i}")).collect();
        let issued = users
            .iter()
            .filter(|u| {
                matches!(
                    issuer.issue(&store, &IssueRequest::new(u, now)).unwrap(),
                    IssueOutcome::Issued(_)
                )
            })
            .count();
        assert_eq!(issued, 5);
        assert_eq!(issuer.breaker(), Some(Refusal::OutOfStock));
        // With the breaker open, a winner's retry still gets its coupon
        // back, in whichever sub-stock served it, and others the refusal.
        let mut duplicates = 0;
        for u in &users {
            let again = issuer.issue(&store, &IssueRequest::new(u, now)).unwrap();
            match issuer.find(&store, u, "", now).unwrap() {
                Some(c) => {
                    assert_eq!(again, IssueOutcome::Duplicate(c));
                    duplicates += 1;
                }
                None => assert_eq!(again, IssueOutcome::Refused(Refusal::OutOfStock)),
            }
        }
        assert_eq!(duplicates, 5);
        issuer.reset_breaker();
        assert_eq!(
            issuer
                .issue(&store, &IssueRequest::new("late", now))
                .unwrap(),
            IssueOutcome::Refused(Refusal::OutOfStock)
        );
    }

    #[test]
    fn budget_binds_before_stock() {
        let issuer = CouponIssuer::new("k", decl(Some(100), Some(50.0), 2)).unwrap();
        let store = MemoryStore::new();
        let now = Timestamp::from_millis(0);
        let outcomes: Vec<_> = (0..4)
            .map(|i| {
                issuer
                    .issue(&store, &IssueRequest::new(&format!("u{i}"), now))
                    .unwrap()
            })
            .collect();
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| matches!(o, IssueOutcome::Issued(_)))
                .count(),
            2
        );
        assert_eq!(outcomes[3], IssueOutcome::Refused(Refusal::BudgetSpent));
    }

    #[test]
    fn per_user_limit_counts_across_sub_stocks_and_occasions() {
        let mut d = decl(Some(4), None, 4);
        d.per_user = Some(Limit {
            count: 2,
            period: Period::Lifetime,
        });
        let issuer = CouponIssuer::new("k", d).unwrap();
        let store = MemoryStore::new();
        let now = Timestamp::from_millis(0);
        let got: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|o| {
                issuer
                    .issue(&store, &IssueRequest::new("u", now).occasion(o))
                    .unwrap()
            })
            .collect();
        assert!(matches!(got[0], IssueOutcome::Issued(_)));
        assert!(matches!(got[1], IssueOutcome::Issued(_)));
        assert_eq!(got[2], IssueOutcome::Refused(Refusal::PerUserLimit));
        let found = issuer.find(&store, "u", "b", now).unwrap();
        assert_eq!(found.as_ref(), got[1].coupon());
    }

    #[test]
    fn records_round_trip() {
        let t = Timestamp::from_millis(5);
        assert_eq!(decode_record(&encode_record(t, None)), Some((t, None)));
        assert_eq!(
            decode_record(&encode_record(t, Some(t))),
            Some((t, Some(t)))
        );
        assert_eq!(decode_record(b"c1;x;-"), None);
        assert_eq!(decode_record(b"c1;1;-;"), None);
    }
}
