//! Conntrack sysctl tuning from the `conntrack:` configuration, as kube-proxy does at start
//! (cmd/kube-proxy/app/conntrack.go):
//!
//! - `nf_conntrack_max = max(maxPerCore x CPUs, min)` when maxPerCore > 0, only ever raised
//!   (never lowered below what the node already allows); the module's `hashsize` is raised to
//!   max/4 when it is smaller (the kernel only allows that from the initial network namespace,
//!   so a failure there is a warning);
//! - `nf_conntrack_tcp_timeout_established` / `_close_wait`, `nf_conntrack_udp_timeout` /
//!   `_udp_timeout_stream` when the configured duration is > 0;
//! - `nf_conntrack_tcp_be_liberal = 1` when tcpBeLiberal is set.
//!
//! Nothing here is fatal: in a container with a read-only `/proc/sys`, or in a network namespace
//! where a key does not exist, each failed key is a warning and the caller goes on.
//!
//! Which values to write lives here; reading and writing a key is [`crate::sysctl`]'s.

use std::time::Duration;

use crate::sysctl::Sysctl;

/// The `conntrack:` settings as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConntrackTuning {
    /// `maxPerCore` (0: leave nf_conntrack_max alone and ignore `min`).
    pub max_per_core: u32,
    /// `min`.
    pub min: u32,
    /// `tcpEstablishedTimeout` (zero: leave as-is).
    pub tcp_established_timeout: Duration,
    /// `tcpCloseWaitTimeout` (zero: leave as-is).
    pub tcp_close_wait_timeout: Duration,
    /// `tcpBeLiberal`.
    pub tcp_be_liberal: bool,
    /// `udpTimeout` (zero: leave as-is).
    pub udp_timeout: Duration,
    /// `udpStreamTimeout` (zero: leave as-is).
    pub udp_stream_timeout: Duration,
}

impl Default for ConntrackTuning {
    /// Upstream's defaults.
    fn default() -> Self {
        ConntrackTuning {
            max_per_core: 32_768,
            min: 131_072,
            tcp_established_timeout: Duration::from_secs(24 * 3600),
            tcp_close_wait_timeout: Duration::from_secs(3600),
            tcp_be_liberal: false,
            udp_timeout: Duration::ZERO,
            udp_stream_timeout: Duration::ZERO,
        }
    }
}

const NETFILTER: &str = "proc/sys/net/netfilter";
/// The conntrack module's hash table size.
pub const HASHSIZE_KEY: &str = "sys/module/nf_conntrack/parameters/hashsize";

/// What happened to one parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SysctlOutcome {
    /// Written.
    Set {
        /// The key.
        key: String,
        /// The value written.
        value: u64,
    },
    /// Already at (or, for nf_conntrack_max and hashsize, above) the wanted value.
    Unchanged {
        /// The key.
        key: String,
    },
    /// Reading or writing failed (read-only /proc/sys, missing key): a warning was logged.
    Failed {
        /// The key.
        key: String,
        /// What went wrong.
        error: String,
    },
}

/// The nf_conntrack_max kube-proxy wants: `max(maxPerCore x cpus, min)`, or None with
/// maxPerCore 0.
pub fn conntrack_max(tuning: &ConntrackTuning, cpus: usize) -> Option<u64> {
    if tuning.max_per_core == 0 {
        return None;
    }
    let cpus = u64::try_from(cpus.max(1)).unwrap_or(u64::MAX);
    Some((u64::from(tuning.max_per_core).saturating_mul(cpus)).max(u64::from(tuning.min)))
}

/// Apply `tuning` through `sysctl` for a machine with `cpus` CPUs (use
/// [`std::thread::available_parallelism`], which respects CPU affinity as Go's NumCPU does).
/// Every failure is logged as a warning and reported; none stops the others.
pub fn apply(sysctl: &dyn Sysctl, tuning: &ConntrackTuning, cpus: usize) -> Vec<SysctlOutcome> {
    let mut out = Vec::new();
    if let Some(max) = conntrack_max(tuning, cpus) {
        out.push(raise(sysctl, &format!("{NETFILTER}/nf_conntrack_max"), max));
        // Only worth touching when the table would otherwise be chained too deeply.
        out.push(raise(sysctl, HASHSIZE_KEY, max / 4));
    }
    let timeouts = [
        ("nf_conntrack_tcp_timeout_established", tuning.tcp_established_timeout),
        ("nf_conntrack_tcp_timeout_close_wait", tuning.tcp_close_wait_timeout),
        ("nf_conntrack_udp_timeout", tuning.udp_timeout),
        ("nf_conntrack_udp_timeout_stream", tuning.udp_stream_timeout),
    ];
    for (name, timeout) in timeouts {
        if timeout.as_secs() > 0 {
            out.push(set(sysctl, &format!("{NETFILTER}/{name}"), timeout.as_secs()));
        }
    }
    if tuning.tcp_be_liberal {
        out.push(set(sysctl, &format!("{NETFILTER}/nf_conntrack_tcp_be_liberal"), 1));
    }
    for outcome in &out {
        match outcome {
            SysctlOutcome::Set { key, value } => tracing::info!(entry = %key, value, "Set sysctl"),
            SysctlOutcome::Unchanged { .. } => {}
            SysctlOutcome::Failed { key, error } => tracing::warn!(
                entry = %key,
                error = %error,
                "Could not tune conntrack (read-only /proc/sys or /sys, or not in the initial network namespace?); continuing"
            ),
        }
    }
    out
}

fn current(sysctl: &dyn Sysctl, key: &str) -> Result<u64, String> {
    let text = sysctl.read(key).map_err(|e| format!("reading /{key}: {e}"))?;
    text.parse().map_err(|e| format!("/{key} holds {text:?}, not a number: {e}"))
}

/// Write `value` unless the current value is already at least that.
fn raise(sysctl: &dyn Sysctl, key: &str, value: u64) -> SysctlOutcome {
    match current(sysctl, key) {
        Ok(now) if now >= value => SysctlOutcome::Unchanged { key: key.to_string() },
        Ok(_) => write(sysctl, key, value),
        Err(error) => SysctlOutcome::Failed { key: key.to_string(), error },
    }
}

/// Write `value` unless it is already the current value.
fn set(sysctl: &dyn Sysctl, key: &str, value: u64) -> SysctlOutcome {
    match current(sysctl, key) {
        Ok(now) if now == value => SysctlOutcome::Unchanged { key: key.to_string() },
        Ok(_) => write(sysctl, key, value),
        Err(error) => SysctlOutcome::Failed { key: key.to_string(), error },
    }
}

fn write(sysctl: &dyn Sysctl, key: &str, value: u64) -> SysctlOutcome {
    match sysctl.write(key, &value.to_string()) {
        Ok(()) => SysctlOutcome::Set { key: key.to_string(), value },
        Err(e) => SysctlOutcome::Failed { key: key.to_string(), error: format!("writing {value} to /{key}: {e}") },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn fake(values: &[(&str, &str)]) -> (tempfile::TempDir, kproxy_netlink::Sysctl) {
        let dir = tempfile::tempdir().unwrap();
        for (key, value) in values {
            let path = dir.path().join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, format!("{value}\n")).unwrap();
        }
        let sysctl = kproxy_netlink::Sysctl::new(dir.path());
        (dir, sysctl)
    }

    const MAX: &str = "proc/sys/net/netfilter/nf_conntrack_max";
    const EST: &str = "proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established";
    const CW: &str = "proc/sys/net/netfilter/nf_conntrack_tcp_timeout_close_wait";
    const LIB: &str = "proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal";
    const UDP: &str = "proc/sys/net/netfilter/nf_conntrack_udp_timeout";
    const UDPS: &str = "proc/sys/net/netfilter/nf_conntrack_udp_timeout_stream";

    #[test]
    fn max_is_per_core_times_cpus_but_at_least_min() {
        let t = ConntrackTuning::default();
        assert_eq!(conntrack_max(&t, 2), Some(131_072));
        assert_eq!(conntrack_max(&t, 8), Some(262_144));
        assert_eq!(conntrack_max(&ConntrackTuning { max_per_core: 0, ..t }, 8), None);
    }

    #[test]
    fn writes_every_configured_key() {
        let (_dir, s) = fake(&[
            (MAX, "65536"),
            (HASHSIZE_KEY, "16384"),
            (EST, "432000"),
            (CW, "60"),
            (LIB, "0"),
            (UDP, "30"),
            (UDPS, "120"),
        ]);
        let t = ConntrackTuning {
            tcp_be_liberal: true,
            udp_timeout: Duration::from_secs(10),
            udp_stream_timeout: Duration::from_secs(60),
            ..ConntrackTuning::default()
        };
        let out = apply(&s, &t, 8);
        assert!(out.iter().all(|o| matches!(o, SysctlOutcome::Set { .. })), "{out:?}");
        for (key, want) in [
            (MAX, "262144"),
            (HASHSIZE_KEY, "65536"),
            (EST, "86400"),
            (CW, "3600"),
            (LIB, "1"),
            (UDP, "10"),
            (UDPS, "60"),
        ] {
            assert_eq!(s.read(key).unwrap(), want, "{key}");
        }
    }

    #[test]
    fn max_and_hashsize_are_never_lowered_and_zero_timeouts_are_left_alone() {
        let (_dir, s) = fake(&[(MAX, "1000000"), (HASHSIZE_KEY, "262144"), (EST, "86400"), (UDP, "30")]);
        let out =
            apply(&s, &ConntrackTuning { tcp_close_wait_timeout: Duration::ZERO, ..ConntrackTuning::default() }, 2);
        assert_eq!(s.read(MAX).unwrap(), "1000000");
        assert_eq!(s.read(HASHSIZE_KEY).unwrap(), "262144");
        assert_eq!(s.read(UDP).unwrap(), "30");
        assert_eq!(
            out,
            vec![
                SysctlOutcome::Unchanged { key: MAX.into() },
                SysctlOutcome::Unchanged { key: HASHSIZE_KEY.into() },
                SysctlOutcome::Unchanged { key: EST.into() },
            ]
        );
    }

    #[test]
    fn missing_keys_are_warnings_not_errors() {
        let (_dir, s) = fake(&[(MAX, "1")]);
        let out = apply(&s, &ConntrackTuning::default(), 2);
        assert_eq!(s.read(MAX).unwrap(), "131072");
        let failed: Vec<_> = out.iter().filter(|o| matches!(o, SysctlOutcome::Failed { .. })).collect();
        assert_eq!(failed.len(), 3, "hashsize and both TCP timeouts are missing: {out:?}");
        let SysctlOutcome::Failed { error, .. } = failed[0] else { unreachable!() };
        assert!(error.contains("reading /sys/module/nf_conntrack/parameters/hashsize"), "{error}");
    }
}
