//! A table as read back from the kernel: chains with their decoded rules, and sets with
//! their elements. Plain data: [`crate::trace::read_table`] fills it from a netlink dump,
//! [`TableDump::from_fake`] from a [`crate::lowlevel::FakeKernel`] table (unit tests).

use std::collections::BTreeMap;

use crate::fake::FakeTable;
use crate::stmt::Expr;
use crate::tx::{RawData, RawElement};

/// `NFT_SET_INTERVAL`.
pub(crate) const SET_INTERVAL: u32 = 0x4;
/// `NFT_SET_TIMEOUT`: elements may expire (kproxy's dynamic affinity maps).
pub(crate) const SET_TIMEOUT: u32 = 0x10;
/// `NFT_SET_ELEM_INTERVAL_END`.
pub(crate) const ELEM_INTERVAL_END: u32 = 0x1;

/// One table of one family, as the kernel lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableDump {
    /// Chains by name.
    pub chains: BTreeMap<String, DumpedChain>,
    /// Sets and maps by name.
    pub sets: BTreeMap<String, DumpedSet>,
}

/// A base chain's hook, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpedHook {
    /// `filter`, `nat`, `route`.
    pub kind: String,
    /// `NF_INET_*` hook number.
    pub hooknum: u32,
    /// Priority.
    pub priority: i32,
}

/// A chain and its rules in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DumpedChain {
    /// Hook of a base chain.
    pub hook: Option<DumpedHook>,
    /// Rules, in order.
    pub rules: Vec<DumpedRule>,
}

/// One rule: its expressions if every one is of a kind kproxy emits, else the first
/// expression kind that is not (the rule is then reported, not evaluated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpedRule {
    /// Decoded expressions (empty for a foreign rule).
    pub exprs: Vec<Expr>,
    /// `Some(kind)`: an expression kproxy never emits, so the rule is not evaluated.
    pub foreign: Option<String>,
    /// The rule's comment.
    pub comment: Option<String>,
    /// Kernel handle (0 when unknown).
    pub handle: u64,
}

/// A set or map: its declared shape and its elements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DumpedSet {
    /// `NFTA_SET_FLAGS`.
    pub flags: u32,
    /// `NFTA_SET_KEY_LEN` (bytes).
    pub key_len: u32,
    /// `NFTA_SET_DATA_TYPE` of maps.
    pub data_type: Option<u32>,
    /// Elements, as listed.
    pub elements: Vec<RawElement>,
}

impl TableDump {
    /// The same table seen through a fake kernel (comments of elements are not kept there).
    pub fn from_fake(t: &FakeTable) -> TableDump {
        let chains = t
            .chains
            .iter()
            .map(|(name, c)| {
                let hook = c.hook.map(|h| DumpedHook { kind: h.kind.into(), hooknum: h.hooknum, priority: h.priority });
                let rules = c
                    .rules
                    .iter()
                    .map(|r| DumpedRule { exprs: r.exprs.clone(), foreign: None, comment: r.comment.clone(), handle: 0 })
                    .collect();
                (name.clone(), DumpedChain { hook, rules })
            })
            .collect();
        let sets = t
            .sets
            .iter()
            .map(|(name, s)| {
                let elements = s
                    .elements
                    .iter()
                    .map(|((key, end), data)| RawElement {
                        key: key.clone(),
                        data: data.clone(),
                        flags: if *end { ELEM_INTERVAL_END } else { 0 },
                        ..RawElement::default()
                    })
                    .collect();
                (name.clone(), DumpedSet { flags: s.flags, key_len: s.key_len, data_type: s.data_type, elements })
            })
            .collect();
        TableDump { chains, sets }
    }
}

impl DumpedSet {
    /// The element matching `key` (the set's `key_len` bytes): exact keys, `key .. key_end`
    /// ranges (concatenated intervals), or start/end pairs of a single-field interval set.
    pub fn find(&self, key: &[u8]) -> Option<&RawElement> {
        if self.flags & SET_INTERVAL == 0 {
            return self.elements.iter().find(|e| e.key == key);
        }
        if let Some(e) = self.elements.iter().find(|e| e.key_end.as_ref().is_some_and(|end| e.key.as_slice() <= key && key <= end.as_slice())) {
            return Some(e);
        }
        // Single-field intervals: the closest boundary at or below the key decides; an end
        // boundary is exclusive (the first value after the range).
        self.elements
            .iter()
            .filter(|e| e.key_end.is_none() && e.key.as_slice() <= key)
            .max_by(|a, b| a.key.cmp(&b.key).then((a.flags & ELEM_INTERVAL_END).cmp(&(b.flags & ELEM_INTERVAL_END))))
            .filter(|e| e.flags & ELEM_INTERVAL_END == 0)
    }

    /// Whether this is a verdict map.
    pub fn is_verdict_map(&self) -> bool {
        self.data_type == Some(crate::tx::NFT_DATA_VERDICT)
    }
}

/// The comment of an element (nft's userdata: type 0, length, NUL-terminated text).
pub fn element_comment(e: &RawElement) -> Option<String> {
    udata_comment(&e.userdata)
}

/// The comment in nftnl userdata TLVs (type 0).
pub(crate) fn udata_comment(mut u: &[u8]) -> Option<String> {
    while u.len() >= 2 {
        let (kind, len) = (u[0], u[1] as usize);
        let value = u.get(2..2 + len)?;
        if kind == 0 {
            let text = value.split(|b| *b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned()).filter(|s| !s.is_empty());
        }
        u = &u[2 + len..];
    }
    None
}

/// A verdict-map element's verdict, if it has one.
pub(crate) fn element_verdict(e: &RawElement) -> Option<(i32, Option<&str>)> {
    match &e.data {
        RawData::Verdict(code, chain) => Some((*code, chain.as_deref())),
        _ => None,
    }
}
