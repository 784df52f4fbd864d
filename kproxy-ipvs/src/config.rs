//! [`IpvsConfig`]: the IPVS-mode knobs (the `ipvs:` section of KubeProxyConfiguration,
//! already parsed; kproxy-bin maps it onto this struct).

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use crate::error::Error;

/// An IPVS scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheduler {
    /// Round robin (the default, also for an empty `scheduler`).
    #[default]
    Rr,
    /// Weighted round robin.
    Wrr,
    /// Least connection.
    Lc,
    /// Weighted least connection.
    Wlc,
    /// Locality-based least connection.
    Lblc,
    /// Locality-based least connection with replication.
    Lblcr,
    /// Source hashing.
    Sh,
    /// Destination hashing.
    Dh,
    /// Shortest expected delay.
    Sed,
    /// Never queue.
    Nq,
    /// Maglev hashing.
    Mh,
}

impl Scheduler {
    /// Parse a `scheduler` value; empty means round robin, as upstream.
    pub fn from_name(name: &str) -> Result<Scheduler, Error> {
        Ok(match name {
            "" | "rr" => Scheduler::Rr,
            "wrr" => Scheduler::Wrr,
            "lc" => Scheduler::Lc,
            "wlc" => Scheduler::Wlc,
            "lblc" => Scheduler::Lblc,
            "lblcr" => Scheduler::Lblcr,
            "sh" => Scheduler::Sh,
            "dh" => Scheduler::Dh,
            "sed" => Scheduler::Sed,
            "nq" => Scheduler::Nq,
            "mh" => Scheduler::Mh,
            other => {
                return Err(Error::Config(format!(
                    "ipvs.scheduler {other:?} is not one of rr, wrr, lc, wlc, lblc, lblcr, sh, dh, sed, nq, mh"
                )))
            }
        })
    }

    /// The kernel's name (`ip_vs_<name>` module).
    pub fn name(self) -> &'static str {
        match self {
            Scheduler::Rr => "rr",
            Scheduler::Wrr => "wrr",
            Scheduler::Lc => "lc",
            Scheduler::Wlc => "wlc",
            Scheduler::Lblc => "lblc",
            Scheduler::Lblcr => "lblcr",
            Scheduler::Sh => "sh",
            Scheduler::Dh => "dh",
            Scheduler::Sed => "sed",
            Scheduler::Nq => "nq",
            Scheduler::Mh => "mh",
        }
    }
}

/// Configuration of the IPVS backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpvsConfig {
    /// `ipvs.scheduler`.
    pub scheduler: Scheduler,
    /// Extra `IP_VS_SVC_F_*` scheduler flags for every virtual server (e.g.
    /// [`crate::ipvs_msg::SVC_F_SCHED1`] = sh/mh fallback); 0 for none, as upstream.
    pub scheduler_flags: u32,
    /// `ipvs.excludeCIDRs`: virtual servers (and kube-ipvs0 addresses) inside these ranges
    /// are never deleted by kproxy, whoever created them.
    pub exclude_cidrs: Vec<IpNet>,
    /// `ipvs.strictARP`: set arp_ignore=1 and arp_announce=2 on all interfaces.
    pub strict_arp: bool,
    /// `ipvs.tcpTimeout`; zero leaves the kernel's value.
    pub tcp_timeout: Duration,
    /// `ipvs.tcpFinTimeout`; zero leaves the kernel's value.
    pub tcp_fin_timeout: Duration,
    /// `ipvs.udpTimeout`; zero leaves the kernel's value.
    pub udp_timeout: Duration,
    /// The dummy link holding every service VIP.
    pub dummy_link: String,
    /// Longest time a removed or terminating real server is kept at weight 0 while it still
    /// has connections.
    pub graceful_termination_bound: Duration,
    /// Where sysctls are written (`/proc/sys`; tests point it elsewhere).
    pub sysctl_root: PathBuf,
    /// Program the nftables table of IPVS mode (masquerade, source ranges); on by default.
    pub nft_rules: bool,
}

impl Default for IpvsConfig {
    fn default() -> IpvsConfig {
        IpvsConfig {
            scheduler: Scheduler::Rr,
            scheduler_flags: 0,
            exclude_cidrs: Vec::new(),
            strict_arp: false,
            tcp_timeout: Duration::ZERO,
            tcp_fin_timeout: Duration::ZERO,
            udp_timeout: Duration::ZERO,
            dummy_link: "kube-ipvs0".to_string(),
            graceful_termination_bound: Duration::from_secs(15 * 60),
            sysctl_root: PathBuf::from("/proc/sys"),
            nft_rules: true,
        }
    }
}

impl IpvsConfig {
    /// Map the `ipvs:` section of a parsed KubeProxyConfiguration (already validated) onto
    /// an [`IpvsConfig`]; the other fields keep their defaults.
    pub fn from_kube(
        ipvs: &kproxy_core::config::KubeProxyIPVSConfiguration,
    ) -> Result<IpvsConfig, Error> {
        let exclude_cidrs = ipvs
            .exclude_cidrs
            .iter()
            .map(|c| {
                c.parse::<IpNet>().map_err(|e| {
                    Error::Config(format!("ipvs.excludeCIDRs entry {c:?} is not a CIDR: {e}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(IpvsConfig {
            scheduler: Scheduler::from_name(&ipvs.scheduler)?,
            exclude_cidrs,
            strict_arp: ipvs.strict_arp,
            tcp_timeout: ipvs.tcp_timeout.to_std(),
            tcp_fin_timeout: ipvs.tcp_fin_timeout.to_std(),
            udp_timeout: ipvs.udp_timeout.to_std(),
            ..IpvsConfig::default()
        })
    }

    /// The timeouts to program (seconds; 0 = leave the kernel's).
    pub fn timeouts(&self) -> crate::ipvs_msg::Timeouts {
        let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
        crate::ipvs_msg::Timeouts {
            tcp: secs(self.tcp_timeout),
            tcp_fin: secs(self.tcp_fin_timeout),
            udp: secs(self.udp_timeout),
        }
    }

    /// Whether `addr` is inside an excluded range.
    pub fn is_excluded(&self, addr: &std::net::IpAddr) -> bool {
        self.exclude_cidrs.iter().any(|n| n.contains(addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_names_round_trip_and_empty_is_rr() {
        for name in [
            "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "sh", "dh", "sed", "nq", "mh",
        ] {
            assert_eq!(Scheduler::from_name(name).unwrap().name(), name);
        }
        assert_eq!(Scheduler::from_name("").unwrap(), Scheduler::Rr);
        let err = Scheduler::from_name("fifo").unwrap_err().to_string();
        assert!(err.contains("fifo") && err.contains("wrr"), "{err}");
    }

    #[test]
    fn seed_large_cluster_config_maps_onto_ipvs_config() {
        let yaml = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: \"ipvs\"\n\
                    ipvs:\n  scheduler: \"rr\"\n  strictARP: true\n  tcpTimeout: 900s\n  udpTimeout: 300s\n\
                    \x20 excludeCIDRs: [\"198.19.250.0/24\"]\n";
        let parsed = kproxy_core::config::parse(yaml, "large.yaml").unwrap();
        let c = IpvsConfig::from_kube(&parsed.config.ipvs).unwrap();
        assert_eq!(c.scheduler, Scheduler::Rr);
        assert!(c.strict_arp);
        assert!(c.is_excluded(&"198.19.250.7".parse().unwrap()));
        let t = c.timeouts();
        assert_eq!((t.tcp, t.tcp_fin, t.udp), (900, 0, 300));
    }

    #[test]
    fn zero_timeouts_leave_the_kernels() {
        let c = IpvsConfig {
            tcp_timeout: Duration::from_secs(900),
            udp_timeout: Duration::from_secs(300),
            ..Default::default()
        };
        let t = c.timeouts();
        assert_eq!((t.tcp, t.tcp_fin, t.udp), (900, 0, 300));
    }
}
