//! Byte fixtures of IPVS / rtnetlink messages, encode/decode round trips.

use super::*;
use crate::ipvs_msg::{self as m};
use kproxy_netlink::{Messages, MsgBuilder};

const FAMILY: u16 = 0x25;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The payload after the netlink header, as a reply parser sees it.
fn payload(msg: &[u8]) -> Vec<u8> {
    Messages::new(msg).next().unwrap().payload.to_vec()
}

#[test]
fn new_service_matches_fixture() {
    // Layout per linux/ip_vs.h: nlmsghdr, genlmsghdr{cmd 1, version 1}, nested
    // IPVS_CMD_ATTR_SERVICE{AF, PROTOCOL, ADDR (16-byte nf_inet_addr), PORT (be16),
    // SCHED_NAME, FLAGS{flags, mask}, TIMEOUT, NETMASK}.
    let expected = hex("68000000 2500 0500 00000000 00000000
         01010000
         54000180
           06000100 0200 0000
           06000200 0600 0000
           14000300 c613a00a 00000000 00000000 00000000
           06000400 0050 0000
           07000600 727200 00
           0c000700 00000000 ffffffff
           08000800 00000000
           08000900 ffffffff");
    assert_eq!(
        m::encode_service(FAMILY, cmd::NEW_SERVICE, &vs("198.19.160.10", 80)),
        expected
    );
}

#[test]
fn new_dest_matches_fixture() {
    let expected = hex("8c000000 2500 0500 00000000 00000000
         05010000
         30000180
           06000100 0200 0000
           06000200 0600 0000
           14000300 c613a00a 00000000 00000000 00000000
           06000400 0050 0000
         48000280
           14000100 c6120102 00000000 00000000 00000000
           06000200 1f90 0000
           08000300 00000000
           08000400 01000000
           08000500 00000000
           08000600 00000000
           06000b00 0200 0000");
    let got = m::encode_dest(
        FAMILY,
        cmd::NEW_DEST,
        &vs("198.19.160.10", 80).key,
        &rs("198.18.1.2", 8080, 1),
    );
    assert_eq!(got, expected);
}

#[test]
fn del_dest_carries_only_the_key() {
    let msg = m::encode_dest(
        FAMILY,
        cmd::DEL_DEST,
        &vs("198.19.160.10", 80).key,
        &rs("198.18.1.2", 8080, 1),
    );
    // service nest 48 + dest nest (addr 20, port 8, family 8) 40 + headers 20
    assert_eq!(msg.len(), 20 + 48 + 40);
    assert_eq!(msg[16], cmd::DEL_DEST);
}

#[test]
fn set_timeouts_sends_only_nonzero() {
    let msg = m::encode_set_timeouts(
        FAMILY,
        &Timeouts {
            tcp: 900,
            tcp_fin: 0,
            udp: 300,
        },
    );
    let expected = hex("24000000 2500 0500 00000000 00000000
         0c010000
         08000400 84030000
         08000600 2c010000");
    assert_eq!(msg, expected);
}

#[test]
fn service_round_trips_v4_v6_persistent() {
    let mut v6 = vs("2001:db8:b::10", 443);
    v6.key.protocol = Protocol::Udp;
    v6.flags = SVC_F_PERSISTENT;
    v6.timeout = 10800;
    v6.scheduler = "mh".into();
    for s in [vs("198.19.160.10", 80), v6] {
        let decoded = m::decode_service(&payload(&m::reply::service(FAMILY, &s))).unwrap();
        assert_eq!(decoded, s);
    }
}

#[test]
fn decode_service_ignores_hashed_flag_stats_and_skips_fwmark() {
    let s = vs("198.19.160.10", 80);
    let mut b = MsgBuilder::new(FAMILY, 0).header(&[cmd::NEW_SERVICE, 1, 0, 0]);
    b.begin_nest(1);
    b.u16(1, libc::AF_INET as u16)
        .u16(2, 6)
        .attr(3, &[198, 19, 160, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    b.be16(4, 80)
        .str(6, "rr")
        .attr(7, &[2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff])
        .u32(8, 0)
        .u32(9, 0xffff_ffff);
    b.begin_nest(10).u32(1, 5).end_nest(); // stats
    b.end_nest();
    assert_eq!(m::decode_service(&payload(&b.finish())).unwrap(), s);

    let mut b = MsgBuilder::new(FAMILY, 0).header(&[cmd::NEW_SERVICE, 1, 0, 0]);
    b.begin_nest(1)
        .u16(1, libc::AF_INET as u16)
        .u32(5, 7)
        .str(6, "rr")
        .end_nest();
    assert_eq!(
        m::decode_service(&payload(&b.finish())),
        None,
        "fwmark services are left alone"
    );
}

#[test]
fn dest_round_trips_with_counters() {
    let c = RealCounters {
        active: 3,
        inactive: 4,
        persistent: 1,
    };
    for r in [rs("198.18.1.2", 8080, 0), rs("2001:db8:a::2", 53, 7)] {
        let fam = if r.key.addr.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        } as u16;
        let (got, counters) =
            m::decode_dest(&payload(&m::reply::dest(FAMILY, &r, &c)), fam).unwrap();
        assert_eq!((got, counters), (r, c));
    }
}

#[test]
fn timeouts_and_info_round_trip() {
    let t = Timeouts {
        tcp: 900,
        tcp_fin: 120,
        udp: 300,
    };
    assert_eq!(
        m::decode_timeouts(&payload(&m::reply::timeouts(FAMILY, &t))),
        t
    );
    let i = Info {
        version: 0x010201,
        conn_tab_size: 4096,
    };
    assert_eq!(m::decode_info(&payload(&m::reply::info(FAMILY, &i))), i);
}

#[test]
fn get_family_request_matches_fixture() {
    let expected = hex("20000000 1000 0100 00000000 00000000 03010000 09000200 49505653 00 000000");
    assert_eq!(crate::ipvs::encode_get_family("IPVS"), expected);
    let mut b = MsgBuilder::new(0x10, 0).header(&[1, 2, 0, 0]);
    b.u16(1, 0x25).str(2, "IPVS");
    assert_eq!(
        crate::ipvs::decode_family_id(&payload(&b.finish())),
        Some(0x25)
    );
}

#[test]
fn rtnl_addr_round_trip() {
    let msg = crate::rtnl::encode_addr(true, 7, &ip("2001:db8:b::10"), 128);
    let a = crate::rtnl::decode_addr(&payload(&msg)).unwrap();
    assert_eq!(
        (a.index, a.addr, a.prefix_len),
        (7, ip("2001:db8:b::10"), 128)
    );
}
