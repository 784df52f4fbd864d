//! The configuration itself, and `nodePortAddresses` against this node's addresses.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::{Check, ConfigFacts, Settings};

/// `config`: every file and flag parses and validates (the errors are `kproxy validate`'s).
pub fn config(facts: &ConfigFacts) -> Check {
    match facts {
        ConfigFacts::Invalid(errors) => Check::fail(
            "config",
            format!("the configuration is invalid: {}", errors.join("; ")),
            "fix each error at the file:line:column or flag named, then check with `kproxy validate` and the same flags",
        ),
        ConfigFacts::Valid { files, warnings, .. } => {
            let read = if files.is_empty() {
                "no configuration file (flags and defaults only)".to_string()
            } else {
                files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            };
            if warnings.is_empty() {
                Check::ok("config", format!("valid; read {read}"))
            } else {
                Check::warn(
                    "config",
                    format!("valid with warnings (read {read}): {}", warnings.join("; ")),
                    "review each warning; `kproxy validate` prints them with the effective configuration",
                )
            }
        }
    }
}

/// `node-port-addresses`: NodePorts are served only on local addresses inside these
/// networks; if none matches, no NodePort answers on this node.
pub fn node_port_addresses(s: &Settings, local: &[IpAddr]) -> Check {
    const ID: &str = "node-port-addresses";
    if s.node_port_addresses.is_empty() {
        return Check::ok(ID, "not set: NodePorts answer on every local address");
    }
    let usable: Vec<IpAddr> = local.iter().copied().filter(|a| !a.is_loopback()).collect();
    let mut matched = Vec::new();
    let mut unmatched = Vec::new();
    for entry in &s.node_port_addresses {
        let hits: Vec<String> = if entry == "primary" {
            usable.iter().map(ToString::to_string).collect()
        } else {
            match entry.parse::<IpNet>() {
                Ok(net) => local.iter().filter(|a| net.contains(*a)).map(ToString::to_string).collect(),
                Err(_) => Vec::new(),
            }
        };
        if hits.is_empty() {
            unmatched.push(entry.clone());
        } else {
            matched.push(format!("{entry} -> {}", hits.join(" ")));
        }
    }
    if matched.is_empty() {
        Check::fail(
            ID,
            format!("nodePortAddresses {} match none of this node's addresses ({})", s.node_port_addresses.join(","), crate::checks::some(&usable.iter().map(ToString::to_string).collect::<Vec<_>>(), 8)),
            "NodePorts answer nowhere on this node: set nodePortAddresses to CIDRs holding the node's IPs (or `primary`)",
        )
    } else if !unmatched.is_empty() {
        Check::warn(ID, format!("{}; no local address in {}", matched.join("; "), unmatched.join(",")), "remove the entries that match no address, or check the node's addressing")
    } else {
        Check::ok(ID, matched.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_verdicts() {
        assert_eq!(config(&ConfigFacts::Invalid(vec!["a.yaml:3:5: bad".into()])).verdict, crate::Verdict::Fail);
        let valid = ConfigFacts::Valid { files: vec![], warnings: vec![], settings: Settings::default() };
        assert_eq!(config(&valid).verdict, crate::Verdict::Ok);
        let warned = ConfigFacts::Valid { files: vec!["/x".into()], warnings: vec!["w".into()], settings: Settings::default() };
        assert_eq!(config(&warned).verdict, crate::Verdict::Warn);
    }

    #[test]
    fn node_port_addresses_against_local_addresses() {
        let local: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "198.19.0.1".parse().unwrap()];
        let s = |list: &[&str]| Settings { node_port_addresses: list.iter().map(|s| s.to_string()).collect(), ..Settings::default() };
        assert_eq!(node_port_addresses(&s(&[]), &local).verdict, crate::Verdict::Ok);
        assert_eq!(node_port_addresses(&s(&["198.19.0.0/24"]), &local).verdict, crate::Verdict::Ok);
        assert_eq!(node_port_addresses(&s(&["primary"]), &local).verdict, crate::Verdict::Ok);
        let none = node_port_addresses(&s(&["198.18.99.0/24"]), &local);
        assert_eq!(none.verdict, crate::Verdict::Fail);
        assert!(none.seen.contains("198.19.0.1"), "{}", none.seen);
        assert_eq!(node_port_addresses(&s(&["198.19.0.0/24", "2001:db8:f::/64"]), &local).verdict, crate::Verdict::Warn);
    }
}
