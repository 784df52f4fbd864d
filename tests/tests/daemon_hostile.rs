//! The real `kproxy` daemon on a `--manifests` directory that also holds hostile or broken
//! files (issue 12 item 3): deeply nested YAML, a file larger than the size limit, binary
//! garbage, an object defined twice, an invalid name, a slice without its Service. The good
//! files must still be programmed (checked with real traffic) in bounded time, memory must
//! stay bounded, and each problem must be warned about once, not on every poll. A second test measures what an idle daemon
//! with 10k services costs (CPU over 5 s, RSS).

mod daemon_support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use daemon_support::{count, node_args, service, until_served_by, write, Daemon};
use kproxy_tests::{kproxy_binary, Netns, ServerSpec, Topology};

/// How long a good file may take to be served, hostile files or not. The source polls every
/// 500 ms; the rest is slack for a loaded CI host.
const CONVERGE: Duration = Duration::from_secs(10);

fn start(node: &Netns, dir: &Path) -> Daemon {
    let mut cmd: Command = node.command(kproxy_binary().expect("kproxy binary"));
    cmd.args(["--manifests", dir.to_str().expect("utf-8 path")]);
    Daemon::spawn(node_args(&mut cmd))
}

/// `key` of `/proc/PID/status`, in kB.
fn status_kb(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let line = status.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("{key} in {status}"));
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("kB value")
}

/// utime + stime of a process, in clock ticks (100 per second on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

#[test]
fn hostile_manifest_files_neither_stall_nor_repeat_warnings() {
    let topo = Topology::builder().pods(3).serve(ServerSpec::tcp(&[8080])).build().expect("topology");
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    // 200 kB of `a: [[[[...` (100k levels), as a file someone's generator got wrong.
    let deep = format!("a: {}\n", "[".repeat(100_000));
    write(d, "deep.yaml", deep.as_bytes());
    // Larger than the 32 MiB limit; sparse, so the test writes nothing to disk.
    let huge = std::fs::File::create(d.join("huge.yaml")).expect("create huge.yaml");
    huge.set_len(200 << 20).expect("grow huge.yaml");
    drop(huge);
    // Binary garbage: not UTF-8.
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 0x80).collect();
    write(d, "garbage.yaml", &garbage);
    // The same Service in two files, and a Service whose name the API server would reject.
    write(d, "web.yaml", service("web", "198.19.160.10", &[1, 2]).as_bytes());
    write(d, "web-copy.yaml", service("web", "198.19.160.10", &[1, 2]).as_bytes());
    write(d, "bad-name.yaml", service("Bad_Name", "198.19.160.12", &[1]).as_bytes());
    // A slice whose Service no file defines: kept, and named once.
    let orphan = service("lost", "198.19.160.13", &[1]);
    let slice = orphan.split("---\n").nth(1).expect("the slice document");
    write(d, "orphan.yaml", slice.as_bytes());

    let started = Instant::now();
    let daemon = start(&topo.node, d);
    let client = &topo.pod(3).ns;
    let web: SocketAddr = "198.19.160.10:80".parse().unwrap();
    let took = until_served_by(client, web, &["pod1", "pod2"], CONVERGE, "good file next to hostile ones");
    eprintln!("good file served {took:?} after start (hostile files present)");

    // A file added later is not held up by the hostile ones either.
    let added = Instant::now();
    write(d, "api.yaml", service("api", "198.19.160.11", &[3]).as_bytes());
    let api: SocketAddr = "198.19.160.11:80".parse().unwrap();
    let took = until_served_by(client, api, &["pod3"], CONVERGE, "file added next to hostile ones");
    eprintln!("added file served {took:?} after it was written");
    assert!(added.elapsed() < CONVERGE);

    let peak_kb = status_kb(daemon.pid(), "VmHWM:");
    eprintln!("peak RSS with a 200 MB file in the directory: {peak_kb} kB");
    // Let the source poll a few more times (every 500 ms): no warning may repeat.
    std::thread::sleep(Duration::from_secs(3));
    let (status, log) = daemon.stop();
    eprintln!("ran {:?}", started.elapsed());
    assert!(status.success(), "kproxy exit status {status:?}; log:\n{log}");
    assert!(peak_kb < 150 * 1024, "peak RSS {peak_kb} kB: the 200 MB file was read; log:\n{log}");
    for (needle, what) in [
        ("deep.yaml", "deep YAML"),
        ("Manifest file too large", "huge file"),
        ("not UTF-8", "binary garbage"),
        ("object=\"Service t/web\" first=", "duplicate Service"),
        ("object=\"EndpointSlice t/web-a\" first=", "duplicate EndpointSlice"),
        ("Service t/Bad_Name:", "invalid name"),
        ("its Service t/lost is in no manifest file", "slice without its Service"),
    ] {
        let n = count(&log, needle);
        assert_eq!(n, 1, "{what}: expected exactly one warning line containing {needle:?}, got {n}; log:\n{log}");
    }
    assert!(log.contains("depth"), "the deep file's warning should name the depth limit; log:\n{log}");
    assert!(log.contains("is not a valid Kubernetes name"), "log:\n{log}");
}

#[test]
fn idle_daemon_with_10k_services_costs_almost_no_cpu() {
    let topo = Topology::builder().pods(1).serve(ServerSpec::tcp(&[8080])).build().expect("topology");
    let dir = tempfile::tempdir().expect("temp dir");
    // 10k Services with one endpoint each, 1000 per file, as JSON lists (the fast decoder:
    // this test is about idle cost, not parse speed).
    for file in 0..10u32 {
        let mut items = Vec::new();
        for i in 0..1000u32 {
            let n = file * 1000 + i;
            let vip = format!("198.19.{}.{}", 160 + n / 250, 1 + n % 250);
            items.push(format!(
                r#"{{"apiVersion":"v1","kind":"Service","metadata":{{"name":"s{n}","namespace":"t"}},"spec":{{"clusterIP":"{vip}","clusterIPs":["{vip}"],"ports":[{{"name":"http","port":80,"targetPort":8080,"protocol":"TCP"}}]}}}}"#
            ));
            items.push(format!(
                r#"{{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{{"name":"s{n}-a","namespace":"t","labels":{{"kubernetes.io/service-name":"s{n}"}}}},"addressType":"IPv4","ports":[{{"name":"http","port":8080,"protocol":"TCP"}}],"endpoints":[{{"addresses":["198.18.0.11"],"conditions":{{"ready":true}},"nodeName":"node-1"}}]}}"#
            ));
        }
        let list = format!(r#"{{"apiVersion":"v1","kind":"List","items":[{}]}}"#, items.join(","));
        write(dir.path(), &format!("svc-{file}.json"), list.as_bytes());
    }
    let daemon = start(&topo.node, dir.path());
    let client = &topo.pod(1).ns;
    // The last Service of the last file: everything before it was read too.
    let last: SocketAddr = "198.19.199.250:80".parse().unwrap();
    let took = until_served_by(client, last, &["pod1"], Duration::from_secs(120), "10k services");
    eprintln!("10k services programmed and served after {took:?}");
    // Past the source's 2 s window for recently modified files, then measure.
    std::thread::sleep(Duration::from_secs(3));
    let pid = daemon.pid();
    let rss_before = status_kb(pid, "VmRSS:");
    let ticks_before = cpu_ticks(pid);
    let window = Duration::from_secs(5);
    std::thread::sleep(window);
    let ticks = cpu_ticks(pid) - ticks_before;
    let rss_after = status_kb(pid, "VmRSS:");
    let percent = ticks as f64 / window.as_secs_f64(); // 100 ticks per second = 100 %
    eprintln!("idle with 10k services: {percent:.1}% of a core over {window:?} ({ticks} ticks); RSS {rss_before} kB -> {rss_after} kB");
    let (status, log) = daemon.stop();
    assert!(status.success(), "kproxy exit status {status:?}; log:\n{log}");
    assert!(percent < 3.0, "idle daemon used {percent:.1}% of a core over {window:?}");
}
