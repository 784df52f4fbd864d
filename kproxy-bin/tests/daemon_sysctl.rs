//! Conntrack tuning against a real kernel, inside a network namespace made by this test (the
//! per-namespace conntrack sysctls live there; the root namespace's values are checked to be
//! untouched). In a non-initial namespace nf_conntrack_max is read-only: the tuning warns and
//! goes on, which is the "bare network namespace / read-only /proc/sys" case. Needs root.

#[path = "daemon_support/netns.rs"]
mod netns;

use std::time::Duration;

use kproxy_conntrack::sysctl::{node, Sysctl};
use kproxy_conntrack::tuning::{apply, ConntrackTuning, SysctlOutcome, HASHSIZE_KEY};
use netns::Netns;

const NF: &str = "proc/sys/net/netfilter";

/// The real file system, except that the module-wide hashsize is never written from a test.
struct NoGlobalWrites<S>(S);

impl<S: Sysctl> Sysctl for NoGlobalWrites<S> {
    fn read(&self, key: &str) -> std::io::Result<String> {
        self.0.read(key)
    }
    fn write(&self, key: &str, value: &str) -> std::io::Result<()> {
        if key == HASHSIZE_KEY {
            return Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, "test: global key not written"));
        }
        self.0.write(key, value)
    }
}

fn read(key: &str) -> String {
    node().read(key).unwrap_or_else(|e| panic!("read /{key}: {e}"))
}

#[test]
fn tunes_per_namespace_keys_and_warns_on_read_only_ones() {
    let keys = ["nf_conntrack_tcp_timeout_established", "nf_conntrack_udp_timeout", "nf_conntrack_tcp_be_liberal"];
    let root_before: Vec<String> = keys.iter().map(|k| read(&format!("{NF}/{k}"))).collect();
    let ns = Netns::new("kpsysctl").expect("create a network namespace (run as root)");
    let tuning = ConntrackTuning {
        max_per_core: u32::MAX / 4,
        min: 0,
        tcp_established_timeout: Duration::from_secs(12_345),
        tcp_close_wait_timeout: Duration::from_secs(2_345),
        tcp_be_liberal: true,
        udp_timeout: Duration::from_secs(33),
        udp_stream_timeout: Duration::from_secs(133),
    };
    let (outcomes, inside) = ns.enter(|| {
        // nf_conntrack_max is one global value; the test relies on the kernel making it
        // read-only here, and checks that before anything could write it.
        use std::os::unix::fs::PermissionsExt;
        let mode =
            std::fs::metadata(format!("/{NF}/nf_conntrack_max")).expect("conntrack sysctls").permissions().mode();
        assert_eq!(mode & 0o222, 0, "nf_conntrack_max is writable in a child namespace (mode {mode:o}); not running");
        let outcomes = apply(&NoGlobalWrites(node()), &tuning, 2);
        let inside: Vec<String> = [
            "nf_conntrack_tcp_timeout_established",
            "nf_conntrack_tcp_timeout_close_wait",
            "nf_conntrack_udp_timeout",
            "nf_conntrack_udp_timeout_stream",
            "nf_conntrack_tcp_be_liberal",
        ]
        .iter()
        .map(|k| read(&format!("{NF}/{k}")))
        .collect();
        (outcomes, inside)
    });
    assert_eq!(inside, ["12345", "2345", "33", "133", "1"], "{outcomes:?}");
    let max = outcomes.iter().find(|o| matches!(o, SysctlOutcome::Failed { key, .. } | SysctlOutcome::Set { key, .. } if key.ends_with("nf_conntrack_max")));
    assert!(
        matches!(max, Some(SysctlOutcome::Failed { error, .. }) if error.contains("writing")),
        "nf_conntrack_max is read-only outside the initial namespace: {outcomes:?}"
    );
    let root_after: Vec<String> = keys.iter().map(|k| read(&format!("{NF}/{k}"))).collect();
    assert_eq!(root_before, root_after, "the root namespace's conntrack settings changed");
}
