//! Pure reconciliation: the operations that turn the current IPVS table into the desired one.
//!
//! Rules:
//! - virtual servers missing are added (with their real servers), changed ones updated;
//! - virtual servers not desired are deleted, except inside `excludeCIDRs`;
//! - a real server that is no longer desired is not deleted but set to weight 0 (graceful
//!   termination: existing connections finish, no new ones arrive); it is deleted later by
//!   [`reap`] once it has no connections or its bound passed;
//! - a draining real server that is desired again is set back to its weight.
//!
//! Operations come out in an order the kernel accepts in one pipelined batch: deletions of
//! virtual servers, then additions/updates of virtual servers each followed by its real
//! servers.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::ipvs::Op;
use crate::ipvs_msg::{RealCounters, RealKey, ServiceKey};
use crate::operation::Operation;
use crate::plan::{Entry, Table};

/// Operations of a sync and the real servers that started draining.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reconcile {
    /// Operations, in order.
    pub ops: Vec<Op>,
    /// Real servers set to weight 0 by these operations (or found at 0 and undesired).
    pub draining: Vec<(ServiceKey, RealKey)>,
}

/// Compute the operations from `current` to `desired`. `excluded` says which virtual
/// server addresses must never be deleted.
pub fn reconcile(
    current: &Table,
    desired: &Table,
    excluded: &dyn Fn(&IpAddr) -> bool,
) -> Reconcile {
    let mut out = Reconcile::default();
    for (key, _) in current.iter().filter(|(k, _)| !desired.contains_key(k)) {
        if !excluded(&key.addr) {
            out.ops.push(Op::DelService(*key));
        }
    }
    for (key, want) in desired {
        match current.get(key) {
            None => {
                out.ops.push(Op::AddService(want.service.clone()));
                out.ops
                    .extend(want.reals.values().map(|rs| Op::AddReal(*key, rs.clone())));
            }
            Some(have) => reconcile_entry(key, have, want, &mut out),
        }
    }
    out
}

fn reconcile_entry(key: &ServiceKey, have: &Entry, want: &Entry, out: &mut Reconcile) {
    if have.service != want.service {
        out.ops.push(Op::UpdateService(want.service.clone()));
    }
    for (rk, rs) in &want.reals {
        match have.reals.get(rk) {
            None => out.ops.push(Op::AddReal(*key, rs.clone())),
            Some(h) if h != rs => out.ops.push(Op::UpdateReal(*key, rs.clone())),
            Some(_) => {}
        }
    }
    for (rk, h) in have
        .reals
        .iter()
        .filter(|(rk, _)| !want.reals.contains_key(rk))
    {
        if h.weight != 0 {
            let mut quiet = h.clone();
            quiet.weight = 0;
            out.ops.push(Op::UpdateReal(*key, quiet));
        }
        out.draining.push((*key, *rk));
    }
}

/// Whether a draining real server can go: no connections left, or its bound passed.
pub fn reap(counters: Option<&RealCounters>, bound_passed: bool) -> bool {
    match counters {
        None => true, // already gone from the kernel
        Some(c) => bound_passed || (c.active == 0 && c.inactive == 0),
    }
}

/// Apply operations that succeeded to an in-memory table (the backend's view of the kernel).
pub fn apply(table: &mut Table, op: &Op) {
    match op {
        Op::AddService(vs) | Op::UpdateService(vs) => {
            let entry = table.entry(vs.key).or_insert_with(|| Entry {
                service: vs.clone(),
                reals: Default::default(),
            });
            entry.service = vs.clone();
        }
        Op::DelService(k) => {
            table.remove(k);
        }
        Op::AddReal(k, rs) | Op::UpdateReal(k, rs) => {
            if let Some(e) = table.get_mut(k) {
                e.reals.insert(rs.key, rs.clone());
            }
        }
        Op::DelReal(k, rs) => {
            if let Some(e) = table.get_mut(k) {
                e.reals.remove(&rs.key);
            }
        }
    }
}

/// VIP changes: (to add, to delete); addresses inside excluded ranges are never deleted.
pub fn vips(
    current: &BTreeSet<IpAddr>,
    desired: &BTreeSet<IpAddr>,
    excluded: &dyn Fn(&IpAddr) -> bool,
) -> (Vec<IpAddr>, Vec<IpAddr>) {
    let add = desired.difference(current).copied().collect();
    let del = current
        .difference(desired)
        .filter(|a| !excluded(a))
        .copied()
        .collect();
    (add, del)
}

/// The operations of a sync in the order the kernel needs them: VIPs added to `link` first
/// (a new virtual server is reachable as soon as it exists), then the IPVS operations, then
/// VIPs deleted.
pub fn sequence(
    link: u32,
    ipvs: Vec<Op>,
    (add, del): (Vec<IpAddr>, Vec<IpAddr>),
) -> Vec<Operation> {
    let mut out = Vec::with_capacity(add.len() + ipvs.len() + del.len());
    out.extend(
        add.into_iter()
            .map(|addr| Operation::AddAddress { link, addr }),
    );
    out.extend(ipvs.into_iter().map(Operation::Ipvs));
    out.extend(
        del.into_iter()
            .map(|addr| Operation::DeleteAddress { link, addr }),
    );
    out
}
