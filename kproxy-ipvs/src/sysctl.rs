//! The sysctls IPVS mode needs, written through /proc/sys of the current network namespace
//! with [`kproxy_netlink::Sysctl`].
//!
//! A read-only /proc/sys (a container without privileges over it) is a warning, not a
//! failure: the operator may have set the values on the host, and kproxy says which ones it
//! could not write.

use std::path::Path;

use kproxy_netlink::sysctl::{is_read_only, Sysctl};

use crate::error::Error;

/// One required setting: key under /proc/sys and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// Key relative to /proc/sys (`net/ipv4/vs/conntrack`).
    pub path: &'static str,
    /// Value to write.
    pub value: &'static str,
}

/// The sysctls for a configuration, as upstream's IPVS proxier sets them.
pub fn required(strict_arp: bool) -> Vec<Setting> {
    let mut v = vec![
        // Without it IPVS connections get no conntrack entries, and the nftables
        // masquerade rules of IPVS mode never see the reply direction.
        Setting { path: "net/ipv4/vs/conntrack", value: "1" },
        // Connections to a deleted real server are expired at once instead of blackholed.
        Setting { path: "net/ipv4/vs/expire_nodest_conn", value: "1" },
        // Persistence templates of a quiesced (weight 0) real server expire too.
        Setting { path: "net/ipv4/vs/expire_quiescent_template", value: "1" },
        Setting { path: "net/ipv4/ip_forward", value: "1" },
    ];
    if strict_arp {
        // Do not answer ARP for the VIPs on kube-ipvs0 from other links, and announce
        // with the best local address.
        v.push(Setting { path: "net/ipv4/conf/all/arp_ignore", value: "1" });
        v.push(Setting { path: "net/ipv4/conf/all/arp_announce", value: "2" });
    }
    v
}

/// Write `settings` under `root` (normally `/proc/sys`). Values already set are not
/// rewritten. Returns warnings for read-only ones; other failures are errors.
pub fn apply(root: &Path, settings: &[Setting]) -> Result<Vec<String>, Error> {
    let sysctl = Sysctl::new(root);
    let mut warnings = Vec::new();
    for s in settings {
        match sysctl.ensure(s.path, s.value) {
            Ok(_) => {}
            Err(e) if is_read_only(&e) => {
                warnings.push(format!("cannot write {} = {} ({e}): set it on the host", sysctl.path(s.path).display(), s.value));
            }
            Err(source) => {
                return Err(Error::Sysctl { path: sysctl.path(s.path).display().to_string(), value: s.value.to_string(), source })
            }
        }
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_arp_adds_arp_sysctls() {
        let paths: Vec<_> = required(true).iter().map(|s| (s.path, s.value)).collect();
        assert!(paths.contains(&("net/ipv4/conf/all/arp_ignore", "1")));
        assert!(paths.contains(&("net/ipv4/conf/all/arp_announce", "2")));
        assert!(paths.contains(&("net/ipv4/vs/conntrack", "1")));
        assert!(!required(false).iter().any(|s| s.path.contains("arp")));
    }

    #[test]
    fn writes_values_and_reports_missing_as_error() {
        let dir = std::env::temp_dir().join(format!("kproxy-ipvs-sysctl-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("net/ipv4/vs")).unwrap();
        std::fs::write(dir.join("net/ipv4/vs/conntrack"), "0\n").unwrap();
        let one = [Setting { path: "net/ipv4/vs/conntrack", value: "1" }];
        assert!(apply(&dir, &one).unwrap().is_empty());
        assert_eq!(std::fs::read_to_string(dir.join("net/ipv4/vs/conntrack")).unwrap(), "1");
        let missing = [Setting { path: "net/nope/x", value: "1" }];
        assert!(matches!(apply(&dir, &missing), Err(Error::Sysctl { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
