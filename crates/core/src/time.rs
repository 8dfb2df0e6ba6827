//! Durations and timestamps, both in whole milliseconds.
//!
//! Rules speak of time in literals such as `10m` or `7d`; events carry
//! timestamps. Both are plain `i64` milliseconds underneath so that window
//! arithmetic on the hot path is integer arithmetic.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A span of time in milliseconds.
///
/// ```
/// use nudge_core::Duration;
/// let d: Duration = "90m".parse()?;
/// assert_eq!(d.as_millis(), 90 * 60 * 1000);
/// assert_eq!(d.to_string(), "90m");
/// assert_eq!(Duration::from_millis(36 * 3_600_000).to_string(), "36h");
/// Ok::<(), nudge_core::DurationError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Duration(i64);

/// The units a duration literal may use, largest first so formatting picks the
/// largest unit that divides the value exactly. Weeks are read but printed as
/// days: marketers say "7 days" and "30 days", not "1 week" and "30 days".
const UNITS: [(&str, i64); 6] = [
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Why a duration literal was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// The text has no leading digits.
    #[error("a duration starts with a number, as in `10m`")]
    MissingNumber,
    /// The unit is not one of `ms`, `s`, `m`, `h`, `d`, `w`.
    #[error("unknown duration unit `{0}`: use ms, s, m, h, d or w")]
    UnknownUnit(String),
    /// The value does not fit in 64-bit milliseconds.
    #[error("duration is too large")]
    Overflow,
}

impl Duration {
    /// The zero duration.
    pub const ZERO: Duration = Duration(0);

    /// A duration of `ms` milliseconds.
    pub const fn from_millis(ms: i64) -> Self {
        Duration(ms)
    }

    /// A duration of `s` seconds.
    pub const fn from_secs(s: i64) -> Self {
        Duration(s * 1000)
    }

    /// The length in milliseconds.
    pub const fn as_millis(self) -> i64 {
        self.0
    }
}

impl std::str::FromStr for Duration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(DurationError::MissingNumber);
        }
        let (num, unit) = s.split_at(digits);
        let n: i64 = num.parse().map_err(|_| DurationError::Overflow)?;
        let scale = UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(|| DurationError::UnknownUnit(unit.to_string()))?;
        n.checked_mul(scale)
            .map(Duration)
            .ok_or(DurationError::Overflow)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        for (unit, scale) in UNITS.into_iter().skip(1) {
            let scale = scale as u64;
            if abs.is_multiple_of(scale) {
                return write!(f, "{sign}{}{unit}", abs / scale);
            }
        }
        unreachable!("every value is a whole number of milliseconds")
    }
}

/// An instant, in milliseconds since the Unix epoch (UTC).
///
/// ```
/// use nudge_core::Timestamp;
/// let t: Timestamp = "2026-11-22T08:30:00Z".parse()?;
/// assert_eq!(t.to_string(), "2026-11-22T08:30:00Z");
/// Ok::<(), nudge_core::TimestampError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

/// Why a timestamp text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp `{text}`: expected RFC 3339, as in `2026-11-22T08:30:00Z` ({reason})")]
pub struct TimestampError {
    text: String,
    reason: String,
}

impl Timestamp {
    /// The instant `ms` milliseconds after the Unix epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// This instant moved by `d`, or `None` on overflow.
    pub fn checked_add(self, d: Duration) -> Option<Timestamp> {
        self.0.checked_add(d.0).map(Timestamp)
    }
}

impl std::str::FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ts: jiff::Timestamp = s.parse().map_err(|e: jiff::Error| TimestampError {
            text: s.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Timestamp(ts.as_millisecond()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match jiff::Timestamp::from_millisecond(self.0) {
            Ok(ts) => write!(f, "{ts}"),
            Err(_) => write!(f, "@{}ms", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_every_unit() {
        for (text, ms) in [
            ("500ms", 500),
            ("30s", 30_000),
            ("10m", 600_000),
            ("2h", 7_200_000),
            ("7d", 604_800_000),
            ("1w", 604_800_000),
        ] {
            assert_eq!(text.parse::<Duration>().unwrap().as_millis(), ms, "{text}");
        }
    }

    #[test]
    fn rejects_bad_literals() {
        assert_eq!("m".parse::<Duration>(), Err(DurationError::MissingNumber));
        assert_eq!(
            "10y".parse::<Duration>(),
            Err(DurationError::UnknownUnit("y".into()))
        );
        assert_eq!(
            "99999999999999999999d".parse::<Duration>(),
            Err(DurationError::Overflow)
        );
        assert_eq!(
            "999999999999999w".parse::<Duration>(),
            Err(DurationError::Overflow)
        );
    }

    #[test]
    fn formats_with_largest_exact_unit() {
        assert_eq!(Duration::from_millis(0).to_string(), "0s");
        assert_eq!(Duration::from_millis(90_000).to_string(), "90s");
        assert_eq!(Duration::from_millis(86_400_000).to_string(), "1d");
        assert_eq!(Duration::from_millis(1_500).to_string(), "1500ms");
        assert_eq!("1w".parse::<Duration>().unwrap().to_string(), "7d");
        assert_eq!("14d".parse::<Duration>().unwrap().to_string(), "14d");
    }

    #[test]
    fn timestamps_round_trip_and_reject_garbage() {
        let t: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(t.as_millis(), 1_767_225_600_000);
        assert!("yesterday".parse::<Timestamp>().is_err());
    }

    proptest! {
        #[test]
        fn duration_display_parses_back(ms in 0i64..10_000_000_000_000) {
            let d = Duration::from_millis(ms);
            prop_assert_eq!(d.to_string().parse::<Duration>().unwrap(), d);
        }
    }
}

/// The civil date and time of an instant in a time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// Year.
    pub year: i16,
    /// Month, 1 to 12.
    pub month: i8,
    /// Day of the month, 1 to 31.
    pub day: i8,
    /// Hour, 0 to 23.
    pub hour: i8,
    /// Day of the week, 1 (Monday) to 7 (Sunday).
    pub weekday: i8,
}

/// The civil time of `ts` in the IANA zone `zone`, or `None` if the zone is
/// unknown or the instant out of range.
///
/// ```
/// use nudge_core::{civil_time, Timestamp};
/// let t: Timestamp = "2026-11-22T20:00:00Z".parse()?;
/// let c = civil_time(t, "Asia/Shanghai").unwrap();
/// assert_eq!((c.month, c.day, c.hour, c.weekday), (11, 23, 4, 1));
/// Ok::<(), nudge_core::TimestampError>(())
/// ```
pub fn civil_time(ts: Timestamp, zone: &str) -> Option<Civil> {
    let tz = jiff::tz::TimeZone::get(zone).ok()?;
    let dt = jiff::Timestamp::from_millisecond(ts.0)
        .ok()?
        .to_zoned(tz)
        .datetime();
    Some(Civil {
        year: dt.year(),
        month: dt.month(),
        day: dt.day(),
        hour: dt.hour(),
        weekday: dt.weekday().to_monday_one_offset(),
    })
}

/// A calendar unit, for [`next_civil_boundary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CivilUnit {
    /// The start of the next hour.
    Hour,
    /// The next midnight.
    Day,
}

/// The first instant after `ts` at which, in the IANA zone `zone`, a new
/// hour or day begins; `None` if the zone is unknown or the instant out of
/// range. Daylight-saving changes are honoured.
///
/// ```
/// use nudge_core::{next_civil_boundary, CivilUnit, Timestamp};
/// let t: Timestamp = "2026-11-22T20:30:00Z".parse()?;
/// let midnight = next_civil_boundary(t, "Asia/Shanghai", CivilUnit::Day).unwrap();
/// assert_eq!(midnight.to_string(), "2026-11-23T16:00:00Z");
/// let t: Timestamp = "2026-11-22T20:10:00Z".parse()?;
/// let hour = next_civil_boundary(t, "Asia/Kolkata", CivilUnit::Hour).unwrap();
/// assert_eq!(hour.to_string(), "2026-11-22T20:30:00Z", "Kolkata is 5h30 ahead");
/// Ok::<(), nudge_core::TimestampError>(())
/// ```
pub fn next_civil_boundary(ts: Timestamp, zone: &str, unit: CivilUnit) -> Option<Timestamp> {
    use jiff::ToSpan;
    let tz = jiff::tz::TimeZone::get(zone).ok()?;
    let zoned = jiff::Timestamp::from_millisecond(ts.0).ok()?.to_zoned(tz);
    let next = match unit {
        CivilUnit::Day => zoned.tomorrow().ok()?.start_of_day().ok()?,
        CivilUnit::Hour => zoned
            .with()
            .minute(0)
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .ok()?
            .checked_add(1.hour())
            .ok()?,
    };
    Some(Timestamp(next.timestamp().as_millisecond()))
}

/// Whether `zone` names a time zone in the IANA database.
pub fn is_known_zone(zone: &str) -> bool {
    jiff::tz::TimeZone::get(zone).is_ok()
}
