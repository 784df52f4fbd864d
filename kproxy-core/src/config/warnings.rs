//! Settings that are accepted but deserve a word: they have no effect in kproxy, or are
//! served differently than their name suggests. Each is reported once, where it was set.

use super::decode::Origins;
use super::error::{ConfigWarning, Origin};
use super::types::{
    KubeProxyConfiguration, KubeProxyIPTablesConfiguration, KubeProxyIPVSConfiguration, KubeProxyNFTablesConfiguration,
    KubeProxyWinkernelConfiguration,
};

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

pub(crate) fn warnings(c: &KubeProxyConfiguration, origins: &Origins) -> Vec<ConfigWarning> {
    let mut out = Vec::new();
    let mut warn = |path: &str, message: String| {
        out.push(ConfigWarning { origin: origins.get(path).clone(), path: path.to_string(), message });
    };
    if let Some(t) = c.udp_idle_timeout {
        warn(
            "udpIdleTimeout",
            format!("{t} has no effect: it only configured the userspace proxy, which Kubernetes removed in 1.26 (the field no longer exists upstream); remove it"),
        );
    }
    if origins.is_set("resourceContainer") {
        warn("resourceContainer", "has no effect: removed upstream in Kubernetes 1.16; remove it".to_string());
    }
    if origins.is_set("conntrack.max") {
        warn(
            "conntrack.max",
            "has no effect: removed upstream; use conntrack.maxPerCore and conntrack.min".to_string(),
        );
    }
    if !c.port_range.is_empty() {
        warn(
            "portRange",
            format!("{:?} has no effect: it only configured the removed userspace proxy; the NodePort range is set on the API server (--service-node-port-range)", c.port_range),
        );
    }
    if let Some(i) = c.node_port_addresses.iter().position(|a| a == "localhost") {
        warn(
            &format!("nodePortAddresses[{i}]"),
            "\"localhost\" has no effect: NodePorts on loopback addresses are not served by kproxy".to_string(),
        );
    }
    if c.mode == "iptables" {
        let mut message = "\"iptables\" is served by kproxy's nftables backend with the same semantics (settings from the iptables: section; empty nodePortAddresses means all addresses); no iptables rules are written".to_string();
        if c.iptables.localhost_node_ports {
            // The one iptables-mode behaviour nftables does not reproduce (route_localnet).
            message.push_str(
                "; NodePorts on 127.0.0.1 (iptables.localhostNodePorts) are not served, as in upstream's nftables mode",
            );
        }
        warn("mode", message);
    }
    if origins.is_set("clientConnection.contentType") && c.client_connection.content_type == PROTOBUF {
        warn(
            "clientConnection.contentType",
            format!(
                "{PROTOBUF} is not supported by kproxy's API client; it falls back to {}",
                c.effective_content_type()
            ),
        );
    }
    if !c.client_connection.accept_content_types.is_empty() {
        warn(
            "clientConnection.acceptContentTypes",
            format!(
                "{:?} has no effect: kproxy's API client always asks for {}",
                c.client_connection.accept_content_types,
                c.effective_content_type()
            ),
        );
    }
    if c.iptables.snat_node_internal_ip {
        warn(
            "iptables.snatNodeInternalIP",
            "has no effect: kproxy masquerades to the outgoing interface's address, as upstream's nftables mode does".to_string(),
        );
    }
    // A section counts when a file set one of its fields to something other than the default
    // (the output of --write-config-to sets every field to its default, and flags such as
    // --masquerade-all fill every section on purpose).
    let from_file = |section: &str| {
        let prefix = format!("{section}.");
        origins.iter().any(|(p, o)| p.starts_with(&prefix) && matches!(o, Origin::File { .. }))
    };
    let changed = |section: &str| match section {
        "iptables" => c.iptables != KubeProxyIPTablesConfiguration::default(),
        "ipvs" => c.ipvs != KubeProxyIPVSConfiguration::default(),
        _ => c.nftables != KubeProxyNFTablesConfiguration::default(),
    };
    let unused_sections: &[(&str, &str)] = match c.mode.as_str() {
        "ipvs" => &[("nftables", "ipvs")],
        "iptables" => &[("nftables", "iptables"), ("ipvs", "iptables")],
        _ => &[("iptables", "nftables"), ("ipvs", "nftables")],
    };
    for (section, mode) in unused_sections {
        if from_file(section) && changed(section) {
            warn(section, format!("has no effect in mode {mode:?} (only the {mode}: section applies)"));
        }
    }
    if c.mode == "ipvs" {
        let defaults = KubeProxyIPTablesConfiguration::default();
        let ignored = [
            ("localhostNodePorts", c.iptables.localhost_node_ports != defaults.localhost_node_ports),
            ("syncPeriod", c.iptables.sync_period != defaults.sync_period),
            ("minSyncPeriod", c.iptables.min_sync_period != defaults.min_sync_period),
        ];
        for (field, differs) in ignored {
            let path = format!("iptables.{field}");
            if differs && matches!(origins.get(&path), Origin::File { .. }) {
                warn(
                    &path,
                    "has no effect in mode \"ipvs\" (only masqueradeAll and masqueradeBit of iptables: apply)"
                        .to_string(),
                );
            }
        }
    }
    if c.winkernel != KubeProxyWinkernelConfiguration::default() || c.windows_run_as_service {
        let path = if c.windows_run_as_service { "windowsRunAsService" } else { "winkernel" };
        warn(path, "Windows settings have no effect on Linux".to_string());
    }
    out
}
