//! Identity: identifiers seen together (a device id, a phone number, a
//! WeChat openid in one event or profile) belong to one person.
//!
//! Persons are the connected components of the "seen together" relation,
//! found with a union-find. Each person is named by its smallest
//! identifier in this order: first by kind, in the order of kinds given to
//! [`IdentityGraph::with_kind_order`] (kinds not listed come after, by name),
//! then by value, byte-wise. The name is therefore the same whatever order
//! the observations came in; it changes only when two persons merge (the
//! merged person takes the smaller of the two names).
//!
//! [`IdentityGraph::resolve`] gives [`Persons`]: an [`IdDictionary`] of
//! person names (dense indices for audiences) and the person of every
//! identifier, so that a cap counted on a phone number applies to pushes on
//! that person's device (S24).
//!
//! ```
//! use nudge_core::primitives::identity::{Identifier, IdentityGraph};
//! let mut graph = IdentityGraph::with_kind_order(["phone", "openid", "device"]);
//! graph.observe([Identifier::new("device", "d-9"), Identifier::new("phone", "13800000000")]);
//! graph.observe([Identifier::new("openid", "o-1"), Identifier::new("device", "d-9")]);
//! let persons = graph.resolve();
//! let person = persons.person_of(&Identifier::new("openid", "o-1")).unwrap();
//! assert_eq!(person, "phone:13800000000");
//! assert_eq!(persons.person_of(&Identifier::new("device", "d-9")), Some(person));
//! ```

use super::audience::{IdDictionary, UserIndex};
use petgraph::unionfind::UnionFind;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// One identifier: its kind (`device`, `phone`, `openid`, ...) and value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identifier {
    kind: Arc<str>,
    value: Arc<str>,
}

impl Identifier {
    /// An identifier.
    pub fn new(kind: impl Into<Arc<str>>, value: impl Into<Arc<str>>) -> Self {
        Identifier {
            kind: kind.into(),
            value: value.into(),
        }
    }

    /// Its kind.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Its value.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for Identifier {
    /// `kind:value`, the form person names take.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.value)
    }
}

/// Identifiers and which were seen together.
#[derive(Debug, Clone, Default)]
pub struct IdentityGraph {
    kind_rank: HashMap<Arc<str>, usize>,
    index: HashMap<Identifier, u32>,
    identifiers: Vec<Identifier>,
    links: UnionFind<u32>,
    /// For each component root, its smallest identifier (kept as links are
    /// made, so a person's name is found without resolving the graph).
    best: Vec<u32>,
    /// For each component root of more than one identifier, its
    /// identifiers (merged as links are made).
    members: HashMap<u32, Vec<u32>>,
}

impl IdentityGraph {
    /// A graph whose person names are chosen by kind name, then value.
    pub fn new() -> Self {
        IdentityGraph {
            links: UnionFind::new(0),
            ..IdentityGraph::default()
        }
    }

    /// A graph that prefers kinds in the given order when naming persons
    /// (`["user_id", "phone", ...]`: a person with a user id is named by it).
    pub fn with_kind_order<I, S>(kinds: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Arc<str>>,
    {
        let mut graph = IdentityGraph::new();
        for (rank, kind) in kinds.into_iter().enumerate() {
            graph.kind_rank.entry(kind.into()).or_insert(rank);
        }
        graph
    }

    fn node(&mut self, id: Identifier) -> u32 {
        if let Some(&n) = self.index.get(&id) {
            return n;
        }
        let n = self.links.new_set();
        self.index.insert(id.clone(), n);
        self.identifiers.push(id);
        self.best.push(n);
        n
    }

    /// Records that these identifiers were seen together (one alone is
    /// recorded too, as a person of its own).
    pub fn observe(&mut self, ids: impl IntoIterator<Item = Identifier>) {
        let mut first = None;
        for id in ids {
            let n = self.node(id);
            match first {
                None => first = Some(n),
                Some(f) => {
                    let (a, b) = (self.links.find_mut(f), self.links.find_mut(n));
                    if a != b {
                        let (x, y) = (self.best[a as usize], self.best[b as usize]);
                        let smaller = match self
                            .cmp_ids(&self.identifiers[x as usize], &self.identifiers[y as usize])
                        {
                            Ordering::Greater => y,
                            _ => x,
                        };
                        self.links.union(a, b);
                        let root = self.links.find_mut(a);
                        self.best[root as usize] = smaller;
                        // The smaller list joins the larger: chained links
                        // stay linear.
                        let x = self.members.remove(&a).unwrap_or_else(|| vec![a]);
                        let y = self.members.remove(&b).unwrap_or_else(|| vec![b]);
                        let (mut merged, smaller) =
                            if x.len() >= y.len() { (x, y) } else { (y, x) };
                        merged.extend(smaller);
                        self.members.insert(root, merged);
                    }
                }
            }
        }
    }

    /// The identifier that names `id`'s person (its smallest), without
    /// resolving the whole graph; `None` for an identifier never seen.
    pub fn person(&self, id: &Identifier) -> Option<&Identifier> {
        let &n = self.index.get(id)?;
        let root = self.links.find(n);
        Some(&self.identifiers[self.best[root as usize] as usize])
    }

    /// The identifiers of `id`'s person, `id` among them; none for an
    /// identifier never seen or never linked to another.
    pub fn identifiers_of(&self, id: &Identifier) -> impl Iterator<Item = &Identifier> {
        let members = self
            .index
            .get(id)
            .and_then(|&n| self.members.get(&self.links.find(n)));
        members
            .into_iter()
            .flatten()
            .map(|&m| &self.identifiers[m as usize])
    }

    /// Whether two identifiers belong to one person.
    pub fn same_person(&self, a: &Identifier, b: &Identifier) -> bool {
        match (self.index.get(a), self.index.get(b)) {
            (Some(&x), Some(&y)) => self.links.equiv(x, y),
            _ => a == b,
        }
    }

    /// Number of identifiers seen.
    pub fn len(&self) -> usize {
        self.identifiers.len()
    }

    /// Whether none was seen.
    pub fn is_empty(&self) -> bool {
        self.identifiers.is_empty()
    }

    /// The naming order of identifiers: kind rank, then kind, then value.
    fn cmp_ids(&self, a: &Identifier, b: &Identifier) -> Ordering {
        let rank = |id: &Identifier| self.kind_rank.get(&id.kind).copied().unwrap_or(usize::MAX);
        rank(a)
            .cmp(&rank(b))
            .then_with(|| a.kind.as_bytes().cmp(b.kind.as_bytes()))
            .then_with(|| a.value.as_bytes().cmp(b.value.as_bytes()))
    }

    /// Every identifier's person. Person indices follow the order of the
    /// person names, so they do not depend on the order of observation.
    pub fn resolve(&self) -> Persons {
        // The smallest identifier of each component names it.
        let mut best: HashMap<u32, u32> = HashMap::new();
        for (n, id) in self.identifiers.iter().enumerate() {
            let n = n as u32;
            let root = self.links.find(n);
            best.entry(root)
                .and_modify(|b| {
                    if self.cmp_ids(id, &self.identifiers[*b as usize]) == Ordering::Less {
                        *b = n;
                    }
                })
                .or_insert(n);
        }
        let mut names: Vec<u32> = best.values().copied().collect();
        names.sort_by(|&a, &b| {
            self.cmp_ids(&self.identifiers[a as usize], &self.identifiers[b as usize])
        });
        let mut dict = IdDictionary::new();
        let mut person_of_root = HashMap::with_capacity(names.len());
        for name in names {
            let person = dict
                .intern(&self.identifiers[name as usize].to_string())
                .unwrap_or_else(|_| unreachable!("fewer persons than u32 identifiers"));
            person_of_root.insert(self.links.find(name), person);
        }
        let by_identifier = self
            .identifiers
            .iter()
            .enumerate()
            .map(|(n, id)| (id.clone(), person_of_root[&self.links.find(n as u32)]))
            .collect();
        Persons {
            dict,
            by_identifier,
        }
    }
}

/// The persons of an [`IdentityGraph`] at one moment.
#[derive(Debug, Clone)]
pub struct Persons {
    dict: IdDictionary,
    by_identifier: HashMap<Identifier, UserIndex>,
}

impl Persons {
    /// The dictionary of person names (`kind:value` of their smallest
    /// identifier); its indices are the persons' dense indices.
    pub fn dictionary(&self) -> &IdDictionary {
        &self.dict
    }

    /// The person index of an identifier.
    pub fn index_of(&self, id: &Identifier) -> Option<UserIndex> {
        self.by_identifier.get(id).copied()
    }

    /// The person name of an identifier.
    pub fn person_of(&self, id: &Identifier) -> Option<&str> {
        self.index_of(id).and_then(|i| self.dict.id(i))
    }

    /// Number of persons.
    pub fn len(&self) -> usize {
        self.dict.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.dict.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(kind: &str, value: &str) -> Identifier {
        Identifier::new(kind, value)
    }

    #[test]
    fn names_do_not_depend_on_observation_order() {
        let obs = [
            vec![id("device", "d2"), id("phone", "p1")],
            vec![id("device", "d1")],
            vec![id("openid", "o1"), id("device", "d2")],
            vec![id("device", "d3"), id("device", "d1")],
        ];
        let mut forward = IdentityGraph::new();
        for o in &obs {
            forward.observe(o.clone());
        }
        let mut backward = IdentityGraph::new();
        for o in obs.iter().rev() {
            backward.observe(o.iter().rev().cloned());
        }
        let (f, b) = (forward.resolve(), backward.resolve());
        assert_eq!(f.len(), 2);
        assert_eq!(f.dictionary(), b.dictionary());
        for o in &obs {
            for i in o {
                assert_eq!(f.person_of(i), b.person_of(i));
            }
        }
        // By kind name then value: "device:d1" < "device:d3"; "device:d2" is
        // smaller than "openid:o1" and "phone:p1".
        assert_eq!(f.person_of(&id("device", "d3")), Some("device:d1"));
        assert_eq!(f.person_of(&id("phone", "p1")), Some("device:d2"));
        assert!(forward.same_person(&id("openid", "o1"), &id("phone", "p1")));
        assert!(!forward.same_person(&id("device", "d1"), &id("phone", "p1")));
    }

    #[test]
    fn kind_order_wins_over_names() {
        let mut g = IdentityGraph::with_kind_order(["user_id"]);
        g.observe([id("device", "a"), id("user_id", "z")]);
        assert_eq!(g.resolve().person_of(&id("device", "a")), Some("user_id:z"));
        assert_eq!(g.resolve().person_of(&id("device", "unseen")), None);
    }
}
