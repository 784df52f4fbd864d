//! The node-agent example for real: in a fresh network namespace (root needed), then the
//! kernel's ruleset read back with `nft -j list ruleset`.

#[allow(dead_code)] // its `main` is for `cargo run --example node-agent`
#[path = "../node_agent.rs"]
mod node_agent;

use kproxy_core::backend::SyncKind;
use kproxy_examples::{web_service, web_slice, WEB_CLUSTER_IP};
use kproxy_tests::{nft_json, require_root, Netns};

#[test]
fn node_agent_programs_its_own_table_then_only_the_changes() {
    require_root();
    let ns = Netns::new("example-agent").expect("creating a network namespace");
    let (full, partial) = ns
        .run_in(|| {
            node_agent::embed(
                web_service(),
                web_slice(&["198.18.0.11", "198.18.0.12"]),
                web_slice(&["198.18.0.12", "198.18.0.13"]),
            )
            .map_err(|e| e.to_string())
        })
        .expect("entering the namespace")
        .expect("both syncs succeed");
    assert_eq!(full.kind, SyncKind::Full);
    assert_eq!(partial.kind, SyncKind::Partial, "an endpoint change is a partial sync");

    let ruleset = nft_json(&ns).expect("nft -j list ruleset");
    let items = ruleset["nftables"].as_array().expect("nft -j output has an nftables array");
    let tables: Vec<(String, String)> = items
        .iter()
        .filter_map(|i| i.get("table"))
        .map(|t| (t["family"].as_str().unwrap_or("").to_owned(), t["name"].as_str().unwrap_or("").to_owned()))
        .collect();
    assert!(tables.contains(&("ip".into(), node_agent::TABLE.into())), "the agent's own table: {tables:?}");
    assert!(tables.iter().all(|(_, name)| name == node_agent::TABLE), "no table but the agent's: {tables:?}");

    let text = ruleset.to_string();
    assert!(text.contains(WEB_CLUSTER_IP), "the ClusterIP is programmed: {text}");
    assert!(text.contains("198.18.0.13"), "the endpoint added by the partial sync: {text}");
    assert!(text.contains("198.18.0.12"), "the endpoint kept: {text}");
    assert!(!text.contains("198.18.0.11"), "the endpoint removed by the partial sync: {text}");
}
