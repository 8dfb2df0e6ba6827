//! Identity merging against a plain connected-components model, and the
//! S19 state machine.

use nudge_core::decl::MachineDecl;
use nudge_core::primitives::identity::{Identifier, IdentityGraph};
use nudge_core::primitives::machine::{Machine, MachineError};
use nudge_core::Timestamp;
use proptest::prelude::*;
use std::collections::BTreeSet;

fn ident(n: u8) -> Identifier {
    let kind = ["device", "phone", "openid"][usize::from(n % 3)];
    Identifier::new(kind, format!("v{n}"))
}

/// Components by repeated merging of sets: slow and obviously right.
fn model(observations: &[Vec<u8>]) -> Vec<BTreeSet<u8>> {
    let mut groups: Vec<BTreeSet<u8>> = Vec::new();
    for obs in observations {
        let mut merged: BTreeSet<u8> = obs.iter().copied().collect();
        groups.retain(|g| {
            if g.is_disjoint(&merged) {
                true
            } else {
                merged.extend(g);
                false
            }
        });
        groups.push(merged);
    }
    groups
}

proptest! {
    #[test]
    fn persons_are_connected_components(
        observations in prop::collection::vec(prop::collection::vec(0u8..40, 1..4), 0..30),
        reversed in any::<bool>(),
    ) {
        let mut graph = IdentityGraph::with_kind_order(["phone"]);
        let order: Vec<&Vec<u8>> = if reversed {
            observations.iter().rev().collect()
        } else {
            observations.iter().collect()
        };
        for obs in order {
            graph.observe(obs.iter().map(|&n| ident(n)));
        }
        let persons = graph.resolve();
        let groups = model(&observations);
        prop_assert_eq!(persons.len(), groups.len());
        for group in &groups {
            let ids: Vec<Identifier> = group.iter().map(|&n| ident(n)).collect();
            let names: BTreeSet<&str> = ids.iter().map(|i| persons.person_of(i).unwrap()).collect();
            prop_assert_eq!(names.len(), 1, "one person per component");
            // Named by a phone if the component has one, else the smallest
            // "kind:value".
            let phones: BTreeSet<String> = ids.iter().filter(|i| i.kind() == "phone").map(|i| i.to_string()).collect();
            let want = phones
                .iter()
                .next()
                .cloned()
                .unwrap_or_else(|| ids.iter().map(|i| i.to_string()).min().unwrap());
            prop_assert_eq!(*names.iter().next().unwrap(), want.as_str());
            let index = persons.index_of(&ids[0]).unwrap();
            prop_assert_eq!(persons.dictionary().id(index), Some(want.as_str()));
            // Kept as links are made, the name agrees with the resolution.
            for id in &ids {
                prop_assert_eq!(graph.person(id).map(|p| p.to_string()), Some(want.clone()));
                // And so are the person's identifiers (none listed for one
                // never linked to another).
                let mut members: Vec<Identifier> = graph.identifiers_of(id).cloned().collect();
                members.sort_by_key(|i| i.to_string());
                let mut component = ids.clone();
                component.sort_by_key(|i| i.to_string());
                if component.len() == 1 {
                    component.clear();
                }
                prop_assert_eq!(members, component);
            }
        }
        prop_assert!(graph.person(&Identifier::new("device", "never-seen")).is_none());
    }
}

/// S19: a prospect clicking a pricing page twice in a day becomes "high
/// intent"; "churned" straight to "high intent" is illegal and reported.
#[test]
fn s19_illegal_transitions_are_reported() {
    let decl = MachineDecl {
        name: "lifecycle".into(),
        states: vec![
            "prospect".into(),
            "high_intent".into(),
            "customer".into(),
            "churned".into(),
        ],
        initial: 0,
        transitions: vec![(0, 1), (1, 2), (2, 3), (3, 0), (0, 3)],
    };
    let machine = Machine::new(decl).unwrap();
    let t = |s: &str| s.parse::<Timestamp>().unwrap();
    // The rule (two clicks in a day) decides; the machine checks the move
    // and records when the state was entered.
    let prospect = machine.start(t("2026-11-01T00:00:00Z"));
    let hot = machine
        .transition(&prospect, "high_intent", t("2026-11-23T15:00:00Z"))
        .unwrap();
    assert_eq!(machine.state_name(&hot), "high_intent");
    assert_eq!(hot.entered_at(), t("2026-11-23T15:00:00Z"));
    let churned = machine
        .restore("churned", t("2026-11-10T00:00:00Z"))
        .unwrap();
    let err = machine
        .transition(&churned, "high_intent", t("2026-11-23T15:00:00Z"))
        .unwrap_err();
    assert_eq!(
        err,
        MachineError::Illegal {
            machine: "lifecycle".into(),
            from: "churned".into(),
            to: "high_intent".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "machine `lifecycle`: `churned` → `high_intent` is not an allowed transition"
    );
    // The legal way back goes through "prospect".
    let back = machine
        .transition(&churned, "prospect", t("2026-11-23T15:00:00Z"))
        .unwrap();
    assert_eq!(back.entered_at(), t("2026-11-23T15:00:00Z"));
    assert!(machine
        .transition(&back, "high_intent", t("2026-11-23T16:00:00Z"))
        .is_ok());
}
