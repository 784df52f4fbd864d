//! `kproxy doctor`: checks one node for the failures of the seed guide's troubleshooting table
//! and what an operator would check next, each with a verdict, what was seen and what to do.
//!
//! Two halves, as everywhere in kproxy:
//! - [`gather`] (the edge) reads facts, read-only: routes and addresses, the CNI configuration,
//!   conntrack sysctls and entries, nftables tables, IPVS, kube-proxy's leftovers, the
//!   daemon's `/healthz` and `/metrics`. It never writes to the kernel and never talks to the
//!   sync path of a running kproxy.
//! - [`checks`] turns [`Facts`] into [`Check`]s: pure functions, unit-tested without root.
//!
//! What it does not do: load the configuration or talk to the API server (the `kproxy` binary
//! does both with the daemon's own code and hands the results in as facts), or repair anything.
#![warn(missing_docs)]

pub mod checks;
pub mod cli;
pub mod cni;
mod facts;
pub mod gather;
pub mod http;
pub mod report;

pub use facts::*;
pub use report::{Check, Report, Verdict};
