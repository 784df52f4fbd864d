//! Every field's default (upstream's SetDefaults_KubeProxyConfiguration), and the
//! zero-means-default rules.

use kproxy_core::config::{parse, GoDuration, KubeProxyConfiguration, Mode};
use kproxy_core::model::{LocalDetector, NodePortAddresses};

const HEAD: &str = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n";

fn load(body: &str) -> KubeProxyConfiguration {
    let text = format!("{HEAD}{body}");
    parse(&text, "t.yaml").unwrap_or_else(|e| panic!("{e}")).config
}

#[test]
fn every_default() {
    let c = load("");
    assert_eq!(c, KubeProxyConfiguration::default());
    assert!(c.feature_gates.is_empty());
    let cc = &c.client_connection;
    assert_eq!((cc.kubeconfig.as_str(), cc.accept_content_types.as_str()), ("", ""));
    assert_eq!(cc.content_type, "application/vnd.kubernetes.protobuf");
    assert_eq!((cc.qps, cc.burst), (5.0, 10));
    assert_eq!(c.logging.format, "text");
    assert_eq!(c.logging.flush_frequency, GoDuration::from_secs(5));
    assert_eq!(c.logging.verbosity, 0);
    assert!(c.logging.vmodule.is_empty());
    assert_eq!(c.logging.options.json.info_buffer_size, "0");
    assert!(!c.logging.options.text.split_stream);
    assert_eq!(c.hostname_override, "");
    assert_eq!(c.bind_address, "0.0.0.0");
    assert_eq!(c.healthz_bind_address, "0.0.0.0:10256");
    assert_eq!(c.metrics_bind_address, "127.0.0.1:10249");
    assert!(!c.bind_address_hard_fail);
    assert!(!c.enable_profiling);
    assert_eq!(c.show_hidden_metrics_for_version, "");
    assert_eq!(c.mode, "");
    let ipt = &c.iptables;
    assert_eq!(ipt.masquerade_bit, 14);
    assert!(!ipt.masquerade_all);
    assert!(ipt.localhost_node_ports);
    assert!(!ipt.snat_node_internal_ip);
    assert_eq!(ipt.sync_period, GoDuration::from_secs(30));
    assert_eq!(ipt.min_sync_period, GoDuration::from_secs(1));
    let ipvs = &c.ipvs;
    assert_eq!(ipvs.sync_period, GoDuration::from_secs(30));
    assert_eq!(ipvs.min_sync_period, GoDuration::ZERO);
    assert_eq!(ipvs.scheduler, "");
    assert!(ipvs.exclude_cidrs.is_empty());
    assert!(!ipvs.strict_arp);
    assert_eq!(
        (ipvs.tcp_timeout, ipvs.tcp_fin_timeout, ipvs.udp_timeout),
        (GoDuration::ZERO, GoDuration::ZERO, GoDuration::ZERO)
    );
    let nft = &c.nftables;
    assert_eq!(nft.masquerade_bit, 14);
    assert!(!nft.masquerade_all);
    assert_eq!(nft.sync_period, GoDuration::from_secs(30));
    assert_eq!(nft.min_sync_period, GoDuration::from_secs(1));
    assert_eq!(c.winkernel.network_name, "");
    assert!(!c.winkernel.enable_dsr);
    assert_eq!(c.detect_local_mode, "");
    assert_eq!(c.detect_local.bridge_interface, "");
    assert_eq!(c.cluster_cidr, "");
    assert!(c.node_port_addresses.is_empty());
    assert_eq!(c.oom_score_adj, -999);
    let ct = &c.conntrack;
    assert_eq!((ct.max_per_core, ct.min), (32768, 131072));
    assert_eq!(ct.tcp_established_timeout, GoDuration::from_hours(24));
    assert_eq!(ct.tcp_close_wait_timeout, GoDuration::from_hours(1));
    assert!(!ct.tcp_be_liberal);
    assert_eq!((ct.udp_timeout, ct.udp_stream_timeout), (GoDuration::ZERO, GoDuration::ZERO));
    assert_eq!(c.config_sync_period, GoDuration::from_mins(15));
    assert_eq!(c.port_range, "");
    assert!(!c.windows_run_as_service);
    assert_eq!(c.udp_idle_timeout, None);
}

#[test]
fn empty_mode_is_nftables() {
    let c = load("");
    let mode = c.effective_mode();
    assert_eq!(mode.backend, Mode::Nftables);
    assert!(!mode.iptables_compat);
    assert_eq!(c.node_port_addresses(), NodePortAddresses::Primary);
    assert_eq!(c.local_detector(), LocalDetector::None);
    assert_eq!(c.effective_content_type(), "application/json");
}

#[test]
fn zero_values_mean_default_like_upstream() {
    let c = load(
        "bindAddress: \"\"\nconfigSyncPeriod: 0s\nclientConnection:\n  qps: 0\n  burst: 0\n  contentType: \"\"\niptables:\n  syncPeriod: 0s\n  minSyncPeriod: 0s\nnftables:\n  syncPeriod: 0s\n  minSyncPeriod: 0s\nipvs:\n  syncPeriod: 0s\n",
    );
    let mut expected = KubeProxyConfiguration::default();
    expected.client_connection.content_type = "application/vnd.kubernetes.protobuf".into();
    assert_eq!(c, expected);
}

#[test]
fn pointer_fields_keep_explicit_zero() {
    let c = load("oomScoreAdj: 0\niptables:\n  masqueradeBit: 0\n  localhostNodePorts: false\nconntrack:\n  maxPerCore: 0\n  min: 0\n  tcpEstablishedTimeout: 0s\n  tcpCloseWaitTimeout: 0s\n");
    assert_eq!(c.oom_score_adj, 0);
    assert_eq!(c.iptables.masquerade_bit, 0);
    assert!(!c.iptables.localhost_node_ports);
    assert_eq!((c.conntrack.max_per_core, c.conntrack.min), (0, 0));
    assert_eq!(c.conntrack.tcp_established_timeout, GoDuration::ZERO);
    assert_eq!(c.conntrack.tcp_close_wait_timeout, GoDuration::ZERO);
}

#[test]
fn server_addresses_follow_bind_address() {
    let c = load("bindAddress: \"::\"\n");
    assert_eq!(c.healthz_bind_address, "[::]:10256");
    assert_eq!(c.metrics_bind_address, "[::1]:10249");
    let c = load("healthzBindAddress: 198.18.0.1\nmetricsBindAddress: \"::1\"\n");
    assert_eq!(c.healthz_bind_address, "198.18.0.1:10256");
    assert_eq!(c.metrics_bind_address, "[::1]:10249");
}

#[test]
fn mode_sections_drive_the_helpers() {
    let c = load("mode: nftables\nnftables:\n  masqueradeAll: true\n  masqueradeBit: 5\n  syncPeriod: 1m\n  minSyncPeriod: 2s\niptables:\n  masqueradeBit: 9\n");
    assert_eq!((c.masquerade_all(), c.masquerade_bit()), (true, 5));
    assert_eq!((c.sync_period(), c.min_sync_period()), (GoDuration::from_mins(1), GoDuration::from_secs(2)));

    let c = load("mode: iptables\niptables:\n  masqueradeAll: true\n  masqueradeBit: 9\n  syncPeriod: 1h30m\nnftables:\n  masqueradeBit: 5\n");
    assert_eq!((c.masquerade_all(), c.masquerade_bit()), (true, 9));
    assert_eq!(c.sync_period(), GoDuration::from_mins(90));
    assert_eq!(
        c.node_port_addresses(),
        NodePortAddresses::Cidrs(vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()])
    );

    let c = load("mode: ipvs\niptables:\n  masqueradeAll: true\n  masqueradeBit: 9\nipvs:\n  syncPeriod: 10s\n  minSyncPeriod: 250ms\n");
    assert_eq!((c.masquerade_all(), c.masquerade_bit()), (true, 9));
    assert_eq!((c.sync_period(), c.min_sync_period()), (GoDuration::from_secs(10), GoDuration::from_millis(250)));
    let settings = c.proxy_settings("node-a".into(), vec!["198.18.0.1".parse().unwrap()]);
    assert_eq!(settings.masquerade_mark(), 1 << 9);
    assert!(settings.masquerade_all);
}

#[test]
fn node_port_addresses_and_detectors() {
    let c = load("nodePortAddresses: [primary]\n");
    assert_eq!(c.node_port_addresses(), NodePortAddresses::Primary);
    let c = load("nodePortAddresses: [\"198.18.0.7/16\", \"2001:db8::/64\"]\n");
    assert_eq!(
        c.node_port_addresses(),
        NodePortAddresses::Cidrs(vec!["198.18.0.0/16".parse().unwrap(), "2001:db8::/64".parse().unwrap()])
    );
    let c = load("nodePortAddresses: [all, \"198.18.0.0/15\"]\n");
    let expected = ["0.0.0.0/0", "::/0", "198.18.0.0/15"].map(|n| n.parse().unwrap()).to_vec();
    assert_eq!(c.node_port_addresses(), NodePortAddresses::Cidrs(expected));
    let p = parse(&format!("{HEAD}nodePortAddresses: [localhost]\n"), "t.yaml").unwrap();
    assert_eq!(p.warnings[0].to_string(), "t.yaml:3:21: nodePortAddresses[0]: \"localhost\" has no effect: NodePorts on loopback addresses are not served by kproxy");
    let c = load("clusterCIDR: \"198.18.0.0/16,2001:db8::/48\"\n");
    assert_eq!(
        c.local_detector(),
        LocalDetector::ClusterCidrs(vec!["198.18.0.0/16".parse().unwrap(), "2001:db8::/48".parse().unwrap()])
    );
    let c = load("detectLocalMode: NodeCIDR\nclusterCIDR: 198.18.0.0/16\n");
    assert_eq!(c.local_detector(), LocalDetector::NodeCidrs(vec![]));
    let c = load("detectLocalMode: BridgeInterface\ndetectLocal:\n  bridgeInterface: cbr0\n");
    assert_eq!(c.local_detector(), LocalDetector::BridgeInterface("cbr0".into()));
    let c = load("detectLocalMode: InterfaceNamePrefix\ndetectLocal:\n  interfaceNamePrefix: veth\n");
    assert_eq!(c.local_detector(), LocalDetector::InterfaceNamePrefix("veth".into()));
}

#[test]
fn every_field_is_read() {
    let c = load(concat!(
        "featureGates:\n  SomeGate: true\n  Other: false\n",
        "clientConnection:\n  kubeconfig: /k\n  acceptContentTypes: application/json\n  contentType: application/json\n  qps: 0.5\n  burst: 3\n",
        "logging:\n  format: json\n  flushFrequency: 1s\n  verbosity: 4\n  vmodule:\n  - filePattern: proxier\n    verbosity: 6\n  options:\n    json:\n      splitStream: true\n      infoBufferSize: 64Ki\n    text:\n      splitStream: true\n      infoBufferSize: \"1M\"\n",
        "hostnameOverride: node-1\nhealthzBindAddress: 0.0.0.0:1\nmetricsBindAddress: 0.0.0.0:2\nbindAddressHardFail: true\nenableProfiling: true\nshowHiddenMetricsForVersion: \"1.33\"\n",
        "iptables:\n  snatNodeInternalIP: true\n",
        "ipvs:\n  excludeCIDRs: [198.18.0.0/24]\n  tcpFinTimeout: 30s\n",
        "winkernel:\n  networkName: net\n  sourceVip: vip\n  enableDSR: true\n  rootHnsEndpointName: r\n  forwardHealthCheckVip: true\n",
        "conntrack:\n  tcpBeLiberal: true\n  udpTimeout: 30s\n  udpStreamTimeout: 300s\n",
        "windowsRunAsService: true\n",
    ));
    assert_eq!(c.feature_gates.get("SomeGate"), Some(&true));
    assert_eq!(c.feature_gates.get("Other"), Some(&false));
    assert_eq!(c.client_connection.kubeconfig, "/k");
    assert_eq!(c.client_connection.accept_content_types, "application/json");
    assert_eq!(c.client_connection.qps, 0.5);
    assert_eq!(c.logging.format, "json");
    assert_eq!(c.logging.verbosity, 4);
    assert_eq!(c.logging.vmodule[0].file_pattern, "proxier");
    assert_eq!(c.logging.vmodule[0].verbosity, 6);
    assert!(c.logging.options.json.split_stream);
    assert_eq!(c.logging.options.json.info_buffer_size, "64Ki");
    assert_eq!(c.logging.options.text.info_buffer_size, "1M");
    assert_eq!(c.hostname_override, "node-1");
    assert_eq!((c.healthz_bind_address.as_str(), c.metrics_bind_address.as_str()), ("0.0.0.0:1", "0.0.0.0:2"));
    assert!(c.bind_address_hard_fail && c.enable_profiling);
    assert_eq!(c.show_hidden_metrics_for_version, "1.33");
    assert!(c.iptables.snat_node_internal_ip);
    assert_eq!(c.ipvs.exclude_cidrs, ["198.18.0.0/24"]);
    assert_eq!(c.ipvs.tcp_fin_timeout, GoDuration::from_secs(30));
    assert_eq!(c.winkernel.network_name, "net");
    assert!(c.winkernel.enable_dsr && c.winkernel.forward_health_check_vip);
    assert!(c.conntrack.tcp_be_liberal);
    assert_eq!(c.conntrack.udp_stream_timeout, GoDuration::from_mins(5));
    assert!(c.windows_run_as_service);
}

#[test]
fn flush_frequency_accepts_nanoseconds() {
    let c = load("logging:\n  flushFrequency: 2000000000\n");
    assert_eq!(c.logging.flush_frequency, GoDuration::from_secs(2));
}

#[test]
fn json_documents_work() {
    let c = load("mode: ipvs\nipvs: {scheduler: lc}\n");
    assert_eq!(c.ipvs.scheduler, "lc");
    let text = r#"{"apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration", "mode": "ipvs", "conntrack": {"min": 5}}"#;
    let c = parse(text, "c.json").unwrap().config;
    assert_eq!(c.conntrack.min, 5);
}
