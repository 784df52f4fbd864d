//! Logging a kube-proxy takeover (the work is in the kproxy-takeover crate).

use kproxy_core::config::Mode;

/// Removes kube-proxy's leftovers and logs each removal, warning and error once.
/// Returns whether every step succeeded.
pub fn remove_leftovers(mode: Mode) -> bool {
    let mode = match mode {
        Mode::Nftables => kproxy_takeover::Mode::Nftables,
        Mode::Ipvs => kproxy_takeover::Mode::Ipvs,
    };
    let report = kproxy_takeover::take_over(mode);
    for removed in &report.removed {
        tracing::info!("Removed kube-proxy leftover: {removed}");
    }
    for warning in &report.warnings {
        tracing::warn!("Taking over from kube-proxy: {warning}");
    }
    for error in &report.errors {
        tracing::error!("Taking over from kube-proxy: {}", error_chain(error));
    }
    report.is_complete()
}

/// The error with its sources, for one log line.
fn error_chain(error: &kproxy_takeover::TakeoverError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}
