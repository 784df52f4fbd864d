//! The nftables part of IPVS mode, through kproxy-nft's low-level batch API: what upstream
//! does with iptables and ipset next to IPVS.
//!
//! One table per family, `ip kproxy-ipvs` / `ip6 kproxy-ipvs`, with fixed rules that look up
//! named sets and maps (`nft_sets`); services only add elements:
//! - `prerouting` / `output` (filter, -100, before IPVS) jump to `services`: masquerade marks
//!   for ClusterIPs from outside the pod networks (`@cluster-masq`) and eTP=Cluster external
//!   destinations (`@external-masq`), then per-service loadBalancerSourceRanges rules
//!   (`accept` each range, and the LB IPs themselves when a node IP is inside a range, then
//!   `drop`);
//! - `input` (filter, 0): `@service-ports` and `@node-ports` accepted, then `ct state new
//!   reject` for anything else to a VIP (upstream's `KUBE-IPVS-FILTER`);
//! - `nat-prerouting` (nat, -99): pods to eTP=Local external destinations DNAT to the
//!   ClusterIP (`@short-circuit`), then `@no-local-endpoints` dropped;
//! - `nat-output` (nat, -99, before IPVS's LOCAL_OUT request hook at -98): the node to those
//!   destinations, marked for masquerade and DNAT to the ClusterIP;
//! - `postrouting` (nat, 100): `masquerade` marked packets and `@hairpin`.
//!
//! Services without any endpoint need no rule: a virtual server without real servers answers
//! with ICMP port unreachable by itself (on every destination, the NodePort included).
//!
//! The rendering is kept per service port and updated for changed ports only; element-only
//! changes are committed as element adds/deletes, rule changes replace the table atomically.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use kproxy_core::model::{
    ChangeSet, IpFamily, LocalDetector, Protocol, ProxySettings, ProxyState, ServicePort,
    ServicePortKey, TrafficPolicy,
};
use kproxy_nft::lowlevel::{
    ChainHook, Expr, NetlinkError, CMP_NEQ, NetlinkKernel, NftKernel, RawElement, Rule, RuleBuilder,
    SetElement, TableFamily, Transaction,
};

use crate::nft_match::{Match, NF_ACCEPT, NF_DROP};
use crate::nft_sets::{
    element, Part, SetSpec, ALL, CLUSTER_MASQ, EXTERNAL_MASQ, HAIRPIN, NODE_PORTS, NO_LOCAL,
    SERVICE_PORTS, SHORT_CIRCUIT, VIPS,
};

/// Name of the table (in both families).
pub const TABLE: &str = "kproxy-ipvs";


/// The rendered ruleset of one family: rules in order, by chain, and set elements.
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
    /// Elements by set name.
    pub elements: BTreeMap<&'static str, Vec<RawElement>>,
}

fn pod_networks(detector: &LocalDetector) -> Option<&[IpNet]> {
    match detector {
        LocalDetector::ClusterCidrs(n) | LocalDetector::NodeCidrs(n) => Some(n),
        _ => None,
    }
}

fn pod_nets(s: &ProxySettings, fam: IpFamily) -> Vec<&IpNet> {
    pod_networks(&s.local_detector)
        .unwrap_or(&[])
        .iter()
        .filter(|n| IpFamily::of_net(n) == fam)
        .collect()
}

/// A set element: set, key, map value.
type Elem = (&'static str, Vec<Part>, Option<Vec<Part>>);

fn dpt(ip: IpAddr, proto: Protocol, port: u16) -> Vec<Part> {
    vec![Part::Addr(ip), Part::Proto(proto), Part::Port(port)]
}

/// loadBalancerSourceRanges: rules per LB IP (only services that have ranges).
fn render_source_ranges(s: &ProxySettings, sp: &ServicePort, out: &mut Vec<Rule>) {
    if sp.load_balancer_source_ranges.is_empty() {
        return;
    }
    let fam = sp.family;
    let proto = sp.name.protocol;
    let name = sp.name.to_string();
    let ranges: Vec<&IpNet> = sp
        .load_balancer_source_ranges
        .iter()
        .filter(|r| IpFamily::of_net(r) == fam)
        .collect();
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

/// The addresses of a port held by kube-ipvs0.
fn vips(sp: &ServicePort) -> impl Iterator<Item = IpAddr> + '_ {
    std::iter::once(sp.cluster_ip)
        .chain(sp.external_ips.iter().copied())
        .chain(sp.load_balancer_ips.iter().copied())
}

/// The set elements of one port.
fn port_elements(s: &ProxySettings, sp: &ServicePort, npa: &[IpAddr]) -> BTreeSet<Elem> {
    let proto = sp.name.protocol;
    let mut out = BTreeSet::new();
    let mut add = |set: &SetSpec, key: Vec<Part>, value: Option<Vec<Part>>| {
        out.insert((set.name, key, value));
    };
    add(&CLUSTER_MASQ, dpt(sp.cluster_ip, proto, sp.port), None);
    for vip in vips(sp) {
        add(&SERVICE_PORTS, dpt(vip, proto, sp.port), None);
        // A VIP that is also a node address (an ExternalIP set to the node's IP) must keep
        // the node's own ports: no reject for it.
        if !s.node_ips.contains(&vip) && !npa.contains(&vip) {
            add(&VIPS, vec![Part::Addr(vip)], None);
        }
    }
    if let Some(np) = sp.node_port {
        add(&NODE_PORTS, vec![Part::Proto(proto), Part::Port(np)], None);
    }
    if let Some(hc) = sp.health_check_node_port {
        add(
            &NODE_PORTS,
            vec![Part::Proto(Protocol::Tcp), Part::Port(hc)],
            None,
        );
    }
    let local = sp.external_traffic_policy == TrafficPolicy::Local;
    let no_local = sp.local_endpoints.is_empty() && !sp.cluster_endpoints.is_empty();
    for (ip, port) in external_destinations(sp, npa) {
        if !local {
            add(&EXTERNAL_MASQ, dpt(ip, proto, port), None);
            continue;
        }
        let target = vec![Part::Addr(sp.cluster_ip), Part::Port(sp.port)];
        add(&SHORT_CIRCUIT, dpt(ip, proto, port), Some(target));
        if no_local {
            add(&NO_LOCAL, dpt(ip, proto, port), None);
        }
    }
    for ep in sp.cluster_endpoints.iter().chain(&sp.local_endpoints) {
        add(
            &HAIRPIN,
            vec![Part::Addr(ep.ip()), Part::Addr(ep.ip())],
            None,
        );
    }
    out
}

/// The rules that do not depend on services (they look up the sets).
fn static_rules(s: &ProxySettings, fam: IpFamily, out: &mut FamilyRules) {
    let mark = s.masquerade_mark();
    let dpt_in = |set: &SetSpec| RuleBuilder::new(fam, "").in_named_set(set.key, set.name, false);
    // ClusterIPs: masquerade what does not come from a pod (every source: masqueradeAll).
    let nets = pod_nets(s, fam);
    if s.masquerade_all || !nets.is_empty() {
        let m = if s.masquerade_all {
            Match::new(fam)
        } else {
            nets.iter()
                .fold(Match::new(fam), |m, n| m.saddr_net(n, false))
        };
        out.services.push(
            m.then(dpt_in(&CLUSTER_MASQ))
                .mark(mark)
                .rule("services", "cluster IPs from outside the pods".into()),
        );
    }
    out.services.push(
        Match::new(fam)
            .then(dpt_in(&EXTERNAL_MASQ))
            .mark(mark)
            .rule("services", "external destinations, eTP=Cluster".into()),
    );
    out.input
        .push(Match::new(fam).then(dpt_in(&SERVICE_PORTS)).verdict(
            "input",
            NF_ACCEPT,
            "accept",
            "service ports of the VIPs".into(),
        ));
    out.input.push(
        Match::new(fam)
            .then(RuleBuilder::new(fam, "").fib_local(false))
            .then(dpt_in(&NODE_PORTS))
            .verdict("input", NF_ACCEPT, "accept", "node ports".into()),
    );
    out.input.push(
        Match::new(fam)
            .then(dpt_in(&VIPS).ct_state_new().reject())
            .rule(
                "input",
                "VIP ports that are no service port (KUBE-IPVS-FILTER)".into(),
            ),
    );
    for net in &nets {
        out.nat_prerouting.push(
            Match::new(fam)
                .saddr_net(net, true)
                .dnat_map(SHORT_CIRCUIT.key, SHORT_CIRCUIT.name, None)
                .rule("nat-prerouting", "eTP=Local: short-circuit pods".into()),
        );
    }
    out.nat_prerouting
        .push(Match::new(fam).then(dpt_in(&NO_LOCAL)).verdict(
            "nat-prerouting",
            NF_DROP,
            "drop",
            "eTP=Local without local endpoints".into(),
        ));
    out.nat_output.push(
        Match::new(fam)
            .dnat_map(SHORT_CIRCUIT.key, SHORT_CIRCUIT.name, Some(mark))
            .rule("nat-output", "eTP=Local: short-circuit the node".into()),
    );
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
    out.postrouting.push(rule);
    // Hairpin: an endpoint reaching itself through a service leaves with its own address as
    // source and destination; only DNAT makes that happen.
    out.postrouting.push(
        Match::new(fam)
            .then(RuleBuilder::new(fam, "").in_named_set(HAIRPIN.key, HAIRPIN.name, false))
            .masquerade("postrouting", "hairpin".into()),
    );
}

/// What one service port contributes: its own rules (source ranges) and set elements.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PortRules {
    family: IpFamily,
    services: Vec<Rule>,
    elements: BTreeSet<Elem>,
}

fn port_rules(s: &ProxySettings, sp: &ServicePort, npa: &[IpAddr]) -> PortRules {
    let mut services = Vec::new();
    render_source_ranges(s, sp, &mut services);
    PortRules {
        family: sp.family,
        services,
        elements: port_elements(s, sp, npa),
    }
}

/// An element change not yet committed: family, element, added (else deleted).
type Pending = (IpFamily, Elem, bool);

/// The rendering kept across syncs, updated per changed service port: a partial sync costs
/// O(changed ports), and is committed as element adds/deletes unless rules changed.
#[derive(Debug, Clone, Default)]
pub struct Rendering {
    by_port: BTreeMap<ServicePortKey, PortRules>,
    /// Elements with the number of ports that want them.
    elements: BTreeMap<(IpFamily, Elem), usize>,
    pending: Vec<Pending>,
    rules_changed: bool,
}

impl Rendering {
    /// Render a whole state.
    pub fn build(state: &ProxyState, node_port_addrs: &[IpAddr]) -> Rendering {
        let mut r = Rendering::default();
        for (key, sp) in &state.services {
            r.update(&state.settings, key, Some(sp), node_port_addrs);
        }
        r.pending.clear();
        r.rules_changed = true;
        r
    }

    /// Replace what `key` contributes; returns whether the ruleset or an element changed.
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
        let rules_changed = old.as_ref().map(|o| &o.services) != new.as_ref().map(|n| &n.services);
        self.rules_changed |= rules_changed;
        let before = self.pending.len();
        // New users first, so an element kept by the same port never drops to 0.
        for (fam, e) in new
            .iter()
            .flat_map(|n| n.elements.iter().map(|e| (n.family, e)))
        {
            let n = self.elements.entry((fam, e.clone())).or_insert(0);
            if *n == 0 {
                self.pending.push((fam, e.clone(), true));
            }
            *n += 1;
        }
        for (fam, e) in old
            .iter()
            .flat_map(|o| o.elements.iter().map(|e| (o.family, e)))
        {
            let k = (fam, e.clone());
            if let Some(n) = self.elements.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    self.elements.remove(&k);
                    self.pending.push((fam, e.clone(), false));
                }
            }
        }
        rules_changed || self.pending.len() > before
    }

    /// The rules and elements of both families.
    pub fn rules(&self, s: &ProxySettings) -> [(IpFamily, FamilyRules); 2] {
        let mut v4 = FamilyRules::default();
        let mut v6 = FamilyRules::default();
        static_rules(s, IpFamily::V4, &mut v4);
        static_rules(s, IpFamily::V6, &mut v6);
        // Per-port rules (source ranges) after the masquerade marks: their `accept` ends
        // the chain, so the marks must already be set.
        for pr in self.by_port.values() {
            let out = if pr.family == IpFamily::V4 {
                &mut v4
            } else {
                &mut v6
            };
            out.services.extend(pr.services.iter().cloned());
        }
        for (fam, (set, key, value)) in self.elements.keys() {
            let out = if *fam == IpFamily::V4 {
                &mut v4
            } else {
                &mut v6
            };
            out.elements
                .entry(set)
                .or_default()
                .push(element(key, value.as_deref()));
        }
        [(IpFamily::V4, v4), (IpFamily::V6, v6)]
    }

    /// The element changes since the last [`Rendering::take_pending`], and whether rules
    /// changed (then the whole table must be replaced).
    pub(crate) fn take_pending(&mut self) -> (Vec<Pending>, bool) {
        let changed = std::mem::take(&mut self.rules_changed);
        (std::mem::take(&mut self.pending), changed)
    }
}

/// Render the rules of both families for `state`.
pub fn render(state: &ProxyState, node_port_addrs: &[IpAddr]) -> [(IpFamily, FamilyRules); 2] {
    Rendering::build(state, node_port_addrs).rules(&state.settings)
}

fn hook(kind: &'static str, hooknum: u32, priority: i32) -> Option<ChainHook> {
    Some(ChainHook {
        kind,
        hooknum,
        priority,
    })
}

/// Elements per netlink message.
const MAX_MESSAGE_BYTES: usize = 48 * 1024;

/// The transaction replacing both tables with `rules` (atomic: delete and recreate).
pub fn batch(rules: &[(IpFamily, FamilyRules)]) -> Transaction {
    let mut b = Transaction::new();
    for (fam, r) in rules {
        let tf: TableFamily = (*fam).into();
        b.add_table(tf, TABLE);
        b.delete_table(tf, TABLE);
        b.add_table(tf, TABLE);
        for set in ALL {
            b.add_set_raw(tf, TABLE, set.name, &set.raw(*fam));
        }
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
                RuleBuilder::new(*fam, chain).jump("services").build(),
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
            b.add_rule(tf, TABLE, rule.clone());
        }
        for (set, els) in &r.elements {
            let els = els.iter().cloned().map(SetElement::from).collect();
            b.add_elements(tf, TABLE, set, els);
        }
    }
    b
}

/// The transaction of element changes: deletes, then adds (a changed map value is both).
fn element_batch(pending: &[Pending]) -> Transaction {
    let mut b = Transaction::new();
    for add in [false, true] {
        for (fam, (set, key, value), _) in pending.iter().filter(|p| p.2 == add) {
            let el = vec![SetElement::from(element(key, value.as_deref()))];
            let tf: TableFamily = (*fam).into();
            if add {
                b.add_elements(tf, TABLE, set, el);
            } else {
                b.delete_elements(tf, TABLE, set, el);
            }
        }
    }
    b
}

/// The nft side of the IPVS backend: the kernel edge (netlink, or a fake in tests), the
/// rendering, and whether it is committed.
pub struct NftPart {
    socket: Box<dyn NftKernel>,
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
        Ok(NftPart::with_kernel(Box::new(NetlinkKernel::open(
            MAX_MESSAGE_BYTES,
        )?)))
    }

    /// The netlink port id its commits go out on (`None` on a fake kernel edge): what a
    /// [`kproxy_nft::watch::Watch`] of [`TABLE`] ignores.
    pub fn commit_port(&self) -> Option<u32> {
        self.socket.port_id()
    }

    /// The nft side on another kernel edge, e.g. a [`kproxy_nft::lowlevel::FakeKernel`].
    pub fn with_kernel(kernel: Box<dyn NftKernel>) -> NftPart {
        NftPart {
            socket: kernel,
            rendering: None,
            committed: false,
        }
    }

    fn commit(&mut self, s: &ProxySettings) -> Result<usize, NetlinkError> {
        let Some(r) = &mut self.rendering else {
            return Ok(0);
        };
        let (pending, rules_changed) = r.take_pending();
        let b = if rules_changed || !self.committed {
            batch(&r.rules(s))
        } else if pending.is_empty() {
            return Ok(0);
        } else {
            // Only elements changed: a partial update in one transaction.
            element_batch(&pending)
        };
        // A failed commit leaves the kernel unknown: the next commit replaces the table.
        self.committed = false;
        let n = self.socket.commit(&b)?;
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
        let mut b = Transaction::new();
        for tf in [TableFamily::Ip, TableFamily::Ip6] {
            b.add_table(tf, TABLE);
            b.delete_table(tf, TABLE);
        }
        self.rendering = None;
        self.committed = false;
        self.socket.commit(&b).map(|_| ())
    }
}
