//! The host a ruleset's sessions run with by default: it decides the
//! built-in actions with the ruleset's [`Primitives`] (coupons, messages,
//! caps, transitions, splits, identity links), answers `in audience` from
//! the session's [`Segments`], calls host functions and context providers
//! registered by name, and knows which users can be reached on which
//! channels.

use nudge_core::primitives::audience::{Audience, AudienceError, Membership};
use nudge_core::primitives::decide::{FiringMemo, Primitives, Request, Surroundings};
use nudge_core::primitives::segments::Segments;
use nudge_core::{
    FactKind, FactType, FieldId, Outcome, Schema, Timestamp, TypeId, Value, ValueType,
};
use nudge_rete::ir::{FunctionId, SetId};
use nudge_rete::{DecisionRef, Host, Memory, Network};
use smallvec::SmallVec;
use std::collections::HashMap;
use std::sync::Arc;

/// A host function: arguments in, a value out (`Value::Null` for none).
pub type Function = Box<dyn Fn(&[Value]) -> Value + Send + Sync>;

/// A context provider: fills the fields its context declares for a fact
/// being inserted.
pub trait Provider: Send {
    /// Sets the provider's fields of `fact`; an error refuses the insert.
    fn provide(&mut self, fact: &mut ContextFact<'_>) -> Result<(), String>;
}

impl<F> Provider for F
where
    F: FnMut(&mut ContextFact<'_>) -> Result<(), String> + Send,
{
    fn provide(&mut self, fact: &mut ContextFact<'_>) -> Result<(), String> {
        self(fact)
    }
}

/// A fact being inserted, as a context provider sees it: every field can
/// be read, and the provider's own fields set.
pub struct ContextFact<'a> {
    ty: &'a FactType,
    values: &'a mut [Value],
    fields: &'a [FieldId],
}

impl ContextFact<'_> {
    /// The fact's type name.
    pub fn type_name(&self) -> &str {
        self.ty.name()
    }

    /// The value of field `name` (null until set, for the provider's own).
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.ty.field_id(name).map(|f| &self.values[f.index()])
    }

    /// The value of the type's key field.
    pub fn key(&self) -> Option<&Value> {
        self.ty.key().map(|f| &self.values[f.index()])
    }

    /// The names of the fields this provider fills.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|f| &*self.ty.field_def(*f).name)
    }

    /// Sets one of the provider's fields.
    pub fn set(&mut self, name: &str, value: Value) -> Result<(), String> {
        match self.ty.field_id(name) {
            Some(f) if self.fields.contains(&f) => {
                self.values[f.index()] = value;
                Ok(())
            }
            Some(_) => Err(format!(
                "field `{name}` of `{}` is not filled by this context",
                self.ty.name()
            )),
            None => Err(format!("`{}` has no field `{name}`", self.ty.name())),
        }
    }
}

/// A context provider backed by a table: rows of field values by the
/// fact's key (a feature store's answer for each user). A fact whose key
/// has no row gets nulls, which its optional fields accept.
///
/// ```
/// use nudge::campaign::ContextTable;
/// use nudge::Value;
/// let mut features = ContextTable::new();
/// features.set("u1", [("uplift_segment", Value::from("persuadable"))]);
/// assert_eq!(features.len(), 1);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ContextTable {
    rows: HashMap<Value, Vec<(Arc<str>, Value)>>,
}

impl ContextTable {
    /// An empty table.
    pub fn new() -> Self {
        ContextTable::default()
    }

    /// Sets the row of `key`, replacing any.
    pub fn set<K, N>(&mut self, key: K, values: impl IntoIterator<Item = (N, Value)>)
    where
        K: Into<Value>,
        N: Into<Arc<str>>,
    {
        let row = values.into_iter().map(|(n, v)| (n.into(), v)).collect();
        self.rows.insert(key.into(), row);
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there is no row.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

impl Provider for ContextTable {
    fn provide(&mut self, fact: &mut ContextFact<'_>) -> Result<(), String> {
        let Some(key) = fact.key().cloned() else {
            return Err(format!(
                "`{}` has no key to look rows up by",
                fact.type_name()
            ));
        };
        if let Some(row) = self.rows.get(&key) {
            for (name, v) in row {
                // Columns another context of the type fills are not ours.
                if fact.fields().any(|f| f == &**name) {
                    fact.set(name, v.clone())?;
                }
            }
        }
        Ok(())
    }
}

/// Who can be reached on which channel: by default everyone on every
/// channel; the host records missing bindings and opt-outs.
#[derive(Debug, Clone, Default)]
pub struct Contacts {
    /// Channels each user cannot be reached on, by user.
    unreachable: HashMap<Arc<str>, Vec<Arc<str>>>,
    /// Channels each user opted out of, by user.
    opted_out: HashMap<Arc<str>, Vec<Arc<str>>>,
}

impl Contacts {
    /// Records whether `user` can be reached on `channel` (a push token, a
    /// WeChat binding).
    pub fn set_reachable(&mut self, user: &str, channel: &str, reachable: bool) {
        Self::set(&mut self.unreachable, user, channel, !reachable);
    }

    /// Records whether `user` opted out of `channel`.
    pub fn set_opted_out(&mut self, user: &str, channel: &str, opted_out: bool) {
        Self::set(&mut self.opted_out, user, channel, opted_out);
    }

    fn set(map: &mut HashMap<Arc<str>, Vec<Arc<str>>>, user: &str, channel: &str, on: bool) {
        let channels = map.entry(user.into()).or_default();
        channels.retain(|c| &**c != channel);
        if on {
            channels.push(channel.into());
        }
        if channels.is_empty() {
            map.remove(user);
        }
    }

    fn has(map: &HashMap<Arc<str>, Vec<Arc<str>>>, user: &str, channel: &str) -> bool {
        map.get(user)
            .is_some_and(|channels| channels.iter().any(|c| &**c == channel))
    }
}

/// The default host of a ruleset's sessions (see the module docs).
pub struct CampaignHost {
    primitives: Arc<Primitives>,
    net: Arc<Network>,
    segments: Segments,
    /// The audience each membership set of the network names, by [`SetId`].
    set_names: Vec<Arc<str>>,
    functions: Vec<Option<Function>>,
    /// Providers by (type, context) position.
    providers: Vec<Vec<Option<Box<dyn Provider>>>>,
    contacts: Contacts,
    memo: FiringMemo,
    /// Where a user's time zone is read: a keyed fact type and its field.
    zone: Option<(TypeId, usize)>,
    /// Channels whose address is a field of a keyed fact type: a user
    /// whose fact has it null (or who has no fact) cannot be reached there.
    addresses: Vec<(Arc<str>, TypeId, usize)>,
}

impl std::fmt::Debug for CampaignHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CampaignHost")
            .field("primitives", &self.primitives)
            .finish_non_exhaustive()
    }
}

impl CampaignHost {
    /// A host over a ruleset's primitives and network, with empty
    /// audiences and nothing registered. A user's zone is read from the
    /// `timezone` field of the `profile` fact type, if it has one.
    pub fn new(primitives: Arc<Primitives>, net: Arc<Network>) -> CampaignHost {
        let rules = net.rules();
        let schema = rules.schema();
        let zone = schema.id("profile").and_then(|ty| {
            let t = schema.get(ty);
            let f = t.field_id("timezone")?;
            (t.kind() == nudge_core::FactKind::Fact
                && t.key().is_some()
                && t.field_def(f).ty == ValueType::String)
                .then_some((ty, f.index()))
        });
        CampaignHost {
            segments: Segments::new(&primitives.declarations().audiences),
            set_names: rules.sets().to_vec(),
            functions: rules.functions().iter().map(|_| None).collect(),
            providers: schema
                .types()
                .iter()
                .map(|t| t.contexts().iter().map(|_| None).collect())
                .collect(),
            contacts: Contacts::default(),
            memo: FiringMemo::default(),
            zone,
            addresses: Vec::new(),
            primitives,
            net,
        }
    }

    /// The primitives deciding the built-in actions.
    pub fn primitives(&self) -> &Arc<Primitives> {
        &self.primitives
    }

    /// The session's audiences.
    pub fn segments(&self) -> &Segments {
        &self.segments
    }

    /// The session's audiences, to load one (a new daily segment). Facts
    /// already matched are not tested again.
    pub fn segments_mut(&mut self) -> &mut Segments {
        &mut self.segments
    }

    /// Loads audience `name` from external ids.
    pub fn load_audience<'i>(
        &mut self,
        name: &str,
        ids: impl IntoIterator<Item = &'i str>,
    ) -> Result<(), AudienceError> {
        self.segments.load_ids(name, ids)
    }

    /// Loads audience `name` from a bitmap over the session's dictionary.
    pub fn load_bitmap(&mut self, name: &str, audience: Audience) -> Result<(), AudienceError> {
        self.segments.load(name, audience)
    }

    /// Reachability and opt-outs.
    pub fn contacts_mut(&mut self) -> &mut Contacts {
        &mut self.contacts
    }

    /// Provides host function `name`.
    pub fn set_function(&mut self, name: &str, f: Function) -> Result<(), String> {
        let functions = self.net.rules().functions();
        match functions.iter().position(|s| &*s.name == name) {
            Some(i) => {
                self.functions[i] = Some(f);
                Ok(())
            }
            None => Err(format!("the rules declare no function `{name}`")),
        }
    }

    /// Registers the provider of context `name`, for every type it fills.
    pub fn set_provider<P>(&mut self, name: &str, provider: P) -> Result<(), String>
    where
        P: Provider + Clone + 'static,
    {
        let schema = self.net.rules().schema();
        let mut found = false;
        for (t, slots) in schema.types().iter().zip(self.providers.iter_mut()) {
            for (c, slot) in t.contexts().iter().zip(slots.iter_mut()) {
                if &*c.name == name {
                    *slot = Some(Box::new(provider.clone()));
                    found = true;
                }
            }
        }
        if found {
            Ok(())
        } else {
            Err(format!("the rules declare no context `{name}`"))
        }
    }

    /// Makes field `field` of keyed fact type `ty` the user's address on
    /// `channel` (`profile.wechat_openid` for `wechat`): a user whose fact
    /// has it null, or who has no such fact, cannot be reached there.
    pub fn set_channel_address(
        &mut self,
        channel: &str,
        ty: &str,
        field: &str,
    ) -> Result<(), String> {
        let (id, f) = self.keyed_field(ty, field)?;
        self.addresses.retain(|(c, _, _)| &**c != channel);
        self.addresses.push((channel.into(), id, f));
        Ok(())
    }

    fn keyed_field(&self, ty: &str, field: &str) -> Result<(TypeId, usize), String> {
        let schema = self.net.rules().schema();
        let id = schema
            .id(ty)
            .ok_or_else(|| format!("no fact type `{ty}`"))?;
        let t = schema.get(id);
        if t.key().is_none() || t.kind() != nudge_core::FactKind::Fact {
            return Err(format!("`{ty}` is not a fact type with a key field"));
        }
        let f = t
            .field_id(field)
            .ok_or_else(|| format!("`{ty}` has no field `{field}`"))?;
        Ok((id, f.index()))
    }

    /// Reads users' time zones from field `field` of keyed fact type `ty`.
    pub fn set_zone_source(&mut self, ty: &str, field: &str) -> Result<(), String> {
        let schema = self.net.rules().schema();
        let id = schema
            .id(ty)
            .ok_or_else(|| format!("no fact type `{ty}`"))?;
        let t = schema.get(id);
        if t.key().is_none() {
            return Err(format!("`{ty}` has no key field"));
        }
        let f = t
            .field_id(field)
            .ok_or_else(|| format!("`{ty}` has no field `{field}`"))?;
        self.zone = Some((id, f.index()));
        Ok(())
    }
}

/// What the primitives read from the session deciding.
struct Around<'a> {
    segments: &'a Segments,
    contacts: &'a Contacts,
    zone: Option<(TypeId, usize)>,
    addresses: &'a [(Arc<str>, TypeId, usize)],
    memory: Memory<'a>,
}

impl Surroundings for Around<'_> {
    fn audiences(&self) -> &dyn Membership {
        self.segments
    }

    fn reachable(&self, user: &str, channel: &str) -> bool {
        if Contacts::has(&self.contacts.unreachable, user, channel) {
            return false;
        }
        match self.addresses.iter().find(|(c, _, _)| &**c == channel) {
            Some((_, ty, f)) => self
                .memory
                .by_key(*ty, &Value::from(user))
                .any(|(_, values)| !matches!(values[*f], Value::Null)),
            None => true,
        }
    }

    fn opted_out(&self, user: &str, channel: &str) -> bool {
        Contacts::has(&self.contacts.opted_out, user, channel)
    }

    fn user_zone(&self, user: &str) -> Option<Arc<str>> {
        let (ty, f) = self.zone?;
        let (_, values) = self.memory.by_key(ty, &Value::from(user)).next()?;
        match &values[f] {
            Value::Str(z) => Some(z.clone()),
            _ => None,
        }
    }

    fn machine_state(&self, machine: TypeId, user: &str) -> Option<(Arc<str>, Timestamp)> {
        let (_, values) = self.memory.by_key(machine, &Value::from(user)).next()?;
        match (&values[1], &values[2]) {
            (Value::Str(s), Value::Timestamp(t)) => Some((s.clone(), *t)),
            _ => None,
        }
    }
}

impl Host for CampaignHost {
    fn in_set(&self, set: SetId, key: &Value) -> bool {
        let Some(name) = self.set_names.get(set.index()) else {
            return false;
        };
        match key {
            Value::Str(s) => self.segments.is_member(name, s),
            // Audiences hold ids as text: the int 42 is the id "42". Written
            // on the stack, as this runs for every fact an audience test sees.
            Value::Int(i) => {
                use std::io::Write;
                let mut buf = [0u8; 20];
                let mut w = &mut buf[..];
                let _ = write!(w, "{i}");
                let len = 20 - w.len();
                std::str::from_utf8(&buf[..len]).is_ok_and(|id| self.segments.is_member(name, id))
            }
            _ => false,
        }
    }

    fn call(&self, function: FunctionId, args: &[Value]) -> Value {
        match self.functions.get(function.index()) {
            Some(Some(f)) => f(args),
            _ => Value::Null,
        }
    }

    /// The built-in actions, and any with branches; host actions are the
    /// host's to carry out.
    fn decides(&self, action: &str, has_branches: bool) -> bool {
        has_branches || Primitives::checks(action)
    }

    fn decide(&mut self, d: DecisionRef<'_>, memory: Memory<'_>) -> Outcome {
        let args: SmallVec<[(&str, &Value); 8]> = d.args().collect();
        // Only a coupon's claim needs the digest of the match.
        let match_digest = if d.action() == "coupon" {
            match_digest(self.net.rules().schema(), &memory, d.facts())
        } else {
            0
        };
        let req = Request {
            action: d.action(),
            rule: d.rule().index(),
            rule_name: d.rule_name(),
            args: &args,
            time: d.time(),
            firing: d.firing(),
            retry: d.is_retry(),
            match_digest,
        };
        let around = Around {
            segments: &self.segments,
            contacts: &self.contacts,
            zone: self.zone,
            addresses: &self.addresses,
            memory,
        };
        self.primitives.decide(&req, &around, &mut self.memo)
    }

    fn provide(&mut self, ty: TypeId, context: usize, fact: &mut [Value]) -> Result<(), String> {
        let schema = self.net.rules().schema();
        let t = schema.get(ty);
        let c = &t.contexts()[context];
        match self
            .providers
            .get_mut(ty.index())
            .and_then(|p| p.get_mut(context))
        {
            Some(Some(p)) => p.provide(&mut ContextFact {
                ty: t,
                values: fact,
                fields: &c.fields,
            }),
            _ => Err(format!(
                "no provider is registered for context `{}`",
                c.name
            )),
        }
    }
}

/// FNV-1a 64 over the types and values of the matched facts: stable across
/// sessions, processes and versions (unlike the std hasher), so that a
/// coupon claim made from one match is the same claim wherever it is made.
/// Aggregate bindings count by their values too. An event whose type has no
/// `time` field counts by the time it was inserted as well: two of them with
/// the same values on different days are two occasions, not a retry.
fn match_digest(schema: &Schema, memory: &Memory<'_>, facts: &[nudge_rete::FactId]) -> u64 {
    struct Fnv(u64);
    impl Fnv {
        fn bytes(&mut self, b: &[u8]) {
            for &x in b {
                self.0 = (self.0 ^ u64::from(x)).wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        fn tagged(&mut self, tag: u8, b: &[u8]) {
            self.bytes(&[tag]);
            self.bytes(&(b.len() as u64).to_le_bytes());
            self.bytes(b);
        }
    }
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    for &f in facts {
        let Some(values) = memory.values(f) else {
            h.tagged(0, &[]);
            continue;
        };
        if let Some((ty, _)) = memory.fact(f) {
            h.tagged(9, &ty.index().to_le_bytes());
            let t = schema.get(ty);
            if t.kind() == FactKind::Event && t.time().is_none() {
                if let Some(at) = memory.time(f) {
                    h.tagged(10, &at.as_millis().to_le_bytes());
                }
            }
        }
        for v in values {
            match v {
                Value::Null => h.tagged(1, &[]),
                Value::Bool(b) => h.tagged(2, &[u8::from(*b)]),
                Value::Int(i) => h.tagged(3, &i.to_le_bytes()),
                Value::Float(x) => h.tagged(4, &x.to_bits().to_le_bytes()),
                Value::Str(s) => h.tagged(5, s.as_bytes()),
                Value::Timestamp(t) => h.tagged(6, &t.as_millis().to_le_bytes()),
                Value::Duration(d) => h.tagged(7, &d.as_millis().to_le_bytes()),
                Value::List(items) => {
                    h.tagged(8, &(items.len() as u64).to_le_bytes());
                    for i in items.iter() {
                        h.tagged(5, i.as_bytes());
                    }
                }
            }
        }
        h.bytes(&[0xff]);
    }
    h.0
}
