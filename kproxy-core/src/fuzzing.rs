//! Entry points for the `config` and `manifest` fuzz targets and the stable corpus test
//! (`tests/tests/fuzz_corpus.rs`): arbitrary bytes through the parsers that read what an
//! operator or the cluster hands kproxy. Each must never panic; the checks below panic on a
//! broken promise so the fuzzer reports it. Not a stable API.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::config;
use crate::manifest::parse_manifest;
use crate::model::{LocalDetector, ProxySettings};
use crate::tracker::ChangeTracker;
use crate::translate::TranslateOptions;

/// A configuration file (YAML, or JSON, which YAML reads too): parsed, defaulted and
/// validated. An accepted one must read back to the same configuration from its own
/// `--write-config-to` output ([`config::KubeProxyConfiguration::to_yaml`] promises it);
/// a refused one must render its messages.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match config::parse(text, "fuzz.yaml") {
        Ok(parsed) => {
            let yaml = parsed.config.to_yaml();
            match config::parse(&yaml, "written.yaml") {
                Ok(again) => assert_eq!(again.config, parsed.config, "config changed through to_yaml:\n{yaml}"),
                Err(e) => panic!("the written config does not parse back: {e}\n{yaml}"),
            }
        }
        Err(e) => {
            let _ = (e.to_string(), e.lines());
        }
    }
}

/// The node the manifest target translates for: named `node-a` (a Node of that name in the
/// input becomes this node), dual-stack, pod traffic recognised by cluster CIDRs.
fn settings() -> ProxySettings {
    ProxySettings {
        node_name: "node-a".into(),
        node_ips: vec![IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)), IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))],
        local_detector: LocalDetector::ClusterCidrs(vec!["198.18.128.0/17".parse().expect("literal"), "2001:db8:80::/48".parse().expect("literal")]),
        ..ProxySettings::default()
    }
}

/// A manifest file (YAML or JSON, multi-document, `kind: List`): decoded, every object fed
/// to a [`ChangeTracker`] and the changes taken, as the `--manifests` source does. Feeding
/// the same objects again must leave the desired state as it is (a re-read of an unchanged
/// file must not reprogram anything). Returns the number of service ports translated.
pub fn manifest(data: &[u8]) -> usize {
    let Ok(text) = std::str::from_utf8(data) else { return 0 };
    let m = parse_manifest(text, "fuzz.yaml");
    for d in &m.diagnostics {
        let _ = d.to_string();
    }
    let mut tracker = ChangeTracker::new(settings(), TranslateOptions::default());
    for e in m.events.iter().cloned() {
        let _ = tracker.apply(e);
    }
    let _ = tracker.take_changes();
    let first = tracker.state().clone();
    for e in m.events {
        let _ = tracker.apply(e);
    }
    let _ = tracker.take_changes();
    assert_eq!(tracker.state(), &first, "re-applying the same objects changed the state");
    first.services.len()
}
