//! The explanation of one Service, built from the desired state and the drift found (pure),
//! and its two renderings: text for people, one JSON object for scripts.

use std::net::{IpAddr, SocketAddr};

use kproxy_core::model::{Endpoint, IpFamily, LocalDetector, ProxySettings, ServicePort, TrafficPolicy};
use serde_json::{json, Value};

/// Everything `kproxy explain` says about one Service.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// `namespace/name`.
    pub service: String,
    /// `nftables` or `ipvs`.
    pub mode: &'static str,
    /// One entry per port and family.
    pub ports: Vec<Value>,
    /// Differences that concern this Service, or every Service (the table's structure).
    pub drift: Vec<String>,
    /// How many differences concern only other Services or node-wide sets.
    pub other_drift: usize,
    /// IPVS mode: the virtual servers of this Service, wanted and as the kernel holds them.
    pub virtual_servers: Vec<Value>,
    /// IPVS mode: real servers at weight 0 that are draining (not drift).
    pub draining: Vec<String>,
}

impl Report {
    /// Whether the kernel holds exactly what it should for this Service.
    pub fn in_sync(&self) -> bool {
        self.drift.is_empty()
    }

    /// The one-line JSON object of `-o json`.
    pub fn json(&self) -> String {
        json!({
            "service": self.service,
            "mode": self.mode,
            "in_sync": self.in_sync(),
            "ports": self.ports,
            "drift": self.drift,
            "other_drift": self.other_drift,
            "virtual_servers": self.virtual_servers,
            "draining": self.draining,
        })
        .to_string()
    }

    /// The text for people.
    pub fn text(&self) -> String {
        let mut out = format!("service {} (mode {})\n", self.service, self.mode);
        for p in &self.ports {
            text_port(p, &mut out);
        }
        for vs in &self.virtual_servers {
            out.push_str(&format!("  ipvs virtual server {}: scheduler {}\n", vs["key"].as_str().unwrap_or(""), vs["scheduler"].as_str().unwrap_or("")));
            out.push_str(&format!("    want:   {}\n", list(&vs["want"])));
            out.push_str(&format!("    kernel: {}\n", if vs["kernel"].is_null() { "absent".into() } else { list(&vs["kernel"]) }));
        }
        for d in &self.draining {
            out.push_str(&format!("  draining (weight 0, not drift): {d}\n"));
        }
        if self.in_sync() {
            out.push_str("kernel: in sync (holds exactly what it should for this Service)\n");
        } else {
            out.push_str(&format!("kernel: DRIFT, {} difference(s) for this Service:\n", self.drift.len()));
            for d in &self.drift {
                out.push_str(&format!("  {d}\n"));
            }
        }
        if self.other_drift > 0 {
            out.push_str(&format!("note: {} more difference(s) concern other Services or node-wide sets (see `kproxy doctor`)\n", self.other_drift));
        }
        out
    }
}

fn list(v: &Value) -> String {
    let items: Vec<String> = v.as_array().map(|a| a.iter().map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string)).collect()).unwrap_or_default();
    if items.is_empty() {
        "(none)".into()
    } else {
        items.join(", ")
    }
}

fn text_port(p: &Value, out: &mut String) {
    out.push_str(&format!("port {} {} ({})\n", p["port"].as_str().unwrap_or(""), p["protocol"].as_str().unwrap_or(""), p["family"].as_str().unwrap_or("")));
    out.push_str("  destinations:\n");
    for d in p["destinations"].as_array().into_iter().flatten() {
        out.push_str(&format!("    {:<15} {:<28} -> {}\n", d["kind"].as_str().unwrap_or(""), d["address"].as_str().unwrap_or(""), list(&d["endpoints"])));
    }
    out.push_str("  endpoints:\n");
    for e in p["endpoints"].as_array().into_iter().flatten() {
        out.push_str(&format!("    {:<28} {}\n", e["address"].as_str().unwrap_or(""), list(&e["categories"])));
    }
    if p["endpoints"].as_array().is_none_or(Vec::is_empty) {
        out.push_str("    (none: every destination rejects)\n");
    }
    let c = &p["categories"];
    for k in ["ready", "serving", "terminating", "local", "remote"] {
        out.push_str(&format!("    {k:<12} {}\n", list(&c[k])));
    }
    if let Some(t) = p["topology"].as_str() {
        out.push_str(&format!("  topology: {t}\n"));
    }
    let pol = &p["policies"];
    out.push_str(&format!("  internalTrafficPolicy {}: uses {}\n", pol["internal"]["policy"].as_str().unwrap_or(""), list(&pol["internal"]["endpoints"])));
    out.push_str(&format!("  externalTrafficPolicy {}: uses {}\n", pol["external"]["policy"].as_str().unwrap_or(""), list(&pol["external"]["endpoints"])));
    let m = &p["masquerade"];
    out.push_str(&format!("  masquerade: ClusterIP: {}; external: {}; hairpin: {}\n", m["cluster_ip"].as_str().unwrap_or(""), m["external"].as_str().unwrap_or(""), m["hairpin"].as_str().unwrap_or("")));
    out.push_str(&format!("  session affinity: {}\n", p["session_affinity"].as_str().unwrap_or("None")));
    out.push_str(&format!("  loadBalancerSourceRanges: {}\n", list(&p["load_balancer_source_ranges"])));
    if let Some(hc) = p["health_check_node_port"].as_u64() {
        out.push_str(&format!("  healthCheckNodePort: {hc}\n"));
    }
}

fn addr(ip: IpAddr, port: u16) -> String {
    SocketAddr::new(ip, port).to_string()
}

fn eps(list: &[SocketAddr]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

fn policy(p: TrafficPolicy) -> &'static str {
    match p {
        TrafficPolicy::Cluster => "Cluster",
        TrafficPolicy::Local => "Local",
    }
}

fn categories(e: &Endpoint, sp: &ServicePort) -> Vec<&'static str> {
    let mut c = Vec::new();
    for (yes, word) in [(e.ready, "ready"), (e.serving, "serving"), (e.terminating, "terminating")] {
        if yes {
            c.push(word);
        }
    }
    c.push(if e.local { "local" } else { "remote" });
    if sp.cluster_endpoints.contains(&e.addr) {
        c.push("used-for-cluster-traffic");
    }
    if sp.local_endpoints.contains(&e.addr) {
        c.push("used-for-local-traffic");
    }
    c
}

/// Why ready endpoints are left out of cluster traffic here: topology hints for another node
/// or zone (the model keeps only the outcome of upstream's categorisation, not the hints).
fn topology(sp: &ServicePort) -> Option<String> {
    let ready: Vec<&Endpoint> = sp.endpoints.iter().filter(|e| e.ready).collect();
    let skipped: Vec<String> = ready.iter().filter(|e| !sp.cluster_endpoints.contains(&e.addr)).map(|e| e.addr.to_string()).collect();
    if ready.is_empty() || skipped.is_empty() {
        return Some("no topology filtering on this node (every ready endpoint is used)".into()).filter(|_| !ready.is_empty());
    }
    Some(format!(
        "topology hints in use: cluster traffic from this node goes to {} of {} ready endpoints; not hinted for this node or zone: {}",
        sp.cluster_endpoints.len(),
        ready.len(),
        skipped.join(", ")
    ))
}

fn masquerade(sp: &ServicePort, s: &ProxySettings) -> Value {
    let cluster_ip = if s.masquerade_all {
        "always (masqueradeAll)".to_string()
    } else {
        match &s.local_detector {
            LocalDetector::None => "always (no local-traffic detector: every source counts as outside the cluster)".into(),
            LocalDetector::ClusterCidrs(c) | LocalDetector::NodeCidrs(c) => {
                let nets: Vec<String> = c.iter().filter(|n| IpFamily::of_net(n) == sp.family).map(ToString::to_string).collect();
                format!("when the source is outside the pod networks {}", nets.join(", "))
            }
            LocalDetector::BridgeInterface(i) => format!("when the packet does not enter through bridge {i}"),
            LocalDetector::InterfaceNamePrefix(p) => format!("when the packet does not enter through an interface named {p}*"),
        }
    };
    let external = match sp.external_traffic_policy {
        TrafficPolicy::Cluster => "always (externalTrafficPolicy Cluster)".to_string(),
        TrafficPolicy::Local => "no, the client address is kept (externalTrafficPolicy Local); traffic from pods and from the node itself is short-circuited to the cluster endpoints, node traffic masqueraded".to_string(),
    };
    json!({
        "cluster_ip": cluster_ip,
        "external": if sp.has_external_destinations() { external } else { "no external destinations".into() },
        "hairpin": "an endpoint reaching itself through the Service is masqueraded",
    })
}

/// One port of the Service in one family. `node_port_on` are the places its NodePort is
/// served on in that family (addresses, or networks whose local addresses serve it).
pub fn port(sp: &ServicePort, settings: &ProxySettings, node_port_on: &[String]) -> Value {
    let internal = eps(sp.internal_endpoints());
    let external = eps(sp.external_endpoints());
    let mut destinations = vec![json!({"kind": "ClusterIP", "address": addr(sp.cluster_ip, sp.port), "endpoints": internal})];
    if let Some(np) = sp.node_port {
        for on in node_port_on {
            let address = match on.parse::<IpAddr>() {
                Ok(ip) => addr(ip, np),
                Err(_) => format!("{on} port {np}"),
            };
            destinations.push(json!({"kind": "NodePort", "address": address, "endpoints": external}));
        }
    }
    for ip in &sp.external_ips {
        destinations.push(json!({"kind": "ExternalIP", "address": addr(*ip, sp.port), "endpoints": external}));
    }
    for ip in &sp.load_balancer_ips {
        destinations.push(json!({"kind": "LoadBalancerIP", "address": addr(*ip, sp.port), "endpoints": external}));
    }
    let endpoints: Vec<Value> = sp.endpoints.iter().map(|e| json!({"address": e.addr.to_string(), "categories": categories(e, sp)})).collect();
    let pick = |f: &dyn Fn(&Endpoint) -> bool| -> Vec<String> { sp.endpoints.iter().filter(|e| f(e)).map(|e| e.addr.to_string()).collect() };
    json!({
        "port": if sp.name.port.is_empty() { sp.port.to_string() } else { sp.name.port.clone() },
        "protocol": sp.name.protocol.as_str(),
        "family": match sp.family { IpFamily::V4 => "IPv4", IpFamily::V6 => "IPv6" },
        "destinations": destinations,
        "endpoints": endpoints,
        "categories": {
            "ready": pick(&|e| e.ready),
            "serving": pick(&|e| e.serving),
            "terminating": pick(&|e| e.terminating),
            "local": pick(&|e| e.local),
            "remote": pick(&|e| !e.local),
        },
        "cluster_endpoints": eps(&sp.cluster_endpoints),
        "local_endpoints": eps(&sp.local_endpoints),
        "topology": topology(sp),
        "policies": {
            "internal": {"policy": policy(sp.internal_traffic_policy), "endpoints": internal},
            "external": {"policy": policy(sp.external_traffic_policy), "endpoints": external},
        },
        "masquerade": masquerade(sp, settings),
        "session_affinity": sp.session_affinity.map(|a| format!("ClientIP, {} s", a.timeout_seconds)),
        "load_balancer_source_ranges": sp.load_balancer_source_ranges.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "health_check_node_port": sp.health_check_node_port,
    })
}

#[cfg(test)]
mod tests {
    use kproxy_core::model::{Protocol, ServicePortName, SessionAffinity};

    use super::*;

    fn ep(a: &str, local: bool, ready: bool) -> Endpoint {
        Endpoint { addr: a.parse().unwrap(), local, ready, serving: true, terminating: !ready }
    }

    /// eTP=Local with topology hints narrowing cluster traffic: the policies, the hint note,
    /// masquerading and affinity say what the node does.
    #[test]
    fn policies_topology_and_masquerading_of_one_port() {
        let n = ServicePortName { namespace: "t".into(), name: "web".into(), port: String::new(), protocol: Protocol::Udp };
        let mut sp = ServicePort::new(n, "198.19.160.10".parse().unwrap(), 53);
        sp.node_port = Some(30053);
        sp.external_traffic_policy = TrafficPolicy::Local;
        sp.session_affinity = Some(SessionAffinity { timeout_seconds: 30 });
        sp.load_balancer_source_ranges = vec!["198.18.64.0/24".parse().unwrap()];
        sp.endpoints = vec![ep("198.18.0.11:53", true, true), ep("198.18.0.12:53", false, true), ep("198.18.0.13:53", false, true)];
        // Hints: only .11 and .12 are for this zone.
        sp.cluster_endpoints = vec!["198.18.0.11:53".parse().unwrap(), "198.18.0.12:53".parse().unwrap()];
        sp.local_endpoints = vec!["198.18.0.11:53".parse().unwrap()];
        let settings = ProxySettings {
            local_detector: LocalDetector::ClusterCidrs(vec!["198.18.0.0/16".parse().unwrap(), "2001:db8:a::/48".parse().unwrap()]),
            ..ProxySettings::default()
        };
        let p = port(&sp, &settings, &["198.19.0.1".into(), "local addresses in 198.19.64.0/24".into()]);
        assert_eq!(p["port"], "53");
        assert_eq!(p["protocol"], "udp");
        let dests: Vec<String> = p["destinations"].as_array().unwrap().iter().map(|d| format!("{} {}", d["kind"].as_str().unwrap(), d["address"].as_str().unwrap())).collect();
        assert_eq!(dests, ["ClusterIP 198.19.160.10:53", "NodePort 198.19.0.1:30053", "NodePort local addresses in 198.19.64.0/24 port 30053"]);
        assert_eq!(p["policies"]["internal"]["endpoints"], json!(["198.18.0.11:53", "198.18.0.12:53"]));
        assert_eq!(p["policies"]["external"], json!({"policy": "Local", "endpoints": ["198.18.0.11:53"]}));
        assert_eq!(
            p["topology"],
            "topology hints in use: cluster traffic from this node goes to 2 of 3 ready endpoints; not hinted for this node or zone: 198.18.0.13:53"
        );
        assert_eq!(p["masquerade"]["cluster_ip"], "when the source is outside the pod networks 198.18.0.0/16");
        assert!(p["masquerade"]["external"].as_str().unwrap().starts_with("no, the client address is kept"));
        assert_eq!(p["session_affinity"], "ClientIP, 30 s");
        assert_eq!(p["load_balancer_source_ranges"], json!(["198.18.64.0/24"]));
        assert_eq!(p["endpoints"][2]["categories"], json!(["ready", "serving", "remote"]));
    }
}
