//! [`IpvsKernel`]: everything the IPVS backend asks of the kernel, as one trait, and
//! [`NetlinkKernel`], the real one (generic netlink for IPVS, rtnetlink for the dummy link,
//! `/proc/sys` for sysctls).
//!
//! The backend only talks to this trait, so the same sync logic runs against the real
//! kernel and against [`crate::fake::FakeIpvs`], which enforces the kernel's rules in memory.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::error::{Errno, Error};
use crate::ipvs::{DumpedService, Ipvs, Op};
use crate::ipvs_msg::{RealCounters, RealServer, ServiceKey, Timeouts, VirtualServer};
use crate::operation::Operation;
use crate::rtnl::{LinkAddr, Rtnl};
use crate::sysctl::{self, Setting};

/// The kernel edge of the IPVS backend, bound to one network namespace.
///
/// Reads fail as a whole (`Err`); [`IpvsKernel::apply`] answers one verdict per operation,
/// and fails as a whole only when nothing can be said about the operations (the socket
/// broke).
pub trait IpvsKernel: fmt::Debug {
    /// Write sysctls (values already set are left alone); returns warnings for those that
    /// cannot be written because `/proc/sys` is read-only.
    fn write_sysctls(&mut self, sysctls: &[Setting]) -> Result<Vec<String>, Error>;

    /// Set the non-zero IPVS connection timeouts of `timeouts`.
    fn set_timeouts(&mut self, timeouts: &Timeouts) -> Result<(), Error>;

    /// Every virtual server (without real servers).
    fn virtual_servers(&mut self) -> Result<Vec<VirtualServer>, Error>;

    /// The real servers of one virtual server, with their connection counters. A missing
    /// virtual server is an [`Error::Kernel`] whose errno [`Errno::is_not_found`].
    fn real_servers(
        &mut self,
        service: &ServiceKey,
    ) -> Result<Vec<(RealServer, RealCounters)>, Error>;

    /// The whole IPVS table: every virtual server with its real servers.
    fn dump(&mut self) -> Result<BTreeMap<ServiceKey, DumpedService>, Error> {
        let mut out = BTreeMap::new();
        for service in self.virtual_servers()? {
            let reals = self.real_servers(&service.key)?;
            out.insert(service.key, DumpedService { service, reals });
        }
        Ok(out)
    }

    /// Create the dummy link `name` if missing, set it up, and return its index.
    fn ensure_dummy_link(&mut self, name: &str) -> Result<u32, Error>;

    /// Delete link `name` if it exists.
    fn delete_link(&mut self, name: &str) -> Result<(), Error>;

    /// Every address of every link.
    fn addresses(&mut self) -> Result<Vec<LinkAddr>, Error>;

    /// Indexes of the loopback links.
    fn loopback_indexes(&mut self) -> Result<Vec<u32>, Error>;

    /// Execute `ops` in order; one verdict per operation, in order.
    fn apply(&mut self, ops: &[Operation]) -> Result<Vec<Result<(), Errno>>, Error>;
}

/// The real kernel of the network namespace this was opened in.
#[derive(Debug)]
pub struct NetlinkKernel {
    ipvs: Ipvs,
    rtnl: Rtnl,
    sysctl_root: PathBuf,
}

impl NetlinkKernel {
    /// Open the IPVS and rtnetlink sockets in the current network namespace; sysctls are
    /// written under `sysctl_root` (normally `/proc/sys`). Fails with
    /// [`Error::IpvsUnavailable`] when the kernel has no IPVS.
    pub fn open(sysctl_root: PathBuf) -> Result<NetlinkKernel, Error> {
        Ok(NetlinkKernel {
            ipvs: Ipvs::open()?,
            rtnl: Rtnl::open()?,
            sysctl_root,
        })
    }

    /// The IPVS handle (for reads the trait does not offer, such as [`Ipvs::info`]).
    pub fn ipvs(&mut self) -> &mut Ipvs {
        &mut self.ipvs
    }
}

impl IpvsKernel for NetlinkKernel {
    fn write_sysctls(&mut self, sysctls: &[Setting]) -> Result<Vec<String>, Error> {
        sysctl::apply(&self.sysctl_root, sysctls)
    }

    fn set_timeouts(&mut self, timeouts: &Timeouts) -> Result<(), Error> {
        self.ipvs.set_timeouts(timeouts)
    }

    fn virtual_servers(&mut self) -> Result<Vec<VirtualServer>, Error> {
        self.ipvs.services()
    }

    fn real_servers(
        &mut self,
        service: &ServiceKey,
    ) -> Result<Vec<(RealServer, RealCounters)>, Error> {
        self.ipvs.reals(service)
    }

    fn dump(&mut self) -> Result<BTreeMap<ServiceKey, DumpedService>, Error> {
        self.ipvs.dump()
    }

    fn ensure_dummy_link(&mut self, name: &str) -> Result<u32, Error> {
        self.rtnl.ensure_dummy(name)
    }

    fn delete_link(&mut self, name: &str) -> Result<(), Error> {
        self.rtnl.delete_link(name)
    }

    fn addresses(&mut self) -> Result<Vec<LinkAddr>, Error> {
        self.rtnl.addresses()
    }

    fn loopback_indexes(&mut self) -> Result<Vec<u32>, Error> {
        self.rtnl.loopback_indexes()
    }

    /// Consecutive operations of one kind (IPVS, address additions on one link, address
    /// deletions on one link) go out as one pipelined batch: the order is kept and a sync
    /// costs a few round trips, not one per operation.
    fn apply(&mut self, ops: &[Operation]) -> Result<Vec<Result<(), Errno>>, Error> {
        let mut out = Vec::with_capacity(ops.len());
        let mut rest = ops;
        while let Some(first) = rest.first() {
            let n = rest.iter().take_while(|op| same_batch(first, op)).count();
            let (batch, tail) = rest.split_at(n);
            rest = tail;
            let addrs = || batch.iter().filter_map(address).collect::<Vec<_>>();
            let verdicts = match first {
                Operation::Ipvs(_) => self.ipvs.apply(batch.iter().filter_map(ipvs_op))?,
                Operation::AddAddress { link, .. } => {
                    self.rtnl.change_addrs(true, *link, &addrs())?
                }
                Operation::DeleteAddress { link, .. } => {
                    self.rtnl.change_addrs(false, *link, &addrs())?
                }
            };
            out.extend(verdicts);
        }
        Ok(out)
    }
}

fn same_batch(a: &Operation, b: &Operation) -> bool {
    match (a, b) {
        (Operation::Ipvs(_), Operation::Ipvs(_)) => true,
        (Operation::AddAddress { link: x, .. }, Operation::AddAddress { link: y, .. })
        | (Operation::DeleteAddress { link: x, .. }, Operation::DeleteAddress { link: y, .. }) => {
            x == y
        }
        _ => false,
    }
}

fn ipvs_op(op: &Operation) -> Option<&Op> {
    match op {
        Operation::Ipvs(op) => Some(op),
        _ => None,
    }
}

fn address(op: &Operation) -> Option<std::net::IpAddr> {
    match op {
        Operation::AddAddress { addr, .. } | Operation::DeleteAddress { addr, .. } => Some(*addr),
        Operation::Ipvs(_) => None,
    }
}
