//! A running daemon exits (non-zero, with a line naming the file) when its configuration file
//! changes, as upstream kube-proxy does, so the DaemonSet restarts it with the new settings.
//! The real binary in a throw-away network namespace (root), a ConfigMap-style symlink swap.

#[path = "daemon_support/netns.rs"]
mod netns;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netns::Netns;

const CONFIG: &str = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n\
clusterCIDR: 198.18.0.0/16\nmetricsBindAddress: \"\"\nhealthzBindAddress: \"\"\n";

#[test]
fn daemon_exits_when_its_config_file_changes() {
    let ns = Netns::new("kp-cfgchg").expect("a network namespace (run as root)");
    let dir = tempfile::tempdir().unwrap();
    for (v, extra) in [("..v1", ""), ("..v2", "nftables:\n  masqueradeAll: true\n")] {
        std::fs::create_dir(dir.path().join(v)).unwrap();
        std::fs::write(dir.path().join(v).join("config.conf"), format!("{CONFIG}{extra}")).unwrap();
    }
    std::os::unix::fs::symlink("..v1", dir.path().join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/config.conf", dir.path().join("config.conf")).unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();

    let mut child = Command::new("ip")
        .args(["netns", "exec", ns.name(), env!("CARGO_BIN_EXE_kproxy"), "--hostname-override=node-1", "--config"])
        .arg(dir.path().join("config.conf"))
        .arg("--manifests")
        .arg(&manifests)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kproxy");
    // Running (and synced) before the swap.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if ns.run("nft", &["list", "tables"]).unwrap_or_default().contains("kproxy") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(child.try_wait().unwrap().is_none(), "kproxy exited before the config changed");
    assert!(ns.run("nft", &["list", "tables"]).unwrap().contains("kproxy"), "kproxy never programmed its tables");

    // The kubelet's ConfigMap update: a new ..data link renamed over the old one.
    std::os::unix::fs::symlink("..v2", dir.path().join("..data_tmp")).unwrap();
    std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
    let changed = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if changed.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("kproxy did not exit within 10 s of its config file changing");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = changed.elapsed();
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(took < Duration::from_secs(3), "exited after {took:?} (polls once a second)");
    let line = stderr.lines().find(|l| l.contains("config.conf changed")).unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.starts_with('E') && line.contains("exiting so that the new configuration is loaded"), "{line}");
    // The rules stay for the restarted process to take over.
    assert!(ns.run("nft", &["list", "tables"]).unwrap().contains("kproxy"));
}
