//! kproxy-conntrack: the conntrack side of a Kubernetes service proxy, usable without the
//! `kproxy` binary (e.g. by a CNI that programs its own service rules).
//!
//! What it does:
//! - after each sync, deletes the UDP conntrack entries that the new proxy state makes stale
//!   ([`Reconciler`]): UDP has no teardown, so a client keeps being DNATed to an endpoint that
//!   is gone until its entry is deleted. The verdict itself is pure and lives in
//!   [`kproxy_core::conntrack`]; this crate reads and deletes the entries over ctnetlink
//!   ([`ConntrackSocket`]) behind the [`ConntrackTable`] trait, which a test can fake;
//! - at start, tunes the conntrack sysctls as kube-proxy does ([`tuning`]), through the small
//!   [`sysctl`] read/write seam (implemented by [`kproxy_netlink::Sysctl`]).
//!
//! What it does not do: it keeps no metrics and decides nothing about failures. A
//! reconciliation returns a report per IP family (entries examined, stale, deleted, already
//! gone, per-entry errors) and an [`Error`] for a failing step; the caller counts and logs
//! them (kproxy records them into `kubeproxy_conntrack_reconciler_deleted_entries_total`); the
//! reconciler itself only emits `tracing` debug events (each deleted flow; a kernel without
//! dump filtering). Sysctl tuning never fails: each key's outcome is returned, and logged as
//! kube-proxy does (info for a value set, a warning for one that could not be), because a
//! read-only `/proc/sys` must not stop a proxy.
//!
//! Threads and network namespaces: a [`ConntrackSocket`] belongs to the network namespace of
//! the thread that opened it, and stays there whichever thread uses it later.
//! [`Reconciler::new`] opens its socket on first use, in the namespace of the thread calling
//! [`Reconciler::reconcile`]; open the socket yourself (e.g. after `setns(2)`) and pass it to
//! [`Reconciler::with_table`] to work on another namespace. Nothing here is shared between
//! threads: a reconciler is `Send` and used from one thread at a time (`&mut self`). Sysctls
//! are read and written through `/proc/sys`, which shows the namespace of the process's mount
//! of `/proc`.
//!
//! Needs CAP_NET_ADMIN for ctnetlink and for writing the sysctls.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
#[doc(hidden)]
pub mod fuzzing;
mod netlink;
mod reconciler;
pub mod sysctl;
mod table;
pub mod tuning;

pub use error::Error;
pub use netlink::ConntrackSocket;
pub use reconciler::{ReconcileReport, Reconciler};
pub use table::{ConntrackTable, DeleteFailure, DeleteReport};

/// The README's example is compiled as a doctest so that it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
