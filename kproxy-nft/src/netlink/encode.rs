//! Plan objects -> libnftnl objects and kernel bytes.

use std::ffi::{c_void, CString};
use std::net::IpAddr;

use nftnl_sys as sys;

use crate::bytes::{endpoint_bytes, key_bytes, verdict_code, Bytes, COMMENT_MAX};
#[cfg(test)]
use crate::tx::{RawData, RawElement};
use crate::plan::{Key, Value};
use crate::stmt::Expr;

use super::wire::{DataParts, Parts, Userdata, WireElement};

unsafe fn set_bytes(e: *mut sys::nftnl_expr, attr: u32, data: &[u8]) {
    sys::nftnl_expr_set(e, attr as u16, data.as_ptr() as *const c_void, data.len() as u32);
}

unsafe fn alloc(name: &str) -> *mut sys::nftnl_expr {
    let n = CString::new(name).expect("static expression name");
    sys::nftnl_expr_alloc(n.as_ptr())
}

/// `lookup` of set `name`. A name with a NUL byte (never a valid set name) is cut at the NUL;
/// the kernel then rejects the rule with ENOENT, reported with the rule's batch label.
unsafe fn lookup(sreg: u32, name: &str, dreg: Option<u32>, invert: bool) -> *mut sys::nftnl_expr {
    let x = alloc("lookup");
    sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_LOOKUP_SREG as u16, sreg);
    let cut = name.split('\0').next().unwrap_or_default();
    let name = CString::new(cut).expect("no NUL left after the cut");
    sys::nftnl_expr_set_str(x, sys::NFTNL_EXPR_LOOKUP_SET as u16, name.as_ptr());
    if let Some(d) = dreg {
        sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_LOOKUP_DREG as u16, d);
    }
    if invert {
        sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_LOOKUP_FLAGS as u16, 1);
    }
    x
}

/// Allocates the libnftnl expression for `e` (ownership passes to the rule it is added to).
///
/// # Safety
/// The returned pointer must be handed to `nftnl_rule_add_expr` (which frees it with the rule).
pub unsafe fn expr(e: &Expr) -> *mut sys::nftnl_expr {
    match e {
        Expr::Payload { base, offset, len, dreg } => {
            let x = alloc("payload");
            sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_PAYLOAD_DREG as u16, *dreg);
            sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_PAYLOAD_BASE as u16, *base);
            sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_PAYLOAD_OFFSET as u16, *offset);
            sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_PAYLOAD_LEN as u16, *len);
            x
        }
        Expr::Meta { key, dreg } => {
            let x = alloc("meta");
            sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_META_KEY as u16, *key);
            sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_META_DREG as u16, *dreg);
            x
        }
        Expr::MetaSet { key, sreg } => {
            let x = alloc("meta");
            sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_META_KEY as u16, *key);
            sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_META_SREG as u16, *sreg);
            x
        }
        Expr::Ct { key, dir, dreg } => {
            let x = alloc("ct");
            sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_CT_KEY as u16, *key);
            if let Some(d) = dir {
                sys::nftnl_expr_set_u8(x, sys::NFTNL_EXPR_CT_DIR as u16, *d);
            }
            sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_CT_DREG as u16, *dreg);
            x
        }
        Expr::Cmp { op, sreg, data } => {
            let x = alloc("cmp");
            sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_CMP_SREG as u16, *sreg);
            sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_CMP_OP as u16, *op);
            set_bytes(x, sys::NFTNL_EXPR_CMP_DATA, data);
            x
        }
        Expr::Bitwise { sreg, dreg, mask, xor } => {
            let x = alloc("bitwise");
            sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_BITWISE_SREG as u16, *sreg);
            sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_BITWISE_DREG as u16, *dreg);
            sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_BITWISE_LEN as u16, mask.len() as u32);
            set_bytes(x, sys::NFTNL_EXPR_BITWISE_MASK, mask);
            set_bytes(x, sys::NFTNL_EXPR_BITWISE_XOR, xor);
            x
        }
        Expr::Lookup { sreg, set, dreg, invert } => lookup(*sreg, set.name(), *dreg, *invert),
        Expr::LookupNamed { sreg, name, dreg, invert } => lookup(*sreg, name, *dreg, *invert),
        Expr::Numgen { dreg, modulus } => {
            let x = alloc("numgen");
            sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_NG_DREG as u16, *dreg);
            sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_NG_MODULUS as u16, *modulus);
            sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_NG_TYPE as u16, 1); // NFT_NG_RANDOM
            sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_NG_OFFSET as u16, 0);
            x
        }
        Expr::Fib { flags, dreg } => {
            let x = alloc("fib");
            sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_FIB_RESULT as u16, 3); // NFT_FIB_RESULT_ADDRTYPE
            sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_FIB_FLAGS as u16, *flags);
            sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_FIB_DREG as u16, *dreg);
            x
        }
        Expr::Verdict { code, chain } => {
            let x = alloc("immediate");
            sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_IMM_DREG as u16, 0);
            sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_IMM_VERDICT as u16, *code as u32);
            if let Some(c) = chain {
                let c = CString::new(c.as_str()).expect("chain names have no NUL");
                sys::nftnl_expr_set_str(x, sys::NFTNL_EXPR_IMM_CHAIN as u16, c.as_ptr());
            }
            x
        }
        Expr::Dnat { family, addr, proto } => {
            let x = alloc("nat");
            sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_NAT_TYPE as u16, 1); // NFT_NAT_DNAT
            sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_NAT_FAMILY as u16, *family);
            sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_NAT_REG_ADDR_MIN as u16, *addr);
            sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_NAT_REG_PROTO_MIN as u16, *proto);
            x
        }
        Expr::Masquerade => {
            let x = alloc("masq");
            sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_MASQ_FLAGS as u16, 0x10); // NF_NAT_RANGE_PROTO_RANDOM_FULLY
            x
        }
        Expr::Reject { code } => {
            let x = alloc("reject");
            sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_REJECT_TYPE as u16, 0); // NFT_REJECT_ICMP_UNREACH
            sys::nftnl_expr_set_u8(x, sys::NFTNL_EXPR_REJECT_CODE as u16, *code);
            x
        }
        Expr::DynsetUpdate { key, data, set, timeout_ms } => {
            let x = alloc("dynset");
            sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_DYNSET_SREG_KEY as u16, *key);
            sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_DYNSET_SREG_DATA as u16, *data);
            sys::nftnl_expr_set_u32(x, sys::NFTNL_EXPR_DYNSET_OP as u16, 1); // NFT_DYNSET_OP_UPDATE
            sys::nftnl_expr_set_u64(x, sys::NFTNL_EXPR_DYNSET_TIMEOUT as u16, *timeout_ms);
            let name = CString::new(set.name()).expect("static set name");
            sys::nftnl_expr_set_str(x, sys::NFTNL_EXPR_DYNSET_SET_NAME as u16, name.as_ptr());
            x
        }
    }
}

/// Allocates the libnftnl element for `e` (ownership passes to the set it is added to).
///
/// # Safety
/// The returned pointer must be handed to `nftnl_set_elem_add`.
#[cfg(test)]
pub unsafe fn element(e: &RawElement) -> *mut sys::nftnl_set_elem {
    let x = sys::nftnl_set_elem_alloc();
    let put = |attr: u32, b: &[u8]| {
        sys::nftnl_set_elem_set(x, attr as u16, b.as_ptr() as *const c_void, b.len() as u32);
    };
    put(sys::NFTNL_SET_ELEM_KEY, &e.key);
    if let Some(end) = &e.key_end {
        put(sys::NFTNL_SET_ELEM_KEY_END, end);
    }
    if e.flags != 0 {
        sys::nftnl_set_elem_set_u32(x, sys::NFTNL_SET_ELEM_FLAGS as u16, e.flags);
    }
    if let Some(t) = e.timeout_ms {
        sys::nftnl_set_elem_set_u64(x, sys::NFTNL_SET_ELEM_TIMEOUT as u16, t);
    }
    if let Some(t) = e.expiration_ms {
        sys::nftnl_set_elem_set_u64(x, sys::NFTNL_SET_ELEM_EXPIRATION as u16, t);
    }
    match &e.data {
        RawData::None => {}
        RawData::Bytes(b) => put(sys::NFTNL_SET_ELEM_DATA, b),
        RawData::Verdict(code, chain) => {
            sys::nftnl_set_elem_set_u32(x, sys::NFTNL_SET_ELEM_VERDICT as u16, *code as u32);
            if let Some(c) = chain {
                let c = CString::new(c.as_str()).expect("chain names have no NUL");
                sys::nftnl_set_elem_set_str(x, sys::NFTNL_SET_ELEM_CHAIN as u16, c.as_ptr());
            }
        }
    }
    if !e.userdata.is_empty() {
        put(sys::NFTNL_SET_ELEM_USERDATA, &e.userdata);
    }
    x
}

/// A plan element to write as it is (no `RawElement` in between: no allocation per
/// element), with its chain's name resolved once per chain by the caller.
pub(crate) struct PlanElement<'a> {
    pub key: Key,
    pub value: Value,
    pub comment: &'a str,
    /// The name of the chain of a verdict value.
    pub chain: Option<&'a str>,
}

impl WireElement for PlanElement<'_> {
    /// The same attributes as the `RawElement` of `bytes::raw_element`.
    fn with_parts<R>(&self, f: impl FnOnce(&Parts<'_>) -> R) -> R {
        let (key, key_end) = key_bytes(&self.key);
        let value;
        let data = match self.value {
            Value::None => DataParts::None,
            Value::Endpoint(sa) => {
                value = endpoint_bytes(sa);
                DataParts::Bytes(value.as_slice())
            }
            Value::Verdict(v) => DataParts::Verdict(verdict_code(v), self.chain),
        };
        f(&Parts {
            key: key.as_slice(),
            key_end: key_end.as_ref().map(Bytes::as_slice),
            flags: 0,
            data,
            userdata: Userdata::Comment(self.comment),
            times: (None, None),
        })
    }

    /// [`Parts::bound`] from the shapes alone (the bound is needed before the bytes).
    fn bound(&self) -> usize {
        let ip = |a: IpAddr| if a.is_ipv4() { 4 } else { 16 };
        let (key, key_end) = match self.key {
            Key::Addr(a) => (ip(a), 0),
            Key::Net(n) => (ip(n.network()), 0),
            Key::AddrPair(a, b) => (ip(a) + ip(b), 0),
            Key::Dest(a, _, _) => (ip(a) + 8, 0),
            Key::Port(..) => (8, 0),
            Key::DestSlot(a, ..) => (ip(a) + 12, 0),
            Key::PortSlot(..) => (12, 0),
            Key::DestPortNet(a, _, _, n) => {
                let k = ip(a) + 8 + ip(n.network());
                (k, k + 8)
            }
        };
        let data = match self.value {
            Value::None => 0,
            Value::Endpoint(sa) => ip(sa.ip()) + 4 + 16,
            Value::Verdict(_) => 32 + self.chain.map_or(0, str::len),
        };
        let userdata = if self.comment.is_empty() { 0 } else { self.comment.len().min(COMMENT_MAX) + 3 };
        48 + key + key_end + data + userdata
    }
}
