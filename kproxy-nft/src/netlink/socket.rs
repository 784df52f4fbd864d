//! Committing one batch over a [`kproxy_netlink::Socket`] and finding out its outcome.
//!
//! Why no message asks for an ACK: the kernel sends errors whether asked or not, and handles
//! a whole batch inside `sendmsg`, so every error is queued before `send` returns. Per-message
//! ACKs only filled the receive buffer (at 100k services x 10 endpoints it overflowed with
//! ENOBUFS after the kernel had committed). Instead, a `NFT_MSG_GETGEN` request sent after the
//! batch marks the end of its answers: errors before it name the failing objects (by sequence
//! number); none means the batch was committed.
//!
//! If answers are lost anyway (a rejected batch whose errors overflow the buffer), the
//! ruleset generation read before and after the batch tells whether anything was committed.

use std::io;
use std::time::Duration;

use kproxy_netlink::{set_seq, Attrs, Messages, MsgBuilder, Protocol, NLMSG_HDRLEN, NLM_F_REQUEST};

use super::batch::Batch;
use super::dump;
use super::read::{self, Objects};
use crate::trace::table::TableDump;
use crate::tx::{RawElement, TableFamily};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWGEN: u16 = 15;
const NFT_MSG_GETGEN: u16 = 16;
const NFTA_GEN_ID: u16 = 1;
/// How long to wait for the answer that ends a batch's answers (they are queued by then).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// Receive-buffer bytes per message of a batch: room for an error answer to each of them
/// (an skb of a capped error with extended ACK takes well under 1 KiB).
const RCVBUF_PER_MESSAGE: usize = 1024;

/// Why a commit failed.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// Opening the netfilter netlink socket failed.
    #[error("opening a NETLINK_NETFILTER socket failed (needs CAP_NET_ADMIN in this network namespace)")]
    Open(#[source] kproxy_netlink::Error),
    /// Reading the ruleset generation (`NFT_MSG_GETGEN`) failed; before a batch, nothing was
    /// sent; around a table read, nothing was read.
    #[error("reading the nftables ruleset generation {when} failed")]
    Generation {
        /// `before` or `after`.
        when: &'static str,
        /// The socket's error.
        #[source]
        source: kproxy_netlink::Error,
    },
    /// The kernel refused `NFT_MSG_GETGEN` (a kernel without nf_tables?).
    #[error("the kernel refused to report the nftables ruleset generation (is nf_tables available? `modprobe nf_tables`)")]
    GenerationRefused(#[source] kproxy_netlink::KernelError),
    /// Sending the batch failed; the kernel did not process it.
    #[error("sending a batch of {bytes} bytes failed")]
    Send {
        /// Batch size.
        bytes: usize,
        /// The socket's error.
        #[source]
        source: kproxy_netlink::Error,
    },
    /// Receiving the kernel's answers failed.
    #[error("receiving the kernel's answers to the batch failed")]
    Receive(#[source] kproxy_netlink::Error),
    /// The kernel rejected the batch; nothing of it was applied.
    #[error("the kernel rejected `{object}`: {source}{}", detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Rejected {
        /// The failing message's object, e.g. `add rule kproxy services ...`.
        object: String,
        /// The kernel's error code.
        #[source]
        source: io::Error,
        /// The kernel's extended-ack message, if any.
        detail: Option<String>,
    },
    /// Reading a set's elements (`NFT_MSG_GETSETELEM` dump) failed on the socket.
    #[error("reading the elements of set `{set}` of table `{table}` failed")]
    Dump {
        /// Table.
        table: String,
        /// Set.
        set: String,
        /// The socket's error.
        #[source]
        source: kproxy_netlink::Error,
    },
    /// The kernel refused to list a set's elements (ENOENT: the table or set does not exist).
    #[error("the kernel refused to list the elements of set `{set}` of table `{table}`: {source}")]
    DumpRefused {
        /// Table.
        table: String,
        /// Set.
        set: String,
        /// The kernel's answer.
        #[source]
        source: kproxy_netlink::KernelError,
    },
    /// Listing a table's chains, rules or sets (`kproxy trace`) failed on the socket.
    #[error("reading the {what} of table `{table}` failed")]
    ReadTable {
        /// `chains`, `rules` or `sets`.
        what: &'static str,
        /// Table.
        table: String,
        /// The socket's error.
        #[source]
        source: kproxy_netlink::Error,
    },
    /// The kernel refused to list a table's chains, rules or sets.
    #[error("the kernel refused to list the {what} of table `{table}`: {source}")]
    ReadTableRefused {
        /// `chains`, `rules` or `sets`.
        what: &'static str,
        /// Table.
        table: String,
        /// The kernel's answer.
        #[source]
        source: kproxy_netlink::KernelError,
    },
    /// The kernel's answers were lost (receive buffer overflow) and the ruleset generation
    /// did not move: the batch was not committed, but which object failed is unknown.
    #[error("the kernel rejected the batch (the ruleset generation stayed at {generation}), but its error answers were lost to a receive buffer overflow, so the failing object is unknown")]
    RejectedAnswersLost {
        /// The unchanged generation.
        generation: u32,
    },
    /// The kernel's answers were lost and the ruleset generation moved: something was
    /// committed, possibly by another process, so this batch's outcome is unknown.
    #[error("the kernel's answers to the batch were lost (receive buffer overflow) and the ruleset generation moved from {before} to {after}: whether this batch was committed is unknown (another process may have committed); a full sync replaces the tables either way")]
    Unconfirmed {
        /// Generation before the batch.
        before: u32,
        /// Generation after it.
        after: u32,
    },
}

impl NetlinkError {
    /// Whether the kernel said an object does not exist.
    pub fn is_not_found(&self) -> bool {
        match self {
            NetlinkError::Rejected { source, .. } => source.raw_os_error() == Some(libc::ENOENT),
            NetlinkError::DumpRefused { source, .. } | NetlinkError::ReadTableRefused { source, .. } => {
                source.errno == libc::ENOENT
            }
            _ => false,
        }
    }

    /// Whether the ruleset is known to be as it was before the batch (nothing was sent, or
    /// the kernel rejected it). False when the outcome is unknown.
    pub fn ruleset_unchanged(&self) -> bool {
        !matches!(self, NetlinkError::Unconfirmed { .. } | NetlinkError::Receive(_))
    }
}

/// A netfilter netlink socket bound to the network namespace it was opened in.
pub struct Socket {
    sock: kproxy_netlink::Socket,
}

/// `NFT_MSG_GETGEN` (family unspecified, version 0).
fn getgen() -> Vec<u8> {
    MsgBuilder::new((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN, NLM_F_REQUEST).header(&[0, 0, 0, 0]).finish()
}

/// `NFTA_GEN_ID` of a `NFT_MSG_NEWGEN` payload (after the 4-byte `nfgenmsg`).
fn generation_id(payload: &[u8]) -> Option<u32> {
    Attrs::new(payload.get(4..)?).find(|a| a.kind == NFTA_GEN_ID)?.be32()
}

/// Adds `offset` to the sequence number of every message in `buf`; returns how many.
fn renumber(buf: &mut [u8], offset: u32) -> u32 {
    let mut at = 0;
    let mut n = 0;
    while at + NLMSG_HDRLEN <= buf.len() {
        let len = u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
        let seq = u32::from_ne_bytes([buf[at + 8], buf[at + 9], buf[at + 10], buf[at + 11]]);
        set_seq(&mut buf[at..], seq.wrapping_add(offset));
        n += 1;
        if len < NLMSG_HDRLEN {
            break;
        }
        at += kproxy_netlink::align(len);
    }
    n
}

/// The first error of a batch, by what the kernel said about which message.
struct FirstError {
    seq: u32,
    errno: i32,
    detail: Option<String>,
}

impl Socket {
    /// Opens a socket in the calling thread's network namespace.
    pub fn new() -> Result<Socket, NetlinkError> {
        Ok(Socket { sock: kproxy_netlink::Socket::open(Protocol::Netfilter).map_err(NetlinkError::Open)? })
    }

    /// The port id of the socket: notifications of this socket's commits carry it.
    pub fn port_id(&self) -> Result<u32, NetlinkError> {
        self.sock.port_id().map_err(NetlinkError::Open)
    }

    /// The current ruleset generation (`NFTA_GEN_ID`).
    fn generation(&mut self, when: &'static str) -> Result<u32, NetlinkError> {
        let mut id = None;
        let answer = self
            .sock
            .dump(getgen(), |m| {
                if m.msg_type & 0xff == NFT_MSG_NEWGEN {
                    id = generation_id(m.payload);
                }
            })
            .map_err(|source| NetlinkError::Generation { when, source })?;
        answer.map_err(NetlinkError::GenerationRefused)?;
        // A NEWGEN without NFTA_GEN_ID has never existed; 0 keeps the comparison meaningful.
        Ok(id.unwrap_or(0))
    }

    /// The elements of `table` `set`, as the kernel lists them (with their timeouts and the
    /// time left before they expire).
    pub fn set_elements(&mut self, family: TableFamily, table: &str, set: &str) -> Result<Vec<RawElement>, NetlinkError> {
        let mut out = Vec::new();
        let answer = self
            .sock
            .dump(dump::request(family, table, set), |m| dump::parse(m.msg_type, m.payload, &mut out))
            .map_err(|source| NetlinkError::Dump { table: table.into(), set: set.into(), source })?;
        answer.map_err(|source| NetlinkError::DumpRefused { table: table.into(), set: set.into(), source })?;
        Ok(out)
    }

    /// `table` as the kernel lists it now: chains, rules (decoded, see [`super::read`]), sets
    /// and every set's elements. The dumps are separate requests, so they are repeated (up
    /// to 3 times) until the ruleset generation is the same before and after them; if it
    /// never is (a commit each time), the last read is returned.
    pub fn read_table(&mut self, family: TableFamily, table: &str) -> Result<TableDump, NetlinkError> {
        let mut last = None;
        for _ in 0..3 {
            let before = self.generation("before reading a table")?;
            let dump = self.read_table_once(family, table)?;
            let unchanged = self.generation("after reading a table")? == before;
            last = Some(dump);
            if unchanged {
                break;
            }
        }
        Ok(last.unwrap_or_default())
    }

    fn read_table_once(&mut self, family: TableFamily, table: &str) -> Result<TableDump, NetlinkError> {
        let mut out = TableDump::default();
        for what in [Objects::Chains, Objects::Rules, Objects::Sets] {
            let answer = self
                .sock
                .dump(read::request(what, family, table), |m| read::parse(m.msg_type, m.payload, table, &mut out))
                .map_err(|source| NetlinkError::ReadTable { what: what.word(), table: table.into(), source })?;
            answer.map_err(|source| NetlinkError::ReadTableRefused { what: what.word(), table: table.into(), source })?;
        }
        let names: Vec<String> = out.sets.keys().cloned().collect();
        for name in names {
            let elements = self.set_elements(family, table, &name)?;
            if let Some(s) = out.sets.get_mut(&name) {
                s.elements = elements;
            }
        }
        Ok(out)
    }

    /// Sends the batch as one transaction and returns the number of messages committed.
    pub fn commit(&mut self, batch: Batch) -> Result<usize, NetlinkError> {
        self.send_batch(batch.finish(), 2)
    }

    /// Sends the batch without its end marker: the kernel checks every message and commits
    /// nothing (see [`Batch::finish_unterminated`]); returns the number of messages checked.
    pub fn check(&mut self, batch: Batch) -> Result<usize, NetlinkError> {
        self.send_batch(batch.finish_unterminated(), 1)
    }

    /// `unlabelled`: BATCH_BEGIN, and BATCH_END unless the batch is only checked.
    fn send_batch(&mut self, (mut buf, mut labels): (Vec<u8>, Vec<(u32, String)>), unlabelled: u32) -> Result<usize, NetlinkError> {
        if labels.is_empty() {
            return Ok(0);
        }
        // The batch numbers its messages from 1 (BATCH_BEGIN); move them into this socket's
        // sequence space so that no answer to an earlier request can match them.
        // Every message but BATCH_BEGIN and BATCH_END has a label.
        let count = labels.len() as u32 + unlabelled;
        let first = self.sock.reserve_seqs(count);
        let offset = first.wrapping_sub(1);
        let renumbered = renumber(&mut buf, offset);
        debug_assert_eq!(renumbered, count, "a batch message without a label");
        for (seq, _) in &mut labels {
            *seq = seq.wrapping_add(offset);
        }
        let before = self.generation("before the batch")?;
        self.sock.grow_buffers(buf.len() + 4096, labels.len() * RCVBUF_PER_MESSAGE + (256 << 10));
        self.sock.send(&buf).map_err(|source| NetlinkError::Send { bytes: buf.len(), source })?;
        // The end marker: its answer comes after every answer to the batch.
        let mut marker = getgen();
        let marker_seq = self.sock.next_seq();
        set_seq(&mut marker, marker_seq);
        let sent_marker = self.sock.send(&marker);
        let mut error: Option<FirstError> = None;
        let mut lost = false;
        let mut after = None;
        // Bounded: ends at the marker's answer, at a quiet ANSWER_TIMEOUT, or at an error
        // other than an overflow (which the socket reports once, then goes on).
        while sent_marker.is_ok() && after.is_none() {
            let bytes = match self.sock.recv(ANSWER_TIMEOUT) {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(e) if e.is_overrun() => {
                    lost = true;
                    continue;
                }
                Err(e) => return Err(NetlinkError::Receive(e)),
            };
            for m in Messages::new(bytes) {
                if m.seq == marker_seq {
                    after = Some(if m.msg_type & 0xff == NFT_MSG_NEWGEN { generation_id(m.payload).unwrap_or(0) } else { before });
                    continue;
                }
                let Some(e) = m.error() else { continue };
                // The kernel answers a failed commit on BATCH_BEGIN's sequence number.
                let ours = m.seq.wrapping_sub(first) < count;
                if e.errno != 0 && ours && error.is_none() {
                    error = Some(FirstError { seq: m.seq, errno: e.errno, detail: e.message });
                }
            }
        }
        if let Some(e) = error {
            let object = match e.seq.checked_sub(labels[0].0) {
                Some(i) if (i as usize) < labels.len() => labels[i as usize].1.clone(),
                _ => "the commit of the batch".to_string(),
            };
            return Err(NetlinkError::Rejected { object, source: io::Error::from_raw_os_error(e.errno), detail: e.detail });
        }
        if !lost && after.is_some() {
            return Ok(labels.len());
        }
        // Answers were lost or the marker was not answered: ask the generation again (the
        // queue is drained now) and compare.
        let after = self.generation("after the batch")?;
        if after == before {
            return Err(NetlinkError::RejectedAnswersLost { generation: before });
        }
        Err(NetlinkError::Unconfirmed { before, after })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renumber_moves_every_message() {
        let mut buf = Vec::new();
        for seq in 1..=3 {
            let mut m = MsgBuilder::new(NFT_MSG_GETGEN, NLM_F_REQUEST).header(&[0, 0, 0, 0]);
            m.str(1, &"x".repeat(seq as usize));
            let mut m = m.finish();
            set_seq(&mut m, seq);
            buf.extend_from_slice(&m);
        }
        assert_eq!(renumber(&mut buf, 100), 3);
        let seqs: Vec<u32> = Messages::new(&buf).map(|m| m.seq).collect();
        assert_eq!(seqs, [101, 102, 103]);
    }

    #[test]
    fn generation_id_is_big_endian() {
        let mut b = MsgBuilder::new(NFT_MSG_NEWGEN, 0).header(&[0, 0, 0, 0]);
        b.be32(NFTA_GEN_ID, 77);
        let m = b.finish();
        assert_eq!(generation_id(&m[NLMSG_HDRLEN..]), Some(77));
    }

    #[test]
    fn only_unknown_outcomes_are_not_unchanged() {
        assert!(!NetlinkError::Unconfirmed { before: 1, after: 2 }.ruleset_unchanged());
        assert!(NetlinkError::RejectedAnswersLost { generation: 1 }.ruleset_unchanged());
    }
}
