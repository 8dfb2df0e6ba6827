//! Experiment bucketing against GrowthBook's published test vectors
//! (`tests/data/growthbook_cases.json` cites their source), non-ASCII ids,
//! and the S4 and S22 scenarios.

use nudge_core::decl::ExperimentDecl;
use nudge_core::primitives::experiment::{
    bucket_ranges, choose_arm, hash, hash_with, in_namespace, Assignment, Experiments, HashVersion,
    IdEncoding,
};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

fn cases() -> Value {
    let text = include_str!("data/growthbook_cases.json");
    serde_json::from_str(text).expect("the vector file is JSON")
}

fn rows<'v>(cases: &'v Value, section: &str) -> &'v [Value] {
    cases[section].as_array().expect("a section is an array")
}

#[test]
fn published_hash_vectors() {
    let cases = cases();
    for row in rows(&cases, "hash") {
        let (seed, id) = (row[0].as_str().unwrap(), row[1].as_str().unwrap());
        let version = HashVersion::from_number(row[2].as_u64().unwrap() as u32);
        match (version, row[3].as_f64()) {
            (Some(v), Some(expected)) => {
                assert_eq!(hash(seed, id, v), expected, "{row}");
                // ASCII ids hash alike under every encoding.
                for enc in [IdEncoding::CodePoints, IdEncoding::Utf8] {
                    assert_eq!(hash_with(seed, id, v, enc), expected, "{row} {enc:?}");
                }
            }
            (None, None) => {}
            other => panic!("{row}: {other:?}"),
        }
    }
}

#[test]
fn non_ascii_ids_follow_each_sdk() {
    let cases = cases();
    for row in rows(&cases, "nonAscii") {
        let (seed, id) = (row[0].as_str().unwrap(), row[1].as_str().unwrap());
        let v = HashVersion::from_number(row[2].as_u64().unwrap() as u32).unwrap();
        let expected = [IdEncoding::Utf16, IdEncoding::CodePoints, IdEncoding::Utf8];
        for (col, enc) in expected.into_iter().enumerate() {
            assert_eq!(
                hash_with(seed, id, v, enc),
                row[3 + col].as_f64().unwrap(),
                "{row} {enc:?}"
            );
        }
        // The default is the JavaScript SDK's.
        assert_eq!(hash(seed, id, v), row[3].as_f64().unwrap());
    }
}

#[test]
fn published_bucket_ranges() {
    let cases = cases();
    for row in rows(&cases, "getBucketRange") {
        let args = &row[1];
        let weights: Option<Vec<f64>> = args[2]
            .as_array()
            .map(|w| w.iter().map(|x| x.as_f64().unwrap()).collect());
        let got = bucket_ranges(
            args[0].as_u64().unwrap() as usize,
            args[1].as_f64().unwrap(),
            weights.as_deref(),
        );
        let want: Vec<(f64, f64)> = row[2]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r[0].as_f64().unwrap(), r[1].as_f64().unwrap()))
            .collect();
        assert_eq!(got.len(), want.len(), "{}", row[0]);
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g.0 - w.0).abs() < 1e-9 && (g.1 - w.1).abs() < 1e-9,
                "{}: {got:?}",
                row[0]
            );
        }
    }
}

#[test]
fn published_arm_choices() {
    let cases = cases();
    for row in rows(&cases, "chooseVariation") {
        let ranges: Vec<(f64, f64)> = row[2]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r[0].as_f64().unwrap(), r[1].as_f64().unwrap()))
            .collect();
        let want = row[3].as_i64().unwrap();
        let got = choose_arm(row[1].as_f64().unwrap(), &ranges).map_or(-1, |i| i as i64);
        assert_eq!(got, want, "{}", row[0]);
    }
}

#[test]
fn published_namespaces() {
    let cases = cases();
    for row in rows(&cases, "inNamespace") {
        let ns = &row[2];
        let got = in_namespace(
            row[1].as_str().unwrap(),
            ns[0].as_str().unwrap(),
            ns[1].as_f64().unwrap(),
            ns[2].as_f64().unwrap(),
            IdEncoding::Utf16,
        );
        assert_eq!(got, row[3].as_bool().unwrap(), "{}", row[0]);
    }
}

fn decl(name: &str, layer: Option<&str>, traffic_bp: u32, arms: &[(&str, u32)]) -> ExperimentDecl {
    ExperimentDecl {
        name: name.into(),
        layer: layer.map(Into::into),
        traffic_bp,
        arms: arms.iter().map(|(a, w)| (Arc::from(*a), *w)).collect(),
        seed: name.into(),
    }
}

fn users(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("user-{i}")).collect()
}

/// S4: two push copies 50/50 by hash; every user gets one, stably.
#[test]
fn s4_even_split_is_stable_and_balanced() {
    let ex =
        Experiments::new(&[decl("copy", None, 10_000, &[("a", 5_000), ("b", 5_000)])]).unwrap();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for u in users(20_000) {
        let arm = ex.assign("copy", &u).unwrap();
        assert_eq!(
            ex.assign("copy", &u).unwrap(),
            arm,
            "assignment is a function of the id"
        );
        *counts
            .entry(arm.arm().expect("full traffic").to_string())
            .or_default() += 1;
    }
    let a = counts["a"] as f64 / 20_000.0;
    assert!((0.48..0.52).contains(&a), "share of arm a: {a}");
}

/// Coverage below 100 % leaves the rest out, with the reason.
#[test]
fn partial_traffic_reports_not_covered() {
    let ex = Experiments::new(&[decl("t", None, 2_000, &[("a", 10_000)])]).unwrap();
    let mut covered = 0;
    for u in users(10_000) {
        match ex.assign("t", &u).unwrap() {
            Assignment::Arm { bucket, .. } => {
                assert!(bucket < 0.2);
                covered += 1;
            }
            Assignment::NotCovered { bucket } => assert!(bucket >= 0.2),
            Assignment::OtherSliceOfLayer => panic!("no layer"),
        }
    }
    let covered = f64::from(covered) / 10_000.0;
    assert!((0.18..0.22).contains(&covered), "covered: {covered}");
}

/// S22: two mutually exclusive experiments in one layer, and a second layer
/// independent of the first.
#[test]
fn s22_layers_exclusive_within_independent_across() {
    let ex = Experiments::new(&[
        decl(
            "price",
            Some("checkout"),
            5_000,
            &[("low", 5_000), ("high", 5_000)],
        ),
        decl(
            "banner",
            Some("checkout"),
            5_000,
            &[("red", 5_000), ("blue", 5_000)],
        ),
        decl(
            "subject",
            Some("email"),
            10_000,
            &[("plain", 5_000), ("emoji", 5_000)],
        ),
    ])
    .unwrap();
    let mut in_price = 0;
    let mut in_banner = 0;
    let mut price_and_emoji = 0;
    for u in users(20_000) {
        let price = ex.assign("price", &u).unwrap();
        let banner = ex.assign("banner", &u).unwrap();
        assert!(
            price.arm().is_none() || banner.arm().is_none(),
            "{u} is in both experiments of one layer"
        );
        assert!(
            price.arm().is_some() || banner.arm().is_some(),
            "the layer is fully used"
        );
        let subject = ex.assign("subject", &u).unwrap();
        assert!(subject.arm().is_some(), "the second layer takes everyone");
        in_price += usize::from(price.arm().is_some());
        in_banner += usize::from(banner.arm().is_some());
        price_and_emoji += usize::from(price.arm().is_some() && subject.arm() == Some("emoji"));
    }
    let share = in_price as f64 / 20_000.0;
    assert!((0.47..0.53).contains(&share), "price share {share}");
    assert_eq!(in_price + in_banner, 20_000);
    // Independence: the second layer splits the first's experiment evenly.
    let emoji_in_price = price_and_emoji as f64 / in_price as f64;
    assert!((0.47..0.53).contains(&emoji_in_price), "{emoji_in_price}");
    let all: Vec<_> = ex.assign_all("user-1").map(|(name, _)| name).collect();
    assert_eq!(all, ["price", "banner", "subject"]);
}

/// Arms across experiments with one seed are the same for both SDK-style
/// encodings when ids are Chinese (Basic Multilingual Plane).
#[test]
fn chinese_ids_bucket_like_the_javascript_sdk() {
    let ex = Experiments::new(&[decl("exp", None, 10_000, &[("a", 5_000), ("b", 5_000)])]).unwrap();
    match ex.assign("exp", "用户42").unwrap() {
        Assignment::Arm { name, bucket, .. } => {
            assert_eq!(bucket, 0.0394);
            assert_eq!(&*name, "a");
        }
        other => panic!("{other:?}"),
    }
    let by_points = ex.clone().with_encoding(IdEncoding::CodePoints);
    assert_eq!(
        by_points.assign("exp", "用户42").unwrap(),
        ex.assign("exp", "用户42").unwrap()
    );
    let by_bytes = ex.with_encoding(IdEncoding::Utf8);
    assert_eq!(
        by_bytes.assign("exp", "用户42").unwrap().arm(),
        Some("b"),
        "0.626 falls in b"
    );
}
