//! Fact and event types: the schemas facts are checked against.

use crate::value::ValueType;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// Index of a fact type inside a [`Schema`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TypeId(u32);

impl TypeId {
    /// The id of the `i`-th type.
    pub const fn new(i: u32) -> Self {
        TypeId(i)
    }

    /// Position in [`Schema::types`].
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// Index of a field inside its [`FactType`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FieldId(u16);

impl FieldId {
    /// The id of the `i`-th field.
    pub const fn new(i: u16) -> Self {
        FieldId(i)
    }

    /// Position in [`FactType::fields`].
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// Whether a type describes long-lived facts or time-stamped events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactKind {
    /// State that lives until retracted (a profile, a tag).
    Fact,
    /// Something that happened at a time (a page view, an order).
    Event,
}

/// One declared field.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FieldDef {
    /// Field name.
    pub name: Arc<str>,
    /// Field type.
    pub ty: ValueType,
    /// Whether the field may be absent (`null`).
    pub optional: bool,
}

/// A declared fact or event type.
///
/// ```
/// use nudge_core::{FactKind, FactType, FieldDef, ValueType};
/// let order = FactType::new("order_paid", FactKind::Event)
///     .field("user_id", ValueType::String, false)
///     .field("amount", ValueType::Float, false)
///     .with_key("user_id")?;
/// assert_eq!(order.field_id("amount").map(|f| f.index()), Some(1));
/// assert_eq!(order.key().map(|f| f.index()), Some(0));
/// Ok::<(), nudge_core::SchemaError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FactType {
    name: Arc<str>,
    kind: FactKind,
    fields: Vec<FieldDef>,
    key: Option<FieldId>,
    time: Option<FieldId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    contexts: Vec<ContextDef>,
}

/// A context provider of a type: host code, registered by `name`, that
/// fills `fields` of every fact of the type when it is inserted (a user's
/// uplift score, their member level), so conditions read plain fields and
/// never call out while matching.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ContextDef {
    /// Name the host registers the provider under.
    pub name: Arc<str>,
    /// The fields it fills, in declaration order.
    pub fields: Vec<FieldId>,
}

/// Why a schema could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// A named field does not exist.
    #[error("type `{ty}` has no field `{field}`")]
    NoSuchField {
        /// The type.
        ty: String,
        /// The missing field.
        field: String,
    },
    /// The event-time field is not a timestamp.
    #[error("time field `{field}` of `{ty}` must be a timestamp")]
    TimeNotTimestamp {
        /// The type.
        ty: String,
        /// The field.
        field: String,
    },
    /// Two types share a name.
    #[error("type `{0}` is declared twice")]
    DuplicateType(String),
}

impl FactType {
    /// A type with no fields yet.
    pub fn new(name: impl Into<Arc<str>>, kind: FactKind) -> Self {
        FactType {
            name: name.into(),
            kind,
            fields: Vec::new(),
            key: None,
            time: None,
            contexts: Vec::new(),
        }
    }

    /// Adds a field (builder style).
    pub fn field(mut self, name: impl Into<Arc<str>>, ty: ValueType, optional: bool) -> Self {
        self.fields.push(FieldDef {
            name: name.into(),
            ty,
            optional,
        });
        self
    }

    /// Marks `name` as the key field (the entity the fact is about).
    pub fn with_key(mut self, name: &str) -> Result<Self, SchemaError> {
        self.key = Some(self.require(name)?);
        Ok(self)
    }

    /// Marks `name` as the event-time field; it must be a timestamp.
    pub fn with_time(mut self, name: &str) -> Result<Self, SchemaError> {
        let id = self.require(name)?;
        if self.fields[id.index()].ty != ValueType::Timestamp {
            return Err(SchemaError::TimeNotTimestamp {
                ty: self.name.to_string(),
                field: name.to_string(),
            });
        }
        self.time = Some(id);
        Ok(self)
    }

    /// Declares that context provider `name` fills the fields `fields`
    /// (already added) of every inserted fact.
    ///
    /// ```
    /// use nudge_core::{FactKind, FactType, ValueType};
    /// let cart = FactType::new("add_to_cart", FactKind::Event)
    ///     .field("user_id", ValueType::String, false)
    ///     .field("uplift", ValueType::String, true)
    ///     .with_context("features", &["uplift"])?;
    /// assert_eq!(&*cart.contexts()[0].name, "features");
    /// Ok::<(), nudge_core::SchemaError>(())
    /// ```
    pub fn with_context(mut self, name: &str, fields: &[&str]) -> Result<Self, SchemaError> {
        let fields = fields
            .iter()
            .map(|f| self.require(f))
            .collect::<Result<Vec<_>, _>>()?;
        self.contexts.push(ContextDef {
            name: name.into(),
            fields,
        });
        Ok(self)
    }

    /// The context providers that fill fields of this type, in order.
    pub fn contexts(&self) -> &[ContextDef] {
        &self.contexts
    }

    fn require(&self, name: &str) -> Result<FieldId, SchemaError> {
        self.field_id(name).ok_or_else(|| SchemaError::NoSuchField {
            ty: self.name.to_string(),
            field: name.to_string(),
        })
    }

    /// The type's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Fact or event.
    pub fn kind(&self) -> FactKind {
        self.kind
    }

    /// The declared fields, in declaration order.
    pub fn fields(&self) -> &[FieldDef] {
        &self.fields
    }

    /// The key field, if one is declared.
    pub fn key(&self) -> Option<FieldId> {
        self.key
    }

    /// The event-time field, if one is declared.
    pub fn time(&self) -> Option<FieldId> {
        self.time
    }

    /// Looks a field up by name (a linear scan: types are small and this is
    /// only used while compiling, never per fact).
    pub fn field_id(&self, name: &str) -> Option<FieldId> {
        self.fields
            .iter()
            .position(|f| &*f.name == name)
            .map(|i| FieldId(i as u16))
    }

    /// The definition of field `id`.
    pub fn field_def(&self, id: FieldId) -> &FieldDef {
        &self.fields[id.index()]
    }
}

/// All fact types of a ruleset, addressable by [`TypeId`] or by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    types: Vec<FactType>,
    #[serde(skip)]
    by_name: HashMap<Arc<str>, TypeId>,
}

impl Schema {
    /// An empty schema.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a type; its name must be new.
    pub fn add(&mut self, ty: FactType) -> Result<TypeId, SchemaError> {
        if self.by_name.contains_key(ty.name()) {
            return Err(SchemaError::DuplicateType(ty.name().to_string()));
        }
        let id = TypeId(self.types.len() as u32);
        self.by_name.insert(ty.name.clone(), id);
        self.types.push(ty);
        Ok(id)
    }

    /// Looks a type up by name.
    pub fn id(&self, name: &str) -> Option<TypeId> {
        self.by_name.get(name).copied()
    }

    /// The type with id `id`.
    pub fn get(&self, id: TypeId) -> &FactType {
        &self.types[id.index()]
    }

    /// All types, in declaration order.
    pub fn types(&self) -> &[FactType] {
        &self.types
    }

    /// Rebuilds the name index, e.g. after deserializing.
    pub fn reindex(&mut self) {
        self.by_name = self
            .types
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), TypeId(i as u32)))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_field_must_be_timestamp() {
        let err = FactType::new("e", FactKind::Event)
            .field("at", ValueType::Int, false)
            .with_time("at")
            .unwrap_err();
        assert!(matches!(err, SchemaError::TimeNotTimestamp { .. }));
    }

    #[test]
    fn duplicate_types_are_refused() {
        let mut s = Schema::new();
        s.add(FactType::new("a", FactKind::Fact)).unwrap();
        assert_eq!(
            s.add(FactType::new("a", FactKind::Event)),
            Err(SchemaError::DuplicateType("a".into()))
        );
    }

    #[test]
    fn schema_survives_serde() {
        let mut s = Schema::new();
        s.add(FactType::new("a", FactKind::Fact).field("x", ValueType::Int, true))
            .unwrap();
        let mut back: Schema = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        back.reindex();
        assert_eq!(back, s);
        assert_eq!(back.id("a"), Some(TypeId::new(0)));
    }
}
