//! kproxy-telemetry: what a Kubernetes service proxy shows to the outside, with kube-proxy's
//! names and semantics, usable without the `kproxy` binary (e.g. by a CNI that programs its
//! own service rules and wants kube-proxy's dashboards, alerts and load-balancer health checks
//! to keep working).
//!
//! What it does:
//! - [`logging`]: klog text lines and component-base JSON lines as a `tracing` formatter;
//! - [`metrics`]: the Prometheus registry with kube-proxy's `kubeproxy_*` metrics, client-go's
//!   `rest_client_*` ([`rest_metrics`], a tower layer for kube's client), the `process_*`
//!   metrics ([`process_metrics`]) and the conntrack table gauges ([`conntrack_metrics`]),
//!   served on `/metrics` in the Prometheus text format 0.0.4 or OpenMetrics 1.0.0
//!   ([`metrics_format`]), plus `/configz`;
//! - [`health`]: `/healthz` and `/livez` with upstream's proxy-health rules;
//! - [`hcnode`]: the healthCheckNodePort servers of `externalTrafficPolicy: Local`
//!   LoadBalancer Services;
//! - [`http_server`]: the small hyper server all of them share.
//!
//! What it does not do: it decides nothing and watches nothing. The caller's sync loop
//! records what happened ([`metrics::Metrics::record_sync`], [`health::ProxyHealth::updated`],
//! ...), feeds Node objects to [`health::ProxyHealth::sync_node`] and calls
//! [`hcnode::HcNodeServers::reconcile`] with each programmed state; this crate never reads
//! the API server, the rules or the clock on its own except to stamp answers.
//!
//! Threads: [`metrics::Metrics`] and [`health::ProxyHealth`] are `Send + Sync` and meant to be
//! shared in an `Arc` between the sync loop and the HTTP servers (metrics are atomics; health
//! is a short `parking_lot` mutex). The servers ([`http_server::HttpServer::spawn`],
//! [`metrics::serve`], [`health::serve`]) must be started from within a tokio runtime and run
//! on its tasks; [`hcnode::HcNodeServers`] spawns on the runtime handle it was given, so
//! `reconcile` may be called from any thread. Dropping a server closes it.
//! [`logging::init`] installs the process-global `tracing` subscriber (once; later calls do
//! nothing). Sockets are bound in the network namespace of the calling thread.
#![warn(missing_docs)]

pub mod conntrack_metrics;
pub mod hcnode;
pub mod health;
pub mod http_server;
pub mod logging;
pub mod metrics;
pub mod metrics_format;
pub mod process_metrics;
pub mod rest_metrics;
/// The README's example, compiled so that it cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

// The ServicePort builders kproxy-bin's tests use too: one copy, not two.
#[cfg(test)]
#[path = "../../kproxy-bin/tests/daemon_support/fixtures.rs"]
mod test_fixtures;
