//! Address ownership: which Service gets an address two Services claim.
//!
//! The kernel keys traffic by address, not by Service: nftables' `service-ips` map and IPVS
//! virtual servers are keyed by IP, protocol and port (ClusterIPs, ExternalIPs and
//! LoadBalancer IPs share that key space), and NodePorts by protocol and port. Two Services
//! that claim the same key (manifests written by hand, or an API race around a delete and a
//! create) cannot both be programmed; whichever was written last would silently win, and a
//! full sync could flip the winner. Here the owner is decided from the objects alone: the
//! older `creationTimestamp` wins (a Service without one counts as newest), then the smaller
//! `namespace/name`. The other Service is not programmed for that address:
//! - a lost ClusterIP:port drops that service port (the kernel cannot program a service port
//!   without its ClusterIP);
//! - a lost NodePort, ExternalIP:port or LoadBalancer IP:port drops only that destination.
//!
//! Ownership is decided per address from what each Service asks for, so it depends only on the
//! current objects: any order of events gives what a from-scratch translation gives.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{Entry, ObjKey};
use crate::model::{AddressKind, IpFamily, Protocol, ServicePort};

/// A key the kernel programs traffic by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Destination {
    /// IP, port and protocol: ClusterIPs, ExternalIPs and LoadBalancer IPs alike.
    Ip(SocketAddr, Protocol),
    /// A NodePort of one family (each family has its own NodePort map).
    NodePort(IpFamily, u16, Protocol),
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Ip(addr, protocol) => write!(f, "{addr}/{protocol}"),
            Destination::NodePort(family, port, protocol) => {
                let family = if *family == IpFamily::V4 { "IPv4" } else { "IPv6" };
                write!(f, "{port}/{protocol} ({family})")
            }
        }
    }
}

/// The order in which Services get contested addresses: older first, then by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rank {
    created: Option<Time>,
    key: ObjKey,
}

impl Rank {
    pub(crate) fn new(created: Option<Time>, key: ObjKey) -> Rank {
        Rank { created, key }
    }
}

impl Ord for Rank {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // A missing timestamp sorts after every timestamp (newest).
        (self.created.is_none(), &self.created, self.key.namespace(), self.key.name()).cmp(&(
            other.created.is_none(),
            &other.created,
            other.key.namespace(),
            other.key.name(),
        ))
    }
}

impl PartialOrd for Rank {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// One Service's claim on a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Claim {
    pub destination: Destination,
    pub kind: AddressKind,
}

/// The destinations `ports` (one Service's, unfiltered) claim, sorted, each once (a Service
/// whose ExternalIP equals its own ClusterIP claims it once, as the first kind in
/// [`AddressKind`] order).
pub(crate) fn claims_of(ports: &[ServicePort]) -> Vec<Claim> {
    let mut out: Vec<Claim> = Vec::new();
    for p in ports {
        let proto = p.name.protocol;
        let at = |ip: IpAddr| Destination::Ip(SocketAddr::new(ip, p.port), proto);
        out.push(Claim { destination: at(p.cluster_ip), kind: AddressKind::ClusterIp });
        if let Some(np) = p.node_port {
            out.push(Claim { destination: Destination::NodePort(p.family, np, proto), kind: AddressKind::NodePort });
        }
        out.extend(p.external_ips.iter().map(|ip| Claim { destination: at(*ip), kind: AddressKind::ExternalIp }));
        out.extend(p.load_balancer_ips.iter().map(|ip| Claim { destination: at(*ip), kind: AddressKind::LoadBalancerIp }));
    }
    out.sort_by_key(|c| (c.destination, c.kind));
    out.dedup_by_key(|c| c.destination);
    out
}

/// The claim on `destination` in sorted `claims`.
fn find(claims: &[Claim], destination: &Destination) -> Option<Claim> {
    claims.binary_search_by_key(destination, |c| c.destination).ok().map(|i| claims[i])
}

/// Every claimed destination and its claimants, best rank first.
#[derive(Debug, Default)]
struct Owners {
    claimants: HashMap<Destination, Vec<(Rank, AddressKind)>>,
}

impl Owners {
    /// Whether nothing is claimed.
    fn is_empty(&self) -> bool {
        self.claimants.is_empty()
    }

    /// Replace the claims of one Service (`old` under `old_rank`, by `new` under `new_rank`).
    /// Calls `affected` with every Service whose outcome for some destination may have changed
    /// (the old and new owner, and every claimant, whose loss names the owner, of a
    /// destination whose owner changed).
    fn replace(
        &mut self,
        old: &[Claim],
        old_rank: Option<&Rank>,
        new: &[Claim],
        new_rank: Option<&Rank>,
        mut affected: impl FnMut(&ObjKey),
    ) {
        // Claims are sorted by destination (`claims_of`).
        let mut touched: Vec<Destination> = old.iter().chain(new.iter()).map(|c| c.destination).collect();
        touched.sort();
        touched.dedup();
        for destination in touched {
            let list = self.claimants.entry(destination).or_default();
            let before = list.first().map(|(r, _)| r.key.clone());
            if let (Some(rank), Some(_)) = (old_rank, find(old, &destination)) {
                list.retain(|(r, _)| r.key != rank.key);
            }
            if let (Some(rank), Some(claim)) = (new_rank, find(new, &destination)) {
                let at = list.partition_point(|(r, _)| r < rank);
                list.insert(at, (rank.clone(), claim.kind));
            }
            let after = list.first().map(|(r, _)| &r.key);
            if before.as_ref() != after {
                before.iter().for_each(&mut affected);
                list.iter().for_each(|(r, _)| affected(&r.key));
            }
            if list.is_empty() {
                self.claimants.remove(&destination);
            }
        }
    }

    /// The owner of a destination and the kind it claims it as.
    fn owner(&self, destination: &Destination) -> Option<&(Rank, AddressKind)> {
        self.claimants.get(destination).and_then(|l| l.first())
    }

    /// Keep in `ports` (Service `key`'s, unfiltered) only what `key` owns; each loss is
    /// appended to `issues`.
    fn filter(&self, key: &ObjKey, ports: &mut Vec<ServicePort>, issues: &mut Vec<Issue>) {
        let mut lost = |destination: Destination, kind: AddressKind| -> bool {
            match self.owner(&destination) {
                Some((owner, owner_kind)) if owner.key != *key => {
                    issues.push(Issue::Conflict {
                        kind,
                        destination,
                        owner: owner.key.joined.clone(),
                        owner_kind: *owner_kind,
                    });
                    true
                }
                _ => false,
            }
        };
        ports.retain_mut(|p| {
            let proto = p.name.protocol;
            if lost(Destination::Ip(SocketAddr::new(p.cluster_ip, p.port), proto), AddressKind::ClusterIp) {
                return false;
            }
            if let Some(np) = p.node_port {
                if lost(Destination::NodePort(p.family, np, proto), AddressKind::NodePort) {
                    p.node_port = None;
                }
            }
            let port = p.port;
            p.external_ips.retain(|ip| !lost(Destination::Ip(SocketAddr::new(*ip, port), proto), AddressKind::ExternalIp));
            p.load_balancer_ips
                .retain(|ip| !lost(Destination::Ip(SocketAddr::new(*ip, port), proto), AddressKind::LoadBalancerIp));
            true
        });
    }
}

/// An address of a Service that is not programmed, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Issue {
    /// Another Service owns the destination.
    Conflict { kind: AddressKind, destination: Destination, owner: String, owner_kind: AddressKind },
    /// The address is outside the configured allow-list for its kind.
    NotAllowed { kind: AddressKind, ip: IpAddr },
}

impl Issue {
    /// The kind of the address that is not programmed.
    pub(crate) fn kind(&self) -> AddressKind {
        match self {
            Issue::Conflict { kind, .. } | Issue::NotAllowed { kind, .. } => *kind,
        }
    }

    /// What is wrong, for Service `service` (`namespace/name`), and what kproxy does.
    pub(crate) fn describe(&self, service: &str) -> String {
        match self {
            Issue::Conflict { kind, destination, owner, owner_kind } => format!(
                "Service {service}: {} {destination} is also claimed by Service {owner} (as its {}), which owns it \
                 (older creationTimestamp, then namespace/name): not programmed for {service} while {owner} claims it; \
                 give one of them another address",
                kind.field(),
                owner_kind.field(),
            ),
            Issue::NotAllowed { kind, ip } => {
                let flag = match kind {
                    AddressKind::LoadBalancerIp => "--load-balancer-ip-allowed-cidrs",
                    _ => "--external-ip-allowed-cidrs",
                };
                format!(
                    "Service {service}: {} {ip} is outside the allowed CIDRs ({flag}): not programmed \
                     (CVE-2020-8554); widen the allow-list if the address is legitimate",
                    kind.field()
                )
            }
        }
    }

    /// What is said when the issue is gone.
    pub(crate) fn describe_end(&self, service: &str) -> String {
        match self {
            Issue::Conflict { kind, destination, owner, .. } => format!(
                "Service {service}: {} {destination} is no longer contested by Service {owner}",
                kind.field()
            ),
            Issue::NotAllowed { kind, ip } => format!("Service {service}: {} {ip} is no longer skipped", kind.field()),
        }
    }
}

/// A change in which addresses of a Service are not programmed, reported once when it starts
/// and once when it ends (not at every sync).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressNotice {
    /// `namespace/name` of the Service whose address is (or was) not programmed.
    pub service: String,
    /// The kind of the address.
    pub kind: AddressKind,
    /// Whether this is a conflict with another Service (else: outside the allow-list).
    pub conflict: bool,
    /// `false`: the address is not programmed from now on (a warning); `true`: it is
    /// programmed again or gone (informational).
    pub ended: bool,
    /// What happened, naming both Services for a conflict, and what to do.
    pub message: String,
}

impl fmt::Display for AddressNotice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// How many addresses are currently not programmed, per reason and kind (gauges).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressIssueCounts {
    /// Addresses lost to another Service, per kind of the lost address.
    pub conflicts: [usize; 4],
    /// Addresses outside the allow-list, per kind (only ExternalIP and LoadBalancer IP).
    pub not_allowed: [usize; 4],
}

impl AddressIssueCounts {
    /// Index of a kind in the arrays ([`AddressKind::ALL`] order).
    pub fn index(kind: AddressKind) -> usize {
        kind as usize
    }

    pub(crate) fn add(&mut self, issue: &Issue, delta: isize) {
        let slot = match issue {
            Issue::Conflict { .. } => &mut self.conflicts[Self::index(issue.kind())],
            Issue::NotAllowed { .. } => &mut self.not_allowed[Self::index(issue.kind())],
        };
        *slot = slot.saturating_add_signed(delta);
    }
}

/// Ownership of addresses across all Services, and what is reported about it.
#[derive(Debug, Default)]
pub(crate) struct Ownership {
    owners: Owners,
    counts: AddressIssueCounts,
    notices: Vec<AddressNotice>,
}

impl Ownership {
    /// Whether no Service claims anything.
    pub(crate) fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// Addresses currently not programmed.
    pub(crate) fn counts(&self) -> &AddressIssueCounts {
        &self.counts
    }

    /// Notices since the last call.
    pub(crate) fn take_notices(&mut self) -> Vec<AddressNotice> {
        std::mem::take(&mut self.notices)
    }

    /// Record what `entry` (Service `key`) claims now that its unfiltered ports are `ports`;
    /// `affected` is called with every other Service whose outcome may have changed.
    pub(crate) fn register(&mut self, key: &ObjKey, entry: &mut Entry, ports: &[ServicePort], affected: impl FnMut(&ObjKey)) {
        let claims = claims_of(ports);
        let rank = entry.service.as_ref().map(|s| Rank::new(s.created.clone(), key.clone()));
        if claims == entry.claims && rank == entry.rank {
            return;
        }
        self.owners.replace(&entry.claims, entry.rank.as_ref(), &claims, rank.as_ref(), affected);
        entry.claims = claims;
        entry.rank = rank;
    }

    /// Reduce `ports` (registered with [`Ownership::register`]) to what Service `key` may
    /// program, and report what changed in what it may not.
    pub(crate) fn resolve(&mut self, key: &ObjKey, entry: &mut Entry, ports: &mut Vec<ServicePort>) {
        let mut issues: Vec<Issue> = entry
            .service
            .iter()
            .flat_map(|s| s.not_allowed.iter())
            .map(|&(kind, ip)| Issue::NotAllowed { kind, ip })
            .collect();
        self.owners.filter(key, ports, &mut issues);
        issues.sort();
        issues.dedup();
        if issues == entry.issues {
            return;
        }
        for (list, other, ended) in [(&entry.issues, &issues, true), (&issues, &entry.issues, false)] {
            for issue in list.iter().filter(|i| other.binary_search(i).is_err()) {
                self.counts.add(issue, if ended { -1 } else { 1 });
                self.notices.push(AddressNotice {
                    service: key.joined.clone(),
                    kind: issue.kind(),
                    conflict: matches!(issue, Issue::Conflict { .. }),
                    ended,
                    message: if ended { issue.describe_end(&key.joined) } else { issue.describe(&key.joined) },
                });
            }
        }
        entry.issues = issues;
    }
}
