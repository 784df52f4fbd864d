//! Test support for kproxy: isolated network-namespace topologies with real packets.
//!
//! What this crate gives integration tests (see `../shared/testing/README.md` for the rules):
//! - [`Netns`]: a uniquely named network namespace, deleted on drop (also on panic), with
//!   helpers to run commands in it ([`Netns::exec`]) or run a closure on a thread that has
//!   entered it ([`Netns::run_in`]).
//! - [`Topology`]: a "node" namespace with a pod bridge, pod namespaces on that bridge and
//!   external client namespaces, addressed by the plan in [`plan`] (which the example
//!   manifests in `examples/manifests` follow too).
//! - [`TestServer`]: the `kproxy-testserver` binary started inside a namespace; it answers
//!   TCP and UDP with `"<name> <peer>"` so a test sees which endpoint answered and which
//!   source address it saw (masqueraded or not).
//! - Clients ([`tcp_request`], [`udp_request`], [`tally`]) that tell REJECT (refused) from
//!   DROP (timeout), every attempt bounded by a timeout.
//! - Independent witnesses and tools, run inside a namespace: [`nft_json`] / [`nft_text`]
//!   (`nft [-j] list ruleset`), [`nft_apply`] (`nft -f -`), [`conntrack_flush`].
//! - [`ApiRelay`]: the API server (on the root namespace's loopback) reachable from inside a
//!   namespace through a userspace relay, with no link or route between them.
//! - Binaries tests run: [`testserver_binary`], [`kproxy_binary`] (`$KPROXY_BIN` or the
//!   target directory; built by `cargo build --workspace`, which `cargo xtask test` runs
//!   first).
//!
//! Nothing here touches the root network namespace: every link, address, route and sysctl
//! is created inside namespaces this crate created. Privileged helpers fail loudly when not
//! run as root ([`require_root`]); they never skip.
#![warn(missing_docs)]

mod binaries;
mod client;
mod error;
mod netns;
mod nft;
pub mod plan;
mod relay;
mod root;
pub mod serve;
pub mod soak;
mod server;
mod topology;

pub use binaries::{kproxy_binary, testserver_binary};
pub use client::{
    tally, tcp_connect, tcp_request, tcp_request_from, udp_request, udp_request_from, ClientError,
    Proto, Reply, Tally, TcpSession,
};
pub use error::HarnessError;
pub use netns::Netns;
pub use nft::{conntrack_flush, nft_apply, nft_json, nft_text};
pub use relay::ApiRelay;
pub use root::require_root;
pub use server::{ServerSpec, TestServer};
pub use topology::{add_bridge, attach_veth, new_netns, Client, Pod, Topology, TopologyBuilder};
