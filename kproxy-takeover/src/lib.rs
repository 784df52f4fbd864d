//! Taking over a node from kube-proxy: removes the rules kube-proxy leaves behind when it
//! is replaced, in every mode, as upstream kube-proxy removes its other modes' rules when it
//! switches modes (`CleanupLeftovers` in pkg/proxy/{iptables,ipvs,nftables}).
//!
//! # What it removes
//! - iptables mode (and IPVS mode's iptables helpers), in iptables-nft and iptables-legacy,
//!   IPv4 and IPv6, tables filter/nat/mangle: kube-proxy's chains (see
//!   [`iptables_script::is_kube_proxy_chain`]) and the rules of built-in chains that jump to
//!   them, one atomic `iptables-restore --noflush` per table.
//! - nftables mode: the tables `ip kube-proxy` and `ip6 kube-proxy`.
//! - IPVS mode: with [`Mode::Nftables`] every IPVS virtual server (as upstream's cleanup
//!   flushes IPVS) and the `kube-ipvs0` link; in both modes the `KUBE-*` ipsets. With
//!   [`Mode::Ipvs`] kproxy's IPVS backend owns the virtual servers and `kube-ipvs0`, so
//!   those stay.
//!
//! # What it never touches
//! Any other table, chain, rule, set or link: kubelet's `KUBE-FIREWALL` and
//! `KUBE-KUBELET-CANARY` (upstream leaves them too), the admin's rules, other CNIs' rules,
//! and kproxy's own `kproxy` tables. A kube-proxy chain that a foreign chain still jumps to
//! is kept and reported as a warning rather than breaking the foreign rule.
//!
//! # Tools, namespaces and threads
//! The iptables part runs the node's `*-save`/`*-restore` tools (as upstream does) and the
//! ipset part the `ipset` tool; a tool that is not installed is a warning naming what was
//! not checked, never a failure. nftables, IPVS and the link are removed over netlink.
//! Everything acts on the network namespace of the calling thread: netlink sockets are
//! opened and child processes started from it, so call [`take_over`] from a thread in the
//! node's namespace (after `setns`, or inside `ip netns exec`). It blocks; run it before the
//! first sync or on a blocking thread.
//!
//! Nothing is logged here: the [`Report`] lists each removal once, and the caller logs it.
//! [`find::find`] lists the same leftovers without removing them (`kproxy doctor`).
#![warn(missing_docs)]

mod error;
mod exec;
pub mod find;
pub mod iptables;
pub mod iptables_script;
pub mod ipvs;
pub mod nft;

pub use error::TakeoverError;

/// The mode kproxy runs in, which decides who owns IPVS state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// kproxy programs nftables: every kube-proxy leftover goes, IPVS included.
    Nftables,
    /// kproxy programs IPVS itself: only kube-proxy's ipsets and rules outside IPVS go.
    Ipvs,
}

/// What a takeover did.
#[derive(Debug, Default)]
pub struct Report {
    /// Each object removed, named for an operator (one entry per object).
    pub removed: Vec<String>,
    /// What could not be checked or was kept on purpose.
    pub warnings: Vec<String>,
    /// Steps that failed; the other steps still ran.
    pub errors: Vec<TakeoverError>,
}

impl Report {
    /// Whether every step succeeded (warnings allowed).
    pub fn is_complete(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Removes kube-proxy's leftovers of every mode (see the crate docs) and reports what it did.
/// Errors do not stop the other steps.
pub fn take_over(mode: Mode) -> Report {
    let mut report = Report::default();
    for variant in iptables::VARIANTS {
        iptables::remove(variant, &mut report);
    }
    nft::remove(&mut report);
    if mode == Mode::Nftables {
        ipvs::remove_virtual_servers(&mut report);
        ipvs::remove_dummy_link(&mut report);
    }
    // Last: the kernel refuses to destroy an ipset that an iptables rule still uses.
    ipvs::remove_ipsets(&mut report);
    report
}
