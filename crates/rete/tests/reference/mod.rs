//! A brute-force reference evaluator for the rule model.
//!
//! It computes, for every rule, every complete match over the current
//! working memory by trying every combination of facts, condition by
//! condition. It shares nothing with the engine but the definition of what
//! an expression means (`ir::eval`, `ir::test`, `ir::compare`), so a
//! disagreement between the two is a bug in the engine (or here, where it is
//! easy to see).

use nudge_core::{FieldId, Timestamp, TypeId, Value};
use nudge_rete::ir::{
    compare, test, CmpOp, Condition, Env, FunctionId, Pattern, RuleId, RuleSet, SetId, Slot,
};
use nudge_rete::{FactId, Host, Session};

/// One fact of working memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    pub id: FactId,
    pub ty: TypeId,
    pub values: Vec<Value>,
}

/// A copy of a session's working memory.
pub fn facts_of<H: Host>(session: &Session<H>) -> Vec<Fact> {
    session
        .facts()
        .map(|(id, ty, values)| Fact {
            id,
            ty,
            values: values.to_vec(),
        })
        .collect()
}

/// What an expression reads while the reference tests one candidate fact
/// against one partial match.
struct RefEnv<'a, H> {
    host: &'a H,
    now: Timestamp,
    /// The candidate fact, if a pattern is being tested.
    own: Option<&'a Fact>,
    /// The facts bound so far, by slot.
    bound: &'a [&'a Fact],
}

fn field_of(fact: &Fact, field: FieldId) -> Value {
    match fact.values.get(field.index()) {
        Some(v) => v.clone(),
        None => Value::Null,
    }
}

impl<H: Host> Env for RefEnv<'_, H> {
    fn own(&self, field: FieldId) -> Value {
        match self.own {
            Some(fact) => field_of(fact, field),
            None => Value::Null,
        }
    }

    fn bound(&self, slot: Slot, field: FieldId) -> Value {
        match self.bound.get(slot.index()) {
            Some(fact) => field_of(fact, field),
            None => Value::Null,
        }
    }

    fn in_set(&self, set: SetId, key: &Value) -> bool {
        self.host.in_set(set, key)
    }

    fn now(&self) -> Timestamp {
        self.now
    }

    fn call_host(&self, f: FunctionId, args: &[Value]) -> Value {
        self.host.call(f, args)
    }
}

/// Whether `fact` passes every test, join and filter of `pattern`, given the
/// facts bound so far.
fn passes<H: Host>(
    pattern: &Pattern,
    fact: &Fact,
    bound: &[&Fact],
    host: &H,
    now: Timestamp,
) -> bool {
    if fact.ty != pattern.ty {
        return false;
    }
    assert!(
        pattern.window.is_unbounded(),
        "the reference does not model time windows"
    );
    let env = RefEnv {
        host,
        now,
        own: Some(fact),
        bound,
    };
    for t in &pattern.tests {
        if !test(t, &env) {
            return false;
        }
    }
    for j in &pattern.joins {
        let mine = field_of(fact, j.field);
        let theirs = field_of(bound[j.slot.index()], j.other);
        if !compare(CmpOp::Eq, &mine, &theirs) {
            return false;
        }
    }
    for f in &pattern.filters {
        if !test(f, &env) {
            return false;
        }
    }
    true
}

/// Every complete match of every rule over `facts`, sorted, in the form of
/// `Session::matches`: the rule and the fact bound at each slot.
pub fn all_matches<H: Host>(
    rules: &RuleSet,
    facts: &[Fact],
    host: &H,
    now: Timestamp,
) -> Vec<(RuleId, Vec<FactId>)> {
    let mut out = Vec::new();
    for (i, rule) in rules.rules().iter().enumerate() {
        // Partial matches: the facts bound so far, by slot.
        let mut partials: Vec<Vec<&Fact>> = vec![Vec::new()];
        for condition in &rule.conditions {
            let mut next: Vec<Vec<&Fact>> = Vec::new();
            for partial in &partials {
                match condition {
                    Condition::Pattern(p) => {
                        for fact in facts {
                            if passes(p, fact, partial, host, now) {
                                let mut longer = partial.clone();
                                longer.push(fact);
                                next.push(longer);
                            }
                        }
                    }
                    Condition::Not(p) => {
                        let mut any = false;
                        for fact in facts {
                            if passes(p, fact, partial, host, now) {
                                any = true;
                            }
                        }
                        if !any {
                            next.push(partial.clone());
                        }
                    }
                    Condition::Exists(p) => {
                        let mut any = false;
                        for fact in facts {
                            if passes(p, fact, partial, host, now) {
                                any = true;
                            }
                        }
                        if any {
                            next.push(partial.clone());
                        }
                    }
                    Condition::Test(e) => {
                        let env = RefEnv {
                            host,
                            now,
                            own: None,
                            bound: partial,
                        };
                        if test(e, &env) {
                            next.push(partial.clone());
                        }
                    }
                    Condition::Aggregate(_) => {
                        panic!("the reference does not model aggregates")
                    }
                }
            }
            partials = next;
        }
        for partial in partials {
            let ids: Vec<FactId> = partial.iter().map(|f| f.id).collect();
            out.push((RuleId::new(i as u32), ids));
        }
    }
    out.sort();
    out
}
