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
//! Not here: reading a ruleset back, `nft` text parsing, objects kproxy does not use
//! (flowtables, stateful objects, set element expressions).

mod fake;
mod kernel;
mod transaction;

/// `NFTA_SET_FLAGS`: the attribute of a set's flags (big-endian u32).
pub const NFTA_SET_FLAGS: u16 = 3;
/// `NFTA_SET_KEY_TYPE`: nft's datatype of the key (concatenations shift members in by 6 bits).
pub const NFTA_SET_KEY_TYPE: u16 = 4;
/// `NFTA_SET_KEY_LEN`: key length in bytes (concatenation members padded to 4).
pub const NFTA_SET_KEY_LEN: u16 = 5;
/// `NFTA_SET_DATA_TYPE`: nft's datatype of a map's data ([`NFT_DATA_VERDICT`] for verdicts).
pub const NFTA_SET_DATA_TYPE: u16 = 6;
/// `NFTA_SET_DATA_LEN`: data length in bytes (0 for verdicts).
pub const NFTA_SET_DATA_LEN: u16 = 7;
/// `NFT_SET_MAP`: the set is a map.
pub const NFT_SET_MAP: u32 = 0x8;
/// `NFT_DATA_VERDICT`: the data type of verdict maps.
pub const NFT_DATA_VERDICT: u32 = 0xffff_ff00;
/// `NF_DROP` verdict code.
pub const NF_DROP: i32 = 0;
/// `NF_ACCEPT` verdict code.
pub const NF_ACCEPT: i32 = 1;
/// `NFT_JUMP` verdict code.
pub const NFT_JUMP: i32 = -3;
/// `NFT_GOTO` verdict code.
pub const NFT_GOTO: i32 = -4;

pub use crate::netlink::{batch_bytes, NetlinkError, NetlinkKernel};
pub use crate::plan::{addr_len, ip_word};
pub use crate::stmt::{Expr, Field, Rule, RuleBuilder, CMP_EQ, CMP_NEQ, NETWORK, NFT_META_IIFNAME, NFT_META_L4PROTO, NFT_META_MARK, TRANSPORT};
pub use fake::{FakeChain, FakeKernel, FakeSet, FakeTable};
pub use kernel::NftKernel;
pub use transaction::{Op, SetDecl, SetElement, Transaction};

/// `NFPROTO_IPV4` / `NFPROTO_IPV6` / `NFPROTO_INET` as a table family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TableFamily {
    /// `ip`.
    Ip,
    /// `ip6`.
    Ip6,
    /// `inet`.
    Inet,
}

impl TableFamily {
    /// The `NFPROTO_*` number.
    pub fn number(self) -> u16 {
        match self {
            TableFamily::Ip => 2,
            TableFamily::Ip6 => 10,
            TableFamily::Inet => 1,
        }
    }
}

impl From<kproxy_core::model::IpFamily> for TableFamily {
    fn from(f: kproxy_core::model::IpFamily) -> Self {
        match f {
            kproxy_core::model::IpFamily::V4 => TableFamily::Ip,
            kproxy_core::model::IpFamily::V6 => TableFamily::Ip6,
        }
    }
}

/// A base chain hook: `type KIND hook HOOKNUM priority PRIO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHook {
    /// `filter`, `nat`, `route`.
    pub kind: &'static str,
    /// `NF_INET_*` hook number.
    pub hooknum: u32,
    /// Priority.
    pub priority: i32,
}

/// A set element already encoded as kernel bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawElement {
    /// `NFTA_SET_ELEM_KEY` bytes.
    pub key: Vec<u8>,
    /// `NFTA_SET_ELEM_KEY_END` bytes (concatenated intervals).
    pub key_end: Option<Vec<u8>>,
    /// `NFTA_SET_ELEM_FLAGS` (1: interval end).
    pub flags: u32,
    /// Map data.
    pub data: RawData,
    /// `NFTA_SET_ELEM_USERDATA` (comment, interval flags).
    pub userdata: Vec<u8>,
}

/// Map data of a [`RawElement`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RawData {
    /// A set element.
    #[default]
    None,
    /// Value bytes.
    Bytes(Vec<u8>),
    /// A verdict code (`NF_DROP`, `NFT_JUMP`, `NFT_GOTO`...) and its chain.
    Verdict(i32, Option<String>),
}

impl RawElement {
    /// Upper bound of the encoded size.
    pub fn encoded_bound(&self) -> usize {
        let data = match &self.data {
            RawData::None => 0,
            RawData::Bytes(b) => b.len() + 16,
            RawData::Verdict(_, c) => 32 + c.as_ref().map_or(0, |c| c.len()),
        };
        48 + self.key.len() + self.key_end.as_ref().map_or(0, |k| k.len() + 8) + data + self.userdata.len()
    }
}

