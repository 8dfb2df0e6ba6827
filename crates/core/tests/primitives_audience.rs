//! Audiences: the laws of set algebra against a plain set model, the
//! portable and ClickHouse encodings (vectors built by hand from their
//! descriptions), interop with bytes written by pyroaring, and S16.

use nudge_core::decl::AudienceExpr;
use nudge_core::primitives::audience::{Audience, Audiences, IdDictionary, Membership, UserIndex};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::path::Path;

fn audience(values: &BTreeSet<u32>) -> Audience {
    values.iter().map(|&v| UserIndex::from_u32(v)).collect()
}

fn members(a: &Audience) -> BTreeSet<u32> {
    a.iter().map(UserIndex::get).collect()
}

/// Values clustered in a few containers, so that array, bitmap and run
/// containers all occur.
fn values() -> impl Strategy<Value = BTreeSet<u32>> {
    prop_oneof![
        prop::collection::btree_set(0u32..200, 0..50),
        prop::collection::btree_set(0u32..70_000, 0..6_000),
        prop::collection::btree_set(any::<u32>(), 0..100),
        (0u32..100_000, 0u32..9_000).prop_map(|(start, len)| (start..start + len).collect()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn algebra_matches_the_set_model(a in values(), b in values()) {
        let (x, y) = (audience(&a), audience(&b));
        prop_assert_eq!(members(&(&x & &y)), a.intersection(&b).copied().collect::<BTreeSet<_>>());
        prop_assert_eq!(members(&(&x | &y)), a.union(&b).copied().collect::<BTreeSet<_>>());
        prop_assert_eq!(members(&(&x - &y)), a.difference(&b).copied().collect::<BTreeSet<_>>());
        prop_assert_eq!(members(&(&x ^ &y)), a.symmetric_difference(&b).copied().collect::<BTreeSet<_>>());
        prop_assert_eq!(x.and_len(&y), a.intersection(&b).count() as u64);
        prop_assert_eq!(x.len(), a.len() as u64);
    }

    #[test]
    fn algebra_laws(a in values(), b in values(), c in values()) {
        let (x, y, z) = (audience(&a), audience(&b), audience(&c));
        // Commutativity, associativity, distributivity, De Morgan within x.
        prop_assert_eq!(&x & &y, &y & &x);
        prop_assert_eq!(&x | &y, &y | &x);
        prop_assert_eq!(&(&x | &y) | &z, &x | &(&y | &z));
        prop_assert_eq!(&x & &(&y | &z), &(&x & &y) | &(&x & &z));
        prop_assert_eq!(&x - &(&y | &z), &(&x - &y) & &(&x - &z));
        prop_assert_eq!(&x ^ &y, &(&x | &y) - &(&x & &y));
        prop_assert_eq!(&(&x ^ &y) ^ &y, x.clone());
    }

    #[test]
    fn encodings_round_trip(a in values(), optimize in any::<bool>()) {
        let mut x = audience(&a);
        if optimize {
            x.optimize();
        }
        prop_assert_eq!(Audience::from_portable(&x.to_portable()).unwrap(), x.clone());
        let ch = x.to_clickhouse();
        prop_assert_eq!(ch[0], u8::from(a.len() > 32), "small form up to 32 members");
        prop_assert_eq!(Audience::from_clickhouse(&ch).unwrap(), x);
    }
}

/// Small form: kind 0, varint count, then little-endian u32 values.
#[test]
fn clickhouse_small_set_vector() {
    let x = audience(&[1, 2, 300, 4_000_000_000].into_iter().collect());
    let want = [
        0x00, 0x04, // small set of 4
        0x01, 0x00, 0x00, 0x00, // 1
        0x02, 0x00, 0x00, 0x00, // 2
        0x2C, 0x01, 0x00, 0x00, // 300
        0x00, 0x28, 0x6B, 0xEE, // 4,000,000,000
    ];
    assert_eq!(x.to_clickhouse(), want);
    assert_eq!(Audience::from_clickhouse(&want).unwrap(), x);
    // Order within the small set does not matter to the reader.
    let shuffled = [0x00, 0x02, 0x2C, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00];
    assert_eq!(
        members(&Audience::from_clickhouse(&shuffled).unwrap()),
        [1, 300].into_iter().collect()
    );
    assert_eq!(Audience::new().to_clickhouse(), [0x00, 0x00]);
}

/// Large form: kind 1, varint byte length, then the portable bitmap, here
/// written out by hand: cookie 12346 (no run containers), one container
/// (key 0, cardinality 33 stored as 32), its offset (16), then 33 u16 values.
#[test]
fn clickhouse_bitmap_vector() {
    let x = audience(&(0..33).collect());
    let mut portable = vec![0x3A, 0x30, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00];
    portable.extend_from_slice(&[0x00, 0x00, 0x20, 0x00]);
    portable.extend_from_slice(&[0x10, 0x00, 0x00, 0x00]);
    for v in 0u16..33 {
        portable.extend_from_slice(&v.to_le_bytes());
    }
    assert_eq!(portable.len(), 82);
    assert_eq!(x.to_portable(), portable);
    let mut want = vec![0x01, 82];
    want.extend_from_slice(&portable);
    assert_eq!(x.to_clickhouse(), want);
    assert_eq!(Audience::from_clickhouse(&want).unwrap(), x);
    // ClickHouse may keep a set of 32 or fewer in bitmap form: still read.
    let small = audience(&(0..3).collect());
    let p = small.to_portable();
    let mut wrapped = vec![0x01, p.len() as u8];
    wrapped.extend_from_slice(&p);
    assert_eq!(Audience::from_clickhouse(&wrapped).unwrap(), small);
}

/// The sets of `scripts/pyroaring_vectors.py`, by the same formulas.
fn pyroaring_sets() -> Vec<(&'static str, BTreeSet<u32>, bool)> {
    let sparse = [
        0,
        1,
        2,
        3,
        1000,
        65535,
        65536,
        1 << 20,
        4_000_000_000,
        u32::MAX,
    ];
    vec![
        ("empty", BTreeSet::new(), false),
        ("sparse", sparse.into_iter().collect(), false),
        ("dense", (0..100_000).step_by(2).collect(), false),
        ("runs", (10..5_000).chain(70_000..140_000).collect(), true),
        (
            "mixed",
            (0..65_536)
                .step_by(3)
                .chain(65_536..65_536 + 20_000)
                .chain([200_000, 300_000, 400_000])
                .collect(),
            true,
        ),
    ]
}

/// Reads what pyroaring wrote and writes the same bytes. Skipped (with a
/// note) when the vector files are absent; `scripts/pyroaring_vectors.py`
/// makes them.
#[test]
fn pyroaring_interop() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    for (name, set, runs) in pyroaring_sets() {
        let path = dir.join(format!("pyroaring_{name}.bin"));
        let Ok(bytes) = std::fs::read(&path) else {
            eprintln!(
                "skipped: {} is absent (run scripts/pyroaring_vectors.py)",
                path.display()
            );
            continue;
        };
        let read = Audience::from_portable(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(members(&read), set, "{name}: members");
        let mut ours = audience(&set);
        if runs {
            ours.optimize();
        }
        assert_eq!(ours.to_portable(), bytes, "{name}: bytes");
    }
}

/// S16: "active today AND NOT purchased today" from two daily bitmaps
/// delivered as ClickHouse states; only its members get the push.
#[test]
fn s16_audience_algebra_from_daily_bitmaps() {
    let mut dict = IdDictionary::new();
    let ids: Vec<String> = (0..100).map(|i| format!("u{i}")).collect();
    for id in &ids {
        dict.intern(id).unwrap();
    }
    let active: Audience = (0..60).map(UserIndex::from_u32).collect();
    let purchased: Audience = (50..100).map(UserIndex::from_u32).collect();
    let mut all = Audiences::with_dictionary(dict);
    all.insert(
        "active_today",
        Audience::from_clickhouse(&active.to_clickhouse()).unwrap(),
    );
    all.insert(
        "purchased_today",
        Audience::from_clickhouse(&purchased.to_clickhouse()).unwrap(),
    );
    let expr = AudienceExpr::AndNot(
        Box::new(AudienceExpr::Named("active_today".into())),
        Box::new(AudienceExpr::Named("purchased_today".into())),
    );
    let target = all.evaluate(&expr).unwrap();
    assert_eq!(target.len(), 50);
    all.insert("push_target", target);
    assert!(all.is_member("push_target", "u0"));
    assert!(all.is_member("push_target", "u49"));
    assert!(!all.is_member("push_target", "u50"));
    assert!(!all.is_member("push_target", "u99"));
    assert!(!all.is_member("push_target", "stranger"));
}

/// Deeply nested expressions are evaluated without recursion.
#[test]
fn deep_expressions_do_not_overflow_the_stack() {
    let mut all = Audiences::new();
    all.insert_ids("a", ["x"]).unwrap();
    let mut expr = AudienceExpr::Named("a".into());
    for _ in 0..100_000 {
        expr = AudienceExpr::Or(Box::new(expr), Box::new(AudienceExpr::Named("a".into())));
    }
    assert_eq!(all.evaluate(&expr).unwrap().len(), 1);
    // Dropping a deep Box chain recurses; leak it to keep the test about
    // evaluation.
    std::mem::forget(expr);
}
