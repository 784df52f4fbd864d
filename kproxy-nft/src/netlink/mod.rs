//! The thin kernel step: plans and deltas as one nf_tables batch each.
//!
//! [`Batch`] and [`Socket`] are a small reusable API over libnftnl + libmnl (other backends
//! build their own tables with them); [`full_batch`], [`delta_batch`] and [`cleanup_batch`]
//! turn kproxy's plan into batches.

mod batch;
pub mod encode;
mod set_templates;
mod socket;


use kproxy_core::model::{IpFamily, ProxySettings};

pub use batch::{Batch, ChainHook, RawData, RawElement, TableFamily};
pub use socket::{NetlinkError, Socket};

use crate::plan::{ChainRef, Element, Key, SetId};
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

/// Groups elements by (family, set) and adds (or deletes) them, one set after the other.
fn add_grouped<E: std::borrow::Borrow<Element>>(b: &mut Batch, cfg: &NftConfig, elements: impl Iterator<Item = E>, delete: bool) {
    let mut raw: Vec<((IpFamily, SetId), RawElement)> = Vec::new();
    let mut nets: Vec<((IpFamily, SetId), ipnet::IpNet)> = Vec::new();
    for e in elements {
        let e = e.borrow();
        match e.key {
            Key::Net(n) if encode::is_rbtree(e.set) => nets.push(((e.family, e.set), n)),
            _ => raw.push(((e.family, e.set), encode::raw_element(e))),
        }
    }
    nets.sort_by_key(|(g, _)| *g);
    for group in nets.chunk_by(|a, b| a.0 == b.0) {
        let n: Vec<ipnet::IpNet> = group.iter().map(|(_, n)| *n).collect();
        raw.extend(encode::intervals(&n).into_iter().map(|r| (group[0].0, r)));
    }
    // Stable: interval elements keep the order `intervals` gave them.
    raw.sort_by_key(|(g, _)| *g);
    let mut groups: Vec<((IpFamily, SetId), Vec<RawElement>)> = Vec::new();
    for (g, r) in raw {
        match groups.last_mut() {
            Some((last, v)) if *last == g => v.push(r),
            _ => groups.push((g, vec![r])),
        }
    }
    for ((fam, set), els) in groups {
        if delete {
            b.delete_elements(fam.into(), &cfg.table_name, set.name(), &els, cfg.max_message_bytes);
        } else {
            b.add_elements(fam.into(), &cfg.table_name, set.name(), &els, cfg.max_message_bytes);
        }
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
    let elements = record
        .elements
        .iter()
        .map(|(id, e)| Element { family: id.0, set: id.1, key: id.2, value: e.value, comment: e.comment.clone() });
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
        add_grouped(&mut b, cfg, els.iter(), false);
    }
    add_grouped(&mut b, cfg, delta.deletes.iter(), true);
    add_grouped(&mut b, cfg, delta.adds.iter(), false);
    for fam in &delta.flush_affinity {
        b.flush_set((*fam).into(), t, SetId::Affinity.name());
        b.flush_set((*fam).into(), t, SetId::NodeportAffinity.name());
    }
    for (fam, chain) in &delta.dead_chains {
        delete_dynamic(&mut b, *fam, t, *chain);
    }
    b
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
