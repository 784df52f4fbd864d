//! `cluster-cidr`: `clusterCIDR` decides which traffic is pod traffic (masquerading, local
//! detection). It must contain every pod range this node has: the CNI configuration's
//! subnets, the Node's `podCIDRs`, and the routes to the pod bridge.

use ipnet::IpNet;

use crate::checks::some;
use crate::{Check, Facts, Settings};

const ID: &str = "cluster-cidr";

fn covered(cidrs: &[IpNet], net: &IpNet) -> bool {
    cidrs.iter().any(|c| c.contains(net))
}

/// fe80::/10 and 169.254.0.0/16: every interface has such routes; they are never pods'.
fn is_link_local(net: &IpNet) -> bool {
    match net {
        IpNet::V4(n) => n.addr().is_link_local(),
        IpNet::V6(n) => n.addr().segments()[0] & 0xffc0 == 0xfe80 || n.addr().is_multicast(),
    }
}

/// See the module docs. A CNI subnet or Node podCIDR outside `clusterCIDR` fails; a route
/// on a bridge outside it only warns (a bridge may carry something other than pods).
pub fn cluster_cidr(s: &Settings, facts: &Facts) -> Check {
    let cidrs = &s.cluster_cidrs;
    let shown = || if cidrs.is_empty() { "unset".to_string() } else { cidrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(",") };
    let mut wrong = Vec::new();
    let mut right = Vec::new();
    let mut unseen = Vec::new();
    match &facts.cni {
        Ok(files) => {
            for f in files {
                if let Some(e) = &f.error {
                    unseen.push(format!("{}: {e}", f.path.display()));
                }
                for net in &f.subnets {
                    let line = format!("CNI subnet {net} ({})", f.path.display());
                    if covered(cidrs, net) { right.push(line) } else { wrong.push(line) }
                }
            }
            if files.is_empty() {
                unseen.push(format!("no CNI configuration in {}", facts.cni_dir.display()));
            }
        }
        Err(e) => unseen.push(format!("CNI configuration {}: {e}", facts.cni_dir.display())),
    }
    if let Some(api) = &facts.api {
        match &api.node_pod_cidrs {
            Ok(Some(nets)) => {
                for net in nets {
                    let line = format!("Node {} podCIDR {net}", api.node_name);
                    if covered(cidrs, net) { right.push(line) } else { wrong.push(line) }
                }
            }
            Ok(None) => unseen.push(format!("Node {} not found", api.node_name)),
            Err(e) => unseen.push(format!("Node {}: {e}", api.node_name)),
        }
    }
    let mut odd_routes = Vec::new();
    match &facts.routes {
        Ok(routes) => {
            for r in routes.iter().filter(|r| r.on_pod_bridge && r.dst.prefix_len() > 0 && !is_link_local(&r.dst)) {
                let line = format!("route {} dev {}", r.dst, r.dev);
                if covered(cidrs, &r.dst) { right.push(line) } else { odd_routes.push(line) }
            }
        }
        Err(e) => unseen.push(format!("routes: {e}")),
    }
    if !wrong.is_empty() {
        return Check::fail(
            ID,
            format!("clusterCIDR {} does not contain {}{}", shown(), some(&wrong, 4), if right.is_empty() { String::new() } else { format!("; contains {}", some(&right, 4)) }),
            "set clusterCIDR (--cluster-cidr) to the cluster's pod range as the CNI allocates it (one CIDR per family); a wrong one breaks masquerading and local-traffic detection",
        );
    }
    if cidrs.is_empty() {
        return Check::warn(
            ID,
            format!("clusterCIDR is not set; pod ranges seen: {}", if right.is_empty() && odd_routes.is_empty() { "none".to_string() } else { some(&[right, odd_routes].concat(), 4) }),
            "set clusterCIDR to the cluster's pod range: without it kproxy cannot tell pod traffic from external traffic",
        );
    }
    if !odd_routes.is_empty() {
        return Check::warn(
            ID,
            format!("clusterCIDR {} does not contain {}", shown(), some(&odd_routes, 4)),
            "if pods hang on that bridge, clusterCIDR is wrong: set it to the pod range; otherwise nothing to do",
        );
    }
    if right.is_empty() {
        return Check::warn(
            ID,
            format!("clusterCIDR {}: nothing to compare it with ({})", shown(), unseen.join("; ")),
            "compare clusterCIDR with the CNI's pod range by hand, or point --cni-conf-dir at the CNI configuration",
        );
    }
    let mut seen = format!("clusterCIDR {} contains {}", shown(), some(&right, 4));
    if !unseen.is_empty() {
        seen.push_str(&format!(" (not seen: {})", unseen.join("; ")));
    }
    Check::ok(ID, seen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CniFile, ConfigFacts, Route, Verdict};

    fn facts(cni: Vec<IpNet>, routes: Vec<Route>) -> Facts {
        Facts {
            config: ConfigFacts::Invalid(vec![]),
            local_addrs: vec![],
            routes: Ok(routes),
            cni_dir: "/etc/cni/net.d".into(),
            cni: Ok(vec![CniFile { path: "/etc/cni/net.d/10-br.conflist".into(), subnets: cni, error: None }]),
            conntrack: Err(String::new()),
            api: None,
            tables: vec![],
            drift: None,
            nft_check: None,
            leftovers: Default::default(),
            ipvs: None,
            stale_udp: Ok(vec![]),
            daemon: crate::DaemonFacts { healthz: None, metrics: None, now: 0.0 },
        }
    }

    fn settings(cidrs: &[&str]) -> Settings {
        Settings { cluster_cidrs: cidrs.iter().map(|c| c.parse().unwrap()).collect(), ..Settings::default() }
    }

    fn route(dst: &str, bridge: bool) -> Route {
        Route { dst: dst.parse().unwrap(), dev: "kbr0".into(), on_pod_bridge: bridge }
    }

    #[test]
    fn cni_subnet_outside_the_cluster_cidr_fails() {
        let f = facts(vec!["198.18.0.0/24".parse().unwrap()], vec![route("198.18.0.0/24", true)]);
        assert_eq!(cluster_cidr(&settings(&["198.18.0.0/16"]), &f).verdict, Verdict::Ok);
        let c = cluster_cidr(&settings(&["198.19.128.0/17"]), &f);
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(c.seen.contains("CNI subnet 198.18.0.0/24 (/etc/cni/net.d/10-br.conflist)"), "{}", c.seen);
        // A dual-stack CNI with a single-stack clusterCIDR: the IPv6 pods are not covered.
        let f = facts(vec!["198.18.0.0/24".parse().unwrap(), "2001:db8:a::/64".parse().unwrap()], vec![]);
        assert_eq!(cluster_cidr(&settings(&["198.18.0.0/16"]), &f).verdict, Verdict::Fail);
        assert_eq!(cluster_cidr(&settings(&["198.18.0.0/16", "2001:db8:a::/48"]), &f).verdict, Verdict::Ok);
    }

    #[test]
    fn routes_only_warn_and_nothing_to_compare_warns() {
        let f = facts(vec![], vec![route("198.18.0.0/24", true), route("198.19.0.0/24", false), route("fe80::/64", true)]);
        assert_eq!(cluster_cidr(&settings(&["198.18.0.0/16"]), &f).verdict, Verdict::Ok);
        assert_eq!(cluster_cidr(&settings(&["198.18.128.0/17"]), &f).verdict, Verdict::Warn);
        let f = facts(vec![], vec![route("198.19.0.0/24", false)]);
        assert_eq!(cluster_cidr(&settings(&["198.18.0.0/16"]), &f).verdict, Verdict::Warn);
        assert_eq!(cluster_cidr(&settings(&[]), &f).verdict, Verdict::Warn);
    }

    #[test]
    fn node_pod_cidrs_count() {
        let mut f = facts(vec![], vec![]);
        f.api = Some(crate::ApiProbe {
            server: "https://198.19.0.5:6443".into(),
            version: Ok("v1.34.4".into()),
            latency_ms: 3,
            node_pod_cidrs: Ok(Some(vec!["198.18.5.0/24".parse().unwrap()])),
            node_name: "node-1".into(),
        });
        assert_eq!(cluster_cidr(&settings(&["198.18.0.0/16"]), &f).verdict, Verdict::Ok);
        let c = cluster_cidr(&settings(&["198.18.0.0/22"]), &f);
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(c.seen.contains("Node node-1 podCIDR 198.18.5.0/24"), "{}", c.seen);
    }
}
