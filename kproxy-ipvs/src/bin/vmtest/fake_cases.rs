//! The fake kernel against the real one: the same operations, sent to IPVS and rtnetlink in
//! a fresh namespace and to [`FakeIpvs`], get the same errno each, and leave the same table.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;

use kproxy_core::model::Protocol;
use kproxy_ipvs::ipvs::Op;
use kproxy_ipvs::ipvs_msg::{Forward, RealKey, RealServer, ServiceKey, VirtualServer};
use kproxy_ipvs::{FakeIpvs, IpvsKernel, NetlinkKernel, Operation};

use crate::cases::{ensure, ip, R};
use crate::netns::Netns;

const LINK: &str = "kpfake0";

fn vs(addr: &str, scheduler: &str) -> VirtualServer {
    let addr = ip(addr);
    VirtualServer {
        key: ServiceKey {
            protocol: Protocol::Tcp,
            addr,
            port: 80,
        },
        scheduler: scheduler.into(),
        flags: 0,
        timeout: 0,
        netmask: VirtualServer::host_netmask(&addr),
    }
}

fn rs(addr: &str, weight: u32) -> RealServer {
    RealServer {
        key: RealKey {
            addr: ip(addr),
            port: 8080,
        },
        weight,
        forward: Forward::Masq,
    }
}

/// Operations on the dummy link `link`, each with the errno the kernel answers (0: success).
fn script(link: u32) -> Vec<(Operation, i32)> {
    let a = vs("198.19.160.10", "rr");
    let missing = vs("198.19.160.11", "rr");
    let unknown_scheduler = vs("198.19.160.12", "nosuch");
    let mut v6_netmask_zero = vs("2001:db8:b::10", "rr");
    v6_netmask_zero.netmask = 0;
    let mut a_unknown_scheduler = a.clone();
    a_unknown_scheduler.scheduler = "nosuch".into();
    let ipvs = |op| Operation::Ipvs(op);
    let add = |addr: &str| Operation::AddAddress {
        link,
        addr: ip(addr),
    };
    let del = |addr: &str| Operation::DeleteAddress {
        link,
        addr: ip(addr),
    };
    vec![
        (ipvs(Op::AddService(a.clone())), 0),
        (ipvs(Op::AddService(a.clone())), libc::EEXIST),
        (ipvs(Op::UpdateService(missing.clone())), libc::ESRCH),
        (ipvs(Op::DelService(missing.key)), libc::ESRCH),
        (
            ipvs(Op::AddReal(missing.key, rs("198.18.1.2", 1))),
            libc::ESRCH,
        ),
        (ipvs(Op::AddService(unknown_scheduler)), libc::ENOENT),
        (ipvs(Op::UpdateService(a_unknown_scheduler)), libc::ENOENT),
        (ipvs(Op::AddService(v6_netmask_zero)), libc::EINVAL),
        (ipvs(Op::AddReal(a.key, rs("198.18.1.2", 1))), 0),
        (ipvs(Op::AddReal(a.key, rs("198.18.1.2", 1))), libc::EEXIST),
        (
            ipvs(Op::UpdateReal(a.key, rs("198.18.1.3", 1))),
            libc::ENOENT,
        ),
        (ipvs(Op::DelReal(a.key, rs("198.18.1.3", 1))), libc::ENOENT),
        (
            ipvs(Op::AddReal(a.key, rs("2001:db8:a::2", 1))),
            libc::EINVAL,
        ),
        (
            ipvs(Op::UpdateReal(a.key, rs("198.18.1.2", 1 << 31))),
            libc::ERANGE,
        ),
        (ipvs(Op::UpdateReal(a.key, rs("198.18.1.2", 0))), 0),
        (add("198.19.160.10"), 0),
        (add("198.19.160.10"), libc::EEXIST),
        (add("2001:db8:b::10"), 0),
        (add("2001:db8:b::10"), libc::EEXIST),
        (del("198.19.160.11"), libc::EADDRNOTAVAIL),
        (del("2001:db8:b::11"), libc::EADDRNOTAVAIL),
        (
            Operation::AddAddress {
                link: link + 1000,
                addr: ip("198.19.160.13"),
            },
            libc::ENODEV,
        ),
    ]
}

/// What a kernel answered to the script and the state it was left in.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    errnos: Vec<i32>,
    table: Vec<(VirtualServer, Vec<RealServer>)>,
    addresses: BTreeSet<IpAddr>,
}

fn play(kernel: &mut dyn IpvsKernel) -> Result<Outcome, String> {
    let link = kernel.ensure_dummy_link(LINK).map_err(|e| e.to_string())?;
    let ops: Vec<Operation> = script(link).into_iter().map(|(op, _)| op).collect();
    let verdicts = kernel.apply(&ops).map_err(|e| e.to_string())?;
    let errnos = verdicts
        .iter()
        .map(|v| v.err().map_or(0, |e| e.0))
        .collect();
    let table = kernel
        .dump()
        .map_err(|e| e.to_string())?
        .into_values()
        .map(|d| (d.service, d.reals.into_iter().map(|(rs, _)| rs).collect()))
        .collect();
    let addresses = kernel
        .addresses()
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|a| a.index == link && !kproxy_ipvs::plan::is_link_local(&a.addr))
        .map(|a| a.addr)
        .collect();
    Ok(Outcome {
        errnos,
        table,
        addresses,
    })
}

/// One pipelined script of operations the kernel accepts and rejects; the fake must answer
/// every one with the kernel's errno and end in the kernel's state.
pub fn fake_matches_kernel_errnos() -> R {
    let ns = Netns::new("kpfake")?;
    let real = ns.run(|| {
        let mut k = NetlinkKernel::open(PathBuf::from("/proc/sys")).map_err(|e| e.to_string())?;
        play(&mut k)
    })??;
    let fake = play(&mut FakeIpvs::new())?;
    let expected: Vec<(Operation, i32)> = script(0);
    let mut wrong = Vec::new();
    for (i, (op, want)) in expected.iter().enumerate() {
        let (k, f) = (real.errnos[i], fake.errnos[i]);
        if k != *want || f != *want {
            wrong.push(format!(
                "{}: kernel {k}, fake {f}, expected {want}",
                op.describe(LINK)
            ));
        }
    }
    println!(
        "VMTEST   kernel and fake answered {} operations with errnos {:?}",
        real.errnos.len(),
        real.errnos
    );
    ensure(wrong.is_empty(), || {
        format!("errnos differ:\n  {}", wrong.join("\n  "))
    })?;
    ensure(real.table == fake.table, || {
        format!(
            "tables differ:\n kernel {:?}\n fake   {:?}",
            real.table, fake.table
        )
    })?;
    ensure(real.addresses == fake.addresses, || {
        format!(
            "addresses differ: kernel {:?}, fake {:?}",
            real.addresses, fake.addresses
        )
    })
}
