//! The built `kproxy` binary: exit codes, messages, layering of the default files, the
//! seed configurations through `kproxy validate`, `--write-config-to`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const HEAD: &str = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n";

fn seed(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/config").join(name)
}

/// Runs kproxy with default config paths pointing into `dir` (files there may not exist).
fn kproxy(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kproxy"))
        .args(args)
        .env("KPROXY_MAIN_CONFIG", dir.join("kube-proxy.yaml"))
        .env("KPROXY_PROXY_CONFIG", dir.join("config.conf"))
        .env_remove("RUST_LOG")
        .output()
        .expect("run kproxy")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{HEAD}{body}")).unwrap();
    path
}

#[test]
fn seed_configs_validate_with_their_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("production.yaml", &["udpIdleTimeout:", "portRange:"][..], "mode: ipvs"),
        ("small-cluster.yaml", &["mode: \"iptables\" is served by kproxy's nftables backend"][..], "mode: iptables"),
        ("large-cluster.yaml", &["portRange:"][..], "tcpTimeout: 15m0s"),
    ];
    for (name, warnings, in_yaml) in cases {
        let path = seed(name);
        let out = kproxy(dir.path(), &["validate", "--config", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
        let err = stderr(&out);
        let warning_lines: Vec<&str> = err.lines().filter(|l| l.starts_with("warning: ")).collect();
        assert_eq!(warning_lines.len(), warnings.len(), "{name}: {err}");
        for (line, expected) in warning_lines.iter().zip(warnings) {
            assert!(line.contains(expected), "{name}: {line:?} should contain {expected:?}");
        }
        assert!(stdout(&out).contains(in_yaml), "{name}: {}", stdout(&out));
        assert!(stdout(&out).starts_with("apiVersion: kubeproxy.config.k8s.io/v1alpha1\n"));
    }
}

#[test]
fn invalid_config_exits_1_with_located_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bad.yaml", "mode: ipvs\nipvs:\n  scheduler: foo\nclientConnection:\n  burts: 3\n");
    let out = kproxy(dir.path(), &["validate", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(
        err,
        format!("error: {}:7:3: clientConnection.burts: unknown field; did you mean `burst`?\n", path.display())
    );
    assert!(stdout(&out).is_empty());

    let path = write(dir.path(), "bad2.yaml", "mode: ipvs\nipvs:\n  scheduler: foo\n");
    let out = kproxy(dir.path(), &["--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!("error: {}:5:14: ipvs.scheduler: \"foo\" is not one of rr, wrr, lc, wlc, lblc, lblcr, sh, dh, sed, nq, mh (blank means rr)\n", path.display())
    );
}

#[test]
fn unknown_flag_exits_1_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = kproxy(dir.path(), &["--no-such-flag=1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("--no-such-flag"), "{err}");
}

#[test]
fn missing_explicit_config_is_an_error_missing_default_files_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yaml");
    let out = kproxy(dir.path(), &["validate", "--config", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("nope.yaml"), "{}", stderr(&out));
    let out = kproxy(dir.path(), &["validate"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("no configuration file"));
}

#[test]
fn layering_flag_over_main_over_proxy() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "config.conf", "mode: ipvs\nclusterCIDR: 198.18.0.0/16\nconntrack:\n  min: 1\n  maxPerCore: 1\n");
    write(dir.path(), "kube-proxy.yaml", "clusterCIDR: 198.19.0.0/16\nconntrack:\n  maxPerCore: 2\n");
    let out = kproxy(dir.path(), &["validate", "--conntrack-max-per-core=3"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let yaml = stdout(&out);
    assert!(yaml.contains("mode: ipvs\n"), "{yaml}");
    assert!(yaml.contains("clusterCIDR: 198.19.0.0/16\n"), "{yaml}");
    assert!(yaml.contains("  maxPerCore: 3\n"), "{yaml}");
    assert!(yaml.contains("  min: 1\n"), "{yaml}");
    assert!(stderr(&out).contains("config.conf, "), "{}", stderr(&out));

    // --config replaces both default files.
    let explicit = write(dir.path(), "explicit.yaml", "clusterCIDR: 198.18.128.0/17\n");
    let out = kproxy(dir.path(), &["validate", "--config", explicit.to_str().unwrap()]);
    let yaml = stdout(&out);
    assert!(yaml.contains("mode: ''\n"), "{yaml}");
    assert!(yaml.contains("clusterCIDR: 198.18.128.0/17\n"), "{yaml}");

    // A broken default file is reported with its path.
    write(dir.path(), "kube-proxy.yaml", "mode: [\n");
    let out = kproxy(dir.path(), &["validate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("kube-proxy.yaml:"), "{}", stderr(&out));
}

#[test]
fn write_config_to_writes_the_effective_config() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out.yaml");
    let prod = seed("production.yaml");
    let out = kproxy(
        dir.path(),
        &["--config", prod.to_str().unwrap(), "--kube-api-qps=15", "--write-config-to", target.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let written = std::fs::read_to_string(&target).unwrap();
    assert!(written.contains("  qps: 15"), "{written}");
    assert!(written.contains("udpIdleTimeout: 250ms"), "{written}");
    // What was written loads again.
    let out = kproxy(dir.path(), &["validate", "--config", target.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), written);
}

#[test]
fn kubeconfig_is_needed_only_without_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let prod = seed("production.yaml"); // kubeconfig /var/lib/kube-proxy/kubeconfig.conf
    if Path::new("/var/lib/kube-proxy/kubeconfig.conf").exists() {
        panic!("this test assumes /var/lib/kube-proxy/kubeconfig.conf does not exist on the test machine");
    }
    let out = kproxy(dir.path(), &["--config", prod.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("clientConnection.kubeconfig: /var/lib/kube-proxy/kubeconfig.conf does not exist"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains(":6:15:"), "{}", stderr(&out));
    let manifests = dir.path().to_str().unwrap();
    let out =
        kproxy(dir.path(), &["--config", prod.to_str().unwrap(), "--manifests", manifests, "--once", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn help_and_version_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let out = kproxy(dir.path(), &["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("--proxy-mode"));
    let out = kproxy(dir.path(), &["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).starts_with("kproxy "));
}

#[test]
fn userspace_mode_flag_is_an_error_suggesting_nftables() {
    let dir = tempfile::tempdir().unwrap();
    let out = kproxy(dir.path(), &["validate", "--proxy-mode", "userspace"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("error: flag --proxy-mode: mode: \"userspace\" is no longer supported"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("use \"nftables\""));
}

#[test]
fn logging_format_json_writes_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out.yaml");
    let out = kproxy(dir.path(), &["--logging-format=json", "--write-config-to", target.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let line = stderr(&out).lines().find(|l| l.contains("Wrote configuration")).map(str::to_string);
    let line = line.unwrap_or_else(|| panic!("no log line: {}", stderr(&out)));
    let value: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
    // component-base's JSON: `msg`, `v` for info lines, no `level`.
    assert_eq!(value["msg"], "Wrote configuration");
    assert_eq!(value["v"], 0);
    assert!(std::fs::read_to_string(&target).unwrap().contains("format: json"));
}
