//! The fake kernel's rules: the errnos `ip_vs_ctl.c` and rtnetlink answer, each operation
//! judged alone.

use super::*;
use crate::error::Errno;
use crate::fake::FakeIpvs;
use crate::ipvs::Op;
use crate::kernel::IpvsKernel;
use crate::operation::Operation;

fn one(fake: &mut FakeIpvs, op: Op) -> Result<(), i32> {
    let v = fake.apply(&[Operation::Ipvs(op)]).unwrap();
    v[0].map_err(|e| e.0)
}

#[test]
fn virtual_servers_exist_once_and_must_exist_to_change() {
    let mut f = FakeIpvs::new();
    let a = vs("198.19.160.10", 80);
    assert_eq!(one(&mut f, Op::AddService(a.clone())), Ok(()));
    assert_eq!(one(&mut f, Op::AddService(a.clone())), Err(libc::EEXIST));
    let b = vs("198.19.160.11", 80);
    assert_eq!(one(&mut f, Op::UpdateService(b.clone())), Err(libc::ESRCH));
    assert_eq!(one(&mut f, Op::DelService(b.key)), Err(libc::ESRCH));
    let mut wrr = a.clone();
    wrr.scheduler = "wrr".into();
    assert_eq!(one(&mut f, Op::UpdateService(wrr)), Ok(()));
    assert_eq!(f.virtual_server(&a.key).unwrap().scheduler, "wrr");
    assert_eq!(one(&mut f, Op::DelService(a.key)), Ok(()));
    assert!(f.virtual_server(&a.key).is_none());
}

#[test]
fn schedulers_must_be_known_and_ipv6_netmasks_are_prefixes() {
    let mut f = FakeIpvs::new();
    let mut a = vs("198.19.160.10", 80);
    a.scheduler = "fifo".into();
    assert_eq!(one(&mut f, Op::AddService(a.clone())), Err(libc::ENOENT));
    f.remove_scheduler("mh");
    a.scheduler = "mh".into();
    assert_eq!(one(&mut f, Op::AddService(a.clone())), Err(libc::ENOENT));
    a.scheduler = "rr".into();
    assert_eq!(one(&mut f, Op::AddService(a.clone())), Ok(()));
    a.scheduler = "fifo".into();
    assert_eq!(one(&mut f, Op::UpdateService(a)), Err(libc::ENOENT));
    let mut v6 = vs("2001:db8:b::10", 80);
    v6.netmask = 0;
    assert_eq!(one(&mut f, Op::AddService(v6)), Err(libc::EINVAL));
}

#[test]
fn real_servers_need_their_virtual_server_and_its_family() {
    let mut f = FakeIpvs::new();
    let a = vs("198.19.160.10", 80);
    let r = rs("198.18.1.2", 8080, 1);
    // The virtual server must exist for every real-server command.
    assert_eq!(one(&mut f, Op::AddReal(a.key, r.clone())), Err(libc::ESRCH));
    assert_eq!(
        one(&mut f, Op::UpdateReal(a.key, r.clone())),
        Err(libc::ESRCH)
    );
    assert_eq!(one(&mut f, Op::DelReal(a.key, r.clone())), Err(libc::ESRCH));
    one(&mut f, Op::AddService(a.clone())).unwrap();
    assert_eq!(
        one(&mut f, Op::UpdateReal(a.key, r.clone())),
        Err(libc::ENOENT)
    );
    assert_eq!(
        one(&mut f, Op::DelReal(a.key, r.clone())),
        Err(libc::ENOENT)
    );
    assert_eq!(one(&mut f, Op::AddReal(a.key, r.clone())), Ok(()));
    assert_eq!(
        one(&mut f, Op::AddReal(a.key, r.clone())),
        Err(libc::EEXIST)
    );
    // Masquerading does not cross families; deleting is not checked for it.
    let v6 = rs("2001:db8:a::2", 8080, 1);
    assert_eq!(
        one(&mut f, Op::AddReal(a.key, v6.clone())),
        Err(libc::EINVAL)
    );
    assert_eq!(
        one(&mut f, Op::UpdateReal(a.key, v6.clone())),
        Err(libc::EINVAL)
    );
    assert_eq!(one(&mut f, Op::DelReal(a.key, v6)), Err(libc::ENOENT));
    // The kernel's weight is a signed int.
    let heavy = rs("198.18.1.2", 8080, 1 << 31);
    assert_eq!(one(&mut f, Op::UpdateReal(a.key, heavy)), Err(libc::ERANGE));
    assert_eq!(
        one(&mut f, Op::UpdateReal(a.key, rs("198.18.1.2", 8080, 0))),
        Ok(())
    );
    assert_eq!(f.reals_of(&a.key), vec![rs("198.18.1.2", 8080, 0)]);
    // Deleting the virtual server takes its real servers.
    one(&mut f, Op::DelService(a.key)).unwrap();
    one(&mut f, Op::AddService(a.clone())).unwrap();
    assert!(f.reals_of(&a.key).is_empty());
}

#[test]
fn a_batch_is_judged_per_operation() {
    let mut f = FakeIpvs::new();
    let a = vs("198.19.160.10", 80);
    let gone = vs("198.19.160.99", 80);
    let ops = [
        Operation::Ipvs(Op::AddService(a.clone())),
        Operation::Ipvs(Op::AddReal(gone.key, rs("198.18.1.2", 80, 1))),
        Operation::Ipvs(Op::AddReal(a.key, rs("198.18.1.3", 80, 1))),
    ];
    let v = f.apply(&ops).unwrap();
    assert_eq!(v, vec![Ok(()), Err(Errno(libc::ESRCH)), Ok(())]);
    assert_eq!(f.reals_of(&a.key), vec![rs("198.18.1.3", 80, 1)]);
    assert_eq!(f.log(), &ops);
    let dump = f.dump().unwrap();
    assert_eq!(dump.len(), 1);
    assert_eq!(dump[&a.key].reals.len(), 1);
    assert!(matches!(
        f.real_servers(&gone.key),
        Err(crate::Error::Kernel { errno, .. }) if errno.is_not_found()
    ));
}

#[test]
fn addresses_exist_once_on_existing_links() {
    let mut f = FakeIpvs::new();
    let link = f.ensure_dummy_link("kube-ipvs0").unwrap();
    assert_eq!(f.ensure_dummy_link("kube-ipvs0").unwrap(), link);
    // A link that comes up gets an IPv6 link-local address, as in the kernel.
    assert!(f
        .link_addresses("kube-ipvs0")
        .iter()
        .all(|a| crate::plan::is_link_local(a)));
    let addr = ip("198.19.160.10");
    let add = Operation::AddAddress { link, addr };
    let del = Operation::DeleteAddress { link, addr };
    let errnos = |f: &mut FakeIpvs, ops: &[Operation]| -> Vec<Result<(), i32>> {
        f.apply(ops)
            .unwrap()
            .into_iter()
            .map(|v| v.map_err(|e| e.0))
            .collect()
    };
    assert_eq!(
        errnos(
            &mut f,
            &[add.clone(), add.clone(), del.clone(), del.clone()]
        ),
        vec![Ok(()), Err(libc::EEXIST), Ok(()), Err(libc::EADDRNOTAVAIL)]
    );
    let nowhere = Operation::AddAddress { link: 99, addr };
    assert_eq!(errnos(&mut f, &[nowhere]), vec![Err(libc::ENODEV)]);
    errnos(&mut f, &[add]);
    assert!(f.link_addresses("kube-ipvs0").contains(&addr));
    f.delete_link("kube-ipvs0").unwrap();
    assert_eq!(f.link("kube-ipvs0"), None);
    assert!(f.addresses().unwrap().iter().all(|a| a.index != link));
    assert_eq!(f.loopback_indexes().unwrap(), vec![f.link("lo").unwrap()]);
}

#[test]
fn zero_timeouts_keep_the_kernels_and_sysctls_are_recorded() {
    let mut f = FakeIpvs::new();
    f.set_timeouts(&Timeouts {
        tcp: 900,
        tcp_fin: 0,
        udp: 300,
    })
    .unwrap();
    f.set_timeouts(&Timeouts {
        tcp: 0,
        tcp_fin: 120,
        udp: 0,
    })
    .unwrap();
    assert_eq!(
        f.timeouts(),
        Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300
        }
    );
    let warnings = f.write_sysctls(&crate::sysctl::required(true)).unwrap();
    assert!(warnings.is_empty());
    assert_eq!(f.sysctl("net/ipv4/conf/all/arp_ignore"), Some("1"));
}
