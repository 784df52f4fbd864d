//! The nftables part of IPVS mode, through kproxy-nft's low-level batch API: what upstream
//! does with iptables and ipset next to IPVS.
//!
//! One table per family, `ip kproxy-ipvs` / `ip6 kproxy-ipvs`:
//! - chains `prerouting` and `output` (filter, priority -100, before IPVS at LOCAL_IN 98/99
//!   and LOCAL_OUT -98) jump to `services`: per destination,
//!   `meta mark set meta mark | MASQ` for
//!   - a ClusterIP, from sources outside the pod networks (`detectLocal`), or always with
//!     `masqueradeAll`;
//!   - an ExternalIP, LoadBalancer IP or NodePort address with externalTrafficPolicy Cluster
//!     (eTP=Local keeps the client address and is not marked);
//!   - loadBalancerSourceRanges: `accept` from each range (and from the LB IPs themselves
//!     when a node IP is inside a range), then `drop` for everything else to that LB IP:port;
//! - chain `input` (filter, priority 0, before IPVS at LOCAL_IN): `accept` the service ports
//!   of every VIP and every NodePort / health check NodePort, then `ct state new reject`
//!   anything else sent to a VIP (kube-ipvs0 holds VIPs as local addresses: without it, the
//!   node's own listeners would answer on them; upstream's `KUBE-IPVS-FILTER`);
//! - chain `nat-prerouting` (nat, priority -99, after `prerouting`): eTP=Local external
//!   destinations, from the pod networks: `dnat` to the ClusterIP (short-circuit to the
//!   cluster endpoints); then, when the port has no local endpoints but cluster ones, `drop`
//!   (external traffic is dropped, not rejected);
//! - chain `nat-output` (nat, priority -99, before IPVS's LOCAL_OUT request hook at -98):
//!   eTP=Local external destinations from the node itself: mark for masquerade and `dnat` to
//!   the ClusterIP;
//! - chain `postrouting` (nat, priority 100): `masquerade` marked packets, and hairpin: an
//!   endpoint reaching itself through a service (`saddr == daddr == endpoint`).
//!
//! Services without any endpoint need no rule: a virtual server without real servers answers
//! with ICMP port unreachable by itself (on every destination, the NodePort included).
//!
//! Rules are per destination, not sets (see the README): the rendering is kept per service
//! port and updated for changed ports only; the table is replaced atomically in one batch only
//! when the rules changed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use kproxy_core::model::{
    ChangeSet, IpFamily, LocalDetector, ProxySettings, ProxyState, ServicePort, ServicePortKey,
    TrafficPolicy,
};
use kproxy_nft::netlink::{Batch, ChainHook, NetlinkError, Socket, TableFamily};
use kproxy_nft::stmt::{Expr, Rule, RuleBuilder};

use crate::nft_match::{Match, NF_ACCEPT, NF_DROP};

/// Name of the table (in both families).
pub const TABLE: &str = "kproxy-ipvs";

const CMP_NEQ: u32 = 1;

/// The rendered ruleset of one family: rules in order, by chain.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FamilyRules {
    /// Rules of `services`.
    pub services: Vec<Rule>,
    /// Rules of `input`.
    pub input: Vec<Rule>,
    /// Rules of `nat-prerouting`.
    pub nat_prerouting: Vec<Rule>,
    /// Rules of `nat-output`.
    pub nat_output: Vec<Rule>,
    /// Rules of `postrouting`.
    pub postrouting: Vec<Rule>,
}

fn pod_networks(detector: &LocalDetector) -> Option<&[IpNet]> {
    match detector {
        LocalDetector::ClusterCidrs(n) | LocalDetector::NodeCidrs(n) => Some(n),
        _ => None,
    }
}

/// The `services` rules of one port: masquerade marks and loadBalancerSourceRanges.
fn render_services(s: &ProxySettings, sp: &ServicePort, npa: &[IpAddr], out: &mut Vec<Rule>) {
    let mark = s.masquerade_mark();
    let fam = sp.family;
    let proto = sp.name.protocol;
    let name = sp.name.to_string();
    // ClusterIP: masquerade what does not come from a pod.
    let cip = || {
        Match::new(fam)
            .addr(false, &sp.cluster_ip)
            .dport(proto, sp.port)
    };
    if s.masquerade_all {
        out.push(
            cip()
                .mark(mark)
                .rule("services", format!("{name} cluster IP (masqueradeAll)")),
        );
    } else if let Some(nets) = pod_networks(&s.local_detector) {
        let nets: Vec<&IpNet> = nets.iter().filter(|n| IpFamily::of_net(n) == fam).collect();
        if !nets.is_empty() {
            let m = nets.iter().fold(cip(), |m, n| m.saddr_net(n, false));
            out.push(m.mark(mark).rule(
                "services",
                format!("{name} cluster IP from outside the pods"),
            ));
        }
    }
    // External destinations: masquerade unless eTP=Local keeps the client address.
    if sp.external_traffic_policy == TrafficPolicy::Cluster {
        for (ip, port) in external_destinations(sp, npa) {
            let m = Match::new(fam).addr(false, &ip).dport(proto, port);
            out.push(m.mark(mark).rule("services", format!("{name} external")));
        }
    }
    // loadBalancerSourceRanges: these sources only (the NodePort is not filtered).
    let ranges: Vec<&IpNet> = sp
        .load_balancer_source_ranges
        .iter()
        .filter(|r| IpFamily::of_net(r) == fam)
        .collect();
    if sp.load_balancer_source_ranges.is_empty() {
        return;
    }
    // As upstream: a node IP inside a range also allows the LB IPs as sources (the node
    // reaching its own LB IP uses that IP as source).
    let node_in_range = s
        .node_ips
        .iter()
        .any(|ip| ranges.iter().any(|r| r.contains(ip)));
    for lb in &sp.load_balancer_ips {
        let base = || Match::new(fam).addr(false, lb).dport(proto, sp.port);
        for range in &ranges {
            out.push(base().saddr_net(range, true).verdict(
                "services",
                NF_ACCEPT,
                "accept",
                format!("{name} allowed source"),
            ));
        }
        if node_in_range {
            for src in &sp.load_balancer_ips {
                out.push(base().addr(true, src).verdict(
                    "services",
                    NF_ACCEPT,
                    "accept",
                    format!("{name} LB IP as source (node IP in range)"),
                ));
            }
        }
        out.push(base().verdict(
            "services",
            NF_DROP,
            "drop",
            format!("{name} source not allowed"),
        ));
    }
}

/// ExternalIPs and LB IPs on the service port, NodePort addresses on the NodePort.
fn external_destinations(sp: &ServicePort, npa: &[IpAddr]) -> Vec<(IpAddr, u16)> {
    let mut out: Vec<(IpAddr, u16)> = sp
        .external_ips
        .iter()
        .chain(&sp.load_balancer_ips)
        .map(|ip| (*ip, sp.port))
        .collect();
    if let Some(np) = sp.node_port {
        out.extend(
            npa.iter()
                .filter(|ip| IpFamily::of(ip) == sp.family)
                .map(|ip| (*ip, np)),
        );
    }
    out
}

/// The `input` rules of one port: its VIP ports and NodePorts are accepted.
fn render_input(sp: &ServicePort, out: &mut Vec<Rule>) {
    let fam = sp.family;
    let proto = sp.name.protocol;
    let name = sp.name.to_string();
    for vip in vips(sp) {
        let m = Match::new(fam).addr(false, &vip).dport(proto, sp.port);
        out.push(m.verdict("input", NF_ACCEPT, "accept", format!("{name} service port")));
    }
    let node_ports = sp.node_port.map(|np| (proto, np)).into_iter().chain(
        sp.health_check_node_port
            .map(|hc| (kproxy_core::model::Protocol::Tcp, hc)),
    );
    for (p, np) in node_ports {
        let m = Match::new(fam)
            .then(RuleBuilder::new(fam, "").fib_local(false))
            .dport(p, np);
        out.push(m.verdict("input", NF_ACCEPT, "accept", format!("{name} node port")));
    }
}

/// eTP=Local: short-circuit pods (`nat-prerouting`) and the node (`nat-output`) to the
/// ClusterIP, then drop external traffic when no endpoint is local.
fn render_local_external(
    s: &ProxySettings,
    sp: &ServicePort,
    npa: &[IpAddr],
    out: &mut FamilyRules,
) {
    if sp.external_traffic_policy != TrafficPolicy::Local {
        return;
    }
    let fam = sp.family;
    let proto = sp.name.protocol;
    let name = sp.name.to_string();
    let nets: Vec<&IpNet> = pod_networks(&s.local_detector)
        .unwrap_or(&[])
        .iter()
        .filter(|n| IpFamily::of_net(n) == fam)
        .collect();
    let no_local = sp.local_endpoints.is_empty() && !sp.cluster_endpoints.is_empty();
    for (ip, port) in external_destinations(sp, npa) {
        let base = || Match::new(fam).addr(false, &ip).dport(proto, port);
        for net in &nets {
            out.nat_prerouting.push(base().saddr_net(net, true).dnat(
                "nat-prerouting",
                &sp.cluster_ip,
                sp.port,
                format!("{name} short-circuit pods"),
            ));
        }
        out.nat_output.push(base().mark(s.masquerade_mark()).dnat(
            "nat-output",
            &sp.cluster_ip,
            sp.port,
            format!("{name} short-circuit the node"),
        ));
        if no_local {
            out.nat_prerouting.push(base().verdict(
                "nat-prerouting",
                NF_DROP,
                "drop",
                format!("{name} no local endpoints"),
            ));
        }
    }
}

/// The addresses of a port held by kube-ipvs0.
fn vips(sp: &ServicePort) -> impl Iterator<Item = IpAddr> + '_ {
    std::iter::once(sp.cluster_ip)
        .chain(sp.external_ips.iter().copied())
        .chain(sp.load_balancer_ips.iter().copied())
}

/// What one service port contributes: its rules, the endpoint addresses that need a hairpin
/// rule and the VIPs that need a reject rule.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PortRules {
    family: IpFamily,
    rules: FamilyRules,
    hairpin: BTreeSet<IpAddr>,
    vips: BTreeSet<IpAddr>,
}

fn port_rules(s: &ProxySettings, sp: &ServicePort, npa: &[IpAddr]) -> PortRules {
    let mut rules = FamilyRules::default();
    render_services(s, sp, npa, &mut rules.services);
    render_input(sp, &mut rules.input);
    render_local_external(s, sp, npa, &mut rules);
    let hairpin = sp
        .cluster_endpoints
        .iter()
        .chain(&sp.local_endpoints)
        .map(|e| e.ip())
        .collect();
    // A VIP that is also a node address (an ExternalIP set to the node's IP) must keep the
    // node's own ports: no reject for it.
    let vips = vips(sp)
        .filter(|ip| !s.node_ips.contains(ip) && !npa.contains(ip))
        .collect();
    PortRules {
        family: sp.family,
        rules,
        hairpin,
        vips,
    }
}

/// Addresses used by several ports, counted; returns whether the set of addresses changed.
fn recount<'a>(
    counts: &mut BTreeMap<IpAddr, usize>,
    old: impl Iterator<Item = &'a IpAddr>,
    new: impl Iterator<Item = &'a IpAddr>,
) -> bool {
    // Count the new users first, so an address kept by the same port never drops to 0.
    let mut changed = false;
    for ip in new {
        let n = counts.entry(*ip).or_insert(0);
        changed |= *n == 0;
        *n += 1;
    }
    for ip in old {
        if let Some(n) = counts.get_mut(ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(ip);
                changed = true;
            }
        }
    }
    changed
}

/// The rendering kept across syncs, updated per changed service port: a partial sync costs
/// O(changed ports) unless the rules really changed.
#[derive(Debug, Clone, Default)]
pub struct Rendering {
    by_port: BTreeMap<ServicePortKey, PortRules>,
    hairpin: BTreeMap<IpAddr, usize>,
    vips: BTreeMap<IpAddr, usize>,
}

impl Rendering {
    /// Render a whole state.
    pub fn build(state: &ProxyState, node_port_addrs: &[IpAddr]) -> Rendering {
        let mut r = Rendering::default();
        for (key, sp) in &state.services {
            r.update(&state.settings, key, Some(sp), node_port_addrs);
        }
        r
    }

    /// Replace what `key` contributes; returns whether the ruleset changed.
    pub fn update(
        &mut self,
        s: &ProxySettings,
        key: &ServicePortKey,
        new: Option<&ServicePort>,
        npa: &[IpAddr],
    ) -> bool {
        let new = new.map(|sp| port_rules(s, sp, npa));
        let old = match &new {
            Some(n) => self.by_port.insert(key.clone(), n.clone()),
            None => self.by_port.remove(key),
        };
        let mut changed = old.as_ref().map(|o| &o.rules) != new.as_ref().map(|n| &n.rules);
        changed |= recount(
            &mut self.hairpin,
            old.iter().flat_map(|o| &o.hairpin),
            new.iter().flat_map(|n| &n.hairpin),
        );
        changed |= recount(
            &mut self.vips,
            old.iter().flat_map(|o| &o.vips),
            new.iter().flat_map(|n| &n.vips),
        );
        changed
    }

    /// The rules of both families.
    pub fn rules(&self, s: &ProxySettings) -> [(IpFamily, FamilyRules); 2] {
        let mut v4 = FamilyRules::default();
        let mut v6 = FamilyRules::default();
        for pr in self.by_port.values() {
            let out = if pr.family == IpFamily::V4 {
                &mut v4
            } else {
                &mut v6
            };
            let r = &pr.rules;
            out.services.extend(r.services.iter().cloned());
            out.input.extend(r.input.iter().cloned());
            out.nat_prerouting.extend(r.nat_prerouting.iter().cloned());
            out.nat_output.extend(r.nat_output.iter().cloned());
        }
        let mark = s.masquerade_mark();
        for (fam, rules) in [(IpFamily::V4, &mut v4), (IpFamily::V6, &mut v6)] {
            // Anything else to a VIP: upstream's KUBE-IPVS-FILTER REJECT.
            for ip in self.vips.keys().filter(|ip| IpFamily::of(ip) == fam) {
                let m = Match::new(fam)
                    .addr(false, ip)
                    .then(RuleBuilder::new(fam, "").ct_state_new().reject());
                rules
                    .input
                    .push(m.rule("input", format!("{ip}: not a service port")));
            }
            let mut rule = RuleBuilder::new(fam, "postrouting")
                .mark_clear(mark)
                .build();
            // mark_clear matches `& MARK == 0`: flip it to `!= 0` for "marked".
            if let Some(Expr::Cmp { op, .. }) = rule.exprs.last_mut() {
                *op = CMP_NEQ;
            }
            rule.text = format!("meta mark & {mark:#010x} != 0x00000000");
            rule.exprs.push(Expr::Masquerade);
            rule.text.push_str(" masquerade fully-random");
            rule.comment = Some("masquerade what services marked".into());
            rules.postrouting.push(rule);
            // Hairpin: an endpoint reaching itself through a service leaves with its own
            // address as source and destination; only DNAT makes that happen.
            for ip in self.hairpin.keys().filter(|ip| IpFamily::of(ip) == fam) {
                let m = Match::new(fam).addr(true, ip).addr(false, ip);
                rules
                    .postrouting
                    .push(m.masquerade("postrouting", format!("hairpin {ip}")));
            }
        }
        [(IpFamily::V4, v4), (IpFamily::V6, v6)]
    }
}

/// Render the rules of both families for `state`.
pub fn render(state: &ProxyState, node_port_addrs: &[IpAddr]) -> [(IpFamily, FamilyRules); 2] {
    Rendering::build(state, node_port_addrs).rules(&state.settings)
}

fn hook(kind: &'static str, hooknum: u32, priority: i32) -> Option<ChainHook<'static>> {
    Some(ChainHook {
        kind,
        hooknum,
        priority,
    })
}

/// The batch replacing both tables with `rules` (atomic: delete and recreate in one
/// transaction).
pub fn batch(rules: &[(IpFamily, FamilyRules)]) -> Batch {
    let mut b = Batch::new();
    for (fam, r) in rules {
        let tf: TableFamily = (*fam).into();
        b.add_table(tf, TABLE);
        b.delete_table(tf, TABLE);
        b.add_table(tf, TABLE);
        b.add_chain(tf, TABLE, "services", None);
        b.add_chain(tf, TABLE, "prerouting", hook("filter", 0, -100));
        b.add_chain(tf, TABLE, "output", hook("filter", 3, -100));
        b.add_chain(tf, TABLE, "input", hook("filter", 1, 0));
        b.add_chain(tf, TABLE, "nat-prerouting", hook("nat", 0, -99));
        b.add_chain(tf, TABLE, "nat-output", hook("nat", 3, -99));
        b.add_chain(tf, TABLE, "postrouting", hook("nat", 4, 100));
        for chain in ["prerouting", "output"] {
            b.add_rule(
                tf,
                TABLE,
                &RuleBuilder::new(*fam, chain).jump("services").build(),
            );
        }
        for rule in r
            .services
            .iter()
            .chain(&r.input)
            .chain(&r.nat_prerouting)
            .chain(&r.nat_output)
            .chain(&r.postrouting)
        {
            b.add_rule(tf, TABLE, rule);
        }
    }
    b
}

/// The nft side of the IPVS backend: a socket, the rendering, and whether it is committed.
pub struct NftPart {
    socket: Socket,
    rendering: Option<Rendering>,
    committed: bool,
}

impl std::fmt::Debug for NftPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NftPart")
            .field("committed", &self.committed)
            .finish()
    }
}

impl NftPart {
    /// Open a netfilter socket in the current network namespace.
    pub fn open() -> Result<NftPart, NetlinkError> {
        Ok(NftPart {
            socket: Socket::new()?,
            rendering: None,
            committed: false,
        })
    }

    fn commit(&mut self, s: &ProxySettings) -> Result<usize, NetlinkError> {
        self.committed = false;
        let rules = match &self.rendering {
            Some(r) => r.rules(s),
            None => return Ok(0),
        };
        let n = self.socket.commit(batch(&rules))?;
        self.committed = true;
        Ok(n)
    }

    /// Render and commit the whole state. Returns the number of messages sent.
    pub fn sync_full(
        &mut self,
        state: &ProxyState,
        node_port_addrs: &[IpAddr],
    ) -> Result<usize, NetlinkError> {
        self.rendering = Some(Rendering::build(state, node_port_addrs));
        self.commit(&state.settings)
    }

    /// Re-render the changed service ports; commit only if the ruleset changed (or the last
    /// commit failed). Returns the number of messages sent (0: nothing changed).
    pub fn sync_changes(
        &mut self,
        state: &ProxyState,
        changes: &ChangeSet,
        node_port_addrs: &[IpAddr],
    ) -> Result<usize, NetlinkError> {
        let Some(rendering) = &mut self.rendering else {
            return self.sync_full(state, node_port_addrs);
        };
        let mut changed = false;
        for key in changes.services.keys() {
            changed |= rendering.update(
                &state.settings,
                key,
                state.services.get(key),
                node_port_addrs,
            );
        }
        if changed || !self.committed {
            self.commit(&state.settings)
        } else {
            Ok(0)
        }
    }

    /// Delete both tables.
    pub fn cleanup(&mut self) -> Result<(), NetlinkError> {
        let mut b = Batch::new();
        for tf in [TableFamily::Ip, TableFamily::Ip6] {
            b.add_table(tf, TABLE);
            b.delete_table(tf, TABLE);
        }
        self.rendering = None;
        self.committed = false;
        self.socket.commit(b).map(|_| ())
    }
}
