//! Plan -> nft script text (`--dry-run`). Loading it with `nft -f` gives the same ruleset as
//! the netlink path (tested).

use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};

use kproxy_core::model::{IpFamily, ProxyState};

use crate::plan::{Element, Key, SetId, Value, Verdict};
use crate::render::{FamilyPlan, Plan};
use crate::stmt::{ip_word, Rule};
use crate::NftConfig;

/// Elements per `add element` line.
const CHUNK: usize = 1000;

/// The complete ruleset for `state` as an nft script that replaces kproxy's tables.
pub fn render_script(state: &ProxyState, cfg: &NftConfig) -> String {
    script(&Plan::render(state), cfg)
}

/// A plan as an nft script.
pub fn script(plan: &Plan, cfg: &NftConfig) -> String {
    let mut out = String::with_capacity(plan.elements.len() * 64 + 8192);
    for fp in &plan.families {
        family_script(&mut out, fp, cfg);
    }
    let mut elements: Vec<&Element> = plan.elements.iter().collect();
    elements.sort_by_key(|e| (e.family, e.set, e.key));
    elements.dedup_by(|a, b| a.id() == b.id());
    for group in elements.chunk_by(|a, b| (a.family, a.set) == (b.family, b.set)) {
        for chunk in group.chunks(CHUNK) {
            let (fam, set) = (chunk[0].family, chunk[0].set);
            let items: Vec<String> = chunk.iter().map(|e| element_text(e)).collect();
            let _ = writeln!(out, "add element {} {} {} {{ {} }}", ip_word(fam), cfg.table_name, set.name(), items.join(", "));
        }
    }
    out
}

fn family_script(out: &mut String, fp: &FamilyPlan, cfg: &NftConfig) {
    let fam = ip_word(fp.family);
    let t = &cfg.table_name;
    let _ = writeln!(out, "add table {fam} {t}\ndelete table {fam} {t}\nadd table {fam} {t}");
    for set in SetId::ALL.iter().filter(|s| s.exists_in(fp.family)) {
        let kind = if set.is_map() { "map" } else { "set" };
        let _ = writeln!(out, "add {kind} {fam} {t} {} {{ {} }}", set.name(), set.declaration(fp.family));
    }
    for c in &fp.skeleton.chains {
        match &c.hook {
            Some(h) => {
                let _ = writeln!(
                    out,
                    "add chain {fam} {t} {} {{ type {} hook {} priority {} ; }}",
                    c.name, h.kind, h.hook, h.priority
                );
            }
            None => {
                let _ = writeln!(out, "add chain {fam} {t} {}", c.name);
            }
        }
    }
    for chain in fp.dynamic.keys() {
        let _ = writeln!(out, "add chain {fam} {t} {}", chain.name());
    }
    for rule in fp.skeleton.rules.iter().chain(fp.dynamic.values().flatten()) {
        rule_line(out, fp.family, t, rule);
    }
}

/// `add rule FAMILY TABLE CHAIN TEXT [comment "..."]`.
///
/// A rule nft 1.0.6 cannot compile ([`Rule::nft_can_compile`]) is printed as a `#` comment
/// after a line saying why: the script stays loadable, the netlink path programs the rule.
pub fn rule_line(out: &mut String, family: IpFamily, table: &str, rule: &Rule) {
    if !rule.nft_can_compile() {
        out.push_str("# programmed through netlink only: nft 1.0.6 cannot compile a dynset key over 16 bytes\n# ");
    }
    let _ = write!(out, "add rule {} {table} {} {}", ip_word(family), rule.chain, rule.text);
    if let Some(c) = &rule.comment {
        let _ = write!(out, " comment \"{c}\"");
    }
    out.push('\n');
}

fn addr(ip: IpAddr) -> String {
    ip.to_string()
}

fn endpoint(sa: SocketAddr) -> String {
    format!("{} . {}", sa.ip(), sa.port())
}

/// `KEY [comment "C"] [: VALUE]`.
pub fn element_text(e: &Element) -> String {
    let key = match e.key {
        Key::Addr(ip) => addr(ip),
        Key::Net(n) => {
            if n.prefix_len() == n.max_prefix_len() {
                n.addr().to_string()
            } else {
                n.to_string()
            }
        }
        Key::AddrPair(a, b) => format!("{a} . {b}"),
        Key::Dest(ip, p, port) => format!("{ip} . {p} . {port}"),
        Key::Port(p, port) => format!("{p} . {port}"),
        Key::DestSlot(ip, p, port, i) => format!("{ip} . {p} . {port} . {i}"),
        Key::PortSlot(p, port, i) => format!("{p} . {port} . {i}"),
        Key::DestPortNet(ip, p, port, n) => format!("{ip} . {p} . {port} . {n}"),
    };
    let comment = if e.comment.is_empty() { String::new() } else { format!(" comment \"{}\"", e.comment) };
    let value = match e.value {
        Value::None => String::new(),
        Value::Endpoint(sa) => format!(" : {}", endpoint(sa)),
        Value::Verdict(v) => format!(" : {}", verdict_text(v)),
    };
    format!("{key}{comment}{value}")
}

fn verdict_text(v: Verdict) -> String {
    match v {
        Verdict::Goto(c) => format!("goto {}", c.name()),
        Verdict::Jump(c) => format!("jump {}", c.name()),
        Verdict::Drop => "drop".into(),
    }
}
