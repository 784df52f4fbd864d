//! Namespaces left by a test process that was killed (no destructors ran) are deleted by
//! the next process that creates one. Its own file: the reaping runs once per process.

use std::path::Path;
use std::process::Command;

use kproxy_tests::{require_root, Netns};

#[test]
fn stale_namespaces_of_dead_processes_are_reaped() {
    require_root();
    // Above the kernel's pid_max (4194304): no live process can have this pid.
    let stale = "kpt-999999999-0-stale";
    let st = Command::new("ip")
        .args(["netns", "add", stale])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(Path::new("/run/netns").join(stale).exists());
    let live = Netns::new("live").unwrap();
    assert!(
        !Path::new("/run/netns").join(stale).exists(),
        "{stale} was not reaped"
    );
    assert!(
        live.path().exists(),
        "the new namespace itself must survive reaping"
    );
}
