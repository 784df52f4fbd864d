//! One nf_tables batch: messages encoded by libnftnl into one buffer between `BATCH_BEGIN`
//! and `BATCH_END`, each with its own sequence number and a label naming the object it
//! carries, so an error from the kernel names what failed. Built only from a
//! [`crate::tx::Transaction`] (see [`super::encode`]).

use std::ffi::{c_char, c_void, CString};

use nftnl_sys as sys;

use crate::tx::{ChainHook, RawElement, TableFamily};
use crate::stmt::Rule;

use super::encode;
use super::wire::{self, WireElement};

const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_DELCHAIN: u16 = 5;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_NEWSET: u16 = 9;
pub(super) const NFT_MSG_NEWSETELEM: u16 = 12;
pub(super) const NFT_MSG_DELSETELEM: u16 = 14;
// No message asks for an ACK (NLM_F_ACK): errors come anyway, and the socket learns that a
// batch is done from the answer to a request sent after it (see `socket.rs`).
pub(super) use kproxy_netlink::NLM_F_CREATE;
pub(super) use kproxy_netlink::NLM_F_EXCL;
use kproxy_netlink::NLM_F_APPEND;

/// `elements` cut into messages of at most `max_bytes` of [`RawElement::encoded_bound`]
/// each (at least one element per message, and one empty message for no elements: a flush).
fn chunks<T: WireElement>(elements: &[T], max_bytes: usize) -> Vec<&[T]> {
    let mut out = Vec::new();
    let mut rest = elements;
    loop {
        let mut n = 0;
        let mut bytes = 0;
        while n < rest.len() {
            let b = rest[n].bound();
            if n > 0 && bytes + b > max_bytes {
                break;
            }
            bytes += b;
            n += 1;
        }
        let (chunk, tail) = rest.split_at(n);
        out.push(chunk);
        rest = tail;
        if rest.is_empty() {
            return out;
        }
    }
}

/// A batch being built.
pub struct Batch {
    buf: Vec<u8>,
    seq: u32,
    labels: Vec<(u32, String)>,
    set_id: u32,
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

fn cstr(s: &str) -> CString {
    // Names come from kproxy's own constants and configuration; a NUL would be a bug.
    CString::new(s.replace('\0', "")).expect("NUL removed")
}

impl Batch {
    /// An empty batch (`BATCH_BEGIN` written).
    pub fn new() -> Self {
        let mut b = Batch { buf: Vec::with_capacity(64 * 1024), seq: 1, labels: Vec::new(), set_id: 1 };
        // SAFETY: `write` reserves 64 bytes; the begin message is 20.
        b.write(64, |p, seq| unsafe { sys::nftnl_batch_begin(p, seq) });
        b.labels.clear();
        b
    }

    /// Encodes one message into at most `bound` fresh bytes; `f` gets the buffer and the seq.
    fn write(&mut self, bound: usize, f: impl FnOnce(*mut c_char, u32) -> *mut libc::nlmsghdr) -> u32 {
        let start = self.buf.len();
        self.buf.resize(start + bound, 0);
        let seq = self.seq;
        self.seq += 1;
        // SAFETY: the buffer has `bound` zeroed bytes at `start`; callers bound their payload.
        let nlh = f(unsafe { self.buf.as_mut_ptr().add(start) } as *mut c_char, seq);
        // SAFETY: libnftnl returns the header it wrote at `start`; its first field is the length.
        let len = unsafe { *(nlh as *const u32) } as usize;
        assert!(len <= bound, "netlink message of {len} bytes overflowed its {bound}-byte bound");
        self.buf.truncate(start + len.div_ceil(4) * 4);
        seq
    }

    fn labelled(&mut self, label: String, bound: usize, f: impl FnOnce(*mut c_char, u32) -> *mut libc::nlmsghdr) {
        let seq = self.write(bound, f);
        self.labels.push((seq, label));
    }

    /// `add table` (no error if it exists).
    pub fn add_table(&mut self, family: TableFamily, name: &str) {
        self.table(NFT_MSG_NEWTABLE, NLM_F_CREATE, family, name, format!("add table {name}"));
    }

    /// `delete table` (fails if it does not exist: precede it with [`Batch::add_table`]).
    pub fn delete_table(&mut self, family: TableFamily, name: &str) {
        self.table(NFT_MSG_DELTABLE, 0, family, name, format!("delete table {name}"));
    }

    fn table(&mut self, msg: u16, flags: u16, family: TableFamily, name: &str, label: String) {
        let cname = cstr(name);
        self.labelled(label, 512, |p, seq| unsafe {
            let t = sys::nftnl_table_alloc();
            sys::nftnl_table_set_str(t, sys::NFTNL_TABLE_NAME as u16, cname.as_ptr());
            if msg == NFT_MSG_NEWTABLE {
                sys::nftnl_table_set_u32(t, sys::NFTNL_TABLE_FLAGS as u16, 0);
            }
            let nlh = sys::nftnl_nlmsg_build_hdr(p, msg, family.number(), flags, seq);
            sys::nftnl_table_nlmsg_build_payload(nlh, t);
            sys::nftnl_table_free(t);
            nlh
        });
    }

    /// `add chain` (regular, or base with a hook).
    pub fn add_chain(&mut self, family: TableFamily, table: &str, name: &str, hook: Option<ChainHook>) {
        let (ct, cn) = (cstr(table), cstr(name));
        let kind = hook.map(|h| cstr(h.kind));
        self.labelled(format!("add chain {table} {name}"), 1024, |p, seq| unsafe {
            let c = sys::nftnl_chain_alloc();
            sys::nftnl_chain_set_str(c, sys::NFTNL_CHAIN_TABLE as u16, ct.as_ptr());
            sys::nftnl_chain_set_str(c, sys::NFTNL_CHAIN_NAME as u16, cn.as_ptr());
            if let (Some(h), Some(k)) = (hook, kind.as_ref()) {
                sys::nftnl_chain_set_str(c, sys::NFTNL_CHAIN_TYPE as u16, k.as_ptr());
                sys::nftnl_chain_set_u32(c, sys::NFTNL_CHAIN_HOOKNUM as u16, h.hooknum);
                sys::nftnl_chain_set_s32(c, sys::NFTNL_CHAIN_PRIO as u16, h.priority);
            }
            let nlh = sys::nftnl_nlmsg_build_hdr(p, NFT_MSG_NEWCHAIN, family.number(), NLM_F_CREATE, seq);
            sys::nftnl_chain_nlmsg_build_payload(nlh, c);
            sys::nftnl_chain_free(c);
            nlh
        });
    }

    /// `delete chain` (its rules go with it; nothing may still point to it).
    pub fn delete_chain(&mut self, family: TableFamily, table: &str, name: &str) {
        let (ct, cn) = (cstr(table), cstr(name));
        self.labelled(format!("delete chain {table} {name}"), 512, |p, seq| unsafe {
            let c = sys::nftnl_chain_alloc();
            sys::nftnl_chain_set_str(c, sys::NFTNL_CHAIN_TABLE as u16, ct.as_ptr());
            sys::nftnl_chain_set_str(c, sys::NFTNL_CHAIN_NAME as u16, cn.as_ptr());
            let nlh = sys::nftnl_nlmsg_build_hdr(p, NFT_MSG_DELCHAIN, family.number(), 0, seq);
            sys::nftnl_chain_nlmsg_build_payload(nlh, c);
            sys::nftnl_chain_free(c);
            nlh
        });
    }

    /// `add set`: `raw` holds every attribute after table, name and id (flags, key and data
    /// types and lengths, descriptions, userdata), already netlink-encoded.
    pub fn add_set_raw(&mut self, family: TableFamily, table: &str, name: &str, raw: &[u8]) {
        let (ct, cn) = (cstr(table), cstr(name));
        let id = self.set_id;
        self.set_id += 1;
        self.labelled(format!("add set {table} {name}"), 1024 + raw.len(), |p, seq| unsafe {
            let s = sys::nftnl_set_alloc();
            sys::nftnl_set_set_str(s, sys::NFTNL_SET_TABLE as u16, ct.as_ptr());
            sys::nftnl_set_set_str(s, sys::NFTNL_SET_NAME as u16, cn.as_ptr());
            sys::nftnl_set_set_u32(s, sys::NFTNL_SET_ID as u16, id);
            let nlh = sys::nftnl_nlmsg_build_hdr(p, NFT_MSG_NEWSET, family.number(), NLM_F_CREATE, seq);
            sys::nftnl_set_nlmsg_build_payload(nlh, s);
            sys::nftnl_set_free(s);
            // Append the raw attributes and grow the message length accordingly.
            let len = *(nlh as *const u32) as usize;
            std::ptr::copy_nonoverlapping(raw.as_ptr(), (nlh as *mut u8).add(len), raw.len());
            *(nlh as *mut u32) = (len + raw.len()) as u32;
            nlh
        });
    }

    /// `add rule` (appended to its chain).
    pub fn add_rule(&mut self, family: TableFamily, table: &str, rule: &Rule) {
        let (ct, cc) = (cstr(table), cstr(&rule.chain));
        let bound = 1024 + rule.exprs.len() * 256;
        self.labelled(format!("add rule {table} {} {}", rule.chain, rule.text), bound, |p, seq| unsafe {
            let r = sys::nftnl_rule_alloc();
            sys::nftnl_rule_set_str(r, sys::NFTNL_RULE_TABLE as u16, ct.as_ptr());
            sys::nftnl_rule_set_str(r, sys::NFTNL_RULE_CHAIN as u16, cc.as_ptr());
            for e in &rule.exprs {
                sys::nftnl_rule_add_expr(r, encode::expr(e));
            }
            if let Some(c) = &rule.comment {
                let ud = crate::bytes::comment_udata(c);
                sys::nftnl_rule_set_data(r, sys::NFTNL_RULE_USERDATA as u16, ud.as_ptr() as *const c_void, ud.len() as u32);
            }
            let nlh = sys::nftnl_nlmsg_build_hdr(
                p,
                NFT_MSG_NEWRULE,
                family.number(),
                NLM_F_CREATE | NLM_F_APPEND,
                seq,
            );
            sys::nftnl_rule_nlmsg_build_payload(nlh, r);
            sys::nftnl_rule_free(r);
            nlh
        });
    }

    /// Removes every element of a set.
    pub fn flush_set(&mut self, family: TableFamily, table: &str, set: &str) {
        self.elements::<RawElement>(NFT_MSG_DELSETELEM, 0, family, table, set, &[], usize::MAX, "flush");
    }

    /// Element messages of `msg` with `flags` (an `add` that must not find the element
    /// passes `NLM_F_EXCL`), cut into messages of at most `max_bytes`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn elements<T: WireElement>(
        &mut self,
        msg: u16,
        flags: u16,
        family: TableFamily,
        table: &str,
        set: &str,
        elements: &[T],
        max_bytes: usize,
        verb: &str,
    ) {
        // Same NUL handling as `cstr` for the libnftnl-encoded messages.
        let (table_z, set_z) = (table.replace('\0', ""), set.replace('\0', ""));
        for chunk in chunks(elements, max_bytes) {
            let label = format!("{verb} {} element(s) of set {table} {set}", chunk.len());
            let seq = self.seq;
            self.seq += 1;
            wire::elements_message(&mut self.buf, msg, family.number(), flags, seq, &table_z, &set_z, chunk);
            self.labels.push((seq, label));
        }
    }

    /// The libnftnl encoding [`Batch::elements`] replaced, kept to prove both write the same
    /// bytes.
    #[cfg(test)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn elements_libnftnl(
        &mut self,
        msg: u16,
        flags: u16,
        family: TableFamily,
        table: &str,
        set: &str,
        elements: &[RawElement],
        max_bytes: usize,
        verb: &str,
    ) {
        let (ct, cs) = (cstr(table), cstr(set));
        for chunk in chunks(elements, max_bytes) {
            let bytes: usize = chunk.iter().map(RawElement::encoded_bound).sum();
            let label = format!("{verb} {} element(s) of set {table} {set}", chunk.len());
            self.labelled(label, 1024 + bytes, |p, seq| unsafe {
                let s = sys::nftnl_set_alloc();
                sys::nftnl_set_set_str(s, sys::NFTNL_SET_TABLE as u16, ct.as_ptr());
                sys::nftnl_set_set_str(s, sys::NFTNL_SET_NAME as u16, cs.as_ptr());
                for e in chunk {
                    sys::nftnl_set_elem_add(s, encode::element(e));
                }
                let f = flags | if msg == NFT_MSG_NEWSETELEM { NLM_F_EXCL } else { 0 };
                let nlh = sys::nftnl_nlmsg_build_hdr(p, msg, family.number(), f, seq);
                sys::nftnl_set_elems_nlmsg_build_payload(nlh, s);
                sys::nftnl_set_free(s);
                nlh
            });
        }
    }

    /// Without `BATCH_END`: the kernel then processes every message (loading the expression
    /// modules it needs, checking every reference) and aborts instead of committing, as
    /// `nft --check` does. Returns the bytes to send and the labels by sequence number.
    pub fn finish_unterminated(self) -> (Vec<u8>, Vec<(u32, String)>) {
        (self.buf, self.labels)
    }

    /// Writes `BATCH_END`; returns the bytes to send and the labels by sequence number.
    pub fn finish(mut self) -> (Vec<u8>, Vec<(u32, String)>) {
        // SAFETY: 64 bytes reserved; the end message is 20.
        self.write(64, |p, seq| unsafe { sys::nftnl_batch_end(p, seq) });
        (self.buf, self.labels)
    }
}
