//! How full the node's conntrack table is, read at each scrape: `kproxy_conntrack_entries`
//! (`nf_conntrack_count`) and `kproxy_conntrack_entries_limit` (`nf_conntrack_max`).
//!
//! kube-proxy has no such metric (operators take node_exporter's `node_nf_conntrack_*`), but
//! a full table silently drops new connections to every Service, and kproxy sizes that table
//! (`conntrack.maxPerCore`), so it reports both numbers itself: the shipped alert
//! (`deploy/prometheusrule.yaml`) then needs nothing but kproxy's own metrics. Values are those
//! of kproxy's network namespace, the node's; a metric is left out when the kernel does not
//! have it (nf_conntrack not loaded yet).

use kproxy_conntrack::sysctl::Sysctl;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;

/// `(metric name, sysctl key relative to /, help)`.
const GAUGES: [(&str, &str, &str); 2] = [
    (
        "kproxy_conntrack_entries",
        "proc/sys/net/netfilter/nf_conntrack_count",
        "Number of entries in the node's conntrack table (nf_conntrack_count).",
    ),
    (
        "kproxy_conntrack_entries_limit",
        "proc/sys/net/netfilter/nf_conntrack_max",
        "Maximum number of entries of the node's conntrack table (nf_conntrack_max).",
    ),
];

/// The collector registered on the unprefixed registry.
pub struct ConntrackCollector {
    sysctl: Box<dyn Sysctl + Send + Sync>,
}

impl ConntrackCollector {
    /// Read through `sysctl` (keys relative to `/`, see [`kproxy_conntrack::sysctl`]).
    pub fn new(sysctl: Box<dyn Sysctl + Send + Sync>) -> Self {
        ConntrackCollector { sysctl }
    }
}

impl std::fmt::Debug for ConntrackCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConntrackCollector").finish_non_exhaustive()
    }
}

impl Collector for ConntrackCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, key, help) in GAUGES {
            let Some(value) = self.sysctl.read(key).ok().and_then(|v| v.trim().parse::<i64>().ok()) else { continue };
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use prometheus_client::registry::Registry;
    use std::path::PathBuf;

    /// Parameters as files under a directory.
    struct Dir(PathBuf);

    impl Sysctl for Dir {
        fn read(&self, key: &str) -> std::io::Result<String> {
            std::fs::read_to_string(self.0.join(key)).map(|v| v.trim().to_string())
        }
        fn write(&self, key: &str, value: &str) -> std::io::Result<()> {
            std::fs::write(self.0.join(key), value)
        }
    }

    #[test]
    fn reports_count_and_limit_and_skips_what_the_kernel_lacks() {
        let dir = tempfile::tempdir().expect("temp dir");
        let netfilter = dir.path().join("proc/sys/net/netfilter");
        std::fs::create_dir_all(&netfilter).expect("dirs");
        std::fs::write(netfilter.join("nf_conntrack_count"), "1234\n").expect("write");
        let mut registry = Registry::default();
        registry.register_collector(Box::new(ConntrackCollector::new(Box::new(Dir(dir.path().to_path_buf())))));
        let mut text = String::new();
        encode(&mut text, &registry).expect("encode");
        assert!(text.contains("\nkproxy_conntrack_entries 1234\n"), "{text}");
        assert!(!text.contains("kproxy_conntrack_entries_limit"), "no nf_conntrack_max, no metric: {text}");
        std::fs::write(netfilter.join("nf_conntrack_max"), "262144\n").expect("write");
        let mut text = String::new();
        encode(&mut text, &registry).expect("encode");
        assert!(text.contains("\nkproxy_conntrack_entries_limit 262144\n"), "{text}");
    }
}
