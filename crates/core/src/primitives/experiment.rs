//! Experiments: users bucketed into arms by a hash of their id, compatible
//! with GrowthBook's SDKs, so that an experiment run by nudge and one run by
//! a GrowthBook SDK on the same seed and ids put every user in the same arm.
//!
//! * **Hash.** FNV-1a, 32 bits (offset basis `0x811C9DC5`, prime
//!   `0x01000193`). Version 1: `fnv(id + seed) % 1000 / 1000`. Version 2:
//!   `fnv(decimal(fnv(seed + id))) % 10000 / 10000`.
//! * **Text encoding.** FNV-1a is defined over a sequence of numbers; the
//!   SDKs differ in which numbers a string is. The JavaScript SDK XORs UTF-16
//!   code units (`charCodeAt`), and so does the Python SDK from 4.0 on; the
//!   Python SDK up to 3.x XORed code points (`ord`); the Go SDK hashes UTF-8
//!   bytes. All agree on ASCII ids. For other ids nudge follows the
//!   JavaScript SDK by default ([`IdEncoding::Utf16`]); ids made only of
//!   characters of the Basic Multilingual Plane (Chinese ids such as
//!   `用户42` included) then also match older Python SDKs, which differ only
//!   on characters beyond it (emoji, CJK extension B). [`IdEncoding`] selects
//!   the others.
//! * **Arms.** Arm `i` owns `[c_i, c_i + coverage × w_i)` where `c_i` is the
//!   sum of the weights before it (GrowthBook's `getBucketRanges`, in the
//!   same floating-point arithmetic).
//! * **Layers.** Experiments of one layer never share a user: the layer's
//!   ids are hashed once (`version 1`, seed `"__" + layer`, GrowthBook's
//!   namespace hash) and the layer's `[0, 1)` is cut into consecutive slices,
//!   one per experiment, each as wide as its traffic share.
//!
//! ```
//! use nudge_core::decl::ExperimentDecl;
//! use nudge_core::primitives::experiment::{hash, Assignment, Experiments, HashVersion};
//! // A published GrowthBook vector: seed "seed", id "a", version 2.
//! assert_eq!(hash("seed", "a", HashVersion::V2), 0.0505);
//! let copy_test = ExperimentDecl {
//!     name: "push_copy".into(),
//!     layer: None,
//!     traffic_bp: 10_000,
//!     arms: vec![("short".into(), 5_000), ("long".into(), 5_000)],
//!     seed: "push_copy".into(),
//! };
//! let experiments = Experiments::new(&[copy_test])?;
//! match experiments.assign("push_copy", "u42")? {
//!     Assignment::Arm { name, .. } => assert!(&*name == "short" || &*name == "long"),
//!     other => panic!("full traffic, yet {other:?}"),
//! }
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::decl::ExperimentDecl;
use std::collections::HashMap;
use std::sync::Arc;

const FNV_OFFSET: u32 = 0x811C_9DC5;
const FNV_PRIME: u32 = 0x0100_0193;

/// Which numbers of a string FNV-1a is run over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IdEncoding {
    /// UTF-16 code units, as the JavaScript SDK (`charCodeAt`) and the
    /// Python SDK from 4.0 on.
    #[default]
    Utf16,
    /// Unicode code points, as the Python SDK up to 3.x (`ord`).
    CodePoints,
    /// UTF-8 bytes, as the Go SDK (and textbook FNV-1a).
    Utf8,
}

/// FNV-1a (32 bits) of `text`, read as `encoding` says.
///
/// ```
/// use nudge_core::primitives::experiment::{fnv1a32, IdEncoding};
/// // The FNV authors' test vector for "a".
/// assert_eq!(fnv1a32("a", IdEncoding::Utf8), 0xe40c292c);
/// // Code units and code points agree within the Basic Multilingual Plane.
/// assert_eq!(fnv1a32("用户", IdEncoding::Utf16), fnv1a32("用户", IdEncoding::CodePoints));
/// ```
pub fn fnv1a32(text: &str, encoding: IdEncoding) -> u32 {
    let step = |h: u32, x: u32| (h ^ x).wrapping_mul(FNV_PRIME);
    match encoding {
        IdEncoding::Utf16 => text
            .encode_utf16()
            .fold(FNV_OFFSET, |h, u| step(h, u32::from(u))),
        IdEncoding::CodePoints => text.chars().fold(FNV_OFFSET, |h, c| step(h, u32::from(c))),
        IdEncoding::Utf8 => text.bytes().fold(FNV_OFFSET, |h, b| step(h, u32::from(b))),
    }
}

/// GrowthBook's hashing algorithm versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HashVersion {
    /// `fnv(id + seed) % 1000 / 1000`: 1,000 buckets, and ids that share a
    /// prefix bucket alike across seeds. Kept for namespaces and old
    /// experiments.
    V1,
    /// `fnv(decimal(fnv(seed + id))) % 10000 / 10000`: 10,000 buckets.
    #[default]
    V2,
}

impl HashVersion {
    /// The version numbered `n` in GrowthBook's `hashVersion`; `None` for
    /// versions that do not exist (GrowthBook's hash then returns null).
    pub fn from_number(n: u32) -> Option<Self> {
        match n {
            1 => Some(HashVersion::V1),
            2 => Some(HashVersion::V2),
            _ => None,
        }
    }
}

/// The bucket of `id` in `[0, 1)` under `seed`, with the default
/// ([`IdEncoding::Utf16`]) encoding.
pub fn hash(seed: &str, id: &str, version: HashVersion) -> f64 {
    hash_with(seed, id, version, IdEncoding::Utf16)
}

/// The bucket of `id` in `[0, 1)` under `seed`, reading strings as
/// `encoding` says.
pub fn hash_with(seed: &str, id: &str, version: HashVersion, encoding: IdEncoding) -> f64 {
    match version {
        HashVersion::V1 => {
            let mut text = String::with_capacity(id.len() + seed.len());
            text.push_str(id);
            text.push_str(seed);
            f64::from(fnv1a32(&text, encoding) % 1000) / 1000.0
        }
        HashVersion::V2 => {
            let mut text = String::with_capacity(id.len() + seed.len());
            text.push_str(seed);
            text.push_str(id);
            let inner = fnv1a32(&text, encoding).to_string();
            f64::from(fnv1a32(&inner, encoding) % 10_000) / 10_000.0
        }
    }
}

/// The bucket ranges of `arms` arms: arm `i` gets
/// `[c_i, c_i + coverage × w_i)`, `c_i` the sum of earlier weights.
/// As in GrowthBook, coverage is clamped to `[0, 1]`, and weights are
/// replaced by equal ones when missing, of the wrong length, or not adding
/// up to 1 (± 0.01).
///
/// ```
/// use nudge_core::primitives::experiment::bucket_ranges;
/// assert_eq!(bucket_ranges(2, 0.5, None), vec![(0.0, 0.25), (0.5, 0.75)]);
/// ```
pub fn bucket_ranges(arms: usize, coverage: f64, weights: Option<&[f64]>) -> Vec<(f64, f64)> {
    let coverage = coverage.clamp(0.0, 1.0);
    let equal = || vec![1.0 / arms as f64; arms];
    let weights = match weights {
        Some(w) if w.len() == arms && (0.99..=1.01).contains(&w.iter().sum::<f64>()) => w.to_vec(),
        _ => equal(),
    };
    let mut cumulative = 0.0;
    weights
        .iter()
        .map(|&w| {
            let start = cumulative;
            cumulative += w;
            (start, start + coverage * w)
        })
        .collect()
}

/// The arm whose range holds `bucket` (ranges are half-open), if any.
///
/// ```
/// use nudge_core::primitives::experiment::choose_arm;
/// assert_eq!(choose_arm(0.5, &[(0.0, 0.5), (0.5, 1.0)]), Some(1));
/// assert_eq!(choose_arm(0.4, &[(0.0, 0.25), (0.5, 0.75)]), None);
/// ```
pub fn choose_arm(bucket: f64, ranges: &[(f64, f64)]) -> Option<usize> {
    ranges
        .iter()
        .position(|&(start, end)| start <= bucket && bucket < end)
}

/// Whether `id` falls in `[start, end)` of namespace (layer) `namespace`:
/// GrowthBook's `inNamespace`, a version-1 hash seeded with
/// `"__" + namespace`.
pub fn in_namespace(id: &str, namespace: &str, start: f64, end: f64, encoding: IdEncoding) -> bool {
    let n = hash_with(&format!("__{namespace}"), id, HashVersion::V1, encoding);
    start <= n && n < end
}

/// Why a set of experiment declarations was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExperimentError {
    /// Two experiments share a name.
    #[error("experiment `{0}` is declared twice")]
    Duplicate(Arc<str>),
    /// An experiment has no arms.
    #[error("experiment `{0}` has no arms")]
    NoArms(Arc<str>),
    /// Arm weights do not add up to 10,000 basis points.
    #[error("arm weights of experiment `{experiment}` add up to {total} basis points, not 10000")]
    Weights {
        /// The experiment.
        experiment: Arc<str>,
        /// Their sum.
        total: u64,
    },
    /// Traffic above 100 %.
    #[error(
        "experiment `{experiment}` takes {traffic_bp} basis points of traffic, more than 10000"
    )]
    Traffic {
        /// The experiment.
        experiment: Arc<str>,
        /// Its traffic.
        traffic_bp: u32,
    },
    /// The experiments of a layer take more than all of it.
    #[error("experiments of layer `{layer}` take {total} basis points, more than 10000")]
    LayerFull {
        /// The layer.
        layer: Arc<str>,
        /// Their total traffic.
        total: u64,
    },
    /// No experiment by that name.
    #[error("unknown experiment `{0}`")]
    Unknown(Arc<str>),
}

/// Where a user landed in one experiment.
#[derive(Debug, Clone, PartialEq)]
pub enum Assignment {
    /// In the experiment, in this arm.
    Arm {
        /// Position of the arm in the declaration.
        index: usize,
        /// Name of the arm.
        name: Arc<str>,
        /// The user's bucket in `[0, 1)`.
        bucket: f64,
    },
    /// The user is in another experiment's slice of the layer (or in no
    /// experiment's).
    OtherSliceOfLayer,
    /// The user's bucket falls outside the experiment's traffic coverage.
    NotCovered {
        /// The user's bucket.
        bucket: f64,
    },
}

impl Assignment {
    /// The arm's name, if the user is in an arm.
    pub fn arm(&self) -> Option<&str> {
        match self {
            Assignment::Arm { name, .. } => Some(name),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Plan {
    name: Arc<str>,
    seed: Arc<str>,
    arms: Vec<Arc<str>>,
    ranges: Vec<(f64, f64)>,
    slice: Option<(Arc<str>, f64, f64)>,
}

/// A checked set of experiments, ready to assign users.
#[derive(Debug, Clone)]
pub struct Experiments {
    plans: Vec<Plan>,
    by_name: HashMap<Arc<str>, usize>,
    version: HashVersion,
    encoding: IdEncoding,
}

impl Experiments {
    /// Checks `decls` and lays out their layers: within a layer, experiments
    /// get consecutive slices in declaration order. An experiment without a
    /// layer covers `traffic_bp` of all users.
    pub fn new(decls: &[ExperimentDecl]) -> Result<Self, ExperimentError> {
        let mut plans = Vec::with_capacity(decls.len());
        let mut by_name = HashMap::new();
        let mut layer_used: HashMap<Arc<str>, (u64, f64)> = HashMap::new();
        for decl in decls {
            if by_name.insert(decl.name.clone(), plans.len()).is_some() {
                return Err(ExperimentError::Duplicate(decl.name.clone()));
            }
            if decl.arms.is_empty() {
                return Err(ExperimentError::NoArms(decl.name.clone()));
            }
            let total: u64 = decl.arms.iter().map(|(_, w)| u64::from(*w)).sum();
            if total != 10_000 {
                return Err(ExperimentError::Weights {
                    experiment: decl.name.clone(),
                    total,
                });
            }
            if decl.traffic_bp > 10_000 {
                return Err(ExperimentError::Traffic {
                    experiment: decl.name.clone(),
                    traffic_bp: decl.traffic_bp,
                });
            }
            let weights: Vec<f64> = decl
                .arms
                .iter()
                .map(|(_, w)| f64::from(*w) / 10_000.0)
                .collect();
            let share = f64::from(decl.traffic_bp) / 10_000.0;
            let (coverage, slice) = match &decl.layer {
                None => (share, None),
                Some(layer) => {
                    let used = layer_used.entry(layer.clone()).or_insert((0, 0.0));
                    used.0 += u64::from(decl.traffic_bp);
                    if used.0 > 10_000 {
                        return Err(ExperimentError::LayerFull {
                            layer: layer.clone(),
                            total: used.0,
                        });
                    }
                    let start = used.1;
                    used.1 += share;
                    (1.0, Some((layer.clone(), start, start + share)))
                }
            };
            plans.push(Plan {
                name: decl.name.clone(),
                seed: decl.seed.clone(),
                arms: decl.arms.iter().map(|(a, _)| a.clone()).collect(),
                ranges: bucket_ranges(weights.len(), coverage, Some(&weights)),
                slice,
            });
        }
        Ok(Experiments {
            plans,
            by_name,
            version: HashVersion::V2,
            encoding: IdEncoding::Utf16,
        })
    }

    /// Uses `version` for arm buckets (default [`HashVersion::V2`]); layers
    /// always use version 1, as GrowthBook namespaces do.
    pub fn with_hash_version(mut self, version: HashVersion) -> Self {
        self.version = version;
        self
    }

    /// Reads ids as `encoding` says (default [`IdEncoding::Utf16`]).
    pub fn with_encoding(mut self, encoding: IdEncoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// The slice `[start, end)` of its layer an experiment owns, if it is in
    /// a layer.
    pub fn layer_slice(&self, experiment: &str) -> Option<(&str, f64, f64)> {
        let plan = &self.plans[*self.by_name.get(experiment)?];
        plan.slice.as_ref().map(|(l, s, e)| (&**l, *s, *e))
    }

    /// The arm ranges of an experiment.
    pub fn ranges(&self, experiment: &str) -> Option<&[(f64, f64)]> {
        Some(&self.plans[*self.by_name.get(experiment)?].ranges)
    }

    /// Where `user` lands in `experiment`.
    pub fn assign(&self, experiment: &str, user: &str) -> Result<Assignment, ExperimentError> {
        let plan = self
            .by_name
            .get(experiment)
            .map(|&i| &self.plans[i])
            .ok_or_else(|| ExperimentError::Unknown(experiment.into()))?;
        if let Some((layer, start, end)) = &plan.slice {
            if !in_namespace(user, layer, *start, *end, self.encoding) {
                return Ok(Assignment::OtherSliceOfLayer);
            }
        }
        let bucket = hash_with(&plan.seed, user, self.version, self.encoding);
        Ok(match choose_arm(bucket, &plan.ranges) {
            Some(index) => Assignment::Arm {
                index,
                name: plan.arms[index].clone(),
                bucket,
            },
            None => Assignment::NotCovered { bucket },
        })
    }

    /// Every experiment's assignment of `user`, in declaration order.
    pub fn assign_all<'a>(
        &'a self,
        user: &'a str,
    ) -> impl Iterator<Item = (&'a str, Assignment)> + 'a {
        self.plans.iter().map(move |p| {
            let a = self
                .assign(&p.name, user)
                .unwrap_or_else(|_| unreachable!("every plan is indexed by name"));
            (&*p.name, a)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(
        name: &str,
        layer: Option<&str>,
        traffic_bp: u32,
        arms: &[(&str, u32)],
    ) -> ExperimentDecl {
        ExperimentDecl {
            name: name.into(),
            layer: layer.map(Into::into),
            traffic_bp,
            arms: arms.iter().map(|(a, w)| (Arc::from(*a), *w)).collect(),
            seed: name.into(),
        }
    }

    #[test]
    fn refuses_bad_declarations() {
        let e = |d: &[ExperimentDecl]| Experiments::new(d).unwrap_err();
        assert!(matches!(
            e(&[decl("x", None, 10_000, &[])]),
            ExperimentError::NoArms(_)
        ));
        assert!(matches!(
            e(&[decl("x", None, 10_000, &[("a", 4_000)])]),
            ExperimentError::Weights { total: 4_000, .. }
        ));
        assert!(matches!(
            e(&[decl("x", None, 10_001, &[("a", 10_000)])]),
            ExperimentError::Traffic { .. }
        ));
        assert!(matches!(
            e(&[
                decl("x", Some("l"), 6_000, &[("a", 10_000)]),
                decl("y", Some("l"), 5_000, &[("a", 10_000)])
            ]),
            ExperimentError::LayerFull { total: 11_000, .. }
        ));
        assert!(matches!(
            e(&[
                decl("x", None, 1, &[("a", 10_000)]),
                decl("x", None, 1, &[("a", 10_000)])
            ]),
            ExperimentError::Duplicate(_)
        ));
    }

    #[test]
    fn layers_are_cut_into_consecutive_slices() {
        let ex = Experiments::new(&[
            decl("x", Some("l"), 3_000, &[("a", 10_000)]),
            decl("y", Some("l"), 7_000, &[("a", 10_000)]),
        ])
        .unwrap();
        assert_eq!(ex.layer_slice("x"), Some(("l", 0.0, 0.3)));
        assert_eq!(ex.layer_slice("y"), Some(("l", 0.3, 1.0)));
        assert!(matches!(
            ex.assign("z", "u"),
            Err(ExperimentError::Unknown(_))
        ));
    }
}
