//! State machines over users: a checked transition function over a
//! [`MachineDecl`]. A move the declaration does not allow is an error value
//! the caller reports (S19: "churned" straight to "high intent" is illegal),
//! never a panic; each state records when it was entered.
//!
//! ```
//! use nudge_core::decl::MachineDecl;
//! use nudge_core::primitives::machine::{Machine, MachineError};
//! use nudge_core::Timestamp;
//! let decl = MachineDecl {
//!     name: "lifecycle".into(),
//!     states: vec!["prospect".into(), "high_intent".into(), "churned".into()],
//!     initial: 0,
//!     transitions: vec![(0, 1), (1, 2), (0, 2)],
//! };
//! let m = Machine::new(decl)?;
//! let t0 = Timestamp::from_millis(0);
//! let start = m.start(t0);
//! let hot = m.transition(&start, "high_intent", Timestamp::from_millis(60_000))?;
//! assert_eq!(m.state_name(&hot), "high_intent");
//! assert_eq!(hot.entered_at(), Timestamp::from_millis(60_000));
//! let gone = m.transition(&hot, "churned", Timestamp::from_millis(120_000))?;
//! assert!(matches!(
//!     m.transition(&gone, "high_intent", Timestamp::from_millis(180_000)),
//!     Err(MachineError::Illegal { .. })
//! ));
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::decl::MachineDecl;
use crate::time::{Duration, Timestamp};
use std::collections::HashSet;
use std::sync::Arc;

/// Why a machine or a transition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MachineError {
    /// The declaration has no states.
    #[error("machine `{0}` has no states")]
    NoStates(Arc<str>),
    /// Two states share a name.
    #[error("machine `{machine}` declares state `{state}` twice")]
    DuplicateState {
        /// The machine.
        machine: Arc<str>,
        /// The state.
        state: Arc<str>,
    },
    /// The initial state or a transition points past the states.
    #[error("machine `{machine}` refers to state #{index}, but has {len} states")]
    BadIndex {
        /// The machine.
        machine: Arc<str>,
        /// The index.
        index: usize,
        /// Number of states.
        len: usize,
    },
    /// No state by that name.
    #[error("machine `{machine}` has no state `{state}`")]
    UnknownState {
        /// The machine.
        machine: Arc<str>,
        /// The name asked for.
        state: Arc<str>,
    },
    /// The move is not declared.
    #[error("machine `{machine}`: `{from}` → `{to}` is not an allowed transition")]
    Illegal {
        /// The machine.
        machine: Arc<str>,
        /// The current state.
        from: Arc<str>,
        /// The state asked for.
        to: Arc<str>,
    },
    /// The transition is dated before the current state was entered.
    #[error("machine `{machine}`: transition at {at} is before the current state was entered ({entered_at})")]
    BeforeEntry {
        /// The machine.
        machine: Arc<str>,
        /// When the transition was asked for.
        at: Timestamp,
        /// When the current state was entered.
        entered_at: Timestamp,
    },
}

/// Where one user is in a machine: a state and when it was entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct MachineState {
    state: usize,
    entered_at: Timestamp,
}

impl MachineState {
    /// The state's index in the declaration.
    pub fn index(&self) -> usize {
        self.state
    }

    /// When the state was entered.
    pub fn entered_at(&self) -> Timestamp {
        self.entered_at
    }

    /// How long the user has been in the state at `now` (zero if `now` is
    /// earlier).
    pub fn time_in_state(&self, now: Timestamp) -> Duration {
        Duration::from_millis((now.as_millis() - self.entered_at.as_millis()).max(0))
    }
}

/// A checked state machine.
#[derive(Debug, Clone)]
pub struct Machine {
    decl: MachineDecl,
    allowed: HashSet<(usize, usize)>,
}

impl Machine {
    /// Checks the declaration: states present and unique, indices in range.
    pub fn new(decl: MachineDecl) -> Result<Self, MachineError> {
        let len = decl.states.len();
        if len == 0 {
            return Err(MachineError::NoStates(decl.name.clone()));
        }
        let mut seen = HashSet::new();
        for s in &decl.states {
            if !seen.insert(s.clone()) {
                return Err(MachineError::DuplicateState {
                    machine: decl.name.clone(),
                    state: s.clone(),
                });
            }
        }
        let bad = |index| MachineError::BadIndex {
            machine: decl.name.clone(),
            index,
            len,
        };
        if decl.initial >= len {
            return Err(bad(decl.initial));
        }
        for &(from, to) in &decl.transitions {
            if from >= len || to >= len {
                return Err(bad(from.max(to)));
            }
        }
        let allowed = decl.transitions.iter().copied().collect();
        Ok(Machine { decl, allowed })
    }

    /// The declaration.
    pub fn decl(&self) -> &MachineDecl {
        &self.decl
    }

    /// The initial state, entered at `at`.
    pub fn start(&self, at: Timestamp) -> MachineState {
        MachineState {
            state: self.decl.initial,
            entered_at: at,
        }
    }

    /// The name of a state.
    pub fn state_name(&self, state: &MachineState) -> &str {
        &self.decl.states[state.state]
    }

    /// Whether `from → to` is allowed (both by name).
    pub fn allows(&self, from: &str, to: &str) -> bool {
        match (self.decl.state(from), self.decl.state(to)) {
            (Some(f), Some(t)) => self.allowed.contains(&(f, t)),
            _ => false,
        }
    }

    /// A state by name, entered at `at`, for restoring a user's state from
    /// the host's records.
    pub fn restore(
        &self,
        state: &str,
        entered_at: Timestamp,
    ) -> Result<MachineState, MachineError> {
        Ok(MachineState {
            state: self.index_of(state)?,
            entered_at,
        })
    }

    fn index_of(&self, state: &str) -> Result<usize, MachineError> {
        self.decl
            .state(state)
            .ok_or_else(|| MachineError::UnknownState {
                machine: self.decl.name.clone(),
                state: state.into(),
            })
    }

    /// Moves from `current` to the state named `to` at `at`. A state moving
    /// to itself is a transition like any other: allowed only if declared,
    /// and it re-enters the state.
    pub fn transition(
        &self,
        current: &MachineState,
        to: &str,
        at: Timestamp,
    ) -> Result<MachineState, MachineError> {
        let to = self.index_of(to)?;
        self.transition_to(current, to, at)
    }

    /// [`transition`](Self::transition) by state index.
    pub fn transition_to(
        &self,
        current: &MachineState,
        to: usize,
        at: Timestamp,
    ) -> Result<MachineState, MachineError> {
        let len = self.decl.states.len();
        if to >= len || current.state >= len {
            return Err(MachineError::BadIndex {
                machine: self.decl.name.clone(),
                index: to.max(current.state),
                len,
            });
        }
        if !self.allowed.contains(&(current.state, to)) {
            return Err(MachineError::Illegal {
                machine: self.decl.name.clone(),
                from: self.decl.states[current.state].clone(),
                to: self.decl.states[to].clone(),
            });
        }
        if at < current.entered_at {
            return Err(MachineError::BeforeEntry {
                machine: self.decl.name.clone(),
                at,
                entered_at: current.entered_at,
            });
        }
        Ok(MachineState {
            state: to,
            entered_at: at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(states: &[&str], initial: usize, transitions: &[(usize, usize)]) -> MachineDecl {
        MachineDecl {
            name: "m".into(),
            states: states.iter().map(|s| Arc::from(*s)).collect(),
            initial,
            transitions: transitions.to_vec(),
        }
    }

    #[test]
    fn bad_declarations_are_refused() {
        assert!(matches!(
            Machine::new(decl(&[], 0, &[])),
            Err(MachineError::NoStates(_))
        ));
        assert!(matches!(
            Machine::new(decl(&["a", "a"], 0, &[])),
            Err(MachineError::DuplicateState { .. })
        ));
        assert!(matches!(
            Machine::new(decl(&["a"], 1, &[])),
            Err(MachineError::BadIndex { index: 1, .. })
        ));
        assert!(matches!(
            Machine::new(decl(&["a"], 0, &[(0, 3)])),
            Err(MachineError::BadIndex { index: 3, .. })
        ));
    }

    #[test]
    fn self_loops_need_declaring_and_time_must_not_go_back() {
        let m = Machine::new(decl(&["a", "b"], 0, &[(0, 1), (1, 1)])).unwrap();
        let t = Timestamp::from_millis;
        let a = m.start(t(10));
        assert!(matches!(
            m.transition(&a, "a", t(20)),
            Err(MachineError::Illegal { .. })
        ));
        assert!(matches!(
            m.transition(&a, "zzz", t(20)),
            Err(MachineError::UnknownState { .. })
        ));
        assert!(matches!(
            m.transition(&a, "b", t(5)),
            Err(MachineError::BeforeEntry { .. })
        ));
        let b = m.transition(&a, "b", t(20)).unwrap();
        let b2 = m.transition(&b, "b", t(30)).unwrap();
        assert_eq!(b2.entered_at(), t(30));
        assert_eq!(b2.time_in_state(t(90)).as_millis(), 60);
        assert!(m.transition_to(&b2, 9, t(40)).is_err());
        assert!(m.allows("a", "b") && !m.allows("b", "a") && !m.allows("x", "b"));
    }
}
