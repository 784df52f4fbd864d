//! In-VM cases about syncs: graceful termination, partial syncs as diffs, failed syncs and
//! their repair, a restart adopting the table, and scale.

use std::time::Duration;

use kproxy_core::backend::{ProxyBackend, SyncKind};
use kproxy_core::model::*;
use kproxy_ipvs::IpvsConfig;

use crate::cases::*;
use crate::netns::IPVSADM;
use crate::topo::{pod_ip, pod_name, tcp_open, tcp_query, Topology};

/// Graceful termination: a removed endpoint with a live connection goes to weight 0, keeps
/// serving that connection, gets no new ones, and is deleted after its bound; one without
/// connections is deleted at once.
pub fn graceful_termination() -> R {
    let t = Topology::new(3)?;
    let vip = sa(ip("198.19.160.13"), 80);
    let full = service(
        "drain",
        Protocol::Tcp,
        "198.19.160.13",
        80,
        &pods(&[0, 1, 2]),
    );
    let st = state(&[full], NodePortAddresses::Primary);
    let cfg = IpvsConfig {
        graceful_termination_bound: Duration::from_secs(2),
        ..IpvsConfig::default()
    };
    let be = backend(&t.node, cfg)?;
    let st2 = st.clone();
    let (be, r) = inside(&t.node, be, move |b| b.sync_full(&st2))?;
    r.map_err(|e| e.to_string())?;

    let mut conn = tcp_open(&t.ext, vip)?;
    let busy = conn.answer.pod.clone();
    let busy_idx: usize = (0..3)
        .find(|i| pod_name(*i) == busy)
        .ok_or_else(|| format!("unknown pod {busy}"))?;
    let (keep, idle) = ((busy_idx + 1) % 3, (busy_idx + 2) % 3);
    let busy_ip = pod_ip(busy_idx);
    // Remove the busy pod and an idle one (no connections).
    let left = service("drain", Protocol::Tcp, "198.19.160.13", 80, &pods(&[keep]));
    let st3 = state(&[left], NodePortAddresses::Primary);
    let changes = st.diff(&st3);
    let (be, r) = inside(&t.node, be, move |b| b.sync_changes(&st3, &changes))?;
    let report = r.map_err(|e| e.to_string())?;
    ensure(report.kind == SyncKind::Partial, || format!("{report:?}"))?;
    witness(
        &t.node,
        &[&format!("-> {busy_ip}:8080 Masq 0 1")],
        &[&format!("-> {}:8080", pod_ip(idle))],
    )?;
    for _ in 0..4 {
        let a = tcp_query(&t.ext, vip)?;
        ensure(a.pod == pod_name(keep), || {
            format!("new connection went to a removed pod: {a:?}")
        })?;
    }
    let echo = conn.echo("still-there")?;
    ensure(echo == busy, || {
        format!("existing connection moved: {echo}")
    })?;
    drop(conn);
    std::thread::sleep(Duration::from_millis(2200));
    let (be, r) = inside(&t.node, be, |b| b.reap_draining())?;
    let reaped = r.map_err(|e| e.to_string())?;
    ensure(reaped == 1, || format!("reaped {reaped}, expected 1"))?;
    ensure(be.draining().count() == 0, || "still draining".into())?;
    witness(
        &t.node,
        &[&format!("-> {}:8080 Masq 1", pod_ip(keep))],
        &[&format!("-> {busy_ip}:8080")],
    )
}

/// Partial syncs send only the differences.
pub fn partial_sync_is_a_diff() -> R {
    let t = Topology::new(2)?;
    let a = service("a", Protocol::Tcp, "198.19.160.30", 80, &pods(&[0, 1]));
    let b = service("b", Protocol::Tcp, "198.19.160.31", 80, &pods(&[0, 1]));
    let s1 = state(std::slice::from_ref(&a), NodePortAddresses::Primary);
    let s2 = state(&[a, b], NodePortAddresses::Primary);
    let changes = s1.diff(&s2);
    let be = backend(&t.node, IpvsConfig::default())?;
    let (be, r) = inside(&t.node, be, move |x| x.sync_full(&s1))?;
    r.map_err(|e| e.to_string())?;
    let s2c = s2.clone();
    let (be, r) = inside(&t.node, be, move |x| x.sync_changes(&s2c, &changes))?;
    let rep = r.map_err(|e| e.to_string())?;
    // one VIP, one virtual server, two real servers
    ensure(rep.operations == 4 && rep.kind == SyncKind::Partial, || {
        format!("adding one service: {rep:?}")
    })?;
    let (_be, r) = inside(&t.node, be, move |x| {
        x.sync_changes(&s2, &ChangeSet::default())
    })?;
    let rep = r.map_err(|e| e.to_string())?;
    ensure(rep.operations == 0, || format!("no change: {rep:?}"))?;
    tcp_query(&t.ext, sa(ip("198.19.160.31"), 80)).map(|_| ())
}

/// A sync that fails halfway (a virtual server was deleted behind kproxy's back) keeps
/// what succeeded, reports what failed, and the next full sync repairs the rest.
pub fn failed_sync_is_repaired() -> R {
    let t = Topology::new(3)?;
    let a1 = service("a", Protocol::Tcp, "198.19.160.60", 80, &pods(&[0, 1]));
    let a2 = service("a", Protocol::Tcp, "198.19.160.60", 80, &pods(&[0, 1, 2]));
    let b = service("b", Protocol::Tcp, "198.19.160.61", 80, &pods(&[2]));
    let s1 = state(&[a1], NodePortAddresses::Primary);
    let s2 = state(&[a2, b], NodePortAddresses::Primary);
    let changes = s1.diff(&s2);
    let be = backend(&t.node, IpvsConfig::default())?;
    let (be, r) = inside(&t.node, be, move |x| x.sync_full(&s1))?;
    r.map_err(|e| e.to_string())?;
    t.node.exec(IPVSADM, &["-D", "-t", "198.19.160.60:80"])?;
    let s2c = s2.clone();
    let (be, r) = inside(&t.node, be, move |x| x.sync_changes(&s2c, &changes))?;
    let err = match r {
        Ok(rep) => {
            return Err(format!(
                "sync with a missing virtual server succeeded: {rep:?}"
            ))
        }
        Err(e) => e.to_string(),
    };
    ensure(
        err.contains("198.19.160.60") && err.contains("198.18.1.4:8080"),
        || format!("error does not name the failed op: {err}"),
    )?;
    println!("VMTEST   halfway failure reported as: {err}");
    // The backend keeps no copy of the state (the tracker's is the only one): after a failed
    // sync the caller repairs with a full sync, as the sync loop does (its own tests check
    // that a failed partial sync is followed by a full one).
    // What succeeded stays: service b answers.
    ensure(
        tcp_query(&t.ext, sa(ip("198.19.160.61"), 80))?.pod == pod_name(2),
        || "b not served".into(),
    )?;
    let (_be, r) = inside(&t.node, be, move |x| x.sync_full(&s2))?;
    r.map_err(|e| format!("repair: {e}"))?;
    witness(
        &t.node,
        &[
            "TCP 198.19.160.60:80 rr",
            "-> 198.18.1.2:8080",
            "-> 198.18.1.3:8080",
            "-> 198.18.1.4:8080",
        ],
        &[],
    )?;
    let c = count(
        &(0..3)
            .map(|_| tcp_query(&t.ext, sa(ip("198.19.160.60"), 80)))
            .collect::<Result<Vec<_>, _>>()?,
    );
    ensure(c.len() == 3, || {
        format!("repaired service spreads over 3 pods: {c:?}")
    })
}

/// A new process adopts and repairs the kernel table: stale services and real servers go,
/// excluded ones stay; cleanup removes everything else and kube-ipvs0.
pub fn restart_reconcile_and_cleanup() -> R {
    let t = Topology::new(2)?;
    let a = service("a", Protocol::Tcp, "198.19.160.40", 80, &pods(&[0]));
    let st = state(&[a], NodePortAddresses::Primary);
    // Left behind by "an earlier process" and by someone else:
    t.node
        .exec(IPVSADM, &["-A", "-t", "198.19.160.40:80", "-s", "wrr"])?;
    t.node.exec(
        IPVSADM,
        &[
            "-a",
            "-t",
            "198.19.160.40:80",
            "-r",
            "198.18.1.9:8080",
            "-m",
            "-w",
            "5",
        ],
    )?;
    t.node
        .exec(IPVSADM, &["-A", "-t", "198.19.160.99:80", "-s", "rr"])?;
    t.node
        .exec(IPVSADM, &["-A", "-t", "198.19.250.5:80", "-s", "rr"])?;
    let cfg = IpvsConfig {
        exclude_cidrs: vec!["198.19.250.0/24".parse().expect("literal")],
        ..IpvsConfig::default()
    };
    let be = backend(&t.node, cfg)?;
    let (be, r) = inside(&t.node, be, move |b| b.sync_full(&st))?;
    r.map_err(|e| e.to_string())?;
    witness(
        &t.node,
        &[
            "TCP 198.19.160.40:80 rr",
            "-> 198.18.1.2:8080 Masq 1",
            "TCP 198.19.250.5:80 rr",
        ],
        &["198.19.160.99", "198.18.1.9"],
    )?;
    tcp_query(&t.ext, sa(ip("198.19.160.40"), 80))?;
    let (_be, r) = inside(&t.node, be, |b| b.cleanup())?;
    r.map_err(|e| e.to_string())?;
    witness(&t.node, &["TCP 198.19.250.5:80 rr"], &["198.19.160.40"])?;
    let links = t.node.ip("-o link show")?;
    ensure(!links.contains("kube-ipvs0"), || {
        format!("kube-ipvs0 left after cleanup: {links}")
    })
}

/// Scale: full sync of N services x 2 endpoints, then a partial sync adding one service and
/// one changing an endpoint; prints the times (software-emulated CPU: compare, don't quote).
pub fn sync_scale() -> R {
    let t = Topology::new(2)?;
    for n in [1000usize, 5000] {
        let ports: Vec<ServicePort> = (0..n)
            .map(|i| {
                let cip = format!("198.19.{}.{}", 160 + i / 250, 1 + i % 250);
                service(&format!("s{i}"), Protocol::Tcp, &cip, 80, &pods(&[0, 1]))
            })
            .collect();
        let s1 = state(&ports, NodePortAddresses::Primary);
        let mut more = ports.clone();
        more.push(service(
            "extra",
            Protocol::Tcp,
            "198.19.190.1",
            80,
            &pods(&[0, 1]),
        ));
        more[0] = service("s0", Protocol::Tcp, "198.19.160.1", 80, &pods(&[1]));
        let s2 = state(&more, NodePortAddresses::Primary);
        let changes = s1.diff(&s2);
        let be = backend(&t.node, IpvsConfig::default())?;
        let s1c = s1.clone();
        let (be, r) = inside(&t.node, be, move |b| {
            let t0 = std::time::Instant::now();
            let r = b.sync_full(&s1c);
            (r, t0.elapsed())
        })?;
        let (rep, full) = (r.0.map_err(|e| e.to_string())?, r.1);
        let (be, r) = inside(&t.node, be, move |b| {
            let t0 = std::time::Instant::now();
            let r = b.sync_changes(&s2, &changes);
            (r, t0.elapsed())
        })?;
        let (prep, partial) = (r.0.map_err(|e| e.to_string())?, r.1);
        // Restart: a new process dumps and reconciles a table that is already right.
        let s2b = state(&more, NodePortAddresses::Primary);
        let (_be, r) = inside(
            &t.node,
            backend(&t.node, IpvsConfig::default())?,
            move |b| {
                let t0 = std::time::Instant::now();
                let r = b.sync_full(&s2b);
                (r, t0.elapsed())
            },
        )?;
        let (rrep, restart) = (r.0.map_err(|e| e.to_string())?, r.1);
        drop(be);
        println!(
            "VMTEST   scale {n} services x 2 endpoints: full sync {:.0} ms ({} ops), partial sync {:.1} ms ({} ops), restart full sync {:.0} ms ({} ops)",
            full.as_secs_f64() * 1e3,
            rep.operations,
            partial.as_secs_f64() * 1e3,
            prep.operations,
            restart.as_secs_f64() * 1e3,
            rrep.operations
        );
        // extra: VIP + service + 2 reals; s0: one real drained (and reaped: no connections)
        ensure(prep.operations == 4 + 1 + 1, || {
            format!("partial ops: {prep:?}")
        })?;
        ensure(rrep.operations == 0, || {
            format!("restart on a correct table changed things: {rrep:?}")
        })?;
        let out = t.node.exec(IPVSADM, &["-Ln"])?;
        let count = out.lines().filter(|l| l.starts_with("TCP")).count();
        ensure(count == n + 1, || {
            format!("{count} virtual servers, expected {}", n + 1)
        })?;
        inside(&t.node, backend(&t.node, IpvsConfig::default())?, |b| {
            b.cleanup()
        })?
        .1
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}
