//! The nftables part of IPVS mode, through kproxy-nft's low-level batch API: what upstream
//! does with iptables and ipset next to IPVS.
//!
//! One table per family, `ip kproxy-ipvs` / `ip6 kproxy-ipvs`:
//! - chain `prerouting` (filter, hook prerouting, priority -100) and `output` (filter, hook
//!   output, priority -100): both jump to `services`, i.e. before IPVS sees the packet
//!   (IPVS hooks LOCAL_IN at 99 and LOCAL_OUT at -99);
//! - chain `services`: per destination, `meta mark set meta mark | MASQ` for
//!   - a ClusterIP, from sources outside the pod networks (`detectLocal`), or always with
//!     `masqueradeAll`;
//!   - an ExternalIP, LoadBalancer IP or NodePort address with externalTrafficPolicy Cluster
//!     (eTP=Local keeps the client address and is not marked);
//!   - loadBalancerSourceRanges: `accept` from each range, then `drop` for everything else
//!     to that LoadBalancer IP:port;
//! - chain `postrouting` (nat, hook postrouting, priority 100): `masquerade` marked packets,
//!   and hairpin: an endpoint reaching itself through a service (`saddr == daddr == endpoint`).
//!
//! Services without endpoints need no rule: a virtual server without real servers answers
//! with ICMP port unreachable by itself.
//!
//! Rules are per destination, not sets (kproxy-nft's rule builder names only its own sets).
//! The rendering is kept per service port and updated for changed ports only; the table is
//! replaced atomically in one batch only when the rules changed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use kproxy_core::model::{
    ChangeSet, IpFamily, LocalDetector, ProxySettings, ProxyState, ServicePort, ServicePortKey,
    TrafficPolicy,
};
use kproxy_nft::netlink::{Batch, ChainHook, NetlinkError, Socket, TableFamily};
use kproxy_nft::stmt::{Expr, Rule, RuleBuilder};

/// Name of the table (in both families).
pub const TABLE: &str = "kproxy-ipvs";

const NETWORK: u32 = 1;
const TRANSPORT: u32 = 2;
const CMP_EQ: u32 = 0;
const CMP_NEQ: u32 = 1;
const REG: u32 = 1;

/// The rendered ruleset of one family: rules in order, by chain.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FamilyRules {
    /// Rules of `services`.
    pub services: Vec<Rule>,
    /// Rules of `postrouting`.
    pub postrouting: Vec<Rule>,
}

/// Builds a rule matching a destination, statement by statement.
struct Match {
    family: IpFamily,
    exprs: Vec<Expr>,
    text: Vec<String>,
}

fn word(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "ip",
        IpFamily::V6 => "ip6",
    }
}

fn octets(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

impl Match {
    fn new(family: IpFamily) -> Match {
        Match {
            family,
            exprs: Vec::new(),
            text: Vec::new(),
        }
    }

    fn addr(mut self, source: bool, ip: &IpAddr) -> Match {
        let (offset, len) = match (self.family, source) {
            (IpFamily::V4, true) => (12, 4),
            (IpFamily::V4, false) => (16, 4),
            (IpFamily::V6, true) => (8, 16),
            (IpFamily::V6, false) => (24, 16),
        };
        self.exprs.push(Expr::Payload {
            base: NETWORK,
            offset,
            len,
            dreg: REG,
        });
        self.exprs.push(Expr::Cmp {
            op: CMP_EQ,
            sreg: REG,
            data: octets(ip),
        });
        self.text.push(format!(
            "{} {} {ip}",
            word(self.family),
            if source { "saddr" } else { "daddr" }
        ));
        self
    }

    fn saddr_not_in(mut self, net: &IpNet) -> Match {
        let (offset, len) = if self.family == IpFamily::V4 {
            (12, 4)
        } else {
            (8, 16)
        };
        self.exprs.push(Expr::Payload {
            base: NETWORK,
            offset,
            len,
            dreg: REG,
        });
        self.exprs.push(Expr::Bitwise {
            sreg: REG,
            dreg: REG,
            mask: octets(&net.netmask()),
            xor: vec![0; len as usize],
        });
        self.exprs.push(Expr::Cmp {
            op: CMP_NEQ,
            sreg: REG,
            data: octets(&net.network()),
        });
        self.text
            .push(format!("{} saddr != {net}", word(self.family)));
        self
    }

    fn saddr_in(mut self, net: &IpNet) -> Match {
        self = self.saddr_not_in(net);
        if let Some(Expr::Cmp { op, .. }) = self.exprs.last_mut() {
            *op = CMP_EQ;
        }
        if let Some(t) = self.text.last_mut() {
            *t = format!("{} saddr {net}", word(self.family));
        }
        self
    }

    fn dport(mut self, proto: kproxy_core::model::Protocol, port: u16) -> Match {
        // `meta l4proto P th dport N`, as kproxy-nft's builder writes the protocol part.
        let l4 = RuleBuilder::new(self.family, "").l4proto(proto).build();
        self.exprs.extend(l4.exprs);
        self.exprs.push(Expr::Payload {
            base: TRANSPORT,
            offset: 2,
            len: 2,
            dreg: REG,
        });
        self.exprs.push(Expr::Cmp {
            op: CMP_EQ,
            sreg: REG,
            data: port.to_be_bytes().to_vec(),
        });
        self.text.push(format!("{l} th dport {port}", l = l4.text));
        self
    }

    fn mark_set(self, chain: &str, mark: u32, comment: String) -> Rule {
        let tail = RuleBuilder::new(self.family, chain).mark_set(mark).build();
        self.finish(chain, tail, comment)
    }

    fn verdict(mut self, chain: &str, code: i32, word: &str, comment: String) -> Rule {
        self.exprs.push(Expr::Verdict { code, chain: None });
        self.text.push(word.to_string());
        Rule {
            chain: chain.into(),
            text: self.text.join(" "),
            exprs: self.exprs,
            comment: Some(comment),
        }
    }

    fn masquerade(mut self, chain: &str, comment: String) -> Rule {
        self.exprs.push(Expr::Masquerade);
        self.text.push("masquerade fully-random".into());
        Rule {
            chain: chain.into(),
            text: self.text.join(" "),
            exprs: self.exprs,
            comment: Some(comment),
        }
    }

    fn finish(mut self, chain: &str, tail: Rule, comment: String) -> Rule {
        self.exprs.extend(tail.exprs);
        self.text.push(tail.text);
        Rule {
            chain: chain.into(),
            text: self.text.join(" "),
            exprs: self.exprs,
            comment: Some(comment),
        }
    }
}

const NF_ACCEPT: i32 = 1;
const NF_DROP: i32 = 0;

fn pod_networks(detector: &LocalDetector) -> Option<&[IpNet]> {
    match detector {
        LocalDetector::ClusterCidrs(n) | LocalDetector::NodeCidrs(n) => Some(n),
        _ => None,
    }
}

fn render_port(
    s: &ProxySettings,
    sp: &ServicePort,
    node_port_addrs: &[IpAddr],
    out: &mut FamilyRules,
) {
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
        out.services.push(cip().mark_set(
            "services",
            mark,
            format!("{name} cluster IP (masqueradeAll)"),
        ));
    } else if let Some(nets) = pod_networks(&s.local_detector) {
        let nets: Vec<&IpNet> = nets.iter().filter(|n| IpFamily::of_net(n) == fam).collect();
        if !nets.is_empty() {
            let m = nets.iter().fold(cip(), |m, n| m.saddr_not_in(n));
            out.services.push(m.mark_set(
                "services",
                mark,
                format!("{name} cluster IP from outside the pods"),
            ));
        }
    }
    // External destinations: masquerade unless eTP=Local keeps the client address.
    if sp.external_traffic_policy == TrafficPolicy::Cluster {
        for ip in sp.external_ips.iter().chain(&sp.load_balancer_ips) {
            let m = Match::new(fam).addr(false, ip).dport(proto, sp.port);
            out.services
                .push(m.mark_set("services", mark, format!("{name} external IP")));
        }
        if let Some(np) = sp.node_port {
            for ip in node_port_addrs.iter().filter(|ip| IpFamily::of(ip) == fam) {
                let m = Match::new(fam).addr(false, ip).dport(proto, np);
                out.services
                    .push(m.mark_set("services", mark, format!("{name} node port")));
            }
        }
    }
    // loadBalancerSourceRanges: these sources only (the NodePort is not filtered).
    if !sp.load_balancer_source_ranges.is_empty() {
        for lb in &sp.load_balancer_ips {
            let base = || Match::new(fam).addr(false, lb).dport(proto, sp.port);
            for range in sp
                .load_balancer_source_ranges
                .iter()
                .filter(|r| IpFamily::of_net(r) == fam)
            {
                out.services.push(base().saddr_in(range).verdict(
                    "services",
                    NF_ACCEPT,
                    "accept",
                    format!("{name} allowed source"),
                ));
            }
            out.services.push(base().verdict(
                "services",
                NF_DROP,
                "drop",
                format!("{name} source not allowed"),
            ));
        }
    }
}

/// What one service port contributes: its `services` rules and the endpoint addresses that
/// need a hairpin rule.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PortRules {
    family: IpFamily,
    services: Vec<Rule>,
    hairpin: BTreeSet<IpAddr>,
}

fn port_rules(s: &ProxySettings, sp: &ServicePort, node_port_addrs: &[IpAddr]) -> PortRules {
    let mut out = FamilyRules::default();
    render_port(s, sp, node_port_addrs, &mut out);
    let hairpin = sp
        .cluster_endpoints
        .iter()
        .chain(&sp.local_endpoints)
        .map(|e| e.ip())
        .collect();
    PortRules {
        family: sp.family,
        services: out.services,
        hairpin,
    }
}

/// The rendering kept across syncs, updated per changed service port: a partial sync costs
/// O(changed ports) unless the rules really changed.
#[derive(Debug, Clone, Default)]
pub struct Rendering {
    by_port: BTreeMap<ServicePortKey, PortRules>,
    hairpin: BTreeMap<IpAddr, usize>,
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
        let mut changed = old.as_ref().map(|o| &o.services) != new.as_ref().map(|n| &n.services);
        for ip in old.iter().flat_map(|o| &o.hairpin) {
            if let Some(n) = self.hairpin.get_mut(ip) {
                *n -= 1;
                if *n == 0 {
                    self.hairpin.remove(ip);
                    changed = true;
                }
            }
        }
        for ip in new.iter().flat_map(|n| &n.hairpin) {
            let n = self.hairpin.entry(*ip).or_insert(0);
            changed |= *n == 0;
            *n += 1;
        }
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
            out.services.extend(pr.services.iter().cloned());
        }
        let mark = s.masquerade_mark();
        for (fam, rules) in [(IpFamily::V4, &mut v4), (IpFamily::V6, &mut v6)] {
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
        b.add_chain(tf, TABLE, "postrouting", hook("nat", 4, 100));
        for chain in ["prerouting", "output"] {
            b.add_rule(
                tf,
                TABLE,
                &RuleBuilder::new(*fam, chain).jump("services").build(),
            );
        }
        for rule in r.services.iter().chain(&r.postrouting) {
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
