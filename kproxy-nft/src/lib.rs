//! kproxy's nftables backend.
//!
//! Programs a [`kproxy_core::model::ProxyState`] into one `ip` and one `ip6` table whose
//! chains, rules and map bindings do not grow with services or endpoints: services and
//! endpoints are set elements only (see `README.md`, the contract of the ruleset).
//!
//! Layers (each its own module):
//! - render ([`render`], `elements`, [`skeleton`], and the rule builder `stmt`, public as
//!   [`lowlevel::RuleBuilder`]): pure, ProxyState -> [`Plan`];
//! - script ([`script`]): Plan -> nft text for `--dry-run`;
//! - record ([`record`]): what was committed, and the element/chain delta of a change set;
//! - affinity ([`affinity`]): pure, which recorded sticky entries a change makes stale and
//!   which a full sync carries over;
//! - transaction ([`transaction`]): pure, plan or delta -> [`lowlevel::Transaction`];
//! - kernel edge ([`lowlevel::NftKernel`]): [`lowlevel::NetlinkKernel`] encodes a transaction
//!   as one atomic nf_tables batch (libnftnl, sent with kproxy-netlink), [`lowlevel::FakeKernel`]
//!   applies it in memory with the kernel's rules;
//! - backend ([`NftBackend`]): the [`kproxy_core::backend::ProxyBackend`] implementation;
//! - watch ([`watch`]): notifications of changes to kproxy's tables made by anyone else;
//! - drift ([`drift`]): the desired tables against a read-back, every difference named;
//! - trace ([`trace`]): kproxy's table read back from the kernel, and a pure interpreter
//!   following one new connection through it (`kproxy trace`).
//!
//! [`lowlevel`] is the API for embedders that program tables of their own (kproxy's IPVS mode).
//!
//! It does not read the ruleset back on the sync path (only the entries of its dynamic affinity maps, see
//! [`affinity`]; changes by others it learns from notifications, see [`watch`]), touch other
//! tables, or tune sysctls.
//!
//! Threads and namespaces: a [`lowlevel::NetlinkKernel`] (and so [`NftBackend::new`]) binds its
//! socket to the network namespace of the thread that opens it; it may then be used from any
//! thread, one at a time (`&mut self`).
#![warn(missing_docs)]

pub mod affinity;
pub mod backend;
mod bytes;
pub mod config;
pub mod drift;
mod elements;
mod fake;
#[doc(hidden)]
pub mod fuzzing;
mod kernel;
pub mod lowlevel;
mod netlink;
pub mod plan;
pub mod record;
pub mod render;
pub mod script;
mod set_templates;
pub mod skeleton;
mod stmt;
#[cfg(test)]
mod test_support;
pub mod trace;
pub mod transaction;
mod tx;
pub mod watch;

pub use backend::{NftBackend, NftError};
pub use config::NftConfig;
pub use render::Plan;
pub use script::render_script;
