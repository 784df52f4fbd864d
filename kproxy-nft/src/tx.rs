//! nf_tables objects and operations as plain values: [`Transaction`] and what it holds.
//! Public through [`crate::lowlevel`]; nothing here touches a socket.

use std::sync::Arc;

use crate::plan::{Key, Value};
use crate::stmt::Rule;

/// A set or map declaration: its name and its NEWSET attributes after table, name and id
/// (flags, key and data types and lengths, descriptions, userdata), netlink-encoded as nft
/// writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetDecl {
    /// Set name.
    pub name: String,
    /// `NFTA_SET_FLAGS`, `NFTA_SET_KEY_TYPE`, ... attributes.
    pub raw: Vec<u8>,
}

/// One set element: typed (kproxy's plan shapes, encoded at the edge without an allocation
/// per element) or already encoded bytes (interval ends, embedders' own sets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetElement {
    /// A key of one of kproxy's shapes, its data and a comment (`ns/name:port`, may be empty).
    Typed {
        /// Key.
        key: Key,
        /// Data (`Value::None` for a set).
        value: Value,
        /// Comment stored in the element's userdata.
        comment: Arc<str>,
    },
    /// Kernel bytes.
    Raw(Box<RawElement>),
}

impl From<RawElement> for SetElement {
    fn from(e: RawElement) -> Self {
        SetElement::Raw(Box::new(e))
    }
}

/// One operation. Every operation names its table; the family says which (`ip`, `ip6`,
/// `inet`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `add table` (no error if it exists).
    AddTable {
        /// Family.
        family: TableFamily,
        /// Table.
        table: String,
    },
    /// `delete table` with everything in it (ENOENT if it does not exist).
    DeleteTable {
        /// Family.
        family: TableFamily,
        /// Table.
        table: String,
    },
    /// `add chain`: regular, or a base chain with a hook (no error if it exists).
    AddChain {
        /// Family.
        family: TableFamily,
        /// Table.
        table: String,
        /// Chain.
        chain: String,
        /// Hook of a base chain.
        hook: Option<ChainHook>,
    },
    /// `delete chain` with its rules (ENOENT if missing, EBUSY while anything jumps to it).
    DeleteChain {
        /// Family.
        family: TableFamily,
        /// Table.
        table: String,
        /// Chain.
        chain: String,
    },
    /// `add rule` (appended to its chain).
    AddRule {
        /// Family.
        family: TableFamily,
        /// Table.
        table: String,
        /// The rule (it names its chain).
        rule: Rule,
    },
    /// `add set` / `add map`.
    AddSet {
        /// Family.
        family: TableFamily,
        /// Table.
        table: String,
        /// Name and types.
        set: SetDecl,
    },
    /// `flush set`: removes every element.
    FlushSet {
        /// Family.
        family: TableFamily,
        /// Table.
        table: String,
        /// Set.
        set: String,
    },
    /// `add element` (EEXIST if an element with the same key exists: kproxy deletes the old
    /// version first).
    AddElements {
        /// Family.
        family: TableFamily,
        /// Table.
        table: String,
        /// Set.
        set: String,
        /// Elements.
        elements: Vec<SetElement>,
    },
    /// `delete element` of elements that may be gone already (a dynamic set's entries,
    /// which the packet path adds and times out): no error for a missing one; only keys
    /// matter. Encoded as `add` (without `NLM_F_EXCL`, so a present element is kept as it
    /// is) then `delete` of the same elements, which any nf_tables kernel accepts.
    DestroyElements {
        /// Family.
        family: TableFamily,
        /// Table.
        table: String,
        /// Set.
        set: String,
        /// Elements (with the data they were read with: the `add` must not clash).
        elements: Vec<SetElement>,
    },
    /// `delete element` (ENOENT if one is missing; only keys matter).
    DeleteElements {
        /// Family.
        family: TableFamily,
        /// Table.
        table: String,
        /// Set.
        set: String,
        /// Elements.
        elements: Vec<SetElement>,
    },
}

/// Operations committed together: all of them or none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transaction {
    ops: Vec<Op>,
}

impl Transaction {
    /// An empty transaction.
    pub fn new() -> Self {
        Transaction::default()
    }

    /// The operations, in order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Whether there is nothing to commit.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Appends an operation.
    pub fn push(&mut self, op: Op) {
        self.ops.push(op);
    }

    /// `add table`.
    pub fn add_table(&mut self, family: TableFamily, table: &str) {
        self.push(Op::AddTable { family, table: table.into() });
    }

    /// `delete table` (precede it with [`Transaction::add_table`] when it may be missing).
    pub fn delete_table(&mut self, family: TableFamily, table: &str) {
        self.push(Op::DeleteTable { family, table: table.into() });
    }

    /// `add chain`.
    pub fn add_chain(&mut self, family: TableFamily, table: &str, chain: &str, hook: Option<ChainHook>) {
        self.push(Op::AddChain { family, table: table.into(), chain: chain.into(), hook });
    }

    /// `delete chain`.
    pub fn delete_chain(&mut self, family: TableFamily, table: &str, chain: &str) {
        self.push(Op::DeleteChain { family, table: table.into(), chain: chain.into() });
    }

    /// `add rule`.
    pub fn add_rule(&mut self, family: TableFamily, table: &str, rule: Rule) {
        self.push(Op::AddRule { family, table: table.into(), rule });
    }

    /// `add set` with raw NEWSET attributes (see [`SetDecl`]).
    pub fn add_set_raw(&mut self, family: TableFamily, table: &str, set: &str, raw: &[u8]) {
        self.push(Op::AddSet { family, table: table.into(), set: SetDecl { name: set.into(), raw: raw.to_vec() } });
    }

    /// `flush set`.
    pub fn flush_set(&mut self, family: TableFamily, table: &str, set: &str) {
        self.push(Op::FlushSet { family, table: table.into(), set: set.into() });
    }

    /// `add element` (nothing when `elements` is empty).
    pub fn add_elements(&mut self, family: TableFamily, table: &str, set: &str, elements: Vec<SetElement>) {
        if !elements.is_empty() {
            self.push(Op::AddElements { family, table: table.into(), set: set.into(), elements });
        }
    }

    /// `destroy element`: delete if present (nothing when `elements` is empty). See
    /// [`Op::DestroyElements`].
    pub fn destroy_elements(&mut self, family: TableFamily, table: &str, set: &str, elements: Vec<SetElement>) {
        if !elements.is_empty() {
            self.push(Op::DestroyElements { family, table: table.into(), set: set.into(), elements });
        }
    }

    /// `delete element` (nothing when `elements` is empty).
    pub fn delete_elements(&mut self, family: TableFamily, table: &str, set: &str, elements: Vec<SetElement>) {
        if !elements.is_empty() {
            self.push(Op::DeleteElements { family, table: table.into(), set: set.into(), elements });
        }
    }
}

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
    /// `NFTA_SET_ELEM_TIMEOUT` in milliseconds: the element's lifetime (sets with timeouts).
    pub timeout_ms: Option<u64>,
    /// `NFTA_SET_ELEM_EXPIRATION` in milliseconds: the lifetime left (read back from the
    /// kernel, or given with a timeout to add an element that expires sooner).
    pub expiration_ms: Option<u64>,
}

/// Map data of a [`RawElement`].
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
        let times = 12 * (usize::from(self.timeout_ms.is_some()) + usize::from(self.expiration_ms.is_some()));
        48 + self.key.len() + self.key_end.as_ref().map_or(0, |k| k.len() + 8) + data + self.userdata.len() + times
    }
}

