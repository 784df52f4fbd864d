//! Layering (field-by-field merge, flags on top), flag values, and warnings.

use kproxy_core::config::{resolve, ConfigError, FlagValue, GoDuration, Layer, Origin};

const HEAD: &str = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n";

fn file(body: &str, name: &str) -> Layer {
    Layer::from_yaml(&format!("{HEAD}{body}"), name).unwrap_or_else(|e| panic!("{e}"))
}

fn flag(path: &str, value: &str, name: &str) -> Layer {
    let mut l = Layer::empty();
    l.set_flag(path, FlagValue::Scalar(value.into()), name);
    l
}

#[test]
fn flag_beats_main_file_beats_proxy_file() {
    let proxy = file(
        "mode: ipvs\nclusterCIDR: 198.18.0.0/16\nclientConnection:\n  qps: 7\n  burst: 70\nconntrack:\n  min: 1\n",
        "config.conf",
    );
    let main = file("clientConnection:\n  qps: 8\nconntrack:\n  maxPerCore: 2\n", "kube-proxy.yaml");
    let flags = flag("clientConnection.qps", "9", "--kube-api-qps");
    let p = resolve(&Layer::merged([&proxy, &main, &flags])).unwrap();
    let c = &p.config;
    assert_eq!(c.mode, "ipvs"); // only the proxy file sets it
    assert_eq!(c.cluster_cidr, "198.18.0.0/16");
    assert_eq!(c.client_connection.qps, 9.0); // flag
    assert_eq!(c.client_connection.burst, 70); // proxy file, untouched by main's clientConnection
    assert_eq!((c.conntrack.min, c.conntrack.max_per_core), (1, 2));
    assert_eq!(p.origins.get("clientConnection.qps"), &Origin::Flag("--kube-api-qps".into()));
    assert!(
        matches!(p.origins.get("clientConnection.burst"), Origin::File { source, .. } if &**source == "config.conf")
    );
    assert!(
        matches!(p.origins.get("conntrack.maxPerCore"), Origin::File { source, .. } if &**source == "kube-proxy.yaml")
    );
    assert_eq!(p.origins.get("ipvs.scheduler"), &Origin::Default);
}

#[test]
fn null_in_a_higher_layer_keeps_the_lower_value() {
    let low = file("mode: ipvs\n", "low");
    let high = file("mode: null\n", "high");
    assert_eq!(resolve(&Layer::merged([&low, &high])).unwrap().config.mode, "ipvs");
}

#[test]
fn lists_are_replaced_and_maps_merged() {
    let low = file("nodePortAddresses: [198.18.0.0/16, 2001:db8::/64]\nfeatureGates:\n  A: true\n  B: true\n", "low");
    let mut flags = Layer::empty();
    flags.set_flag("nodePortAddresses", FlagValue::List(vec!["198.19.0.0/16".into()]), "--nodeport-addresses");
    flags.set_flag("featureGates", FlagValue::Map(vec![("B".into(), "false".into())]), "--feature-gates");
    let c = resolve(&Layer::merged([&low, &flags])).unwrap().config;
    assert_eq!(c.node_port_addresses, ["198.19.0.0/16"]);
    assert_eq!(c.feature_gates.get("A"), Some(&true));
    assert_eq!(c.feature_gates.get("B"), Some(&false));
}

#[test]
fn flag_values_are_typed_and_located() {
    let mut flags = Layer::empty();
    flags.set_flag("clientConnection.burst", FlagValue::Scalar("many".into()), "--kube-api-burst");
    flags.set_flag("iptables.syncPeriod", FlagValue::Scalar("30".into()), "--iptables-sync-period");
    flags.set_flag("iptables.masqueradeAll", FlagValue::Scalar("T".into()), "--masquerade-all");
    let e = resolve(&flags).unwrap_err();
    assert!(matches!(e, ConfigError::Decode(_)));
    assert_eq!(
        e.lines(),
        [
            "flag --kube-api-burst: clientConnection.burst: expected an integer, found the string \"many\"",
            "flag --iptables-sync-period: iptables.syncPeriod: missing unit in duration \"30\" (write e.g. \"30s\"; units are ns, us, ms, s, m, h)",
        ]
    );
    let mut flags = Layer::empty();
    flags.set_flag("ipvs.scheduler", FlagValue::Scalar("foo".into()), "--ipvs-scheduler");
    flags.set_flag("mode", FlagValue::Scalar("ipvs".into()), "--proxy-mode");
    flags.set_flag("iptables.masqueradeAll", FlagValue::Scalar("T".into()), "--masquerade-all");
    flags.set_flag("ipvs.tcpTimeout", FlagValue::Scalar("1h30m".into()), "--ipvs-tcp-timeout");
    let e = resolve(&flags).unwrap_err();
    assert_eq!(e.to_string(), "flag --ipvs-scheduler: ipvs.scheduler: \"foo\" is not one of rr, wrr, lc, wlc, lblc, lblcr, sh, dh, sed, nq, mh (blank means rr)");
    flags.set_flag("ipvs.scheduler", FlagValue::Scalar("sed".into()), "--ipvs-scheduler");
    let c = resolve(&flags).unwrap().config;
    assert!(c.iptables.masquerade_all);
    assert_eq!(c.ipvs.tcp_timeout, GoDuration::from_mins(90));
}

#[test]
fn a_bad_lower_file_is_reported_even_if_overridden() {
    let e = Layer::from_yaml(&format!("{HEAD}mode: [x]\n"), "config.conf").unwrap_err();
    assert_eq!(e.to_string(), "config.conf:3:7: mode: expected a string, found a list");
}

#[test]
fn warnings_are_located_and_once_each() {
    let l = file("clientConnection:\n  contentType: application/vnd.kubernetes.protobuf\nmode: iptables\nnftables:\n  masqueradeAll: true\nudpIdleTimeout: 250ms\nportRange: 30000-32767\nwinkernel:\n  enableDSR: true\n", "c.yaml");
    let p = resolve(&l).unwrap();
    let lines: Vec<String> = p.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 6, "{lines:#?}");
    assert!(lines[0].starts_with("c.yaml:8:17: udpIdleTimeout: 250ms has no effect"), "{lines:#?}");
    assert!(lines[1].starts_with("c.yaml:9:12: portRange: \"30000-32767\" has no effect"), "{lines:#?}");
    assert!(
        lines[2].starts_with("c.yaml:5:7: mode: \"iptables\" is served by kproxy's nftables backend"),
        "{lines:#?}"
    );
    assert!(
        lines[3].starts_with(
            "c.yaml:4:16: clientConnection.contentType: application/vnd.kubernetes.protobuf is not supported"
        ),
        "{lines:#?}"
    );
    assert!(lines[3].ends_with("falls back to application/json"), "{lines:#?}");
    assert!(lines[4].starts_with("c.yaml:6:1: nftables: has no effect in mode \"iptables\""), "{lines:#?}");
    assert!(lines[5].starts_with("c.yaml:10:1: winkernel: Windows settings have no effect on Linux"), "{lines:#?}");
}

#[test]
fn default_content_type_and_written_config_do_not_warn_about_sections() {
    let p = resolve(&file("", "c.yaml")).unwrap();
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    // What --write-config-to writes sets every field; reading it back warns only about the
    // explicit protobuf content type.
    let written = p.config.to_yaml();
    let again = resolve(&Layer::from_yaml(&written, "written.yaml").unwrap()).unwrap();
    let paths: Vec<&str> = again.warnings.iter().map(|w| w.path.as_str()).collect();
    assert_eq!(paths, ["clientConnection.contentType"]);
    assert_eq!(again.config, p.config);
}

#[test]
fn legacy_fields_of_old_kubeadm_files_are_accepted_with_warnings() {
    let l = file("resourceContainer: \"\"\nconntrack:\n  max: 0\n  maxPerCore: 32768\n", "old.yaml");
    let p = resolve(&l).unwrap();
    let lines: Vec<String> = p.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "old.yaml:3:20: resourceContainer: has no effect: removed upstream in Kubernetes 1.16; remove it",
            "old.yaml:5:8: conntrack.max: has no effect: removed upstream; use conntrack.maxPerCore and conntrack.min",
        ]
    );
    // `max: null`, as --write-config-to of old versions wrote it, says nothing.
    let p = resolve(&file("conntrack:\n  max: null\n", "old.yaml")).unwrap();
    assert!(p.warnings.is_empty());
    let e = Layer::from_yaml(&format!("{HEAD}conntrack:\n  max: lots\n"), "old.yaml").unwrap_err();
    assert_eq!(e.to_string(), "old.yaml:4:8: conntrack.max: expected an integer, found the string \"lots\"");
}

#[test]
fn accept_content_types_and_snat_node_internal_ip_are_named_as_without_effect() {
    let l = file(
        "clientConnection:\n  acceptContentTypes: application/vnd.kubernetes.protobuf,application/json\niptables:\n  snatNodeInternalIP: true\n",
        "n.yaml",
    );
    let p = resolve(&l).unwrap();
    let lines: Vec<String> = p.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines[0].starts_with("n.yaml:4:23: clientConnection.acceptContentTypes: \"application/vnd.kubernetes.protobuf,application/json\" has no effect"),
        "{lines:#?}"
    );
    assert!(lines[1].starts_with("n.yaml:6:23: iptables.snatNodeInternalIP: has no effect"), "{lines:#?}");
    assert!(lines[2].starts_with("n.yaml:5:1: iptables: has no effect in mode \"nftables\""), "{lines:#?}");
    // Their defaults (empty, false) say nothing: the no-warning case is
    // default_content_type_and_written_config_do_not_warn_about_sections.
}
