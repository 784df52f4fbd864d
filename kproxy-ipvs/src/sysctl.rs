//! The sysctls IPVS mode needs, written through /proc/sys of the current network namespace.
//!
//! A read-only /proc/sys (a container without privileges over it) is a warning, not a
//! failure: the operator may have set the values on the host, and kproxy says which ones it
//! could not write.

use std::io::ErrorKind;
use std::path::Path;

use crate::error::Error;

/// One sysctl: path under /proc/sys and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysctl {
    /// Path relative to /proc/sys (`net/ipv4/vs/conntrack`).
    pub path: &'static str,
    /// Value to write.
    pub value: &'static str,
}

/// The sysctls for a configuration, as upstream's IPVS proxier sets them.
pub fn required(strict_arp: bool) -> Vec<Sysctl> {
    let mut v = vec![
        // Without it IPVS connections get no conntrack entries, and the nftables
        // masquerade rules of IPVS mode never see the reply direction.
        Sysctl {
            path: "net/ipv4/vs/conntrack",
            value: "1",
        },
        // Connections to a deleted real server are expired at once instead of blackholed.
        Sysctl {
            path: "net/ipv4/vs/expire_nodest_conn",
            value: "1",
        },
        // Persistence templates of a quiesced (weight 0) real server expire too.
        Sysctl {
            path: "net/ipv4/vs/expire_quiescent_template",
            value: "1",
        },
        Sysctl {
            path: "net/ipv4/ip_forward",
            value: "1",
        },
    ];
    if strict_arp {
        // Do not answer ARP for the VIPs on kube-ipvs0 from other links, and announce
        // with the best local address.
        v.push(Sysctl {
            path: "net/ipv4/conf/all/arp_ignore",
            value: "1",
        });
        v.push(Sysctl {
            path: "net/ipv4/conf/all/arp_announce",
            value: "2",
        });
    }
    v
}

/// Write `sysctls` under `root` (normally `/proc/sys`). Values already set are not
/// rewritten. Returns warnings for read-only ones; other failures are errors.
pub fn apply(root: &Path, sysctls: &[Sysctl]) -> Result<Vec<String>, Error> {
    let mut warnings = Vec::new();
    for s in sysctls {
        let path = root.join(s.path);
        if std::fs::read_to_string(&path)
            .map(|v| v.trim() == s.value)
            .unwrap_or(false)
        {
            continue;
        }
        match std::fs::write(&path, s.value) {
            Ok(()) => {}
            Err(e)
                if e.kind() == ErrorKind::PermissionDenied
                    || e.raw_os_error() == Some(libc::EROFS) =>
            {
                warnings.push(format!(
                    "cannot write {} = {} ({e}): set it on the host",
                    path.display(),
                    s.value
                ));
            }
            Err(source) => {
                return Err(Error::Sysctl {
                    path: path.display().to_string(),
                    value: s.value.to_string(),
                    source,
                })
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
        let one = [Sysctl {
            path: "net/ipv4/vs/conntrack",
            value: "1",
        }];
        assert!(apply(&dir, &one).unwrap().is_empty());
        assert_eq!(
            std::fs::read_to_string(dir.join("net/ipv4/vs/conntrack")).unwrap(),
            "1"
        );
        let missing = [Sysctl {
            path: "net/nope/x",
            value: "1",
        }];
        assert!(matches!(apply(&dir, &missing), Err(Error::Sysctl { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
