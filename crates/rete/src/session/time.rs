//! Time in a session: the clock settings, the timer queue, and the actions
//! waiting for their due time. What the timers mean is in `docs/time.md`.

use super::facts::FactId;
use nudge_core::{Timestamp, Value};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// The clock a session runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Clock {
    /// Moved only by [`Session::advance_to`](super::Session::advance_to):
    /// replays and tests are exact.
    #[default]
    Pseudo,
    /// The system time: [`Session::fire`](super::Session::fire) first
    /// advances the clock to it, running the timers due on the way.
    System,
}

/// What happens to an event older than the watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum LatePolicy {
    /// Refused with [`FactError::Late`](super::FactError::Late); the session
    /// is unchanged.
    #[default]
    Reject,
    /// Taken as if it had happened at the watermark.
    AtWatermark,
}

/// Events by time, per type: they leave the inputs of each horizon of their
/// type, then working memory, in time order, so a queue per type replaces a
/// timer per event. Events arrive in time order up to the lateness, and a
/// late one is never older than one that has already left, so an insertion
/// lands near the back and behind every position already passed.
#[derive(Debug, Default)]
pub(crate) struct ExpiryQueues {
    pub types: Vec<TypeQueue>,
}

#[derive(Debug, Default)]
pub(crate) struct TypeQueue {
    /// Events by time; entries of retracted or re-timed events are skipped
    /// when reached.
    pub events: VecDeque<(Timestamp, FactId)>,
    /// For each horizon of the type, how many front entries have left it.
    pub passed: SmallVec<[usize; 2]>,
}

impl ExpiryQueues {
    pub fn new(horizons: &[SmallVec<[nudge_core::Duration; 2]>]) -> Self {
        ExpiryQueues {
            types: horizons
                .iter()
                .map(|h| TypeQueue {
                    events: VecDeque::new(),
                    passed: SmallVec::from_elem(0, h.len()),
                })
                .collect(),
        }
    }

    pub fn push(&mut self, ty: usize, time: Timestamp, id: FactId) {
        let Some(q) = self.types.get_mut(ty) else {
            return;
        };
        let mut at = q.events.len();
        while at > 0 && q.events[at - 1].0 > time {
            at -= 1;
        }
        q.events.insert(at, (time, id));
    }

    pub fn len(&self) -> usize {
        self.types.iter().map(|q| q.events.len()).sum()
    }
}

/// What a timer does when it falls due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum TimerKind {
    /// A `not ... after s within D` token's window ends.
    Deadline { token: u32, generation: u32 },
    /// A delayed action falls due.
    Delayed { id: u64 },
    /// A test that reads the clock may have changed its answer for this
    /// token (and fact, at a join).
    Recheck {
        node: u32,
        token: u32,
        generation: u32,
        fact: FactId,
        /// The fact's insertion order when scheduled: a modified fact has
        /// a chain of its own.
        seq: u64,
    },
}

/// Timers by due instant (on the session clock), then by scheduling order.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(i64, u64, TimerKind)>>,
    seq: u64,
}

impl Timers {
    pub fn push(&mut self, at: Timestamp, kind: TimerKind) {
        self.seq += 1;
        self.heap.push(Reverse((at.as_millis(), self.seq, kind)));
    }

    /// The instant of the next timer.
    pub fn next(&self) -> Option<Timestamp> {
        self.heap
            .peek()
            .map(|Reverse((at, _, _))| Timestamp::from_millis(*at))
    }

    /// The next timer, if it is due at or before `now`.
    pub fn pop_due(&mut self, now: Timestamp) -> Option<TimerKind> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now.as_millis() => {
                self.heap.pop().map(|Reverse((_, _, k))| k)
            }
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }
}

/// An action scheduled by `after D`, waiting for its due time.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub due: Timestamp,
    pub rule: u32,
    /// Index into the network's delayed actions, or for a retry the
    /// emitted action to decide again.
    pub action: u32,
    /// Whether this decides a deferred decision again.
    pub retry: bool,
    /// The firing that scheduled it.
    pub origin: u64,
    /// Argument or field values, computed when the rule fired.
    pub values: Box<[Value]>,
    /// The facts of the match that scheduled it.
    pub slots: SmallVec<[FactId; 4]>,
    /// The terminal token (and its generation) whose removal by a change of
    /// facts cancels the action; `None` once it no longer can be cancelled.
    pub watch: Option<(u32, u32)>,
}

/// Delayed actions by id. Ids are never reused, so a timer of a cancelled
/// action cannot run a later one.
#[derive(Debug, Default)]
pub(crate) struct PendingActions {
    pub actions: rustc_hash::FxHashMap<u64, Pending>,
    next: u64,
    /// Ids of the actions each terminal token watches.
    pub by_token: rustc_hash::FxHashMap<u32, SmallVec<[u64; 1]>>,
}

impl PendingActions {
    pub fn add(&mut self, p: Pending) -> u64 {
        self.next += 1;
        let id = self.next;
        if let Some((t, _)) = p.watch {
            self.by_token.entry(t).or_default().push(id);
        }
        self.actions.insert(id, p);
        id
    }

    pub fn take(&mut self, id: u64) -> Option<Pending> {
        let p = self.actions.remove(&id)?;
        if let Some((t, _)) = p.watch {
            if let Some(ids) = self.by_token.get_mut(&t) {
                ids.retain(|x| *x != id);
                if ids.is_empty() {
                    self.by_token.remove(&t);
                }
            }
        }
        Some(p)
    }

    /// A watched token was removed: its actions are cancelled, or, when
    /// only time ended the match, kept with nothing left to watch.
    pub fn token_removed(&mut self, t: u32, by_time: bool) {
        let Some(ids) = self.by_token.remove(&t) else {
            return;
        };
        for id in ids {
            if by_time {
                if let Some(p) = self.actions.get_mut(&id) {
                    p.watch = None;
                }
            } else {
                self.actions.remove(&id);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.actions.len()
    }
}
