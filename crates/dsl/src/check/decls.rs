//! The declarations of a ruleset: fact types, audiences, caps, coupons,
//! experiments, campaigns, machines, host actions and functions.

use super::names::{unknown, Table};
use super::settings::{self, Block};
use crate::ast::*;
use crate::diagnostic::{Diagnostic, ErrorKind};
use nudge_core::decl::{
    AudienceDecl as CoreAudience, AudienceExpr as CoreAudienceExpr, CampaignDecl, CapDecl,
    CapScope, CouponDecl, Declarations, ExperimentDecl, MachineDecl as CoreMachine, QuietHours,
    QuietPolicy, Zone,
};
use nudge_core::{
    builtin_actions, ActionSignature, FactKind, FactType, FunctionSignature, ParamType, Schema,
    TypeId, ValueType,
};
use nudge_rete::ir::Builtin;
use std::collections::HashMap;
use std::sync::Arc;

/// Everything declared, as symbol tables for the rule checker and as checked
/// declarations for the output.
pub(crate) struct Env {
    pub schema: Schema,
    pub types: Table<TypeId>,
    pub audiences: Table<()>,
    pub caps: Table<()>,
    pub coupons: Table<()>,
    pub experiments: Table<Vec<String>>,
    pub campaigns: Table<()>,
    pub machines: Table<Vec<String>>,
    pub actions: Table<ActionSignature>,
    pub functions: Table<FunctionSignature>,
    pub decls: Declarations,
}

/// Reads a type as written.
pub(crate) fn value_type(t: &TypeRef, diags: &mut Vec<Diagnostic>) -> Option<ValueType> {
    let scalar = match t.name.name.as_str() {
        "string" => Some(ValueType::String),
        "int" => Some(ValueType::Int),
        "float" => Some(ValueType::Float),
        "bool" => Some(ValueType::Bool),
        "timestamp" => Some(ValueType::Timestamp),
        "duration" => Some(ValueType::Duration),
        _ => None,
    };
    match (scalar, t.list) {
        (Some(ValueType::String), true) => Some(ValueType::StringList),
        (Some(_), true) => {
            diags.push(
                Diagnostic::new(
                    ErrorKind::UnknownType,
                    t.span,
                    "only lists of strings are supported",
                    "unsupported list",
                )
                .help("use `list<string>`"),
            );
            None
        }
        (Some(v), false) => Some(v),
        (None, _) => {
            let known = ["string", "int", "float", "bool", "timestamp", "duration"];
            let mut d = unknown(ErrorKind::UnknownType, "field type", &t.name, known);
            if d.help.is_none() {
                d = d.help("field types are string, int, float, bool, timestamp, duration and list<string>");
            }
            diags.push(d);
            None
        }
    }
}

impl Env {
    /// Collects and checks every declaration of `items`.
    pub fn build(items: &[&Item], diags: &mut Vec<Diagnostic>) -> Env {
        let mut env = Env {
            schema: Schema::new(),
            types: Table::new("type"),
            audiences: Table::new("audience"),
            caps: Table::new("cap"),
            coupons: Table::new("coupon template"),
            experiments: Table::new("experiment"),
            campaigns: Table::new("campaign"),
            machines: Table::new("machine"),
            actions: Table::new("action"),
            functions: Table::new("function"),
            decls: Declarations::default(),
        };
        let contexts = contexts_by_type(items, diags);
        // Names first, so that declarations may refer to each other in any order.
        for item in items {
            match item {
                Item::Type(t) => {
                    let provided = contexts.get(t.name.name.as_str());
                    env.declare_type(t, provided.map_or(&[][..], Vec::as_slice), diags)
                }
                Item::Machine(m) => env.declare_machine(m, diags),
                Item::Audience(a) => {
                    env.audiences.declare(&a.name, (), diags);
                }
                Item::Settings(s) => {
                    let _ = match s.kind {
                        SettingsKind::Cap => env.caps.declare(&s.name, (), diags),
                        SettingsKind::Coupon => env.coupons.declare(&s.name, (), diags),
                        SettingsKind::Campaign => env.campaigns.declare(&s.name, (), diags),
                        SettingsKind::Experiment => {
                            env.experiments.declare(&s.name, Vec::new(), diags)
                        }
                    };
                }
                Item::Action(a) => env.declare_action(a, diags),
                Item::Function(f) => env.declare_function(f, diags),
                Item::Include(_) | Item::Context(_) | Item::Rule(_) => {}
            }
        }
        let audience_defs: Vec<&AudienceDecl> = items
            .iter()
            .filter_map(|i| match i {
                Item::Audience(a) => Some(a),
                _ => None,
            })
            .collect();
        env.check_audiences(&audience_defs, diags);
        for item in items {
            if let Item::Settings(s) = item {
                match s.kind {
                    SettingsKind::Cap => env.cap(s, diags),
                    SettingsKind::Coupon => env.coupon(s, diags),
                    SettingsKind::Campaign => env.campaign(s, diags),
                    SettingsKind::Experiment => env.experiment(s, diags),
                }
            }
        }
        env.check_layers(items, diags);
        env
    }

    /// Declares an event or fact type, with the fields of the context
    /// providers that extend it after its own.
    fn declare_type(
        &mut self,
        t: &TypeDecl,
        contexts: &[&ContextDecl],
        diags: &mut Vec<Diagnostic>,
    ) {
        // A second declaration of the name is refused: its contexts belong
        // to the first, so they are checked only once.
        let contexts = if self.types.get(&t.name.name).is_some() {
            &[][..]
        } else {
            contexts
        };
        let mut ty = FactType::new(t.name.name.as_str(), t.kind);
        let mut seen: HashMap<&str, Span> = HashMap::new();
        let (mut key, mut time): (Option<&FieldDecl>, Option<&FieldDecl>) = (None, None);
        let mut ok = true;
        for f in &t.fields {
            if let Some(first) = seen.insert(&f.name.name, f.name.span) {
                diags.push(
                    Diagnostic::new(
                        ErrorKind::Duplicate,
                        f.name.span,
                        format!("field `{}` is declared twice", f.name.name),
                        "declared again here",
                    )
                    .note(first, "first declared here"),
                );
                ok = false;
                continue;
            }
            let Some(vt) = value_type(&f.ty, diags) else {
                ok = false;
                continue;
            };
            match f.role {
                Some(FieldRole::Key) => {
                    if let Some(k) = key {
                        diags.push(
                            Diagnostic::new(
                                ErrorKind::Duplicate,
                                f.span,
                                format!("`{}` has two key fields", t.name.name),
                                "second key",
                            )
                            .note(k.span, "first key"),
                        );
                        ok = false;
                    } else if f.optional || !matches!(vt, ValueType::String | ValueType::Int) {
                        diags.push(Diagnostic::new(
                            ErrorKind::TypeMismatch,
                            f.span,
                            "a key field must be a string or an int, and not optional".to_string(),
                            "bad key",
                        ));
                        ok = false;
                    }
                    key = Some(f);
                }
                Some(FieldRole::Time) => {
                    if t.kind != FactKind::Event {
                        diags.push(
                            Diagnostic::new(
                                ErrorKind::BadTime,
                                f.span,
                                format!("fact `{}` cannot have a time field", t.name.name),
                                "only events have a time",
                            )
                            .help("declare it as `event` if it happens at a time, or drop `time`"),
                        );
                        ok = false;
                    } else if vt != ValueType::Timestamp || f.optional {
                        diags.push(Diagnostic::new(
                            ErrorKind::BadTime,
                            f.span,
                            "an event's time field must be a timestamp, and not optional"
                                .to_string(),
                            "expected `timestamp`",
                        ));
                        ok = false;
                    } else if let Some(first) = time {
                        diags.push(
                            Diagnostic::new(
                                ErrorKind::Duplicate,
                                f.span,
                                format!("`{}` has two time fields", t.name.name),
                                "second time field",
                            )
                            .note(first.span, "first time field"),
                        );
                        ok = false;
                    }
                    time = Some(f);
                }
                None => {}
            }
            ty = ty.field(f.name.name.as_str(), vt, f.optional);
        }
        let (with_fields, provided) = context_fields(t, ty, &seen, contexts, diags);
        ty = with_fields;
        if ok {
            if let Some(k) = key {
                ty = ty
                    .with_key(&k.name.name)
                    .unwrap_or_else(|_| unreachable!("the key field was just added"));
            }
            if let Some(t) = time {
                ty = ty
                    .with_time(&t.name.name)
                    .unwrap_or_else(|_| unreachable!("the time field was just added"));
            }
        }
        for (name, fields) in provided {
            ty = ty
                .with_context(name, &fields)
                .unwrap_or_else(|_| unreachable!("the context's fields were just added"));
        }
        self.add_type(&t.name, ty, diags);
    }

    fn add_type(&mut self, name: &Ident, ty: FactType, diags: &mut Vec<Diagnostic>) {
        if self.types.get(&name.name).is_some() {
            self.types.declare(name, TypeId::new(0), diags);
            return;
        }
        match self.schema.add(ty) {
            Ok(id) => {
                self.types.declare(name, id, diags);
            }
            Err(_) => unreachable!("the type table and the schema hold the same names"),
        }
    }

    fn declare_machine(&mut self, m: &MachineDecl, diags: &mut Vec<Diagnostic>) {
        let mut states: Vec<String> = Vec::new();
        let mut transitions: Vec<(usize, usize)> = Vec::new();
        let state =
            |name: &str, states: &mut Vec<String>| match states.iter().position(|s| s == name) {
                Some(i) => i,
                None => {
                    states.push(name.to_string());
                    states.len() - 1
                }
            };
        let mut initial = None;
        for e in &m.entries {
            match e {
                MachineEntry::Transition(t) => {
                    let from = state(&t.from.name, &mut states);
                    for to in &t.to {
                        let to_i = state(&to.name, &mut states);
                        if transitions.contains(&(from, to_i)) {
                            diags.push(Diagnostic::new(
                                ErrorKind::Duplicate,
                                to.span,
                                format!(
                                    "transition `{} -> {}` is declared twice",
                                    t.from.name, to.name
                                ),
                                "repeated",
                            ));
                        } else {
                            transitions.push((from, to_i));
                        }
                    }
                }
                MachineEntry::Setting(_) => {}
            }
        }
        let settings = m.entries.iter().filter_map(|e| match e {
            MachineEntry::Setting(s) => Some(s),
            MachineEntry::Transition(_) => None,
        });
        let block = Block::new("machine", &m.name, settings, &["initial"], diags);
        if let Some(s) = block.get("initial") {
            if let Some(n) = settings::name(&s.value, diags) {
                match states.iter().position(|st| *st == n.name) {
                    Some(i) => initial = Some(i),
                    None => diags.push(unknown(
                        ErrorKind::UnknownState,
                        "state",
                        &n,
                        states.iter().map(String::as_str),
                    )),
                }
            }
        }
        if states.is_empty() {
            diags.push(
                Diagnostic::new(
                    ErrorKind::BadSetting,
                    m.name.span,
                    format!("machine `{}` has no transitions", m.name.name),
                    "no states",
                )
                .help("list transitions such as `new -> active, dormant`"),
            );
        }
        if self
            .machines
            .declare(&m.name, states.clone(), diags)
            .is_none()
        {
            return;
        }
        self.decls.machines.push(CoreMachine {
            name: m.name.name.as_str().into(),
            states: states.iter().map(|s| Arc::from(s.as_str())).collect(),
            initial: initial.unwrap_or(0),
            transitions,
        });
        let ty = FactType::new(m.name.name.as_str(), FactKind::Fact)
            .field("user_id", ValueType::String, false)
            .field("state", ValueType::String, false)
            .field("since", ValueType::Timestamp, false)
            .with_key("user_id")
            .unwrap_or_else(|_| unreachable!("user_id was just added"));
        self.add_type(&m.name, ty, diags);
    }

    fn params(
        &self,
        params: &[ParamDecl],
        diags: &mut Vec<Diagnostic>,
    ) -> Option<Vec<(String, ValueType, bool)>> {
        let mut out: Vec<(String, ValueType, bool)> = Vec::new();
        let mut ok = true;
        for p in params {
            if out.iter().any(|(n, _, _)| *n == p.name.name) {
                diags.push(Diagnostic::new(
                    ErrorKind::Duplicate,
                    p.name.span,
                    format!("parameter `{}` is declared twice", p.name.name),
                    "repeated",
                ));
                ok = false;
                continue;
            }
            match value_type(&p.ty, diags) {
                Some(t) => out.push((p.name.name.clone(), t, p.optional)),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn declare_action(&mut self, a: &ActionDecl, diags: &mut Vec<Diagnostic>) {
        let reserved = builtin_actions().iter().any(|b| b.name() == a.name.name)
            || ["insert", "modify", "retract"].contains(&a.name.name.as_str());
        if reserved {
            diags.push(
                Diagnostic::new(
                    ErrorKind::Duplicate,
                    a.name.span,
                    format!("`{}` is a built-in action", a.name.name),
                    "built in",
                )
                .help("give the host action another name"),
            );
            return;
        }
        let Some(params) = self.params(&a.params, diags) else {
            return;
        };
        let mut sig = ActionSignature::new(a.name.name.as_str());
        for (n, t, optional) in params {
            sig = sig.param_of(&n, ParamType::Value(vec![t]), !optional);
        }
        if self.actions.declare(&a.name, sig.clone(), diags).is_some() {
            self.decls.actions.push(sig);
        }
    }

    fn declare_function(&mut self, f: &FunctionDecl, diags: &mut Vec<Diagnostic>) {
        if Builtin::from_name(&f.name.name).is_some() || f.name.name == "time" {
            diags.push(
                Diagnostic::new(
                    ErrorKind::Duplicate,
                    f.name.span,
                    format!("`{}` is a built-in function", f.name.name),
                    "built in",
                )
                .help("give the host function another name"),
            );
            return;
        }
        let params = self.params(&f.params, diags);
        let returns = value_type(&f.returns, diags);
        let (Some(params), Some(returns)) = (params, returns) else {
            return;
        };
        if let Some(p) = f.params.iter().find(|p| p.optional) {
            diags.push(Diagnostic::new(
                ErrorKind::BadArgument,
                p.span,
                "function parameters cannot be optional".to_string(),
                "optional",
            ));
            return;
        }
        let sig = FunctionSignature {
            name: f.name.name.as_str().into(),
            params: params.into_iter().map(|(_, t, _)| t).collect(),
            returns,
        };
        if self
            .functions
            .declare(&f.name, sig.clone(), diags)
            .is_some()
        {
            self.decls.functions.push(sig);
        }
    }

    fn check_audiences(&mut self, defs: &[&AudienceDecl], diags: &mut Vec<Diagnostic>) {
        let mut seen = std::collections::HashSet::new();
        for a in defs {
            if !seen.insert(a.name.name.as_str()) {
                continue;
            }
            let definition = a
                .definition
                .as_ref()
                .and_then(|d| self.audience_expr(d, diags));
            self.decls.audiences.push(CoreAudience {
                name: a.name.name.as_str().into(),
                definition,
            });
        }
        // A computed audience must not depend on itself: one depth-first
        // walk over the definitions, each reported cycle once.
        let index: HashMap<&str, usize> = defs
            .iter()
            .enumerate()
            .map(|(i, d)| (d.name.name.as_str(), i))
            .collect();
        let deps: Vec<Vec<(usize, &Ident)>> = defs
            .iter()
            .map(|d| {
                let mut out = Vec::new();
                let mut stack: Vec<&AudienceExpr> = d.definition.iter().collect();
                while let Some(e) = stack.pop() {
                    match e {
                        AudienceExpr::Name(n) => {
                            out.extend(index.get(n.name.as_str()).map(|&i| (i, n)))
                        }
                        AudienceExpr::Binary(_, l, r) => stack.extend([&**l, &**r]),
                    }
                }
                out
            })
            .collect();
        // 0: not seen, 1: on the current path, 2: done.
        let mut state = vec![0u8; defs.len()];
        for root in 0..defs.len() {
            if state[root] != 0 {
                continue;
            }
            let mut path: Vec<(usize, usize)> = vec![(root, 0)];
            state[root] = 1;
            while let Some(&mut (node, ref mut next)) = path.last_mut() {
                match deps[node].get(*next) {
                    Some(&(dep, used_at)) => {
                        *next += 1;
                        match state[dep] {
                            0 => {
                                state[dep] = 1;
                                path.push((dep, 0));
                            }
                            1 => diags.push(
                                Diagnostic::new(
                                    ErrorKind::Cycle,
                                    used_at.span,
                                    format!(
                                        "audience `{}` is defined in terms of itself",
                                        defs[dep].name.name
                                    ),
                                    "closes the cycle",
                                )
                                .note(defs[dep].name.span, "defined here"),
                            ),
                            _ => {}
                        }
                    }
                    None => {
                        state[node] = 2;
                        path.pop();
                    }
                }
            }
        }
    }

    fn audience_expr(
        &self,
        e: &AudienceExpr,
        diags: &mut Vec<Diagnostic>,
    ) -> Option<CoreAudienceExpr> {
        match e {
            AudienceExpr::Name(n) => {
                self.audiences.resolve(n, ErrorKind::UnknownName, diags)?;
                Some(CoreAudienceExpr::Named(n.name.as_str().into()))
            }
            AudienceExpr::Binary(op, l, r) => {
                let (l, r) = (self.audience_expr(l, diags), self.audience_expr(r, diags));
                let (l, r) = (Box::new(l?), Box::new(r?));
                Some(match op {
                    SetOp::And => CoreAudienceExpr::And(l, r),
                    SetOp::Or => CoreAudienceExpr::Or(l, r),
                    SetOp::AndNot => CoreAudienceExpr::AndNot(l, r),
                    SetOp::Xor => CoreAudienceExpr::Xor(l, r),
                })
            }
        }
    }

    fn cap(&mut self, s: &SettingsDecl, diags: &mut Vec<Diagnostic>) {
        let b = Block::new(
            "cap",
            &s.name,
            &s.settings,
            &["limit", "channel", "campaign", "zone", "exempt"],
            diags,
        );
        let limit = b
            .required("limit", "2 per calendar day", diags)
            .and_then(|l| settings::limit(&l.value, diags));
        let scope = match (b.get("channel"), b.get("campaign")) {
            (Some(c), Some(k)) => {
                diags.push(
                    Diagnostic::new(
                        ErrorKind::BadSetting,
                        k.span,
                        "a cap counts one channel or one campaign, not both".to_string(),
                        "second scope",
                    )
                    .note(c.span, "channel set here")
                    .help("declare two caps"),
                );
                None
            }
            (Some(c), None) => {
                settings::string(&c.value, diags).map(|c| CapScope::Channel(c.into()))
            }
            (None, Some(k)) => settings::name(&k.value, diags).and_then(|n| {
                self.campaigns.resolve(&n, ErrorKind::UnknownName, diags)?;
                Some(CapScope::Campaign(n.name.as_str().into()))
            }),
            (None, None) => Some(CapScope::All),
        };
        let zone = match b.get("zone") {
            Some(z) => settings::zone(&z.value, diags),
            None => Some(Zone::User),
        };
        let exempt = b
            .get("exempt")
            .map(|e| settings::names_in(&e.value, &self.audiences, ErrorKind::UnknownName, diags))
            .unwrap_or_default();
        if let (Some(limit), Some(scope), Some(zone)) = (limit, scope, zone) {
            self.decls.caps.push(CapDecl {
                name: s.name.name.as_str().into(),
                limit,
                scope,
                zone,
                exempt,
            });
        }
    }

    fn coupon(&mut self, s: &SettingsDecl, diags: &mut Vec<Diagnostic>) {
        let b = Block::new(
            "coupon",
            &s.name,
            &s.settings,
            &[
                "value",
                "stock",
                "budget",
                "per_user",
                "valid_for",
                "shards",
                "min_spend",
                "discount",
            ],
            diags,
        );
        let value = b
            .required("value", "20.0", diags)
            .and_then(|v| settings::amount(&v.value, diags));
        let stock = b
            .get("stock")
            .map(|v| settings::count(&v.value, 0, i64::MAX, diags));
        let budget = b.get("budget").map(|v| settings::amount(&v.value, diags));
        let per_user = b.get("per_user").map(|v| settings::limit(&v.value, diags));
        let valid_for = b
            .get("valid_for")
            .map(|v| settings::duration(&v.value, diags));
        let shards = b
            .get("shards")
            .map(|v| settings::count(&v.value, 1, 1024, diags));
        let min_spend = b
            .get("min_spend")
            .map(|v| settings::amount(&v.value, diags));
        let discount = b.get("discount").map(|v| match v.value.words.as_slice() {
            [w] => settings::basis_points(w, v.value.span, diags),
            _ => {
                diags.push(settings::bad(&v.value, "a percentage such as `50%`"));
                None
            }
        });
        let all_ok = stock.is_none_or(|x| x.is_some())
            && budget.is_none_or(|x| x.is_some())
            && per_user.is_none_or(|x| x.is_some())
            && valid_for.is_none_or(|x| x.is_some())
            && shards.is_none_or(|x| x.is_some())
            && min_spend.is_none_or(|x| x.is_some())
            && discount.is_none_or(|x| x.is_some());
        // Settings each valid alone that do not work together.
        let never = |key: &str, message: String, label: &str, diags: &mut Vec<Diagnostic>| {
            if let Some(v) = b.get(key) {
                diags.push(Diagnostic::new(
                    ErrorKind::BadSetting,
                    v.value.span,
                    message,
                    label,
                ));
            }
        };
        let mut sound = true;
        if let (Some(v), Some(Some(budget))) = (value, budget) {
            if budget < v {
                never(
                    "budget",
                    format!("a budget of {budget} does not pay for one coupon of {v}"),
                    "no coupon could be issued",
                    diags,
                );
                sound = false;
            }
        }
        if let Some(Some(limit)) = per_user {
            if limit.count == 0 {
                never(
                    "per_user",
                    "a per-user limit of 0 lets nobody have one".into(),
                    "no coupon could be issued",
                    diags,
                );
                sound = false;
            }
        }
        if let (Some(Some(stock)), Some(Some(n))) = (stock, shards) {
            if stock < n {
                let message = format!(
                    "{n} sub-stocks for a stock of {stock}: some would hold no coupon; use at most {stock}"
                );
                never("shards", message, "more sub-stocks than coupons", diags);
                sound = false;
            }
        }
        if let (Some(value), true) = (value, all_ok && sound) {
            self.decls.coupons.push(CouponDecl {
                name: s.name.name.as_str().into(),
                value,
                min_spend: min_spend.flatten(),
                discount_bp: discount.flatten(),
                stock: stock.flatten().map(|s| s as u64),
                budget: budget.flatten(),
                per_user: per_user.flatten(),
                valid_for: valid_for.flatten(),
                shards: shards.flatten().unwrap_or(1) as u32,
            });
        }
    }

    fn campaign(&mut self, s: &SettingsDecl, diags: &mut Vec<Diagnostic>) {
        let b = Block::new(
            "campaign",
            &s.name,
            &s.settings,
            &["per_user", "suppress", "quiet_hours", "zone"],
            diags,
        );
        let per_user = b.get("per_user").map(|v| settings::limit(&v.value, diags));
        let suppress = b
            .get("suppress")
            .map(|v| settings::names_in(&v.value, &self.audiences, ErrorKind::UnknownName, diags))
            .unwrap_or_default();
        let quiet = b.get("quiet_hours").map(|v| quiet_hours(&v.value, diags));
        let zone = match b.get("zone") {
            Some(z) => settings::zone(&z.value, diags),
            None => Some(Zone::User),
        };
        if per_user.as_ref().is_some_and(Option::is_none)
            || quiet.as_ref().is_some_and(Option::is_none)
        {
            return;
        }
        if let Some(zone) = zone {
            self.decls.campaigns.push(CampaignDecl {
                name: s.name.name.as_str().into(),
                per_user: per_user.flatten(),
                suppress,
                quiet_hours: quiet.flatten(),
                zone,
            });
        }
    }

    fn experiment(&mut self, s: &SettingsDecl, diags: &mut Vec<Diagnostic>) {
        let b = Block::new(
            "experiment",
            &s.name,
            &s.settings,
            &["layer", "traffic", "arms", "seed"],
            diags,
        );
        let layer = b.get("layer").map(|v| settings::name(&v.value, diags));
        let traffic = match b.get("traffic") {
            Some(v) => match v.value.words.as_slice() {
                [w] => settings::basis_points(w, v.value.span, diags),
                _ => {
                    diags.push(settings::bad(&v.value, "a percentage"));
                    None
                }
            },
            None => Some(10_000),
        };
        let seed = b.get("seed").map(|v| settings::string(&v.value, diags));
        let arms_setting = b.required("arms", "{ a: 50%, b: 50% }", diags);
        // The arm names are known even when the shares are wrong, so that
        // `split` branches are checked against them without more errors.
        if let Some([Word::Map(entries, _)]) = arms_setting.map(|v| v.value.words.as_slice()) {
            if let Some((i, names)) = self.experiments.get(&s.name.name) {
                if names.is_empty() {
                    self.experiments
                        .set(i, entries.iter().map(|(n, _)| n.name.clone()).collect());
                }
            }
        }
        let arms = arms_setting.and_then(|v| arms(&v.value, diags));
        if layer.as_ref().is_some_and(Option::is_none) || seed.as_ref().is_some_and(Option::is_none)
        {
            return;
        }
        if let (Some(traffic_bp), Some(arms)) = (traffic, arms) {
            self.decls.experiments.push(ExperimentDecl {
                name: s.name.name.as_str().into(),
                layer: layer.flatten().map(|l| Arc::from(l.name.as_str())),
                traffic_bp,
                arms,
                seed: seed.flatten().map_or_else(
                    || Arc::from(s.name.name.as_str()),
                    |s| Arc::from(s.as_str()),
                ),
            });
        }
    }

    /// Experiments of one layer share its traffic: together at most 100%.
    fn check_layers(&self, items: &[&Item], diags: &mut Vec<Diagnostic>) {
        let mut used: HashMap<&str, u32> = HashMap::new();
        for e in &self.decls.experiments {
            let Some(layer) = &e.layer else { continue };
            let total = used.entry(layer).or_insert(0);
            *total += e.traffic_bp;
            if *total > 10_000 {
                let span = items
                    .iter()
                    .find_map(|i| match i {
                        Item::Settings(s)
                            if s.kind == SettingsKind::Experiment && s.name.name == *e.name =>
                        {
                            Some(s.name.span)
                        }
                        _ => None,
                    })
                    .unwrap_or_default();
                diags.push(
                    Diagnostic::new(
                        ErrorKind::BadSetting,
                        span,
                        format!(
                            "the experiments of layer `{layer}` take more than 100% of its traffic"
                        ),
                        "over the layer's traffic",
                    )
                    .help("lower `traffic` so the layer's experiments add up to 100% at most"),
                );
            }
        }
    }
}

/// The context providers of every event and fact type, in declaration
/// order. A context whose target is not such a type is reported here.
fn contexts_by_type<'a>(
    items: &[&'a Item],
    diags: &mut Vec<Diagnostic>,
) -> HashMap<&'a str, Vec<&'a ContextDecl>> {
    let mut types: Vec<&str> = Vec::new();
    let mut machines: HashMap<&str, Span> = HashMap::new();
    for item in items {
        match item {
            Item::Type(t) => types.push(&t.name.name),
            Item::Machine(m) => {
                machines.entry(&m.name.name).or_insert(m.name.span);
            }
            _ => {}
        }
    }
    let mut out: HashMap<&str, Vec<&ContextDecl>> = HashMap::new();
    for item in items {
        let Item::Context(c) = item else { continue };
        let target = c.target.name.as_str();
        if types.contains(&target) {
            out.entry(target).or_default().push(c);
        } else if let Some(&machine) = machines.get(target) {
            diags.push(
                Diagnostic::new(
                    ErrorKind::UnknownType,
                    c.target.span,
                    format!("`{target}` is a machine: a context cannot add fields to its facts"),
                    "a machine's fact type",
                )
                .note(machine, "machine declared here")
                .help("contexts extend the types declared with `event` or `fact`"),
            );
        } else {
            diags.push(unknown(
                ErrorKind::UnknownType,
                "event or fact type",
                &c.target,
                types.iter().copied(),
            ));
        }
    }
    out
}

/// Appends the fields of `contexts` to `ty` (the type `t` with its own
/// fields, `own`), reporting roles and clashing names. Returns the type and,
/// for each context to register, its name and the fields it fills.
fn context_fields<'a>(
    t: &TypeDecl,
    mut ty: FactType,
    own: &HashMap<&str, Span>,
    contexts: &[&'a ContextDecl],
    diags: &mut Vec<Diagnostic>,
) -> (FactType, Vec<(&'a str, Vec<&'a str>)>) {
    let mut names: HashMap<&str, Span> = HashMap::new();
    // Field name -> where it was declared, and by which context.
    let mut added: HashMap<&str, (Span, &str)> = HashMap::new();
    let mut provided = Vec::new();
    for c in contexts {
        if let Some(&first) = names.get(c.name.name.as_str()) {
            diags.push(
                Diagnostic::new(
                    ErrorKind::Duplicate,
                    c.name.span,
                    format!(
                        "context `{}` is declared twice for `{}`",
                        c.name.name, t.name.name
                    ),
                    "declared again here",
                )
                .note(first, "first declared here")
                .help("put the fields in one context, or give the providers different names"),
            );
            continue;
        }
        names.insert(&c.name.name, c.name.span);
        let mut fields = Vec::new();
        for f in &c.fields {
            let name = f.name.name.as_str();
            match f.role {
                Some(FieldRole::Key) => diags.push(
                    Diagnostic::new(
                        ErrorKind::BadSetting,
                        f.span,
                        "a context field cannot be a key",
                        "`key` on a context field",
                    )
                    .help(format!(
                        "remove `key`: the key of `{}` is one of its own fields",
                        t.name.name
                    )),
                ),
                Some(FieldRole::Time) => diags.push(
                    Diagnostic::new(
                        ErrorKind::BadTime,
                        f.span,
                        "a context field cannot be the event time",
                        "`time` on a context field",
                    )
                    .help(match t.kind {
                        FactKind::Event => format!(
                            "remove `time`: the time of `{}` is one of its own fields",
                            t.name.name
                        ),
                        FactKind::Fact => "remove `time`: facts have no time field".to_string(),
                    }),
                ),
                None => {}
            }
            let clash = match (own.get(name), added.get(name)) {
                (Some(&first), _) => Some((
                    format!("`{}` already has a field `{name}`", t.name.name),
                    first,
                )),
                (None, Some(&(first, by))) if by == c.name.name => {
                    Some((format!("field `{name}` is declared twice"), first))
                }
                (None, Some(&(first, by))) => Some((
                    format!(
                        "`{}` already has a field `{name}`, from context `{by}`",
                        t.name.name
                    ),
                    first,
                )),
                (None, None) => None,
            };
            if let Some((message, first)) = clash {
                diags.push(
                    Diagnostic::new(
                        ErrorKind::Duplicate,
                        f.name.span,
                        message,
                        "declared again here",
                    )
                    .note(first, "first declared here")
                    .help("rename one of them"),
                );
                continue;
            }
            added.insert(name, (f.name.span, &c.name.name));
            let Some(vt) = value_type(&f.ty, diags) else {
                continue;
            };
            ty = ty.field(name, vt, f.optional);
            fields.push(name);
        }
        provided.push((c.name.name.as_str(), fields));
    }
    (ty, provided)
}

fn arms(v: &SettingValue, diags: &mut Vec<Diagnostic>) -> Option<Vec<(Arc<str>, u32)>> {
    let [Word::Map(entries, span)] = v.words.as_slice() else {
        diags.push(settings::bad(v, "arms such as `{ a: 50%, b: 50% }`"));
        return None;
    };
    let mut out: Vec<(Arc<str>, u32)> = Vec::new();
    let mut ok = true;
    for (name, value) in entries {
        if out.iter().any(|(n, _)| **n == name.name) {
            diags.push(Diagnostic::new(
                ErrorKind::Duplicate,
                name.span,
                format!("arm `{}` is listed twice", name.name),
                "repeated",
            ));
            ok = false;
            continue;
        }
        match value.words.as_slice() {
            [w] => match settings::basis_points(w, value.span, diags) {
                Some(bp) => out.push((name.name.as_str().into(), bp)),
                None => ok = false,
            },
            _ => {
                diags.push(settings::bad(value, "a percentage"));
                ok = false;
            }
        }
    }
    if !ok {
        return None;
    }
    let total: u32 = out.iter().map(|(_, w)| w).sum();
    if out.is_empty() || total != 10_000 {
        diags.push(
            Diagnostic::new(
                ErrorKind::BadSetting,
                *span,
                format!("arms add up to {}%, not 100%", total as f64 / 100.0),
                "must add up to 100%",
            )
            .help("a control arm that gets nothing is written `control: 10%` and given no actions"),
        );
        return None;
    }
    Some(out)
}

fn quiet_hours(v: &SettingValue, diags: &mut Vec<Diagnostic>) -> Option<QuietHours> {
    let expected = "quiet hours such as `\"21:00-09:00\" defer` (or `drop`)";
    let (range, policy) = match v.words.as_slice() {
        [Word::Lit(Literal::Str(r), _)] => (r, QuietPolicy::Defer),
        [Word::Lit(Literal::Str(r), _), Word::Name(p)] if p.name == "defer" => {
            (r, QuietPolicy::Defer)
        }
        [Word::Lit(Literal::Str(r), _), Word::Name(p)] if p.name == "drop" => {
            (r, QuietPolicy::Drop)
        }
        _ => {
            diags.push(settings::bad(v, expected));
            return None;
        }
    };
    let parsed = range.split_once('-').and_then(|(a, b)| {
        Some((
            settings::clock_minutes(a.trim())?,
            settings::clock_minutes(b.trim())?,
        ))
    });
    match parsed {
        Some((start, end)) if start != end => Some(QuietHours { start, end, policy }),
        _ => {
            diags.push(settings::bad(v, expected));
            None
        }
    }
}
