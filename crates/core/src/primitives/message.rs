//! Messages: which channel a message goes out on, when, or why not.
//!
//! For one message to one user, in this order:
//! 1. **Suppression.** A member of one of the campaign's suppression
//!    audiences (a complaint list) gets nothing.
//! 2. **Quiet hours**, in the campaign's zone (the user's own by default,
//!    UTC when unknown): a message decided inside them is deferred to the
//!    instant they end, or dropped, as declared. A deferred message is
//!    routed again when it comes due; nothing is counted before.
//! 3. **Channel fallback.** The channels are tried in order; a channel is
//!    skipped if the user cannot be reached on it (no binding), has opted
//!    out of it, or a frequency cap that applies to it is full. The first
//!    channel left is chosen and the send is counted in its caps, atomically
//!    (see [`caps`](super::caps)). Members of a cap's exempt audiences (an
//!    allow-list) are not capped by it.
//!
//! The result records every skipped channel and why.
//!
//! ```
//! use nudge_core::decl::{CapDecl, CapScope, Limit, Period, Zone};
//! use nudge_core::primitives::audience::Audiences;
//! use nudge_core::primitives::caps::FrequencyCaps;
//! use nudge_core::primitives::message::{Delivery, MessagePolicy, MessageRequest, MessageRouter, SkipReason};
//! use nudge_core::primitives::store::MemoryStore;
//! // S9: WeChat first; users without a binding, or capped on WeChat, get SMS.
//! let wechat_cap = CapDecl {
//!     name: "wechat_daily".into(),
//!     limit: Limit { count: 1, period: Period::Rolling("1d".parse()?) },
//!     scope: CapScope::Channel("wechat".into()),
//!     zone: Zone::User,
//!     exempt: vec![],
//! };
//! let router = MessageRouter::new(
//!     MessagePolicy::new("s9", ["wechat", "sms"]),
//!     FrequencyCaps::new(vec![wechat_cap])?,
//! )?;
//! let store = MemoryStore::new();
//! let bound = |user: &str, channel: &str| channel == "sms" || user == "u1";
//! let now = "2026-11-23T10:00:00Z".parse()?;
//! let route = |user| router.route(&store, &Audiences::new(), &bound, &MessageRequest::new(user, now));
//! assert_eq!(route("u1")?.delivery, Delivery::Send { channel: "wechat".into() });
//! let second = route("u1")?;
//! assert_eq!(second.delivery, Delivery::Send { channel: "sms".into() });
//! assert!(matches!(second.skipped[0].reason, SkipReason::Capped { .. }));
//! assert_eq!(route("u2")?.skipped[0].reason, SkipReason::Unreachable);
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::audience::Membership;
use super::caps::{CapError, CapOutcome, FrequencyCaps, SendAttempt};
use super::store::StateStore;
use crate::decl::{CampaignDecl, QuietHours, QuietPolicy, Zone};
use crate::time::Timestamp;
use jiff::ToSpan;
use std::sync::Arc;

/// Why a message policy could not be set up or applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// Quiet hours outside `0..=1440` minutes.
    #[error("quiet hours {start}..{end} are not minutes of a day (0 to 1440)")]
    BadQuietHours {
        /// First quiet minute.
        start: u16,
        /// First minute after.
        end: u16,
    },
    /// A fixed zone not in the time-zone database.
    #[error("unknown time zone `{0}`")]
    UnknownZone(Arc<str>),
    /// The instant is outside the range the calendar handles.
    #[error("time {0} is out of range for quiet hours")]
    OutOfRange(Timestamp),
    /// The caps failed (their store, usually).
    #[error(transparent)]
    Caps(#[from] CapError),
}

/// Whether and how a user can be reached on a channel; the host answers.
pub trait Reachability {
    /// Whether the user has what the channel needs (a WeChat binding, a
    /// phone number, a push token).
    fn reachable(&self, user: &str, channel: &str) -> bool;

    /// Whether the user opted out of the channel.
    fn opted_out(&self, user: &str, channel: &str) -> bool {
        let _ = (user, channel);
        false
    }
}

impl<F: Fn(&str, &str) -> bool> Reachability for F {
    fn reachable(&self, user: &str, channel: &str) -> bool {
        self(user, channel)
    }
}

/// The delivery rules of one campaign's messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagePolicy {
    /// The campaign (caps scoped to it apply).
    pub campaign: Arc<str>,
    /// Channels in order of preference.
    pub channels: Vec<Arc<str>>,
    /// Audiences whose members get nothing.
    pub suppress: Vec<Arc<str>>,
    /// When messages are not sent.
    pub quiet_hours: Option<QuietHours>,
    /// Zone of the quiet hours.
    pub zone: Zone,
}

impl MessagePolicy {
    /// A policy with a channel chain, no suppression, no quiet hours.
    pub fn new<I, S>(campaign: impl Into<Arc<str>>, channels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Arc<str>>,
    {
        MessagePolicy {
            campaign: campaign.into(),
            channels: channels.into_iter().map(Into::into).collect(),
            suppress: Vec::new(),
            quiet_hours: None,
            zone: Zone::User,
        }
    }

    /// A campaign's policy, with a channel chain.
    pub fn for_campaign<I, S>(campaign: &CampaignDecl, channels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Arc<str>>,
    {
        MessagePolicy {
            suppress: campaign.suppress.clone(),
            quiet_hours: campaign.quiet_hours,
            zone: campaign.zone.clone(),
            ..MessagePolicy::new(campaign.name.clone(), channels)
        }
    }
}

/// One message to route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRequest<'a> {
    /// The user (after identity merging, the person id).
    pub user: &'a str,
    /// The user's zone from their profile, if known.
    pub user_zone: Option<&'a str>,
    /// When the message is decided.
    pub at: Timestamp,
    /// A unique id of the message.
    pub id: &'a str,
}

impl<'a> MessageRequest<'a> {
    /// A request with no zone and no id.
    pub fn new(user: &'a str, at: Timestamp) -> Self {
        MessageRequest {
            user,
            user_zone: None,
            at,
            id: "",
        }
    }
}

/// Why a channel was passed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The user cannot be reached on it.
    Unreachable,
    /// The user opted out of it.
    OptedOut,
    /// A cap that applies to it is full.
    Capped {
        /// The cap.
        cap: Arc<str>,
        /// Its limit.
        limit: u32,
        /// Sends already counted.
        count: u32,
    },
}

/// One channel passed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// The channel.
    pub channel: Arc<str>,
    /// Why.
    pub reason: SkipReason,
}

/// Why a message is not sent at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropReason {
    /// The user is in a suppression audience.
    Suppressed {
        /// The audience.
        audience: Arc<str>,
    },
    /// Decided inside quiet hours, with the drop policy.
    QuietHours,
    /// Every channel was skipped.
    NoChannel,
}

/// What to do with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Send now on this channel (already counted in its caps).
    Send {
        /// The channel.
        channel: Arc<str>,
    },
    /// Quiet hours: route it again at `until`.
    Defer {
        /// When quiet hours end.
        until: Timestamp,
    },
    /// Do not send.
    Drop(DropReason),
}

/// The routing of one message: what to do, and every channel skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    /// What to do.
    pub delivery: Delivery,
    /// Channels passed over, in order, with why.
    pub skipped: Vec<Skip>,
}

/// Routes a campaign's messages.
#[derive(Debug, Clone)]
pub struct MessageRouter {
    policy: MessagePolicy,
    caps: FrequencyCaps,
}

impl MessageRouter {
    /// Checks the policy's quiet hours and zone.
    pub fn new(policy: MessagePolicy, caps: FrequencyCaps) -> Result<Self, MessageError> {
        if let Some(q) = policy.quiet_hours {
            if q.start > 1440 || q.end > 1440 {
                return Err(MessageError::BadQuietHours {
                    start: q.start,
                    end: q.end,
                });
            }
        }
        if let Zone::Named(z) = &policy.zone {
            if jiff::tz::TimeZone::get(z).is_err() {
                return Err(MessageError::UnknownZone(z.clone()));
            }
        }
        Ok(MessageRouter { policy, caps })
    }

    /// The policy.
    pub fn policy(&self) -> &MessagePolicy {
        &self.policy
    }

    /// Decides what to do with one message; counts it in the caps of the
    /// chosen channel.
    pub fn route(
        &self,
        store: &dyn StateStore,
        audiences: &dyn Membership,
        reach: &dyn Reachability,
        req: &MessageRequest<'_>,
    ) -> Result<Routing, MessageError> {
        self.route_via(&self.policy.channels, store, audiences, reach, req)
    }

    /// [`route`](Self::route) along `channels` instead of the policy's
    /// (a message that names its own fallback chain).
    pub fn route_via(
        &self,
        channels: &[Arc<str>],
        store: &dyn StateStore,
        audiences: &dyn Membership,
        reach: &dyn Reachability,
        req: &MessageRequest<'_>,
    ) -> Result<Routing, MessageError> {
        let done = |delivery, skipped| Ok(Routing { delivery, skipped });
        if let Some(audience) = self
            .policy
            .suppress
            .iter()
            .find(|a| audiences.is_member(a, req.user))
        {
            let reason = DropReason::Suppressed {
                audience: audience.clone(),
            };
            return done(Delivery::Drop(reason), vec![]);
        }
        if let Some(q) = self.policy.quiet_hours {
            let zone = match &self.policy.zone {
                Zone::Named(z) => z,
                Zone::User => req
                    .user_zone
                    .filter(|z| jiff::tz::TimeZone::get(z).is_ok())
                    .unwrap_or("UTC"),
            };
            if let Some(until) = quiet_until(req.at, zone, q)? {
                let delivery = match q.policy {
                    QuietPolicy::Defer => Delivery::Defer { until },
                    QuietPolicy::Drop => Delivery::Drop(DropReason::QuietHours),
                };
                return done(delivery, vec![]);
            }
        }
        let mut skipped = Vec::new();
        for channel in channels {
            let skip = |reason| Skip {
                channel: channel.clone(),
                reason,
            };
            if !reach.reachable(req.user, channel) {
                skipped.push(skip(SkipReason::Unreachable));
                continue;
            }
            if reach.opted_out(req.user, channel) {
                skipped.push(skip(SkipReason::OptedOut));
                continue;
            }
            let send = SendAttempt {
                user: req.user,
                channel,
                campaign: &self.policy.campaign,
                user_zone: req.user_zone,
                at: req.at,
                id: req.id,
            };
            match self.caps.check_and_count(store, &send, audiences)? {
                CapOutcome::Allowed { .. } => {
                    return done(
                        Delivery::Send {
                            channel: channel.clone(),
                        },
                        skipped,
                    )
                }
                CapOutcome::Capped { cap, limit, count } => {
                    skipped.push(skip(SkipReason::Capped { cap, limit, count }));
                }
            }
        }
        done(Delivery::Drop(DropReason::NoChannel), skipped)
    }
}

/// If `at` falls in quiet hours in `zone`, the instant they end.
///
/// ```
/// use nudge_core::decl::{QuietHours, QuietPolicy};
/// use nudge_core::primitives::message::quiet_until;
/// let night = QuietHours { start: 22 * 60, end: 8 * 60, policy: QuietPolicy::Defer };
/// // 23:30 in Shanghai: quiet until 08:00 the next morning.
/// let until = quiet_until("2026-11-23T15:30:00Z".parse()?, "Asia/Shanghai", night)?;
/// assert_eq!(until.map(|t| t.to_string()), Some("2026-11-24T00:00:00Z".into()));
/// assert_eq!(quiet_until("2026-11-23T04:00:00Z".parse()?, "Asia/Shanghai", night)?, None);
/// Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn quiet_until(
    at: Timestamp,
    zone: &str,
    quiet: QuietHours,
) -> Result<Option<Timestamp>, MessageError> {
    let tz = jiff::tz::TimeZone::get(zone).map_err(|_| MessageError::UnknownZone(zone.into()))?;
    let range = || MessageError::OutOfRange(at);
    let local = jiff::Timestamp::from_millisecond(at.as_millis())
        .map_err(|_| range())?
        .to_zoned(tz.clone())
        .datetime();
    let minute = i32::from(local.hour()) * 60 + i32::from(local.minute());
    let (start, end) = (i32::from(quiet.start), i32::from(quiet.end));
    let quiet_now = match start.cmp(&end) {
        std::cmp::Ordering::Equal => false,
        std::cmp::Ordering::Less => start <= minute && minute < end,
        std::cmp::Ordering::Greater => minute >= start || minute < end,
    };
    if !quiet_now {
        return Ok(None);
    }
    // Quiet hours end at `end` today if that is still ahead, else tomorrow.
    let day = if minute < end {
        local.date()
    } else {
        local.date().tomorrow().map_err(|_| range())?
    };
    let end_local = day
        .at(0, 0, 0, 0)
        .checked_add(i64::from(end).minutes())
        .map_err(|_| range())?;
    // In a daylight-saving gap, the first instant after it. In a repeated
    // hour, the end that is still ahead: at 01:15 after the clocks went
    // back, quiet hours ending at 01:30 end at the second 01:30.
    let earlier = end_local.to_zoned(tz.clone()).map_err(|_| range())?;
    let mut until = earlier.timestamp().as_millisecond();
    if let jiff::tz::AmbiguousOffset::Gap { .. } = tz.to_ambiguous_zoned(end_local).offset() {
        // A time in the gap reads as one past it (02:30 as 03:30); the
        // clocks jumped at the transition just before that.
        if let Some(t) = tz.preceding(earlier.timestamp()).next() {
            until = t.timestamp().as_millisecond();
        }
    }
    if until <= at.as_millis() {
        let later = tz
            .to_ambiguous_zoned(end_local)
            .later()
            .map_err(|_| range())?;
        until = later.timestamp().as_millisecond();
    }
    Ok(Some(Timestamp::from_millis(until.max(at.as_millis() + 1))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn quiet(start: u16, end: u16) -> QuietHours {
        QuietHours {
            start,
            end,
            policy: QuietPolicy::Defer,
        }
    }

    #[test]
    fn quiet_hours_within_one_day() {
        let q = quiet(12 * 60, 14 * 60);
        assert_eq!(
            quiet_until(ts("2026-01-01T11:59:59Z"), "UTC", q).unwrap(),
            None
        );
        assert_eq!(
            quiet_until(ts("2026-01-01T12:00:00Z"), "UTC", q).unwrap(),
            Some(ts("2026-01-01T14:00:00Z"))
        );
        assert_eq!(
            quiet_until(ts("2026-01-01T14:00:00Z"), "UTC", q).unwrap(),
            None
        );
        assert_eq!(
            quiet_until(ts("2026-01-01T12:00:00Z"), "UTC", quiet(5, 5)).unwrap(),
            None
        );
    }

    /// After the clocks go back, an end time in the repeated hour is the
    /// one still ahead, never one in the past.
    #[test]
    fn quiet_hours_ending_in_a_repeated_hour_end_ahead() {
        // 2026-11-01 in New York: 01:00-01:59 happens twice; 06:15Z is
        // 01:15 EST, the second time round.
        let q = quiet(22 * 60, 90);
        let until = quiet_until(ts("2026-11-01T06:15:00Z"), "America/New_York", q).unwrap();
        assert_eq!(until, Some(ts("2026-11-01T06:30:00Z")));
        // The first time round (01:15 EDT, 05:15Z) they end at 01:30 EDT.
        let until = quiet_until(ts("2026-11-01T05:15:00Z"), "America/New_York", q).unwrap();
        assert_eq!(until, Some(ts("2026-11-01T05:30:00Z")));
    }

    #[test]
    fn quiet_hours_before_midnight_end_the_next_morning_across_dst() {
        // New York springs forward on 2026-03-08 at 02:00: 07:00 local is
        // then 11:00 UTC, not 12:00.
        let q = quiet(21 * 60, 7 * 60);
        assert_eq!(
            quiet_until(ts("2026-03-08T03:00:00Z"), "America/New_York", q).unwrap(),
            Some(ts("2026-03-08T11:00:00Z"))
        );
        // Ending at 02:30, inside the gap: the first instant after it,
        // 03:00 EDT (07:00 UTC), not 03:30.
        let q = quiet(60, 150);
        assert_eq!(
            quiet_until(ts("2026-03-08T06:30:00Z"), "America/New_York", q).unwrap(),
            Some(ts("2026-03-08T07:00:00Z"))
        );
        // The same from before midnight.
        let q = quiet(22 * 60, 150);
        assert_eq!(
            quiet_until(ts("2027-03-14T04:00:00Z"), "America/New_York", q).unwrap(),
            Some(ts("2027-03-14T07:00:00Z"))
        );
    }

    #[test]
    fn bad_policies_are_refused() {
        let mut p = MessagePolicy::new("c", ["sms"]);
        p.quiet_hours = Some(quiet(0, 1441));
        let caps = FrequencyCaps::new(vec![]).unwrap();
        assert!(matches!(
            MessageRouter::new(p.clone(), caps.clone()),
            Err(MessageError::BadQuietHours { .. })
        ));
        p.quiet_hours = None;
        p.zone = Zone::Named("Nowhere/Land".into());
        assert!(matches!(
            MessageRouter::new(p, caps),
            Err(MessageError::UnknownZone(_))
        ));
    }
}
