//! The interpreter: one run of a packet through the dumped table, with one fixed value for
//! every random endpoint choice. Registers, payloads, conntrack and routing are modelled only
//! as far as kproxy's expressions read them.

use std::net::{IpAddr, SocketAddr};

use kproxy_core::model::IpFamily;

use super::table::{element_comment, element_verdict, DumpedChain, TableDump, SET_TIMEOUT};
use super::{Packet, Verdict};
use crate::stmt::Expr;
use crate::tx::RawData;

const NF_DROP: i32 = 0;
const NF_ACCEPT: i32 = 1;
const NFT_CONTINUE: i32 = -1;
const NFT_BREAK: i32 = -2;
const NFT_JUMP: i32 = -3;
const NFT_GOTO: i32 = -4;
const NFT_RETURN: i32 = -5;

const HOOK_PREROUTING: u32 = 0;
const HOOK_INPUT: u32 = 1;
const HOOK_FORWARD: u32 = 2;
const HOOK_OUTPUT: u32 = 3;
const HOOK_POSTROUTING: u32 = 4;

/// `NFT_META_*` keys kproxy reads or sets.
const META_MARK: u32 = 3;
const META_IIFNAME: u32 = 6;
const META_NFPROTO: u32 = 15;
const META_L4PROTO: u32 = 16;
/// `NFT_CT_*` keys.
const CT_STATE: u32 = 0;
const CT_STATUS: u32 = 2;
const CT_PROTO_SRC: u32 = 11;
const CT_PROTO_DST: u32 = 12;
const CT_SRC_IP: u32 = 19;
const CT_DST_IP: u32 = 20;
const CT_SRC_IP6: u32 = 21;
const CT_DST_IP6: u32 = 22;
/// `NF_CT_STATE_BIT(IP_CT_NEW)`.
const CT_STATE_NEW: u32 = 8;
/// `IPS_DST_NAT`.
const IPS_DST_NAT: u32 = 0x20;
/// `RTN_UNICAST` / `RTN_LOCAL`.
const RTN_UNICAST: u32 = 1;
const RTN_LOCAL: u32 = 2;
/// The source port the trace's connection uses (any unprivileged port would do).
const SPORT: u16 = 40000;
/// Bound on rules evaluated in one run (kproxy's tables evaluate a few dozen).
const MAX_STEPS: usize = 10_000;
/// Bound on nested jumps (the kernel's own limit is 16).
const MAX_DEPTH: usize = 16;

/// The result of one run.
pub(super) struct Run {
    pub verdict: Verdict,
    pub dnat: Option<SocketAddr>,
    pub masquerade: bool,
    pub service: Option<String>,
    pub path: Vec<String>,
    /// The largest `numgen` modulus met: how many choices there are.
    pub choices: u32,
}

/// How a chain (with what it jumped to) ended.
enum Flow {
    Accept,
    Drop,
    Reject,
}

/// How one rule ended.
enum RuleEnd {
    NoMatch,
    Continue,
    Verdict(i32, Option<String>),
    Reject,
}

struct State<'a> {
    table: &'a TableDump,
    node: &'a [IpAddr],
    family: IpFamily,
    choice: u32,
    regs: [u8; 64],
    src: IpAddr,
    dst: IpAddr,
    dport: u16,
    orig_dst: IpAddr,
    orig_dport: u16,
    l4: u8,
    iif: Option<String>,
    local_origin: bool,
    mark: u32,
    out: Run,
    steps: usize,
}

pub(super) fn run(table: &TableDump, p: &Packet, node: &[IpAddr], choice: u32) -> Run {
    let family = if p.dst.is_ipv4() { IpFamily::V4 } else { IpFamily::V6 };
    let mut s = State {
        table,
        node,
        family,
        choice,
        regs: [0; 64],
        src: p.src,
        dst: p.dst,
        dport: p.dport,
        orig_dst: p.dst,
        orig_dport: p.dport,
        l4: p.protocol.number(),
        iif: if p.local_origin { None } else { p.iif.clone() },
        local_origin: p.local_origin,
        mark: 0,
        out: Run { verdict: Verdict::None, dnat: None, masquerade: false, service: None, path: Vec::new(), choices: 1 },
        steps: 0,
    };
    let from = if p.local_origin { "from this node (output path)" } else { "from outside (prerouting path)" };
    s.out.path.push(format!("packet {} -> {} {} {from}", p.src, SocketAddr::new(p.dst, p.dport), p.protocol.as_str()));
    let end = if p.local_origin {
        s.hook(HOOK_OUTPUT, true).and_then(|_| {
            let local = s.is_local(s.dst);
            s.hook(HOOK_POSTROUTING, true)?;
            if local {
                s.out.path.push("routed to a local address (loopback): prerouting and input without NAT".into());
                s.hook(HOOK_PREROUTING, false)?;
                s.hook(HOOK_INPUT, false)?;
            }
            Ok(())
        })
    } else {
        s.hook(HOOK_PREROUTING, true).and_then(|_| {
            if s.is_local(s.dst) {
                s.out.path.push(format!("routed to this node ({} is local): input", s.dst));
                s.hook(HOOK_INPUT, true)
            } else {
                s.out.path.push(format!("routed on ({} is not local): forward, postrouting", s.dst));
                s.hook(HOOK_FORWARD, true)?;
                s.hook(HOOK_POSTROUTING, true)
            }
        })
    };
    s.out.verdict = match end {
        Err(Flow::Drop) => Verdict::Drop,
        Err(Flow::Reject) => Verdict::Reject,
        _ if s.out.dnat.is_some() => Verdict::Dnat,
        _ => Verdict::None,
    };
    if s.out.verdict != Verdict::Dnat {
        s.out.dnat = None;
    }
    s.out
}

fn hook_name(h: u32) -> &'static str {
    ["prerouting", "input", "forward", "output", "postrouting"].get(h as usize).copied().unwrap_or("?")
}

impl State<'_> {
    fn is_local(&self, ip: IpAddr) -> bool {
        ip.is_loopback() || self.node.contains(&ip)
    }

    /// Every base chain of hook `h`, by priority; `Err` ends the packet.
    fn hook(&mut self, h: u32, nat: bool) -> Result<(), Flow> {
        let mut chains: Vec<(&String, &DumpedChain)> =
            self.table.chains.iter().filter(|(_, c)| c.hook.as_ref().is_some_and(|k| k.hooknum == h)).collect();
        chains.sort_by_key(|(_, c)| c.hook.as_ref().map(|k| k.priority));
        for (name, c) in chains {
            let kind = c.hook.as_ref().map(|k| k.kind.as_str()).unwrap_or_default();
            if kind == "nat" && !nat {
                continue;
            }
            let prio = c.hook.as_ref().map(|k| k.priority).unwrap_or_default();
            self.out.path.push(format!("{} hook: chain {name} ({kind}, priority {prio})", hook_name(h)));
            match self.chain(name) {
                Flow::Accept => {}
                other => return Err(other),
            }
        }
        Ok(())
    }

    fn chain(&mut self, base: &str) -> Flow {
        let mut stack: Vec<(String, usize)> = Vec::new();
        let mut at = (base.to_string(), 0usize);
        loop {
            self.steps += 1;
            if self.steps > MAX_STEPS {
                self.out.path.push(format!("stopped after {MAX_STEPS} rules (a loop?); treated as accept"));
                return Flow::Accept;
            }
            let Some(chain) = self.table.chains.get(&at.0) else {
                self.out.path.push(format!("  chain {} does not exist; treated as accept", at.0));
                return Flow::Accept;
            };
            let Some(rule) = chain.rules.get(at.1) else {
                match stack.pop() {
                    Some(back) => {
                        self.out.path.push(format!("  end of {}: back to {}", at.0, back.0));
                        at = back;
                        continue;
                    }
                    None => {
                        self.out.path.push(format!("  end of {}: accept (policy)", at.0));
                        return Flow::Accept;
                    }
                }
            };
            let label = format!("{}#{}", at.0, at.1 + 1);
            at.1 += 1;
            if let Some(kind) = &rule.foreign {
                self.out.path.push(format!("  {label}: foreign rule (not evaluated): `{kind}` expression"));
                continue;
            }
            let comment = rule.comment.as_ref().map(|c| format!(" ({c})")).unwrap_or_default();
            match self.rule(&rule.exprs, &label) {
                RuleEnd::NoMatch | RuleEnd::Continue => {}
                RuleEnd::Reject => {
                    self.out.path.push(format!("  {label}: reject{comment}"));
                    return Flow::Reject;
                }
                RuleEnd::Verdict(code, target) => match (code, target) {
                    (NF_ACCEPT, _) => {
                        self.out.path.push(format!("  {label}: accept{comment}"));
                        return Flow::Accept;
                    }
                    (NF_DROP, _) => {
                        self.out.path.push(format!("  {label}: drop{comment}"));
                        return Flow::Drop;
                    }
                    (NFT_JUMP, Some(t)) if stack.len() < MAX_DEPTH => {
                        self.out.path.push(format!("  {label}: jump {t}{comment}"));
                        stack.push(at);
                        at = (t, 0);
                    }
                    (NFT_GOTO, Some(t)) => {
                        self.out.path.push(format!("  {label}: goto {t}{comment}"));
                        at = (t, 0);
                    }
                    (NFT_RETURN, _) => match stack.pop() {
                        Some(back) => {
                            self.out.path.push(format!("  {label}: return to {}", back.0));
                            at = back;
                        }
                        None => {
                            self.out.path.push(format!("  {label}: return from a base chain: accept (policy)"));
                            return Flow::Accept;
                        }
                    },
                    (code, t) => self.out.path.push(format!("  {label}: verdict {code} {t:?} not followed")),
                },
            }
        }
    }

    fn reg(&self, r: u32, len: usize) -> Vec<u8> {
        let at = reg_offset(r);
        self.regs[at..(at + len).min(64)].to_vec()
    }

    /// Stores `bytes` and, as the kernel's loads do, zeroes the rest of the last 32-bit word.
    fn set_reg(&mut self, r: u32, bytes: &[u8]) {
        let at = reg_offset(r);
        let end = (at + bytes.len()).min(64);
        self.regs[at..end].copy_from_slice(&bytes[..end - at]);
        let padded = (at + bytes.len().div_ceil(4) * 4).min(64);
        self.regs[end..padded].fill(0);
    }

    fn ip_bytes(ip: IpAddr) -> Vec<u8> {
        match ip {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        }
    }

    /// The header bytes `payload` reads (`base` 1: network, 2: transport).
    fn header(&self, base: u32) -> Vec<u8> {
        match (base, self.family) {
            (1, IpFamily::V4) => {
                let mut h = vec![0u8; 20];
                h[0] = 0x45;
                h[9] = self.l4;
                h[12..16].copy_from_slice(&Self::ip_bytes(self.src));
                h[16..20].copy_from_slice(&Self::ip_bytes(self.dst));
                h
            }
            (1, IpFamily::V6) => {
                let mut h = vec![0u8; 40];
                h[0] = 0x60;
                h[6] = self.l4;
                h[8..24].copy_from_slice(&Self::ip_bytes(self.src));
                h[24..40].copy_from_slice(&Self::ip_bytes(self.dst));
                h
            }
            (2, _) => {
                let mut h = vec![0u8; 8];
                h[0..2].copy_from_slice(&SPORT.to_be_bytes());
                h[2..4].copy_from_slice(&self.dport.to_be_bytes());
                h
            }
            _ => Vec::new(),
        }
    }

    fn rule(&mut self, exprs: &[Expr], label: &str) -> RuleEnd {
        for e in exprs {
            match e {
                Expr::Payload { base, offset, len, dreg } => {
                    let h = self.header(*base);
                    let Some(b) = h.get(*offset as usize..(*offset + *len) as usize) else { return RuleEnd::NoMatch };
                    let b = b.to_vec();
                    self.set_reg(*dreg, &b);
                }
                Expr::Meta { key, dreg } => {
                    let v = match *key {
                        META_L4PROTO => vec![self.l4],
                        META_NFPROTO => vec![if self.family == IpFamily::V4 { 2 } else { 10 }],
                        META_MARK => self.mark.to_ne_bytes().to_vec(),
                        META_IIFNAME => match &self.iif {
                            Some(n) => {
                                let mut b = vec![0u8; 16];
                                let l = n.len().min(15);
                                b[..l].copy_from_slice(&n.as_bytes()[..l]);
                                b
                            }
                            // No input interface (output path, or not given): the kernel's
                            // meta expression breaks, the rule does not match.
                            None => {
                                let why = if self.local_origin { "no input interface on the output path" } else { "input interface not given (--iif)" };
                                self.out.path.push(format!("  {label}: iifname: {why}: no match"));
                                return RuleEnd::NoMatch;
                            }
                        },
                        k => {
                            self.out.path.push(format!("  {label}: meta key {k} not modelled: no match"));
                            return RuleEnd::NoMatch;
                        }
                    };
                    self.set_reg(*dreg, &v);
                }
                Expr::MetaSet { key, sreg } => {
                    if *key == META_MARK {
                        let b = self.reg(*sreg, 4);
                        self.mark = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
                        self.out.path.push(format!("  {label}: mark set {:#x}", self.mark));
                    }
                }
                Expr::Ct { key, dir, dreg } => {
                    let reply = *dir == Some(1);
                    let dnat = self.out.dnat.is_some();
                    let v = match *key {
                        CT_STATE => CT_STATE_NEW.to_ne_bytes().to_vec(),
                        CT_STATUS => (if dnat { IPS_DST_NAT } else { 0 }).to_ne_bytes().to_vec(),
                        CT_SRC_IP | CT_SRC_IP6 => Self::ip_bytes(if reply { self.dst } else { self.src }),
                        CT_DST_IP | CT_DST_IP6 => Self::ip_bytes(if reply { self.src } else { self.orig_dst }),
                        CT_PROTO_SRC => (if reply { self.dport } else { SPORT }).to_be_bytes().to_vec(),
                        CT_PROTO_DST => (if reply { SPORT } else { self.orig_dport }).to_be_bytes().to_vec(),
                        k => {
                            self.out.path.push(format!("  {label}: ct key {k} not modelled: no match"));
                            return RuleEnd::NoMatch;
                        }
                    };
                    self.set_reg(*dreg, &v);
                }
                Expr::Cmp { op, sreg, data } => {
                    let v = self.reg(*sreg, data.len());
                    let ord = v.as_slice().cmp(data.as_slice());
                    let ok = match op {
                        0 => ord.is_eq(),
                        1 => ord.is_ne(),
                        2 => ord.is_lt(),
                        3 => ord.is_le(),
                        4 => ord.is_gt(),
                        _ => ord.is_ge(),
                    };
                    if !ok {
                        return RuleEnd::NoMatch;
                    }
                }
                Expr::Bitwise { sreg, dreg, mask, xor } => {
                    let v: Vec<u8> = self.reg(*sreg, mask.len()).iter().zip(mask).zip(xor).map(|((v, m), x)| (v & m) ^ x).collect();
                    self.set_reg(*dreg, &v);
                }
                Expr::Lookup { sreg, set, dreg, invert } => {
                    if let Some(end) = self.lookup(*sreg, set.name(), *dreg, *invert, label) {
                        return end;
                    }
                }
                Expr::LookupNamed { sreg, name, dreg, invert } => {
                    if let Some(end) = self.lookup(*sreg, name, *dreg, *invert, label) {
                        return end;
                    }
                }
                Expr::Numgen { dreg, modulus } => {
                    let m = (*modulus).max(1);
                    self.out.choices = self.out.choices.max(m);
                    let v = self.choice % m;
                    self.out.path.push(format!("  {label}: random choice {v} of {m}"));
                    self.set_reg(*dreg, &v.to_ne_bytes());
                }
                Expr::Fib { flags, dreg } => {
                    let ip = if flags & 1 != 0 { self.src } else { self.dst };
                    let t = if self.is_local(ip) { RTN_LOCAL } else { RTN_UNICAST };
                    self.set_reg(*dreg, &t.to_ne_bytes());
                }
                Expr::Verdict { code, chain } => {
                    return match *code {
                        NFT_CONTINUE => RuleEnd::Continue,
                        NFT_BREAK => RuleEnd::NoMatch,
                        c => RuleEnd::Verdict(c, chain.clone()),
                    };
                }
                Expr::Dnat { addr, proto, .. } => {
                    let a = self.reg(*addr, if self.family == IpFamily::V4 { 4 } else { 16 });
                    let ip = match self.family {
                        IpFamily::V4 => IpAddr::from(<[u8; 4]>::try_from(a.as_slice()).unwrap_or_default()),
                        IpFamily::V6 => IpAddr::from(<[u8; 16]>::try_from(a.as_slice()).unwrap_or_default()),
                    };
                    let p = self.reg(*proto, 2);
                    let port = u16::from_be_bytes([p[0], p[1]]);
                    let to = SocketAddr::new(ip, port);
                    self.out.path.push(format!("  {label}: dnat to {to}"));
                    self.out.dnat = Some(to);
                    self.dst = ip;
                    self.dport = port;
                    return RuleEnd::Verdict(NF_ACCEPT, None);
                }
                Expr::Masquerade => {
                    self.out.path.push(format!("  {label}: masquerade (source rewritten to the outgoing interface's address)"));
                    self.out.masquerade = true;
                    return RuleEnd::Verdict(NF_ACCEPT, None);
                }
                Expr::Reject { .. } => return RuleEnd::Reject,
                Expr::DynsetUpdate { set, .. } => {
                    self.out.path.push(format!("  {label}: records the choice in @{} (session affinity)", set.name()));
                }
            }
        }
        RuleEnd::Continue
    }

    /// A lookup; `Some` ends the rule (no match, or a verdict-map verdict).
    fn lookup(&mut self, sreg: u32, name: &str, dreg: Option<u32>, invert: bool, label: &str) -> Option<RuleEnd> {
        let Some(set) = self.table.sets.get(name) else {
            self.out.path.push(format!("  {label}: set @{name} does not exist: no match"));
            return Some(RuleEnd::NoMatch);
        };
        let key = self.reg(sreg, set.key_len as usize);
        let found = if set.flags & SET_TIMEOUT != 0 && dreg.is_some() {
            self.out.path.push(format!("  {label}: @{name} (dynamic, session affinity) not consulted: a new client has no entry"));
            None
        } else {
            set.find(&key)
        };
        match (dreg, found) {
            (None, f) => {
                if f.is_some() == invert {
                    return Some(RuleEnd::NoMatch);
                }
                if let Some(c) = f.and_then(element_comment) {
                    self.note_service(&c);
                }
                None
            }
            (Some(_), None) => {
                if set.is_verdict_map() {
                    self.out.path.push(format!("  {label}: vmap @{name}: no element"));
                }
                Some(RuleEnd::NoMatch)
            }
            (Some(d), Some(e)) => {
                let comment = element_comment(e);
                if let Some(c) = &comment {
                    self.note_service(c);
                }
                let why = comment.map(|c| format!(" [{c}]")).unwrap_or_default();
                if let Some((code, chain)) = element_verdict(e) {
                    self.out.path.push(format!("  {label}: vmap @{name} matched{why}"));
                    return Some(RuleEnd::Verdict(code, chain.map(str::to_string)));
                }
                if let RawData::Bytes(b) = &e.data {
                    self.out.path.push(format!("  {label}: map @{name} matched{why}"));
                    let b = b.clone();
                    self.set_reg(d, &b);
                }
                None
            }
        }
    }

    /// The first `ns/name:port` comment met names the service.
    fn note_service(&mut self, c: &str) {
        if self.out.service.is_none() && c.contains('/') && c.contains(':') {
            self.out.service = Some(c.to_string());
        }
    }
}

/// Byte offset of a register in the data part of the register file: 1-4 are 16-byte
/// registers, 8-23 the 4-byte ones over the same bytes.
fn reg_offset(r: u32) -> usize {
    match r {
        1..=4 => (r as usize - 1) * 16,
        8..=23 => (r as usize - 8) * 4,
        _ => 0,
    }
}

