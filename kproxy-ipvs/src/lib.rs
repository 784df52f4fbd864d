//! kproxy's IPVS backend: virtual and real servers over generic netlink (family "IPVS"),
//! the `kube-ipvs0` dummy link and its VIPs over rtnetlink, and the sysctls IPVS mode needs.
//!
//! Layers, as the rest of kproxy:
//! - pure: [`plan`] (state -> desired IPVS table and VIPs), [`diff`] (table -> a list of
//!   [`Operation`]s, graceful termination), [`ipvs_msg`] / [`rtnl`] encoders and decoders;
//! - kernel edge: the [`IpvsKernel`] trait; [`NetlinkKernel`], the real one, over the
//!   [`ipvs::Ipvs`] and [`rtnl::Rtnl`] handles on [`kproxy_netlink::Socket`] (framing,
//!   pipelined requests, ACK matching) and [`sysctl`]; [`FakeIpvs`], an in-memory kernel enforcing the
//!   same rules (exists / not-found errnos, families, schedulers) for tests without root;
//! - [`drift`]: the kernel's table against the plan, every difference named (`kproxy explain`);
//! - [`IpvsBackend`], the [`kproxy_core::backend::ProxyBackend`] of IPVS mode, with the
//!   periodic [`check`] of the kernel's table against what it programmed.
//!
//! It does not use iptables or ipset: the rules IPVS mode also needs (masquerade for
//! off-cluster sources, eTP=Cluster and hairpin, loadBalancerSourceRanges) are a small
//! nftables table ([`nft`]) built with kproxy-nft's batch API.
#![warn(missing_docs)]

pub mod backend;
pub mod check;
pub mod config;
pub mod diff;
pub mod drift;
pub mod error;
pub mod fake;
#[doc(hidden)]
pub mod fuzzing;
pub mod ipvs;
pub mod ipvs_msg;
pub mod kernel;
pub mod nft;
mod nft_match;
mod nft_sets;
pub mod operation;
pub mod plan;
pub mod rtnl;
pub mod sysctl;

#[cfg(test)]
mod tests;

pub use backend::IpvsBackend;
pub use config::{IpvsConfig, Scheduler};
pub use error::{Errno, Error};
pub use fake::FakeIpvs;
pub use kernel::{IpvsKernel, NetlinkKernel};
pub use operation::Operation;
