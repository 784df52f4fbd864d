//! Conntrack: how full the table is (a full table drops new connections: timeouts under
//! load), and UDP entries left pointing at endpoints that are gone (black-holed clients).

use crate::checks::some;
use crate::{Check, ConntrackFill, Gathered};

/// Fill level at which a warning is given.
pub const WARN_FILL: f64 = 0.75;
/// Fill level at which the check fails: the kernel drops new connections at 100 %.
pub const FAIL_FILL: f64 = 0.90;

/// `conntrack`: `nf_conntrack_count` against `nf_conntrack_max`, and `nf_conntrack_max`
/// against what `conntrack.maxPerCore`/`min` ask for (`expected`).
pub fn fill(facts: Result<&ConntrackFill, &String>, expected: Option<u64>) -> Check {
    const ID: &str = "conntrack";
    let f = match facts {
        Ok(f) => f,
        Err(e) => return Check::warn(ID, format!("conntrack table not readable: {e}"), "load nf_conntrack (any NAT rule does) and run as root in the node's network namespace"),
    };
    let ratio = if f.max == 0 { 1.0 } else { f.count as f64 / f.max as f64 };
    let seen = format!("{} of {} entries in use ({:.0} %)", f.count, f.max, ratio * 100.0);
    let raise = "raise conntrack.maxPerCore / conntrack.min (kproxy sets nf_conntrack_max at start), or find what opens so many connections (`conntrack -L | sort` by source)";
    if ratio >= FAIL_FILL {
        return Check::fail(ID, format!("{seen}: at 100 % the kernel drops new connections"), raise);
    }
    if ratio >= WARN_FILL {
        return Check::warn(ID, seen, raise);
    }
    match expected {
        Some(want) if f.max < want => Check::warn(
            ID,
            format!("{seen}; nf_conntrack_max {} is below the {want} that conntrack.maxPerCore/min ask for", f.max),
            "the daemon sets it at start: check its log for 'conntrack' warnings (the sysctl may be read-only in this network namespace or container)",
        ),
        _ => Check::ok(ID, seen),
    }
}

/// `stale-udp-conntrack`: UDP entries to a service address whose reply source is no serving
/// endpoint of it (the daemon deletes them after each sync; left over means it is not running,
/// failing, or the entries appeared since).
pub fn stale_udp(facts: &Gathered<Vec<String>>) -> Check {
    const ID: &str = "stale-udp-conntrack";
    match facts {
        Err(e) => Check::warn(ID, format!("not checked: {e}"), "run as root in the node's network namespace with the daemon's sources"),
        Ok(stale) if stale.is_empty() => Check::ok(ID, "no UDP conntrack entry points at an endpoint that is not serving"),
        Ok(stale) => Check::fail(
            ID,
            format!("{} UDP conntrack entries point at no serving endpoint: {}", stale.len(), some(stale, 3)),
            "their clients are black-holed until the entries expire: make sure kproxy runs (it deletes them after each sync), or delete them: conntrack -D -p udp --orig-dst SERVICE_IP",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Verdict;

    #[test]
    fn fill_levels() {
        let f = |count, max| ConntrackFill { count, max };
        assert_eq!(fill(Ok(&f(10, 1000)), None).verdict, Verdict::Ok);
        assert_eq!(fill(Ok(&f(800, 1000)), None).verdict, Verdict::Warn);
        let full = fill(Ok(&f(950, 1000)), None);
        assert_eq!(full.verdict, Verdict::Fail);
        assert!(full.seen.contains("950 of 1000") && full.action.contains("maxPerCore"), "{full:?}");
        assert_eq!(fill(Ok(&f(10, 1000)), Some(131072)).verdict, Verdict::Warn);
        assert_eq!(fill(Ok(&f(10, 262144)), Some(131072)).verdict, Verdict::Ok);
        assert_eq!(fill(Err(&"no such file".to_string()), None).verdict, Verdict::Warn);
    }

    #[test]
    fn stale_entries_fail() {
        assert_eq!(stale_udp(&Ok(vec![])).verdict, Verdict::Ok);
        assert_eq!(stale_udp(&Ok(vec!["x".into()])).verdict, Verdict::Fail);
        assert_eq!(stale_udp(&Err("no".into())).verdict, Verdict::Warn);
    }
}
