//! The shared state store: every counter and record that engines on several
//! machines must agree on (coupon stock and budget, frequency-cap counters,
//! idempotency keys) lives behind [`StateStore`].
//!
//! Each operation is shaped for one job and is atomic: the caller never reads
//! a value and writes it back. Each one maps to a single Redis server-side
//! script; every key the script touches is passed in (none is built inside)
//! and all of them share one cluster hash tag, so that the script runs on
//! one node of a Redis Cluster. [`MemoryStore`] is the in-process
//! implementation, with the same semantics and the same key checks, so a
//! request that would be refused by a cluster (keys in different slots) is
//! refused here too.
//!
//! ```
//! use nudge_core::primitives::store::{KeyLayout, MemoryStore, SetOutcome, StateStore};
//! use nudge_core::{Duration, Timestamp};
//! let store = MemoryStore::new();
//! let keys = KeyLayout::default();
//! let key = keys.once("spring_sale", "u42");
//! assert_eq!(key.as_str(), "nudge:{u:u42}:once:spring_sale");
//! let now = Timestamp::from_millis(0);
//! let day = Some(Duration::from_secs(86_400));
//! assert_eq!(store.set_if_absent(&key, b"push#1", day, now)?, SetOutcome::Set);
//! assert_eq!(
//!     store.set_if_absent(&key, b"push#2", day, now)?,
//!     SetOutcome::Exists(b"push#1".to_vec())
//! );
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::time::{Duration, Timestamp};
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Why the state store refused or failed an operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A key has no cluster hash tag (`{...}`), so its slot is not under our
    /// control.
    #[error("key `{key}` has no hash tag: every key needs one, as in `nudge:{{u:42}}:cap:x`")]
    MissingHashTag {
        /// The key.
        key: String,
    },
    /// The keys of one operation do not share a hash tag: a Redis Cluster
    /// would answer CROSSSLOT.
    #[error("keys of one operation must share a hash tag: `{first}` and `{other}` differ")]
    CrossSlot {
        /// The tag of the operation's first key.
        first: String,
        /// A different tag found among its keys.
        other: String,
    },
    /// A key already holds a value of another kind (a counter used as a
    /// record, say).
    #[error("key `{key}` holds a {found}, not a {expected}")]
    WrongType {
        /// The key.
        key: String,
        /// What the operation needed.
        expected: &'static str,
        /// What the key holds.
        found: &'static str,
    },
    /// The request is malformed (no keys, a zero window, ...).
    #[error("invalid store request: {0}")]
    InvalidRequest(&'static str),
    /// The backing service failed (connection, timeout, script error).
    #[error("state store backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A key of the state store. Its hash tag (the text between the first `{`
/// and the next `}`) decides its cluster slot; keys without one are refused.
///
/// ```
/// use nudge_core::primitives::store::Key;
/// let k = Key::new("nudge:{cpn:c42:3}:stock")?;
/// assert_eq!(k.hash_tag(), "cpn:c42:3");
/// assert!(Key::new("nudge:stock").is_err());
/// Ok::<(), nudge_core::primitives::store::StoreError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    text: Arc<str>,
    tag: (u32, u32),
}

impl Key {
    /// A key from its full text; it must carry a non-empty hash tag.
    pub fn new(text: impl Into<Arc<str>>) -> Result<Key, StoreError> {
        let text = text.into();
        let tag = hash_tag_span(&text).ok_or_else(|| StoreError::MissingHashTag {
            key: text.to_string(),
        })?;
        Ok(Key { text, tag })
    }

    /// The full key text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The cluster hash tag, without braces.
    pub fn hash_tag(&self) -> &str {
        &self.text[self.tag.0 as usize..self.tag.1 as usize]
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The byte range of a key's hash tag, by the Redis Cluster rule: the first
/// `{`, then the first `}` after it, with at least one byte between.
fn hash_tag_span(text: &str) -> Option<(u32, u32)> {
    let open = text.find('{')?;
    let close = open + 1 + text[open + 1..].find('}')?;
    if close == open + 1 {
        return None;
    }
    Some((u32::try_from(open + 1).ok()?, u32::try_from(close).ok()?))
}

/// Checks that all keys share one hash tag and returns it.
pub fn common_hash_tag<'k>(keys: impl IntoIterator<Item = &'k Key>) -> Result<&'k str, StoreError> {
    let mut keys = keys.into_iter();
    let first = keys
        .next()
        .ok_or(StoreError::InvalidRequest(
            "an operation needs at least one key",
        ))?
        .hash_tag();
    for key in keys {
        if key.hash_tag() != first {
            return Err(StoreError::CrossSlot {
                first: first.to_string(),
                other: key.hash_tag().to_string(),
            });
        }
    }
    Ok(first)
}

/// Builds the key names of every primitive, so that the layout is written
/// down once (see `docs/primitives.md`).
///
/// Name parts are escaped (`%`, `:`, `{`, `}` become `%25`, `%3A`, `%7B`,
/// `%7D`) so that two different (campaign, user) pairs never produce the
/// same key and a user id cannot break a hash tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLayout {
    prefix: Arc<str>,
}

impl Default for KeyLayout {
    fn default() -> Self {
        KeyLayout {
            prefix: "nudge".into(),
        }
    }
}

impl KeyLayout {
    /// A layout whose keys start with `prefix` (escaped like any name part).
    pub fn with_prefix(prefix: &str) -> Self {
        KeyLayout {
            prefix: escape(prefix).into(),
        }
    }

    /// `<prefix>:{<tag parts joined by ':'>}:<rest parts joined by ':'>`,
    /// every part escaped; built in one buffer, as keys are made for every
    /// checked decision.
    fn key(&self, tag: &[&str], rest: &[&str]) -> Key {
        let len = tag.iter().chain(rest).map(|p| p.len() + 1).sum::<usize>();
        let mut text = String::with_capacity(self.prefix.len() + 3 + len);
        text.push_str(&self.prefix);
        text.push_str(":{");
        for (i, part) in tag.iter().enumerate() {
            if i > 0 {
                text.push(':');
            }
            push_escaped(&mut text, part);
        }
        text.push('}');
        for part in rest {
            text.push(':');
            push_escaped(&mut text, part);
        }
        let open = self.prefix.len() + 2;
        let close = text[open..].find('}').map_or(open, |c| open + c);
        // The tag is escaped, so its first `}` is the closing brace; it is
        // never empty, as every layout tag starts with a kind (`cpn`, `u`).
        Key {
            tag: (open as u32, close as u32),
            text: text.into(),
        }
    }

    /// The hash tag of one sub-stock of a coupon: `cpn:<coupon>:<shard>`.
    pub fn coupon_tag(&self, coupon: &str, shard: u32) -> String {
        let mut t = String::from("cpn:");
        push_escaped(&mut t, coupon);
        t.push(':');
        t.push_str(&shard.to_string());
        t
    }

    /// Coupons issued from one sub-stock (a counter).
    pub fn coupon_stock(&self, coupon: &str, shard: u32) -> Key {
        self.key(&["cpn", coupon, &shard.to_string()], &["stock"])
    }

    /// Budget spent by one sub-stock, in budget units (a counter).
    pub fn coupon_budget(&self, coupon: &str, shard: u32) -> Key {
        self.key(&["cpn", coupon, &shard.to_string()], &["budget"])
    }

    /// The idempotency record of one (campaign, user, occasion) claim on a
    /// sub-stock; `occasion` is empty for "once per campaign".
    pub fn coupon_claim(
        &self,
        coupon: &str,
        shard: u32,
        campaign: &str,
        user: &str,
        occasion: &str,
    ) -> Key {
        let tag = ["cpn", coupon, &shard.to_string()];
        if occasion.is_empty() {
            self.key(&tag, &["claim", campaign, user])
        } else {
            self.key(&tag, &["claim", campaign, user, occasion])
        }
    }

    /// Coupons one user got from one sub-stock within a per-user period
    /// (`period` is a label such as `d2026-11-23`, empty for rolling or
    /// lifetime limits).
    pub fn coupon_user(&self, coupon: &str, shard: u32, user: &str, period: &str) -> Key {
        let tag = ["cpn", coupon, &shard.to_string()];
        if period.is_empty() {
            self.key(&tag, &["user", user])
        } else {
            self.key(&tag, &["user", user, period])
        }
    }

    /// The hash tag of everything kept per user: `u:<user>`.
    pub fn user_tag(&self, user: &str) -> String {
        let mut t = String::from("u:");
        push_escaped(&mut t, user);
        t
    }

    /// A frequency-cap counter of one user (`period` as for
    /// [`coupon_user`](Self::coupon_user)).
    pub fn cap(&self, user: &str, cap: &str, period: &str) -> Key {
        if period.is_empty() {
            self.key(&["u", user], &["cap", cap])
        } else {
            self.key(&["u", user], &["cap", cap, period])
        }
    }

    /// A "once per (campaign, user)" idempotency key.
    pub fn once(&self, campaign: &str, user: &str) -> Key {
        self.key(&["u", user], &["once", campaign])
    }
}

/// A fresh event id, unique across processes in practice: the process id,
/// the process's start time and a counter. Hosts that have their own
/// message ids should pass those instead.
pub fn unique_event_id() -> Arc<str> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static NONCE: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nonce = NONCE.get_or_init(|| {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{:x}.{:x}", std::process::id(), started)
    });
    format!("{nonce}.{:x}", NEXT.fetch_add(1, Ordering::Relaxed)).into()
}

/// Escapes a name part of a key.
fn escape(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    push_escaped(&mut out, part);
    out
}

/// Appends a name part, escaped.
fn push_escaped(out: &mut String, part: &str) {
    if !part.bytes().any(|b| matches!(b, b'%' | b':' | b'{' | b'}')) {
        out.push_str(part);
        return;
    }
    for c in part.chars() {
        match c {
            '%' => out.push_str("%25"),
            ':' => out.push_str("%3A"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
    }
}

/// A counter capped at `limit` (coupon stock, budget).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounded {
    /// The counter.
    pub key: Key,
    /// Largest value the counter may reach; `None` for no limit.
    pub limit: Option<u64>,
}

/// How long a window counter's entries count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// A plain counter, reset by deleting it at `expires_at` (the end of a
    /// calendar period), or never.
    Fixed {
        /// When the counter goes away; `None` for never.
        expires_at: Option<Timestamp>,
    },
    /// Entries made within the last `Duration`: one made at `t` counts at
    /// `now` while `now - window < t <= now`.
    Rolling(Duration),
}

/// A counter of events within a window, with a limit (a frequency cap, a
/// per-user coupon limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowCounter {
    /// The counter.
    pub key: Key,
    /// At most this many entries within the window.
    pub limit: u32,
    /// The window.
    pub window: Window,
}

/// A request to reserve one unit of stock (and its cost against a budget)
/// for one claim, atomically and idempotently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReserveRequest {
    /// The idempotency record of the claim: if it exists the first result is
    /// returned and nothing is reserved.
    pub claim: Key,
    /// How long the claim record is kept; `None` for ever.
    pub claim_ttl: Option<Duration>,
    /// The stock counter, incremented by one.
    pub stock: Bounded,
    /// The budget counter and the cost of this unit, in budget units.
    pub budget: Option<(Bounded, u64)>,
    /// The claimant's own counter and limit.
    pub per_user: Option<WindowCounter>,
    /// Opaque bytes stored with the claim and returned to retries.
    pub payload: Vec<u8>,
    /// The current time.
    pub now: Timestamp,
}

impl ReserveRequest {
    /// Every key the request touches, in script order.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        std::iter::once(&self.claim)
            .chain(std::iter::once(&self.stock.key))
            .chain(self.budget.as_ref().map(|(b, _)| &b.key))
            .chain(self.per_user.as_ref().map(|u| &u.key))
    }
}

/// The record kept for a successful claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRecord {
    /// The stock counter's value right after this claim (1 for the first unit).
    pub serial: u64,
    /// The request's payload.
    pub payload: Vec<u8>,
}

/// Why a reservation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReserveRefusal {
    /// The claimant reached its own limit.
    PerUser,
    /// The stock is all reserved.
    Stock,
    /// The budget cannot pay for this unit.
    Budget,
}

/// The result of [`StateStore::reserve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// Reserved: the claim is recorded with this serial.
    Reserved {
        /// The stock counter's value after the reservation.
        serial: u64,
    },
    /// The claim existed: here is its first result, nothing was reserved.
    Duplicate(ClaimRecord),
    /// Nothing was reserved.
    Refused {
        /// Why.
        reason: ReserveRefusal,
        /// The claimant's counter (within its window) at the time, 0 without
        /// a per-user counter.
        user_count: u32,
    },
}

/// A request to check several window counters and count one event in all of
/// them, or in none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountRequest {
    /// The counters, checked in order.
    pub counters: Vec<WindowCounter>,
    /// A unique id of the event: the member a rolling window records (a
    /// Redis sorted set keeps one entry per member), so it must not be empty
    /// when a counter is rolling. [`unique_event_id`] makes one.
    pub event: Arc<str>,
    /// The current time.
    pub now: Timestamp,
}

/// The result of [`StateStore::check_and_count`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CountOutcome {
    /// Every counter had room: the event is counted in all of them; their
    /// new values, in request order.
    Counted(Vec<u32>),
    /// Counter `index` (the first full one) is at `count >= limit`; nothing
    /// was counted.
    Full {
        /// Position of the full counter in the request.
        index: usize,
        /// Its value.
        count: u32,
    },
}

/// The result of [`StateStore::set_if_absent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetOutcome {
    /// The key was absent and now holds the value.
    Set,
    /// The key holds this value already; nothing changed.
    Exists(Vec<u8>),
}

/// Shared state with atomic, job-shaped operations.
///
/// Every operation names all its keys; they must share one hash tag
/// ([`StoreError::CrossSlot`] otherwise). Times come from the caller, so an
/// engine running on event time and the store agree on windows and expiry.
pub trait StateStore: Send + Sync {
    /// Reserves one unit of stock and its budget cost for a claim, checking
    /// the claimant's limit, all or nothing. If the claim record exists, its
    /// first result is returned and nothing changes.
    fn reserve(&self, request: &ReserveRequest) -> Result<ReserveOutcome, StoreError>;

    /// Checks every counter; if all have room, counts the event in each.
    fn check_and_count(&self, request: &CountRequest) -> Result<CountOutcome, StoreError>;

    /// Stores `value` under `key` unless the key exists; returns the existing
    /// value otherwise.
    fn set_if_absent(
        &self,
        key: &Key,
        value: &[u8],
        ttl: Option<Duration>,
        now: Timestamp,
    ) -> Result<SetOutcome, StoreError>;

    /// The bytes stored under `key` by [`set_if_absent`](Self::set_if_absent),
    /// if any.
    fn get(&self, key: &Key, now: Timestamp) -> Result<Option<Vec<u8>>, StoreError>;

    /// The claim record stored under `key` by [`reserve`](Self::reserve), if
    /// any.
    fn claim(&self, key: &Key, now: Timestamp) -> Result<Option<ClaimRecord>, StoreError>;

    /// The value of a counter, or the number of live entries of a rolling
    /// window (those made after `now - window` are not known here: all
    /// unexpired entries count); 0 if absent.
    fn count(&self, key: &Key, now: Timestamp) -> Result<u64, StoreError>;

    /// The entries of a window counter that count at `now` (its limit is
    /// not used): a read, for look-ups such as a person's claims under its
    /// other names.
    fn window_count(&self, counter: &WindowCounter, now: Timestamp) -> Result<u32, StoreError>;

    /// Drops the keys expired at `now`, for a store that keeps them until
    /// they are touched; returns how many. A store that expires keys by
    /// itself (Redis) does nothing, the default.
    fn purge_expired(&self, now: Timestamp) -> usize {
        let _ = now;
        0
    }
}

/// What one key holds.
#[derive(Debug, Clone)]
enum Value {
    Counter(u64),
    Bytes(Vec<u8>),
    Claim(ClaimRecord),
    /// Times of the entries of a rolling window, ascending.
    Times(VecDeque<i64>),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Counter(_) => "counter",
            Value::Bytes(_) => "record",
            Value::Claim(_) => "claim",
            Value::Times(_) => "rolling window",
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    value: Value,
    expires_at: Option<i64>,
}

/// The keys of one lock shard. Keys expire lazily, when touched at a time
/// past their expiry.
#[derive(Debug, Default)]
struct Slot {
    /// Keys hashed with foldhash, seeded per process: several times faster
    /// than SipHash on short keys, and still not predictable from outside.
    entries: HashMap<Arc<str>, Entry, foldhash::fast::RandomState>,
}

impl Slot {
    fn live(&mut self, key: &Key, now: i64) -> Option<&mut Entry> {
        let expired = match self.entries.get(key.as_str()) {
            None => return None,
            Some(e) => e.expires_at.is_some_and(|t| t <= now),
        };
        if expired {
            self.entries.remove(key.as_str());
            return None;
        }
        self.entries.get_mut(key.as_str())
    }

    fn counter(&mut self, key: &Key, now: i64) -> Result<u64, StoreError> {
        match self.live(key, now) {
            None => Ok(0),
            Some(Entry {
                value: Value::Counter(n),
                ..
            }) => Ok(*n),
            Some(e) => Err(wrong_type(key, "counter", &e.value)),
        }
    }

    /// The number of entries of a window counter that count at `now`,
    /// dropping those that no longer do.
    fn window_count(&mut self, counter: &WindowCounter, now: i64) -> Result<u32, StoreError> {
        match counter.window {
            Window::Fixed { .. } => {
                let n = self.counter(&counter.key, now)?;
                Ok(u32::try_from(n).unwrap_or(u32::MAX))
            }
            Window::Rolling(window) => {
                let oldest_out = now.saturating_sub(window.as_millis());
                match self.live(&counter.key, now) {
                    None => Ok(0),
                    Some(Entry {
                        value: Value::Times(times),
                        ..
                    }) => {
                        while times.front().is_some_and(|&t| t <= oldest_out) {
                            times.pop_front();
                        }
                        Ok(u32::try_from(times.len()).unwrap_or(u32::MAX))
                    }
                    Some(e) => Err(wrong_type(&counter.key, "rolling window", &e.value)),
                }
            }
        }
    }

    /// Counts one entry; the caller has checked the type.
    fn add_to_window(&mut self, counter: &WindowCounter, now: i64) -> u32 {
        match counter.window {
            Window::Fixed { expires_at } => {
                let entry = self.entries.entry(key_text(&counter.key)).or_insert(Entry {
                    value: Value::Counter(0),
                    expires_at: expires_at.map(Timestamp::as_millis),
                });
                match &mut entry.value {
                    Value::Counter(n) => {
                        *n += 1;
                        u32::try_from(*n).unwrap_or(u32::MAX)
                    }
                    _ => unreachable!("type checked before counting"),
                }
            }
            Window::Rolling(window) => {
                let entry = self.entries.entry(key_text(&counter.key)).or_insert(Entry {
                    value: Value::Times(VecDeque::new()),
                    expires_at: None,
                });
                // The key lives as long as its newest entry counts; an entry
                // arriving late never shortens that.
                let until = now.saturating_add(window.as_millis());
                entry.expires_at = Some(entry.expires_at.map_or(until, |t| t.max(until)));
                match &mut entry.value {
                    Value::Times(times) => {
                        let at = times.partition_point(|&t| t <= now);
                        times.insert(at, now);
                        u32::try_from(times.len()).unwrap_or(u32::MAX)
                    }
                    _ => unreachable!("type checked before counting"),
                }
            }
        }
    }

    fn increment(&mut self, key: &Key, by: u64) -> u64 {
        let entry = self.entries.entry(key_text(key)).or_insert(Entry {
            value: Value::Counter(0),
            expires_at: None,
        });
        match &mut entry.value {
            Value::Counter(n) => {
                *n += by;
                *n
            }
            _ => unreachable!("type checked before incrementing"),
        }
    }
}

fn key_text(key: &Key) -> Arc<str> {
    key.text.clone()
}

fn wrong_type(key: &Key, expected: &'static str, found: &Value) -> StoreError {
    StoreError::WrongType {
        key: key.to_string(),
        expected,
        found: found.kind(),
    }
}

fn expiry(now: Timestamp, ttl: Option<Duration>) -> Result<Option<i64>, StoreError> {
    match ttl {
        None => Ok(None),
        Some(d) if d.as_millis() <= 0 => Err(StoreError::InvalidRequest("a ttl must be positive")),
        Some(d) => Ok(Some(now.as_millis().saturating_add(d.as_millis()))),
    }
}

fn check_window(counter: &WindowCounter) -> Result<(), StoreError> {
    match counter.window {
        Window::Rolling(d) if d.as_millis() <= 0 => Err(StoreError::InvalidRequest(
            "a rolling window must be positive",
        )),
        _ => Ok(()),
    }
}

/// The in-process [`StateStore`]: safe to share across threads, with one
/// mutex per group of hash tags, so operations on different tags (different
/// users, different sub-stocks) rarely wait for each other while an
/// operation on one tag is atomic, as a script is on one Redis node.
///
/// ```
/// use nudge_core::primitives::store::{MemoryStore, StateStore};
/// use std::sync::Arc;
/// let store: Arc<dyn StateStore> = Arc::new(MemoryStore::with_lock_shards(16));
/// # let _ = store;
/// ```
#[derive(Debug)]
pub struct MemoryStore {
    slots: Box<[Mutex<Slot>]>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    /// A store with 64 lock shards.
    pub fn new() -> Self {
        MemoryStore::with_lock_shards(64)
    }

    /// A store with `n` lock shards (at least one).
    pub fn with_lock_shards(n: usize) -> Self {
        MemoryStore {
            slots: (0..n.max(1)).map(|_| Mutex::new(Slot::default())).collect(),
        }
    }

    fn slot(&self, tag: &str) -> MutexGuard<'_, Slot> {
        let mut h = DefaultHasher::new();
        tag.hash(&mut h);
        let i = (h.finish() % self.slots.len() as u64) as usize;
        // A panic while holding the lock cannot leave a slot half-written:
        // every operation checks before it writes.
        self.slots[i].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops every key expired at `now`; returns how many.
    pub fn purge_expired(&self, now: Timestamp) -> usize {
        let now = now.as_millis();
        let mut dropped = 0;
        for slot in self.slots.iter() {
            let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
            let before = slot.entries.len();
            slot.entries
                .retain(|_, e| e.expires_at.is_none_or(|t| t > now));
            dropped += before - slot.entries.len();
        }
        dropped
    }

    /// Number of keys held (expired ones not yet dropped included).
    pub fn len(&self) -> usize {
        self.slots
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entries
                    .len()
            })
            .sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl StateStore for MemoryStore {
    fn purge_expired(&self, now: Timestamp) -> usize {
        MemoryStore::purge_expired(self, now)
    }

    fn reserve(&self, req: &ReserveRequest) -> Result<ReserveOutcome, StoreError> {
        let tag = common_hash_tag(req.keys())?;
        if let Some(u) = &req.per_user {
            check_window(u)?;
        }
        let claim_expiry = expiry(req.now, req.claim_ttl)?;
        let now = req.now.as_millis();
        let mut slot = self.slot(tag);

        match slot.live(&req.claim, now) {
            None => {}
            Some(Entry {
                value: Value::Claim(record),
                ..
            }) => return Ok(ReserveOutcome::Duplicate(record.clone())),
            Some(e) => return Err(wrong_type(&req.claim, "claim", &e.value)),
        }
        let user_count = match &req.per_user {
            Some(u) => slot.window_count(u, now)?,
            None => 0,
        };
        let refuse = |reason| Ok(ReserveOutcome::Refused { reason, user_count });
        if let Some(u) = &req.per_user {
            if user_count >= u.limit {
                return refuse(ReserveRefusal::PerUser);
            }
        }
        let issued = slot.counter(&req.stock.key, now)?;
        if req.stock.limit.is_some_and(|limit| issued >= limit) {
            return refuse(ReserveRefusal::Stock);
        }
        if let Some((budget, cost)) = &req.budget {
            let spent = slot.counter(&budget.key, now)?;
            if budget
                .limit
                .is_some_and(|limit| spent.saturating_add(*cost) > limit)
            {
                return refuse(ReserveRefusal::Budget);
            }
        }

        // Every check passed and every key has the right type: commit.
        let serial = slot.increment(&req.stock.key, 1);
        if let Some((budget, cost)) = &req.budget {
            slot.increment(&budget.key, *cost);
        }
        if let Some(u) = &req.per_user {
            slot.add_to_window(u, now);
        }
        slot.entries.insert(
            key_text(&req.claim),
            Entry {
                value: Value::Claim(ClaimRecord {
                    serial,
                    payload: req.payload.clone(),
                }),
                expires_at: claim_expiry,
            },
        );
        Ok(ReserveOutcome::Reserved { serial })
    }

    fn check_and_count(&self, req: &CountRequest) -> Result<CountOutcome, StoreError> {
        let tag = common_hash_tag(req.counters.iter().map(|c| &c.key))?;
        for c in &req.counters {
            check_window(c)?;
            if matches!(c.window, Window::Rolling(_)) && req.event.is_empty() {
                return Err(StoreError::InvalidRequest(
                    "a rolling window needs a unique, non-empty event id",
                ));
            }
        }
        let now = req.now.as_millis();
        let mut slot = self.slot(tag);
        for (index, counter) in req.counters.iter().enumerate() {
            let count = slot.window_count(counter, now)?;
            if count >= counter.limit {
                return Ok(CountOutcome::Full { index, count });
            }
        }
        let counts = req
            .counters
            .iter()
            .map(|c| slot.add_to_window(c, now))
            .collect();
        Ok(CountOutcome::Counted(counts))
    }

    fn set_if_absent(
        &self,
        key: &Key,
        value: &[u8],
        ttl: Option<Duration>,
        now: Timestamp,
    ) -> Result<SetOutcome, StoreError> {
        let expires_at = expiry(now, ttl)?;
        let mut slot = self.slot(key.hash_tag());
        match slot.live(key, now.as_millis()) {
            Some(Entry {
                value: Value::Bytes(v),
                ..
            }) => Ok(SetOutcome::Exists(v.clone())),
            Some(e) => Err(wrong_type(key, "record", &e.value)),
            None => {
                slot.entries.insert(
                    key_text(key),
                    Entry {
                        value: Value::Bytes(value.to_vec()),
                        expires_at,
                    },
                );
                Ok(SetOutcome::Set)
            }
        }
    }

    fn get(&self, key: &Key, now: Timestamp) -> Result<Option<Vec<u8>>, StoreError> {
        let mut slot = self.slot(key.hash_tag());
        match slot.live(key, now.as_millis()) {
            None => Ok(None),
            Some(Entry {
                value: Value::Bytes(v),
                ..
            }) => Ok(Some(v.clone())),
            Some(e) => Err(wrong_type(key, "record", &e.value)),
        }
    }

    fn claim(&self, key: &Key, now: Timestamp) -> Result<Option<ClaimRecord>, StoreError> {
        let mut slot = self.slot(key.hash_tag());
        match slot.live(key, now.as_millis()) {
            None => Ok(None),
            Some(Entry {
                value: Value::Claim(c),
                ..
            }) => Ok(Some(c.clone())),
            Some(e) => Err(wrong_type(key, "claim", &e.value)),
        }
    }

    fn window_count(&self, counter: &WindowCounter, now: Timestamp) -> Result<u32, StoreError> {
        check_window(counter)?;
        self.slot(counter.key.hash_tag())
            .window_count(counter, now.as_millis())
    }

    fn count(&self, key: &Key, now: Timestamp) -> Result<u64, StoreError> {
        let mut slot = self.slot(key.hash_tag());
        match slot.live(key, now.as_millis()) {
            None => Ok(0),
            Some(Entry {
                value: Value::Counter(n),
                ..
            }) => Ok(*n),
            Some(Entry {
                value: Value::Times(t),
                ..
            }) => Ok(t.len() as u64),
            Some(e) => Err(wrong_type(key, "counter", &e.value)),
        }
    }
}

/// The Redis form of the store: one server-side script per operation. A
/// script receives every key it touches in `KEYS` (built by [`KeyLayout`],
/// never inside the script) and all of them share one hash tag, so a Redis
/// Cluster runs it on one node, atomically. Times come from the caller in
/// `ARGV`, as for [`MemoryStore`]; expiries are absolute (`PXAT`,
/// `PEXPIREAT`), so keys also expire on the server's clock. Needs Redis 7.0
/// or later (`PEXPIRETIME`).
pub mod redis {
    use super::{CountRequest, Key, ReserveRequest, Window};
    use crate::time::{Duration, Timestamp};

    /// [`StateStore::reserve`](super::StateStore::reserve).
    ///
    /// `KEYS`: claim, stock, then the budget counter if `ARGV[3] >= 0`, then
    /// the per-user counter if `ARGV[5] >= 0`. `ARGV`: now (ms), stock limit,
    /// budget limit, cost, per-user limit (`-1` for none), per-user window
    /// (`fixed` or `rolling`), its expiry (ms, `0` for none) or length (ms),
    /// claim expiry (ms, `0` for none), payload. The claim is stored as
    /// `<serial>:<payload>`; a rolling per-user window records the claim key.
    ///
    /// Replies: `["reserved", serial]`, `["duplicate", "<serial>:<payload>"]`
    /// or `["refused", "per_user" | "stock" | "budget", user count]`.
    pub const RESERVE: &str = r#"
local now = tonumber(ARGV[1])
local claim = redis.call('GET', KEYS[1])
if claim then return {'duplicate', claim} end
local stock_limit = tonumber(ARGV[2])
local budget_limit = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local user_limit = tonumber(ARGV[5])
local next_key = 3
local budget_key, user_key
if budget_limit >= 0 then budget_key = KEYS[next_key]; next_key = next_key + 1 end
if user_limit >= 0 then user_key = KEYS[next_key] end
local user_count = 0
if user_key then
  if ARGV[6] == 'rolling' then
    redis.call('ZREMRANGEBYSCORE', user_key, '-inf', now - tonumber(ARGV[7]))
    user_count = redis.call('ZCARD', user_key)
  else
    user_count = tonumber(redis.call('GET', user_key) or '0')
  end
  if user_count >= user_limit then return {'refused', 'per_user', user_count} end
end
local issued = tonumber(redis.call('GET', KEYS[2]) or '0')
if stock_limit >= 0 and issued >= stock_limit then return {'refused', 'stock', user_count} end
if budget_key then
  local spent = tonumber(redis.call('GET', budget_key) or '0')
  if spent + cost > budget_limit then return {'refused', 'budget', user_count} end
end
local serial = redis.call('INCR', KEYS[2])
if budget_key then redis.call('INCRBY', budget_key, cost) end
if user_key then
  if ARGV[6] == 'rolling' then
    local until_ms = now + tonumber(ARGV[7])
    redis.call('ZADD', user_key, now, KEYS[1])
    local current = redis.call('PEXPIRETIME', user_key)
    if current < until_ms then redis.call('PEXPIREAT', user_key, until_ms) end
  else
    local n = redis.call('INCR', user_key)
    if n == 1 and tonumber(ARGV[7]) > 0 then redis.call('PEXPIREAT', user_key, ARGV[7]) end
  end
end
local record = serial .. ':' .. ARGV[9]
if tonumber(ARGV[8]) > 0 then
  redis.call('SET', KEYS[1], record, 'PXAT', ARGV[8])
else
  redis.call('SET', KEYS[1], record)
end
return {'reserved', serial}
"#;

    /// [`StateStore::check_and_count`](super::StateStore::check_and_count).
    ///
    /// `KEYS`: the counters. `ARGV`: now (ms), event id, then for counter
    /// `i` (from 1) at `ARGV[3i]`, `ARGV[3i+1]`, `ARGV[3i+2]`: its limit,
    /// `fixed` or `rolling`, and its expiry (ms, `0` for none) or length (ms).
    ///
    /// Replies: `["counted", n1, n2, ...]` or `["full", index from 0, count]`.
    pub const CHECK_AND_COUNT: &str = r#"
local now = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[3 * i])
  local n
  if ARGV[3 * i + 1] == 'rolling' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - tonumber(ARGV[3 * i + 2]))
    n = redis.call('ZCARD', key)
  else
    n = tonumber(redis.call('GET', key) or '0')
  end
  if n >= limit then return {'full', i - 1, n} end
end
local reply = {'counted'}
for i, key in ipairs(KEYS) do
  local param = tonumber(ARGV[3 * i + 2])
  if ARGV[3 * i + 1] == 'rolling' then
    local until_ms = now + param
    redis.call('ZADD', key, now, ARGV[2])
    local current = redis.call('PEXPIRETIME', key)
    if current < until_ms then redis.call('PEXPIREAT', key, until_ms) end
    reply[i + 1] = redis.call('ZCARD', key)
  else
    local n = redis.call('INCR', key)
    if n == 1 and param > 0 then redis.call('PEXPIREAT', key, param) end
    reply[i + 1] = n
  end
end
return reply
"#;

    /// [`StateStore::set_if_absent`](super::StateStore::set_if_absent).
    ///
    /// `KEYS`: the key. `ARGV`: the value, its expiry (ms, `0` for none).
    ///
    /// Replies: `["set"]` or `["exists", value]`.
    pub const SET_IF_ABSENT: &str = r#"
local v = redis.call('GET', KEYS[1])
if v then return {'exists', v} end
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
return {'set'}
"#;

    /// [`StateStore::window_count`](super::StateStore::window_count).
    ///
    /// `KEYS`: the counter. `ARGV`: now (ms), `fixed` or `rolling`, the
    /// window's length (ms) for `rolling`.
    ///
    /// Replies: `[count]`.
    pub const WINDOW_COUNT: &str = r#"
if ARGV[2] == 'rolling' then
  return {redis.call('ZCOUNT', KEYS[1], '(' .. (tonumber(ARGV[1]) - tonumber(ARGV[3])), '+inf')}
end
return {tonumber(redis.call('GET', KEYS[1]) or '0')}
"#;

    /// One script invocation: `EVAL script len(keys) keys... args...`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ScriptCall {
        /// The script.
        pub script: &'static str,
        /// `KEYS`.
        pub keys: Vec<Key>,
        /// `ARGV`, binary-safe.
        pub args: Vec<Vec<u8>>,
    }

    const UNBOUNDED: u64 = (1 << 53) - 1;

    fn num(n: impl ToString) -> Vec<u8> {
        n.to_string().into_bytes()
    }

    fn limit(l: Option<u64>) -> Vec<u8> {
        l.map_or_else(|| num(-1), num)
    }

    fn window_args(w: Window) -> (Vec<u8>, Vec<u8>) {
        match w {
            Window::Fixed { expires_at } => (
                b"fixed".to_vec(),
                num(expires_at.map_or(0, Timestamp::as_millis)),
            ),
            Window::Rolling(d) => (b"rolling".to_vec(), num(d.as_millis())),
        }
    }

    fn expiry(now: Timestamp, ttl: Option<Duration>) -> Vec<u8> {
        num(ttl.map_or(0, |d| now.as_millis().saturating_add(d.as_millis())))
    }

    /// The [`RESERVE`] call for a request.
    pub fn reserve(req: &ReserveRequest) -> ScriptCall {
        let (kind, param) = req
            .per_user
            .as_ref()
            .map_or((b"fixed".to_vec(), num(0)), |u| window_args(u.window));
        ScriptCall {
            script: RESERVE,
            keys: req.keys().cloned().collect(),
            args: vec![
                num(req.now.as_millis()),
                limit(req.stock.limit),
                // A budget counter without a limit still counts spending:
                // give it one no sum reaches (Lua numbers are exact to 2^53).
                req.budget
                    .as_ref()
                    .map_or_else(|| num(-1), |(b, _)| num(b.limit.unwrap_or(UNBOUNDED))),
                num(req.budget.as_ref().map_or(0, |(_, cost)| *cost)),
                req.per_user
                    .as_ref()
                    .map_or_else(|| num(-1), |u| num(u.limit)),
                kind,
                param,
                expiry(req.now, req.claim_ttl),
                req.payload.clone(),
            ],
        }
    }

    /// The [`CHECK_AND_COUNT`] call for a request.
    pub fn check_and_count(req: &CountRequest) -> ScriptCall {
        let mut args = vec![num(req.now.as_millis()), req.event.as_bytes().to_vec()];
        for c in &req.counters {
            let (kind, param) = window_args(c.window);
            args.extend([num(c.limit), kind, param]);
        }
        ScriptCall {
            script: CHECK_AND_COUNT,
            keys: req.counters.iter().map(|c| c.key.clone()).collect(),
            args,
        }
    }

    /// The [`SET_IF_ABSENT`] call.
    pub fn set_if_absent(
        key: &Key,
        value: &[u8],
        ttl: Option<Duration>,
        now: Timestamp,
    ) -> ScriptCall {
        ScriptCall {
            script: SET_IF_ABSENT,
            keys: vec![key.clone()],
            args: vec![value.to_vec(), expiry(now, ttl)],
        }
    }

    /// The [`WINDOW_COUNT`] call for a counter.
    pub fn window_count(counter: &super::WindowCounter, now: Timestamp) -> ScriptCall {
        let (kind, param) = window_args(counter.window);
        ScriptCall {
            script: WINDOW_COUNT,
            keys: vec![counter.key.clone()],
            args: vec![num(now.as_millis()), kind, param],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn cap(key: &Key, limit: u32, window: Window) -> WindowCounter {
        WindowCounter {
            key: key.clone(),
            limit,
            window,
        }
    }

    #[test]
    fn hash_tags_follow_the_cluster_rule() {
        assert_eq!(Key::new("a{b}c").unwrap().hash_tag(), "b");
        assert_eq!(Key::new("a{b}{c}").unwrap().hash_tag(), "b");
        assert_eq!(Key::new("{x{y}z}").unwrap().hash_tag(), "x{y");
        assert!(Key::new("a{}b").is_err());
        assert!(Key::new("a}b{").is_err());
    }

    #[test]
    fn layout_escapes_parts_so_keys_never_collide() {
        let k = KeyLayout::default();
        assert_ne!(
            k.coupon_claim("c", 0, "a:b", "c", ""),
            k.coupon_claim("c", 0, "a", "b:c", "")
        );
        let odd = k.cap("x}y{", "daily", "d2026-01-01");
        assert_eq!(odd.hash_tag(), "u:x%7Dy%7B");
        assert_eq!(
            k.coupon_stock("flash", 3).as_str(),
            "nudge:{cpn:flash:3}:stock"
        );
    }

    #[test]
    fn cross_slot_requests_are_refused() {
        let k = KeyLayout::default();
        let store = MemoryStore::new();
        let req = CountRequest {
            counters: vec![
                cap(&k.cap("u1", "a", ""), 1, Window::Fixed { expires_at: None }),
                cap(&k.cap("u2", "a", ""), 1, Window::Fixed { expires_at: None }),
            ],
            event: "e".into(),
            now: t(0),
        };
        assert!(matches!(
            store.check_and_count(&req),
            Err(StoreError::CrossSlot { .. })
        ));
    }

    #[test]
    fn counts_all_or_nothing() {
        let k = KeyLayout::default();
        let store = MemoryStore::new();
        let a = cap(&k.cap("u", "a", ""), 2, Window::Fixed { expires_at: None });
        let b = cap(
            &k.cap("u", "b", ""),
            1,
            Window::Rolling(Duration::from_secs(10)),
        );
        let req = |ms| CountRequest {
            counters: vec![a.clone(), b.clone()],
            event: format!("e{ms}").into(),
            now: t(ms),
        };
        assert_eq!(
            store.check_and_count(&req(0)).unwrap(),
            CountOutcome::Counted(vec![1, 1])
        );
        assert_eq!(
            store.check_and_count(&req(1_000)).unwrap(),
            CountOutcome::Full { index: 1, count: 1 }
        );
        // The refused event was not counted in `a`.
        assert_eq!(store.count(&a.key, t(1_000)).unwrap(), 1);
        // At exactly 10 s the first entry leaves the rolling window.
        assert_eq!(
            store.check_and_count(&req(10_000)).unwrap(),
            CountOutcome::Counted(vec![2, 1])
        );
        assert_eq!(
            store.check_and_count(&req(30_000)).unwrap(),
            CountOutcome::Full { index: 0, count: 2 }
        );
    }

    #[test]
    fn fixed_counters_expire() {
        let k = KeyLayout::default();
        let store = MemoryStore::new();
        let c = cap(
            &k.cap("u", "a", "d1"),
            1,
            Window::Fixed {
                expires_at: Some(t(100)),
            },
        );
        let req = |ms| CountRequest {
            counters: vec![c.clone()],
            event: "e".into(),
            now: t(ms),
        };
        assert!(matches!(
            store.check_and_count(&req(0)).unwrap(),
            CountOutcome::Counted(_)
        ));
        assert!(matches!(
            store.check_and_count(&req(99)).unwrap(),
            CountOutcome::Full { .. }
        ));
        assert!(matches!(
            store.check_and_count(&req(100)).unwrap(),
            CountOutcome::Counted(_)
        ));
        assert_eq!(store.purge_expired(t(1_000)), 1);
        assert!(store.is_empty());
    }

    #[test]
    fn reserve_is_idempotent_and_bounded() {
        let k = KeyLayout::default();
        let store = MemoryStore::new();
        let req = |user: &str| ReserveRequest {
            claim: k.coupon_claim("c", 0, "camp", user, ""),
            claim_ttl: None,
            stock: Bounded {
                key: k.coupon_stock("c", 0),
                limit: Some(2),
            },
            budget: Some((
                Bounded {
                    key: k.coupon_budget("c", 0),
                    limit: Some(25),
                },
                10,
            )),
            per_user: None,
            payload: user.as_bytes().to_vec(),
            now: t(0),
        };
        assert_eq!(
            store.reserve(&req("a")).unwrap(),
            ReserveOutcome::Reserved { serial: 1 }
        );
        assert_eq!(
            store.reserve(&req("a")).unwrap(),
            ReserveOutcome::Duplicate(ClaimRecord {
                serial: 1,
                payload: b"a".to_vec()
            })
        );
        assert_eq!(
            store.reserve(&req("b")).unwrap(),
            ReserveOutcome::Reserved { serial: 2 }
        );
        assert_eq!(
            store.reserve(&req("c")).unwrap(),
            ReserveOutcome::Refused {
                reason: ReserveRefusal::Stock,
                user_count: 0
            }
        );
        assert_eq!(store.count(&k.coupon_budget("c", 0), t(0)).unwrap(), 20);
        assert_eq!(
            store
                .claim(&k.coupon_claim("c", 0, "camp", "b", ""), t(0))
                .unwrap(),
            Some(ClaimRecord {
                serial: 2,
                payload: b"b".to_vec()
            })
        );
    }

    #[test]
    fn rolling_windows_need_event_ids_and_keep_late_entries() {
        let k = KeyLayout::default();
        let store = MemoryStore::new();
        let c = cap(
            &k.cap("u", "r", ""),
            5,
            Window::Rolling(Duration::from_secs(10)),
        );
        let req = |ms, event: &str| CountRequest {
            counters: vec![c.clone()],
            event: event.into(),
            now: t(ms),
        };
        assert!(matches!(
            store.check_and_count(&req(0, "")),
            Err(StoreError::InvalidRequest(_))
        ));
        store.check_and_count(&req(5_000, "a")).unwrap();
        // A late event does not cut short the life of the newer one.
        store.check_and_count(&req(1_000, "b")).unwrap();
        assert_eq!(store.count(&c.key, t(12_000)).unwrap(), 2);
        assert_eq!(
            store.check_and_count(&req(12_000, "c")).unwrap(),
            CountOutcome::Counted(vec![2])
        );
        assert_ne!(unique_event_id(), unique_event_id());
    }

    #[test]
    fn wrong_types_are_errors_not_panics() {
        let k = KeyLayout::default();
        let store = MemoryStore::new();
        let key = k.cap("u", "a", "");
        store.set_if_absent(&key, b"x", None, t(0)).unwrap();
        let req = CountRequest {
            counters: vec![cap(&key, 1, Window::Fixed { expires_at: None })],
            event: "e".into(),
            now: t(0),
        };
        assert!(matches!(
            store.check_and_count(&req),
            Err(StoreError::WrongType { .. })
        ));
        assert!(matches!(
            store.set_if_absent(&key, b"x", Some(Duration::ZERO), t(0)),
            Err(StoreError::InvalidRequest(_))
        ));
    }
}
