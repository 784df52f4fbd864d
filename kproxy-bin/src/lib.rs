//! The kproxy node daemon as a library: config, the sync loop and the wiring around it
//! (conntrack cleanup, node tuning, takeover). `main.rs` wires it. Logging, metrics, health
//! and the healthCheckNodePort servers live in `kproxy-telemetry`; the sources of cluster
//! state (API-server watches, manifest files) in `kproxy-sources`.
#![warn(missing_docs)]

pub mod capabilities;
pub mod cli;
pub mod config_load;
pub mod config_watch;
pub mod conntrack;
pub mod daemon;
pub mod doctor_cmd;
pub mod error;
pub mod explain;
pub mod node_tuning;
pub mod sync_loop;
pub mod takeover;
pub mod tamper_watch;
/// The sources of cluster state (the API server, manifest files) live in `kproxy-sources`;
/// re-exported under their old path so `kproxy_bin::source::...` keeps working.
pub use kproxy_sources as source;
pub mod trace_cmd;
#[cfg(test)]
#[path = "../tests/daemon_support/fixtures.rs"]
mod test_fixtures;
