//! Frequency caps: at most N sends per user within a scope (a channel, a
//! campaign, or everything) over a window, rolling ("the last 24 hours") or
//! calendar ("this day in the user's time zone").
//!
//! Every cap that applies to a send is checked, and the send counted in all
//! of them, in one atomic store operation: either all counters take the
//! send or none does, and a refusal names the first full cap. A send can
//! therefore never slip through two concurrent checks of the same counter.
//!
//! * A rolling window of length `d` counts the sends made at `t` with
//!   `now - d < t <= now`.
//! * A calendar window counts the sends of the current day (from local
//!   midnight), week (from Monday 00:00), month or year, in the cap's zone:
//!   the user's own (UTC when the profile has none or names an unknown
//!   zone) or a fixed IANA zone. Its counter is keyed by the period and
//!   expires at the period's end, so the cap resets at local midnight,
//!   daylight-saving changes included.
//! * Members of the cap's exempt audiences (an allow-list) are not capped
//!   by it, nor counted in it.
//!
//! ```
//! use nudge_core::decl::{CalendarUnit, CapDecl, CapScope, Limit, Period, Zone};
//! use nudge_core::primitives::audience::NoAudiences;
//! use nudge_core::primitives::caps::{CapOutcome, FrequencyCaps, SendAttempt};
//! use nudge_core::primitives::store::MemoryStore;
//! let sms_daily = CapDecl {
//!     name: "sms_daily".into(),
//!     limit: Limit { count: 2, period: Period::Calendar(CalendarUnit::Day) },
//!     scope: CapScope::Channel("sms".into()),
//!     zone: Zone::User,
//!     exempt: vec![],
//! };
//! let caps = FrequencyCaps::new(vec![sms_daily])?;
//! let store = MemoryStore::new();
//! let mut send = SendAttempt::new("u1", "sms", "spring", "2026-11-23T01:00:00Z".parse()?);
//! send.user_zone = Some("Asia/Shanghai");
//! for _ in 0..2 {
//!     assert!(matches!(caps.check_and_count(&store, &send, &NoAudiences)?, CapOutcome::Allowed { .. }));
//! }
//! let third = caps.check_and_count(&store, &send, &NoAudiences)?;
//! assert_eq!(third.capped_by(), Some("sms_daily"));
//! // 16:00 UTC is midnight in Shanghai: a new day, a new count.
//! send.at = "2026-11-23T16:00:00Z".parse()?;
//! assert!(matches!(caps.check_and_count(&store, &send, &NoAudiences)?, CapOutcome::Allowed { .. }));
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::audience::Membership;
use super::store::{
    unique_event_id, CountOutcome, CountRequest, KeyLayout, StateStore, StoreError, Window,
    WindowCounter,
};
use crate::decl::{CalendarUnit, CapDecl, CapScope, Period, Zone};
use crate::time::Timestamp;
use jiff::ToSpan;
use std::sync::Arc;

/// Why a cap could not be set up or applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CapError {
    /// A zone name not in the time-zone database.
    #[error("unknown time zone `{0}`")]
    UnknownZone(Arc<str>),
    /// A rolling window of zero or negative length.
    #[error("a rolling window must be longer than zero")]
    EmptyWindow,
    /// The instant is outside the range calendars are computed for.
    #[error("time {0} is out of range for calendar periods")]
    OutOfRange(Timestamp),
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One calendar period: its key label and its bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarPeriod {
    /// `d2026-11-23`, `w2026-11-23` (the Monday), `m2026-11` or `y2026`.
    pub label: String,
    /// Its first instant.
    pub start: Timestamp,
    /// The first instant of the next period.
    pub end: Timestamp,
}

/// The calendar period of unit `unit` holding `at` in the IANA zone `zone`.
///
/// ```
/// use nudge_core::decl::CalendarUnit;
/// use nudge_core::primitives::caps::calendar_period;
/// // Sunday 2026-11-22 23:30 in Shanghai is still in the week of Monday the 16th.
/// let p = calendar_period("2026-11-22T15:30:00Z".parse()?, "Asia/Shanghai", CalendarUnit::Week)?;
/// assert_eq!(p.label, "w2026-11-16");
/// assert_eq!(p.end.to_string(), "2026-11-22T16:00:00Z");
/// Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn calendar_period(
    at: Timestamp,
    zone: &str,
    unit: CalendarUnit,
) -> Result<CalendarPeriod, CapError> {
    // Every cap and campaign limit of a decision asks for the period of
    // now; the periods last computed on this thread answer most of them.
    thread_local! {
        static RECENT: std::cell::RefCell<Vec<(Box<str>, CalendarUnit, CalendarPeriod)>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    let hit = RECENT.with_borrow(|recent| {
        recent
            .iter()
            .find(|(z, u, p)| **z == *zone && *u == unit && p.start <= at && at < p.end)
            .map(|(_, _, p)| p.clone())
    });
    if let Some(p) = hit {
        return Ok(p);
    }
    let p = compute_calendar_period(at, zone, unit)?;
    RECENT.with_borrow_mut(|recent| {
        let found = recent
            .iter()
            .position(|(z, u, _)| **z == *zone && *u == unit);
        match found {
            Some(i) => recent[i].2 = p.clone(),
            None if recent.len() < 64 => recent.push((zone.into(), unit, p.clone())),
            None => recent[0] = (zone.into(), unit, p.clone()),
        }
    });
    Ok(p)
}

fn compute_calendar_period(
    at: Timestamp,
    zone: &str,
    unit: CalendarUnit,
) -> Result<CalendarPeriod, CapError> {
    let tz = jiff::tz::TimeZone::get(zone).map_err(|_| CapError::UnknownZone(zone.into()))?;
    let range = || CapError::OutOfRange(at);
    let date = jiff::Timestamp::from_millisecond(at.as_millis())
        .map_err(|_| range())?
        .to_zoned(tz.clone())
        .date();
    let (start, next) = match unit {
        CalendarUnit::Day => (date, date.tomorrow().map_err(|_| range())?),
        CalendarUnit::Week => {
            let back = i64::from(date.weekday().to_monday_zero_offset());
            let monday = date.checked_sub(back.days()).map_err(|_| range())?;
            (monday, monday.checked_add(7.days()).map_err(|_| range())?)
        }
        CalendarUnit::Month => {
            let first = date.first_of_month();
            (first, first.checked_add(1.month()).map_err(|_| range())?)
        }
        CalendarUnit::Year => {
            let first = date.first_of_year();
            (first, first.checked_add(1.year()).map_err(|_| range())?)
        }
    };
    let instant = |d: jiff::civil::Date| -> Result<Timestamp, CapError> {
        let z = d.to_zoned(tz.clone()).map_err(|_| range())?;
        let z = z.start_of_day().map_err(|_| range())?;
        Ok(Timestamp::from_millis(z.timestamp().as_millisecond()))
    };
    let label = match unit {
        CalendarUnit::Day => format!("d{start}"),
        CalendarUnit::Week => format!("w{start}"),
        CalendarUnit::Month => format!("m{:04}-{:02}", start.year(), start.month()),
        CalendarUnit::Year => format!("y{:04}", start.year()),
    };
    Ok(CalendarPeriod {
        label,
        start: instant(start)?,
        end: instant(next)?,
    })
}

/// The key label and store window of a limit's period at `now` in `zone`.
pub fn limit_window(
    period: Period,
    zone: &str,
    now: Timestamp,
) -> Result<(String, Window), CapError> {
    match period {
        Period::Rolling(d) if d.as_millis() <= 0 => Err(CapError::EmptyWindow),
        Period::Rolling(d) => Ok((String::new(), Window::Rolling(d))),
        Period::Lifetime => Ok((String::new(), Window::Fixed { expires_at: None })),
        Period::Calendar(unit) => {
            let p = calendar_period(now, zone, unit)?;
            Ok((
                p.label,
                Window::Fixed {
                    expires_at: Some(p.end),
                },
            ))
        }
    }
}

/// One send to be capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendAttempt<'a> {
    /// The user (after identity merging, the person id).
    pub user: &'a str,
    /// The channel.
    pub channel: &'a str,
    /// The campaign.
    pub campaign: &'a str,
    /// The user's time zone from their profile, if known.
    pub user_zone: Option<&'a str>,
    /// When.
    pub at: Timestamp,
    /// A unique id of the send (the host's message id); when empty, one is
    /// made with [`unique_event_id`].
    pub id: &'a str,
}

impl<'a> SendAttempt<'a> {
    /// A send with no zone and no id.
    pub fn new(user: &'a str, channel: &'a str, campaign: &'a str, at: Timestamp) -> Self {
        SendAttempt {
            user,
            channel,
            campaign,
            user_zone: None,
            at,
            id: "",
        }
    }
}

/// The result of checking a send against the caps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapOutcome {
    /// Allowed, and counted in every applicable cap.
    Allowed {
        /// Each applicable cap and its count after this send.
        counted: Vec<(Arc<str>, u32)>,
    },
    /// Capped: nothing was counted.
    Capped {
        /// The first full cap.
        cap: Arc<str>,
        /// Its limit.
        limit: u32,
        /// Sends already counted in its window.
        count: u32,
    },
}

impl CapOutcome {
    /// The name of the cap that refused the send, if one did.
    pub fn capped_by(&self) -> Option<&str> {
        match self {
            CapOutcome::Capped { cap, .. } => Some(cap),
            CapOutcome::Allowed { .. } => None,
        }
    }
}

/// A checked set of frequency caps.
#[derive(Debug, Clone)]
pub struct FrequencyCaps {
    caps: Vec<CapDecl>,
    layout: KeyLayout,
}

impl FrequencyCaps {
    /// Checks the caps' fixed zones and windows.
    pub fn new(caps: Vec<CapDecl>) -> Result<Self, CapError> {
        for cap in &caps {
            if let Zone::Named(z) = &cap.zone {
                if jiff::tz::TimeZone::get(z).is_err() {
                    return Err(CapError::UnknownZone(z.clone()));
                }
            }
            if let Period::Rolling(d) = cap.limit.period {
                if d.as_millis() <= 0 {
                    return Err(CapError::EmptyWindow);
                }
            }
        }
        Ok(FrequencyCaps {
            caps,
            layout: KeyLayout::default(),
        })
    }

    /// Uses `layout` for key names.
    pub fn with_layout(mut self, layout: KeyLayout) -> Self {
        self.layout = layout;
        self
    }

    /// The caps.
    pub fn caps(&self) -> &[CapDecl] {
        &self.caps
    }

    /// The caps that apply to `send`: matching scope, and the user not in
    /// one of the cap's exempt audiences.
    pub fn applicable<'s>(
        &'s self,
        send: &'s SendAttempt<'_>,
        audiences: &'s dyn Membership,
    ) -> impl Iterator<Item = &'s CapDecl> + 's {
        self.caps.iter().filter(move |cap| {
            let in_scope = match &cap.scope {
                CapScope::All => true,
                CapScope::Channel(c) => &**c == send.channel,
                CapScope::Campaign(c) => &**c == send.campaign,
            };
            in_scope && !cap.exempt.iter().any(|a| audiences.is_member(a, send.user))
        })
    }

    /// The store counters of the caps that apply to `send`.
    pub fn counters(
        &self,
        send: &SendAttempt<'_>,
        audiences: &dyn Membership,
    ) -> Result<Vec<(Arc<str>, WindowCounter)>, CapError> {
        self.applicable(send, audiences)
            .map(|cap| {
                let zone = match &cap.zone {
                    Zone::Named(z) => z,
                    Zone::User => send
                        .user_zone
                        .filter(|z| jiff::tz::TimeZone::get(z).is_ok())
                        .unwrap_or("UTC"),
                };
                let (label, window) = limit_window(cap.limit.period, zone, send.at)?;
                let counter = WindowCounter {
                    key: self.layout.cap(send.user, &cap.name, &label),
                    limit: cap.limit.count,
                    window,
                };
                Ok((cap.name.clone(), counter))
            })
            .collect()
    }

    /// Checks every applicable cap and, if none is full, counts the send in
    /// all of them, atomically.
    pub fn check_and_count(
        &self,
        store: &dyn StateStore,
        send: &SendAttempt<'_>,
        audiences: &dyn Membership,
    ) -> Result<CapOutcome, CapError> {
        let named = self.counters(send, audiences)?;
        if named.is_empty() {
            return Ok(CapOutcome::Allowed { counted: vec![] });
        }
        let (names, counters): (Vec<_>, Vec<_>) = named.into_iter().unzip();
        let limits: Vec<u32> = counters.iter().map(|c| c.limit).collect();
        let request = CountRequest {
            counters,
            event: if send.id.is_empty() {
                unique_event_id()
            } else {
                send.id.into()
            },
            now: send.at,
        };
        Ok(match store.check_and_count(&request)? {
            CountOutcome::Counted(counts) => CapOutcome::Allowed {
                counted: names.into_iter().zip(counts).collect(),
            },
            CountOutcome::Full { index, count } => CapOutcome::Capped {
                cap: names[index].clone(),
                limit: limits[index],
                count,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{next_civil_boundary, CivilUnit};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn day_periods_agree_with_next_civil_boundary() {
        for (at, zone) in [
            ("2026-11-22T20:30:00Z", "Asia/Shanghai"),
            ("2026-03-08T06:59:59Z", "America/New_York"),
            ("2026-03-08T07:00:00Z", "America/New_York"),
            ("2026-10-25T00:30:00Z", "Europe/Berlin"),
            ("2026-11-22T20:10:00Z", "Asia/Kolkata"),
        ] {
            let p = calendar_period(ts(at), zone, CalendarUnit::Day).unwrap();
            assert_eq!(
                Some(p.end),
                next_civil_boundary(ts(at), zone, CivilUnit::Day),
                "{at} {zone}"
            );
        }
    }

    #[test]
    fn months_and_years_start_on_the_first() {
        let p = calendar_period(
            ts("2026-12-31T16:30:00Z"),
            "Asia/Tokyo",
            CalendarUnit::Month,
        )
        .unwrap();
        assert_eq!(p.label, "m2027-01");
        assert_eq!(p.start, ts("2026-12-31T15:00:00Z"));
        assert_eq!(p.end, ts("2027-01-31T15:00:00Z"));
        let y = calendar_period(ts("2026-06-01T00:00:00Z"), "UTC", CalendarUnit::Year).unwrap();
        assert_eq!(
            (y.label.as_str(), y.start, y.end),
            (
                "y2026",
                ts("2026-01-01T00:00:00Z"),
                ts("2027-01-01T00:00:00Z")
            )
        );
    }

    #[test]
    fn unknown_zones_are_refused() {
        assert!(matches!(
            calendar_period(
                ts("2026-01-01T00:00:00Z"),
                "Mars/Olympus",
                CalendarUnit::Day
            ),
            Err(CapError::UnknownZone(_))
        ));
    }
}
