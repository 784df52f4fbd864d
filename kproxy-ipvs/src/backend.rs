//! [`IpvsBackend`]: the [`ProxyBackend`] of IPVS mode.
//!
//! # Syncs and failures
//! IPVS has no transactions. Every sync computes the desired table (pure, in memory),
//! diffs it against the table the backend believes the kernel holds, and sends only the
//! differences, pipelined. Each operation gets its own verdict:
//! - the in-memory table is updated with exactly the operations that succeeded, so it stays
//!   a faithful picture of the kernel after a failure;
//! - a sync with any failed operation returns [`Error::PartialSync`] naming them; what did
//!   succeed stays programmed (services keep working on their old or new real servers);
//! - the sync loop answers a failure with [`ProxyBackend::sync_full`], which is the repair
//!   path: it dumps the kernel's table and the dummy link's addresses, and reconciles them
//!   against the desired state (own entries fixed, stale ones removed). A start is a full
//!   sync too, so whatever an earlier process left behind is adopted or removed.
//!
//! Partial syncs never read the kernel back, except the connection counters of real servers
//! that are draining (graceful termination needs them).
//!
//! # Kernels
//! The backend talks to the kernel only through an [`IpvsKernel`]: [`IpvsBackend::new`]
//! opens the real one ([`NetlinkKernel`]), [`IpvsBackend::with_kernel`] takes any other,
//! such as [`crate::fake::FakeIpvs`] in tests. A sync is pure up to a list of
//! [`Operation`]s, which the kernel executes with one verdict each.
//!
//! # Ownership
//! As upstream's IPVS proxier, kproxy treats every virtual server in the namespace as its
//! own, except those whose address is inside `excludeCIDRs`, which it never deletes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Instant;

use kproxy_core::backend::{ProxyBackend, SyncKind, SyncReport};
use kproxy_core::model::{ChangeSet, ProxyState};

use crate::config::IpvsConfig;
use crate::diff;
use crate::diff::Reconcile;
use crate::error::Error;
use crate::check;
use crate::ipvs::{DumpedService, Op};
use crate::ipvs_msg::{RealKey, ServiceKey};
use crate::kernel::{IpvsKernel, NetlinkKernel};
use crate::nft::NftPart;
use crate::operation::Operation;
use crate::plan::{self, DesiredIndex, Entry, Table, Touched};
use crate::sysctl;

/// The IPVS backend, bound to the network namespace its kernel `K` was opened in.
#[derive(Debug)]
pub struct IpvsBackend<K = NetlinkKernel> {
    config: IpvsConfig,
    kernel: K,
    link_index: Option<u32>,
    node_port_addrs: Vec<IpAddr>,
    table: Table,
    vips: BTreeSet<IpAddr>,
    index: DesiredIndex,
    draining: BTreeMap<(ServiceKey, RealKey), Instant>,
    /// A full sync succeeded since creation or cleanup: partial syncs build on its index and
    /// table (the state itself is the tracker's, never copied here).
    programmed: bool,
    nft: Option<NftPart>,
    /// Where the next [`ProxyBackend::check`] starts reading real servers.
    check_cursor: usize,
}

impl IpvsBackend {
    /// Open the IPVS and rtnetlink sockets in the current network namespace. Nothing is
    /// programmed until the first [`ProxyBackend::sync_full`]. Fails when the kernel has no
    /// IPVS ([`Error::IpvsUnavailable`]).
    pub fn new(config: IpvsConfig) -> Result<IpvsBackend, Error> {
        let nft = open_nft(&config)?;
        let kernel = NetlinkKernel::open(config.sysctl_root.clone())?;
        Ok(IpvsBackend::assemble(config, kernel, nft))
    }
}

/// The nftables part of IPVS mode, when the configuration asks for it.
fn open_nft(config: &IpvsConfig) -> Result<Option<NftPart>, Error> {
    if config.nft_rules {
        Ok(Some(NftPart::open().map_err(Error::Nft)?))
    } else {
        Ok(None)
    }
}

impl<K: IpvsKernel> IpvsBackend<K> {
    /// A backend programming `kernel` (a [`crate::fake::FakeIpvs`] in tests). Sysctls go
    /// through the kernel too, so `config.sysctl_root` is the kernel's business. The
    /// nftables part ([`IpvsConfig::nft_rules`]) still opens a real nftables socket in the
    /// current network namespace: turn it off for a kernel that is not real.
    pub fn with_kernel(config: IpvsConfig, kernel: K) -> Result<IpvsBackend<K>, Error> {
        let nft = open_nft(&config)?;
        Ok(IpvsBackend::assemble(config, kernel, nft))
    }

    fn assemble(config: IpvsConfig, kernel: K, nft: Option<NftPart>) -> IpvsBackend<K> {
        IpvsBackend {
            config,
            kernel,
            link_index: None,
            node_port_addrs: Vec::new(),
            table: Table::new(),
            vips: BTreeSet::new(),
            index: DesiredIndex::default(),
            draining: BTreeMap::new(),
            programmed: false,
            nft,
            check_cursor: 0,
        }
    }

    /// The kernel this backend programs.
    pub fn kernel(&self) -> &K {
        &self.kernel
    }

    /// The kernel, mutable (tests change a fake behind the backend's back).
    pub fn kernel_mut(&mut self) -> &mut K {
        &mut self.kernel
    }

    /// The configuration.
    pub fn config(&self) -> &IpvsConfig {
        &self.config
    }

    /// The netlink port id of the nftables part's commit socket, when there is a real one:
    /// for watching [`crate::nft::TABLE`] for changes by someone else.
    pub fn nft_commit_port(&self) -> Option<u32> {
        self.nft.as_ref().and_then(NftPart::commit_port)
    }

    /// The table the backend believes the kernel holds.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// The NodePort addresses found at the last full sync.
    pub fn node_port_addresses(&self) -> &[IpAddr] {
        &self.node_port_addrs
    }

    /// Real servers currently draining (weight 0, waiting for their connections to end).
    pub fn draining(&self) -> impl Iterator<Item = &(ServiceKey, RealKey)> {
        self.draining.keys()
    }

    /// Delete draining real servers that have no connections left (or passed their bound);
    /// returns how many were deleted. Syncs call it; call it on a timer as well so that
    /// drained servers go away without waiting for the next sync.
    pub fn reap_draining(&mut self) -> Result<usize, Error> {
        if self.draining.is_empty() {
            return Ok(0);
        }
        let services: BTreeSet<ServiceKey> = self.draining.keys().map(|(s, _)| *s).collect();
        let now = Instant::now();
        let mut ops = Vec::new();
        for svc in services {
            let counters: BTreeMap<RealKey, _> = match self.kernel.real_servers(&svc) {
                Ok(r) => r.into_iter().map(|(rs, c)| (rs.key, c)).collect(),
                Err(Error::Kernel { errno, .. }) if errno.is_not_found() => BTreeMap::new(),
                Err(e) => return Err(e),
            };
            for ((_, rk), since) in self.draining.iter().filter(|((s, _), _)| *s == svc) {
                let bound = now.duration_since(*since) >= self.config.graceful_termination_bound;
                if diff::reap(counters.get(rk), bound) {
                    let rs = self.table.get(&svc).and_then(|e| e.reals.get(rk)).cloned();
                    let rs = rs.unwrap_or_else(|| gone(*rk));
                    ops.push(Operation::Ipvs(Op::DelReal(svc, rs)));
                }
            }
        }
        let total = ops.len();
        let failures = self.send(&ops)?;
        for op in &ops {
            if let Operation::Ipvs(Op::DelReal(s, rs)) = op {
                if !self
                    .table
                    .get(s)
                    .is_some_and(|e| e.reals.contains_key(&rs.key))
                {
                    self.draining.remove(&(*s, rs.key));
                }
            }
        }
        if failures.is_empty() {
            Ok(total)
        } else {
            Err(Error::PartialSync {
                applied: total - failures.len(),
                total,
                failures,
            })
        }
    }

    /// Send ops; update the in-memory view (table, VIPs) with the ones that reached their
    /// goal; describe the others.
    fn send(&mut self, ops: &[Operation]) -> Result<Vec<String>, Error> {
        let verdicts = self.kernel.apply(ops)?;
        let mut failures = Vec::new();
        for (op, v) in ops.iter().zip(verdicts) {
            match v {
                Err(e) if !op.reached(v) => {
                    failures.push(format!("{}: {e}", op.describe(&self.config.dummy_link)))
                }
                _ => match op {
                    Operation::Ipvs(op) => diff::apply(&mut self.table, op),
                    Operation::AddAddress { addr, .. } => {
                        self.vips.insert(*addr);
                    }
                    Operation::DeleteAddress { addr, .. } => {
                        self.vips.remove(addr);
                    }
                },
            }
        }
        Ok(failures)
    }

    fn link(&mut self) -> Result<u32, Error> {
        match self.link_index {
            Some(i) => Ok(i),
            None => {
                let i = self.kernel.ensure_dummy_link(&self.config.dummy_link)?;
                self.link_index = Some(i);
                Ok(i)
            }
        }
    }

    /// Send a reconciliation (VIPs to add, IPVS operations, VIPs to delete), then reap
    /// drained real servers.
    fn execute(
        &mut self,
        r: Reconcile,
        vips: (Vec<IpAddr>, Vec<IpAddr>),
        kind: SyncKind,
        mut warnings: Vec<String>,
    ) -> Result<SyncReport, Error> {
        let link = self.link()?;
        let now = Instant::now();
        for d in &r.draining {
            self.draining.entry(*d).or_insert(now);
        }
        // A real server desired again (or whose service is gone) is no longer draining.
        let desired = &self.index.desired().table;
        self.draining
            .retain(|(s, rk), _| desired.get(s).is_some_and(|e| !e.reals.contains_key(rk)));
        let ops = diff::sequence(link, r.ops, vips);
        let mut failures = self.send(&ops)?;
        let mut operations = ops.len();
        match self.reap_draining() {
            Ok(n) => operations += n,
            Err(Error::PartialSync { failures: f, .. }) => failures.extend(f),
            Err(e) => warnings.push(format!("graceful termination check failed: {e}")),
        }
        if failures.is_empty() {
            Ok(SyncReport {
                kind,
                operations,
                warnings,
            })
        } else {
            Err(Error::PartialSync {
                applied: operations.saturating_sub(failures.len()),
                total: operations,
                failures,
            })
        }
    }
}

/// A placeholder real server for deleting one the kernel no longer reports.
fn gone(key: RealKey) -> crate::ipvs_msg::RealServer {
    crate::ipvs_msg::RealServer {
        key,
        weight: 0,
        forward: crate::ipvs_msg::Forward::Masq,
    }
}

impl<K: IpvsKernel> ProxyBackend for IpvsBackend<K> {
    type Error = Error;

    fn sync_full(&mut self, state: &ProxyState) -> Result<SyncReport, Error> {
        let mut warnings = self
            .kernel
            .write_sysctls(&sysctl::required(self.config.strict_arp))?;
        self.kernel.set_timeouts(&self.config.timeouts())?;
        self.link_index = None;
        let link = self.link()?;

        // Re-read the kernel: this is the repair path.
        let addrs = self.kernel.addresses()?;
        let mut skip = self.kernel.loopback_indexes()?;
        skip.push(link);
        self.node_port_addrs = plan::node_port_addresses(&state.settings, &addrs, &skip);
        // The kernel gives the (up) dummy link an IPv6 link-local address: not a VIP.
        self.vips = addrs
            .iter()
            .filter(|a| a.index == link && !plan::is_link_local(&a.addr))
            .map(|a| a.addr)
            .collect();
        self.table = self
            .kernel
            .dump()?
            .into_iter()
            .map(|(k, d)| {
                (
                    k,
                    Entry {
                        service: d.service,
                        reals: d.reals.into_iter().map(|(rs, _)| (rs.key, rs)).collect(),
                    },
                )
            })
            .collect();
        if self.node_port_addrs.is_empty() && state.services.values().any(|s| s.node_port.is_some())
        {
            warnings.push(
                "no NodePort addresses match nodePortAddresses: NodePorts are not programmed"
                    .into(),
            );
        }

        // nft first: masquerading must be in place when a virtual server appears.
        if let Some(nft) = &mut self.nft {
            nft.sync_full(state, &self.node_port_addrs)
                .map_err(Error::Nft)?;
        }
        self.index = DesiredIndex::build(&self.config, state, &self.node_port_addrs);
        let cfg = &self.config;
        let excluded = |a: &IpAddr| cfg.is_excluded(a);
        let desired = self.index.desired();
        let r = diff::reconcile(&self.table, &desired.table, &excluded);
        let vips = diff::vips(&self.vips, &desired.vips, &excluded);
        let report = self.execute(r, vips, SyncKind::Full, warnings)?;
        self.programmed = true;
        Ok(report)
    }

    fn sync_changes(
        &mut self,
        state: &ProxyState,
        changes: &ChangeSet,
    ) -> Result<SyncReport, Error> {
        if !self.programmed || changes.settings.is_some() {
            return self.sync_full(state);
        }
        if let Some(nft) = &mut self.nft {
            nft.sync_changes(state, changes, &self.node_port_addrs)
                .map_err(Error::Nft)?;
        }
        // Only the virtual servers and VIPs of changed service ports are looked at.
        let mut touched = Touched::default();
        for key in changes.services.keys() {
            self.index.update(
                &self.config,
                key,
                state.services.get(key),
                &self.node_port_addrs,
                &mut touched,
            );
        }
        let cfg = &self.config;
        let excluded = |a: &IpAddr| cfg.is_excluded(a);
        let desired = self.index.desired();
        let sub = |t: &Table| -> Table {
            touched
                .services
                .iter()
                .filter_map(|k| t.get(k).map(|e| (*k, e.clone())))
                .collect()
        };
        let r = diff::reconcile(&sub(&self.table), &sub(&desired.table), &excluded);
        let have: BTreeSet<IpAddr> = touched
            .vips
            .iter()
            .filter(|v| self.vips.contains(v))
            .copied()
            .collect();
        let want: BTreeSet<IpAddr> = touched
            .vips
            .iter()
            .filter(|v| desired.vips.contains(v))
            .copied()
            .collect();
        let vips = diff::vips(&have, &want, &excluded);
        self.execute(r, vips, SyncKind::Partial, Vec::new())
    }

    /// Every virtual server (one dump), and the real servers of [`check::REALS_PER_CHECK`]
    /// virtual servers, in turns.
    fn check(&mut self) -> Result<Option<String>, Error> {
        if !self.programmed {
            return Ok(None);
        }
        let services = self.kernel.virtual_servers()?;
        let excluded = |a: &IpAddr| self.config.is_excluded(a);
        if let Some(diff) = check::virtual_servers(&self.table, &services, &excluded) {
            return Ok(Some(diff));
        }
        let keys: Vec<ServiceKey> = self.table.keys().copied().collect();
        if keys.is_empty() {
            return Ok(None);
        }
        let start = self.check_cursor % keys.len();
        let n = check::REALS_PER_CHECK.min(keys.len());
        for key in keys.iter().cycle().skip(start).take(n) {
            let reals = self.kernel.real_servers(key)?;
            let Some(entry) = self.table.get(key) else { continue };
            let dumped = DumpedService { service: entry.service.clone(), reals };
            if let Some(diff) = check::real_servers(&self.table, &dumped) {
                return Ok(Some(diff));
            }
        }
        self.check_cursor = start + n;
        Ok(None)
    }

    fn cleanup(&mut self) -> Result<(), Error> {
        let mut errors = Vec::new();
        match self.kernel.virtual_servers() {
            Ok(services) => {
                let ops: Vec<Operation> = services
                    .iter()
                    .filter(|s| !self.config.is_excluded(&s.key.addr))
                    .map(|s| Operation::Ipvs(Op::DelService(s.key)))
                    .collect();
                match self.kernel.apply(&ops) {
                    Ok(v) => {
                        for (op, r) in ops.iter().zip(v) {
                            if let Err(e) = r {
                                if !op.reached(r) {
                                    let what = op.describe(&self.config.dummy_link);
                                    errors.push(format!("{what}: {e}"));
                                }
                            }
                        }
                    }
                    Err(e) => errors.push(e.to_string()),
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
        if let Some(nft) = &mut self.nft {
            if let Err(e) = nft.cleanup() {
                errors.push(format!("deleting the nftables table: {e}"));
            }
        }
        if let Err(e) = self.kernel.delete_link(&self.config.dummy_link) {
            errors.push(e.to_string());
        }
        self.table.clear();
        self.vips.clear();
        self.draining.clear();
        self.link_index = None;
        self.programmed = false;
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Cleanup(errors))
        }
    }
}
