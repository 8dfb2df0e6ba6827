//! The benchmark workloads, small: the engine fires exactly what the naive
//! evaluate-every-rule loop fires, and W3 rewards exactly the users a
//! direct computation finds.

#[path = "../benches/workload.rs"]
mod workload;

use nudge::{Network, Session, Value};
use workload::*;

#[test]
fn w2_engine_agrees_with_the_naive_loop() {
    for (r, seed) in [(100, 1), (1_000, 2), (3_000, 3)] {
        let (rules, tests, types) = w2_rules(r, seed);
        let net = Network::shared(rules).unwrap();
        let events = w2_events(3_000, seed);
        let (mut f1, mut c1, mut f2, mut c2) = (0, 0, 0, 0);
        run_engine(&mut Session::new(net.clone()), &events, &mut f1, &mut c1);
        let naive = Naive::new(&tests, &types);
        for e in &events {
            naive.run(e, &mut f2, &mut c2);
        }
        assert!(f1 > 0, "the workload fires rules");
        assert_eq!((f1, c1), (f2, c2), "R = {r}");
        let stats = net.stats();
        assert!(
            stats.alpha_nodes < r * 3,
            "conditions are shared: {stats:?}"
        );
    }
}

#[test]
fn w3_rewards_each_eligible_user_once() {
    let rules = w3_rules(5);
    let net = Network::shared(rules.clone()).unwrap();
    let schema = net.rules().schema();
    let (profile, rewarded) = (
        schema.id("profile").unwrap(),
        schema.id("rewarded").unwrap(),
    );
    let profiles = w3_profiles(2_000, 5);
    let mut s = Session::new(net.clone());
    for p in &profiles {
        s.insert(profile, p.clone()).unwrap();
    }
    // Only users 1..=2000 have profiles; keep orders among them.
    let events: Vec<Event> = w2_events(20_000, 9)
        .into_iter()
        .map(|(t, mut v)| {
            if let Value::Int(u) = v[0] {
                v[0] = Value::Int(1 + u % 2_000);
            }
            (t, v)
        })
        .collect();
    let (mut f, mut c) = (0, 0);
    run_engine(&mut s, &events, &mut f, &mut c);
    let got: std::collections::BTreeSet<i64> = s
        .facts()
        .filter(|(_, t, _)| *t == rewarded)
        .map(|(_, _, v)| match v[0] {
            Value::Int(u) => u,
            _ => unreachable!(),
        })
        .collect();
    // Directly: a user is rewarded if some order of theirs passes some rule.
    let mut expected = std::collections::BTreeSet::new();
    for (t, v) in &events {
        if t.index() != 2 {
            continue;
        }
        let (Value::Int(u), Value::Int(amount)) = (&v[0], &v[2]) else {
            unreachable!()
        };
        let p = &profiles[(*u - 1) as usize];
        for rule in rules.rules() {
            let nudge::ir::Condition::Pattern(o) = &rule.conditions[0] else {
                unreachable!()
            };
            let nudge::ir::Condition::Pattern(pp) = &rule.conditions[1] else {
                unreachable!()
            };
            let order_ok = o.tests.iter().all(|t| match t {
                nudge::ir::Expr::Cmp(nudge::ir::CmpOp::Gt, _, b) => {
                    matches!(**b, nudge::ir::Expr::Const(Value::Int(a)) if *amount > a)
                }
                _ => unreachable!("W3 orders test only the amount"),
            });
            let env = nudge::ir::FactEnv(p);
            let profile_ok = pp.tests.iter().all(|t| nudge::ir::test(t, &env));
            if order_ok && profile_ok {
                expected.insert(*u);
            }
        }
    }
    assert!(!expected.is_empty());
    assert_eq!(got, expected);
}
