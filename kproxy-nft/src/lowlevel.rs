//! The public low-level API: nf_tables objects as plain values, one [`Transaction`] of
//! operations, and the kernel edge ([`NftKernel`]) that commits it atomically.
//!
//! This is what an embedder uses to program a table of its own (kproxy's IPVS mode builds
//! its small filter/NAT table with it), and what kproxy's nftables backend renders its plan
//! into. A [`Transaction`] is inert data: build it with the `add_*`/`delete_*`/`flush_*`
//! methods (the verbs of `nft`), inspect it in tests, and hand it to
//! - [`NetlinkKernel`]: encodes it (libnftnl, plus a byte-identical element encoder) into one
//!   nf_tables batch and sends it on a netlink socket of the calling thread's network
//!   namespace;
//! - [`FakeKernel`]: an in-memory model that enforces the kernel's rules (atomic commit,
//!   references resolve, ENOENT/EEXIST/EBUSY/EINVAL where the kernel gives them, key and data
//!   lengths per set), for tests without root.
//!
//! Rules come from [`RuleBuilder`] (each statement appends its nft text and its kernel
//! expressions). Sets are declared with their raw NEWSET attributes ([`SetDecl`]) because
//! their types come from nft's own encoding (captured bytes) rather than from a type system
//! kproxy would have to keep in step with nft.
//!
//! Reading back is limited to one set's elements ([`NftKernel::set_elements`], for dynamic
//! sets). Not here: reading a ruleset back, `nft` text parsing, objects kproxy does not use
//! (flowtables, stateful objects, set element expressions).

pub use crate::fake::{FakeChain, FakeKernel, FakeSet, FakeTable, PacketUpdate};
pub use crate::kernel::{CheckingKernel, NetlinkKernel, NftKernel};
pub use crate::netlink::{batch_bytes, NetlinkError};
pub use crate::plan::{addr_len, ip_word};
pub use crate::stmt::{Expr, Field, Rule, RuleBuilder, CMP_EQ, CMP_NEQ, NETWORK, NFT_META_IIFNAME, NFT_META_L4PROTO, NFT_META_MARK, TRANSPORT};
pub use crate::tx::*;
