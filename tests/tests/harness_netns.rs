//! Self-tests of `Netns`: naming, isolation, cleanup on drop and on panic.

use std::path::Path;

use kproxy_tests::{nft_json, require_root, Netns};

fn interfaces_here() -> String {
    // thread-self, not self: setns changes only the calling thread's namespace.
    std::fs::read_to_string("/proc/thread-self/net/dev").expect("reading /proc/thread-self/net/dev")
}

#[test]
fn names_are_unique_and_prefixed() {
    require_root();
    let a = Netns::new("a").unwrap();
    let b = Netns::new("a").unwrap();
    assert_ne!(a.name(), b.name());
    let prefix = format!("kpt-{}-", std::process::id());
    assert!(
        a.name().starts_with(&prefix),
        "{} lacks prefix {prefix}",
        a.name()
    );
    assert!(a.path().exists());
}

#[test]
fn run_in_enters_the_namespace_and_exec_runs_there() {
    require_root();
    let ns = Netns::new("iso").unwrap();
    ns.exec(["ip", "link", "add", "kpt-probe", "type", "bridge"])
        .unwrap();
    let inside = ns.run_in(interfaces_here).unwrap();
    assert!(
        inside.contains("kpt-probe"),
        "bridge not visible inside: {inside}"
    );
    assert!(
        !interfaces_here().contains("kpt-probe"),
        "bridge leaked into the caller's namespace"
    );
    let links = ns.exec(["ip", "-o", "link"]).unwrap();
    assert_eq!(
        links.lines().count(),
        2,
        "expected lo + kpt-probe only: {links}"
    );
    assert!(
        links.contains("lo: <LOOPBACK,UP"),
        "loopback not up: {links}"
    );
}

#[test]
fn run_in_propagates_panics() {
    require_root();
    let ns = Netns::new("panic-prop").unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = ns.run_in(|| panic!("inner boom"));
    }));
    let payload = caught.expect_err("panic inside run_in must reach the caller");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"inner boom"));
}

#[test]
fn exec_failure_names_the_command_and_stderr() {
    require_root();
    let ns = Netns::new("fail").unwrap();
    let err = ns
        .exec(["ip", "link", "set", "nosuchdev", "up"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("ip link set nosuchdev up"), "{err}");
    assert!(err.to_lowercase().contains("nosuchdev"), "{err}");
}

#[test]
fn dropped_namespace_is_deleted_with_its_processes() {
    require_root();
    let ns = Netns::new("drop").unwrap();
    let path = ns.path();
    let mut child = ns.command("sleep").arg("600").spawn().unwrap();
    let pid = child.id() as i32;
    // Bounded wait for the child to show up inside the namespace.
    let seen = (0..50).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(20));
        ns.pids().unwrap().contains(&pid)
    });
    assert!(seen, "sleep {pid} not listed in {}", ns.name());
    drop(ns);
    assert!(!path.exists(), "{} still exists after drop", path.display());
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "sleep should have been killed, got {status}"
    );
}

#[test]
fn namespace_is_deleted_when_a_test_panics() {
    require_root();
    let mut name = String::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let ns = Netns::new("panicking").unwrap();
        name = ns.name().to_string();
        panic!("simulated test failure");
    }));
    assert!(result.is_err());
    assert!(!name.is_empty());
    assert!(
        !Path::new("/run/netns").join(&name).exists(),
        "{name} survived the panic"
    );
}

#[test]
fn nft_json_lists_the_namespace_ruleset_only() {
    require_root();
    let ns = Netns::new("nft").unwrap();
    ns.exec(["nft", "add", "table", "inet", "kpt_probe"])
        .unwrap();
    let json = nft_json(&ns).unwrap();
    let items = json["nftables"].as_array().expect("nftables array");
    let tables: Vec<&str> = items
        .iter()
        .filter_map(|i| i["table"]["name"].as_str())
        .collect();
    assert_eq!(tables, vec!["kpt_probe"]);
}
