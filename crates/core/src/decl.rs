//! Checked declarations of the marketing primitives: audiences, caps, coupon
//! templates, state machines, experiments and campaigns.
//!
//! The rule language declares them; this module holds their checked form.
//! Their behaviour (issuing, capping, transitions, bucketing) builds on these
//! values and lives beside them in `nudge-core`.

use crate::action::{ActionSignature, FunctionSignature};
use crate::time::Duration;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A named set of users: loaded by the host (`audience vip`), or computed
/// from others (`audience a = x and not y`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudienceDecl {
    /// Audience name.
    pub name: Arc<str>,
    /// `None` for an audience the host loads; the set algebra otherwise.
    pub definition: Option<AudienceExpr>,
}

/// Set algebra over audiences.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AudienceExpr {
    /// Another audience, by name.
    Named(Arc<str>),
    /// Members of both.
    And(Box<AudienceExpr>, Box<AudienceExpr>),
    /// Members of either.
    Or(Box<AudienceExpr>, Box<AudienceExpr>),
    /// Members of the first and not the second.
    AndNot(Box<AudienceExpr>, Box<AudienceExpr>),
    /// Members of exactly one.
    Xor(Box<AudienceExpr>, Box<AudienceExpr>),
}

/// A calendar period, reset at its start in a time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalendarUnit {
    /// From midnight to midnight.
    Day,
    /// From Monday 00:00.
    Week,
    /// From the first of the month.
    Month,
    /// From the first of January.
    Year,
}

impl CalendarUnit {
    /// The word used in rule files.
    pub fn name(self) -> &'static str {
        match self {
            CalendarUnit::Day => "day",
            CalendarUnit::Week => "week",
            CalendarUnit::Month => "month",
            CalendarUnit::Year => "year",
        }
    }

    /// Parses `day`, `week`, `month` or `year`.
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "day" => CalendarUnit::Day,
            "week" => CalendarUnit::Week,
            "month" => CalendarUnit::Month,
            "year" => CalendarUnit::Year,
            _ => return None,
        })
    }
}

/// The period a limit counts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// The last `Duration`, sliding.
    Rolling(Duration),
    /// The current calendar unit in the cap's time zone.
    Calendar(CalendarUnit),
    /// For ever.
    Lifetime,
}

/// "At most `count` per `period`".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Limit {
    /// How many.
    pub count: u32,
    /// Over what period.
    pub period: Period,
}

/// The time zone calendar periods are reckoned in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Zone {
    /// The user's own time zone (from their profile), UTC if unknown.
    User,
    /// A fixed IANA time zone, e.g. `Asia/Shanghai`.
    Named(Arc<str>),
}

/// Which sends a frequency cap counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapScope {
    /// Every message to the user.
    All,
    /// Messages on one channel.
    Channel(Arc<str>),
    /// Messages of one campaign.
    Campaign(Arc<str>),
}

/// A frequency cap: at most `limit` sends per user within `scope`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapDecl {
    /// Cap name, reported when it suppresses a send.
    pub name: Arc<str>,
    /// The limit.
    pub limit: Limit,
    /// Which sends count.
    pub scope: CapScope,
    /// Zone of calendar periods.
    pub zone: Zone,
    /// Audiences whose members the cap does not apply to (an allow-list).
    pub exempt: Vec<Arc<str>>,
}

/// A coupon template: what one coupon is worth and how many may be issued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CouponDecl {
    /// Template name.
    pub name: Arc<str>,
    /// Face value of one coupon, counted against the budget.
    pub value: f64,
    /// Smallest order the coupon applies to, if any.
    pub min_spend: Option<f64>,
    /// A percentage discount (in basis points) rather than a fixed amount;
    /// `value` is then what one coupon is reckoned at against the budget.
    pub discount_bp: Option<u32>,
    /// How many may be issued in all; `None` for unlimited.
    pub stock: Option<u64>,
    /// Total face value that may be issued; `None` for unlimited.
    pub budget: Option<f64>,
    /// How many one user may get, and over what period.
    pub per_user: Option<Limit>,
    /// How long an issued coupon stays valid.
    pub valid_for: Option<Duration>,
    /// Sub-stocks the stock is split into to spread a hot key.
    pub shards: u32,
}

/// A state machine over users: states and allowed transitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineDecl {
    /// Machine name; also the fact type rules match the current state with.
    pub name: Arc<str>,
    /// All states, in order of first mention.
    pub states: Vec<Arc<str>>,
    /// Index into `states` of the state a new user is in.
    pub initial: usize,
    /// Allowed `(from, to)` moves, as indices into `states`.
    pub transitions: Vec<(usize, usize)>,
}

impl MachineDecl {
    /// Index of a state by name.
    pub fn state(&self, name: &str) -> Option<usize> {
        self.states.iter().position(|s| &**s == name)
    }

    /// Whether `from → to` is allowed.
    pub fn allows(&self, from: usize, to: usize) -> bool {
        self.transitions.contains(&(from, to))
    }
}

/// An experiment: users bucketed by hash into arms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExperimentDecl {
    /// Experiment name.
    pub name: Arc<str>,
    /// Experiments of one layer never share a user; `None` is a layer of its own.
    pub layer: Option<Arc<str>>,
    /// Share of the layer's users in this experiment, in basis points (1/100 %).
    pub traffic_bp: u32,
    /// Arms and their weights in basis points; the weights add up to 10,000.
    pub arms: Vec<(Arc<str>, u32)>,
    /// Hash seed; defaults to the experiment name.
    pub seed: Arc<str>,
}

/// What happens to a message decided inside quiet hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuietPolicy {
    /// Send it when quiet hours end.
    Defer,
    /// Do not send it.
    Drop,
}

/// Quiet hours: minutes after local midnight, `start` to `end`, wrapping
/// past midnight when `end < start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct QuietHours {
    /// First quiet minute of the day.
    pub start: u16,
    /// First minute after quiet hours.
    pub end: u16,
    /// Defer or drop.
    pub policy: QuietPolicy,
}

/// A campaign: the rules tagged with it share its settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignDecl {
    /// Campaign name; idempotency keys are per (campaign, user).
    pub name: Arc<str>,
    /// At most this many decisions per user for the campaign, over its period.
    pub per_user: Option<Limit>,
    /// Audiences whose members get nothing from the campaign.
    pub suppress: Vec<Arc<str>>,
    /// When messages are not sent.
    pub quiet_hours: Option<QuietHours>,
    /// Zone for quiet hours and calendar limits.
    pub zone: Zone,
}

/// Every checked declaration of a ruleset, besides its fact types and rules.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Declarations {
    /// Audiences.
    pub audiences: Vec<AudienceDecl>,
    /// Frequency caps.
    pub caps: Vec<CapDecl>,
    /// Coupon templates.
    pub coupons: Vec<CouponDecl>,
    /// State machines.
    pub machines: Vec<MachineDecl>,
    /// Experiments.
    pub experiments: Vec<ExperimentDecl>,
    /// Campaigns.
    pub campaigns: Vec<CampaignDecl>,
    /// Host actions declared with `action`.
    pub actions: Vec<ActionSignature>,
    /// Host functions declared with `function`.
    pub functions: Vec<FunctionSignature>,
    /// For each rule (by position in the rule set), its campaign's index.
    pub rule_campaigns: Vec<Option<usize>>,
}

impl Declarations {
    /// Total number of declarations (not counting per-rule links).
    pub fn len(&self) -> usize {
        self.audiences.len()
            + self.caps.len()
            + self.coupons.len()
            + self.machines.len()
            + self.experiments.len()
            + self.campaigns.len()
            + self.actions.len()
            + self.functions.len()
    }

    /// Whether nothing is declared.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_transitions_are_directed() {
        let m = MachineDecl {
            name: "m".into(),
            states: vec!["a".into(), "b".into()],
            initial: 0,
            transitions: vec![(0, 1)],
        };
        assert!(m.allows(0, 1));
        assert!(!m.allows(1, 0));
        assert_eq!(m.state("b"), Some(1));
    }

    #[test]
    fn calendar_units_round_trip() {
        for u in [
            CalendarUnit::Day,
            CalendarUnit::Week,
            CalendarUnit::Month,
            CalendarUnit::Year,
        ] {
            assert_eq!(CalendarUnit::from_name(u.name()), Some(u));
        }
        assert_eq!(CalendarUnit::from_name("fortnight"), None);
    }
}
