//! The table kproxy would commit for a [`Plan`], as a [`TableDump`]: the shape a kernel
//! read-back has, so that [`super::compare`] compares like with like.
//!
//! Built from the same render step the backend commits through (skeleton, dynamic chains,
//! the plan's elements, single-field intervals as nft encodes them), without a kernel.

use std::collections::BTreeMap;

use kproxy_core::model::IpFamily;

use crate::bytes::{intervals, is_rbtree, raw_element};
use crate::plan::{Key, SetId};
use crate::render::Plan;
use crate::stmt::Rule;
use crate::trace::table::{DumpedChain, DumpedHook, DumpedRule, DumpedSet, TableDump};
use crate::tx::RawElement;

/// The family's table of `plan` as the kernel would list it (rule handles 0).
pub fn desired_table(plan: &Plan, family: IpFamily) -> TableDump {
    let mut out = TableDump::default();
    if let Some(fp) = plan.families.iter().find(|f| f.family == family) {
        for c in &fp.skeleton.chains {
            let hook = c.hook.map(|h| DumpedHook { kind: h.kind.into(), hooknum: h.number(), priority: h.priority });
            out.chains.insert(c.name.clone(), DumpedChain { hook, rules: Vec::new() });
        }
        for chain in fp.dynamic.keys() {
            out.chains.insert(chain.name(), DumpedChain::default());
        }
        for rule in fp.skeleton.rules.iter().chain(fp.dynamic.values().flatten()) {
            out.chains.entry(rule.chain.clone()).or_default().rules.push(dumped_rule(rule));
        }
    }
    for set in SetId::ALL.iter().filter(|s| s.exists_in(family)) {
        out.sets.insert(set.name().to_string(), DumpedSet::default());
    }
    // Several service ports may contribute one element: the first one's comment is kept,
    // as the record keeps the first reference.
    let mut unique: BTreeMap<(SetId, Vec<u8>, Option<Vec<u8>>), RawElement> = BTreeMap::new();
    let mut nets: BTreeMap<SetId, Vec<ipnet::IpNet>> = BTreeMap::new();
    for e in plan.elements.iter().filter(|e| e.family == family) {
        match e.key {
            Key::Net(n) if is_rbtree(e.set) => nets.entry(e.set).or_default().push(n),
            _ => {
                let raw = raw_element(e);
                unique.entry((e.set, raw.key.clone(), raw.key_end.clone())).or_insert(raw);
            }
        }
    }
    for ((set, _, _), raw) in unique {
        out.sets.entry(set.name().to_string()).or_default().elements.push(raw);
    }
    for (set, n) in nets {
        out.sets.entry(set.name().to_string()).or_default().elements.extend(intervals(&n));
    }
    out
}

/// A rule as a dump decodes it: set lookups by name.
fn dumped_rule(rule: &Rule) -> DumpedRule {
    DumpedRule { exprs: super::by_name(&rule.exprs), foreign: None, comment: rule.comment.clone(), handle: 0 }
}

/// The nft text of each rule of `plan`'s family table, by chain and expressions, to name a
/// missing rule the way `nft list` shows it.
pub fn rule_texts(plan: &Plan, family: IpFamily) -> Vec<super::RuleText> {
    plan.families
        .iter()
        .filter(|f| f.family == family)
        .flat_map(|fp| fp.skeleton.rules.iter().chain(fp.dynamic.values().flatten()))
        .map(|r| (r.chain.clone(), dumped_rule(r).exprs, r.text.clone()))
        .collect()
}
