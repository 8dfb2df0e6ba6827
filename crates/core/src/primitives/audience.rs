//! Audiences: sets of users as Roaring bitmaps over dense `u32` user
//! indices, an [`IdDictionary`] between external ids and those indices, set
//! algebra, and the two interchange formats audiences arrive in.
//!
//! * **Roaring portable format** (the format of CRoaring, pyroaring, Java's
//!   `RoaringBitmap` and roaring-rs): [`Audience::to_portable`] and
//!   [`Audience::from_portable`].
//! * **ClickHouse `groupBitmap` state** for `UInt32` columns: one kind
//!   byte; `0` is a small set: a varint (LEB128) count, then that many
//!   values, each 4 bytes little-endian (at most 32); `1` is a varint byte
//!   length, then a portable bitmap. [`Audience::to_clickhouse`] writes the
//!   small form for up to 32 members, as ClickHouse does; the reader takes
//!   both forms.
//!
//! ```
//! use nudge_core::primitives::audience::{Audience, IdDictionary};
//! let mut ids = IdDictionary::new();
//! let active: Audience = ["u1", "u2", "u3"].iter().map(|u| ids.intern(u)).collect::<Result<_, _>>()?;
//! let bought: Audience = ["u2"].iter().map(|u| ids.intern(u)).collect::<Result<_, _>>()?;
//! // S16: active today and not purchased today.
//! let target = &active - &bought;
//! let names: Vec<&str> = target.iter().filter_map(|i| ids.id(i)).collect();
//! assert_eq!(names, ["u1", "u3"]);
//! let bytes = target.to_portable();
//! assert_eq!(Audience::from_portable(&bytes)?, target);
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::decl::AudienceExpr;
use roaring::RoaringBitmap;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// A dense index of a user within an [`IdDictionary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserIndex(u32);

impl UserIndex {
    /// The index as a number.
    pub fn get(self) -> u32 {
        self.0
    }

    /// An index from a number (for bitmaps built elsewhere on the same
    /// dictionary).
    pub fn from_u32(i: u32) -> Self {
        UserIndex(i)
    }
}

impl fmt::Display for UserIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Why an audience operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AudienceError {
    /// The dictionary holds 2³² ids already.
    #[error("the id dictionary is full (2^32 ids)")]
    DictionaryFull,
    /// An id appears twice in a list meant to define a dictionary.
    #[error("id `{0}` appears twice")]
    DuplicateId(Arc<str>),
    /// Bytes are not a portable Roaring bitmap.
    #[error("not a portable Roaring bitmap")]
    Portable(#[source] std::io::Error),
    /// Bytes are not a ClickHouse `groupBitmap` state.
    #[error("not a ClickHouse groupBitmap state: {0}")]
    ClickHouse(&'static str),
    /// An audience expression names an audience that is not loaded.
    #[error("unknown audience `{0}`")]
    Unknown(Arc<str>),
    /// The audience is defined by the rules from others; it cannot be
    /// loaded.
    #[error("audience `{0}` is computed from other audiences by the rules; load those instead")]
    Defined(Arc<str>),
}

/// A two-way map between external ids and dense indices `0, 1, 2, ...` in
/// order of first appearance. An index never changes once given, so bitmaps
/// built on a dictionary stay valid as it grows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdDictionary {
    by_id: HashMap<Arc<str>, u32>,
    ids: Vec<Arc<str>>,
}

impl IdDictionary {
    /// An empty dictionary.
    pub fn new() -> Self {
        IdDictionary::default()
    }

    /// A dictionary giving `ids[i]` the index `i` (to reload a saved one).
    pub fn from_ids<I, S>(ids: I) -> Result<Self, AudienceError>
    where
        I: IntoIterator<Item = S>,
        S: Into<Arc<str>>,
    {
        let mut dict = IdDictionary::new();
        for id in ids {
            let id = id.into();
            if dict.by_id.contains_key(&id) {
                return Err(AudienceError::DuplicateId(id));
            }
            dict.intern(&id)?;
        }
        Ok(dict)
    }

    /// The index of `id`, given a new one if it has none.
    pub fn intern(&mut self, id: &str) -> Result<UserIndex, AudienceError> {
        if let Some(&i) = self.by_id.get(id) {
            return Ok(UserIndex(i));
        }
        let i = u32::try_from(self.ids.len()).map_err(|_| AudienceError::DictionaryFull)?;
        let id: Arc<str> = id.into();
        self.ids.push(id.clone());
        self.by_id.insert(id, i);
        Ok(UserIndex(i))
    }

    /// The index of `id`, if it has one.
    pub fn index(&self, id: &str) -> Option<UserIndex> {
        self.by_id.get(id).map(|&i| UserIndex(i))
    }

    /// The id of an index.
    pub fn id(&self, index: UserIndex) -> Option<&str> {
        self.ids.get(index.0 as usize).map(|s| &**s)
    }

    /// Every id, in index order (what [`from_ids`](Self::from_ids) reloads).
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.ids.iter().map(|s| &**s)
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// A set of users, as dense indices of an [`IdDictionary`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Audience {
    bits: RoaringBitmap,
}

impl Audience {
    /// The empty audience.
    pub fn new() -> Self {
        Audience::default()
    }

    /// Adds a user; whether it was new.
    pub fn insert(&mut self, user: UserIndex) -> bool {
        self.bits.insert(user.0)
    }

    /// Removes a user; whether it was there.
    pub fn remove(&mut self, user: UserIndex) -> bool {
        self.bits.remove(user.0)
    }

    /// Whether the user is a member.
    pub fn contains(&self, user: UserIndex) -> bool {
        self.bits.contains(user.0)
    }

    /// Number of members.
    pub fn len(&self) -> u64 {
        self.bits.len()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.bits.is_empty()
    }

    /// Members in ascending index order.
    pub fn iter(&self) -> impl Iterator<Item = UserIndex> + '_ {
        self.bits.iter().map(UserIndex)
    }

    /// Members of both.
    pub fn and(&self, other: &Audience) -> Audience {
        Audience {
            bits: &self.bits & &other.bits,
        }
    }

    /// Members of either.
    pub fn or(&self, other: &Audience) -> Audience {
        Audience {
            bits: &self.bits | &other.bits,
        }
    }

    /// Members of `self` that are not in `other`.
    pub fn and_not(&self, other: &Audience) -> Audience {
        Audience {
            bits: &self.bits - &other.bits,
        }
    }

    /// Members of exactly one.
    pub fn xor(&self, other: &Audience) -> Audience {
        Audience {
            bits: &self.bits ^ &other.bits,
        }
    }

    /// Size of the intersection, without building it.
    pub fn and_len(&self, other: &Audience) -> u64 {
        self.bits.intersection_len(&other.bits)
    }

    /// The underlying bitmap.
    pub fn as_bitmap(&self) -> &RoaringBitmap {
        &self.bits
    }

    /// Compresses runs of consecutive members (run containers); the set is
    /// unchanged, the portable bytes usually shorter.
    pub fn optimize(&mut self) {
        self.bits.optimize();
    }

    /// The portable Roaring serialization.
    pub fn to_portable(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bits.serialized_size());
        self.bits
            .serialize_into(&mut out)
            .unwrap_or_else(|_| unreachable!("writing to a Vec cannot fail"));
        out
    }

    /// Reads the portable Roaring serialization (all of `bytes`).
    pub fn from_portable(bytes: &[u8]) -> Result<Audience, AudienceError> {
        let mut reader = bytes;
        let bits = RoaringBitmap::deserialize_from(&mut reader).map_err(AudienceError::Portable)?;
        if !reader.is_empty() {
            return Err(AudienceError::Portable(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "trailing bytes after the bitmap",
            )));
        }
        Ok(Audience { bits })
    }

    /// The ClickHouse `groupBitmap` state of a `UInt32` column.
    pub fn to_clickhouse(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.bits.len() <= CLICKHOUSE_SMALL_MAX {
            out.push(0);
            write_varint(&mut out, self.bits.len());
            for v in &self.bits {
                out.extend_from_slice(&v.to_le_bytes());
            }
        } else {
            let portable = self.to_portable();
            out.push(1);
            write_varint(&mut out, portable.len() as u64);
            out.extend_from_slice(&portable);
        }
        out
    }

    /// Reads a ClickHouse `groupBitmap` state of a `UInt32` column.
    pub fn from_clickhouse(bytes: &[u8]) -> Result<Audience, AudienceError> {
        let bad = AudienceError::ClickHouse;
        let (&kind, mut rest) = bytes.split_first().ok_or(bad("empty"))?;
        match kind {
            0 => {
                let count = read_varint(&mut rest)?;
                if count > CLICKHOUSE_SMALL_MAX {
                    return Err(bad("a small set holds at most 32 values"));
                }
                let count = count as usize;
                if rest.len() != count * 4 {
                    return Err(bad("small set length does not match its count"));
                }
                let bits = rest
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                Ok(Audience { bits })
            }
            1 => {
                let len = read_varint(&mut rest)?;
                if rest.len() as u64 != len {
                    return Err(bad("bitmap length does not match its prefix"));
                }
                Audience::from_portable(rest)
            }
            _ => Err(bad("unknown kind byte (0 small set, 1 bitmap)")),
        }
    }
}

/// ClickHouse keeps up to this many values in its small-set form.
const CLICKHOUSE_SMALL_MAX: u64 = 32;

fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn read_varint(bytes: &mut &[u8]) -> Result<u64, AudienceError> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes
            .split_first()
            .ok_or(AudienceError::ClickHouse("truncated varint"))?;
        *bytes = rest;
        v |= u64::from(b & 0x7F) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(AudienceError::ClickHouse("varint longer than 64 bits"))
}

impl FromIterator<UserIndex> for Audience {
    fn from_iter<I: IntoIterator<Item = UserIndex>>(iter: I) -> Self {
        Audience {
            bits: iter.into_iter().map(|u| u.0).collect(),
        }
    }
}

impl From<RoaringBitmap> for Audience {
    fn from(bits: RoaringBitmap) -> Self {
        Audience { bits }
    }
}

macro_rules! set_operator {
    ($trait:ident, $method:ident, $op:ident) => {
        impl std::ops::$trait<&Audience> for &Audience {
            type Output = Audience;
            fn $method(self, other: &Audience) -> Audience {
                self.$op(other)
            }
        }
    };
}

set_operator!(BitAnd, bitand, and);
set_operator!(BitOr, bitor, or);
set_operator!(Sub, sub, and_not);
set_operator!(BitXor, bitxor, xor);

/// Answers "is this user in that audience?" for caps, suppression lists
/// and allow-lists.
pub trait Membership {
    /// Whether `user` (an external id) is a member of `audience`.
    fn is_member(&self, audience: &str, user: &str) -> bool;
}

/// No audiences: nobody is a member of anything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAudiences;

impl Membership for NoAudiences {
    fn is_member(&self, _audience: &str, _user: &str) -> bool {
        false
    }
}

impl<F: Fn(&str, &str) -> bool> Membership for F {
    fn is_member(&self, audience: &str, user: &str) -> bool {
        self(audience, user)
    }
}

/// Named audiences over one dictionary.
///
/// ```
/// use nudge_core::decl::AudienceExpr;
/// use nudge_core::primitives::audience::{Audience, Audiences, Membership};
/// let mut all = Audiences::new();
/// all.insert_ids("vip", ["u1", "u2"])?;
/// all.insert_ids("complained", ["u2"])?;
/// let expr = AudienceExpr::AndNot(
///     Box::new(AudienceExpr::Named("vip".into())),
///     Box::new(AudienceExpr::Named("complained".into())),
/// );
/// let ok = all.evaluate(&expr)?;
/// all.insert("vip_ok", ok);
/// assert!(all.is_member("vip_ok", "u1"));
/// assert!(!all.is_member("vip_ok", "u2"));
/// Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Audiences {
    dict: IdDictionary,
    sets: HashMap<Arc<str>, Audience>,
}

impl Audiences {
    /// No audiences, an empty dictionary.
    pub fn new() -> Self {
        Audiences::default()
    }

    /// Audiences over an existing dictionary.
    pub fn with_dictionary(dict: IdDictionary) -> Self {
        Audiences {
            dict,
            sets: HashMap::new(),
        }
    }

    /// The dictionary.
    pub fn dictionary(&self) -> &IdDictionary {
        &self.dict
    }

    /// The dictionary, to intern new ids.
    pub fn dictionary_mut(&mut self) -> &mut IdDictionary {
        &mut self.dict
    }

    /// Sets (or replaces) an audience.
    pub fn insert(&mut self, name: impl Into<Arc<str>>, audience: Audience) {
        self.sets.insert(name.into(), audience);
    }

    /// Sets an audience from external ids, interning them.
    pub fn insert_ids<'i>(
        &mut self,
        name: impl Into<Arc<str>>,
        ids: impl IntoIterator<Item = &'i str>,
    ) -> Result<(), AudienceError> {
        let audience = ids
            .into_iter()
            .map(|id| self.dict.intern(id))
            .collect::<Result<Audience, _>>()?;
        self.insert(name, audience);
        Ok(())
    }

    /// An audience by name.
    pub fn get(&self, name: &str) -> Option<&Audience> {
        self.sets.get(name)
    }

    /// Evaluates set algebra over the loaded audiences, without recursion
    /// (expressions come from rule files written by many hands).
    pub fn evaluate(&self, expr: &AudienceExpr) -> Result<Audience, AudienceError> {
        enum Step<'e> {
            Visit(&'e AudienceExpr),
            Combine(&'e AudienceExpr),
        }
        let mut todo = vec![Step::Visit(expr)];
        let mut values: Vec<Audience> = Vec::new();
        while let Some(step) = todo.pop() {
            match step {
                Step::Visit(AudienceExpr::Named(name)) => {
                    let set = self
                        .sets
                        .get(name)
                        .ok_or_else(|| AudienceError::Unknown(name.clone()))?;
                    values.push(set.clone());
                }
                Step::Visit(
                    e @ (AudienceExpr::And(a, b)
                    | AudienceExpr::Or(a, b)
                    | AudienceExpr::AndNot(a, b)
                    | AudienceExpr::Xor(a, b)),
                ) => {
                    todo.push(Step::Combine(e));
                    todo.push(Step::Visit(b));
                    todo.push(Step::Visit(a));
                }
                Step::Combine(e) => {
                    let (Some(b), Some(a)) = (values.pop(), values.pop()) else {
                        unreachable!("both operands are evaluated before their operator");
                    };
                    values.push(match e {
                        AudienceExpr::And(..) => a.and(&b),
                        AudienceExpr::Or(..) => a.or(&b),
                        AudienceExpr::AndNot(..) => a.and_not(&b),
                        AudienceExpr::Xor(..) => a.xor(&b),
                        AudienceExpr::Named(_) => unreachable!("names are never combined"),
                    });
                }
            }
        }
        Ok(values.pop().unwrap_or_default())
    }
}

impl Membership for Audiences {
    fn is_member(&self, audience: &str, user: &str) -> bool {
        match (self.sets.get(audience), self.dict.index(user)) {
            (Some(set), Some(i)) => set.contains(i),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[u32]) -> Audience {
        v.iter().map(|&i| UserIndex(i)).collect()
    }

    #[test]
    fn varints_round_trip() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            write_varint(&mut out, v);
            let mut slice = out.as_slice();
            assert_eq!(read_varint(&mut slice).unwrap(), v);
            assert!(slice.is_empty());
        }
        assert!(read_varint(&mut [0x80u8].as_slice()).is_err());
    }

    #[test]
    fn clickhouse_rejects_malformed_states() {
        for bytes in [
            &[][..],
            &[2, 0][..],
            &[0, 1, 1, 0, 0][..],
            &[0, 33][..],
            &[1, 5, 0][..],
        ] {
            assert!(Audience::from_clickhouse(bytes).is_err(), "{bytes:?}");
        }
    }

    #[test]
    fn dictionary_reloads_in_order() {
        let mut d = IdDictionary::new();
        for id in ["b", "a", "b", "c"] {
            d.intern(id).unwrap();
        }
        let again = IdDictionary::from_ids(d.ids().map(String::from)).unwrap();
        assert_eq!(again, d);
        assert_eq!(d.index("c"), Some(UserIndex(2)));
        assert!(matches!(
            IdDictionary::from_ids(["x", "x"]),
            Err(AudienceError::DuplicateId(_))
        ));
    }

    #[test]
    fn evaluation_reports_unknown_names() {
        let a = Audiences::new();
        assert!(matches!(
            a.evaluate(&AudienceExpr::Named("nope".into())),
            Err(AudienceError::Unknown(_))
        ));
        let mut a = Audiences::new();
        a.insert("x", set(&[1, 2, 3]));
        a.insert("y", set(&[3, 4]));
        let e = AudienceExpr::Xor(
            Box::new(AudienceExpr::Named("x".into())),
            Box::new(AudienceExpr::Named("y".into())),
        );
        assert_eq!(a.evaluate(&e).unwrap(), set(&[1, 2, 4]));
    }
}
