//! The fuzz corpus on stable Rust: every file under `fuzz/corpus/<target>/` through the
//! target's entry point (the same function `cargo xtask fuzz` fuzzes), failing on any panic.
//! Also builds seeds from real messages (the kernel's answers in a namespace this test
//! creates, and the IPVS/ctnetlink reply encoders) and checks the parsers read them; with
//! `KPROXY_WRITE_FUZZ_SEEDS=1` it writes them into the corpus (`seed-*` files).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kproxy_netlink::{Messages, MsgBuilder, Protocol, Socket, NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use kproxy_tests::Netns;

/// One fuzz target: its corpus directory name and its entry point.
struct Target {
    name: &'static str,
    run: fn(&[u8]),
    /// The least number of corpus files expected: an emptied corpus must fail, not pass.
    min_files: usize,
}

const TARGETS: &[Target] = &[
    Target { name: "config", run: kproxy_core::fuzzing::config, min_files: 5 },
    Target { name: "manifest", run: |d| {
        let _ = kproxy_core::fuzzing::manifest(d);
    }, min_files: 5 },
    Target { name: "netlink", run: |d| {
        let _ = kproxy_netlink::fuzzing::messages(d);
    }, min_files: 3 },
    Target { name: "nft", run: |d| {
        let _ = kproxy_nft::fuzzing::replies(d);
    }, min_files: 2 },
    Target { name: "ipvs", run: kproxy_ipvs::fuzzing::replies, min_files: 3 },
    Target { name: "conntrack", run: |d| {
        let _ = kproxy_conntrack::fuzzing::dump(d);
    }, min_files: 2 },
];

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target)
}

/// Every corpus file of every target, each run on its own so a panic names the file.
#[test]
fn every_corpus_file_passes_its_entry_point() {
    let start = Instant::now();
    let mut failures = Vec::new();
    for t in TARGETS {
        let dir = corpus_dir(t.name);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("reading the corpus {}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .collect();
        files.sort();
        assert!(files.len() >= t.min_files, "{}: {} corpus files, expected at least {}", dir.display(), files.len(), t.min_files);
        for f in &files {
            let data = std::fs::read(f).expect("corpus file");
            if std::panic::catch_unwind(|| (t.run)(&data)).is_err() {
                failures.push(f.display().to_string());
            }
        }
        eprintln!("{}: {} files passed", t.name, files.len() - failures.iter().filter(|f| f.contains(t.name)).count());
    }
    assert!(failures.is_empty(), "corpus files that panicked: {failures:#?}");
    // The pass must stay a quick part of the suite.
    assert!(start.elapsed() < Duration::from_secs(60), "the corpus pass took {:?}", start.elapsed());
}

/// Writes `bytes` as `fuzz/corpus/<target>/seed-<name>` when asked to.
fn keep(target: &str, name: &str, bytes: &[u8]) {
    if std::env::var_os("KPROXY_WRITE_FUZZ_SEEDS").is_some() {
        std::fs::write(corpus_dir(target).join(format!("seed-{name}")), bytes).expect("writing a seed");
    }
}

/// Receives datagrams until `done` says so or nothing arrives for a short while (bounded).
fn receive(sock: &mut Socket, mut done: impl FnMut(&[u8]) -> bool) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..64 {
        match sock.recv(Duration::from_millis(500)).expect("netlink receive") {
            Some(bytes) => {
                out.extend_from_slice(bytes);
                if done(bytes) {
                    break;
                }
            }
            None => break,
        }
    }
    out
}

fn has_type(bytes: &[u8], t: u16) -> bool {
    Messages::new(bytes).any(|m| m.msg_type == t)
}

/// nf_tables as the kernel speaks it: the change notifications of a commit by `nft`, a
/// set-element dump with timeouts, and an error with its extended ACK.
#[test]
fn kernel_messages_are_read_by_the_entry_points() {
    let ns = Netns::new("fuzzseed").expect("namespace");
    let script = "table ip kproxy {
  set affinity { type ipv4_addr . inet_service; flags timeout; elements = { 198.18.0.9 . 80 timeout 1h, 198.18.0.10 . 443 timeout 30m } }
  map svc { type ipv4_addr : verdict; elements = { 198.18.1.1 : accept } }
  chain services {
    ip daddr 198.18.1.1 counter accept
  }
}
";
    let (notes, dump, error) = ns
        .run_in(|| {
            let mut watch = Socket::open(Protocol::Netfilter).expect("watch socket");
            watch.subscribe(7).expect("NFNLGRP_NFTABLES");
            let out = ns.command("nft").args(["-f", "-"]).stdin(std::process::Stdio::piped()).spawn().and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().expect("stdin").write_all(script.as_bytes())?;
                c.wait()
            });
            assert!(out.expect("running nft").success(), "nft -f failed");
            // NFT_MSG_NEWGEN (15) ends the commit's notifications.
            let notes = receive(&mut watch, |b| has_type(b, (10 << 8) | 15));

            let mut sock = Socket::open(Protocol::Netfilter).expect("socket");
            let mut req = MsgBuilder::new((10 << 8) | 13, NLM_F_REQUEST | NLM_F_DUMP).header(&[2, 0, 0, 0]);
            req.str(1, "kproxy").str(2, "affinity");
            sock.send(&req.finish()).expect("dump request");
            let dump = receive(&mut sock, |b| has_type(b, NLMSG_DONE));

            // NFT_MSG_GETTABLE of a missing table: ENOENT, the extended ACK pointing at the name.
            let mut req = MsgBuilder::new((10 << 8) | 1, NLM_F_REQUEST | NLM_F_ACK).header(&[2, 0, 0, 0]);
            req.str(1, "no-such-table");
            sock.send(&req.finish()).expect("bad request");
            let error = receive(&mut sock, |b| has_type(b, NLMSG_ERROR));
            (notes, dump, error)
        })
        .expect("entering the namespace");

    // The notifications carry the three new elements (two affinity entries, one map entry),
    // which the element parser reads too, and make one foreign commit (nft's port is not
    // kproxy's). The dump: the two affinity entries.
    assert_eq!(kproxy_nft::fuzzing::replies(&notes), 3 + 1, "notifications: {notes:?}");
    assert_eq!(kproxy_nft::fuzzing::replies(&dump), 2, "dump: {dump:?}");
    let e = Messages::new(&error).find_map(|m| m.error()).expect("an NLMSG_ERROR");
    assert_eq!((e.errno, e.offset), (libc::ENOENT, Some(20)), "{e:?}");
    for (name, bytes) in [("notifications", &notes), ("setelem-dump", &dump), ("error-extack", &error)] {
        assert!(kproxy_netlink::fuzzing::messages(bytes) > 0, "{name}");
        keep(if name == "error-extack" { "netlink" } else { "nft" }, name, bytes);
        keep("netlink", name, bytes);
    }
}

/// The IPVS and ctnetlink replies as the kernel writes them (the reply encoders follow
/// `ip_vs_ctl.c` and `nf_conntrack_netlink.c` and are checked against the kernel by the
/// backends' tests), through the entry points.
#[test]
fn encoded_replies_are_read_by_the_entry_points() {
    use kproxy_core::model::Protocol as P;
    use kproxy_ipvs::ipvs_msg::{reply, Forward, Info, RealCounters, RealKey, RealServer, ServiceKey, Timeouts, VirtualServer};

    let ip = |s: &str| s.parse::<IpAddr>().expect("literal");
    let family = 0x1d;
    let vs = |addr: &str, protocol, scheduler: &str| VirtualServer {
        key: ServiceKey { protocol, addr: ip(addr), port: 80 },
        scheduler: scheduler.into(),
        flags: 0,
        timeout: 10800,
        netmask: if ip(addr).is_ipv4() { u32::MAX } else { 128 },
    };
    let rs = |addr: &str| RealServer { key: RealKey { addr: ip(addr), port: 8080 }, weight: 1, forward: Forward::Masq };
    let counters = RealCounters { active: 3, inactive: 1, persistent: 0 };
    let services = [reply::service(family, &vs("198.19.160.10", P::Tcp, "rr")), reply::service(family, &vs("2001:db8::a", P::Udp, "wrr"))].concat();
    let dests = [reply::dest(family, &rs("198.18.0.2"), &counters), reply::dest(family, &rs("2001:db8::2"), &counters)].concat();
    let config = [reply::timeouts(family, &Timeouts { tcp: 900, tcp_fin: 120, udp: 300 }), reply::info(family, &Info { version: 0x10201, conn_tab_size: 4096 })].concat();
    for (name, bytes) in [("services", &services), ("dests", &dests), ("config-info", &config)] {
        kproxy_ipvs::fuzzing::replies(bytes);
        keep("ipvs", name, bytes);
    }

    // A UDP flow to a ClusterIP DNATed to an endpoint: orig and reply tuples, zone, id.
    let tuple = |b: &mut MsgBuilder, kind: u16, src: &str, dst: &str, sport: u16, dport: u16| {
        // CTA_IP_V4_SRC/DST are 1/2, CTA_IP_V6_SRC/DST 3/4.
        let bytes = |a: IpAddr| match a {
            IpAddr::V4(v4) => (1, v4.octets().to_vec()),
            IpAddr::V6(v6) => (3, v6.octets().to_vec()),
        };
        let ((k, s), (_, d)) = (bytes(ip(src)), bytes(ip(dst)));
        b.begin_nest(kind).begin_nest(1).attr(k, &s).attr(k + 1, &d).end_nest();
        b.begin_nest(2).attr(1, &[17]).be16(2, sport).be16(3, dport).end_nest().end_nest();
    };
    for (name, family, client, vip, endpoint) in
        [("udp-flow", 2, "198.18.0.5", "198.19.160.10", "198.18.0.10"), ("udp-flow-v6", 10, "2001:db8::5", "2001:db8:1::a", "2001:db8::10")]
    {
        let mut b = MsgBuilder::new(1 << 8, 0x2).header(&[family, 0, 0, 0]);
        tuple(&mut b, 1, client, vip, 40000, 53);
        tuple(&mut b, 2, endpoint, client, 5353, 40000);
        b.be16(18, 0).be32(12, 0x0102_0304);
        let flow = b.finish();
        assert_eq!(kproxy_conntrack::fuzzing::dump(&flow), 1, "{name}");
        keep("conntrack", name, &flow);
    }
}
