//! The periodic check of IPVS mode: the kernel gives no notifications of IPVS changes, so
//! what it holds is compared, cheaply, with what the backend programmed. Pure: the kernel's
//! answers go in, a description of the first differences comes out.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::ipvs::DumpedService;
use crate::ipvs_msg::{RealKey, ServiceKey, VirtualServer};
use crate::plan::Table;

/// Real servers of at most this many virtual servers are read per check (one request each),
/// in turns, so that a check costs a few requests however many services there are.
pub const REALS_PER_CHECK: usize = 64;
/// How many differences a report names before "and N more".
const SHOWN: usize = 4;

/// Differences between the kernel's virtual servers (`kernel`, without real servers) and the
/// programmed `table`, ignoring addresses `excluded` (not kproxy's). `None`: they agree.
pub fn virtual_servers(table: &Table, kernel: &[VirtualServer], excluded: &dyn Fn(&IpAddr) -> bool) -> Option<String> {
    let in_kernel: BTreeSet<ServiceKey> = kernel.iter().map(|s| s.key).filter(|k| !excluded(&k.addr)).collect();
    let mut diffs: Vec<String> = table.keys().filter(|k| !in_kernel.contains(k)).map(|k| format!("virtual server {k} is missing")).collect();
    diffs.extend(in_kernel.iter().filter(|k| !table.contains_key(k)).map(|k| format!("virtual server {k} was added")));
    report(&format!("{} virtual servers in the kernel, {} programmed", in_kernel.len(), table.len()), diffs)
}

/// Differences between the real servers of one virtual server in the kernel and the table.
pub fn real_servers(table: &Table, dumped: &DumpedService) -> Option<String> {
    let key = dumped.service.key;
    let programmed: BTreeSet<RealKey> = table.get(&key).map(|e| e.reals.keys().copied().collect()).unwrap_or_default();
    let in_kernel: BTreeSet<RealKey> = dumped.reals.iter().map(|(r, _)| r.key).collect();
    let mut diffs: Vec<String> =
        programmed.difference(&in_kernel).map(|r| format!("real server {} of {key} is missing", addr(r))).collect();
    diffs.extend(in_kernel.difference(&programmed).map(|r| format!("real server {} of {key} was added", addr(r))));
    report(&format!("{} real servers of {key} in the kernel, {} programmed", in_kernel.len(), programmed.len()), diffs)
}

fn addr(r: &RealKey) -> std::net::SocketAddr {
    std::net::SocketAddr::new(r.addr, r.port)
}

fn report(counts: &str, diffs: Vec<String>) -> Option<String> {
    if diffs.is_empty() {
        return None;
    }
    let mut out = format!("{counts}: {}", diffs.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", "));
    if diffs.len() > SHOWN {
        out.push_str(&format!(", and {} more", diffs.len() - SHOWN));
    }
    Some(out)
}
