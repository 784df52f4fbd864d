//! The kproxy node daemon as a library: sources, the sync loop and everything around it
//! (metrics, health, healthCheckNodePort servers, conntrack, node tuning). `main.rs` wires it.
#![warn(missing_docs)]

pub mod capabilities;
pub mod cli;
pub mod config_load;
pub mod config_watch;
pub mod conntrack;
pub mod conntrack_metrics;
pub mod daemon;
pub mod error;
pub mod hcnode;
pub mod health;
pub mod http_server;
pub mod logging;
pub mod metrics;
pub mod metrics_format;
pub mod node_tuning;
pub mod process_metrics;
pub mod rest_metrics;
pub mod source;
pub mod sync_loop;
pub mod takeover;
pub mod tamper_watch;
pub mod trace_cmd;
#[cfg(test)]
#[path = "../tests/daemon_support/fixtures.rs"]
mod test_fixtures;
