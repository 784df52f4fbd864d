//! The checks: pure functions from [`Facts`] to [`Check`]s, one file per group.

mod config;
mod conntrack;
mod daemon;
mod kernel;
mod pods;

use crate::{ConfigFacts, Facts, Report, Settings};

/// Every check, in the order an operator would go: configuration, node networking, kernel,
/// conntrack, API, then the daemon itself. With an invalid configuration only the checks
/// that do not depend on it run (the kernel is still worth looking at).
pub fn run(facts: &Facts) -> Report {
    let mut checks = vec![config::config(&facts.config)];
    let settings = match &facts.config {
        ConfigFacts::Valid { settings, .. } => Some(settings),
        ConfigFacts::Invalid(_) => None,
    };
    let fallback = Settings::default();
    if let Some(s) = settings {
        checks.push(pods::cluster_cidr(s, facts));
        checks.push(config::node_port_addresses(s, &facts.local_addrs));
        checks.push(kernel::features(s.mode, &facts.tables, facts.nft_check.as_ref(), facts.ipvs.as_ref(), s.strict_arp));
    }
    checks.push(kernel::leftovers(&facts.leftovers));
    checks.push(kernel::tables(&facts.tables, facts.drift.as_ref(), facts.daemon.healthz.as_ref()));
    checks.push(conntrack::fill(facts.conntrack.as_ref(), settings.unwrap_or(&fallback).conntrack_max));
    if let Some(s) = settings {
        checks.push(conntrack::stale_udp(&facts.stale_udp));
        checks.push(daemon::api(s, facts.api.as_ref()));
        checks.push(daemon::throttling(s, &facts.daemon));
        checks.push(daemon::health(s, &facts.daemon));
    }
    Report { checks }
}

/// At most `n` items joined with `, `, then how many more.
pub(crate) fn some(items: &[String], n: usize) -> String {
    let mut text = items.iter().take(n).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > n {
        text.push_str(&format!(" (and {} more)", items.len() - n));
    }
    text
}
