//! The seed's three example configurations (digest sections 6.1-6.3) load exactly as
//! written, with exactly the expected warnings and values.

use kproxy_core::config::{parse, GoDuration, Mode, ParsedConfig};
use kproxy_core::model::{LocalDetector, NodePortAddresses};

fn load(name: &str) -> ParsedConfig {
    let path = format!("{}/../examples/config/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    parse(&text, name).unwrap_or_else(|e| panic!("{name} must load:\n{e}"))
}

fn warning_paths(parsed: &ParsedConfig) -> Vec<&str> {
    parsed.warnings.iter().map(|w| w.path.as_str()).collect()
}

#[test]
fn production_loads() {
    let p = load("production.yaml");
    let c = &p.config;
    assert_eq!(warning_paths(&p), ["udpIdleTimeout", "portRange"]);
    assert_eq!(p.warnings[0].to_string(), format!("production.yaml:21:17: udpIdleTimeout: {}", p.warnings[0].message));
    assert!(p.warnings[0].message.contains("userspace"), "{}", p.warnings[0]);
    assert!(p.warnings[1].message.contains("no effect"), "{}", p.warnings[1]);
    assert_eq!(c.effective_mode().backend, Mode::Ipvs);
    assert_eq!(c.bind_address, "0.0.0.0");
    assert_eq!(c.cluster_cidr, "10.244.0.0/16");
    assert_eq!(c.client_connection.kubeconfig, "/var/lib/kube-proxy/kubeconfig.conf");
    assert_eq!(c.client_connection.qps, 10.0);
    assert_eq!(c.client_connection.burst, 20);
    assert_eq!(c.ipvs.scheduler, "rr");
    assert!(c.ipvs.strict_arp);
    assert_eq!(c.conntrack.max_per_core, 32768);
    assert_eq!(c.conntrack.min, 131072);
    assert_eq!(c.conntrack.tcp_established_timeout, GoDuration::from_hours(24));
    assert_eq!(c.node_port_addresses, ["0.0.0.0/0"]);
    assert_eq!(c.port_range, "30000-32767");
    assert_eq!(c.oom_score_adj, -999);
    assert_eq!(c.config_sync_period, GoDuration::from_mins(15));
    assert_eq!(c.udp_idle_timeout, Some(GoDuration::from_millis(250)));
    // IPVS takes masquerading from iptables:, periods from ipvs:.
    assert_eq!(c.masquerade_bit(), 14);
    assert_eq!(c.sync_period(), GoDuration::from_secs(30));
    assert_eq!(c.min_sync_period(), GoDuration::ZERO);
    assert_eq!(c.node_port_addresses(), NodePortAddresses::Cidrs(vec!["0.0.0.0/0".parse().unwrap()]));
    assert_eq!(c.local_detector(), LocalDetector::ClusterCidrs(vec!["10.244.0.0/16".parse().unwrap()]));
}

#[test]
fn small_cluster_loads() {
    let p = load("small-cluster.yaml");
    let c = &p.config;
    assert_eq!(warning_paths(&p), ["mode"]);
    assert!(p.warnings[0].message.contains("nftables backend"), "{}", p.warnings[0]);
    let mode = c.effective_mode();
    assert_eq!(mode.backend, Mode::Nftables);
    assert!(mode.iptables_compat);
    assert_eq!(c.cluster_cidr, "192.168.0.0/16");
    assert_eq!(c.client_connection.qps, 5.0);
    assert_eq!(c.client_connection.burst, 10);
    assert!(!c.iptables.masquerade_all);
    assert_eq!(c.iptables.sync_period, GoDuration::from_secs(30));
    assert_eq!(c.sync_period(), GoDuration::from_secs(30));
    assert_eq!(c.min_sync_period(), GoDuration::from_secs(1));
    assert_eq!(c.conntrack.max_per_core, 16384);
    assert_eq!(c.conntrack.min, 65536);
    assert_eq!(c.conntrack.tcp_established_timeout, GoDuration::from_hours(24));
    assert_eq!(c.oom_score_adj, -999);
    assert_eq!(c.udp_idle_timeout, None);
}

#[test]
fn large_cluster_loads() {
    let p = load("large-cluster.yaml");
    let c = &p.config;
    assert_eq!(warning_paths(&p), ["portRange"]);
    assert!(p.warnings[0].message.contains("30000-40000"));
    assert_eq!(c.effective_mode().backend, Mode::Ipvs);
    assert_eq!(c.cluster_cidr, "10.0.0.0/8");
    assert_eq!(c.client_connection.qps, 20.0);
    assert_eq!(c.client_connection.burst, 30);
    assert_eq!(c.ipvs.tcp_timeout, GoDuration::from_secs(900));
    assert_eq!(c.ipvs.tcp_timeout.to_string(), "15m0s");
    assert_eq!(c.ipvs.udp_timeout, GoDuration::from_secs(300));
    assert_eq!(c.ipvs.tcp_fin_timeout, GoDuration::ZERO);
    assert_eq!(c.conntrack.max_per_core, 65536);
    assert_eq!(c.conntrack.min, 262144);
    assert_eq!(c.port_range, "30000-40000");
    assert_eq!(c.config_sync_period, GoDuration::from_mins(10));
}

#[test]
fn effective_yaml_round_trips() {
    for name in ["production.yaml", "small-cluster.yaml", "large-cluster.yaml"] {
        let p = load(name);
        let yaml = p.config.to_yaml();
        let again = parse(&yaml, "effective.yaml").unwrap_or_else(|e| panic!("{name}: {e}\n{yaml}"));
        assert_eq!(again.config, p.config, "{name}:\n{yaml}");
    }
}

#[test]
fn effective_yaml_is_sorted_and_readable() {
    let yaml = load("large-cluster.yaml").config.to_yaml();
    println!("{yaml}");
    assert!(yaml.starts_with("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nbindAddress: 0.0.0.0\n"), "{yaml}");
    assert!(yaml.contains("  tcpTimeout: 15m0s\n"), "{yaml}");
    assert!(yaml.contains("  qps: 20"), "{yaml}");
}

#[test]
fn iptables_mode_warning_mentions_localhost_nodeports() {
    let p = load("small-cluster.yaml");
    assert!(p.warnings[0].message.contains("iptables.localhostNodePorts"), "{}", p.warnings[0]);
    let text = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: iptables\niptables:\n  localhostNodePorts: false\n";
    let p = parse(text, "c.yaml").unwrap();
    assert!(!p.warnings[0].message.contains("localhostNodePorts"), "{}", p.warnings[0]);
}
