//! The fixed part of each table: base chains, regular chains and their rules, and the rules
//! of the per-endpoint-count chains. None of it grows with services; it depends only on the
//! node-wide settings (masquerade bit, masqueradeAll, local detector).

use kproxy_core::model::{IpFamily, LocalDetector, ProxySettings, Protocol};

use crate::plan::{ChainRef, LbKind, SetId};
use crate::stmt::{Field, Rule, RuleBuilder};

/// A base chain's hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hook {
    /// `filter` or `nat`.
    pub kind: &'static str,
    /// `prerouting`, `input`, `forward`, `output`, `postrouting`.
    pub hook: &'static str,
    /// Priority.
    pub priority: i32,
}

impl Hook {
    /// `NF_INET_*` hook number.
    pub fn number(&self) -> u32 {
        match self.hook {
            "prerouting" => 0,
            "input" => 1,
            "forward" => 2,
            "output" => 3,
            _ => 4,
        }
    }
}

/// A chain declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainDecl {
    /// Name.
    pub name: String,
    /// Hook, for base chains.
    pub hook: Option<Hook>,
}

/// The fixed chains and rules of one family's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skeleton {
    /// Chains, base chains first.
    pub chains: Vec<ChainDecl>,
    /// Rules, in order.
    pub rules: Vec<Rule>,
}

const BASE: [(&str, &str, &str, i32); 8] = [
    ("filter-prerouting", "filter", "prerouting", -110),
    ("filter-input", "filter", "input", -110),
    ("filter-forward", "filter", "forward", -110),
    ("filter-output", "filter", "output", -110),
    ("filter-output-post-dnat", "filter", "output", -90),
    ("nat-prerouting", "nat", "prerouting", -100),
    ("nat-output", "nat", "output", -100),
    ("nat-postrouting", "nat", "postrouting", 100),
];

const REGULAR: [&str; 7] = [
    "firewall-check",
    "service-endpoints-check",
    "nodeport-endpoints-check",
    "cluster-ips-check",
    "reject-chain",
    "services",
    "masquerading",
];

const PROTOCOLS: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

/// Builds the skeleton of one family's table.
pub fn skeleton(family: IpFamily, settings: &ProxySettings) -> Skeleton {
    let mut chains: Vec<ChainDecl> = BASE
        .iter()
        .map(|(name, kind, hook, priority)| ChainDecl {
            name: (*name).into(),
            hook: Some(Hook { kind, hook, priority: *priority }),
        })
        .collect();
    chains.extend(REGULAR.iter().map(|n| ChainDecl { name: (*n).into(), hook: None }));
    let r = |chain: &str| RuleBuilder::new(family, chain);
    let dest = [Field::Daddr, Field::L4proto, Field::Dport];
    let port = [Field::L4proto, Field::Dport];
    let mark = settings.masquerade_mark();
    let mut rules = vec![
        r("filter-prerouting").ct_state_new().jump("firewall-check").build(),
        r("filter-input").ct_state_new().jump("nodeport-endpoints-check").build(),
        r("filter-input").ct_state_new().jump("service-endpoints-check").build(),
        r("filter-forward").ct_state_new().jump("service-endpoints-check").build(),
        r("filter-forward").ct_state_new().jump("cluster-ips-check").build(),
        r("filter-output").ct_state_new().jump("service-endpoints-check").build(),
        r("filter-output").ct_state_new().jump("firewall-check").build(),
        r("filter-output-post-dnat").ct_state_new().jump("cluster-ips-check").build(),
        r("nat-prerouting").jump("services").build(),
        r("nat-output").jump("services").build(),
        r("nat-postrouting").jump("masquerading").build(),
        r("firewall-check")
            .in_set(&dest, SetId::FirewallIps, false)
            .in_set(&[Field::Daddr, Field::L4proto, Field::Dport, Field::Saddr], SetId::FirewallAllow, true)
            .drop_()
            .comment("loadBalancerSourceRanges")
            .build(),
        r("service-endpoints-check").vmap(&dest, SetId::NoEndpointServices).build(),
        r("nodeport-endpoints-check")
            .daddr_not_loopback()
            .in_set(&[Field::Daddr], SetId::NodeportIps, false)
            .vmap(&port, SetId::NoEndpointNodeports)
            .build(),
        r("cluster-ips-check")
            .in_set(&[Field::Daddr], SetId::ClusterIps, false)
            .reject()
            .comment("undefined port of a ClusterIP")
            .build(),
        r("cluster-ips-check")
            .in_set(&[Field::Daddr], SetId::ServiceCidrs, false)
            .drop_()
            .comment("unallocated ServiceCIDR address")
            .build(),
        r("reject-chain").reject().build(),
        r("services").vmap(&dest, SetId::ServiceIps).build(),
        r("services")
            .fib_local(false)
            .daddr_not_loopback()
            .in_set(&[Field::Daddr], SetId::NodeportIps, false)
            .vmap(&port, SetId::ServiceNodeports)
            .build(),
    ];
    if SetId::Affinity.exists_in(family) {
        for p in PROTOCOLS {
            rules.push(
                r("masquerading")
                    .ct_status_dnat()
                    .l4proto(p)
                    .vmap(&[Field::CtOrigDaddr, Field::L4proto, Field::CtOrigProtoDst], SetId::AffinityServices)
                    .build(),
            );
        }
        // NodePorts: DNATed, not to a service IP (the only other DNAT path), to a NodePort
        // address. (`!= @service-ips` would be exact, but a lookup binds a verdict map to
        // postrouting, where the kernel refuses its `dnat` chains.)
        for p in PROTOCOLS {
            rules.push(
                r("masquerading")
                    .ct_status_dnat()
                    .l4proto(p)
                    .in_set(&[Field::CtOrigDaddr], SetId::ClusterIps, true)
                    .in_set(&[Field::CtOrigDaddr], SetId::ExternalIps, true)
                    .in_set(&[Field::CtOrigDaddr], SetId::NodeportIps, false)
                    .vmap(&[Field::L4proto, Field::CtOrigProtoDst], SetId::AffinityNodeports)
                    .build(),
            );
        }
    }
    rules.extend([
        r("masquerading")
            .ct_status_dnat()
            .in_set(&[Field::Saddr, Field::Daddr], SetId::Hairpin, false)
            .masquerade()
            .comment("hairpin")
            .build(),
        r("masquerading").mark_clear(mark).ret().build(),
        r("masquerading").mark_toggle(mark).build(),
        r("masquerading").masquerade().build(),
    ]);
    Skeleton { chains, rules }
}

/// The "is this a pod" match of the local detector, if any.
fn pod_source(b: RuleBuilder, detector: &LocalDetector, invert: bool) -> Option<RuleBuilder> {
    match detector {
        LocalDetector::None => None,
        LocalDetector::ClusterCidrs(c) | LocalDetector::NodeCidrs(c) if c.is_empty() => None,
        LocalDetector::ClusterCidrs(_) | LocalDetector::NodeCidrs(_) => {
            Some(b.in_set(&[Field::Saddr], SetId::PodCidrs, invert))
        }
        LocalDetector::BridgeInterface(name) => Some(b.iifname(name, invert)),
        LocalDetector::InterfaceNamePrefix(prefix) => Some(b.iifname(&format!("{prefix}*"), invert)),
    }
}

/// The rules of a chain created on demand.
pub fn dynamic_rules(family: IpFamily, chain: ChainRef, settings: &ProxySettings) -> Vec<Rule> {
    let name = chain.name();
    let r = || RuleBuilder::new(family, name.clone());
    let mark = settings.masquerade_mark();
    let dest = [Field::Daddr, Field::L4proto, Field::Dport];
    let port = [Field::L4proto, Field::Dport];
    let mut rules = Vec::new();
    let affinity = |rules: &mut Vec<Rule>, nodeport: bool| {
        if nodeport {
            rules.push(r().dnat_map(&[Field::Saddr, Field::L4proto, Field::Dport], SetId::NodeportAffinity).build());
        } else {
            rules.push(r().dnat_map(&[Field::Saddr, Field::Daddr, Field::L4proto, Field::Dport], SetId::Affinity).build());
        }
    };
    let short_circuit = |rules: &mut Vec<Rule>, fields: &[Field], set: SetId| {
        if let Some(b) = pod_source(r(), &settings.local_detector, false) {
            rules.push(b.vmap(fields, set).comment("short-circuit pod traffic").build());
        }
        rules.push(r().fib_local(true).mark_set(mark).vmap(fields, set).comment("short-circuit node traffic").build());
    };
    match chain {
        ChainRef::Reject => {}
        ChainRef::Affinity(t) | ChainRef::NodeportAffinity(t) => {
            let (key, set) = match chain {
                ChainRef::Affinity(_) => {
                    (&[Field::Saddr, Field::CtOrigDaddr, Field::L4proto, Field::CtOrigProtoDst][..], SetId::Affinity)
                }
                _ => (&[Field::Saddr, Field::L4proto, Field::CtOrigProtoDst][..], SetId::NodeportAffinity),
            };
            for p in PROTOCOLS {
                // `ct reply proto-src`, not `th dport`: nft then keeps `meta l4proto P` in
                // its listing, which reloads as is.
                rules.push(r().l4proto(p).update_map(key, &[Field::Daddr, Field::CtReplyProtoSrc], set, t).build());
            }
        }
        ChainRef::Lb(kind, n) => {
            let slot = |f: &[Field]| {
                let mut v = f.to_vec();
                v.push(Field::Numgen(n));
                v
            };
            match kind {
                LbKind::Cluster | LbKind::Local => {
                    if settings.masquerade_all {
                        // As upstream's service chain (`ip daddr <ClusterIP> ... jump
                        // mark-for-masquerade`): only traffic to a ClusterIP. Pods whose
                        // traffic to an eTP=Local external IP was short-circuited here keep
                        // their source address.
                        let to_cluster_ip = r().in_set(&[Field::Daddr], SetId::ClusterIps, false);
                        rules.push(to_cluster_ip.mark_set(mark).comment("masqueradeAll").build());
                    } else if let Some(b) = pod_source(r(), &settings.local_detector, true) {
                        rules.push(b.mark_set(mark).comment("from outside the cluster").build());
                    }
                }
                LbKind::External | LbKind::Nodeport => rules.push(r().mark_set(mark).build()),
                LbKind::ExternalLocal => short_circuit(&mut rules, &dest, SetId::ExternalShortCircuit),
                LbKind::NodeportLocal => short_circuit(&mut rules, &port, SetId::NodeportShortCircuit),
                LbKind::NodeportDirect => {}
            }
            affinity(&mut rules, matches!(kind, LbKind::Nodeport | LbKind::NodeportLocal | LbKind::NodeportDirect));
            let (fields, map) = match kind {
                LbKind::Cluster | LbKind::External => (slot(&dest), SetId::ClusterBackends),
                LbKind::Local | LbKind::ExternalLocal => (slot(&dest), SetId::LocalBackends),
                LbKind::Nodeport | LbKind::NodeportDirect => (slot(&port), SetId::NodeportBackends),
                LbKind::NodeportLocal => (slot(&port), SetId::NodeportLocalBackends),
            };
            if n == 0 {
                rules.push(r().drop_().comment("no local endpoints").build());
            } else {
                rules.push(r().dnat_map(&fields, map).build());
            }
        }
    }
    rules
}
