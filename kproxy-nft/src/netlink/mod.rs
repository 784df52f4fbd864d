//! The thin kernel step: a [`Transaction`] encoded as one nf_tables batch and committed on a
//! netlink socket. Nothing here decides what to program: that is [`crate::transaction`].

mod batch;
mod dump;
mod encode;
mod read;
mod socket;
mod wire;

pub(crate) use batch::Batch;
/// The set-element dump parser, for the fuzz entry points.
pub(crate) use dump::parse as parse_set_elements;
use batch::{NFT_MSG_DELSETELEM, NFT_MSG_NEWSETELEM, NLM_F_CREATE, NLM_F_EXCL};
pub use socket::NetlinkError;
pub(crate) use socket::Socket;


use crate::tx::{Op, SetElement, TableFamily, Transaction};
use crate::plan::{ChainRef, Value};
use crate::record::FxMap;

/// One element of an element message: a typed plan element (written without an allocation
/// per element) or raw bytes.
enum Item<'a> {
    Plain(encode::PlanElement<'a>),
    Raw(&'a crate::tx::RawElement),
}

impl wire::WireElement for Item<'_> {
    fn with_parts<R>(&self, f: impl FnOnce(&wire::Parts<'_>) -> R) -> R {
        match self {
            Item::Plain(e) => e.with_parts(f),
            Item::Raw(e) => e.with_parts(f),
        }
    }

    fn bound(&self) -> usize {
        match self {
            Item::Plain(e) => e.bound(),
            Item::Raw(e) => e.bound(),
        }
    }
}

/// What an element message does.
#[derive(Clone, Copy)]
enum ElementOp {
    /// `add`, failing on an existing element (`NLM_F_EXCL`).
    Add,
    /// `add` that keeps an existing element as it is (the first half of a destroy).
    AddKeep,
    /// `delete`.
    Delete,
}

/// Adds (or deletes) one set's elements, split into messages of at most `max_bytes`.
#[allow(clippy::too_many_arguments)]
fn elements(b: &mut Batch, op: ElementOp, family: TableFamily, table: &str, set: &str, els: &[SetElement], max_bytes: usize) {
    // Each chain's name once: a verdict map has 100k+ elements but few chains.
    let mut names: FxMap<ChainRef, String> = FxMap::default();
    for e in els {
        if let SetElement::Typed { value: Value::Verdict(v), .. } = e {
            if let Some(c) = v.chain() {
                names.entry(c).or_insert_with(|| c.name());
            }
        }
    }
    let items: Vec<Item<'_>> = els
        .iter()
        .map(|e| match e {
            SetElement::Typed { key, value, comment } => {
                let chain = match value {
                    Value::Verdict(v) => v.chain().map(|c| names[&c].as_str()),
                    _ => None,
                };
                Item::Plain(encode::PlanElement { key: *key, value: *value, comment, chain })
            }
            SetElement::Raw(r) => Item::Raw(r),
        })
        .collect();
    let (msg, flags, verb) = match op {
        ElementOp::Add => (NFT_MSG_NEWSETELEM, NLM_F_CREATE | NLM_F_EXCL, "add"),
        ElementOp::AddKeep => (NFT_MSG_NEWSETELEM, NLM_F_CREATE, "destroy (add)"),
        ElementOp::Delete => (NFT_MSG_DELSETELEM, 0, "delete"),
    };
    b.elements(msg, flags, family, table, set, &items, max_bytes, verb);
}

/// Encodes a transaction as one batch; element messages carry at most `max_bytes` of
/// elements each.
pub(crate) fn encode(tx: &Transaction, max_bytes: usize) -> Batch {
    let mut b = Batch::new();
    for op in tx.ops() {
        match op {
            Op::AddTable { family, table } => b.add_table(*family, table),
            Op::DeleteTable { family, table } => b.delete_table(*family, table),
            Op::AddChain { family, table, chain, hook } => b.add_chain(*family, table, chain, *hook),
            Op::DeleteChain { family, table, chain } => b.delete_chain(*family, table, chain),
            Op::AddRule { family, table, rule } => b.add_rule(*family, table, rule),
            Op::AddSet { family, table, set } => b.add_set_raw(*family, table, &set.name, &set.raw),
            Op::FlushSet { family, table, set } => b.flush_set(*family, table, set),
            Op::AddElements { family, table, set, elements: els } => {
                elements(&mut b, ElementOp::Add, *family, table, set, els, max_bytes)
            }
            Op::DeleteElements { family, table, set, elements: els } => {
                elements(&mut b, ElementOp::Delete, *family, table, set, els, max_bytes)
            }
            Op::DestroyElements { family, table, set, elements: els } => {
                // The add makes every element exist, so the delete cannot fail with ENOENT
                // on one that timed out (or was never there) since it was read.
                elements(&mut b, ElementOp::AddKeep, *family, table, set, els, max_bytes);
                elements(&mut b, ElementOp::Delete, *family, table, set, els, max_bytes)
            }
        }
    }
    b
}

/// The bytes of the one nf_tables batch `NetlinkKernel` sends for `tx` (`BATCH_BEGIN` to
/// `BATCH_END`): for benchmarks and byte-level tests of the encoder.
pub fn batch_bytes(tx: &Transaction, max_message_bytes: usize) -> Vec<u8> {
    encode(tx, max_message_bytes).finish().0
}
