//! The kproxy node daemon as a library: config, sources, the sync loop and the wiring around
//! it (conntrack cleanup, node tuning, takeover). `main.rs` wires it. Logging, metrics, health
//! and the healthCheckNodePort servers live in `kproxy-telemetry`.
#![warn(missing_docs)]

pub mod capabilities;
pub mod cli;
pub mod config_load;
pub mod config_watch;
pub mod conntrack;
pub mod daemon;
pub mod doctor_cmd;
pub mod error;
pub mod node_tuning;
pub mod source;
pub mod sync_loop;
pub mod takeover;
pub mod tamper_watch;
pub mod trace_cmd;
#[cfg(test)]
#[path = "../tests/daemon_support/fixtures.rs"]
mod test_fixtures;
