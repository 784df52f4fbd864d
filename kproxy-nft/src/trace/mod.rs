//! `kproxy trace`: one new connection followed through kproxy's table *as the kernel holds
//! it*, read back with [`read_table`] (so drift and foreign rules show), then evaluated by a
//! pure interpreter of the expressions kproxy emits ([`trace`]).
//!
//! The evaluation follows the hooks a new connection's first packet crosses (from outside:
//! prerouting, then input or forward + postrouting; from the node: output, postrouting, and
//! for a local destination prerouting + input without NAT), the base chains of each hook in
//! priority order, jumps, gotos, verdict maps, DNAT maps, marks and masquerading. A random
//! endpoint choice (`numgen`) is evaluated once per value, so the result lists every
//! destination; the entries of dynamic (affinity) maps are not consulted, as for a client
//! without an established affinity.

mod eval;
pub mod table;

use std::net::{IpAddr, SocketAddr};

use kproxy_core::model::{IpFamily, Protocol};

use crate::netlink::{NetlinkError, Socket};
use crate::tx::TableFamily;

pub use table::TableDump;

/// Reads `table` of the family from the kernel, in the network namespace of the calling
/// thread. Read-only.
pub fn read_table(family: IpFamily, table: &str) -> Result<TableDump, NetlinkError> {
    let tf = match family {
        IpFamily::V4 => TableFamily::Ip,
        IpFamily::V6 => TableFamily::Ip6,
    };
    Socket::new()?.read_table(tf, table)
}

/// The connection to trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Source address.
    pub src: IpAddr,
    /// Destination address (same family as `src`).
    pub dst: IpAddr,
    /// Destination port.
    pub dport: u16,
    /// Protocol.
    pub protocol: Protocol,
    /// Input interface of a packet from outside (`meta iifname`); `None` if unknown.
    pub iif: Option<String>,
    /// Whether the node itself sends it (the output path).
    pub local_origin: bool,
}

/// What kproxy's rules do to the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Destination rewritten to an endpoint.
    Dnat,
    /// Rejected (ICMP unreachable / TCP reset).
    Reject,
    /// Dropped.
    Drop,
    /// Left alone: it reaches the node or is routed on.
    None,
}

impl Verdict {
    /// `dnat`, `reject`, `drop`, `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Dnat => "dnat",
            Verdict::Reject => "reject",
            Verdict::Drop => "drop",
            Verdict::None => "none",
        }
    }
}

/// The outcome of a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// The verdict (of the first endpoint choice; every choice is evaluated for `endpoints`).
    pub verdict: Verdict,
    /// Every destination the connection can be DNATed to, sorted.
    pub endpoints: Vec<SocketAddr>,
    /// Whether the source is rewritten on the way out (for any of the choices).
    pub masquerade: bool,
    /// `ns/name:port` from the comment of the service's map element, if one matched.
    pub service: Option<String>,
    /// The steps, in order, of the first endpoint choice.
    pub path: Vec<String>,
}

/// How many endpoint choices are evaluated at most (kproxy's chains exist per endpoint
/// count; more than this many endpoints are listed only up to it).
const MAX_CHOICES: u32 = 4096;

/// Follows `packet` through `table`. `node_addrs` are the node's own addresses (local
/// destinations, `fib ... type local`).
pub fn trace(table: &TableDump, packet: &Packet, node_addrs: &[IpAddr]) -> Trace {
    let first = eval::run(table, packet, node_addrs, 0);
    let mut endpoints: Vec<SocketAddr> = first.dnat.into_iter().collect();
    let mut masquerade = first.masquerade;
    let choices = first.choices.clamp(1, MAX_CHOICES);
    for choice in 1..choices {
        let r = eval::run(table, packet, node_addrs, choice);
        endpoints.extend(r.dnat);
        masquerade |= r.masquerade;
    }
    endpoints.sort();
    endpoints.dedup();
    let mut path = first.path;
    if choices > 1 {
        path.push(format!("random endpoint choice: {choices} values evaluated, {} distinct destinations", endpoints.len()));
    }
    let verdict = first.verdict;
    if verdict != Verdict::Dnat {
        endpoints.clear();
    }
    Trace { verdict, endpoints, masquerade, service: first.service, path }
}

/// `IP:PORT` / `[IP]:PORT`.
pub fn endpoint_text(e: &SocketAddr) -> String {
    e.to_string()
}

#[cfg(test)]
mod tests;
