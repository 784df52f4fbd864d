//! A minimal node agent, as a custom CNI embeds kproxy: Services and EndpointSlices go into
//! kproxy-core's change tracker, and kproxy-nft programs the result into nftables tables of
//! the agent's own (`ip mycni-services` / `ip6 mycni-services`), beside kube-proxy's or
//! kproxy's own `kproxy` tables, which it never touches.
//!
//! It programs the network namespace it runs in (root and `CAP_NET_ADMIN` needed), so try
//! it in a namespace of its own:
//!
//! ```text
//! ip netns add demo
//! ip netns exec demo cargo run -p kproxy-examples --example node-agent
//! ip netns exec demo nft list table ip mycni-services
//! ip netns del demo
//! ```
//!
//! The test `examples/tests/node_agent.rs` runs [`embed`] in a fresh namespace and checks
//! the kernel with `nft -j list ruleset`; the README's "Embedding" section is the code
//! between the `ANCHOR` lines, compared by `examples/tests/readme.rs`.

// ANCHOR: embedding
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kproxy_core::backend::{ProxyBackend, SyncReport};
use kproxy_core::config::KubeProxyConfiguration;
use kproxy_core::event::{ClusterEvent, Update};
use kproxy_core::tracker::ChangeTracker;
use kproxy_nft::{NftBackend, NftConfig};

/// The table name this agent owns (in both the `ip` and `ip6` families).
pub const TABLE: &str = "mycni-services";

/// Programs `service` with the endpoints of `slice` (one atomic full sync), then the
/// endpoints of `later` (a partial sync: only what changed). Returns both sync reports.
pub fn embed(
    service: Service,
    slice: EndpointSlice,
    later: EndpointSlice,
) -> Result<(SyncReport, SyncReport), Box<dyn std::error::Error>> {
    let cfg = KubeProxyConfiguration::default(); // or kproxy_core::config::parse(yaml, "config.yaml")?.config
    let settings = cfg.proxy_settings("node-1".into(), vec!["198.19.0.1".parse()?]);
    let mut tracker = ChangeTracker::new(settings, Default::default());
    let mut nft = NftBackend::new(NftConfig { table_name: TABLE.into(), ..Default::default() })?;

    let mut diagnostics = tracker.apply(ClusterEvent::Service(Update::Upsert(service)));
    diagnostics.extend(tracker.apply(ClusterEvent::EndpointSlice(Update::Upsert(slice))));
    for d in &diagnostics {
        eprintln!("{d}"); // objects (or parts) kproxy could not use, and why
    }
    tracker.take_state(); // bring the state up to date
    let full = nft.sync_full(tracker.state())?; // atomic, only our tables

    // ... later events ...
    tracker.apply(ClusterEvent::EndpointSlice(Update::Upsert(later)));
    let taken = tracker.take_changes(); // only dirty services re-translated
    let partial = nft.sync_changes(tracker.state(), &taken.changes)?; // element adds/deletes only
    Ok((full, partial))
}
// ANCHOR_END: embedding

fn main() -> Result<(), Box<dyn std::error::Error>> {
    use kproxy_examples::{web_service, web_slice};
    let (full, partial) =
        embed(web_service(), web_slice(&["198.18.0.11", "198.18.0.12"]), web_slice(&["198.18.0.12", "198.18.0.13"]))?;
    println!("full sync: {} operations; partial sync: {} operations", full.operations, partial.operations);
    println!("see: nft list table ip {TABLE}");
    Ok(())
}
