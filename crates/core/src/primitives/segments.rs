//! The audiences a ruleset declares, kept ready for matching: those the host
//! loads (a daily segment), and those the rules define from others
//! (`audience a = x and not y`), recomputed whenever one they read changes.

use super::audience::{Audience, AudienceError, Audiences, IdDictionary, Membership};
use crate::decl::{AudienceDecl, AudienceExpr};
use std::collections::HashSet;
use std::sync::Arc;

/// Declared audiences over one ID dictionary.
///
/// ```
/// use nudge_core::decl::{AudienceDecl, AudienceExpr};
/// use nudge_core::primitives::audience::Membership;
/// use nudge_core::primitives::segments::Segments;
/// let named = |n: &str| Box::new(AudienceExpr::Named(n.into()));
/// let decls = vec![
///     AudienceDecl { name: "active".into(), definition: None },
///     AudienceDecl { name: "buyers".into(), definition: None },
///     AudienceDecl {
///         name: "active_not_buyers".into(),
///         definition: Some(AudienceExpr::AndNot(named("active"), named("buyers"))),
///     },
/// ];
/// let mut segments = Segments::new(&decls);
/// segments.load_ids("active", ["u1", "u2"])?;
/// segments.load_ids("buyers", ["u2"])?;
/// assert!(segments.is_member("active_not_buyers", "u1"));
/// assert!(!segments.is_member("active_not_buyers", "u2"));
/// // Computed audiences are not loaded by hand.
/// assert!(segments.load_ids("active_not_buyers", ["u3"]).is_err());
/// Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Segments {
    all: Audiences,
    /// Every declared name, in declaration order.
    names: Vec<Arc<str>>,
    /// Names of the audiences the host loads.
    loaded: Vec<Arc<str>>,
    /// Defined audiences, each after the audiences it reads.
    defined: Vec<(Arc<str>, AudienceExpr)>,
}

impl Segments {
    /// Empty audiences for the declarations.
    pub fn new(decls: &[AudienceDecl]) -> Segments {
        let mut all = Audiences::new();
        let mut loaded = Vec::new();
        let mut pending = Vec::new();
        for d in decls {
            match &d.definition {
                None => {
                    all.insert(d.name.clone(), Audience::new());
                    loaded.push(d.name.clone());
                }
                Some(e) => pending.push((d.name.clone(), e.clone())),
            }
        }
        // Each definition goes after those it reads; the checker refuses
        // cycles, so none is left over from a checked ruleset.
        let mut known: HashSet<Arc<str>> = loaded.iter().cloned().collect();
        let mut defined = Vec::new();
        while !pending.is_empty() {
            let before = pending.len();
            pending.retain(|(name, e): &(Arc<str>, AudienceExpr)| {
                if reads(e).iter().all(|n| known.contains(*n)) {
                    known.insert(name.clone());
                    defined.push((name.clone(), e.clone()));
                    false
                } else {
                    true
                }
            });
            if pending.len() == before {
                break;
            }
        }
        for (name, _) in &pending {
            all.insert(name.clone(), Audience::new());
        }
        let mut segments = Segments {
            all,
            names: decls.iter().map(|d| d.name.clone()).collect(),
            loaded,
            defined,
        };
        segments.recompute();
        segments
    }

    fn recompute(&mut self) {
        for (name, e) in &self.defined {
            // Every name read is loaded or computed before.
            let a = self.all.evaluate(e).unwrap_or_default();
            self.all.insert(name.clone(), a);
        }
    }

    /// Replaces a loaded audience (a new daily segment) and recomputes the
    /// audiences defined from it. Unknown and defined audiences are refused,
    /// and nothing changes.
    pub fn load(&mut self, name: &str, audience: Audience) -> Result<(), AudienceError> {
        self.check_loadable(name)?;
        self.all.insert(Arc::<str>::from(name), audience);
        self.recompute();
        Ok(())
    }

    /// [`load`](Self::load) from external ids, interned in the dictionary.
    pub fn load_ids<'i>(
        &mut self,
        name: &str,
        ids: impl IntoIterator<Item = &'i str>,
    ) -> Result<(), AudienceError> {
        self.check_loadable(name)?;
        let dict = self.all.dictionary_mut();
        let audience = ids
            .into_iter()
            .map(|id| dict.intern(id))
            .collect::<Result<Audience, _>>()?;
        self.load(name, audience)
    }

    fn check_loadable(&self, name: &str) -> Result<(), AudienceError> {
        if self.loaded.iter().any(|n| &**n == name) {
            Ok(())
        } else if self.names.iter().any(|n| &**n == name) {
            Err(AudienceError::Defined(name.into()))
        } else {
            Err(AudienceError::Unknown(name.into()))
        }
    }

    /// An audience by name.
    pub fn get(&self, name: &str) -> Option<&Audience> {
        self.all.get(name)
    }

    /// Every declared audience name, in declaration order.
    pub fn names(&self) -> &[Arc<str>] {
        &self.names
    }

    /// The names of the audiences the host loads.
    pub fn loaded(&self) -> &[Arc<str>] {
        &self.loaded
    }

    /// The ID dictionary the bitmaps index.
    pub fn dictionary(&self) -> &IdDictionary {
        self.all.dictionary()
    }

    /// The ID dictionary, to intern ids before building a bitmap.
    pub fn dictionary_mut(&mut self) -> &mut IdDictionary {
        self.all.dictionary_mut()
    }
}

impl Membership for Segments {
    fn is_member(&self, audience: &str, user: &str) -> bool {
        self.all.is_member(audience, user)
    }
}

/// The audience names an expression reads.
fn reads(e: &AudienceExpr) -> Vec<&str> {
    let mut out = Vec::new();
    let mut todo = vec![e];
    while let Some(e) = todo.pop() {
        match e {
            AudienceExpr::Named(n) => out.push(&**n),
            AudienceExpr::And(a, b)
            | AudienceExpr::Or(a, b)
            | AudienceExpr::AndNot(a, b)
            | AudienceExpr::Xor(a, b) => {
                todo.push(a);
                todo.push(b);
            }
        }
    }
    out
}
