//! [`Match`]: the rule builder of the IPVS-mode table, for what kproxy-nft's `RuleBuilder`
//! does not offer (fixed addresses and ports, prefix matches, DNAT through a named map).

use std::net::IpAddr;

use ipnet::IpNet;
use kproxy_core::model::{IpFamily, Protocol};
use kproxy_nft::lowlevel::{Expr, Field, Rule, RuleBuilder, CMP_EQ, CMP_NEQ, NETWORK, TRANSPORT};

const REG: u32 = 1;
/// `NFT_REG_3`: free while a DNAT target sits in registers 1 and 2 / 9.
const REG_MARK: u32 = 3;

pub use kproxy_nft::lowlevel::{NF_ACCEPT, NF_DROP};

/// Builds one rule, statement by statement.
pub struct Match {
    family: IpFamily,
    exprs: Vec<Expr>,
    text: Vec<String>,
}

/// `ip` / `ip6`.
pub fn word(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "ip",
        IpFamily::V6 => "ip6",
    }
}

fn octets(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// (offset, length) of the source or destination address in the network header.
fn addr_field(family: IpFamily, source: bool) -> (u32, u32) {
    match (family, source) {
        (IpFamily::V4, true) => (12, 4),
        (IpFamily::V4, false) => (16, 4),
        (IpFamily::V6, true) => (8, 16),
        (IpFamily::V6, false) => (24, 16),
    }
}

impl Match {
    /// `payload load` of LEN bytes at BASE + OFFSET into `dreg`, then `bitwise` with MASK/XOR
    /// (`None`: no bitwise).
    fn load(
        &mut self,
        (base, offset, len): (u32, u32, u32),
        dreg: u32,
        bits: Option<(Vec<u8>, Vec<u8>)>,
    ) {
        self.exprs.push(Expr::Payload {
            base,
            offset,
            len,
            dreg,
        });
        if let Some((mask, xor)) = bits {
            self.exprs.push(Expr::Bitwise {
                sreg: dreg,
                dreg,
                mask,
                xor,
            });
        }
    }

    /// An empty rule of `family`.
    pub fn new(family: IpFamily) -> Match {
        Match {
            family,
            exprs: Vec::new(),
            text: Vec::new(),
        }
    }

    /// `ip saddr IP` (`source`) or `ip daddr IP`.
    pub fn addr(mut self, source: bool, ip: &IpAddr) -> Match {
        let (offset, len) = addr_field(self.family, source);
        self.load((NETWORK, offset, len), REG, None);
        self.exprs.push(Expr::Cmp {
            op: CMP_EQ,
            sreg: REG,
            data: octets(ip),
        });
        self.text.push(format!(
            "{} {} {ip}",
            word(self.family),
            if source { "saddr" } else { "daddr" }
        ));
        self
    }

    /// `ip saddr NET` (`inside`) or `ip saddr != NET`.
    pub fn saddr_net(mut self, net: &IpNet, inside: bool) -> Match {
        let (offset, len) = addr_field(self.family, true);
        let bits = (octets(&net.netmask()), vec![0; len as usize]);
        self.load((NETWORK, offset, len), REG, Some(bits));
        self.exprs.push(Expr::Cmp {
            op: if inside { CMP_EQ } else { CMP_NEQ },
            sreg: REG,
            data: octets(&net.network()),
        });
        let op = if inside { "" } else { "!= " };
        self.text
            .push(format!("{} saddr {op}{net}", word(self.family)));
        self
    }

    /// `meta l4proto P th dport N`.
    pub fn dport(mut self, proto: Protocol, port: u16) -> Match {
        // The protocol part exactly as kproxy-nft's builder writes it.
        let l4 = RuleBuilder::new(self.family, "").l4proto(proto).build();
        self.exprs.extend(l4.exprs);
        self.load((TRANSPORT, 2, 2), REG, None);
        self.exprs.push(Expr::Cmp {
            op: CMP_EQ,
            sreg: REG,
            data: port.to_be_bytes().to_vec(),
        });
        self.text.push(format!("{l} th dport {port}", l = l4.text));
        self
    }

    /// Append what a kproxy-nft builder produced (its chain is ignored).
    pub fn then(mut self, tail: RuleBuilder) -> Match {
        let tail = tail.build();
        self.exprs.extend(tail.exprs);
        self.text.push(tail.text);
        self
    }

    /// `meta mark set meta mark | MARK`.
    pub fn mark(self, mark: u32) -> Match {
        let family = self.family;
        self.then(RuleBuilder::new(family, "").mark_set(mark))
    }

    /// The finished rule.
    pub fn rule(self, chain: &str, comment: String) -> Rule {
        Rule {
            chain: chain.into(),
            text: self.text.join(" "),
            exprs: self.exprs,
            comment: Some(comment),
        }
    }

    /// Ends with verdict `code` (`word` for the text).
    pub fn verdict(mut self, chain: &str, code: i32, word: &str, comment: String) -> Rule {
        self.exprs.push(Expr::Verdict { code, chain: None });
        self.text.push(word.to_string());
        self.rule(chain, comment)
    }

    /// Ends with `masquerade fully-random`.
    pub fn masquerade(mut self, chain: &str, comment: String) -> Rule {
        self.exprs.push(Expr::Masquerade);
        self.text.push("masquerade fully-random".into());
        self.rule(chain, comment)
    }

    /// `dnat to FIELDS map @NAME`: the map yields `addr . port`; with `mark`, the packet is
    /// marked once the lookup matched (a map cannot be looked up as a plain set on every
    /// kernel, so the mark comes between the lookup and the DNAT, in register 3).
    pub fn dnat_map(mut self, key: &[Field], name: &str, mark: Option<u32>) -> Match {
        let mut r = RuleBuilder::new(self.family, "")
            .in_named_set(key, name, false)
            .build();
        // The same lookup, with the value loaded into register 1.
        if let Some(Expr::LookupNamed { dreg, .. }) = r.exprs.last_mut() {
            *dreg = Some(REG);
        }
        self.exprs.extend(r.exprs);
        if let Some(mark) = mark {
            let set = RuleBuilder::new(self.family, "").mark_set(mark).build();
            self.exprs.extend(set.exprs.into_iter().map(|e| match e {
                Expr::Meta { key, .. } => Expr::Meta {
                    key,
                    dreg: REG_MARK,
                },
                Expr::Bitwise { mask, xor, .. } => Expr::Bitwise {
                    sreg: REG_MARK,
                    dreg: REG_MARK,
                    mask,
                    xor,
                },
                Expr::MetaSet { key, .. } => Expr::MetaSet {
                    key,
                    sreg: REG_MARK,
                },
                other => other,
            }));
            self.text
                .push(format!("meta mark set meta mark | {mark:#x}"));
        }
        // The port follows the address: 32-bit register 9 after 4 bytes, 16-byte register
        // 2 after 16 (kproxy-nft's register numbering).
        let (nfproto, port_reg) = match self.family {
            IpFamily::V4 => (2, 9),
            IpFamily::V6 => (10, 2),
        };
        self.exprs.push(Expr::Dnat {
            family: nfproto,
            addr: REG,
            proto: port_reg,
        });
        let fields = r.text.trim_end_matches(&format!(" @{name}")).to_string();
        self.text.push(format!(
            "dnat {} to {fields} map @{name}",
            word(self.family)
        ));
        self
    }
}
