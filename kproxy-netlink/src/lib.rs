//! kproxy's one netlink layer, shared by the nftables backend (`NETLINK_NETFILTER`), the IPVS
//! backend (generic netlink, and rtnetlink for `kube-ipvs0`) and conntrack cleanup.
//!
//! What it does:
//! - framing ([`msg`]): the `nlmsghdr` layout, the `NLMSG_*` / `NLM_F_*` / `NLA_F_*`
//!   constants, a [`Messages`] iterator over received bytes and [`ErrorMsg`], the parsed
//!   `nlmsgerr` with its extended ACK (`NLMSGERR_ATTR_MSG`, `NLMSGERR_ATTR_OFFS`);
//! - attributes ([`attr`]): [`MsgBuilder`] and the free functions it is made of ([`put`],
//!   [`put_strz`], [`nest_start`], [`nest_end`]; 4-byte aligned), and the [`Attrs`] iterator;
//! - the socket ([`Socket`]): one `AF_NETLINK` socket per [`Protocol`], sequence numbers,
//!   pipelined requests with one verdict per message ([`Socket::transact`]), dumps until
//!   `NLMSG_DONE` ([`Socket::dump`], [`Socket::request`]), raw sends and receives for
//!   protocols with their own transaction rules (nf_tables batches), buffer sizing;
//! - [`Sysctl`]: reading and writing kernel parameters under `/proc/sys`.
//!
//! What it does not do: it knows no protocol's messages (nf_tables, IPVS, rtnetlink and
//! ctnetlink encoders live with their backends), does no async I/O, and never retries a
//! request on its own.
//!
//! Threads and network namespaces: a netlink socket belongs to the network namespace of the
//! thread that opened it, for its whole life. Open it on a thread that has entered the wanted
//! namespace (`setns`); afterwards it may be moved to and used from any thread ([`Socket`] is
//! `Send`, and every operation takes `&mut self`, so one thread uses it at a time). Likewise
//! `/proc/sys/net` shows the namespace of the thread that reads it.
#![warn(missing_docs)]

pub mod attr;
#[doc(hidden)]
pub mod fuzzing;
pub mod msg;
pub mod socket;
pub mod sysctl;

pub use attr::{align, nest_end, nest_start, put, put_strz, Attr, Attrs, MsgBuilder};
pub use msg::{
    set_seq, ErrorMsg, Messages, Msg, NLA_F_NESTED, NLA_F_NET_BYTEORDER, NLA_TYPE_MASK, NLMSGERR_ATTR_MSG,
    NLMSGERR_ATTR_OFFS, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN, NLMSG_NOOP, NLMSG_OVERRUN, NLM_F_ACK,
    NLM_F_ACK_TLVS, NLM_F_APPEND, NLM_F_CAPPED, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_ECHO,
    NLM_F_EXCL, NLM_F_MATCH, NLM_F_MULTI, NLM_F_REPLACE, NLM_F_REQUEST, NLM_F_ROOT,
};
pub use socket::{Error, KernelError, Protocol, Replies, Socket, Verdict, PIPELINE};
pub use sysctl::{Ensured, Sysctl};
