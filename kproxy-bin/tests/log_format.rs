//! The running binary's log lines in the formats kube-proxy's tooling parses: klog text by
//! default (no colour codes), component-base JSON with `--logging-format=json`.

use std::path::Path;
use std::process::Command;

fn run(extra: &[&str]) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(env!("CARGO_BIN_EXE_kproxy"))
        .args(["--once", "--dry-run", "--hostname-override", "node-1", "--config"])
        .arg(root.join("examples/config/small-cluster.yaml"))
        .arg("--manifests")
        .arg(root.join("examples/manifests"))
        .args(extra)
        .env_remove("RUST_LOG")
        .output()
        .expect("run kproxy");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stderr).expect("UTF-8 logs")
}

/// `Lmmdd hh:mm:ss.uuuuuu <pid:7> file.rs:N] "msg" k=v...`
fn assert_klog(line: &str) {
    let b = line.as_bytes();
    assert!(line.len() > 31 && b"IWE".contains(&b[0]), "severity letter: {line:?}");
    assert!(b[1..5].iter().all(u8::is_ascii_digit) && b[5] == b' ', "mmdd: {line:?}");
    let time = &line[6..21];
    assert!(time.as_bytes()[2] == b':' && time.as_bytes()[5] == b':' && time.as_bytes()[8] == b'.', "time: {line:?}");
    assert!(line[21..29].trim_start().parse::<u32>().is_ok() && b[21] == b' ', "pid in 7 columns: {line:?}");
    let (caller, rest) = line[30..].split_once("] ").unwrap_or_else(|| panic!("no `] `: {line:?}"));
    let (file, n) = caller.rsplit_once(':').unwrap_or_else(|| panic!("caller: {line:?}"));
    assert!(file.ends_with(".rs") && !file.contains('/') && n.parse::<u32>().is_ok(), "caller: {line:?}");
    assert!(rest.starts_with('"'), "quoted message: {line:?}");
}

#[test]
fn text_logs_are_klog_lines_without_colour() {
    let logs = run(&[]);
    assert!(!logs.contains('\u{1b}'), "no ANSI escapes:\n{logs}");
    let lines: Vec<&str> = logs.lines().collect();
    assert!(lines.len() >= 3, "{logs}");
    lines.iter().for_each(|l| assert_klog(l));
    let sync = lines.iter().find(|l| l.contains("\"Syncing proxy rules\"")).expect("a sync line");
    assert!(sync.starts_with('I') && sync.contains(" backend=\"dry-run\""), "{sync}");
    assert!(lines.iter().any(|l| l.starts_with('W')), "the config's warning is a W line:\n{logs}");
}

#[test]
fn json_logs_have_component_base_fields() {
    let logs = run(&["--logging-format=json"]);
    let mut saw_sync = false;
    for line in logs.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["ts"].as_f64().is_some_and(|t| t > 1.6e9), "{line}");
        assert!(v["caller"].as_str().is_some_and(|c| c.contains(".rs:")), "{line}");
        assert!(v["msg"].is_string(), "{line}");
        if v["msg"] == "Syncing proxy rules" {
            saw_sync = true;
            assert_eq!(v["v"], 0, "{line}");
            assert_eq!(v["backend"], "dry-run", "{line}");
            assert!(v["services"].is_u64(), "numbers stay numbers: {line}");
        }
    }
    assert!(saw_sync, "{logs}");
}
