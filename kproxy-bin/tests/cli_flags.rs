//! The command line through `parse_invocation`: pflag syntaxes, every flag reaching its
//! field, commands, and errors that name the flag. Default config files point nowhere.

use std::ffi::OsString;
use std::path::PathBuf;

use kproxy_bin::cli::{help_text, parse_invocation, CliError, Command, ExplainArgs, Invocation};

fn run(args: &[&str]) -> Result<Invocation, CliError> {
    let mut full =
        vec!["kproxy", "--kproxy-main-config=/nonexistent/main.yaml", "--kproxy-proxy-config=/nonexistent/proxy.conf"];
    full.extend_from_slice(args);
    parse_invocation(full.into_iter().map(OsString::from))
}

fn ok(args: &[&str]) -> Invocation {
    run(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

#[test]
fn pflag_value_syntaxes() {
    assert_eq!(ok(&["--proxy-mode=ipvs"]).config.mode, "ipvs");
    assert_eq!(ok(&["--proxy-mode", "ipvs"]).config.mode, "ipvs");
    assert_eq!(ok(&["--kube-api-qps=7.5"]).config.client_connection.qps, 7.5);
    assert_eq!(ok(&["--oom-score-adj", "-500"]).config.oom_score_adj, -500);
    assert_eq!(ok(&["--oom-score-adj=-500"]).config.oom_score_adj, -500);
}

#[test]
fn pflag_word_separators_are_normalised() {
    // kube-proxy's pflag set treats `_` and `-` in flag names alike; values keep theirs.
    assert_eq!(ok(&["--cluster_cidr=198.18.0.0/16"]).config.cluster_cidr, "198.18.0.0/16");
    assert_eq!(ok(&["--cluster_cidr", "198.18.0.0/16"]).config.cluster_cidr, "198.18.0.0/16");
    assert!(ok(&["--masquerade_all"]).config.masquerade_all());
    assert_eq!(ok(&["--kubeconfig=/etc/kube_proxy/kc"]).config.client_connection.kubeconfig, "/etc/kube_proxy/kc");
    assert!(ok(&["--ipvs_strict_arp=true"]).config.ipvs.strict_arp);
    assert!(run(&["--no_such_flag"]).is_err());
}

#[test]
fn pflag_booleans() {
    assert!(ok(&["--masquerade-all"]).config.masquerade_all());
    assert!(ok(&["--masquerade-all=true"]).config.masquerade_all());
    assert!(ok(&["--masquerade-all=T"]).config.masquerade_all());
    assert!(!ok(&["--masquerade-all=false"]).config.masquerade_all());
    assert!(!ok(&["--masquerade-all", "--masquerade-all=0"]).config.masquerade_all());
    // --masquerade-all applies to whichever mode runs.
    let inv = ok(&["--masquerade-all", "--proxy-mode=ipvs"]);
    assert!(inv.config.masquerade_all() && inv.config.iptables.masquerade_all);
    assert!(ok(&["--ipvs-strict-arp"]).config.ipvs.strict_arp);
    assert!(!ok(&["--iptables-localhost-nodeports=false"]).config.iptables.localhost_node_ports);
    let e = run(&["--masquerade-all=maybe"]).unwrap_err();
    assert!(e.to_string().contains("maybe"), "{e}");
}

#[test]
fn verbosity_syntaxes() {
    for args in [&["--v=2"][..], &["-v=2"], &["-v", "2"], &["-v2"], &["--v", "2"]] {
        let inv = ok(args);
        assert_eq!(inv.extras.verbosity, 2, "{args:?}");
        assert_eq!(inv.config.logging.verbosity, 2, "{args:?}");
    }
    let inv = ok(&["--vmodule=proxier=4,sync*=5"]);
    assert_eq!(inv.config.logging.vmodule.len(), 2);
    assert_eq!(inv.config.logging.vmodule[1].file_pattern, "sync*");
    assert_eq!(inv.config.logging.vmodule[1].verbosity, 5);
}

#[test]
fn lists_and_maps() {
    let inv = ok(&["--nodeport-addresses=198.18.0.0/16,2001:db8::/64", "--nodeport-addresses", "198.19.0.0/16"]);
    assert_eq!(inv.config.node_port_addresses, ["198.18.0.0/16", "2001:db8::/64", "198.19.0.0/16"]);
    let inv = ok(&["--feature-gates=A=true,B=false", "--feature-gates", "C=true"]);
    assert_eq!(inv.config.feature_gates.len(), 3);
    assert_eq!(inv.config.feature_gates.get("B"), Some(&false));
    assert!(run(&["--feature-gates=A"]).unwrap_err().to_string().contains("key=value"));
    let inv = ok(&["--proxy-mode=ipvs", "--ipvs-exclude-cidrs=198.18.0.0/24,198.18.1.0/24"]);
    assert_eq!(inv.config.ipvs.exclude_cidrs.len(), 2);
}

#[test]
fn every_table_flag_reaches_its_field() {
    let inv = ok(&[
        "--cluster-cidr=198.18.0.0/16",
        "--bind-address=198.18.0.5",
        "--bind-address-hard-fail",
        "--healthz-bind-address=198.18.0.5:1234",
        "--metrics-bind-address=0.0.0.0:2345",
        "--kubeconfig=/k",
        "--kube-api-burst=40",
        "--kube-api-content-type=application/json",
        "--config-sync-period=1h",
        "--iptables-masquerade-bit=12",
        "--iptables-sync-period=1m",
        "--iptables-min-sync-period=2s",
        "--nftables-masquerade-bit=13",
        "--conntrack-max-per-core=0",
        "--conntrack-min=5",
        "--conntrack-tcp-timeout-established=12h",
        "--conntrack-tcp-timeout-close-wait=30m",
        "--conntrack-tcp-be-liberal",
        "--conntrack-udp-timeout=30s",
        "--conntrack-udp-timeout-stream=2m",
        "--detect-local-mode=BridgeInterface",
        "--pod-bridge-interface=cbr0",
        "--pod-interface-name-prefix=veth",
        "--proxy-port-range=30000-30100",
        "--profiling",
        "--show-hidden-metrics-for-version=1.33",
        "--logging-format=json",
        "--log-flush-frequency=10s",
        "--log-json-split-stream",
        "--log-json-info-buffer-size=1Mi",
        "--hostname-override=  Node-A ",
        "--master=https://198.18.0.1:6443",
        "--manifests=/m",
        "--once",
        "--dry-run",
        "--init-only",
    ]);
    let c = &inv.config;
    assert_eq!(c.cluster_cidr, "198.18.0.0/16");
    assert_eq!(c.bind_address, "198.18.0.5");
    assert!(c.bind_address_hard_fail);
    assert_eq!(c.healthz_bind_address, "198.18.0.5:1234");
    assert_eq!(c.metrics_bind_address, "0.0.0.0:2345");
    assert_eq!(c.client_connection.kubeconfig, "/k");
    assert_eq!(c.client_connection.burst, 40);
    assert_eq!(c.client_connection.content_type, "application/json");
    assert_eq!(c.config_sync_period.to_string(), "1h0m0s");
    assert_eq!(c.iptables.masquerade_bit, 12);
    assert_eq!(c.nftables.masquerade_bit, 13);
    assert_eq!(c.masquerade_bit(), 13);
    assert_eq!(c.sync_period().to_string(), "1m0s");
    assert_eq!(c.min_sync_period().to_string(), "2s");
    assert_eq!(c.iptables.sync_period.to_string(), "1m0s");
    assert_eq!((c.conntrack.max_per_core, c.conntrack.min), (0, 5));
    assert_eq!(c.conntrack.tcp_established_timeout.to_string(), "12h0m0s");
    assert_eq!(c.conntrack.tcp_close_wait_timeout.to_string(), "30m0s");
    assert!(c.conntrack.tcp_be_liberal);
    assert_eq!(c.conntrack.udp_timeout.to_string(), "30s");
    assert_eq!(c.conntrack.udp_stream_timeout.to_string(), "2m0s");
    assert_eq!(c.detect_local_mode, "BridgeInterface");
    assert_eq!(c.detect_local.bridge_interface, "cbr0");
    assert_eq!(c.detect_local.interface_name_prefix, "veth");
    assert_eq!(c.port_range, "30000-30100");
    assert!(c.enable_profiling);
    assert_eq!(c.show_hidden_metrics_for_version, "1.33");
    assert_eq!(c.logging.format, "json");
    assert_eq!(c.logging.flush_frequency.to_string(), "10s");
    assert!(c.logging.options.json.split_stream);
    assert_eq!(c.logging.options.json.info_buffer_size, "1Mi");
    assert_eq!(c.hostname_override, "node-a");
    assert_eq!(inv.extras.master.as_deref(), Some("https://198.18.0.1:6443"));
    assert_eq!(inv.extras.manifests, Some(PathBuf::from("/m")));
    assert!(inv.extras.once && inv.extras.dry_run && inv.extras.init_only);
    assert_eq!(inv.command, Command::Run);
    assert!(inv.extras.config_files.is_empty());
}

#[test]
fn ipvs_flags() {
    let inv = ok(&[
        "--proxy-mode=ipvs",
        "--ipvs-scheduler=lc",
        "--ipvs-sync-period=10s",
        "--ipvs-min-sync-period=1s",
        "--ipvs-tcp-timeout=900s",
        "--ipvs-tcpfin-timeout=2m",
        "--ipvs-udp-timeout=300s",
        "--iptables-sync-period=1s",
    ]);
    let c = &inv.config;
    assert_eq!(c.ipvs.scheduler, "lc");
    assert_eq!(c.sync_period().to_string(), "10s");
    assert_eq!(c.min_sync_period().to_string(), "1s");
    assert_eq!(c.ipvs.tcp_timeout.to_string(), "15m0s");
    assert_eq!(c.ipvs.tcp_fin_timeout.to_string(), "2m0s");
    assert_eq!(c.ipvs.udp_timeout.to_string(), "5m0s");
}

#[test]
fn commands() {
    assert_eq!(ok(&["validate"]).command, Command::Validate);
    assert_eq!(ok(&["validate", "--proxy-mode=ipvs"]).config.mode, "ipvs");
    assert_eq!(ok(&["--proxy-mode=ipvs", "validate"]).config.mode, "ipvs");
    assert_eq!(ok(&["--cleanup"]).command, Command::Cleanup);
    assert_eq!(ok(&["--write-config-to=/tmp/x.yaml"]).command, Command::WriteConfig("/tmp/x.yaml".into()));
    assert!(matches!(ok(&["--version"]).command, Command::Version(v) if v.starts_with("kproxy ")));
    // `explain` takes its target and -o, and the daemon's flags before or after it.
    let inv = ok(&["--proxy-mode=ipvs", "explain", "t/web", "-o", "json", "--manifests", "/m"]);
    assert_eq!(inv.command, Command::Explain(ExplainArgs { target: "t/web".into(), json: true }));
    assert_eq!((inv.config.mode.as_str(), inv.extras.manifests), ("ipvs", Some(PathBuf::from("/m"))));
    assert_eq!(ok(&["explain", "198.19.0.10:80/udp"]).command, Command::Explain(ExplainArgs { target: "198.19.0.10:80/udp".into(), json: false }));
    assert!(matches!(run(&["explain"]), Err(CliError::ParseArgs(_))), "a target is required");
    assert!(matches!(run(&["explain", "t/web", "-o", "yaml"]), Err(CliError::ParseArgs(_))));
}

#[test]
fn unknown_flags_and_arguments_are_errors() {
    let e = run(&["--no-such-flag=1"]).unwrap_err();
    assert!(matches!(e, CliError::ParseArgs(_)));
    assert!(e.to_string().contains("--no-such-flag"), "{e}");
    let e = run(&["stray"]).unwrap_err();
    assert!(e.to_string().contains("stray"), "{e}");
    let e = run(&["--masquerade-all", "true"]).unwrap_err();
    assert!(e.to_string().contains("--masquerade-all=true"), "{e}");
    let e = run(&["--proxy-mode"]).unwrap_err();
    assert!(e.to_string().contains("--proxy-mode"), "{e}");
}

#[test]
fn flag_values_are_validated_with_the_flag_named() {
    let e = run(&["--proxy-mode=userspace"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "flag --proxy-mode: mode: \"userspace\" is no longer supported (upstream removed the userspace proxy in Kubernetes 1.26); use \"nftables\""
    );
    let e = run(&["--kube-api-qps=fast"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "flag --kube-api-qps: clientConnection.qps: expected a number, found the string \"fast\""
    );
    assert!(run(&["--hostname-override=  "]).unwrap_err().to_string().contains("empty --hostname-override"));
}

#[test]
fn deprecated_port_flags() {
    let inv = ok(&["--healthz-port=1234", "--metrics-port=4321", "--bind-address=::"]);
    assert_eq!(inv.config.healthz_bind_address, "[::]:1234");
    assert_eq!(inv.config.metrics_bind_address, "[::1]:4321");
    assert_eq!(inv.warnings.len(), 2);
    assert!(run(&["--healthz-port=0"]).is_err());
}

#[test]
fn help_lists_upstream_flags() {
    let help = help_text();
    for flag in ["--proxy-mode", "--masquerade-all", "--ipvs-scheduler", "--manifests", "--dry-run", "validate"] {
        assert!(help.contains(flag), "{flag} missing from help");
    }
    assert!(!help.contains("--kproxy-main-config"));
}

#[test]
fn nftables_flags_win_over_iptables_ones() {
    let inv = ok(&["--nftables-sync-period=2m", "--iptables-sync-period=1m", "--nftables-min-sync-period=3s"]);
    assert_eq!(inv.config.sync_period().to_string(), "2m0s");
    assert_eq!(inv.config.min_sync_period().to_string(), "3s");
    assert_eq!(inv.config.iptables.sync_period.to_string(), "1m0s");
    // Without the nftables flag, --iptables-sync-period applies to nftables mode, as upstream.
    assert_eq!(ok(&["--iptables-sync-period=1m"]).config.sync_period().to_string(), "1m0s");
}

#[test]
fn allow_list_flags() {
    let net = |s: &str| s.parse::<ipnet::IpNet>().unwrap();
    let inv = ok(&["--external-ip-allowed-cidrs=198.18.200.0/24,2001:db8:200::/64", "--external-ip-allowed-cidrs", "198.18.201.1"]);
    assert_eq!(
        inv.extras.external_ip_allowed_cidrs,
        Some(vec![net("198.18.200.0/24"), net("2001:db8:200::/64"), net("198.18.201.1/32")])
    );
    assert_eq!(inv.extras.load_balancer_ip_allowed_cidrs, None);
    let inv = ok(&["--load-balancer-ip-allowed-cidrs", "198.18.100.0/24"]);
    assert_eq!(inv.extras.load_balancer_ip_allowed_cidrs, Some(vec![net("198.18.100.0/24")]));
    assert_eq!(ok(&[]).extras.external_ip_allowed_cidrs, None);
    let err = run(&["--external-ip-allowed-cidrs="]).unwrap_err().to_string();
    assert!(err.contains("--external-ip-allowed-cidrs is empty"), "{err}");
    let err = run(&["--load-balancer-ip-allowed-cidrs=198.18.0.0/33"]).unwrap_err().to_string();
    assert!(err.contains("198.18.0.0/33") && err.contains("--load-balancer-ip-allowed-cidrs"), "{err}");
    assert!(help_text().contains("--external-ip-allowed-cidrs"));
}
