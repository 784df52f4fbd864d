//! This node's IPs as the Node object reports them, and the log line operators look for.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Node;
use kproxy_core::event::{ClusterEvent, Update};

/// The node's primary IPs, at most one per family: InternalIP addresses first, then
/// ExternalIP, in the order the Node lists them (upstream's `GetNodeHostIPs`).
pub fn node_ips(node: &Node) -> Vec<IpAddr> {
    let addresses = node.status.as_ref().and_then(|s| s.addresses.as_ref());
    let mut out: Vec<IpAddr> = Vec::new();
    for wanted in ["InternalIP", "ExternalIP"] {
        for addr in addresses.into_iter().flatten().filter(|a| a.type_ == wanted) {
            if let Ok(ip) = addr.address.parse::<IpAddr>() {
                if !out.iter().any(|o| o.is_ipv4() == ip.is_ipv4()) {
                    out.push(ip);
                }
            }
        }
    }
    out
}

/// Logs "Successfully retrieved node IP" whenever the Node's IPs become known or change.
#[derive(Debug, Default)]
pub struct NodeIpLogger {
    last: Vec<IpAddr>,
}

impl NodeIpLogger {
    /// Looks at one event of the Node watch.
    pub fn observe(&mut self, event: &ClusterEvent) {
        let ClusterEvent::Node(Update::Upsert(node)) = event else { return };
        let ips = node_ips(node);
        if !ips.is_empty() && ips != self.last {
            let shown: Vec<String> = ips.iter().map(ToString::to_string).collect();
            tracing::info!(node = node.metadata.name.as_deref().unwrap_or(""), ips = %shown.join(","), "Successfully retrieved node IP");
            self.last = ips;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeAddress, NodeStatus};

    fn node(addrs: &[(&str, &str)]) -> Node {
        Node {
            status: Some(NodeStatus {
                addresses: Some(
                    addrs.iter().map(|(t, a)| NodeAddress { type_: (*t).into(), address: (*a).into() }).collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn internal_before_external_one_per_family() {
        let n = node(&[
            ("Hostname", "node-a"),
            ("ExternalIP", "198.19.64.5"),
            ("InternalIP", "198.19.0.5"),
            ("InternalIP", "2001:db8:c::5"),
            ("InternalIP", "198.19.0.6"),
        ]);
        let got: Vec<String> = node_ips(&n).iter().map(ToString::to_string).collect();
        assert_eq!(got, ["198.19.0.5", "2001:db8:c::5"]);
        assert!(node_ips(&node(&[("Hostname", "x")])).is_empty());
    }
}
