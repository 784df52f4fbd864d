//! Session affinity entries the packet path records in the dynamic `affinity` and
//! `nodeport-affinity` maps: which of them a change makes stale, and which of them a full
//! sync carries over into the recreated table. Pure: entries in, entries out.
//!
//! An entry is `client . destination : endpoint`, where the destination is `ip . proto .
//! port` (`affinity`) or `proto . nodePort` (`nodeport-affinity`). It is valid while the
//! service port behind that destination is sticky and still has that endpoint, which is
//! what upstream keeps too (its per-endpoint affinity sets go with their endpoint). The
//! client part is never compared, so the destination and endpoint are matched as kernel
//! bytes: the key minus its leading client address, and the data.

use std::collections::HashSet;
use std::hash::BuildHasherDefault;

use kproxy_core::model::{Change, ChangeSet, IpFamily, ProxyState, ServicePort};

use crate::bytes::{endpoint_bytes, key_bytes};
use crate::plan::{addr_len, Key, SetId};
use crate::record::FxHasher;
use crate::tx::{RawData, RawElement};

/// The two dynamic maps.
pub const MAPS: [SetId; 2] = [SetId::Affinity, SetId::NodeportAffinity];

/// A sticky (destination, endpoint) pair: family, map, destination bytes, endpoint bytes.
type Pair = (IpFamily, SetId, Vec<u8>, Vec<u8>);

/// Sticky pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pairs(HashSet<Pair, BuildHasherDefault<FxHasher>>);

impl Pairs {
    /// The pairs every sticky service port of `state` offers: what a full sync keeps.
    pub fn of_state(state: &ProxyState) -> Pairs {
        let mut p = Pairs::default();
        for sp in state.services.values() {
            p.add(sp);
        }
        p
    }

    /// The pairs the service ports before `changes` offered and those after do not: what
    /// a partial sync must delete entries of.
    pub fn lost(changes: &ChangeSet) -> Pairs {
        let (mut old, mut new) = (Pairs::default(), Pairs::default());
        for change in changes.services.values() {
            match change {
                Change::Added(n) => new.add(n),
                Change::Removed(o) => old.add(o),
                Change::Modified { old: o, new: n } => {
                    old.add(o);
                    new.add(n);
                }
            }
        }
        old.0.retain(|p| !new.0.contains(p));
        old
    }

    /// Whether there is no pair.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether some pair is of `family`'s `map`.
    pub fn touches(&self, family: IpFamily, map: SetId) -> bool {
        self.0.iter().any(|p| p.0 == family && p.1 == map)
    }

    /// Whether the entry `e` of `family`'s `map` is one of these pairs.
    pub fn holds(&self, family: IpFamily, map: SetId, e: &RawElement) -> bool {
        let client = addr_len(family) as usize;
        let (Some(dest), RawData::Bytes(ep)) = (e.key.get(client..), &e.data) else { return false };
        // One lookup needs owned bytes; entries are few next to the sync they ride on.
        self.0.contains(&(family, map, dest.to_vec(), ep.clone()))
    }

    fn add(&mut self, sp: &ServicePort) {
        if sp.session_affinity.is_none() || !SetId::Affinity.exists_in(sp.family) {
            return;
        }
        let proto = sp.name.protocol;
        let eps: Vec<Vec<u8>> = sp
            .cluster_endpoints
            .iter()
            .chain(sp.local_endpoints.iter())
            .map(|ep| endpoint_bytes(*ep).as_slice().to_vec())
            .collect();
        let mut dests = Vec::new();
        for ip in std::iter::once(&sp.cluster_ip).chain(sp.external_ips.iter()).chain(sp.load_balancer_ips.iter()) {
            dests.push((SetId::Affinity, Key::Dest(*ip, proto, sp.port)));
        }
        if let Some(np) = sp.node_port {
            dests.push((SetId::NodeportAffinity, Key::Port(proto, np)));
        }
        for (map, key) in dests {
            let dest = key_bytes(&key).0.as_slice().to_vec();
            for ep in &eps {
                self.0.insert((sp.family, map, dest.clone(), ep.clone()));
            }
        }
    }
}

/// The entries of `family`'s `map` that point at a lost pair: to destroy.
pub fn stale(family: IpFamily, map: SetId, entries: Vec<RawElement>, lost: &Pairs) -> Vec<RawElement> {
    entries.into_iter().filter(|e| lost.holds(family, map, e)).map(key_and_data).collect()
}

/// The entries of `family`'s `map` to add back after the table is recreated: those of a
/// pair the new state still offers, with the timeout they had and the time they had left
/// (so a full sync neither drops nor prolongs stickiness). Entries without a timeout are
/// not the packet path's and are left out.
pub fn carried(family: IpFamily, map: SetId, entries: Vec<RawElement>, valid: &Pairs) -> Vec<RawElement> {
    entries
        .into_iter()
        .filter(|e| e.timeout_ms.is_some() && e.expiration_ms.is_some_and(|x| x > 0) && valid.holds(family, map, e))
        .map(|e| RawElement { timeout_ms: e.timeout_ms, expiration_ms: e.expiration_ms, ..key_and_data(e) })
        .collect()
}

/// Only the key and the data: what identifies an entry to delete.
fn key_and_data(e: RawElement) -> RawElement {
    RawElement { key: e.key, data: e.data, ..RawElement::default() }
}
