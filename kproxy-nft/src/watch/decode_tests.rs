//! Decoding and matching notifications as the kernel sends them (byte layouts of
//! `nf_tables_api.c`: `nfgenmsg`, then attributes; the port id in `nlmsg_pid`).

use kproxy_netlink::{Messages, MsgBuilder};

use super::*;

const OURS: u32 = 4242;
const NFT: u32 = 777;

fn with_port(mut msg: Vec<u8>, port: u32) -> Vec<u8> {
    msg[12..16].copy_from_slice(&port.to_ne_bytes());
    msg
}

fn object(msg: u8, family: u8, port: u32, attrs: &[(u16, &str)]) -> Vec<u8> {
    let mut b = MsgBuilder::new((10 << 8) | u16::from(msg), 0).header(&[family, 0, 0, 0]);
    for (k, v) in attrs {
        b.str(*k, v);
    }
    with_port(b.finish(), port)
}

fn elements(msg: u8, port: u32, table: &str, set: &str, n: usize) -> Vec<u8> {
    let mut b = MsgBuilder::new((10 << 8) | u16::from(msg), 0).header(&[2, 0, 0, 0]);
    b.str(1, table).str(2, set);
    b.begin_nest(3);
    for i in 0..n {
        b.begin_nest(1);
        b.be32(1, i as u32);
        b.end_nest();
    }
    b.end_nest();
    with_port(b.finish(), port)
}

fn newgen(port: u32, id: u32, pid: u32, name: &str) -> Vec<u8> {
    let mut b = MsgBuilder::new((10 << 8) | 15, 0).header(&[0, 0, 0, 0]);
    b.be32(1, id).be32(2, pid).str(3, name);
    with_port(b.finish(), port)
}

fn one(bytes: &[u8]) -> Option<Notification> {
    decode(&Messages::new(bytes).next().expect("one message"))
}

#[test]
fn decodes_each_object_kind_with_its_names() {
    let rule = one(&object(8, 2, NFT, &[(1, "kproxy"), (2, "services")])).unwrap();
    let Notification::Change { port, change } = rule else { panic!("not a change: {rule:?}") };
    assert_eq!(port, NFT);
    assert_eq!((change.verb, change.kind, change.family.as_str()), (Verb::Delete, ObjectKind::Rule, "ip"));
    assert_eq!((change.table.as_str(), change.name.as_deref()), ("kproxy", Some("services")));
    assert_eq!(change.to_string(), "deleted 1 rule in chain ip kproxy services");

    // A chain's name is attribute 3 (2 is its handle).
    let Some(Notification::Change { change, .. }) = one(&object(3, 10, NFT, &[(1, "kproxy"), (3, "nodeports")])) else {
        panic!("chain not decoded")
    };
    assert_eq!(change.to_string(), "added chain ip6 kproxy nodeports");

    let Some(Notification::Change { change, .. }) = one(&object(2, 2, NFT, &[(1, "kproxy")])) else { panic!() };
    assert_eq!(change.to_string(), "deleted table ip kproxy");

    let Some(Notification::Change { change, .. }) = one(&elements(14, NFT, "kproxy", "service-ips", 3)) else { panic!() };
    assert_eq!((change.kind, change.count), (ObjectKind::Element, 3));
    assert_eq!(change.to_string(), "deleted 3 elements in set ip kproxy service-ips");
}

#[test]
fn decodes_the_generation_with_the_committer() {
    let g = one(&newgen(NFT, 99, 1234, "nft")).unwrap();
    assert_eq!(g, Notification::Generation { port: NFT, id: 99, pid: Some(1234), process: Some("nft".into()) });
}

#[test]
fn ignores_other_subsystems_gets_and_truncated_messages() {
    // ctnetlink (subsystem 1), a GETTABLE (1) answer, and a message without nfgenmsg.
    assert!(one(&object(0, 2, NFT, &[(1, "kproxy")])).is_some());
    let mut ct = object(0, 2, NFT, &[(1, "kproxy")]);
    ct[5] = 1;
    assert_eq!(one(&ct), None);
    assert_eq!(one(&object(1, 2, NFT, &[(1, "kproxy")])), None);
    let bare = with_port(MsgBuilder::new(10 << 8, 0).finish(), NFT);
    assert_eq!(one(&bare), None);
}

fn feed_all(m: &mut Matcher, msgs: &[Vec<u8>]) -> Vec<ForeignCommit> {
    let bytes: Vec<u8> = msgs.concat();
    Messages::new(&bytes).filter_map(|msg| decode(&msg)).filter_map(|n| m.feed(n)).collect()
}

#[test]
fn own_commits_and_other_tables_are_not_foreign() {
    let mut m = Matcher::new(&["kproxy"], &[OURS]);
    let seen = feed_all(
        &mut m,
        &[
            object(2, 2, OURS, &[(1, "kproxy")]),
            object(0, 2, OURS, &[(1, "kproxy")]),
            newgen(OURS, 10, 1, "kproxy"),
            object(0, 2, NFT, &[(1, "someone-elses")]),
            newgen(NFT, 11, 2, "nft"),
        ],
    );
    assert_eq!(seen, []);
}

#[test]
fn a_foreign_commit_is_one_merged_report_ending_at_its_generation() {
    let mut m = Matcher::new(&["kproxy"], &[OURS]);
    let seen = feed_all(
        &mut m,
        &[
            object(8, 2, NFT, &[(1, "kproxy"), (2, "services")]),
            object(8, 2, NFT, &[(1, "kproxy"), (2, "services")]),
            object(5, 2, NFT, &[(1, "kproxy"), (3, "services")]),
            object(2, 2, NFT, &[(1, "kproxy")]),
        ],
    );
    assert_eq!(seen, [], "nothing before the commit's NEWGEN");
    let seen = feed_all(&mut m, &[newgen(NFT, 12, 1234, "nft")]);
    assert_eq!(seen.len(), 1);
    let c = &seen[0];
    assert_eq!((c.generation, c.pid, c.process.as_deref()), (12, Some(1234), Some("nft")));
    assert_eq!(c.changes.len(), 3, "the table, its chain, its rules (merged): {:?}", c.changes);
    // What was in the deleted table is not listed again.
    assert_eq!(c.to_string(), "`nft` (pid 1234) deleted table ip kproxy");
    // The next commit starts afresh.
    assert_eq!(feed_all(&mut m, &[newgen(NFT, 13, 1234, "nft")]), []);
}

#[test]
fn changes_of_a_table_that_stays_are_listed_in_order_table_chain_rule_set_element() {
    let mut m = Matcher::new(&["kproxy"], &[OURS]);
    let seen = feed_all(
        &mut m,
        &[
            elements(14, NFT, "kproxy", "service-ips", 2),
            object(6, 2, NFT, &[(1, "kproxy"), (2, "services")]),
            object(3, 2, NFT, &[(1, "kproxy"), (3, "extra")]),
            newgen(NFT, 4, 9, "nft"),
        ],
    );
    assert_eq!(
        seen[0].to_string(),
        "`nft` (pid 9) added chain ip kproxy extra, added 1 rule in chain ip kproxy services, deleted 2 elements in set ip kproxy service-ips"
    );
}

#[test]
fn a_reset_forgets_a_partial_commit() {
    let mut m = Matcher::new(&["kproxy"], &[OURS]);
    feed_all(&mut m, &[elements(14, NFT, "kproxy", "service-ips", 1)]);
    m.reset();
    assert_eq!(feed_all(&mut m, &[newgen(NFT, 5, 1, "nft")]), []);
}

#[test]
fn long_reports_are_cut() {
    let mut m = Matcher::new(&["kproxy"], &[OURS]);
    let mut msgs: Vec<Vec<u8>> = (0..9).map(|i| object(11, 2, NFT, &[(1, "kproxy"), (2, &format!("s{i}"))])).collect();
    msgs.push(newgen(NFT, 3, 7, "nft"));
    let seen = feed_all(&mut m, &msgs);
    assert!(seen[0].to_string().ends_with(", and 3 more changes"), "{}", seen[0]);
}
