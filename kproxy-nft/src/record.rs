//! What was committed, and the delta a change set needs (the diff step).
//!
//! The record counts references: several service ports may need the same element (a
//! ClusterIP with many ports, an endpoint of several services) and many elements point to the
//! same `KIND-N` chain. An element is deleted when its last user goes, a chain when nothing
//! points to it any more. Computing a delta never mutates the record: [`Record::apply`] does,
//! after the kernel acknowledged the batch, so a failed batch leaves record and kernel alike.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use kproxy_core::model::{Change, ChangeSet, IpFamily, ProxyState};

use crate::elements::{node_elements, service_elements};
use crate::plan::{ChainRef, Element, ElementId, SetId, Value};

/// A fast non-cryptographic hasher (FxHash's multiply-rotate): keys are kproxy's own
/// addresses and ports, not attacker-chosen in a way that matters for a local table, and
/// SipHash dominated the cost of recording 100k+ elements.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// `HashMap` with [`FxHasher`].
pub type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// One committed element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its data.
    pub value: Value,
    /// Its comment.
    pub comment: Arc<str>,
    /// How many service ports need it.
    pub refs: u32,
}

/// The committed elements and dynamic chains.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// Elements by identity.
    pub elements: FxMap<ElementId, Entry>,
    /// Dynamic chains and how many elements point to each.
    pub chains: FxMap<(IpFamily, ChainRef), u32>,
}

/// What one batch must change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    /// Chains to create (before any element points to them).
    pub new_chains: Vec<(IpFamily, ChainRef)>,
    /// Elements to delete (including the old version of replaced ones).
    pub deletes: Vec<Element>,
    /// Elements to add (including the new version of replaced ones).
    pub adds: Vec<Element>,
    /// Interval sets to flush and refill with these elements (intervals are not diffed).
    pub refills: Vec<((IpFamily, SetId), Vec<Element>)>,
    /// Chains nothing points to any more (deleted last).
    pub dead_chains: Vec<(IpFamily, ChainRef)>,
    /// New reference counts of kept elements (applied with the delta).
    ref_changes: Vec<(ElementId, u32)>,
}

impl Delta {
    /// Whether the batch would be empty.
    pub fn is_empty(&self) -> bool {
        self.new_chains.is_empty()
            && self.deletes.is_empty()
            && self.adds.is_empty()
            && self.refills.is_empty()
            && self.dead_chains.is_empty()
    }
}

fn chain_of(v: &Value) -> Option<ChainRef> {
    match v {
        Value::Verdict(v) => v.chain().filter(|c| c.is_dynamic()),
        _ => None,
    }
}

impl Record {
    /// The record of a full sync of these elements.
    pub fn from_elements(elements: &[Element]) -> Record {
        let mut rec = Record::default();
        rec.elements.reserve(elements.len());
        for e in elements {
            // One lookup per element (a cold sync records 100k+).
            match rec.elements.entry(e.id()) {
                std::collections::hash_map::Entry::Occupied(mut o) => o.get_mut().refs += 1,
                std::collections::hash_map::Entry::Vacant(v) => {
                    if let Some(c) = chain_of(&e.value) {
                        *rec.chains.entry((e.family, c)).or_default() += 1;
                    }
                    v.insert(Entry { value: e.value, comment: e.comment.clone(), refs: 1 });
                }
            }
        }
        rec
    }

    /// The delta that takes the kernel from this record to `state`, given the `changes` that
    /// lead to it. Settings changes need a full sync and are not handled here.
    pub fn delta(&self, state: &ProxyState, changes: &ChangeSet) -> Delta {
        let mut old = Vec::new();
        let mut new = Vec::new();
        for change in changes.services.values() {
            match change {
                Change::Added(sp) => service_elements(sp, &state.settings, &mut new),
                Change::Removed(sp) => service_elements(sp, &state.settings, &mut old),
                Change::Modified { old: o, new: n } => {
                    service_elements(o, &state.settings, &mut old);
                    service_elements(n, &state.settings, &mut new);
                }
            }
        }
        let mut delta = Delta::default();
        // Interval sets are refilled as a whole when they change (only ServiceCIDRs can
        // change without a settings change).
        if changes.service_cidrs.is_some() {
            let mut nodewide = Vec::new();
            node_elements(state, &mut nodewide);
            for fam in crate::render::FAMILIES {
                let els: Vec<Element> =
                    nodewide.iter().filter(|e| e.family == fam && e.set == SetId::ServiceCidrs).cloned().collect();
                delta.refills.push(((fam, SetId::ServiceCidrs), els));
            }
        }
        // Net reference change and the newest wanted value per element.
        let mut touched: FxMap<ElementId, (i64, Option<Element>)> = FxMap::default();
        for e in old {
            touched.entry(e.id()).or_insert((0, None)).0 -= 1;
        }
        for e in new {
            let slot = touched.entry(e.id()).or_insert((0, None));
            slot.0 += 1;
            slot.1 = Some(e);
        }
        let mut chain_delta: FxMap<(IpFamily, ChainRef), i64> = FxMap::default();
        for (id, (d, wanted)) in &touched {
            let cur = self.elements.get(id);
            let refs = cur.map_or(0, |c| i64::from(c.refs)) + d;
            match (cur, wanted) {
                (Some(c), _) if refs <= 0 => {
                    delta.deletes.push(Element { family: id.0, set: id.1, key: id.2, value: c.value, comment: c.comment.clone() });
                    if let Some(ch) = chain_of(&c.value) {
                        *chain_delta.entry((id.0, ch)).or_default() -= 1;
                    }
                }
                (None, Some(w)) if refs > 0 => {
                    if let Some(ch) = chain_of(&w.value) {
                        *chain_delta.entry((id.0, ch)).or_default() += 1;
                    }
                    delta.adds.push(w.clone());
                }
                (Some(c), Some(w)) if w.value != c.value || w.comment != c.comment => {
                    delta.deletes.push(Element { family: id.0, set: id.1, key: id.2, value: c.value, comment: c.comment.clone() });
                    delta.adds.push(w.clone());
                    if let Some(ch) = chain_of(&c.value) {
                        *chain_delta.entry((id.0, ch)).or_default() -= 1;
                    }
                    if let Some(ch) = chain_of(&w.value) {
                        *chain_delta.entry((id.0, ch)).or_default() += 1;
                    }
                    delta.ref_changes.push((*id, refs as u32));
                }
                (Some(_), _) => delta.ref_changes.push((*id, refs as u32)),
                (None, _) => {}
            }
        }
        let mut new_chains = BTreeSet::new();
        let mut dead_chains = BTreeSet::new();
        for (chain, d) in chain_delta {
            let cur = i64::from(self.chains.get(&chain).copied().unwrap_or(0));
            if cur == 0 && cur + d > 0 {
                new_chains.insert(chain);
            } else if cur > 0 && cur + d <= 0 {
                dead_chains.insert(chain);
            }
        }
        delta.new_chains = new_chains.into_iter().collect();
        delta.dead_chains = dead_chains.into_iter().collect();
        delta
    }

    /// Records a committed delta.
    pub fn apply(&mut self, delta: &Delta) {
        for e in &delta.deletes {
            if let Some(old) = self.elements.remove(&e.id()) {
                if let Some(ch) = chain_of(&old.value) {
                    let n = self.chains.entry((e.family, ch)).or_default();
                    *n = n.saturating_sub(1);
                }
            }
        }
        for e in &delta.adds {
            if let Some(ch) = chain_of(&e.value) {
                *self.chains.entry((e.family, ch)).or_default() += 1;
            }
            self.elements.insert(e.id(), Entry { value: e.value, comment: e.comment.clone(), refs: 1 });
        }
        for (id, refs) in &delta.ref_changes {
            if let Some(entry) = self.elements.get_mut(id) {
                entry.refs = *refs;
            }
        }
        self.chains.retain(|_, n| *n > 0);
        for ((fam, set), els) in &delta.refills {
            self.elements.retain(|id, _| !(id.0 == *fam && id.1 == *set));
            for e in els {
                self.elements.insert(e.id(), Entry { value: e.value, comment: e.comment.clone(), refs: 1 });
            }
        }
    }
}
