//! Shared helpers for the API-server end-to-end tests (`tests/tests/e2e_*.rs`).
//!
//! Those tests need the real kube-apiserver that `cargo xtask e2e` starts; they are marked
//! `#[ignore = "..."]` so a plain `cargo test` lists them as ignored (explicitly, never as
//! passed), and the harness runs them with `--include-ignored`. Run that way without the
//! harness's environment, [`E2eEnv::require`] FAILS the test with instructions.
//!
//! - [`E2eEnv`]: where the API server is, credentials, and [`E2eEnv::control`] to stop/start
//!   kube-apiserver and etcd (a Unix socket served by the harness).
//! - [`admin_client`] / [`E2eEnv::kproxy_options`]: an admin client and the source options
//!   for kproxy's own ServiceAccount kubeconfig.
//! - [`Events`]: collects `ClusterEvent`s from a running source and waits (bounded) for one.
//! - [`LogCapture`]: the process's tracing output, to assert on grep-able log lines.
//! - [`ApiRelay`]: makes the API server reachable from inside a test network namespace at
//!   `127.0.0.1:<port>` (a userspace relay; no link or route to the root namespace).
//! - Object builders: [`service`], [`endpoint_slice`], [`node`].
//! - [`NftMonitor`]: `nft monitor` in a namespace, timing when a change reached the kernel.
//! - [`KproxyDaemon`]: the `kproxy` binary in a namespace, reaching the API through an [`ApiRelay`].
// Each e2e test binary uses a different subset of these helpers.
#![allow(dead_code, unused_imports)]


mod daemon;
mod env;
mod events;
mod logs;
mod nft_monitor;
mod objects;

pub use daemon::{KproxyDaemon, NFT_NODE_ARGS};
pub use env::{add_service_cidr, admin_client, bulk_endpoint_ip, create_namespace, E2eEnv, Scratch};
pub use events::{is_delete, is_upsert, name_of, summary, Events};
pub use logs::LogCapture;
pub use nft_monitor::NftMonitor;
pub use objects::{endpoint_slice, node, service};
pub use kproxy_tests::ApiRelay;
