//! [`FakeIpvs`]: an in-memory [`IpvsKernel`] that enforces the kernel's rules, so the
//! backend's sync logic can be tested without root, a VM or IPVS.
//!
//! The errnos are the ones `net/netfilter/ipvs/ip_vs_ctl.c` (`ip_vs_genl_set_cmd`,
//! `ip_vs_add_service`, `ip_vs_add_dest`, `ip_vs_edit_dest`, `ip_vs_del_dest`) and rtnetlink
//! (`inet_rtm_newaddr`/`inet_rtm_deladdr` and their IPv6 twins) answer; the VM test
//! `fake_matches_kernel_errnos` sends the same operations to both and compares:
//! - adding a virtual server that exists: `EEXIST`; with a scheduler the kernel does not
//!   know: `ENOENT`; an IPv6 one with a netmask outside 1..=128: `EINVAL`;
//! - editing or deleting a missing virtual server, or any real-server operation on one:
//!   `ESRCH` (the kernel's "the service must already exist");
//! - a real server of the other address family (masquerading, the only method kproxy
//!   uses, cannot cross families): `EINVAL` on add/edit;
//! - a weight above `i32::MAX` (negative for the kernel): `ERANGE`;
//! - adding a real server that exists: `EEXIST`; editing or deleting a missing one: `ENOENT`;
//! - adding an address the link has: `EEXIST`; deleting one it has not: `EADDRNOTAVAIL`;
//!   either on a missing link: `ENODEV`.
//!
//! Each operation is judged on its own, in order, as the kernel answers each pipelined
//! request: a failure does not stop the ones after it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{Errno, Error};
use crate::ipvs::{DumpedService, Op};
use crate::ipvs_msg::{
    Forward, RealCounters, RealKey, RealServer, ServiceKey, Timeouts, VirtualServer,
};
use crate::kernel::IpvsKernel;
use crate::operation::Operation;
use crate::rtnl::LinkAddr;
use crate::sysctl::Setting;

/// The schedulers of a stock kernel (`ip_vs_<name>` modules, loaded on demand).
pub const KERNEL_SCHEDULERS: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos",
];

#[derive(Debug, Clone)]
struct Link {
    index: u32,
    loopback: bool,
}

/// An in-memory network namespace with IPVS: virtual and real servers, links and their
/// addresses, timeouts and sysctls, and a log of every operation it was asked to apply.
#[derive(Debug, Clone)]
pub struct FakeIpvs {
    services: BTreeMap<ServiceKey, (VirtualServer, BTreeMap<RealKey, (RealServer, RealCounters)>)>,
    links: BTreeMap<String, Link>,
    addresses: BTreeSet<LinkAddr>,
    schedulers: BTreeSet<String>,
    timeouts: Timeouts,
    sysctls: BTreeMap<String, String>,
    log: Vec<Operation>,
    next_index: u32,
}

impl Default for FakeIpvs {
    fn default() -> FakeIpvs {
        FakeIpvs::new()
    }
}

impl FakeIpvs {
    /// A fresh namespace: `lo` (index 1, 127.0.0.1/8 and ::1/128), an empty IPVS table, the
    /// stock schedulers ([`KERNEL_SCHEDULERS`]).
    pub fn new() -> FakeIpvs {
        let mut fake = FakeIpvs {
            services: BTreeMap::new(),
            links: BTreeMap::new(),
            addresses: BTreeSet::new(),
            schedulers: KERNEL_SCHEDULERS.iter().map(|s| s.to_string()).collect(),
            timeouts: Timeouts::default(),
            sysctls: BTreeMap::new(),
            log: Vec::new(),
            next_index: 1,
        };
        let lo = fake.new_link("lo", true);
        fake.add_address(lo, IpAddr::V4(Ipv4Addr::LOCALHOST), 8);
        fake.add_address(lo, IpAddr::V6(Ipv6Addr::LOCALHOST), 128);
        fake
    }

    fn new_link(&mut self, name: &str, loopback: bool) -> u32 {
        let index = self.next_index;
        self.next_index += 1;
        self.links
            .insert(name.to_string(), Link { index, loopback });
        index
    }

    fn add_address(&mut self, index: u32, addr: IpAddr, prefix_len: u8) {
        self.addresses.insert(LinkAddr {
            index,
            addr,
            prefix_len,
        });
    }

    /// Add a regular link (a node interface) with addresses `(address, prefix length)`;
    /// returns its index.
    pub fn add_link(&mut self, name: &str, addrs: &[(IpAddr, u8)]) -> u32 {
        let index = self.new_link(name, false);
        for (addr, len) in addrs {
            self.add_address(index, *addr, *len);
        }
        index
    }

    /// The index of link `name`.
    pub fn link(&self, name: &str) -> Option<u32> {
        self.links.get(name).map(|l| l.index)
    }

    /// The addresses of link `name` (empty when it does not exist).
    pub fn link_addresses(&self, name: &str) -> BTreeSet<IpAddr> {
        let Some(index) = self.link(name) else {
            return BTreeSet::new();
        };
        self.addresses
            .iter()
            .filter(|a| a.index == index)
            .map(|a| a.addr)
            .collect()
    }

    /// Forget scheduler `name`, as a kernel without its module.
    pub fn remove_scheduler(&mut self, name: &str) {
        self.schedulers.remove(name);
    }

    /// The virtual server `key`, if it exists.
    pub fn virtual_server(&self, key: &ServiceKey) -> Option<&VirtualServer> {
        self.services.get(key).map(|(vs, _)| vs)
    }

    /// The real servers of `key` (empty when it does not exist).
    pub fn reals_of(&self, key: &ServiceKey) -> Vec<RealServer> {
        self.services
            .get(key)
            .map(|(_, r)| r.values().map(|(rs, _)| rs.clone()).collect())
            .unwrap_or_default()
    }

    /// Every virtual server key.
    pub fn virtual_server_keys(&self) -> Vec<ServiceKey> {
        self.services.keys().copied().collect()
    }

    /// Set the connection counters of a real server (connections arriving or ending);
    /// false when it does not exist.
    pub fn set_connections(
        &mut self,
        service: &ServiceKey,
        real: &RealKey,
        active: u32,
        inactive: u32,
    ) -> bool {
        match self
            .services
            .get_mut(service)
            .and_then(|(_, r)| r.get_mut(real))
        {
            Some((_, c)) => {
                c.active = active;
                c.inactive = inactive;
                true
            }
            None => false,
        }
    }

    /// The timeouts set so far (0: never set).
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// The value written to sysctl `path` (relative to `/proc/sys`), if any.
    pub fn sysctl(&self, path: &str) -> Option<&str> {
        self.sysctls.get(path).map(String::as_str)
    }

    /// Every operation [`IpvsKernel::apply`] was given, in order, failed ones included.
    pub fn log(&self) -> &[Operation] {
        &self.log
    }

    /// Empty the log, returning it.
    pub fn take_log(&mut self) -> Vec<Operation> {
        std::mem::take(&mut self.log)
    }

    /// Apply one operation with the kernel's checks.
    pub fn apply_one(&mut self, op: &Operation) -> Result<(), Errno> {
        match op {
            Operation::Ipvs(op) => self.apply_ipvs(op),
            Operation::AddAddress { link, addr } => {
                self.check_link(*link)?;
                let len = if addr.is_ipv4() { 32 } else { 128 };
                if self
                    .addresses
                    .iter()
                    .any(|a| a.index == *link && a.addr == *addr)
                {
                    return Err(Errno(libc::EEXIST));
                }
                self.add_address(*link, *addr, len);
                Ok(())
            }
            Operation::DeleteAddress { link, addr } => {
                self.check_link(*link)?;
                let before = self.addresses.len();
                self.addresses
                    .retain(|a| !(a.index == *link && a.addr == *addr));
                if self.addresses.len() == before {
                    return Err(Errno(libc::EADDRNOTAVAIL));
                }
                Ok(())
            }
        }
    }

    fn check_link(&self, index: u32) -> Result<(), Errno> {
        if self.links.values().any(|l| l.index == index) {
            Ok(())
        } else {
            Err(Errno(libc::ENODEV))
        }
    }

    fn apply_ipvs(&mut self, op: &Op) -> Result<(), Errno> {
        let key = match op {
            Op::AddService(vs) | Op::UpdateService(vs) => vs.key,
            Op::DelService(k) | Op::AddReal(k, _) | Op::UpdateReal(k, _) | Op::DelReal(k, _) => *k,
        };
        let exists = self.services.contains_key(&key);
        // ip_vs_genl_set_cmd: unless adding a virtual server, it must exist.
        match (op, exists) {
            (Op::AddService(_), true) => return Err(Errno(libc::EEXIST)),
            (Op::AddService(_), false) => {}
            (_, false) => return Err(Errno(libc::ESRCH)),
            _ => {}
        }
        match op {
            Op::AddService(vs) => {
                self.check_service(vs)?;
                self.services.insert(key, (vs.clone(), BTreeMap::new()));
            }
            Op::UpdateService(vs) => {
                self.check_service(vs)?;
                if let Some((have, _)) = self.services.get_mut(&key) {
                    *have = vs.clone();
                }
            }
            Op::DelService(_) => {
                self.services.remove(&key);
            }
            Op::AddReal(_, rs) | Op::UpdateReal(_, rs) => {
                check_real(&key, rs)?;
                let reals = self.reals_mut(&key)?;
                let add = matches!(op, Op::AddReal(..));
                match (reals.get_mut(&rs.key), add) {
                    (Some(_), true) => return Err(Errno(libc::EEXIST)),
                    (None, false) => return Err(Errno(libc::ENOENT)),
                    (Some((have, _)), false) => *have = rs.clone(),
                    (None, true) => {
                        reals.insert(rs.key, (rs.clone(), RealCounters::default()));
                    }
                }
            }
            Op::DelReal(_, rs) => {
                if self.reals_mut(&key)?.remove(&rs.key).is_none() {
                    return Err(Errno(libc::ENOENT));
                }
            }
        }
        Ok(())
    }

    fn reals_mut(
        &mut self,
        key: &ServiceKey,
    ) -> Result<&mut BTreeMap<RealKey, (RealServer, RealCounters)>, Errno> {
        self.services
            .get_mut(key)
            .map(|(_, r)| r)
            .ok_or(Errno(libc::ESRCH))
    }

    /// ip_vs_add_service / ip_vs_edit_service: the scheduler must be known, an IPv6
    /// netmask is a prefix length.
    fn check_service(&self, vs: &VirtualServer) -> Result<(), Errno> {
        if !self.schedulers.contains(&vs.scheduler) {
            return Err(Errno(libc::ENOENT));
        }
        if vs.key.addr.is_ipv6() && !(1..=128).contains(&vs.netmask) {
            return Err(Errno(libc::EINVAL));
        }
        Ok(())
    }
}

/// ip_vs_genl_set_cmd and ip_vs_add_dest / ip_vs_edit_dest: only tunnelling crosses
/// address families; the weight is a signed int.
fn check_real(service: &ServiceKey, rs: &RealServer) -> Result<(), Errno> {
    if service.addr.is_ipv4() != rs.key.addr.is_ipv4() && rs.forward != Forward::Tunnel {
        return Err(Errno(libc::EINVAL));
    }
    if i32::try_from(rs.weight).is_err() {
        return Err(Errno(libc::ERANGE));
    }
    Ok(())
}

impl IpvsKernel for FakeIpvs {
    fn write_sysctls(&mut self, sysctls: &[Setting]) -> Result<Vec<String>, Error> {
        for s in sysctls {
            self.sysctls.insert(s.path.to_string(), s.value.to_string());
        }
        Ok(Vec::new())
    }

    fn set_timeouts(&mut self, t: &Timeouts) -> Result<(), Error> {
        // Zero leaves the kernel's value, as IPVS_CMD_SET_CONFIG does.
        let keep = |new: u32, old: u32| if new == 0 { old } else { new };
        self.timeouts = Timeouts {
            tcp: keep(t.tcp, self.timeouts.tcp),
            tcp_fin: keep(t.tcp_fin, self.timeouts.tcp_fin),
            udp: keep(t.udp, self.timeouts.udp),
        };
        Ok(())
    }

    fn virtual_servers(&mut self) -> Result<Vec<VirtualServer>, Error> {
        Ok(self.services.values().map(|(vs, _)| vs.clone()).collect())
    }

    fn real_servers(
        &mut self,
        service: &ServiceKey,
    ) -> Result<Vec<(RealServer, RealCounters)>, Error> {
        match self.services.get(service) {
            Some((_, reals)) => Ok(reals.values().cloned().collect()),
            None => Err(Error::Kernel {
                step: format!("dumping real servers of {service}"),
                errno: Errno(libc::ESRCH),
            }),
        }
    }

    fn dump(&mut self) -> Result<BTreeMap<ServiceKey, DumpedService>, Error> {
        Ok(self
            .services
            .iter()
            .map(|(k, (vs, reals))| {
                let service = vs.clone();
                let reals = reals.values().cloned().collect();
                (*k, DumpedService { service, reals })
            })
            .collect())
    }

    fn ensure_dummy_link(&mut self, name: &str) -> Result<u32, Error> {
        if let Some(index) = self.link(name) {
            return Ok(index);
        }
        let index = self.new_link(name, false);
        // The kernel gives a link that comes up an IPv6 link-local address.
        let ll = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, index as u16);
        self.add_address(index, IpAddr::V6(ll), 64);
        Ok(index)
    }

    fn delete_link(&mut self, name: &str) -> Result<(), Error> {
        if let Some(link) = self.links.remove(name) {
            self.addresses.retain(|a| a.index != link.index);
        }
        Ok(())
    }

    fn addresses(&mut self) -> Result<Vec<LinkAddr>, Error> {
        Ok(self.addresses.iter().copied().collect())
    }

    fn loopback_indexes(&mut self) -> Result<Vec<u32>, Error> {
        Ok(self
            .links
            .values()
            .filter(|l| l.loopback)
            .map(|l| l.index)
            .collect())
    }

    fn apply(&mut self, ops: &[Operation]) -> Result<Vec<Result<(), Errno>>, Error> {
        self.log.extend_from_slice(ops);
        Ok(ops.iter().map(|op| self.apply_one(op)).collect())
    }
}
