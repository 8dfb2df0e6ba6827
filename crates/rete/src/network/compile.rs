//! From rule model to network: one alpha chain per pattern, one beta chain
//! per rule, both hash-consed so that equal prefixes are built once.

use super::{AlphaNet, BetaId, BetaKind, BetaNode, CAction, EmitInfo, Input, Network};
use crate::ir::{Action, Arg, Condition, Expr, Pattern, RuleId, RuleSet};
use nudge_core::Value;
use rustc_hash::FxHashMap;

/// Why a rule set could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompileError {
    /// The rule set is not valid (it was deserialized rather than built).
    #[error(transparent)]
    Invalid(#[from] crate::ir::IrError),
    /// The rule uses a construct the engine does not run yet.
    #[error("rule `{rule}`: {construct} is not supported by the engine yet")]
    Unsupported {
        /// The rule.
        rule: String,
        /// What it uses.
        construct: &'static str,
    },
}

pub(super) fn compile(mut rules: RuleSet) -> Result<Network, CompileError> {
    // Built rule sets are valid by construction; deserialized ones are
    // checked here, so that no index in them can be out of range.
    rules.reindex();
    rules.validate()?;
    let types = rules.schema().types().len();
    let mut b = Builder {
        alpha: AlphaNet::new(types),
        beta: vec![BetaNode {
            kind: BetaKind::Root,
            parent: 0,
            children: Vec::new(),
            depth: 0,
            slot_depth: Vec::new(),
        }],
        beta_index: FxHashMap::default(),
        alpha_successors: Vec::new(),
        alpha_rules: Vec::new(),
        beta_rules: vec![Vec::new()],
    };
    for (i, rule) in rules.rules().iter().enumerate() {
        let id = RuleId::new(i as u32);
        check_supported(rule)?;
        let mut node: BetaId = 0;
        for c in &rule.conditions {
            let kind = match c {
                Condition::Pattern(p) => BetaKind::Join(b.input(id, p)),
                Condition::Not(p) => BetaKind::Not(b.input(id, p)),
                Condition::Exists(p) => BetaKind::Exists(b.input(id, p)),
                Condition::Test(e) => BetaKind::Test(e.clone()),
                Condition::Aggregate(_) => unreachable!("rejected by check_supported"),
            };
            node = b.beta_node(node, kind, id);
        }
        b.beta_node(node, BetaKind::Terminal(id), id);
    }
    let mut group_names: Vec<&str> = Vec::new();
    let rule_group = rules
        .rules()
        .iter()
        .map(|r| {
            r.group
                .as_deref()
                .map(|g| match group_names.iter().position(|n| *n == g) {
                    Some(i) => i as u32,
                    None => {
                        group_names.push(g);
                        group_names.len() as u32 - 1
                    }
                })
        })
        .collect();
    let groups = group_names.len();
    let mut emits = Vec::new();
    let actions = rules
        .rules()
        .iter()
        .map(|r| {
            r.actions
                .iter()
                .map(|a| lower_action(a, &mut emits))
                .collect()
        })
        .collect();
    let mut alpha_successors = b.alpha_successors;
    alpha_successors.resize(b.alpha.mems.len(), Vec::new());
    let mut withdraw_visits_alpha = vec![false; types];
    for (m, successors) in alpha_successors.iter().enumerate() {
        let keeps_facts = successors.iter().any(|&n| {
            let node = &b.beta[n as usize];
            node.parent != 0 || !matches!(node.kind, BetaKind::Join(_))
        });
        if keeps_facts {
            withdraw_visits_alpha[b.alpha.mems[m].ty.index()] = true;
        }
    }
    Ok(Network {
        rules,
        alpha: b.alpha,
        beta: b.beta,
        alpha_successors,
        withdraw_visits_alpha,
        alpha_rules: b.alpha_rules,
        beta_rules: b.beta_rules,
        actions,
        emits,
        rule_group,
        groups,
    })
}

fn lower_action(a: &Action, emits: &mut Vec<EmitInfo>) -> CAction {
    match a {
        Action::Insert { ty, fields } => CAction::Insert {
            ty: *ty,
            fields: fields.clone(),
        },
        Action::Modify { slot, fields } => CAction::Modify {
            slot: *slot,
            fields: fields.clone(),
        },
        Action::Retract { slot } => CAction::Retract { slot: *slot },
        Action::Emit(e) => {
            let id = emits.len() as u32;
            emits.push(EmitInfo {
                action: e.action.clone(),
                arg_names: e.args.iter().map(|(n, _)| n.clone()).collect(),
            });
            let args = e
                .args
                .iter()
                .map(|(_, arg)| match arg {
                    Arg::Expr(x) => x.clone(),
                    Arg::Name(n) => Expr::Const(Value::Str(n.clone())),
                    Arg::Names(ns) => Expr::Const(Value::List(ns.iter().cloned().collect())),
                })
                .collect();
            let branches = e
                .branches
                .iter()
                .map(|(label, acts)| {
                    (
                        label.clone(),
                        acts.iter().map(|a| lower_action(a, emits)).collect(),
                    )
                })
                .collect();
            CAction::Emit {
                emit: id,
                args,
                branches,
            }
        }
        Action::Delayed { .. } => unreachable!("rejected by check_supported"),
    }
}

fn check_supported(rule: &crate::ir::Rule) -> Result<(), CompileError> {
    let unsupported = |construct| {
        Err(CompileError::Unsupported {
            rule: rule.name.to_string(),
            construct,
        })
    };
    for c in &rule.conditions {
        match c {
            Condition::Aggregate(_) => return unsupported("an aggregate"),
            Condition::Pattern(p) | Condition::Not(p) | Condition::Exists(p)
                if !p.window.is_unbounded() =>
            {
                return unsupported("a time window (`within`/`after`)")
            }
            _ => {}
        }
    }
    fn delayed(a: &Action) -> bool {
        match a {
            Action::Delayed { .. } => true,
            Action::Emit(e) => e.branches.iter().any(|(_, acts)| acts.iter().any(delayed)),
            _ => false,
        }
    }
    if rule.actions.iter().any(delayed) {
        return unsupported("a delayed action (`after`)");
    }
    Ok(())
}

struct Builder {
    alpha: AlphaNet,
    beta: Vec<BetaNode>,
    beta_index: FxHashMap<(BetaId, BetaKind), BetaId>,
    alpha_successors: Vec<Vec<BetaId>>,
    alpha_rules: Vec<Vec<crate::ir::RuleId>>,
    beta_rules: Vec<Vec<crate::ir::RuleId>>,
}

impl Builder {
    fn input(&mut self, rule: RuleId, p: &Pattern) -> Input {
        let alpha = self.alpha.memory_for(p.ty, &p.tests);
        // Record which rules pass through each alpha node of the chain.
        self.alpha_rules.resize(self.alpha.nodes.len(), Vec::new());
        let mut node = self.alpha.roots[p.ty.index()];
        for t in &p.tests {
            node = self.alpha.index[&(node, t.clone())];
            let users = &mut self.alpha_rules[node as usize];
            if users.last() != Some(&rule) {
                users.push(rule);
            }
        }
        Input {
            alpha,
            joins: p.joins.clone(),
            filters: p.filters.clone(),
        }
    }

    fn beta_node(&mut self, parent: BetaId, kind: BetaKind, rule: RuleId) -> BetaId {
        let id = match self.beta_index.get(&(parent, kind.clone())) {
            Some(&id) => id,
            None => {
                let id = self.beta.len() as BetaId;
                let p = &self.beta[parent as usize];
                let depth = p.depth + 1;
                let mut slot_depth = p.slot_depth.clone();
                if matches!(kind, BetaKind::Join(_)) {
                    slot_depth.push(depth);
                }
                if let BetaKind::Join(i) | BetaKind::Not(i) | BetaKind::Exists(i) = &kind {
                    let a = i.alpha as usize;
                    if self.alpha_successors.len() <= a {
                        self.alpha_successors.resize(a + 1, Vec::new());
                    }
                    self.alpha_successors[a].push(id);
                }
                self.beta.push(BetaNode {
                    kind: kind.clone(),
                    parent,
                    children: Vec::new(),
                    depth,
                    slot_depth,
                });
                self.beta_rules.push(Vec::new());
                self.beta[parent as usize].children.push(id);
                self.beta_index.insert((parent, kind), id);
                id
            }
        };
        let users = &mut self.beta_rules[id as usize];
        if users.last() != Some(&rule) {
            users.push(rule);
        }
        id
    }
}
