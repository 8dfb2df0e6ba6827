//! Time in a session: the clock settings, the timer queue, and the actions
//! waiting for their due time. What the timers mean is in `docs/time.md`.

use super::facts::FactId;
use nudge_core::{Timestamp, Value};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

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

/// What a timer does when it falls due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum TimerKind {
    /// An event leaves the inputs of its type's `horizon`-th horizon.
    Expire { fact: FactId, horizon: u8 },
    /// A `not ... after s within D` token's window ends.
    Deadline { token: u32, generation: u32 },
    /// A delayed action falls due.
    Delayed { id: u32 },
    /// An event leaves working memory.
    Drop { fact: FactId },
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
    /// Index into the network's delayed actions.
    pub action: u32,
    /// Argument or field values, computed when the rule fired.
    pub values: Box<[Value]>,
    /// The facts of the match that scheduled it.
    pub slots: SmallVec<[FactId; 4]>,
    /// The terminal token (and its generation) whose removal by a change of
    /// facts cancels the action; `None` once it no longer can be cancelled.
    pub watch: Option<(u32, u32)>,
}

/// Delayed actions by id; a cancelled or run action leaves a hole that a
/// later one reuses.
#[derive(Debug, Default)]
pub(crate) struct PendingActions {
    pub slots: Vec<Option<Pending>>,
    free: Vec<u32>,
    /// Ids of the actions each terminal token watches.
    pub by_token: rustc_hash::FxHashMap<u32, SmallVec<[u32; 1]>>,
}

impl PendingActions {
    pub fn add(&mut self, p: Pending) -> u32 {
        let watch = p.watch;
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = Some(p);
                id
            }
            None => {
                self.slots.push(Some(p));
                self.slots.len() as u32 - 1
            }
        };
        if let Some((t, _)) = watch {
            self.by_token.entry(t).or_default().push(id);
        }
        id
    }

    pub fn take(&mut self, id: u32) -> Option<Pending> {
        let p = self.slots.get_mut(id as usize)?.take()?;
        self.free.push(id);
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
                if let Some(Some(p)) = self.slots.get_mut(id as usize) {
                    p.watch = None;
                }
            } else if let Some(slot) = self.slots.get_mut(id as usize) {
                if slot.take().is_some() {
                    self.free.push(id);
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}
