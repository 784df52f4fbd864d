//! Plan and delta -> [`Transaction`]: the one place kproxy's tables become operations.
//!
//! Pure (no socket, no libnftnl): the netlink layer only encodes what this returns, and the
//! fake kernel runs it in tests. Elements are grouped per (family, set) in set order, and the
//! networks of single-field interval sets become nft's interval elements here.

use std::collections::BTreeMap;

use kproxy_core::model::{IpFamily, ProxySettings};

use crate::bytes::{intervals, is_rbtree};
use crate::tx::{ChainHook, RawElement, SetElement, TableFamily, Transaction};
use crate::plan::{Element, Key, SetId, Value};
use crate::record::{Delta, Record};
use crate::render::{chain_rules, Plan, FAMILIES};
use crate::skeleton::ChainDecl;

/// The raw NEWSET attributes of a set (captured from nft 1.0.6, see `tools/capture_sets.py`).
fn template(family: IpFamily, set: SetId) -> &'static [u8] {
    crate::set_templates::SET_TEMPLATES
        .iter()
        .find(|(f, n, _)| *f == family && *n == set.name())
        .map(|(_, _, raw)| *raw)
        // Every (family, set) with `exists_in` has a template: checked by a unit test.
        .unwrap_or(&[])
}

fn add_chain(tx: &mut Transaction, family: IpFamily, table: &str, c: &ChainDecl) {
    let hook = c.hook.map(|h| ChainHook { kind: h.kind, hooknum: h.number(), priority: h.priority });
    tx.add_chain(family.into(), table, &c.name, hook);
}

/// An element to group: family, set, key, value, comment.
type ElementRef<'a> = (IpFamily, SetId, Key, &'a Value, &'a std::sync::Arc<str>);

/// Groups elements by (family, set), in set order, and adds (or deletes) each group with one
/// operation. Within a group elements keep their order, interval elements last.
fn add_grouped<'a>(tx: &mut Transaction, table: &str, elements: impl Iterator<Item = ElementRef<'a>>, delete: bool) {
    let mut groups: BTreeMap<(IpFamily, SetId), Vec<SetElement>> = BTreeMap::new();
    let mut nets: BTreeMap<(IpFamily, SetId), Vec<ipnet::IpNet>> = BTreeMap::new();
    for (family, set, key, value, comment) in elements {
        match key {
            Key::Net(n) if is_rbtree(set) => nets.entry((family, set)).or_default().push(n),
            _ => groups.entry((family, set)).or_default().push(SetElement::Typed {
                key,
                value: *value,
                comment: comment.clone(),
            }),
        }
    }
    for (group, n) in nets {
        groups.entry(group).or_default().extend(intervals(&n).into_iter().map(SetElement::from));
    }
    for ((family, set), els) in groups {
        if delete {
            tx.delete_elements(family.into(), table, set.name(), els);
        } else {
            tx.add_elements(family.into(), table, set.name(), els);
        }
    }
}

/// Replaces kproxy's tables with `plan` (whose elements are `record`'s): add + delete + add
/// of each table, then sets, chains, rules and elements, all in one transaction.
pub fn full(plan: &Plan, record: &Record, table: &str) -> Transaction {
    let mut tx = Transaction::new();
    for fp in &plan.families {
        let fam: TableFamily = fp.family.into();
        tx.add_table(fam, table);
        tx.delete_table(fam, table);
        tx.add_table(fam, table);
        for set in SetId::ALL.iter().filter(|s| s.exists_in(fp.family)) {
            tx.add_set_raw(fam, table, set.name(), template(fp.family, *set));
        }
        for c in &fp.skeleton.chains {
            add_chain(&mut tx, fp.family, table, c);
        }
        for chain in fp.dynamic.keys() {
            tx.add_chain(fam, table, &chain.name(), None);
        }
        for rule in fp.skeleton.rules.iter().chain(fp.dynamic.values().flatten()) {
            tx.add_rule(fam, table, rule.clone());
        }
    }
    let elements = record.elements.iter().map(|(id, e)| (id.0, id.1, id.2, &e.value, &e.comment));
    add_grouped(&mut tx, table, elements, false);
    tx
}

/// The transaction of a partial sync: new chains with their rules first (elements point to
/// them), then refills, deletes and adds of elements, and the chains nothing points to any
/// more last. The backend appends the stale affinity entries ([`dynamic_entries`]).
pub fn delta(delta: &Delta, settings: &ProxySettings, table: &str) -> Transaction {
    let mut tx = Transaction::new();
    for (fam, chain) in &delta.new_chains {
        tx.add_chain((*fam).into(), table, &chain.name(), None);
        for rule in chain_rules(*fam, *chain, settings) {
            tx.add_rule((*fam).into(), table, rule);
        }
    }
    for ((fam, set), els) in &delta.refills {
        tx.flush_set((*fam).into(), table, set.name());
        add_grouped(&mut tx, table, els.iter().map(as_ref), false);
    }
    add_grouped(&mut tx, table, delta.deletes.iter().map(as_ref), true);
    add_grouped(&mut tx, table, delta.adds.iter().map(as_ref), false);
    for (fam, chain) in &delta.dead_chains {
        if chain.is_dynamic() {
            tx.delete_chain((*fam).into(), table, &chain.name());
        }
    }
    tx
}

/// Entries of kproxy's dynamic maps, per family and map.
pub type DynamicEntries = Vec<(IpFamily, SetId, Vec<RawElement>)>;

/// Appends `entries` of the dynamic maps to `tx`: destroyed (stale entries of a partial
/// sync, which may time out meanwhile) or added (entries carried over a full sync, after
/// the maps were declared).
pub fn dynamic_entries(tx: &mut Transaction, table: &str, entries: &DynamicEntries, destroy: bool) {
    for (fam, set, els) in entries {
        let els: Vec<SetElement> = els.iter().cloned().map(SetElement::from).collect();
        if destroy {
            tx.destroy_elements((*fam).into(), table, set.name(), els);
        } else {
            tx.add_elements((*fam).into(), table, set.name(), els);
        }
    }
}

fn as_ref(e: &Element) -> ElementRef<'_> {
    (e.family, e.set, e.key, &e.value, &e.comment)
}

/// Removes kproxy's tables (add first so that a missing table is not an error).
pub fn cleanup(table: &str) -> Transaction {
    let mut tx = Transaction::new();
    for fam in FAMILIES {
        tx.add_table(fam.into(), table);
        tx.delete_table(fam.into(), table);
    }
    tx
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
