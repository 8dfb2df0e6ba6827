//! The built-in actions, checked: what becomes of a `coupon`, `message`,
//! `transition`, `split` or `link_identity` decision once the campaign's
//! suppression lists and per-user limit, the coupon's stock and budget, the
//! frequency caps, the quiet hours and the state machine have had their say.
//!
//! [`Primitives`] is built once per ruleset from its declarations and a
//! [`StateStore`], and shared by every session and thread: the store makes
//! the counting atomic. What a decider needs from the session that is
//! deciding (audience membership, reachability, a user's zone, a machine's
//! current state) comes through [`Surroundings`].
//!
//! Every outcome is an [`Outcome`]: `done`, or `suppressed` with a reason
//! code and details naming what stopped it, or `deferred` until quiet hours
//! end, or `failed` (an illegal transition, a store error).
//!
//! | reason | action | meaning |
//! |---|---|---|
//! | `suppressed` | coupon, message | the user is in a campaign suppression audience (`audience`) |
//! | `campaign_limit` | coupon, message | the campaign's `per_user` limit is reached (`limit`) |
//! | `out_of_stock`, `budget_spent`, `per_user_limit` | coupon | the coupon template refused |
//! | `already_issued` | coupon | a retry or replay of a claim: the first coupon (`coupon_id`) stands |
//! | `capped` | message | every channel was capped (`skipped`, `cap`) |
//! | `unreachable` | message | no channel reaches the user (`skipped`) |
//! | `no_channel` | message | every channel was skipped, some capped and some unreachable or opted out (`skipped`) |
//! | `quiet_hours` | message | decided in quiet hours with `drop` |
//! | `not_in_experiment` | split | the user is outside the experiment's traffic or layer slice |
//! | `already_in_state` | transition | the user is in that state already |
//!
//! And failed: `illegal_transition` (the machine does not allow the move;
//! `from`, `to`), `unknown_state` (the machine's fact holds a state the
//! machine does not declare; `state`), `before_entry` (the transition is
//! dated before the current state was entered; `entered_at`).

use super::audience::Membership;
use super::caps::{FrequencyCaps, SendAttempt};
use super::coupon::{CouponIssuer, IssueOutcome, IssueRequest, Refusal};
use super::experiment::{Assignment, Experiments};
use super::identity::{Identifier, IdentityGraph};
use super::machine::{Machine, MachineError};
use super::message::{
    Delivery, DropReason, MessagePolicy, MessageRequest, MessageRouter, SkipReason,
};
use super::store::StateStore;
use crate::decision::{Effect, Outcome};
use crate::decl::{CapDecl, CapScope, Declarations};
use crate::schema::{Schema, TypeId};
use crate::time::Timestamp;
use crate::value::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

/// The kind identity links give every identifier: persons are named by the
/// smallest identifier of their group.
const ID_KIND: &str = "id";

/// Every this many decisions, the store is asked to drop expired keys (a
/// `MemoryStore` keeps them until touched), so a long-running process holds
/// only the counters of live windows. The purge runs at the earliest
/// decision time of those decisions, so that a session whose clock is
/// behind the others' does not lose counters it still reads.
pub const PURGE_EVERY: u64 = 1 << 16;

/// Why a ruleset's declarations cannot be put to work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrimitivesError {
    /// A cap or campaign names an unknown time zone, or an empty window.
    #[error("{0}")]
    Caps(#[from] super::caps::CapError),
    /// An experiment's arms or traffic do not add up.
    #[error("{0}")]
    Experiment(#[from] super::experiment::ExperimentError),
    /// A machine declaration is inconsistent.
    #[error("{0}")]
    Machine(#[from] MachineError),
    /// A campaign's quiet hours or zone are wrong.
    #[error("{0}")]
    Message(#[from] super::message::MessageError),
    /// A coupon template is inconsistent.
    #[error("{0}")]
    Coupon(#[from] super::coupon::CouponError),
    /// A machine has no fact type in the schema.
    #[error("machine `{0}` has no fact type")]
    NoMachineType(Arc<str>),
}

/// What a decider reads from the session deciding.
pub trait Surroundings {
    /// Audience membership (suppression lists, cap exemptions).
    fn audiences(&self) -> &dyn Membership;
    /// Whether `user` can be reached on `channel` (a token, a binding).
    fn reachable(&self, user: &str, channel: &str) -> bool {
        let _ = (user, channel);
        true
    }
    /// Whether `user` opted out of `channel`.
    fn opted_out(&self, user: &str, channel: &str) -> bool {
        let _ = (user, channel);
        false
    }
    /// The user's IANA time zone, if known.
    fn user_zone(&self, user: &str) -> Option<Arc<str>> {
        let _ = user;
        None
    }
    /// The state `user` is in in machine `machine` (its fact type `ty`),
    /// and when it was entered; `None` for a user the machine has not seen.
    fn machine_state(&self, machine: TypeId, user: &str) -> Option<(Arc<str>, Timestamp)> {
        let _ = (machine, user);
        None
    }
}

/// One decision to check.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The action: `coupon`, `message`, `transition`, `split`,
    /// `link_identity`, or a host action (carried out unchecked).
    pub action: &'a str,
    /// The rule's position in the ruleset.
    pub rule: usize,
    /// The rule's name.
    pub rule_name: &'a str,
    /// Arguments by name.
    pub args: &'a [(&'a str, &'a Value)],
    /// When the decision is made.
    pub time: Timestamp,
    /// Decisions of one rule firing share this number.
    pub firing: u64,
    /// Whether this decides a deferred decision again: the campaign's
    /// checks were made the first time.
    pub retry: bool,
    /// A digest of what the rule matched (the types and values of its
    /// facts), the same in every session and process: with the rule, it
    /// identifies a claim, so that a retry or replay issues nothing new.
    pub match_digest: u64,
}

impl Request<'_> {
    fn arg(&self, name: &str) -> Option<&Value> {
        self.args.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    fn text(&self, name: &str) -> Option<&str> {
        match self.arg(name) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }
}

/// What one session remembers between the decisions of a rule firing: the
/// campaign checks are made once per firing, so a rule that issues a coupon
/// and sends a message counts one touch.
#[derive(Debug, Default)]
pub struct FiringMemo {
    firing: u64,
    checked: Vec<Checked>,
    /// The identifiers of the person the touch under way addresses, other
    /// than its name.
    others: Vec<Arc<str>>,
}

/// The campaign checks of one (campaign, person) in the firing under way.
#[derive(Debug)]
struct Checked {
    campaign: usize,
    user: Arc<str>,
    /// Why the firing's touches of this person are refused, if they are.
    refusal: Option<Outcome>,
    /// Whether the campaign's `per_user` limit is counted (or needs no
    /// counting): a firing counts one touch.
    counted: bool,
}

impl FiringMemo {
    fn get(&mut self, campaign: usize, user: &str) -> Option<&mut Checked> {
        self.checked
            .iter_mut()
            .find(|k| k.campaign == campaign && *k.user == *user)
    }
}

/// Coupon issuers by (campaign, template index), made on first use.
type Issuers = Mutex<HashMap<(Arc<str>, usize), Arc<CouponIssuer>>>;

/// The built-in actions of a ruleset, ready to decide.
pub struct Primitives {
    decls: Arc<Declarations>,
    store: Arc<dyn StateStore>,
    caps: FrequencyCaps,
    /// Each campaign's `per_user` limit, as a cap scoped to it.
    campaign_limits: Vec<Option<FrequencyCaps>>,
    /// Each campaign's message router, then one for rules of no campaign.
    routers: Vec<MessageRouter>,
    /// For each campaign with a `per_user` limit, a router that counts the
    /// limit with the caps of the channel a message goes out on, so that a
    /// message dropped, unreachable or capped when first decided does not
    /// use it up (a deferred one takes its unit when deferred).
    limited_routers: Vec<Option<MessageRouter>>,
    experiments: Experiments,
    machines: HashMap<Arc<str>, (Machine, TypeId)>,
    coupon_index: HashMap<Arc<str>, usize>,
    issuers: Issuers,
    identity: RwLock<IdentityGraph>,
    decided: std::sync::atomic::AtomicU64,
    /// The earliest decision time since the last purge, in milliseconds.
    earliest: std::sync::atomic::AtomicI64,
}

impl std::fmt::Debug for Primitives {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Primitives")
            .field("caps", &self.caps.caps().len())
            .field("campaigns", &self.decls.campaigns.len())
            .field("coupons", &self.decls.coupons.len())
            .finish_non_exhaustive()
    }
}

impl Primitives {
    /// Checks the declarations and prepares their deciders over `store`.
    pub fn new(
        decls: Arc<Declarations>,
        schema: &Schema,
        store: Arc<dyn StateStore>,
    ) -> Result<Primitives, PrimitivesError> {
        let caps = FrequencyCaps::new(decls.caps.clone())?;
        let mut campaign_limits = Vec::new();
        let mut routers = Vec::new();
        let mut limited_routers = Vec::new();
        for c in &decls.campaigns {
            let limit = c.per_user.map(|limit| CapDecl {
                name: format!("campaign:{}", c.name).into(),
                limit,
                scope: CapScope::Campaign(c.name.clone()),
                zone: c.zone.clone(),
                exempt: vec![],
            });
            campaign_limits.push(match &limit {
                Some(l) => Some(FrequencyCaps::new(vec![l.clone()])?),
                None => None,
            });
            // Suppression is checked before routing, once per firing.
            let mut policy = MessagePolicy::for_campaign(c, Vec::<Arc<str>>::new());
            policy.suppress.clear();
            limited_routers.push(match limit {
                // First, so that a full limit is the cap a refusal names.
                Some(l) => {
                    let with_limit = std::iter::once(l).chain(decls.caps.iter().cloned());
                    let caps = FrequencyCaps::new(with_limit.collect())?;
                    Some(MessageRouter::new(policy.clone(), caps)?)
                }
                None => None,
            });
            routers.push(MessageRouter::new(policy, caps.clone())?);
        }
        routers.push(MessageRouter::new(
            MessagePolicy::new("", Vec::<Arc<str>>::new()),
            caps.clone(),
        )?);
        let experiments = Experiments::new(&decls.experiments)?;
        let mut machines = HashMap::new();
        for m in &decls.machines {
            let ty = schema
                .id(&m.name)
                .ok_or_else(|| PrimitivesError::NoMachineType(m.name.clone()))?;
            machines.insert(m.name.clone(), (Machine::new(m.clone())?, ty));
        }
        let coupon_index = decls
            .coupons
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        // Templates are checked now, not at the first issue.
        for c in &decls.coupons {
            CouponIssuer::new("", c.clone())?;
        }
        Ok(Primitives {
            decls,
            store,
            caps,
            campaign_limits,
            routers,
            limited_routers,
            experiments,
            machines,
            coupon_index,
            issuers: Mutex::new(HashMap::new()),
            identity: RwLock::new(IdentityGraph::new()),
            decided: std::sync::atomic::AtomicU64::new(0),
            earliest: std::sync::atomic::AtomicI64::new(i64::MAX),
        })
    }

    /// The declarations.
    pub fn declarations(&self) -> &Declarations {
        &self.decls
    }

    /// The state store.
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    /// The person an identifier belongs to: itself until a `link_identity`
    /// joins it to others, then the smallest identifier of its group.
    pub fn person(&self, id: &str) -> Arc<str> {
        let guard = self.identity.read().unwrap_or_else(|e| e.into_inner());
        if guard.is_empty() {
            return id.into();
        }
        match guard.person(&Identifier::new(ID_KIND, id)) {
            Some(p) => p.value().into(),
            None => id.into(),
        }
    }

    /// `id`'s person, and into `others` the person's identifiers other
    /// than its name (none until `id` is linked): names it may have had
    /// before a link renamed it. One look-up, under one lock.
    fn resolve(&self, id: &str, others: &mut Vec<Arc<str>>) -> Arc<str> {
        others.clear();
        let guard = self.identity.read().unwrap_or_else(|e| e.into_inner());
        if guard.is_empty() {
            return id.into();
        }
        let me = Identifier::new(ID_KIND, id);
        let Some(person) = guard.person(&me) else {
            return id.into();
        };
        let name = person.value();
        others.extend(
            guard
                .identifiers_of(&me)
                .filter(|i| i.value() != name)
                .map(|i| Arc::from(i.value())),
        );
        name.into()
    }

    /// Records that two identifiers belong to one person.
    pub fn link(&self, id: &str, same_as: &str) {
        let mut guard = self.identity.write().unwrap_or_else(|e| e.into_inner());
        guard.observe([
            Identifier::new(ID_KIND, id),
            Identifier::new(ID_KIND, same_as),
        ]);
    }

    /// Whether `action` is one this decides (the built-in actions); others
    /// come out of [`Primitives::decide`] carried out, unchecked.
    pub fn checks(action: &str) -> bool {
        matches!(
            action,
            "coupon" | "message" | "transition" | "split" | "link_identity"
        )
    }

    /// Decides one decision.
    pub fn decide(
        &self,
        req: &Request<'_>,
        env: &dyn Surroundings,
        memo: &mut FiringMemo,
    ) -> Outcome {
        use std::sync::atomic::Ordering::Relaxed;
        let now = req.time.as_millis();
        let earliest = self.earliest.fetch_min(now, Relaxed).min(now);
        if self.decided.fetch_add(1, Relaxed) % PURGE_EVERY == PURGE_EVERY - 1 {
            self.earliest.store(i64::MAX, Relaxed);
            self.store.purge_expired(Timestamp::from_millis(earliest));
        }
        match req.action {
            "coupon" => self.touch(req, env, memo, true, |user, memo| {
                self.coupon(req, env, user, &memo.others)
            }),
            // A message counts toward its campaign's limit when it goes out
            // (or is deferred), not before routing.
            "message" => self.touch(req, env, memo, false, |user, memo| {
                self.message(req, env, user, memo)
            }),
            // A machine's fact and an experiment's bucket belong to the
            // identifier the rule names, as the host's own records do.
            "transition" => match req.text("user") {
                Some(id) => self.transition(req, env, id),
                None => Outcome::failed("no user"),
            },
            "split" => match req.text("user") {
                Some(id) => self.split(req, id),
                None => Outcome::failed("no user"),
            },
            "link_identity" => match (req.text("id"), req.text("same_as")) {
                (Some(a), Some(b)) => {
                    self.link(a, b);
                    Outcome::done().with_detail("person", Value::Str(self.person(a)))
                }
                _ => Outcome::suppressed("no_identifier"),
            },
            _ => Outcome::done(),
        }
    }

    /// A touch (a coupon or a message): resolves the user to their person
    /// and makes the campaign's checks once per firing before `then`;
    /// `count`: the campaign's `per_user` limit is counted before `then`
    /// (a message counts it as it goes out).
    fn touch(
        &self,
        req: &Request<'_>,
        env: &dyn Surroundings,
        memo: &mut FiringMemo,
        count: bool,
        then: impl FnOnce(&str, &mut FiringMemo) -> Outcome,
    ) -> Outcome {
        let Some(id) = req.text("user") else {
            return Outcome::failed("no user").with_detail("argument", Value::from("user"));
        };
        let user = self.resolve(id, &mut memo.others);
        let campaign = self.decls.rule_campaigns.get(req.rule).copied().flatten();
        if let Some(c) = campaign {
            if let Some(refusal) = self.campaign_checks(req, env, memo, c, &user, count) {
                return refusal;
            }
        }
        let mut outcome = then(&user, memo);
        if *user != *id {
            outcome.details.push(("person".into(), Value::Str(user)));
        }
        outcome
    }

    /// The campaign's suppression lists, checked once per (firing,
    /// campaign, person), and with `count` its `per_user` limit, counted
    /// once per firing; `Some` refuses. A deferred decision decided again
    /// was counted the first time: only the suppression lists are checked
    /// again.
    fn campaign_checks(
        &self,
        req: &Request<'_>,
        env: &dyn Surroundings,
        memo: &mut FiringMemo,
        c: usize,
        user: &Arc<str>,
        count: bool,
    ) -> Option<Outcome> {
        if memo.firing != req.firing {
            memo.firing = req.firing;
            memo.checked.clear();
        }
        let found = memo
            .checked
            .iter()
            .position(|k| k.campaign == c && k.user == *user);
        let at = found.unwrap_or_else(|| {
            let decl = &self.decls.campaigns[c];
            let id = req.text("user").unwrap_or(user);
            let audiences = Either {
                env,
                id,
                others: &memo.others,
            };
            let refusal = decl
                .suppress
                .iter()
                .find(|a| audiences.is_member(a, user))
                .map(|a| {
                    Outcome::suppressed("suppressed")
                        .with_detail("campaign", Value::Str(decl.name.clone()))
                        .with_detail("audience", Value::Str(a.clone()))
                });
            memo.checked.push(Checked {
                campaign: c,
                user: user.clone(),
                refusal,
                counted: req.retry || self.campaign_limits[c].is_none(),
            });
            memo.checked.len() - 1
        });
        let checked = &memo.checked[at];
        if checked.refusal.is_some() || !count || checked.counted {
            return checked.refusal.clone();
        }
        let refusal = self.count_limit(req, env, c, user, req.time);
        let checked = &mut memo.checked[at];
        checked.counted = refusal.is_none();
        checked.refusal.clone_from(&refusal);
        refusal
    }

    /// Counts a touch at `at` in the campaign's `per_user` limit; `Some`
    /// when the limit is reached (nothing counted then).
    fn count_limit(
        &self,
        req: &Request<'_>,
        env: &dyn Surroundings,
        c: usize,
        user: &Arc<str>,
        at: Timestamp,
    ) -> Option<Outcome> {
        let limit = self.campaign_limits[c].as_ref()?;
        let id = req.text("user").unwrap_or(user);
        let audiences = Either {
            env,
            id,
            others: &[],
        };
        let zone = zone_of(env, req, user);
        let name = &self.decls.campaigns[c].name;
        let mut send = SendAttempt::new(user, "", name, at);
        send.user_zone = zone.as_deref();
        match limit.check_and_count(&*self.store, &send, &audiences) {
            Ok(o) if o.capped_by().is_none() => None,
            Ok(_) => Some(self.limit_reached(c)),
            Err(e) => Some(Outcome::failed(e.to_string())),
        }
    }

    /// The refusal of a touch over the campaign's `per_user` limit.
    fn limit_reached(&self, c: usize) -> Outcome {
        let campaign = &self.decls.campaigns[c];
        let count = campaign.per_user.map_or(0, |l| l.count);
        Outcome::suppressed("campaign_limit")
            .with_detail("campaign", Value::Str(campaign.name.clone()))
            .with_detail("limit", Value::Int(i64::from(count)))
    }

    fn issuer(&self, campaign: &Arc<str>, coupon: usize) -> Arc<CouponIssuer> {
        let mut map = self.issuers.lock().unwrap_or_else(|e| e.into_inner());
        map.entry((campaign.clone(), coupon))
            .or_insert_with(|| {
                // The template was checked when `Primitives` was built.
                let decl = self.decls.coupons[coupon].clone();
                Arc::new(
                    CouponIssuer::new(campaign.clone(), decl)
                        .unwrap_or_else(|e| unreachable!("checked template: {e}")),
                )
            })
            .clone()
    }

    /// The campaign a rule's coupons and idempotency keys belong to: its
    /// campaign, or the rule itself.
    fn campaign_name(&self, req: &Request<'_>) -> Arc<str> {
        match self.decls.rule_campaigns.get(req.rule).copied().flatten() {
            Some(c) => self.decls.campaigns[c].name.clone(),
            None => format!("rule:{}", req.rule_name).into(),
        }
    }

    /// `others`: the person's other names, whose claims count toward the
    /// template's per-user limit.
    fn coupon(
        &self,
        req: &Request<'_>,
        env: &dyn Surroundings,
        user: &str,
        others: &[Arc<str>],
    ) -> Outcome {
        let Some(template) = req.text("template") else {
            return Outcome::failed("no template");
        };
        let Some(&index) = self.coupon_index.get(template) else {
            return Outcome::failed(format!("no coupon template `{template}`"));
        };
        let issuer = self.issuer(&self.campaign_name(req), index);
        let zone = zone_of(env, req, user);
        let occasion = match req.arg("occasion") {
            Some(Value::Str(s)) => s.to_string(),
            Some(Value::Null) | None => {
                match default_occasion(&self.decls.coupons[index], zone.as_deref(), req) {
                    Ok(o) => o,
                    Err(e) => return Outcome::failed(e.to_string()),
                }
            }
            Some(v) => v.to_string(),
        };
        let mut ask = IssueRequest::new(user, req.time)
            .occasion(&occasion)
            .others(others);
        ask.zone = zone.as_deref();
        let template_v = Value::Str(template.into());
        match issuer.issue(&*self.store, &ask) {
            Ok(IssueOutcome::Issued(c)) => {
                let mut o = Outcome::done()
                    .with_branch("issued")
                    .with_detail("coupon_id", Value::Str(c.id.into()));
                if let Some(t) = c.expires_at {
                    o = o.with_detail("valid_until", Value::Timestamp(t));
                }
                o
            }
            Ok(IssueOutcome::Duplicate(c)) => Outcome::suppressed("already_issued")
                .with_detail("coupon_id", Value::Str(c.id.into())),
            Ok(IssueOutcome::Refused(r)) => {
                let reason = match r {
                    Refusal::OutOfStock => "out_of_stock",
                    Refusal::BudgetSpent => "budget_spent",
                    Refusal::PerUserLimit => "per_user_limit",
                };
                let mut o = Outcome::suppressed(reason)
                    .with_branch("refused")
                    .with_detail("template", template_v);
                if issuer.breaker().is_some() && r != Refusal::PerUserLimit {
                    o = o.with_detail("campaign_stopped", Value::Bool(true));
                }
                o
            }
            Err(e) => Outcome::failed(e.to_string()),
        }
    }

    fn message(
        &self,
        req: &Request<'_>,
        env: &dyn Surroundings,
        user: &str,
        memo: &mut FiringMemo,
    ) -> Outcome {
        let channels: Vec<Arc<str>> = match req.arg("channel") {
            Some(Value::Str(s)) => vec![s.clone()],
            Some(Value::List(l)) => l.iter().cloned().collect(),
            _ => return Outcome::failed("no channel"),
        };
        let campaign = self.decls.rule_campaigns.get(req.rule).copied().flatten();
        // The campaign's limit, if this firing has not counted it yet: it is
        // counted with the send.
        let limit = campaign.filter(|&c| memo.get(c, user).is_some_and(|k| !k.counted));
        let router = match limit.and_then(|c| self.limited_routers[c].as_ref()) {
            Some(r) => r,
            None => &self.routers[campaign.unwrap_or(self.decls.campaigns.len())],
        };
        let zone = zone_of(env, req, user);
        let mut ask = MessageRequest::new(user, req.time);
        ask.user_zone = zone.as_deref();
        let reach = Reach {
            env,
            id: req.text("user").unwrap_or(user),
        };
        let audiences = Either {
            env,
            id: req.text("user").unwrap_or(user),
            others: &memo.others,
        };
        let routing = match router.route_via(&channels, &*self.store, &audiences, &reach, &ask) {
            Ok(r) => r,
            Err(e) => return Outcome::failed(e.to_string()),
        };
        let skipped: Vec<Arc<str>> = routing
            .skipped
            .iter()
            .map(|s| {
                let why = match &s.reason {
                    SkipReason::Unreachable => "unreachable".to_string(),
                    SkipReason::OptedOut => "opted_out".to_string(),
                    SkipReason::Capped { cap, .. } => format!("capped by {cap}"),
                };
                Arc::from(format!("{}: {why}", s.channel))
            })
            .collect();
        let with_skipped = |o: Outcome| {
            if skipped.is_empty() {
                o
            } else {
                o.with_detail("skipped", Value::List(skipped.clone().into()))
            }
        };
        let counted = |memo: &mut FiringMemo, refusal: Option<Outcome>| {
            if let Some(k) = limit.and_then(|c| memo.get(c, user)) {
                k.counted = refusal.is_none();
                k.refusal = refusal;
            }
        };
        match routing.delivery {
            Delivery::Send { channel } => {
                counted(memo, None);
                with_skipped(Outcome::done().with_detail("channel", Value::Str(channel)))
            }
            // A deferred message takes its place in the limit now, counted
            // at the time it will go out (in that day, for a daily limit).
            Delivery::Defer { until } => {
                if let Some(c) = limit {
                    let user: Arc<str> = user.into();
                    if let Some(refusal) = self.count_limit(req, env, c, &user, until) {
                        counted(memo, Some(refusal.clone()));
                        return refusal;
                    }
                    counted(memo, None);
                }
                Outcome::deferred(until).with_detail("reason", Value::from("quiet_hours"))
            }
            Delivery::Drop(DropReason::QuietHours) => Outcome::suppressed("quiet_hours"),
            Delivery::Drop(DropReason::Suppressed { audience }) => {
                Outcome::suppressed("suppressed").with_detail("audience", Value::Str(audience))
            }
            Delivery::Drop(DropReason::NoChannel) => {
                // The campaign's limit is full: no channel would do.
                if let Some(c) = limit {
                    let name = self.campaign_limits[c].as_ref().map(|l| &l.caps()[0].name);
                    let full = routing.skipped.iter().any(|s| {
                        matches!(&s.reason, SkipReason::Capped { cap, .. } if Some(cap) == name)
                    });
                    if full {
                        let refusal = self.limit_reached(c);
                        counted(memo, Some(refusal.clone()));
                        return refusal;
                    }
                }
                let caps: Vec<&Arc<str>> = routing
                    .skipped
                    .iter()
                    .filter_map(|s| match &s.reason {
                        SkipReason::Capped { cap, .. } => Some(cap),
                        _ => None,
                    })
                    .collect();
                let o = if caps.len() == routing.skipped.len() && !caps.is_empty() {
                    Outcome::suppressed("capped").with_detail("cap", Value::Str(caps[0].clone()))
                } else if caps.is_empty() {
                    Outcome::suppressed("unreachable")
                } else {
                    Outcome::suppressed("no_channel")
                };
                with_skipped(o)
            }
        }
    }

    fn transition(&self, req: &Request<'_>, env: &dyn Surroundings, user: &str) -> Outcome {
        let (Some(machine), Some(to)) = (req.text("machine"), req.text("to")) else {
            return Outcome::failed("a transition needs `machine` and `to`");
        };
        let Some((m, ty)) = self.machines.get(machine) else {
            return Outcome::failed(format!("no machine `{machine}`"));
        };
        let decl = m.decl();
        let current = match env.machine_state(*ty, user) {
            Some((state, since)) => m.restore(&state, since),
            None => Ok(m.start(req.time)),
        };
        // The machine's fact is the host's too: a state it does not
        // declare is reported by name, not with a message.
        let current = match current {
            Ok(c) => c,
            Err(MachineError::UnknownState { state, .. }) => {
                return Outcome::failed("unknown_state")
                    .with_detail("state", Value::Str(state))
                    .with_detail("to", Value::from(to))
            }
            Err(e) => return Outcome::failed(e.to_string()),
        };
        let from = decl.states[current.index()].clone();
        let details = |o: Outcome| {
            o.with_detail("from", Value::Str(from.clone()))
                .with_detail("to", Value::from(to))
        };
        if &*from == to && !decl.allows(current.index(), current.index()) {
            return details(Outcome::suppressed("already_in_state"));
        }
        match m.transition(&current, to, req.time) {
            Ok(next) => {
                let values = vec![
                    Value::from(user),
                    Value::Str(decl.states[next.index()].clone()),
                    Value::Timestamp(next.entered_at()),
                ];
                details(Outcome::done()).with_effect(Effect::Upsert { ty: *ty, values })
            }
            Err(MachineError::Illegal { .. }) => details(Outcome::failed("illegal_transition")),
            Err(MachineError::BeforeEntry { entered_at, .. }) => {
                details(Outcome::failed("before_entry"))
                    .with_detail("entered_at", Value::Timestamp(entered_at))
            }
            Err(e) => details(Outcome::failed(e.to_string())),
        }
    }

    fn split(&self, req: &Request<'_>, user: &str) -> Outcome {
        let Some(experiment) = req.text("experiment") else {
            return Outcome::failed("no experiment");
        };
        let exp = Value::from(experiment);
        match self.experiments.assign(experiment, user) {
            Ok(Assignment::Arm { name, bucket, .. }) => Outcome::done()
                .with_branch(name.clone())
                .with_detail("experiment", exp)
                .with_detail("arm", Value::Str(name))
                .with_detail("bucket", Value::Float(bucket)),
            Ok(Assignment::NotCovered { bucket }) => Outcome::suppressed("not_in_experiment")
                .with_detail("experiment", exp)
                .with_detail("bucket", Value::Float(bucket)),
            Ok(Assignment::OtherSliceOfLayer) => {
                Outcome::suppressed("not_in_experiment").with_detail("experiment", exp)
            }
            Err(e) => Outcome::failed(e.to_string()),
        }
    }
}

/// What makes a claim of a coupon differ from the user's other claims of
/// it, when the rule does not say (`occasion:`):
///
/// - with a per-user limit of one per calendar period or lifetime, the
///   period (`m2026-11` for one a calendar month, nothing for one per
///   lifetime), so a second claim in the period is the first one again;
/// - otherwise (a rolling window has no periods to name) the match itself
///   (the rule, and a digest of the facts it matched), so a retry or replay
///   of it, in any session or process, is the same claim, and other matches
///   are new ones, up to the limit.
fn default_occasion(
    decl: &crate::decl::CouponDecl,
    zone: Option<&str>,
    req: &Request<'_>,
) -> Result<String, super::caps::CapError> {
    use crate::decl::Period;
    let period = match decl.per_user {
        Some(limit) => match limit.period {
            Period::Rolling(_) => String::new(),
            p => super::caps::limit_window(p, zone.unwrap_or("UTC"), req.time)?.0,
        },
        None => String::new(),
    };
    if decl
        .per_user
        .is_some_and(|l| l.count == 1 && !matches!(l.period, Period::Rolling(_)))
    {
        return Ok(period);
    }
    Ok(format!(
        "{period}:{}:{:016x}",
        req.rule_name, req.match_digest
    ))
}

/// The user's zone: looked up under the identifier the rule used, then
/// under the person it belongs to.
fn zone_of(env: &dyn Surroundings, req: &Request<'_>, person: &str) -> Option<Arc<str>> {
    req.text("user")
        .and_then(|id| env.user_zone(id))
        .or_else(|| env.user_zone(person))
        // An unknown zone counts as UTC, as caps and quiet hours take it.
        .filter(|z| jiff::tz::TimeZone::get(z).is_ok())
}

/// Audience membership of a person: of the identifier a rule named, of the
/// person's name, or of any other of its identifiers. Lists hold the host's
/// ids, which may name any of them: a complaint made from a phone stops
/// the pushes to the same person's device.
struct Either<'a> {
    env: &'a dyn Surroundings,
    id: &'a str,
    others: &'a [Arc<str>],
}

impl Membership for Either<'_> {
    fn is_member(&self, audience: &str, person: &str) -> bool {
        let a = self.env.audiences();
        a.is_member(audience, self.id)
            || (person != self.id && a.is_member(audience, person))
            || self
                .others
                .iter()
                .any(|o| **o != *self.id && a.is_member(audience, o))
    }
}

/// The session's reachability, as the message router asks for it.
/// Reachability is asked of the identifier the rule addressed (its
/// address fields belong to it), whatever person it is part of.
struct Reach<'a> {
    env: &'a dyn Surroundings,
    id: &'a str,
}

impl super::message::Reachability for Reach<'_> {
    fn reachable(&self, _person: &str, channel: &str) -> bool {
        self.env.reachable(self.id, channel)
    }

    fn opted_out(&self, person: &str, channel: &str) -> bool {
        self.env.opted_out(self.id, channel) || self.env.opted_out(person, channel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::audience::NoAudiences;
    use crate::primitives::store::{
        ClaimRecord, CountOutcome, CountRequest, Key, MemoryStore, ReserveOutcome, ReserveRequest,
        SetOutcome, StoreError,
    };
    use crate::time::Duration;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A memory store that counts the purges it is asked for.
    #[derive(Default)]
    struct Counting {
        inner: MemoryStore,
        purges: AtomicUsize,
        at: std::sync::atomic::AtomicI64,
    }

    impl StateStore for Counting {
        fn reserve(&self, r: &ReserveRequest) -> Result<ReserveOutcome, StoreError> {
            self.inner.reserve(r)
        }
        fn check_and_count(&self, r: &CountRequest) -> Result<CountOutcome, StoreError> {
            self.inner.check_and_count(r)
        }
        fn set_if_absent(
            &self,
            key: &Key,
            value: &[u8],
            ttl: Option<Duration>,
            now: Timestamp,
        ) -> Result<SetOutcome, StoreError> {
            self.inner.set_if_absent(key, value, ttl, now)
        }
        fn get(&self, key: &Key, now: Timestamp) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.get(key, now)
        }
        fn claim(&self, key: &Key, now: Timestamp) -> Result<Option<ClaimRecord>, StoreError> {
            self.inner.claim(key, now)
        }
        fn count(&self, key: &Key, now: Timestamp) -> Result<u64, StoreError> {
            self.inner.count(key, now)
        }
        fn window_count(
            &self,
            c: &crate::primitives::store::WindowCounter,
            now: Timestamp,
        ) -> Result<u32, StoreError> {
            self.inner.window_count(c, now)
        }
        fn purge_expired(&self, now: Timestamp) -> usize {
            self.purges.fetch_add(1, Ordering::Relaxed);
            self.at.store(now.as_millis(), Ordering::Relaxed);
            self.inner.purge_expired(now)
        }
    }

    struct Nowhere;

    impl Surroundings for Nowhere {
        fn audiences(&self) -> &dyn Membership {
            &NoAudiences
        }
    }

    /// The store is asked to drop expired keys once every `PURGE_EVERY`
    /// decisions, whatever they are, at the earliest of their times.
    #[test]
    fn expired_keys_are_purged_every_so_many_decisions() {
        let store = Arc::new(Counting::default());
        let p = Primitives::new(Arc::default(), &Schema::new(), store.clone()).unwrap();
        let user = Value::from("u1");
        let args = [("user", &user)];
        let req = Request {
            action: "tag_user",
            rule: 0,
            rule_name: "r",
            args: &args,
            time: Timestamp::from_millis(0),
            firing: 1,
            retry: false,
            match_digest: 0,
        };
        let mut memo = FiringMemo::default();
        let at = |ms: i64| Request {
            time: Timestamp::from_millis(ms),
            ..req
        };
        for i in 0..PURGE_EVERY - 1 {
            // One decision of a session whose clock is behind.
            let t = if i == 10 { 1_000 } else { 9_000 };
            p.decide(&at(t), &Nowhere, &mut memo);
        }
        assert_eq!(store.purges.load(Ordering::Relaxed), 0);
        p.decide(&at(9_000), &Nowhere, &mut memo);
        assert_eq!(store.purges.load(Ordering::Relaxed), 1);
        assert_eq!(store.at.load(Ordering::Relaxed), 1_000, "the earliest time");
        for _ in 0..PURGE_EVERY {
            p.decide(&at(9_000), &Nowhere, &mut memo);
        }
        assert_eq!(store.purges.load(Ordering::Relaxed), 2);
        assert_eq!(
            store.at.load(Ordering::Relaxed),
            9_000,
            "since the last purge"
        );
    }
}
