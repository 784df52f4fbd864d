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

use crate::bytes::{endpoint_bytes, key_bytes, Bytes};
use crate::plan::{addr_len, Key, SetId};
use crate::record::{FxHasher, FxMap};
use crate::tx::{RawData, RawElement};

/// The two dynamic maps.
pub const MAPS: [SetId; 2] = [SetId::Affinity, SetId::NodeportAffinity];

/// The longest destination and endpoint bytes: IPv6 `ip . proto . port` and `ip . port`.
const PAIR_MAX: usize = 24 + 20;

/// Sticky (destination, endpoint) pairs per family and map, each as the destination's bytes
/// followed by the endpoint's (so an entry is looked up without an allocation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pairs(FxMap<(IpFamily, SetId), HashSet<Vec<u8>, BuildHasherDefault<FxHasher>>>);

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
        for (map, pairs) in &mut old.0 {
            if let Some(kept) = new.0.get(map) {
                pairs.retain(|p| !kept.contains(p));
            }
        }
        old.0.retain(|_, pairs| !pairs.is_empty());
        old
    }

    /// Whether there is no pair.
    pub fn is_empty(&self) -> bool {
        self.0.values().all(HashSet::is_empty)
    }

    /// Whether some pair is of `family`'s `map`.
    pub fn touches(&self, family: IpFamily, map: SetId) -> bool {
        self.0.get(&(family, map)).is_some_and(|p| !p.is_empty())
    }

    /// Whether the entry `e` of `family`'s `map` is one of these pairs.
    pub fn holds(&self, family: IpFamily, map: SetId, e: &RawElement) -> bool {
        let client = addr_len(family) as usize;
        let (Some(pairs), Some(dest), RawData::Bytes(ep)) = (self.0.get(&(family, map)), e.key.get(client..), &e.data) else {
            return false;
        };
        let n = dest.len() + ep.len();
        if n > PAIR_MAX {
            return false;
        }
        let mut buf = [0u8; PAIR_MAX];
        buf[..dest.len()].copy_from_slice(dest);
        buf[dest.len()..n].copy_from_slice(ep);
        pairs.contains(&buf[..n])
    }

    fn add(&mut self, sp: &ServicePort) {
        if sp.session_affinity.is_none() || !SetId::Affinity.exists_in(sp.family) {
            return;
        }
        let proto = sp.name.protocol;
        let bytes = |eps: &mut dyn Iterator<Item = &std::net::SocketAddr>| -> Vec<Bytes> {
            eps.map(|ep| endpoint_bytes(*ep)).collect()
        };
        // The ClusterIP balances over the internal endpoints; the other destinations over
        // the local ones (eTP=Local) or, for pods and the node short-circuited, the cluster's.
        let internal = bytes(&mut sp.internal_endpoints().iter());
        let external = bytes(&mut sp.cluster_endpoints.iter().chain(sp.local_endpoints.iter()));
        let mut dests = vec![(SetId::Affinity, Key::Dest(sp.cluster_ip, proto, sp.port), &internal)];
        for ip in sp.external_ips.iter().chain(sp.load_balancer_ips.iter()) {
            dests.push((SetId::Affinity, Key::Dest(*ip, proto, sp.port), &external));
        }
        if let Some(np) = sp.node_port {
            dests.push((SetId::NodeportAffinity, Key::Port(proto, np), &external));
        }
        for (map, key, eps) in dests {
            let dest = key_bytes(&key).0;
            let pairs = self.0.entry((sp.family, map)).or_default();
            for ep in eps {
                pairs.insert([dest.as_slice(), ep.as_slice()].concat());
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
