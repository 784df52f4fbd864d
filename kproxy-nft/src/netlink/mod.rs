//! The thin kernel step: plans and deltas as one nf_tables batch each.
//!
//! [`Batch`] and [`Socket`] are a small reusable API over libnftnl and kproxy-netlink (other backends
//! build their own tables with them); [`full_batch`], [`delta_batch`] and [`cleanup_batch`]
//! turn kproxy's plan into batches.

mod batch;
pub mod encode;
mod set_templates;
mod socket;
mod wire;


use kproxy_core::model::{IpFamily, ProxySettings};

pub use batch::{Batch, ChainHook, RawData, RawElement, TableFamily};
use batch::{NFT_MSG_DELSETELEM, NFT_MSG_NEWSETELEM, NLM_F_CREATE};
pub use socket::{NetlinkError, Socket};

use crate::plan::{ChainRef, Element, Key, SetId, Value};
use crate::record::FxMap;
use crate::record::{Delta, Record};
use crate::render::{chain_rules, Plan, FAMILIES};
use crate::skeleton::ChainDecl;
use crate::NftConfig;

/// The raw NEWSET attributes of a set (captured from nft 1.0.6, see `tools/capture_sets.py`).
fn template(family: IpFamily, set: SetId) -> &'static [u8] {
    set_templates::SET_TEMPLATES
        .iter()
        .find(|(f, n, _)| *f == family && *n == set.name())
        .map(|(_, _, raw)| *raw)
        // Every (family, set) with `exists_in` has a template: checked by a unit test.
        .unwrap_or(&[])
}

fn add_chain(b: &mut Batch, family: IpFamily, table: &str, c: &ChainDecl) {
    let hook = c.hook.map(|h| ChainHook { kind: h.kind, hooknum: h.number(), priority: h.priority });
    b.add_chain(family.into(), table, &c.name, hook);
}

/// One element of [`add_grouped`]: from the plan as it is, or an interval set's.
enum Item<'a> {
    Plain(encode::PlanElement<'a>),
    Raw(RawElement),
}

impl wire::WireElement for Item<'_> {
    fn with_parts<R>(&self, f: impl FnOnce(&wire::Parts<'_>) -> R) -> R {
        match self {
            Item::Plain(e) => e.with_parts(f),
            Item::Raw(e) => e.with_parts(f),
        }
    }

    fn bound(&self) -> usize {
        match self {
            Item::Plain(e) => e.bound(),
            Item::Raw(e) => e.bound(),
        }
    }
}

/// An element of [`add_grouped`]: family, set, key, value, comment.
type ElementRef<'a> = (IpFamily, SetId, Key, Value, &'a str);

/// Groups elements by (family, set) and adds (or deletes) them, one set after the other.
fn add_grouped<'a>(b: &mut Batch, cfg: &NftConfig, elements: impl Iterator<Item = ElementRef<'a>>, delete: bool) {
    let elements: Vec<ElementRef<'a>> = elements.collect();
    // Each chain's name once: a verdict map has 100k+ elements but few chains.
    let mut names: FxMap<ChainRef, String> = FxMap::default();
    for (_, _, _, v, _) in &elements {
        if let Some(c) = verdict_chain(v) {
            names.entry(c).or_insert_with(|| c.name());
        }
    }
    let mut items: Vec<Item<'_>> = Vec::with_capacity(elements.len());
    let mut order: Vec<((IpFamily, SetId), u32)> = Vec::with_capacity(elements.len());
    let mut nets: Vec<((IpFamily, SetId), ipnet::IpNet)> = Vec::new();
    for &(family, set, key, value, comment) in &elements {
        match key {
            Key::Net(n) if encode::is_rbtree(set) => nets.push(((family, set), n)),
            _ => {
                let chain = verdict_chain(&value).map(|c| names[&c].as_str());
                order.push(((family, set), items.len() as u32));
                items.push(Item::Plain(encode::PlanElement { key, value, comment, chain }));
            }
        }
    }
    nets.sort_by_key(|(g, _)| *g);
    for group in nets.chunk_by(|a, b| a.0 == b.0) {
        let n: Vec<ipnet::IpNet> = group.iter().map(|(_, n)| *n).collect();
        for r in encode::intervals(&n) {
            order.push((group[0].0, items.len() as u32));
            items.push(Item::Raw(r));
        }
    }
    // Stable: interval elements keep the order `intervals` gave them.
    order.sort_by_key(|(g, _)| *g);
    let (msg, flags, verb) = if delete { (NFT_MSG_DELSETELEM, 0, "delete") } else { (NFT_MSG_NEWSETELEM, NLM_F_CREATE, "add") };
    for group in order.chunk_by(|a, b| a.0 == b.0) {
        let (fam, set) = group[0].0;
        let els: Vec<&Item<'_>> = group.iter().map(|(_, i)| &items[*i as usize]).collect();
        b.elements(msg, flags, fam.into(), &cfg.table_name, set.name(), &els, cfg.max_message_bytes, verb);
    }
}

fn verdict_chain(v: &Value) -> Option<ChainRef> {
    match v {
        Value::Verdict(v) => v.chain(),
        _ => None,
    }
}

/// Replaces kproxy's tables with `plan` (whose elements are `record`'s): add + delete + add
/// of each table, then sets, chains, rules and elements, all in one transaction.
pub fn full_batch(plan: &Plan, record: &Record, cfg: &NftConfig) -> Batch {
    let mut b = Batch::new();
    let t = cfg.table_name.as_str();
    for fp in &plan.families {
        let fam: TableFamily = fp.family.into();
        b.add_table(fam, t);
        b.delete_table(fam, t);
        b.add_table(fam, t);
        for set in SetId::ALL.iter().filter(|s| s.exists_in(fp.family)) {
            b.add_set_raw(fam, t, set.name(), template(fp.family, *set));
        }
        for c in &fp.skeleton.chains {
            add_chain(&mut b, fp.family, t, c);
        }
        for chain in fp.dynamic.keys() {
            b.add_chain(fam, t, &chain.name(), None);
        }
        for rule in fp.skeleton.rules.iter().chain(fp.dynamic.values().flatten()) {
            b.add_rule(fam, t, rule);
        }
    }
    let elements = record.elements.iter().map(|(id, e)| (id.0, id.1, id.2, e.value, &*e.comment));
    add_grouped(&mut b, cfg, elements, false);
    b
}

/// The batch of a partial sync.
pub fn delta_batch(delta: &Delta, settings: &ProxySettings, cfg: &NftConfig) -> Batch {
    let mut b = Batch::new();
    let t = cfg.table_name.as_str();
    for (fam, chain) in &delta.new_chains {
        b.add_chain((*fam).into(), t, &chain.name(), None);
        for rule in chain_rules(*fam, *chain, settings) {
            b.add_rule((*fam).into(), t, &rule);
        }
    }
    for ((fam, set), els) in &delta.refills {
        b.flush_set((*fam).into(), t, set.name());
        add_grouped(&mut b, cfg, els.iter().map(as_ref), false);
    }
    add_grouped(&mut b, cfg, delta.deletes.iter().map(as_ref), true);
    add_grouped(&mut b, cfg, delta.adds.iter().map(as_ref), false);
    for fam in &delta.flush_affinity {
        b.flush_set((*fam).into(), t, SetId::Affinity.name());
        b.flush_set((*fam).into(), t, SetId::NodeportAffinity.name());
    }
    for (fam, chain) in &delta.dead_chains {
        delete_dynamic(&mut b, *fam, t, *chain);
    }
    b
}

fn as_ref(e: &Element) -> ElementRef<'_> {
    (e.family, e.set, e.key, e.value, &e.comment)
}

fn delete_dynamic(b: &mut Batch, fam: IpFamily, table: &str, chain: ChainRef) {
    if chain.is_dynamic() {
        b.delete_chain(fam.into(), table, &chain.name());
    }
}

/// Removes kproxy's tables (add first so that a missing table is not an error).
pub fn cleanup_batch(cfg: &NftConfig) -> Batch {
    let mut b = Batch::new();
    for fam in FAMILIES {
        b.add_table(fam.into(), &cfg.table_name);
        b.delete_table(fam.into(), &cfg.table_name);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_set_has_a_template() {
        for fam in FAMILIES {
            for set in SetId::ALL.iter().filter(|s| s.exists_in(fam)) {
                assert!(!template(fam, *set).is_empty(), "no template for {fam:?} {}", set.name());
            }
        }
    }
}
