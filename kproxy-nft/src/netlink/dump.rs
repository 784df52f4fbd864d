//! Reading a set's elements back (`NFT_MSG_GETSETELEM` dump): the one thing kproxy reads
//! from nf_tables, for the entries the packet path adds to its dynamic affinity maps.

use kproxy_netlink::{Attr, Attrs, MsgBuilder, NLM_F_DUMP, NLM_F_REQUEST};

use crate::tx::{RawData, RawElement, TableFamily};

// A dump answers with NFT_MSG_NEWSETELEM messages.
use super::batch::NFT_MSG_NEWSETELEM;
use super::wire::{
    NFNL_SUBSYS_NFTABLES, NFTA_DATA_VALUE, NFTA_DATA_VERDICT, NFTA_SET_ELEM_DATA, NFTA_SET_ELEM_EXPIRATION,
    NFTA_SET_ELEM_FLAGS, NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_KEY_END, NFTA_SET_ELEM_LIST_ELEMENTS, NFTA_SET_ELEM_LIST_SET,
    NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_TIMEOUT, NFTA_SET_ELEM_USERDATA, NFTA_VERDICT_CHAIN, NFTA_VERDICT_CODE,
};

/// `NFT_MSG_GETSETELEM`.
const NFT_MSG_GETSETELEM: u16 = 13;

/// The dump request for the elements of `table` `set`.
pub(super) fn request(family: TableFamily, table: &str, set: &str) -> Vec<u8> {
    let mut b = MsgBuilder::new((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM, NLM_F_REQUEST | NLM_F_DUMP)
        .header(&[family.number() as u8, 0, 0, 0]);
    b.str(NFTA_SET_ELEM_LIST_TABLE, table).str(NFTA_SET_ELEM_LIST_SET, set);
    b.finish()
}

/// The value bytes inside an `NFTA_DATA_*` nest.
fn value(a: &Attr<'_>) -> Option<Vec<u8>> {
    a.nested().find(|d| d.kind == NFTA_DATA_VALUE).map(|d| d.payload.to_vec())
}

fn data(a: &Attr<'_>) -> RawData {
    let mut out = RawData::None;
    for d in a.nested() {
        match d.kind {
            NFTA_DATA_VALUE => out = RawData::Bytes(d.payload.to_vec()),
            NFTA_DATA_VERDICT => {
                let mut code = 0;
                let mut chain = None;
                for v in d.nested() {
                    match v.kind {
                        NFTA_VERDICT_CODE => code = v.be32().unwrap_or(0) as i32,
                        NFTA_VERDICT_CHAIN => chain = v.str().map(str::to_string),
                        _ => {}
                    }
                }
                out = RawData::Verdict(code, chain);
            }
            _ => {}
        }
    }
    out
}

fn element(list_elem: &Attr<'_>) -> RawElement {
    let mut e = RawElement::default();
    for a in list_elem.nested() {
        match a.kind {
            NFTA_SET_ELEM_KEY => e.key = value(&a).unwrap_or_default(),
            NFTA_SET_ELEM_KEY_END => e.key_end = value(&a),
            NFTA_SET_ELEM_DATA => e.data = data(&a),
            NFTA_SET_ELEM_FLAGS => e.flags = a.be32().unwrap_or(0),
            NFTA_SET_ELEM_TIMEOUT => e.timeout_ms = a.be64(),
            NFTA_SET_ELEM_EXPIRATION => e.expiration_ms = a.be64(),
            NFTA_SET_ELEM_USERDATA => e.userdata = a.payload.to_vec(),
            _ => {}
        }
    }
    e
}

/// Appends the elements of one answer message (type without the subsystem, payload after
/// the netlink header) to `out`.
pub(crate) fn parse(msg_type: u16, payload: &[u8], out: &mut Vec<RawElement>) {
    if msg_type & 0xff != NFT_MSG_NEWSETELEM {
        return;
    }
    let Some(attrs) = payload.get(4..) else { return };
    for list in Attrs::new(attrs).filter(|a| a.kind == NFTA_SET_ELEM_LIST_ELEMENTS) {
        out.extend(list.nested().map(|le| element(&le)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tx::SetElement;

    /// What the kernel answers is what kproxy writes for an add, plus TIMEOUT/EXPIRATION:
    /// parsing the encoder's own message gives back the element.
    #[test]
    fn parses_what_the_encoder_writes() {
        let e = RawElement {
            key: vec![198, 18, 0, 9, 198, 19, 160, 1, 6, 0, 0, 0, 0, 80, 0, 0],
            data: RawData::Bytes(vec![198, 18, 0, 2, 31, 144, 0, 0]),
            timeout_ms: Some(3000),
            expiration_ms: Some(1234),
            ..RawElement::default()
        };
        let v = RawElement { key: vec![1, 2, 3, 4], data: RawData::Verdict(-3, Some("affinity-3".into())), ..RawElement::default() };
        let mut tx = crate::tx::Transaction::new();
        tx.add_elements(TableFamily::Ip, "kproxy", "affinity", vec![SetElement::from(e.clone()), SetElement::from(v.clone())]);
        let bytes = super::super::batch_bytes(&tx, usize::MAX);
        let mut out = Vec::new();
        for m in kproxy_netlink::Messages::new(&bytes) {
            parse(m.msg_type, m.payload, &mut out);
        }
        assert_eq!(out, vec![e, v]);
    }
}
