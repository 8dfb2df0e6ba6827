//! Facts by key: for the fact types (not events) that declare a key, the
//! live facts holding each key value. Hosts look a user's state up through
//! it, and an upsert finds the fact it replaces without a scan.

use super::facts::FactId;
use nudge_core::{FactKind, Schema, TypeId, Value};
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

/// The facts holding one key, with their insertion order.
type Holders = SmallVec<[(u64, FactId); 1]>;

#[derive(Debug, Default)]
pub(crate) struct KeyIndex {
    /// For each type, its key field if the type is indexed.
    key_of: Vec<Option<usize>>,
    /// Facts by key, in insertion order (their `order`), so that a
    /// restored session lists them as the original did.
    map: FxHashMap<(TypeId, Value), Holders>,
}

impl KeyIndex {
    pub fn new(schema: &Schema) -> Self {
        let key_of = schema
            .types()
            .iter()
            .map(|t| match t.kind() {
                FactKind::Fact => t.key().map(|k| k.index()),
                FactKind::Event => None,
            })
            .collect();
        KeyIndex {
            key_of,
            map: FxHashMap::default(),
        }
    }

    /// The key field of `ty`, if its facts are indexed.
    #[inline]
    pub fn key_field(&self, ty: TypeId) -> Option<usize> {
        self.key_of.get(ty.index()).copied().flatten()
    }

    /// Indexes fact `id`, inserted `order`-th.
    pub fn add(&mut self, ty: TypeId, values: &[Value], id: FactId, order: u64) {
        if let Some(k) = self.key_field(ty) {
            let key = values[k].clone();
            let ids = self.map.entry((ty, key)).or_default();
            let at = ids.partition_point(|(o, _)| *o < order);
            ids.insert(at, (order, id));
        }
    }

    pub fn remove(&mut self, ty: TypeId, values: &[Value], id: FactId) {
        let Some(k) = self.key_field(ty) else { return };
        let key = (ty, values[k].clone());
        if let Some(ids) = self.map.get_mut(&key) {
            ids.retain(|(_, i)| *i != id);
            if ids.is_empty() {
                self.map.remove(&key);
            }
        }
    }

    /// The live facts of `ty` with key `key`, in insertion order.
    pub fn get(&self, ty: TypeId, key: &Value) -> impl Iterator<Item = FactId> + '_ {
        // The tuple key needs an owned value; keys are short strings.
        self.map
            .get(&(ty, key.clone()))
            .into_iter()
            .flat_map(|v| v.iter().map(|(_, id)| *id))
    }
}
