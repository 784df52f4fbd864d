//! Rules built once, printed two ways: every builder method appends both the nft text of a
//! statement and the kernel expressions nft 1.0.6 compiles it to (`nft --debug=netlink`), so
//! the script path and the netlink path cannot drift apart.

use kproxy_core::model::{IpFamily, Protocol};

use crate::plan::{ChainRef, SetId};

pub use crate::plan::{addr_len, ip_word};

/// Kernel expressions (the subset kproxy uses), with the attribute values libnftnl expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `payload load LEN @ BASE + OFFSET => DREG`.
    Payload {
        /// `NFT_PAYLOAD_NETWORK_HEADER` (1) or `NFT_PAYLOAD_TRANSPORT_HEADER` (2).
        base: u32,
        /// Offset in the header.
        offset: u32,
        /// Bytes.
        len: u32,
        /// Destination register.
        dreg: u32,
    },
    /// `meta load KEY => DREG`.
    Meta {
        /// `NFT_META_*`.
        key: u32,
        /// Destination register.
        dreg: u32,
    },
    /// `meta set KEY with SREG`.
    MetaSet {
        /// `NFT_META_*`.
        key: u32,
        /// Source register.
        sreg: u32,
    },
    /// `ct load KEY => DREG [, dir original]`.
    Ct {
        /// `NFT_CT_*`.
        key: u32,
        /// Direction (0 original) when the key needs one.
        dir: Option<u8>,
        /// Destination register.
        dreg: u32,
    },
    /// `cmp OP SREG DATA`.
    Cmp {
        /// `NFT_CMP_EQ` (0) or `NFT_CMP_NEQ` (1).
        op: u32,
        /// Source register.
        sreg: u32,
        /// Compared bytes.
        data: Vec<u8>,
    },
    /// `bitwise DREG = (SREG & MASK) ^ XOR`.
    Bitwise {
        /// Source register.
        sreg: u32,
        /// Destination register.
        dreg: u32,
        /// Mask bytes (the length is theirs).
        mask: Vec<u8>,
        /// Xor bytes.
        xor: Vec<u8>,
    },
    /// `lookup SREG set SET [dreg DREG] [inverted]`.
    Lookup {
        /// Source register.
        sreg: u32,
        /// Set.
        set: SetId,
        /// Destination register (maps: 0 for verdicts).
        dreg: Option<u32>,
        /// `!=`.
        invert: bool,
    },
    /// `lookup SREG set NAME [dreg DREG] [inverted]` on a set or map named by the caller:
    /// for embedders (e.g. kproxy-ipvs) that create their own sets with
    /// [`crate::lowlevel::Transaction::add_set_raw`] in their own table.
    LookupNamed {
        /// Source register.
        sreg: u32,
        /// Set name, as given to `add_set_raw` (same table as the rule).
        name: String,
        /// Destination register (maps: 0 for verdicts).
        dreg: Option<u32>,
        /// `!=`.
        invert: bool,
    },
    /// `numgen DREG = random mod MODULUS`.
    Numgen {
        /// Destination register.
        dreg: u32,
        /// Modulus.
        modulus: u32,
    },
    /// `fib ADDR type => DREG`.
    Fib {
        /// `NFTA_FIB_F_SADDR` (1) or `NFTA_FIB_F_DADDR` (2).
        flags: u32,
        /// Destination register.
        dreg: u32,
    },
    /// `immediate reg 0 VERDICT [CHAIN]`.
    Verdict {
        /// `NF_DROP` (0), `NFT_JUMP` (-3), `NFT_GOTO` (-4), `NFT_RETURN` (-5).
        code: i32,
        /// Target chain of jump/goto.
        chain: Option<String>,
    },
    /// `nat dnat FAMILY addr_min ADDR proto_min PROTO`.
    Dnat {
        /// `NFPROTO_IPV4` (2) / `NFPROTO_IPV6` (10).
        family: u32,
        /// Register holding the address.
        addr: u32,
        /// Register holding the port.
        proto: u32,
    },
    /// `masq flags 0x10` (fully-random).
    Masquerade,
    /// `reject type 0 code CODE` (ICMP port unreachable).
    Reject {
        /// ICMP / ICMPv6 code.
        code: u8,
    },
    /// `dynset update reg_key KEY set SET sreg_data DATA timeout MS`.
    DynsetUpdate {
        /// Key register.
        key: u32,
        /// Data register.
        data: u32,
        /// Set.
        set: SetId,
        /// Timeout in milliseconds.
        timeout_ms: u64,
    },
}

/// One operand of a concatenation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `ip saddr`.
    Saddr,
    /// `ip daddr`.
    Daddr,
    /// `meta l4proto`.
    L4proto,
    /// `th dport`.
    Dport,
    /// `ct original ip daddr`.
    CtOrigDaddr,
    /// `ct original proto-dst`.
    CtOrigProtoDst,
    /// `ct reply proto-src` (after DNAT: the endpoint's port).
    CtReplyProtoSrc,
    /// `numgen random mod N`.
    Numgen(u32),
}

/// `NFT_META_MARK`.
pub const NFT_META_MARK: u32 = 3;
/// `NFT_META_IIFNAME`.
pub const NFT_META_IIFNAME: u32 = 6;
/// `NFT_META_L4PROTO`.
pub const NFT_META_L4PROTO: u32 = 16;
const NFT_CT_STATE: u32 = 0;
const NFT_CT_STATUS: u32 = 2;
const NFT_CT_PROTO_SRC: u32 = 11;
const NFT_CT_PROTO_DST: u32 = 12;
const NFT_CT_DST_IP: u32 = 20;
const NFT_CT_DST_IP6: u32 = 22;
/// `NFT_PAYLOAD_NETWORK_HEADER` (payload base).
pub const NETWORK: u32 = 1;
/// `NFT_PAYLOAD_TRANSPORT_HEADER` (payload base).
pub const TRANSPORT: u32 = 2;
/// `NFT_CMP_EQ`.
pub const CMP_EQ: u32 = 0;
/// `NFT_CMP_NEQ`.
pub const CMP_NEQ: u32 = 1;

/// The register nft names for byte offset `word * 4` of the register file: a 128-bit
/// register where aligned, else a 32-bit one.
fn reg(word: u32) -> u32 {
    if word % 4 == 0 {
        1 + word / 4
    } else {
        8 + word
    }
}

impl Field {
    fn text(self, family: IpFamily) -> String {
        let ip = ip_word(family);
        match self {
            Field::Saddr => format!("{ip} saddr"),
            Field::Daddr => format!("{ip} daddr"),
            Field::L4proto => "meta l4proto".into(),
            Field::Dport => "th dport".into(),
            Field::CtOrigDaddr => format!("ct original {ip} daddr"),
            Field::CtOrigProtoDst => "ct original proto-dst".into(),
            Field::CtReplyProtoSrc => "ct reply proto-src".into(),
            Field::Numgen(n) => format!("numgen random mod {n}"),
        }
    }

    fn len(self, family: IpFamily) -> u32 {
        match self {
            Field::Saddr | Field::Daddr | Field::CtOrigDaddr => addr_len(family),
            Field::L4proto => 1,
            Field::Dport | Field::CtOrigProtoDst | Field::CtReplyProtoSrc => 2,
            Field::Numgen(_) => 4,
        }
    }

    fn load(self, family: IpFamily, dreg: u32) -> Expr {
        let (src, dst) = match family {
            IpFamily::V4 => (12, 16),
            IpFamily::V6 => (8, 24),
        };
        let len = self.len(family);
        match self {
            Field::Saddr => Expr::Payload { base: NETWORK, offset: src, len, dreg },
            Field::Daddr => Expr::Payload { base: NETWORK, offset: dst, len, dreg },
            Field::L4proto => Expr::Meta { key: NFT_META_L4PROTO, dreg },
            Field::Dport => Expr::Payload { base: TRANSPORT, offset: 2, len, dreg },
            Field::CtOrigDaddr => Expr::Ct {
                key: if family == IpFamily::V4 { NFT_CT_DST_IP } else { NFT_CT_DST_IP6 },
                dir: Some(0),
                dreg,
            },
            Field::CtOrigProtoDst => Expr::Ct { key: NFT_CT_PROTO_DST, dir: Some(0), dreg },
            Field::CtReplyProtoSrc => Expr::Ct { key: NFT_CT_PROTO_SRC, dir: Some(1), dreg },
            Field::Numgen(modulus) => Expr::Numgen { dreg, modulus },
        }
    }
}

/// A rule: its chain, its nft text and its kernel expressions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Chain name.
    pub chain: String,
    /// nft statement text (without `add rule FAMILY TABLE CHAIN`).
    pub text: String,
    /// Kernel expressions.
    pub exprs: Vec<Expr>,
    /// Rule comment (`comment "..."`), stored in the rule's userdata.
    pub comment: Option<String>,
}

impl Rule {
    /// Whether nft 1.0.6 can compile the rule's text back to these expressions. It cannot
    /// for a dynset whose key is longer than 16 bytes (the IPv6 affinity updates): its
    /// register allocator gives a dynset key one 128-bit register and asserts (`dreg <
    /// ctx->reg_low`). The kernel accepts such rules and nft lists them; only `nft -f` of their
    /// text fails, so the script prints them as comments (see README, Limits).
    pub fn nft_can_compile(&self) -> bool {
        self.exprs.iter().all(|e| match e {
            Expr::DynsetUpdate { data, .. } => {
                // The data follows the key: its first word is the key's length in words.
                let word = if *data >= 8 { *data - 8 } else { (*data - 1) * 4 };
                word <= 4
            }
            _ => true,
        })
    }
}

/// Builds one [`Rule`], statement by statement.
pub struct RuleBuilder {
    family: IpFamily,
    chain: String,
    text: Vec<String>,
    exprs: Vec<Expr>,
    comment: Option<String>,
}

impl RuleBuilder {
    /// A rule in `chain` of the family's table.
    pub fn new(family: IpFamily, chain: impl Into<String>) -> Self {
        RuleBuilder { family, chain: chain.into(), text: Vec::new(), exprs: Vec::new(), comment: None }
    }

    /// Loads a concatenation starting at word `start`; returns its text and first register.
    fn concat(&mut self, fields: &[Field], start: u32) -> (String, u32) {
        let mut word = start;
        let mut text = Vec::new();
        for f in fields {
            self.exprs.push(f.load(self.family, reg(word)));
            text.push(f.text(self.family));
            word += f.len(self.family).div_ceil(4);
        }
        (text.join(" . "), reg(start))
    }

    /// `FIELDS [!=] @SET`.
    pub fn in_set(mut self, fields: &[Field], set: SetId, invert: bool) -> Self {
        let (t, sreg) = self.concat(fields, 0);
        self.exprs.push(Expr::Lookup { sreg, set, dreg: None, invert });
        self.text.push(format!("{t} {}@{}", if invert { "!= " } else { "" }, set.name()));
        self
    }

    /// `FIELDS vmap @SET`.
    pub fn vmap(mut self, fields: &[Field], set: SetId) -> Self {
        let (t, sreg) = self.concat(fields, 0);
        self.exprs.push(Expr::Lookup { sreg, set, dreg: Some(0), invert: false });
        self.text.push(format!("{t} vmap @{}", set.name()));
        self
    }

    /// `FIELDS [!=] @NAME` on a set the caller created under `name` (see
    /// [`Expr::LookupNamed`]); the key type of the set must be the concatenation of `fields`.
    pub fn in_named_set(mut self, fields: &[Field], name: &str, invert: bool) -> Self {
        let (t, sreg) = self.concat(fields, 0);
        self.exprs.push(Expr::LookupNamed { sreg, name: name.into(), dreg: None, invert });
        self.text.push(format!("{t} {}@{name}", if invert { "!= " } else { "" }));
        self
    }

    /// `FIELDS vmap @NAME` on a verdict map the caller created under `name` (see
    /// [`Expr::LookupNamed`]).
    pub fn vmap_named(mut self, fields: &[Field], name: &str) -> Self {
        let (t, sreg) = self.concat(fields, 0);
        self.exprs.push(Expr::LookupNamed { sreg, name: name.into(), dreg: Some(0), invert: false });
        self.text.push(format!("{t} vmap @{name}"));
        self
    }

    /// `dnat ip to FIELDS map @SET` (the map yields `addr . port`).
    pub fn dnat_map(mut self, fields: &[Field], set: SetId) -> Self {
        let (t, sreg) = self.concat(fields, 0);
        self.exprs.push(Expr::Lookup { sreg, set, dreg: Some(1), invert: false });
        let proto = reg(addr_len(self.family) / 4);
        let family = if self.family == IpFamily::V4 { 2 } else { 10 };
        self.exprs.push(Expr::Dnat { family, addr: 1, proto });
        self.text.push(format!("dnat {} to {t} map @{}", ip_word(self.family), set.name()));
        self
    }

    /// `update @SET { KEY timeout Ts : DATA }`.
    pub fn update_map(mut self, key: &[Field], data: &[Field], set: SetId, timeout_s: u32) -> Self {
        let (kt, kreg) = self.concat(key, 0);
        let words: u32 = key.iter().map(|f| f.len(self.family).div_ceil(4)).sum();
        let (dt, dreg) = self.concat(data, words);
        self.exprs.push(Expr::DynsetUpdate { key: kreg, data: dreg, set, timeout_ms: u64::from(timeout_s) * 1000 });
        self.text.push(format!("update @{} {{ {kt} timeout {timeout_s}s : {dt} }}", set.name()));
        self
    }

    /// `meta l4proto PROTO`.
    pub fn l4proto(mut self, p: Protocol) -> Self {
        self.exprs.push(Expr::Meta { key: NFT_META_L4PROTO, dreg: 1 });
        self.exprs.push(Expr::Cmp { op: CMP_EQ, sreg: 1, data: vec![p.number()] });
        self.text.push(format!("meta l4proto {}", p.as_str()));
        self
    }

    /// `iifname [!=] "NAME"` (a trailing `*` matches a prefix).
    pub fn iifname(mut self, name: &str, invert: bool) -> Self {
        let data = match name.strip_suffix('*') {
            Some(prefix) => prefix.as_bytes().to_vec(),
            None => {
                let mut d = vec![0u8; 16];
                let n = name.len().min(15);
                d[..n].copy_from_slice(&name.as_bytes()[..n]);
                d
            }
        };
        self.exprs.push(Expr::Meta { key: NFT_META_IIFNAME, dreg: 1 });
        self.exprs.push(Expr::Cmp { op: if invert { CMP_NEQ } else { CMP_EQ }, sreg: 1, data });
        self.text.push(format!("iifname {}\"{name}\"", if invert { "!= " } else { "" }));
        self
    }

    /// `fib saddr type local` / `fib daddr type local`.
    pub fn fib_local(mut self, source: bool) -> Self {
        self.exprs.push(Expr::Fib { flags: if source { 1 } else { 2 }, dreg: 1 });
        self.exprs.push(Expr::Cmp { op: CMP_EQ, sreg: 1, data: 2u32.to_ne_bytes().to_vec() });
        self.text.push(format!("fib {} type local", if source { "saddr" } else { "daddr" }));
        self
    }

    /// `ip daddr != 127.0.0.0/8` / `ip6 daddr != ::1`.
    pub fn daddr_not_loopback(mut self) -> Self {
        match self.family {
            IpFamily::V4 => {
                self.exprs.push(Expr::Payload { base: NETWORK, offset: 16, len: 1, dreg: 1 });
                self.exprs.push(Expr::Cmp { op: CMP_NEQ, sreg: 1, data: vec![127] });
                self.text.push("ip daddr != 127.0.0.0/8".into());
            }
            IpFamily::V6 => {
                self.exprs.push(Expr::Payload { base: NETWORK, offset: 24, len: 16, dreg: 1 });
                let mut one = vec![0u8; 16];
                one[15] = 1;
                self.exprs.push(Expr::Cmp { op: CMP_NEQ, sreg: 1, data: one });
                self.text.push("ip6 daddr != ::1".into());
            }
        }
        self
    }

    fn ct_flag(mut self, key: u32, mask: u32, text: &str) -> Self {
        self.exprs.push(Expr::Ct { key, dir: None, dreg: 1 });
        self.exprs.push(Expr::Bitwise { sreg: 1, dreg: 1, mask: mask.to_ne_bytes().to_vec(), xor: vec![0; 4] });
        self.exprs.push(Expr::Cmp { op: CMP_NEQ, sreg: 1, data: vec![0; 4] });
        self.text.push(text.into());
        self
    }

    /// `ct state new`.
    pub fn ct_state_new(self) -> Self {
        self.ct_flag(NFT_CT_STATE, 8, "ct state new")
    }

    /// `ct status dnat`.
    pub fn ct_status_dnat(self) -> Self {
        self.ct_flag(NFT_CT_STATUS, 0x20, "ct status dnat")
    }

    /// `meta mark set meta mark | MARK`.
    pub fn mark_set(mut self, mark: u32) -> Self {
        self.exprs.push(Expr::Meta { key: NFT_META_MARK, dreg: 1 });
        self.exprs.push(Expr::Bitwise {
            sreg: 1,
            dreg: 1,
            mask: (!mark).to_ne_bytes().to_vec(),
            xor: mark.to_ne_bytes().to_vec(),
        });
        self.exprs.push(Expr::MetaSet { key: NFT_META_MARK, sreg: 1 });
        self.text.push(format!("meta mark set meta mark | {mark:#x}"));
        self
    }

    /// `meta mark set meta mark ^ MARK`.
    pub fn mark_toggle(mut self, mark: u32) -> Self {
        self.exprs.push(Expr::Meta { key: NFT_META_MARK, dreg: 1 });
        self.exprs.push(Expr::Bitwise {
            sreg: 1,
            dreg: 1,
            mask: u32::MAX.to_ne_bytes().to_vec(),
            xor: mark.to_ne_bytes().to_vec(),
        });
        self.exprs.push(Expr::MetaSet { key: NFT_META_MARK, sreg: 1 });
        self.text.push(format!("meta mark set meta mark ^ {mark:#x}"));
        self
    }

    /// `meta mark & MARK == 0`.
    pub fn mark_clear(mut self, mark: u32) -> Self {
        self.exprs.push(Expr::Meta { key: NFT_META_MARK, dreg: 1 });
        self.exprs.push(Expr::Bitwise { sreg: 1, dreg: 1, mask: mark.to_ne_bytes().to_vec(), xor: vec![0; 4] });
        self.exprs.push(Expr::Cmp { op: CMP_EQ, sreg: 1, data: vec![0; 4] });
        self.text.push(format!("meta mark & {mark:#010x} == 0x00000000"));
        self
    }

    /// `jump CHAIN`.
    pub fn jump(mut self, chain: &str) -> Self {
        self.exprs.push(Expr::Verdict { code: -3, chain: Some(chain.into()) });
        self.text.push(format!("jump {chain}"));
        self
    }

    /// `goto CHAIN`.
    pub fn goto(mut self, chain: ChainRef) -> Self {
        let name = chain.name();
        self.text.push(format!("goto {name}"));
        self.exprs.push(Expr::Verdict { code: -4, chain: Some(name) });
        self
    }

    /// `return`.
    pub fn ret(mut self) -> Self {
        self.exprs.push(Expr::Verdict { code: -5, chain: None });
        self.text.push("return".into());
        self
    }

    /// `drop`.
    pub fn drop_(mut self) -> Self {
        self.exprs.push(Expr::Verdict { code: 0, chain: None });
        self.text.push("drop".into());
        self
    }

    /// `reject` (ICMP / ICMPv6 port unreachable).
    pub fn reject(mut self) -> Self {
        let code = if self.family == IpFamily::V4 { 3 } else { 4 };
        self.exprs.push(Expr::Reject { code });
        self.text.push("reject".into());
        self
    }

    /// `masquerade fully-random`.
    pub fn masquerade(mut self) -> Self {
        self.exprs.push(Expr::Masquerade);
        self.text.push("masquerade fully-random".into());
        self
    }

    /// `comment "TEXT"`.
    pub fn comment(mut self, text: impl Into<String>) -> Self {
        self.comment = Some(text.into());
        self
    }

    /// The finished rule.
    pub fn build(self) -> Rule {
        Rule { chain: self.chain, text: self.text.join(" "), exprs: self.exprs, comment: self.comment }
    }
}
