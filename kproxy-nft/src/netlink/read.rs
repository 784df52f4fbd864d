//! Reading a table back (`NFT_MSG_GETCHAIN`, `NFT_MSG_GETRULE`, `NFT_MSG_GETSET` dumps) for
//! `kproxy trace`: chains, rules decoded into [`Expr`] for the expression kinds kproxy's own
//! renderer emits (any other kind makes the rule "foreign"), and set shapes. Pure: requests
//! out, answer messages in; the socket is [`super::Socket::read_table`].

use kproxy_netlink::{Attr, Attrs, MsgBuilder, NLM_F_DUMP, NLM_F_REQUEST};

use crate::stmt::Expr;
use crate::trace::table::{udata_comment, DumpedChain, DumpedHook, DumpedRule, DumpedSet, TableDump};
use crate::tx::TableFamily;

use super::wire::{NFNL_SUBSYS_NFTABLES, NFTA_DATA_VALUE, NFTA_DATA_VERDICT, NFTA_VERDICT_CHAIN, NFTA_VERDICT_CODE};

const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_NEWSET: u16 = 9;
const NFT_MSG_GETSET: u16 = 10;

/// What a dump lists.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Objects {
    /// Chains.
    Chains,
    /// Rules.
    Rules,
    /// Sets.
    Sets,
}

impl Objects {
    /// For messages.
    pub(crate) fn word(self) -> &'static str {
        match self {
            Objects::Chains => "chains",
            Objects::Rules => "rules",
            Objects::Sets => "sets",
        }
    }
}

/// The dump request for `what` of `table` (attribute 1 is the table in all three).
pub(super) fn request(what: Objects, family: TableFamily, table: &str) -> Vec<u8> {
    let msg = match what {
        Objects::Chains => NFT_MSG_GETCHAIN,
        Objects::Rules => NFT_MSG_GETRULE,
        Objects::Sets => NFT_MSG_GETSET,
    };
    let mut b = MsgBuilder::new((NFNL_SUBSYS_NFTABLES << 8) | msg, NLM_F_REQUEST | NLM_F_DUMP).header(&[family.number() as u8, 0, 0, 0]);
    b.str(1, table);
    b.finish()
}

/// Adds what one answer message (type without the subsystem, payload after the netlink
/// header) says about `table` to `out`. Rules must be parsed after chains.
pub(super) fn parse(msg_type: u16, payload: &[u8], table: &str, out: &mut TableDump) {
    let Some(attrs) = payload.get(4..) else { return };
    let of_table = Attrs::new(attrs).any(|a| a.kind == 1 && a.str() == Some(table));
    if !of_table {
        return;
    }
    match msg_type & 0xff {
        NFT_MSG_NEWCHAIN => {
            let (name, chain) = chain(attrs);
            if let Some(name) = name {
                out.chains.insert(name, chain);
            }
        }
        NFT_MSG_NEWRULE => {
            let (name, rule) = rule(attrs);
            if let Some(name) = name {
                out.chains.entry(name).or_default().rules.push(rule);
            }
        }
        NFT_MSG_NEWSET => {
            let (name, set) = set(attrs);
            if let Some(name) = name {
                out.sets.insert(name, set);
            }
        }
        _ => {}
    }
}

fn chain(attrs: &[u8]) -> (Option<String>, DumpedChain) {
    let (mut name, mut kind, mut hook) = (None, None, None);
    for a in Attrs::new(attrs) {
        match a.kind {
            3 => name = a.str().map(str::to_string),
            7 => kind = a.str().map(str::to_string),
            4 => {
                let (mut num, mut prio) = (0, 0);
                for h in a.nested() {
                    match h.kind {
                        1 => num = h.be32().unwrap_or(0),
                        2 => prio = h.be32().unwrap_or(0) as i32,
                        _ => {}
                    }
                }
                hook = Some((num, prio));
            }
            _ => {}
        }
    }
    let hook = hook.map(|(hooknum, priority)| DumpedHook { kind: kind.unwrap_or_default(), hooknum, priority });
    (name, DumpedChain { hook, rules: Vec::new() })
}

fn rule(attrs: &[u8]) -> (Option<String>, DumpedRule) {
    let mut r = DumpedRule { exprs: Vec::new(), foreign: None, comment: None, handle: 0 };
    let mut chain = None;
    for a in Attrs::new(attrs) {
        match a.kind {
            2 => chain = a.str().map(str::to_string),
            3 => r.handle = a.be64().unwrap_or(0),
            7 => r.comment = udata_comment(a.payload),
            4 => {
                for elem in a.nested() {
                    match expr(&elem) {
                        Ok(e) => r.exprs.push(e),
                        Err(kind) => {
                            r.foreign.get_or_insert(kind);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    if r.foreign.is_some() {
        r.exprs.clear();
    }
    (chain, r)
}

fn set(attrs: &[u8]) -> (Option<String>, DumpedSet) {
    let mut s = DumpedSet::default();
    let mut name = None;
    for a in Attrs::new(attrs) {
        match a.kind {
            2 => name = a.str().map(str::to_string),
            3 => s.flags = a.be32().unwrap_or(0),
            5 => s.key_len = a.be32().unwrap_or(0),
            6 => s.data_type = a.be32(),
            _ => {}
        }
    }
    (name, s)
}

/// The bytes of an `NFTA_DATA_VALUE` nest.
fn value(a: &Attr<'_>) -> Vec<u8> {
    a.nested().find(|d| d.kind == NFTA_DATA_VALUE).map(|d| d.payload.to_vec()).unwrap_or_default()
}

/// One `NFTA_LIST_ELEM` expression, or the kind it is when kproxy never emits it (or not
/// with these attributes).
fn expr(elem: &Attr<'_>) -> Result<Expr, String> {
    let name = elem.nested().find(|a| a.kind == 1).and_then(|a| a.str()).unwrap_or("?").to_string();
    let data: Vec<Attr<'_>> = elem.nested().find(|a| a.kind == 2).map(|d| d.nested().collect()).unwrap_or_default();
    let u32_of = |k: u16| data.iter().find(|a| a.kind == k).and_then(|a| a.be32());
    let has = |k: u16| data.iter().any(|a| a.kind == k);
    let attr = |k: u16| data.iter().find(|a| a.kind == k);
    let foreign = || name.clone();
    let e = match name.as_str() {
        "payload" if !has(5) => Expr::Payload {
            dreg: u32_of(1).ok_or_else(foreign)?,
            base: u32_of(2).ok_or_else(foreign)?,
            offset: u32_of(3).ok_or_else(foreign)?,
            len: u32_of(4).ok_or_else(foreign)?,
        },
        "meta" => match (u32_of(1), u32_of(3)) {
            (Some(dreg), None) => Expr::Meta { key: u32_of(2).ok_or_else(foreign)?, dreg },
            (None, Some(sreg)) => Expr::MetaSet { key: u32_of(2).ok_or_else(foreign)?, sreg },
            _ => return Err(foreign()),
        },
        "ct" if !has(4) => Expr::Ct {
            key: u32_of(2).ok_or_else(foreign)?,
            dir: attr(3).and_then(|a| a.u8()),
            dreg: u32_of(1).ok_or_else(foreign)?,
        },
        "cmp" => Expr::Cmp {
            sreg: u32_of(1).ok_or_else(foreign)?,
            op: u32_of(2).ok_or_else(foreign)?,
            data: attr(3).map(value).ok_or_else(foreign)?,
        },
        // NFT_BITWISE_BOOL (op 0, or absent on older kernels) only.
        "bitwise" if u32_of(6).unwrap_or(0) == 0 => Expr::Bitwise {
            sreg: u32_of(1).ok_or_else(foreign)?,
            dreg: u32_of(2).ok_or_else(foreign)?,
            mask: attr(4).map(value).ok_or_else(foreign)?,
            xor: attr(5).map(value).ok_or_else(foreign)?,
        },
        "lookup" => Expr::LookupNamed {
            name: attr(1).and_then(|a| a.str()).ok_or_else(foreign)?.to_string(),
            sreg: u32_of(2).ok_or_else(foreign)?,
            dreg: u32_of(3),
            invert: u32_of(5).unwrap_or(0) & 1 != 0,
        },
        // NFT_NG_RANDOM, offset 0 only.
        "numgen" if u32_of(3) == Some(1) && u32_of(4).unwrap_or(0) == 0 => {
            Expr::Numgen { dreg: u32_of(1).ok_or_else(foreign)?, modulus: u32_of(2).ok_or_else(foreign)? }
        }
        // NFT_FIB_RESULT_ADDRTYPE only.
        "fib" if u32_of(2) == Some(3) => Expr::Fib { dreg: u32_of(1).ok_or_else(foreign)?, flags: u32_of(3).ok_or_else(foreign)? },
        "immediate" if u32_of(1) == Some(0) => {
            let v = attr(2).and_then(|d| d.nested().find(|v| v.kind == NFTA_DATA_VERDICT)).ok_or_else(foreign)?;
            let mut code = None;
            let mut chain = None;
            for x in v.nested() {
                match x.kind {
                    NFTA_VERDICT_CODE => code = x.be32().map(|c| c as i32),
                    NFTA_VERDICT_CHAIN => chain = x.str().map(str::to_string),
                    _ => {}
                }
            }
            Expr::Verdict { code: code.ok_or_else(foreign)?, chain }
        }
        // DNAT to one address and port: the kernel lists the range's max registers as the
        // min ones when none were given; a real range is not kproxy's.
        "nat" if u32_of(1) == Some(1) && u32_of(4).is_none_or(|r| Some(r) == u32_of(3)) && u32_of(6).is_none_or(|r| Some(r) == u32_of(5)) => Expr::Dnat {
            family: u32_of(2).ok_or_else(foreign)?,
            addr: u32_of(3).ok_or_else(foreign)?,
            proto: u32_of(5).ok_or_else(foreign)?,
        },
        "masq" if !has(2) => Expr::Masquerade,
        // NFT_REJECT_ICMP_UNREACH.
        "reject" if u32_of(1) == Some(0) => Expr::Reject { code: attr(2).and_then(|a| a.u8()).ok_or_else(foreign)? },
        // NFT_DYNSET_OP_UPDATE on one of kproxy's maps.
        "dynset" if u32_of(3) == Some(1) && !has(7) && !has(9) => {
            let set_name = attr(1).and_then(|a| a.str()).ok_or_else(foreign)?;
            let set = crate::plan::SetId::ALL.into_iter().find(|s| s.name() == set_name).ok_or_else(foreign)?;
            Expr::DynsetUpdate {
                key: u32_of(4).ok_or_else(foreign)?,
                data: u32_of(5).ok_or_else(foreign)?,
                set,
                timeout_ms: attr(6).and_then(|a| a.be64()).unwrap_or(0),
            }
        }
        _ => return Err(foreign()),
    };
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stmt::RuleBuilder;
    use crate::tx::Transaction;
    use kproxy_core::model::IpFamily;

    /// A kernel rule dump carries the same attributes as the rule kproxy adds: decoding
    /// kproxy's own encoded rules gives back their expressions.
    #[test]
    fn decodes_what_the_encoder_writes() {
        let settings = kproxy_core::model::ProxySettings::default();
        for family in [IpFamily::V4, IpFamily::V6] {
            let sk = crate::skeleton::skeleton(family, &settings);
            let mut tx = Transaction::new();
            let tf = if family == IpFamily::V4 { TableFamily::Ip } else { TableFamily::Ip6 };
            let mut rules = sk.rules.clone();
            rules.push(RuleBuilder::new(family, "x").masquerade().build());
            for r in &rules {
                tx.add_rule(tf, "kproxy", r.clone());
            }
            let bytes = super::super::batch_bytes(&tx, usize::MAX);
            let mut out = TableDump::default();
            for m in kproxy_netlink::Messages::new(&bytes) {
                parse(m.msg_type, m.payload, "kproxy", &mut out);
            }
            let got: Vec<&DumpedRule> = out.chains.values().flat_map(|c| &c.rules).collect();
            assert_eq!(got.len(), rules.len());
            for r in &rules {
                let decoded = &out.chains[&r.chain].rules;
                let want: Vec<Expr> = r
                    .exprs
                    .iter()
                    .map(|e| match e {
                        Expr::Lookup { sreg, set, dreg, invert } => {
                            Expr::LookupNamed { sreg: *sreg, name: set.name().into(), dreg: *dreg, invert: *invert }
                        }
                        other => other.clone(),
                    })
                    .collect();
                assert!(decoded.iter().any(|d| d.exprs == want && d.foreign.is_none() && d.comment == r.comment), "{}: {r:?}\n{decoded:?}", r.chain);
            }
        }
    }
}
