//! The Linux capabilities kproxy runs with. kproxy needs no privileged container: CAP_NET_ADMIN
//! (nftables, IPVS, conntrack over netlink, and the per-namespace conntrack sysctls) is
//! required; CAP_SYS_RESOURCE (lowering `oom_score_adj`) is optional. Checked once at start,
//! from the effective set in `/proc/self/status`, so a missing one is named before anything
//! fails with a bare "Operation not permitted".

/// `CAP_NET_ADMIN`'s bit.
pub const CAP_NET_ADMIN: u32 = 12;
/// `CAP_SYS_RESOURCE`'s bit.
pub const CAP_SYS_RESOURCE: u32 = 24;

/// The effective capability set of `/proc/self/status` text (`CapEff:` in hex).
pub fn parse_effective(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(line.trim(), 16).ok()
}

/// This process's effective capabilities; `None` if `/proc/self/status` cannot be read (then
/// nothing is checked in advance and the kernel's errors speak for themselves).
pub fn effective() -> Option<u64> {
    parse_effective(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// Whether `caps` holds `bit`.
pub fn has(caps: u64, bit: u32) -> bool {
    caps & (1 << bit) != 0
}

/// Why kproxy cannot program the node with `caps`, if it cannot.
pub fn require_net_admin(caps: Option<u64>) -> anyhow::Result<()> {
    match caps {
        Some(caps) if !has(caps, CAP_NET_ADMIN) => anyhow::bail!(
            "CAP_NET_ADMIN is not in this process's effective capabilities (CapEff {caps:#x}): kproxy cannot program \
             nftables, IPVS or conntrack without it; grant it (DaemonSet: securityContext.capabilities.add: [NET_ADMIN]; \
             systemd: AmbientCapabilities=CAP_NET_ADMIN), or use --dry-run"
        ),
        _ => Ok(()),
    }
}

/// Whether `oom_score_adj` can be applied with `caps`; if not, one warning says why. Lowering
/// the score below 0 needs CAP_SYS_RESOURCE (the kernel refuses with EACCES otherwise).
pub fn can_apply_oom_score_adj(caps: Option<u64>, oom_score_adj: i32) -> bool {
    match caps {
        Some(caps) if !has(caps, CAP_SYS_RESOURCE) && oom_score_adj < 0 => {
            tracing::warn!(
                oom_score_adj,
                "CAP_SYS_RESOURCE is missing: oomScoreAdj not applied (lowering the OOM score needs it), so the kernel \
                 may pick kproxy earlier under memory pressure; grant SYS_RESOURCE, or set oomScoreAdj: 0 to silence \
                 this; continuing"
            );
            false
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_effective_set() {
        let status = "Name:\tkproxy\nCapInh:\t0000000000000000\nCapEff:\t0000000001001000\n";
        let caps = parse_effective(status).unwrap();
        assert!(has(caps, CAP_NET_ADMIN) && has(caps, CAP_SYS_RESOURCE));
        assert!(require_net_admin(Some(caps)).is_ok());
        let err = require_net_admin(Some(1 << CAP_SYS_RESOURCE)).unwrap_err().to_string();
        assert!(err.contains("CAP_NET_ADMIN") && err.contains("capabilities.add: [NET_ADMIN]"), "{err}");
        assert!(require_net_admin(None).is_ok());
        assert_eq!(parse_effective("Name: x\n"), None);
        assert!(!can_apply_oom_score_adj(Some(1 << CAP_NET_ADMIN), -999));
        assert!(can_apply_oom_score_adj(Some(1 << CAP_NET_ADMIN), 0));
        assert!(can_apply_oom_score_adj(Some(caps), -999));
    }
}
