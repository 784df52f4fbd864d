//! One failing case per validation and decoding rule, each with its exact located message.

use kproxy_core::config::{parse, ConfigError};

const HEAD: &str = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n";

/// The error lines for a document made of HEAD (lines 1-2) and `body` (from line 3).
fn errors(body: &str) -> Vec<String> {
    match parse(&format!("{HEAD}{body}"), "config.yaml") {
        Ok(_) => panic!("expected errors for:\n{body}"),
        Err(e) => e.lines(),
    }
}

fn error(body: &str) -> String {
    let all = errors(body);
    assert_eq!(all.len(), 1, "expected one error, got {all:#?}");
    all.into_iter().next().unwrap()
}

fn fixture(name: &str) -> (String, ConfigError) {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    (text.clone(), parse(&text, name).unwrap_err())
}

#[test]
fn ipvs_scheduler_fixture() {
    let (_, e) = fixture("invalid-scheduler.yaml");
    assert!(matches!(e, ConfigError::Validate(_)));
    assert_eq!(
        e.to_string(),
        "invalid-scheduler.yaml:7:14: ipvs.scheduler: \"foo\" is not one of rr, wrr, lc, wlc, lblc, lblcr, sh, dh, sed, nq, mh (blank means rr)"
    );
}

#[test]
fn unknown_field_fixture_suggests() {
    let (_, e) = fixture("unknown-field.yaml");
    assert!(matches!(e, ConfigError::Decode(_)));
    assert_eq!(e.to_string(), "unknown-field.yaml:5:3: clientConnection.burts: unknown field; did you mean `burst`?");
}

#[test]
fn syntax_error_fixture_is_located() {
    let (_, e) = fixture("syntax-error.yaml");
    let ConfigError::Syntax { .. } = &e else { panic!("{e:?}") };
    let text = e.to_string();
    assert!(text.starts_with("syntax-error.yaml:4:"), "{text}");
    assert!(text.contains("invalid YAML"), "{text}");
}

#[test]
fn userspace_fixture_suggests_nftables() {
    let (_, e) = fixture("userspace.yaml");
    assert_eq!(
        e.to_string(),
        "userspace.yaml:3:7: mode: \"userspace\" is no longer supported (upstream removed the userspace proxy in Kubernetes 1.26); use \"nftables\""
    );
}

#[test]
fn all_errors_are_reported() {
    let (_, e) = fixture("many-errors.yaml");
    assert_eq!(
        e.lines(),
        [
            "many-errors.yaml:3:14: bindAddress: \"not-an-ip\" is not a valid IP address",
            "many-errors.yaml:4:14: oomScoreAdj: 2000 must be within the range [-1000, 1000]",
            "many-errors.yaml:6:18: iptables.masqueradeBit: 32 must be within the range [0, 31]",
            "many-errors.yaml:8:15: conntrack.maxPerCore: -1 must be greater than or equal to 0",
        ]
    );
}

#[test]
fn unknown_field_without_close_match_lists_known_ones() {
    assert_eq!(
        error("detectLocal:\n  zzzzzzzzzz: x\n"),
        "config.yaml:4:3: detectLocal.zzzzzzzzzz: unknown field (known fields here: bridgeInterface, interfaceNamePrefix)"
    );
    assert_eq!(error("strictARP: true\n"), "config.yaml:3:1: strictARP: unknown field (known fields here: apiVersion, kind, featureGates, clientConnection, logging, hostnameOverride, bindAddress, healthzBindAddress, metricsBindAddress, bindAddressHardFail, enableProfiling, showHiddenMetricsForVersion, mode, iptables, ipvs, nftables, winkernel, detectLocalMode, detectLocal, clusterCIDR, nodePortAddresses, oomScoreAdj, conntrack, configSyncPeriod, portRange, windowsRunAsService, udpIdleTimeout, resourceContainer)");
    assert_eq!(
        error("ipvs:\n  strictArp: true\n"),
        "config.yaml:4:3: ipvs.strictArp: unknown field; did you mean `strictARP`?"
    );
    assert_eq!(
        error("clusterCidr: 198.18.0.0/16\n"),
        "config.yaml:3:1: clusterCidr: unknown field; did you mean `clusterCIDR`?"
    );
}

#[test]
fn duplicate_fields_are_rejected() {
    assert_eq!(
        error("mode: ipvs\nmode: nftables\n"),
        "config.yaml:4:1: mode: duplicate field (first set at config.yaml:3:1)"
    );
}

#[test]
fn type_errors_are_located() {
    assert_eq!(
        error("clientConnection:\n  qps: \"10\"\n"),
        "config.yaml:4:8: clientConnection.qps: expected a number, found the string \"10\""
    );
    assert_eq!(
        error("clientConnection:\n  burst: 1.5\n"),
        "config.yaml:4:10: clientConnection.burst: expected an integer, found the number 1.5"
    );
    assert_eq!(
        error("oomScoreAdj: 99999999999\n"),
        "config.yaml:3:14: oomScoreAdj: 99999999999 does not fit in a 32-bit integer (-2147483648 to 2147483647)"
    );
    assert_eq!(error("hostnameOverride: 123\n"), "config.yaml:3:19: hostnameOverride: expected a string, found the number 123; quote it (\"123\") if a string is meant");
    assert_eq!(
        error("ipvs:\n  strictARP: \"yes\"\n"),
        "config.yaml:4:14: ipvs.strictARP: expected true or false, found the string \"yes\""
    );
    assert_eq!(error("configSyncPeriod: 15\n"), "config.yaml:3:19: configSyncPeriod: expected a duration such as \"30s\", \"250ms\" or \"1h0m0s\", found the number 15");
    assert_eq!(
        error("configSyncPeriod: 15x\n"),
        "config.yaml:3:19: configSyncPeriod: unknown unit \"x\" in duration \"15x\" (units are ns, us, ms, s, m, h)"
    );
    assert_eq!(
        error("nodePortAddresses: 0.0.0.0/0\n"),
        "config.yaml:3:20: nodePortAddresses: expected a list of strings, found the string \"0.0.0.0/0\""
    );
    assert_eq!(
        error("conntrack: 5\n"),
        "config.yaml:3:12: conntrack: expected a mapping of fields, found the number 5"
    );
    assert_eq!(
        error("featureGates:\n  A: maybe\n"),
        "config.yaml:4:6: featureGates.A: expected true or false, found the string \"maybe\""
    );
    assert_eq!(
        error("logging:\n  verbosity: -1\n"),
        "config.yaml:4:14: logging.verbosity: -1 does not fit in a 32-bit unsigned integer (0 to 4294967295)"
    );
    assert_eq!(
        error("logging:\n  options:\n    json:\n      infoBufferSize: lots\n"),
        "config.yaml:6:23: logging.options.json.infoBufferSize: \"lots\" is not a quantity such as \"0\" or \"64Ki\""
    );
}

#[test]
fn api_version_and_kind_are_checked() {
    let e = parse("kind: KubeProxyConfiguration\nmode: ipvs\n", "c.yaml").unwrap_err();
    assert_eq!(e.to_string(), "c.yaml:1:1: apiVersion: missing; add `apiVersion: kubeproxy.config.k8s.io/v1alpha1`");
    let e = parse("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nmode: ipvs\n", "c.yaml").unwrap_err();
    assert_eq!(e.to_string(), "c.yaml:1:1: kind: missing; add `kind: KubeProxyConfiguration`");
    let e = parse("apiVersion: componentconfig/v1alpha1\nkind: KubeProxyConfiguration\n", "c.yaml").unwrap_err();
    assert_eq!(e.to_string(), "c.yaml:1:13: apiVersion: \"componentconfig/v1alpha1\" is not supported; expected \"kubeproxy.config.k8s.io/v1alpha1\"");
    let e = parse("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeletConfiguration\n", "c.yaml").unwrap_err();
    assert_eq!(
        e.to_string(),
        "c.yaml:2:7: kind: \"KubeletConfiguration\" is not supported; expected \"KubeProxyConfiguration\""
    );
    let e = parse("- a\n- b\n", "c.yaml").unwrap_err();
    assert_eq!(e.to_string(), "c.yaml:1:1: expected a KubeProxyConfiguration mapping (apiVersion, kind, fields)");
    let e = parse("", "c.yaml").unwrap_err();
    assert!(e.to_string().starts_with("c.yaml:1:1: invalid YAML: the file is empty"), "{e}");
}

#[test]
fn masquerade_bits() {
    assert_eq!(
        error("iptables:\n  masqueradeBit: -1\n"),
        "config.yaml:4:18: iptables.masqueradeBit: -1 must be within the range [0, 31]"
    );
    assert_eq!(
        error("nftables:\n  masqueradeBit: 32\n"),
        "config.yaml:4:18: nftables.masqueradeBit: 32 must be within the range [0, 31]"
    );
}

#[test]
fn sync_periods_of_the_mode() {
    assert_eq!(
        errors("nftables:\n  syncPeriod: -1s\n"),
        [
            "config.yaml:4:15: nftables.syncPeriod: -1s must be greater than 0",
            "config.yaml:4:15: nftables.syncPeriod: nftables.syncPeriod (-1s) must be greater than or equal to nftables.minSyncPeriod (1s)",
        ]
    );
    assert_eq!(
        error("nftables:\n  minSyncPeriod: -1s\n"),
        "config.yaml:4:18: nftables.minSyncPeriod: -1s must be greater than or equal to 0"
    );
    assert_eq!(
        error("mode: iptables\niptables:\n  syncPeriod: 500ms\n"),
        "config.yaml:5:15: iptables.syncPeriod: iptables.syncPeriod (500ms) must be greater than or equal to iptables.minSyncPeriod (1s)"
    );
    assert_eq!(
        error("mode: ipvs\nipvs:\n  minSyncPeriod: 1m\n"),
        "config.yaml:5:18: ipvs.minSyncPeriod: ipvs.syncPeriod (30s) must be greater than or equal to ipvs.minSyncPeriod (1m0s)"
    );
    // Other modes' sections are range-checked too when written (issue 12 item 4; upstream
    // skips them), with a note saying so; their defaults never fail.
    assert_eq!(
        error("mode: nftables\nipvs:\n  minSyncPeriod: 1m\n"),
        "config.yaml:5:18: ipvs.minSyncPeriod: ipvs.syncPeriod (30s) must be greater than or equal to ipvs.minSyncPeriod (1m0s) (checked although this mode is not in use)"
    );
}

#[test]
fn ipvs_rules() {
    assert_eq!(
        error("mode: ipvs\nipvs:\n  tcpTimeout: -1s\n"),
        "config.yaml:5:15: ipvs.tcpTimeout: -1s must be greater than or equal to 0"
    );
    assert_eq!(
        error("mode: ipvs\nipvs:\n  tcpFinTimeout: -1s\n"),
        "config.yaml:5:18: ipvs.tcpFinTimeout: -1s must be greater than or equal to 0"
    );
    assert_eq!(
        error("mode: ipvs\nipvs:\n  udpTimeout: -1s\n"),
        "config.yaml:5:15: ipvs.udpTimeout: -1s must be greater than or equal to 0"
    );
    assert_eq!(
        error("mode: ipvs\nipvs:\n  scheduler: rrr\n"),
        "config.yaml:5:14: ipvs.scheduler: \"rrr\" is not one of rr, wrr, lc, wlc, lblc, lblcr, sh, dh, sed, nq, mh (blank means rr); did you mean \"rr\"?"
    );
    assert_eq!(
        error("mode: ipvs\nipvs:\n  excludeCIDRs:\n  - 198.18.0.0/24\n  - 198.18.0.0/99\n"),
        "config.yaml:7:5: ipvs.excludeCIDRs[1]: \"198.18.0.0/99\" must be a valid CIDR (e.g. 10.100.0.0/16 or fde4:8dba:82e1::/48)"
    );
}

#[test]
fn conntrack_rules() {
    assert_eq!(
        error("conntrack:\n  min: -5\n"),
        "config.yaml:4:8: conntrack.min: -5 must be greater than or equal to 0"
    );
    assert_eq!(
        error("conntrack:\n  tcpEstablishedTimeout: -1h\n"),
        "config.yaml:4:26: conntrack.tcpEstablishedTimeout: -1h0m0s must be greater than or equal to 0"
    );
    assert_eq!(
        error("conntrack:\n  tcpCloseWaitTimeout: -1s\n"),
        "config.yaml:4:24: conntrack.tcpCloseWaitTimeout: -1s must be greater than or equal to 0"
    );
    assert_eq!(
        error("conntrack:\n  udpTimeout: -1s\n"),
        "config.yaml:4:15: conntrack.udpTimeout: -1s must be greater than or equal to 0"
    );
    assert_eq!(
        error("conntrack:\n  udpStreamTimeout: -1s\n"),
        "config.yaml:4:21: conntrack.udpStreamTimeout: -1s must be greater than or equal to 0"
    );
}

#[test]
fn mode_rules() {
    assert_eq!(
        error("mode: ipvss\n"),
        "config.yaml:3:7: mode: \"ipvss\" is not one of nftables, iptables, ipvs (blank means nftables); did you mean \"ipvs\"?"
    );
    assert_eq!(
        error("mode: kernelspace\n"),
        "config.yaml:3:7: mode: \"kernelspace\" is the Windows proxy mode; on Linux use \"nftables\""
    );
}

#[test]
fn scalar_rules() {
    assert_eq!(
        error("clientConnection:\n  burst: -1\n"),
        "config.yaml:4:10: clientConnection.burst: -1 must be greater than or equal to 0"
    );
    assert_eq!(error("configSyncPeriod: -1m\n"), "config.yaml:3:19: configSyncPeriod: -1m0s must be greater than 0");
    assert_eq!(error("udpIdleTimeout: -1s\n"), "config.yaml:3:17: udpIdleTimeout: -1s must be greater than 0");
    assert_eq!(
        error("healthzBindAddress: 198.18.0.1:0\n"),
        "config.yaml:3:21: healthzBindAddress: port \"0\" in \"198.18.0.1:0\" must be a valid port (1-65535)"
    );
    assert_eq!(
        error("healthzBindAddress: \"host:80\"\n"),
        "config.yaml:3:21: healthzBindAddress: \"host\" in \"host:80\" must be a valid IP"
    );
    assert_eq!(
        error("metricsBindAddress: nowhere\n"),
        "config.yaml:3:21: metricsBindAddress: \"nowhere\" must be IP:port (e.g. 0.0.0.0:10256 or [::]:10256)"
    );
    assert_eq!(
        error("portRange: 40000-30000\n"),
        "config.yaml:3:12: portRange: \"40000-30000\" must be a valid port range (e.g. 30000-32767)"
    );
    assert_eq!(error("showHiddenMetricsForVersion: latest\n"), "config.yaml:3:30: showHiddenMetricsForVersion: \"latest\" must be a version of the form <major>.<minor>, e.g. 1.33");
    assert_eq!(
        error("logging:\n  format: xml\n"),
        "config.yaml:4:11: logging.format: \"xml\" is not one of text, json"
    );
}

#[test]
fn node_port_address_rules() {
    assert_eq!(error("nodePortAddresses: [\"198.18.0.0/15\", bogus]\n"), "config.yaml:3:38: nodePortAddresses[1]: \"bogus\" must be a valid CIDR (e.g. 10.100.0.0/16 or fde4:8dba:82e1::/48)");
    assert_eq!(
        error("nodePortAddresses: [\"198.18.0.0/15\", primary]\n"),
        "config.yaml:3:38: nodePortAddresses[1]: can't use both 'primary' and CIDRs"
    );
}

#[test]
fn detect_local_rules() {
    assert_eq!(
        error("detectLocalMode: PodCIDR\n"),
        "config.yaml:3:18: detectLocalMode: \"PodCIDR\" is not one of ClusterCIDR, NodeCIDR, BridgeInterface, InterfaceNamePrefix (blank means ClusterCIDR); did you mean \"NodeCIDR\"?"
    );
    assert_eq!(
        error("detectLocalMode: BridgeInterface\n"),
        "config.yaml:3:18: detectLocal.bridgeInterface: must not be empty when detectLocalMode is BridgeInterface (set detectLocal.bridgeInterface or --pod-bridge-interface)"
    );
    assert_eq!(
        error("detectLocalMode: InterfaceNamePrefix\ndetectLocal:\n  interfaceNamePrefix: \"\"\n"),
        "config.yaml:5:24: detectLocal.interfaceNamePrefix: must not be empty when detectLocalMode is InterfaceNamePrefix (set detectLocal.interfaceNamePrefix or --pod-interface-name-prefix)"
    );
}

#[test]
fn cluster_cidr_rules() {
    assert_eq!(error("clusterCIDR: 198.18.0.0\n"), "config.yaml:3:14: clusterCIDR: \"198.18.0.0\" must be a valid CIDR block (e.g. 10.100.0.0/16 or fde4:8dba:82e1::/48)");
    assert_eq!(error("clusterCIDR: \"198.18.0.0/16,198.19.0.0/16\"\n"), "config.yaml:3:14: clusterCIDR: \"198.18.0.0/16,198.19.0.0/16\" must be a dual-stack pair: one IPv4 and one IPv6 CIDR");
    assert_eq!(
        error("clusterCIDR: \"198.18.0.0/16,2001:db8::/48,2001:db8:1::/48\"\n"),
        "config.yaml:3:14: clusterCIDR: \"198.18.0.0/16,2001:db8::/48,2001:db8:1::/48\" must be a single CIDR or a dual-stack pair (e.g. 10.100.0.0/16,fde4:8dba:82e1::/48)"
    );
    assert!(parse(&format!("{HEAD}clusterCIDR: \"198.18.0.0/16,2001:db8::/48\"\n"), "c").is_ok());
}

#[test]
fn yaml_1_1_booleans_are_not_strings() {
    assert_eq!(error("winkernel:\n  networkName: n\n"), "config.yaml:4:16: winkernel.networkName: expected a string, found the boolean n; quote it (\"n\") if a string is meant");
}
