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
    #[error("fact {0} does not exist (it was retracted, or never inserted)")]
    NoSuchFact(FactId),
}

pub(crate) struct FactData {
    pub ty: TypeId,
    pub values: Box<[Value]>,
    /// Insertion order, for recency; renewed by `modify`.
    pub seq: u64,
    /// Head of the list of tokens that added this fact.
    pub first_token: u32,
}

struct Slot {
    generation: u32,
    data: Option<FactData>,
}

#[derive(Default)]
pub(crate) struct FactStore {
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
}

impl FactStore {
    pub fn get(&self, id: FactId) -> Option<&FactData> {
        let slot = self.slots.get(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.data.as_ref()
    }

    pub fn get_mut(&mut self, id: FactId) -> Option<&mut FactData> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.data.as_mut()
    }

    pub fn add(&mut self, data: FactData) -> FactId {
        self.live += 1;
        match self.free.pop() {
            Some(i) => {
                let slot = &mut self.slots[i as usize];
                slot.data = Some(data);
                FactId {
                    index: i,
                    generation: slot.generation,
                }
            }
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    data: Some(data),
                });
                FactId {
                    index: self.slots.len() as u32 - 1,
                    generation: 0,
                }
            }
        }
    }

    pub fn remove(&mut self, id: FactId) -> Option<FactData> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        let data = slot.data.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(id.index);
        self.live -= 1;
        Some(data)
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn ids(&self) -> impl Iterator<Item = (FactId, &FactData)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
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
    }
    Ok(values.into_boxed_slice())
}
