//! Validation gaps closed by issue 12 item 4: node names, `kind: null`, settings of modes not
//! in use, and floats too large for their field. Each with its exact located message.

use kproxy_core::config::parse;

const HEAD: &str = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n";

fn errors(text: &str) -> Vec<String> {
    match parse(text, "config.yaml") {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.lines(),
    }
}

fn one_error(body: &str) -> String {
    let all = errors(&format!("{HEAD}{body}"));
    assert_eq!(all.len(), 1, "expected one error, got {all:#?}");
    all.into_iter().next().unwrap()
}

#[test]
fn hostname_override_must_be_a_node_name() {
    let e = one_error("hostnameOverride: Bad_Host!\n");
    assert!(e.starts_with("config.yaml:3:19: hostnameOverride: \"Bad_Host!\" is not a valid node name: a lowercase RFC 1123 subdomain"), "{e}");
    let long = "a".repeat(300);
    let e = one_error(&format!("hostnameOverride: {long}\n"));
    assert!(e.contains("must be no more than 253 characters (has 300)"), "{e}");
    assert!(parse(&format!("{HEAD}hostnameOverride: node-1.example.com\n"), "c").is_ok());
    // Used lower-cased and trimmed, as upstream: upper case alone is not an error.
    assert!(parse(&format!("{HEAD}hostnameOverride: Node-1\n"), "c").is_ok());
}

#[test]
fn kind_null_is_rejected() {
    let all = errors("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: null\n");
    assert_eq!(all, ["config.yaml:2:7: kind: is empty (null); expected \"KubeProxyConfiguration\""]);
    let all = errors("apiVersion: ~\nkind: KubeProxyConfiguration\n");
    assert_eq!(all, ["config.yaml:1:13: apiVersion: is empty (null); expected \"kubeproxy.config.k8s.io/v1alpha1\""]);
}

#[test]
fn huge_qps_names_the_limit() {
    let e = one_error("clientConnection:\n  qps: 1.0e300\n");
    assert_eq!(
        e,
        "config.yaml:4:8: clientConnection.qps: the number 1.0e300 is too large: this field is a 32-bit float (at most 3.4028235e38); use a smaller value"
    );
    let e = one_error("clientConnection:\n  qps: .nan\n");
    assert!(e.contains("must be a finite number"), "{e}");
}

#[test]
fn settings_of_modes_not_in_use_are_range_checked_when_written() {
    // nftables mode (blank): ipvs and iptables sections written with out-of-range values.
    let all = errors(&format!(
        "{HEAD}ipvs:\n  syncPeriod: -1s\n  scheduler: foo\n  tcpTimeout: -5s\niptables:\n  masqueradeBit: 40\n"
    ));
    assert_eq!(all.len(), 5, "{all:#?}");
    let noted = all.iter().filter(|e| e.ends_with("(checked although this mode is not in use)")).count();
    assert_eq!(noted, 4, "the ipvs errors carry the note; masqueradeBit is always checked, as upstream: {all:#?}");
    assert!(all.iter().any(|e| e.starts_with("config.yaml:4:15: ipvs.syncPeriod: -1s must be greater than 0")), "{all:#?}");
    assert!(all.iter().any(|e| e.starts_with("config.yaml:8:18: iptables.masqueradeBit: 40 must be within the range [0, 31]")), "{all:#?}");
    // Mode-specific sections written for another mode with in-range values are fine.
    assert!(parse(&format!("{HEAD}ipvs:\n  scheduler: wrr\n  minSyncPeriod: 10s\n"), "c").is_ok());
    // The mode in use is checked as before, without the note.
    let e = one_error("mode: ipvs\nnftables:\n  minSyncPeriod: 2m\n");
    assert!(e.starts_with("config.yaml:5:18: nftables.minSyncPeriod: nftables.syncPeriod (30s) must be greater than or equal to nftables.minSyncPeriod (2m0s)"), "{e}");
    // Defaults of unused sections never fail.
    assert!(parse(&format!("{HEAD}mode: ipvs\n"), "c").is_ok());
}
