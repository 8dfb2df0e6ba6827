//! The marketing primitives, as library pieces the engine builds on: the
//! shared [`store`], [`coupon`] issuing, frequency [`caps`], [`audience`]
//! bitmaps, [`experiment`] bucketing, [`identity`] merging, state
//! [`machine`]s and [`message`] routing.
//!
//! Each works on the checked declarations of [`crate::decl`] and keeps its
//! shared state behind [`store::StateStore`], whose operations are atomic
//! and map one-to-one onto Redis server-side scripts (see
//! `docs/primitives.md`).
//!
//! ```
//! use nudge_core::decl::{CalendarUnit, CapDecl, CapScope, Limit, Period, Zone};
//! use nudge_core::primitives::audience::Audiences;
//! use nudge_core::primitives::caps::FrequencyCaps;
//! use nudge_core::primitives::message::{Delivery, DropReason, MessagePolicy, MessageRequest, MessageRouter};
//! use nudge_core::primitives::store::MemoryStore;
//! // S10, in part: at most 2 marketing SMS per calendar day; the complaint
//! // list gets nothing.
//! let daily_sms = CapDecl {
//!     name: "sms_daily".into(),
//!     limit: Limit { count: 2, period: Period::Calendar(CalendarUnit::Day) },
//!     scope: CapScope::Channel("sms".into()),
//!     zone: Zone::User,
//!     exempt: vec![],
//! };
//! let mut policy = MessagePolicy::new("promo", ["sms"]);
//! policy.suppress = vec!["complaints".into()];
//! let router = MessageRouter::new(policy, FrequencyCaps::new(vec![daily_sms])?)?;
//! let mut audiences = Audiences::new();
//! audiences.insert_ids("complaints", ["angry"])?;
//! let store = MemoryStore::new();
//! let everyone = |_: &str, _: &str| true;
//! let now = "2026-11-23T09:00:00Z".parse()?;
//! let sent = (0..3)
//!     .filter(|_| {
//!         let r = router.route(&store, &audiences, &everyone, &MessageRequest::new("u1", now)).unwrap();
//!         matches!(r.delivery, Delivery::Send { .. })
//!     })
//!     .count();
//! assert_eq!(sent, 2);
//! let angry = router.route(&store, &audiences, &everyone, &MessageRequest::new("angry", now))?;
//! assert_eq!(angry.delivery, Delivery::Drop(DropReason::Suppressed { audience: "complaints".into() }));
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod audience;
pub mod caps;
pub mod coupon;
pub mod decide;
pub mod experiment;
pub mod identity;
pub mod machine;
pub mod message;
pub mod segments;
pub mod store;
