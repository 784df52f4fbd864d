//! [`Transaction`]: a list of nf_tables operations as plain values.

use std::sync::Arc;

use super::{ChainHook, RawElement, TableFamily};
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

    /// `delete element` (nothing when `elements` is empty).
    pub fn delete_elements(&mut self, family: TableFamily, table: &str, set: &str, elements: Vec<SetElement>) {
        if !elements.is_empty() {
            self.push(Op::DeleteElements { family, table: table.into(), set: set.into(), elements });
        }
    }
}
