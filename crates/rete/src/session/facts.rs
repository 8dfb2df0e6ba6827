//! Working memory: facts by id, validated against their type on the way in.

use crate::ir::RuleSet;
use nudge_core::{TypeId, Value, ValueType};
use std::fmt;

/// Identifies a fact in a session. Ids are not reused while the fact lives,
/// and an id of a retracted fact is never mistaken for a newer fact.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct FactId {
    index: u32,
    generation: u32,
}

impl FactId {
    pub(crate) const NONE: FactId = FactId {
        index: u32::MAX,
        generation: u32::MAX,
    };

    /// The id as one number (stable for the fact's life).
    pub fn as_u64(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }
}

impl fmt::Debug for FactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.index, self.generation)
    }
}

impl fmt::Display for FactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.as_u64())
    }
}

/// Why a fact was refused. The session is unchanged when one is returned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FactError {
    /// No type has this id.
    #[error("no fact type with id {0}")]
    UnknownType(u32),
    /// Wrong number of values.
    #[error("`{ty}` has {expected} fields, but {found} values were given")]
    Arity {
        /// The type.
        ty: String,
        /// Fields declared.
        expected: usize,
        /// Values given.
        found: usize,
    },
    /// A value of the wrong type.
    #[error("field `{field}` of `{ty}` is {expected}, but {found} was given")]
    Type {
        /// The type.
        ty: String,
        /// The field.
        field: String,
        /// Declared type.
        expected: ValueType,
        /// What was given, as text.
        found: String,
    },
    /// A required field is null.
    #[error("field `{field}` of `{ty}` is required, but it is missing")]
    Missing {
        /// The type.
        ty: String,
        /// The field.
        field: String,
    },
    /// A float that is NaN or infinite.
    #[error("field `{field}` of `{ty}` must be a finite number")]
    NotFinite {
        /// The type.
        ty: String,
        /// The field.
        field: String,
    },
    /// The id names no live fact.
    #[error("fact {0} does not exist (it was retracted, expired, or never inserted)")]
    NoSuchFact(FactId),
    /// An event older than the watermark, refused by [`LatePolicy::Reject`](super::LatePolicy::Reject).
    #[error("`{ty}` event at {time} is late: the watermark is at {watermark} (raise the session's lateness to accept it)")]
    Late {
        /// The event's type.
        ty: String,
        /// Its time.
        time: nudge_core::Timestamp,
        /// The watermark: the clock less the lateness.
        watermark: nudge_core::Timestamp,
    },
    /// A context provider failed to fill its fields; nothing was inserted.
    #[error("context `{context}` of `{ty}`: {message}")]
    Context {
        /// The fact's type.
        ty: String,
        /// The context provider.
        context: String,
        /// What went wrong.
        message: String,
    },
    /// An upsert named a type without a key field, or one of events.
    #[error("`{0}` has no key field, so its facts cannot be found by key")]
    NotKeyed(String),
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct FactData {
    pub ty: TypeId,
    pub values: Box<[Value]>,
    /// Insertion order, for recency; renewed by `modify`.
    pub seq: u64,
    /// Insertion order, kept by `modify`: orders events of equal time.
    pub order: u64,
    /// An event's time (a fact's insertion time).
    pub time: nudge_core::Timestamp,
    /// Head of the list of tokens that added this fact.
    #[serde(skip, default = "no_token")]
    pub first_token: u32,
}

#[derive(Clone)]
struct Slot {
    generation: u32,
    data: Option<FactData>,
}

/// Ids with this bit set name aggregate bindings, kept apart from facts so
/// that the ids the host sees depend on its own inserts alone.
const BINDING_BIT: u32 = 1 << 31;

/// One arena of slots: a free list and generations that change on reuse.
#[derive(Default, Clone)]
struct Arena {
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
}

impl Arena {
    #[inline]
    fn get(&self, i: u32, generation: u32) -> Option<&FactData> {
        let slot = self.slots.get(i as usize)?;
        if slot.generation != generation {
            return None;
        }
        slot.data.as_ref()
    }

    #[inline]
    fn get_mut(&mut self, i: u32, generation: u32) -> Option<&mut FactData> {
        let slot = self.slots.get_mut(i as usize)?;
        if slot.generation != generation {
            return None;
        }
        slot.data.as_mut()
    }

    fn add(&mut self, data: FactData) -> (u32, u32) {
        self.live += 1;
        match self.free.pop() {
            Some(i) => {
                let slot = &mut self.slots[i as usize];
                slot.data = Some(data);
                (i, slot.generation)
            }
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    data: Some(data),
                });
                (self.slots.len() as u32 - 1, 0)
            }
        }
    }

    fn remove(&mut self, i: u32, generation: u32) -> Option<FactData> {
        let slot = self.slots.get_mut(i as usize)?;
        if slot.generation != generation {
            return None;
        }
        let data = slot.data.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(i);
        self.live -= 1;
        Some(data)
    }
}

/// Working memory: facts and events, and the hidden bindings of
/// aggregates, by id.
#[derive(Default)]
pub(crate) struct FactStore {
    facts: Arena,
    bindings: Arena,
}

/// A fact store's facts as plain data, for snapshots: each slot's
/// generation and content, and the free list in order.
pub(crate) type Exported = (Vec<(u32, Option<FactData>)>, Vec<u32>);

impl FactStore {
    #[inline]
    fn arena(&self, id: FactId) -> (&Arena, u32) {
        if id.index & BINDING_BIT != 0 {
            (&self.bindings, id.index & !BINDING_BIT)
        } else {
            (&self.facts, id.index)
        }
    }

    #[inline]
    pub fn get(&self, id: FactId) -> Option<&FactData> {
        let (a, i) = self.arena(id);
        a.get(i, id.generation)
    }

    #[inline]
    pub fn get_mut(&mut self, id: FactId) -> Option<&mut FactData> {
        if id.index & BINDING_BIT != 0 {
            self.bindings
                .get_mut(id.index & !BINDING_BIT, id.generation)
        } else {
            self.facts.get_mut(id.index, id.generation)
        }
    }

    pub fn add(&mut self, data: FactData) -> FactId {
        let (index, generation) = self.facts.add(data);
        FactId { index, generation }
    }

    /// Adds an aggregate binding.
    pub fn add_binding(&mut self, data: FactData) -> FactId {
        let (index, generation) = self.bindings.add(data);
        FactId {
            index: index | BINDING_BIT,
            generation,
        }
    }

    pub fn remove(&mut self, id: FactId) -> Option<FactData> {
        if id.index & BINDING_BIT != 0 {
            self.bindings.remove(id.index & !BINDING_BIT, id.generation)
        } else {
            self.facts.remove(id.index, id.generation)
        }
    }

    /// Number of live facts and events (bindings not counted).
    pub fn len(&self) -> usize {
        self.facts.live
    }

    /// Every live fact and event, bindings aside.
    pub fn ids(&self) -> impl Iterator<Item = (FactId, &FactData)> {
        self.facts.slots.iter().enumerate().filter_map(|(i, s)| {
            s.data.as_ref().map(|d| {
                (
                    FactId {
                        index: i as u32,
                        generation: s.generation,
                    },
                    d,
                )
            })
        })
    }

    /// The facts' slots and free list, bindings aside.
    pub fn export(&self) -> Exported {
        let slots = self
            .facts
            .slots
            .iter()
            .map(|s| (s.generation, s.data.clone()))
            .collect();
        (slots, self.facts.free.clone())
    }

    /// Replaces the facts (not the bindings, which the session has already
    /// made from its empty start) with exactly the exported ones, under the
    /// same ids.
    pub fn import(&mut self, (slots, free): Exported) -> Result<(), String> {
        let n = slots.len();
        let mut live = 0;
        let slots: Vec<Slot> = slots
            .into_iter()
            .map(|(generation, data)| {
                live += usize::from(data.is_some());
                Slot { generation, data }
            })
            .collect();
        if n >= BINDING_BIT as usize {
            return Err("too many facts".into());
        }
        let mut seen = vec![false; n];
        for &i in &free {
            match slots.get(i as usize) {
                Some(s) if s.data.is_none() && !seen[i as usize] => seen[i as usize] = true,
                _ => return Err(format!("free slot {i} is in use or out of range")),
            }
        }
        if free.len() + live != n {
            return Err("the free list does not match the empty slots".into());
        }
        self.facts = Arena { slots, free, live };
        Ok(())
    }
}

fn no_token() -> u32 {
    super::tokens::NONE
}

/// Checks `values` against type `ty`, widening ints given for float fields.
pub(crate) fn validate(
    rules: &RuleSet,
    ty: TypeId,
    mut values: Vec<Value>,
) -> Result<Box<[Value]>, FactError> {
    let types = rules.schema().types();
    let t = types
        .get(ty.index())
        .ok_or(FactError::UnknownType(ty.index() as u32))?;
    if values.len() != t.fields().len() {
        return Err(FactError::Arity {
            ty: t.name().to_string(),
            expected: t.fields().len(),
            found: values.len(),
        });
    }
    for (v, f) in values.iter_mut().zip(t.fields()) {
        check_field(t, f, v)?;
    }
    Ok(values.into_boxed_slice())
}

/// Checks the fields `fields` of a fact of type `ty`, widening ints to
/// floats where declared.
pub(crate) fn validate_fields(
    rules: &RuleSet,
    ty: TypeId,
    values: &mut [Value],
    fields: &[nudge_core::FieldId],
) -> Result<(), FactError> {
    let t = rules.schema().get(ty);
    for f in fields {
        check_field(t, t.field_def(*f), &mut values[f.index()])?;
    }
    Ok(())
}

#[inline]
fn check_field(
    t: &nudge_core::FactType,
    f: &nudge_core::FieldDef,
    v: &mut Value,
) -> Result<(), FactError> {
    let field = || f.name.to_string();
    match (v.value_type(), f.ty) {
        (None, _) if f.optional => {}
        (None, _) => {
            return Err(FactError::Missing {
                ty: t.name().to_string(),
                field: field(),
            })
        }
        (Some(ValueType::Int), ValueType::Float) => {
            if let Value::Int(i) = v {
                *v = Value::Float(*i as f64);
            }
        }
        (Some(ValueType::Float), ValueType::Float) => {
            if matches!(v, Value::Float(x) if !x.is_finite()) {
                return Err(FactError::NotFinite {
                    ty: t.name().to_string(),
                    field: field(),
                });
            }
        }
        (Some(a), b) if a == b => {}
        (Some(a), b) => {
            return Err(FactError::Type {
                ty: t.name().to_string(),
                field: field(),
                expected: b,
                found: a.to_string(),
            })
        }
    }
    Ok(())
}
