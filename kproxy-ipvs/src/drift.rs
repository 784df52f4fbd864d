//! Drift in IPVS mode: the virtual and real servers the kernel holds against the ones the
//! plan wants ([`crate::plan`]), every difference named. Pure: a full dump
//! ([`crate::IpvsKernel::dump`], read-only) goes in. Unlike [`crate::check`] (a cheap
//! periodic comparison with what the backend programmed), this compares with what it
//! should program, field by field, for `kproxy explain` and `kproxy doctor`.
//!
//! A real server that is not wanted but has weight 0 is draining (graceful termination
//! keeps it until its connections end): reported, not drift.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::ipvs::DumpedService;
use crate::ipvs_msg::{RealKey, ServiceKey, VirtualServer};
use crate::plan::Table;

/// One difference between the wanted and the kernel's IPVS table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// A wanted virtual server is not in the kernel.
    MissingVirtualServer(ServiceKey),
    /// The kernel holds a virtual server that is not wanted (outside `excludeCIDRs`).
    ExtraVirtualServer(ServiceKey),
    /// Scheduler, flags, persistence timeout or netmask differ.
    VirtualServerSettings {
        /// Which.
        key: ServiceKey,
        /// Wanted.
        want: VirtualServer,
        /// In the kernel.
        have: VirtualServer,
    },
    /// A wanted real server is not in the kernel.
    MissingRealServer {
        /// Its virtual server.
        service: ServiceKey,
        /// The real server.
        real: RealKey,
        /// Its wanted weight.
        weight: u32,
    },
    /// The kernel holds a real server with a weight that is not wanted.
    ExtraRealServer {
        /// Its virtual server.
        service: ServiceKey,
        /// The real server.
        real: RealKey,
        /// Its weight.
        weight: u32,
    },
    /// A wanted real server has another weight in the kernel.
    RealServerSettings {
        /// Its virtual server.
        service: ServiceKey,
        /// The real server.
        real: RealKey,
        /// Wanted weight.
        want: u32,
        /// The kernel's weight.
        have: u32,
    },
}

impl Difference {
    /// The virtual server it concerns.
    pub fn service(&self) -> ServiceKey {
        match self {
            Difference::MissingVirtualServer(k) | Difference::ExtraVirtualServer(k) => *k,
            Difference::VirtualServerSettings { key, .. } => *key,
            Difference::MissingRealServer { service, .. }
            | Difference::ExtraRealServer { service, .. }
            | Difference::RealServerSettings { service, .. } => *service,
        }
    }
}

fn real(r: &RealKey) -> SocketAddr {
    SocketAddr::new(r.addr, r.port)
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::MissingVirtualServer(k) => write!(f, "missing: virtual server {k}"),
            Difference::ExtraVirtualServer(k) => write!(f, "extra: virtual server {k}"),
            Difference::VirtualServerSettings { key, want, have } => write!(
                f,
                "changed: virtual server {key}: scheduler {} flags {:#x} timeout {} in the kernel, want scheduler {} flags {:#x} timeout {}",
                have.scheduler, have.flags, have.timeout, want.scheduler, want.flags, want.timeout
            ),
            Difference::MissingRealServer { service, real: r, weight } => {
                write!(f, "missing: real server {} (weight {weight}) of virtual server {service}", real(r))
            }
            Difference::ExtraRealServer { service, real: r, weight } => {
                write!(f, "extra: real server {} (weight {weight}) of virtual server {service}", real(r))
            }
            Difference::RealServerSettings { service, real: r, want, have } => {
                write!(f, "changed: real server {} of virtual server {service}: weight {have} in the kernel, want {want}", real(r))
            }
        }
    }
}

/// The result of [`compare`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Drift, in virtual-server order.
    pub differences: Vec<Difference>,
    /// Real servers at weight 0 that are not wanted: draining, not drift.
    pub draining: Vec<(ServiceKey, RealKey)>,
}

/// Compares the kernel's table (`kernel`, a full dump) with `want`. Virtual servers whose
/// address is `excluded` (`excludeCIDRs`: not kproxy's) are never extra.
pub fn compare(want: &Table, kernel: &BTreeMap<ServiceKey, DumpedService>, excluded: &dyn Fn(&IpAddr) -> bool) -> Comparison {
    let mut out = Comparison::default();
    for (key, entry) in want {
        let Some(have) = kernel.get(key) else {
            out.differences.push(Difference::MissingVirtualServer(*key));
            continue;
        };
        if have.service != entry.service {
            out.differences.push(Difference::VirtualServerSettings { key: *key, want: entry.service.clone(), have: have.service.clone() });
        }
        let reals: BTreeMap<RealKey, u32> = have.reals.iter().map(|(r, _)| (r.key, r.weight)).collect();
        for (rk, rs) in &entry.reals {
            match reals.get(rk) {
                None => out.differences.push(Difference::MissingRealServer { service: *key, real: *rk, weight: rs.weight }),
                Some(w) if *w != rs.weight => {
                    out.differences.push(Difference::RealServerSettings { service: *key, real: *rk, want: rs.weight, have: *w })
                }
                Some(_) => {}
            }
        }
        for (rk, w) in reals.iter().filter(|(rk, _)| !entry.reals.contains_key(rk)) {
            if *w == 0 {
                out.draining.push((*key, *rk));
            } else {
                out.differences.push(Difference::ExtraRealServer { service: *key, real: *rk, weight: *w });
            }
        }
    }
    for key in kernel.keys().filter(|k| !want.contains_key(k) && !excluded(&k.addr)) {
        out.differences.push(Difference::ExtraVirtualServer(*key));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs_msg::{Forward, RealCounters, RealServer};
    use crate::plan::Entry;
    use kproxy_core::model::Protocol;

    fn key(addr: &str, port: u16) -> ServiceKey {
        ServiceKey { protocol: Protocol::Tcp, addr: addr.parse().unwrap(), port }
    }

    fn vs(k: ServiceKey) -> VirtualServer {
        VirtualServer { key: k, scheduler: "rr".into(), flags: 0, timeout: 0, netmask: 0xffff_ffff }
    }

    fn rs(addr: &str, weight: u32) -> RealServer {
        RealServer { key: RealKey { addr: addr.parse().unwrap(), port: 8080 }, weight, forward: Forward::Masq }
    }

    fn entry(k: ServiceKey, reals: &[RealServer]) -> Entry {
        Entry { service: vs(k), reals: reals.iter().map(|r| (r.key, r.clone())).collect() }
    }

    fn dumped(k: ServiceKey, reals: &[RealServer]) -> DumpedService {
        DumpedService { service: vs(k), reals: reals.iter().map(|r| (r.clone(), RealCounters::default())).collect() }
    }

    #[test]
    fn every_difference_is_named_and_draining_reals_are_not_drift() {
        let (a, b, c, x) = (key("198.19.0.10", 80), key("198.19.0.11", 80), key("198.19.0.12", 80), key("198.19.250.1", 80));
        let want: Table = [
            (a, entry(a, &[rs("198.18.1.1", 1), rs("198.18.1.2", 1)])),
            (b, entry(b, &[rs("198.18.1.3", 1)])),
        ]
        .into_iter()
        .collect();
        let mut slow = dumped(b, &[rs("198.18.1.3", 1)]);
        slow.service.scheduler = "wrr".into();
        let kernel: BTreeMap<ServiceKey, DumpedService> = [
            (a, dumped(a, &[rs("198.18.1.1", 3), rs("198.18.1.9", 1), rs("198.18.1.8", 0)])),
            (b, slow),
            (c, dumped(c, &[])),
            (x, dumped(x, &[])),
        ]
        .into_iter()
        .collect();
        let excluded = |ip: &IpAddr| *ip == x.addr;
        let got = compare(&want, &kernel, &excluded);
        let texts: Vec<String> = got.differences.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            vec![
                "changed: real server 198.18.1.1:8080 of virtual server tcp 198.19.0.10:80: weight 3 in the kernel, want 1",
                "missing: real server 198.18.1.2:8080 (weight 1) of virtual server tcp 198.19.0.10:80",
                "extra: real server 198.18.1.9:8080 (weight 1) of virtual server tcp 198.19.0.10:80",
                "changed: virtual server tcp 198.19.0.11:80: scheduler wrr flags 0x0 timeout 0 in the kernel, want scheduler rr flags 0x0 timeout 0",
                "extra: virtual server tcp 198.19.0.12:80",
            ]
        );
        assert_eq!(got.draining, vec![(a, RealKey { addr: "198.18.1.8".parse().unwrap(), port: 8080 })]);
        let none = compare(&want, &[(a, dumped(a, &[rs("198.18.1.1", 1), rs("198.18.1.2", 1)])), (b, dumped(b, &[rs("198.18.1.3", 1)]))].into_iter().collect(), &excluded);
        assert_eq!(none, Comparison::default());
        let gone = compare(&want, &BTreeMap::new(), &excluded);
        assert_eq!(gone.differences, vec![Difference::MissingVirtualServer(a), Difference::MissingVirtualServer(b)]);
    }
}
