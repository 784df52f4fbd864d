//! kproxy's nftables backend.
//!
//! Programs a [`kproxy_core::model::ProxyState`] into one `ip` and one `ip6` table whose
//! chains, rules and map bindings do not grow with services or endpoints: services and
//! endpoints are set elements only (see `README.md`, the contract of the ruleset).
//!
//! Layers (each its own module):
//! - render ([`render`], [`elements`], [`skeleton`], [`stmt`]): pure, ProxyState -> [`Plan`];
//! - script ([`script`]): Plan -> nft text for `--dry-run`;
//! - record ([`record`]): what was committed, and the element/chain delta of a change set;
//! - netlink ([`netlink`]): libnftnl-encoded messages in one atomic batch, sent with kproxy-netlink;
//! - backend ([`NftBackend`]): the [`kproxy_core::backend::ProxyBackend`] implementation.
//!
//! It does not read the ruleset back, touch other tables, or tune sysctls.
#![warn(missing_docs)]

pub mod backend;
pub mod config;
pub mod elements;
pub mod netlink;
pub mod plan;
pub mod record;
pub mod render;
pub mod script;
pub mod skeleton;
pub mod stmt;

pub use backend::{NftBackend, NftError};
pub use config::NftConfig;
pub use render::Plan;
pub use script::render_script;
