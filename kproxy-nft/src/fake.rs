//! [`FakeKernel`]: nf_tables in memory, with the kernel's rules.
//!
//! What it enforces, each with the kernel's errno (checked against the real kernel by
//! `tests/tests/nft_fake.rs`):
//! - atomic commit: a transaction that fails changes nothing;
//! - objects must exist: a chain, set or rule in a missing table, a rule in a missing chain,
//!   a lookup of a missing set, a jump/goto (rule or verdict-map element) to a missing chain,
//!   deleting a missing table, chain or element, flushing a missing set: `ENOENT`;
//! - references hold: deleting a chain that a rule of another chain or a map element jumps
//!   to: `EBUSY`; jumping to a base chain: `EOPNOTSUPP`;
//! - elements fit their set: key (and key end) length, data present exactly for maps, a
//!   verdict for verdict maps, data of the map's length otherwise: `EINVAL`; a lookup with a
//!   destination register of a plain set: `EINVAL`;
//! - `add element` of a key that exists (kproxy sends `NLM_F_EXCL`), also twice in one
//!   transaction: `EEXIST`; `add set` of an existing name with other types: `EEXIST`.
//!
//! - element timeouts only in sets declared with timeouts, an expiration only with a
//!   timeout: `EINVAL`; `destroy element` of an element present with other data: `EEXIST`
//!   (its `add` half clashes).
//!
//! Dynamic sets: what the packet path does to them is simulated by
//! [`FakeKernel::packet_update`] (an `update @set { key : data }` of a rule: adds the entry
//! or refreshes its expiration), also right before the next commit
//! ([`FakeKernel::packet_update_before_next_commit`], the race between reading entries and
//! committing), and the passing of time by [`FakeKernel::advance`] (entries expire).
//!
//! What it does not model: other packet paths, hook/priority validation, overlap detection of
//! interval sets, `NLM_F_EXCL` on tables and chains (kproxy never sends it there).

use std::collections::BTreeMap;
use std::io;

use crate::tx::{
    NFTA_SET_DATA_LEN, NFTA_SET_DATA_TYPE, NFTA_SET_FLAGS, NFTA_SET_KEY_LEN, NFT_DATA_VERDICT as DATA_VERDICT,
    NFT_SET_MAP as SET_MAP,
};
use crate::kernel::NftKernel;
use crate::netlink::NetlinkError;
use crate::tx::{ChainHook, Op, RawData, RawElement, SetDecl, SetElement, TableFamily, Transaction};
use crate::bytes::{endpoint_bytes, key_bytes, verdict};
use crate::plan::Value;
use crate::stmt::{Expr, Rule};

/// `NFT_SET_TIMEOUT`: the set's elements may have timeouts.
const SET_TIMEOUT: u32 = 0x10;
/// `NFT_SET_ELEM_INTERVAL_END`.
const INTERVAL_END: u32 = 1;
/// `NFT_NAME_MAXLEN` minus the NUL.
const NAME_MAX: usize = 255;

/// A chain: its hook (base chains) and its rules in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeChain {
    /// Hook of a base chain.
    pub hook: Option<ChainHook>,
    /// Rules, in order.
    pub rules: Vec<Rule>,
}

/// A set or map: the types its NEWSET attributes declared, and its elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeSet {
    /// The declaration as added.
    pub decl: SetDecl,
    /// `NFTA_SET_FLAGS`.
    pub flags: u32,
    /// `NFTA_SET_KEY_LEN`.
    pub key_len: u32,
    /// `NFTA_SET_DATA_TYPE` (maps).
    pub data_type: Option<u32>,
    /// `NFTA_SET_DATA_LEN` (maps).
    pub data_len: u32,
    /// Elements by (key bytes, interval end), with their data.
    pub elements: BTreeMap<(Vec<u8>, bool), RawData>,
    /// (timeout, time left) in milliseconds of the elements that have a timeout.
    pub timeouts: BTreeMap<(Vec<u8>, bool), (u64, u64)>,
}

impl FakeSet {
    /// Whether a map's data are verdicts.
    pub fn is_verdict_map(&self) -> bool {
        self.data_type == Some(DATA_VERDICT)
    }

    /// Whether an element with this key is present.
    pub fn contains(&self, e: &SetElement) -> bool {
        let (key, end, _) = element_parts(e);
        self.elements.contains_key(&(key, end))
    }
}

/// A table's chains and sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeTable {
    /// Chains by name.
    pub chains: BTreeMap<String, FakeChain>,
    /// Sets and maps by name.
    pub sets: BTreeMap<String, FakeSet>,
}

/// An in-memory nf_tables that enforces the kernel's rules (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct FakeKernel {
    tables: BTreeMap<(TableFamily, String), FakeTable>,
    commits: usize,
    fail_next: Option<i32>,
    fail_next_read: Option<i32>,
    before_next_commit: Vec<PacketUpdate>,
}

/// What a rule's `update @set { key : data }` does when a packet passes (see
/// [`FakeKernel::packet_update`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketUpdate {
    /// Table family.
    pub family: TableFamily,
    /// Table.
    pub table: String,
    /// Dynamic set.
    pub set: String,
    /// Key bytes.
    pub key: Vec<u8>,
    /// Data bytes (maps).
    pub data: Vec<u8>,
    /// The rule's timeout in milliseconds.
    pub timeout_ms: u64,
}

/// A rejection: the errno the kernel gives, the operation's label, and why.
struct Reject(i32, String);

type Step = Result<(), Reject>;

fn reject(errno: i32, why: impl Into<String>) -> Step {
    Err(Reject(errno, why.into()))
}

fn label(op: &Op) -> String {
    match op {
        Op::AddTable { table, .. } => format!("add table {table}"),
        Op::DeleteTable { table, .. } => format!("delete table {table}"),
        Op::AddChain { table, chain, .. } => format!("add chain {table} {chain}"),
        Op::DeleteChain { table, chain, .. } => format!("delete chain {table} {chain}"),
        Op::AddRule { table, rule, .. } => format!("add rule {table} {} {}", rule.chain, rule.text),
        Op::AddSet { table, set, .. } => format!("add set {table} {}", set.name),
        Op::FlushSet { table, set, .. } => format!("flush 0 element(s) of set {table} {set}"),
        Op::AddElements { table, set, elements, .. } => format!("add {} element(s) of set {table} {set}", elements.len()),
        Op::DestroyElements { table, set, elements, .. } => {
            format!("destroy {} element(s) of set {table} {set}", elements.len())
        }
        Op::DeleteElements { table, set, elements, .. } => {
            format!("delete {} element(s) of set {table} {set}", elements.len())
        }
    }
}

/// An element's key bytes, interval-end flag and data, as the kernel would store them.
fn element_parts(e: &SetElement) -> (Vec<u8>, bool, (RawData, Option<usize>)) {
    match e {
        SetElement::Typed { key, value, .. } => {
            let (k, end) = key_bytes(key);
            let data = match value {
                Value::None => RawData::None,
                Value::Endpoint(sa) => RawData::Bytes(endpoint_bytes(*sa).as_slice().to_vec()),
                Value::Verdict(v) => verdict(*v),
            };
            (k.as_slice().to_vec(), false, (data, end.map(|e| e.as_slice().len())))
        }
        SetElement::Raw(r) => {
            (r.key.clone(), r.flags & INTERVAL_END != 0, (r.data.clone(), r.key_end.as_ref().map(Vec::len)))
        }
    }
}

/// The (timeout, time left) an added element asks for, checked against its set.
fn element_times(s: &FakeSet, e: &SetElement) -> Result<Option<(u64, u64)>, Reject> {
    let SetElement::Raw(r) = e else { return Ok(None) };
    match (r.timeout_ms, r.expiration_ms) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(Reject(libc::EINVAL, "an expiration without a timeout".into())),
        (Some(_), _) if s.flags & SET_TIMEOUT == 0 => {
            Err(Reject(libc::EINVAL, format!("a timeout for set {}, which has no timeouts", s.decl.name)))
        }
        (Some(t), x) => Ok(Some((t, x.unwrap_or(t)))),
    }
}

/// `(type, payload)` of each attribute of a NEWSET tail.
fn attrs(raw: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 4 <= raw.len() {
        let len = usize::from(u16::from_ne_bytes([raw[off], raw[off + 1]]));
        let ty = u16::from_ne_bytes([raw[off + 2], raw[off + 3]]) & 0x3fff;
        if len < 4 || off + len > raw.len() {
            break;
        }
        out.push((ty, &raw[off + 4..off + len]));
        off += len.div_ceil(4) * 4;
    }
    out
}

fn be32(b: &[u8]) -> u32 {
    b.get(..4).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes).unwrap_or(0)
}

fn parse_set(decl: &SetDecl) -> Result<FakeSet, Reject> {
    let mut set = FakeSet {
        decl: decl.clone(),
        flags: 0,
        key_len: 0,
        data_type: None,
        data_len: 0,
        elements: BTreeMap::new(),
        timeouts: BTreeMap::new(),
    };
    for (ty, payload) in attrs(&decl.raw) {
        match ty {
            NFTA_SET_FLAGS => set.flags = be32(payload),
            NFTA_SET_KEY_LEN => set.key_len = be32(payload),
            NFTA_SET_DATA_TYPE => set.data_type = Some(be32(payload)),
            NFTA_SET_DATA_LEN => set.data_len = be32(payload),
            _ => {}
        }
    }
    if set.key_len == 0 {
        return Err(Reject(libc::EINVAL, format!("set {} declares no key length", decl.name)));
    }
    if (set.flags & SET_MAP != 0) != set.data_type.is_some() {
        return Err(Reject(libc::EINVAL, format!("set {}: map flag and data type disagree", decl.name)));
    }
    Ok(set)
}

impl FakeKernel {
    /// An empty kernel (no tables).
    pub fn new() -> Self {
        FakeKernel::default()
    }

    /// Every table, by (family, name).
    pub fn tables(&self) -> &BTreeMap<(TableFamily, String), FakeTable> {
        &self.tables
    }

    /// One table.
    pub fn table(&self, family: TableFamily, name: &str) -> Option<&FakeTable> {
        self.tables.get(&(family, name.to_string()))
    }

    /// Transactions committed successfully so far.
    pub fn commits(&self) -> usize {
        self.commits
    }

    /// Makes the next commit fail with `errno` on its first operation (and change nothing),
    /// as a kernel out of memory would: for testing callers' error paths.
    pub fn fail_next_commit(&mut self, errno: i32) {
        self.fail_next = Some(errno);
    }

    /// Makes the next [`NftKernel::set_elements`] fail with `errno` as a refused dump, for
    /// testing callers' error paths.
    pub fn fail_next_read(&mut self, errno: i32) {
        self.fail_next_read = Some(errno);
    }

    /// Simulates a packet passing a rule `update @set { key : data } timeout T`: adds the
    /// entry with T to live, or gives an existing one T again (its data stays). ENOENT if
    /// the set does not exist, EINVAL if the set has no timeouts or the key or data do not
    /// fit it.
    pub fn packet_update(&mut self, u: &PacketUpdate) -> Result<(), NetlinkError> {
        let mut step = || -> Step {
            let t = self.table_mut(u.family, &u.table)?;
            let chains = &t.chains;
            let s = t.sets.get_mut(&u.set).ok_or_else(|| Reject(libc::ENOENT, format!("no set {}", u.set)))?;
            if s.flags & SET_TIMEOUT == 0 {
                return reject(libc::EINVAL, format!("set {} has no timeouts", u.set));
            }
            let id = (u.key.clone(), false);
            if !s.elements.contains_key(&id) {
                let data = if s.data_type.is_some() { RawData::Bytes(u.data.clone()) } else { RawData::None };
                check_element(s, chains, &u.key, false, &data, None)?;
                s.elements.insert(id.clone(), data);
            }
            s.timeouts.insert(id, (u.timeout_ms, u.timeout_ms));
            Ok(())
        };
        step().map_err(|Reject(errno, why)| NetlinkError::Rejected {
            object: format!("packet update of set {} {}", u.table, u.set),
            source: io::Error::from_raw_os_error(errno),
            detail: Some(format!("fake kernel: {why}")),
        })
    }

    /// Queues a [`FakeKernel::packet_update`] that happens at the start of the next commit,
    /// after whatever the committer read: the packet path racing a sync.
    pub fn packet_update_before_next_commit(&mut self, u: PacketUpdate) {
        self.before_next_commit.push(u);
    }

    /// Lets `ms` milliseconds pass: elements with a timeout whose time is up disappear.
    pub fn advance(&mut self, ms: u64) {
        for t in self.tables.values_mut() {
            for s in t.sets.values_mut() {
                let mut expired = Vec::new();
                for (id, (_, left)) in s.timeouts.iter_mut() {
                    *left = left.saturating_sub(ms);
                    if *left == 0 {
                        expired.push(id.clone());
                    }
                }
                for id in expired {
                    s.timeouts.remove(&id);
                    s.elements.remove(&id);
                }
            }
        }
    }

    fn table_mut(&mut self, family: TableFamily, name: &str) -> Result<&mut FakeTable, Reject> {
        self.tables.get_mut(&(family, name.to_string())).ok_or_else(|| Reject(libc::ENOENT, format!("no table {name}")))
    }

    fn apply(&mut self, op: &Op) -> Step {
        match op {
            Op::AddTable { family, table } => {
                if table.len() > NAME_MAX {
                    return reject(libc::ENAMETOOLONG, "table name too long");
                }
                self.tables.entry((*family, table.clone())).or_default();
                Ok(())
            }
            Op::DeleteTable { family, table } => match self.tables.remove(&(*family, table.clone())) {
                Some(_) => Ok(()),
                None => reject(libc::ENOENT, format!("no table {table}")),
            },
            Op::AddChain { family, table, chain, hook } => {
                if chain.len() > NAME_MAX {
                    return reject(libc::ENAMETOOLONG, "chain name too long");
                }
                let t = self.table_mut(*family, table)?;
                t.chains.entry(chain.clone()).or_insert(FakeChain { hook: *hook, rules: Vec::new() });
                Ok(())
            }
            Op::DeleteChain { family, table, chain } => {
                let t = self.table_mut(*family, table)?;
                if !t.chains.contains_key(chain) {
                    return reject(libc::ENOENT, format!("no chain {chain}"));
                }
                if let Some(by) = referrer(t, chain) {
                    return reject(libc::EBUSY, format!("chain {chain} is still the target of {by}"));
                }
                t.chains.remove(chain);
                Ok(())
            }
            Op::AddRule { family, table, rule } => {
                let t = self.table_mut(*family, table)?;
                check_rule(t, rule)?;
                match t.chains.get_mut(&rule.chain) {
                    Some(c) => c.rules.push(rule.clone()),
                    None => return reject(libc::ENOENT, format!("no chain {}", rule.chain)),
                }
                Ok(())
            }
            Op::AddSet { family, table, set } => {
                let parsed = parse_set(set)?;
                let t = self.table_mut(*family, table)?;
                match t.sets.get(&set.name) {
                    Some(old) if old.decl.raw != set.raw => reject(libc::EEXIST, format!("set {} exists with other types", set.name)),
                    Some(_) => Ok(()),
                    None => {
                        t.sets.insert(set.name.clone(), parsed);
                        Ok(())
                    }
                }
            }
            Op::FlushSet { family, table, set } => {
                let t = self.table_mut(*family, table)?;
                let s = t.sets.get_mut(set).ok_or_else(|| Reject(libc::ENOENT, format!("no set {set}")))?;
                s.elements.clear();
                s.timeouts.clear();
                Ok(())
            }
            Op::AddElements { family, table, set, elements } => {
                let t = self.table_mut(*family, table)?;
                let chains = &t.chains;
                let s = t.sets.get_mut(set).ok_or_else(|| Reject(libc::ENOENT, format!("no set {set}")))?;
                for e in elements {
                    let (key, end, (data, key_end)) = element_parts(e);
                    check_element(s, chains, &key, end, &data, key_end)?;
                    if s.elements.contains_key(&(key.clone(), end)) {
                        return reject(libc::EEXIST, format!("element {key:02x?} exists in set {set}"));
                    }
                    if let Some(times) = element_times(s, e)? {
                        s.timeouts.insert((key.clone(), end), times);
                    }
                    s.elements.insert((key, end), data);
                }
                Ok(())
            }
            Op::DestroyElements { family, table, set, elements } => {
                let t = self.table_mut(*family, table)?;
                let s = t.sets.get_mut(set).ok_or_else(|| Reject(libc::ENOENT, format!("no set {set}")))?;
                for e in elements {
                    let (key, end, (data, _)) = element_parts(e);
                    let id = (key, end);
                    match s.elements.get(&id) {
                        Some(d) if *d != data => {
                            return reject(libc::EEXIST, format!("element {:02x?} exists in set {set} with other data", id.0));
                        }
                        _ => {
                            s.elements.remove(&id);
                            s.timeouts.remove(&id);
                        }
                    }
                }
                Ok(())
            }
            Op::DeleteElements { family, table, set, elements } => {
                let t = self.table_mut(*family, table)?;
                let s = t.sets.get_mut(set).ok_or_else(|| Reject(libc::ENOENT, format!("no set {set}")))?;
                for e in elements {
                    let (key, end, _) = element_parts(e);
                    if s.elements.remove(&(key.clone(), end)).is_none() {
                        return reject(libc::ENOENT, format!("no element {key:02x?} in set {set}"));
                    }
                    s.timeouts.remove(&(key, end));
                }
                Ok(())
            }
        }
    }
}

/// What still jumps to `chain`: a rule of another chain or a map element.
fn referrer(t: &FakeTable, chain: &str) -> Option<String> {
    for (name, c) in &t.chains {
        if name == chain {
            continue;
        }
        let jumps = c.rules.iter().any(|r| r.exprs.iter().any(|e| matches!(e, Expr::Verdict { chain: Some(to), .. } if to == chain)));
        if jumps {
            return Some(format!("a rule of chain {name}"));
        }
    }
    for (name, s) in &t.sets {
        if s.elements.values().any(|d| matches!(d, RawData::Verdict(_, Some(to)) if to == chain)) {
            return Some(format!("an element of map {name}"));
        }
    }
    None
}

/// A jump/goto target must exist and be a regular chain.
fn check_target(chains: &BTreeMap<String, FakeChain>, to: &str) -> Step {
    match chains.get(to) {
        None => reject(libc::ENOENT, format!("no chain {to} to jump to")),
        Some(c) if c.hook.is_some() => reject(libc::EOPNOTSUPP, format!("cannot jump to base chain {to}")),
        Some(_) => Ok(()),
    }
}

fn check_rule(t: &FakeTable, rule: &Rule) -> Step {
    for e in &rule.exprs {
        let (name, dreg) = match e {
            Expr::Lookup { set, dreg, .. } => (set.name(), *dreg),
            Expr::LookupNamed { name, dreg, .. } => (name.as_str(), *dreg),
            Expr::DynsetUpdate { set, .. } => (set.name(), None),
            Expr::Verdict { chain: Some(to), .. } => {
                check_target(&t.chains, to)?;
                continue;
            }
            _ => continue,
        };
        let Some(s) = t.sets.get(name) else {
            return reject(libc::ENOENT, format!("no set {name}"));
        };
        if dreg.is_some() && s.data_type.is_none() {
            return reject(libc::EINVAL, format!("{name} is a set, not a map"));
        }
    }
    Ok(())
}

fn check_element(
    s: &FakeSet,
    chains: &BTreeMap<String, FakeChain>,
    key: &[u8],
    end: bool,
    data: &RawData,
    key_end: Option<usize>,
) -> Step {
    let name = &s.decl.name;
    if key.len() != s.key_len as usize || key_end.is_some_and(|l| l != s.key_len as usize) {
        return reject(libc::EINVAL, format!("key of {} bytes for set {name} of {}-byte keys", key.len(), s.key_len));
    }
    match (s.data_type, data) {
        (None, RawData::None) => Ok(()),
        (None, _) => reject(libc::EINVAL, format!("data for set {name}, which is not a map")),
        (Some(_), RawData::None) if end => Ok(()),
        (Some(_), RawData::None) => reject(libc::EINVAL, format!("no data for map {name}")),
        (Some(DATA_VERDICT), RawData::Verdict(_, to)) => to.as_deref().map_or(Ok(()), |to| check_target(chains, to)),
        (Some(DATA_VERDICT), RawData::Bytes(_)) => reject(libc::EINVAL, format!("bytes for verdict map {name}")),
        (Some(_), RawData::Verdict(..)) => reject(libc::EINVAL, format!("verdict for data map {name}")),
        (Some(_), RawData::Bytes(b)) if b.len() != s.data_len as usize => {
            reject(libc::EINVAL, format!("data of {} bytes for map {name} of {}-byte data", b.len(), s.data_len))
        }
        (Some(_), RawData::Bytes(_)) => Ok(()),
    }
}

impl NftKernel for FakeKernel {
    fn commit(&mut self, tx: &Transaction) -> Result<usize, NetlinkError> {
        if tx.is_empty() {
            return Ok(0);
        }
        let rejected = |op: &Op, errno: i32, why: String| NetlinkError::Rejected {
            object: label(op),
            source: io::Error::from_raw_os_error(errno),
            detail: Some(format!("fake kernel: {why}")),
        };
        // The packet path does not wait for the commit (nor for its failure).
        for u in std::mem::take(&mut self.before_next_commit) {
            self.packet_update(&u)?;
        }
        if let Some(errno) = self.fail_next.take() {
            return Err(rejected(&tx.ops()[0], errno, "injected failure".into()));
        }
        // Atomic: work on a copy, keep it only if every operation passed.
        let mut next = self.clone();
        for op in tx.ops() {
            next.apply(op).map_err(|Reject(errno, why)| rejected(op, errno, why))?;
        }
        next.commits += 1;
        *self = next;
        Ok(tx.ops().len())
    }

    fn set_elements(&mut self, family: TableFamily, table: &str, set: &str) -> Result<Vec<RawElement>, NetlinkError> {
        let refused = |errno: i32, why: String| NetlinkError::DumpRefused {
            table: table.into(),
            set: set.into(),
            source: kproxy_netlink::KernelError { errno, message: Some(format!("fake kernel: {why}")) },
        };
        if let Some(errno) = self.fail_next_read.take() {
            return Err(refused(errno, "injected failure".into()));
        }
        let t = self.table(family, table).ok_or_else(|| refused(libc::ENOENT, format!("no table {table}")))?;
        let s = t.sets.get(set).ok_or_else(|| refused(libc::ENOENT, format!("no set {set}")))?;
        Ok(s.elements
            .iter()
            .map(|(id, data)| {
                let times = s.timeouts.get(id);
                RawElement {
                    key: id.0.clone(),
                    flags: if id.1 { INTERVAL_END } else { 0 },
                    data: data.clone(),
                    timeout_ms: times.map(|t| t.0),
                    expiration_ms: times.map(|t| t.1),
                    ..RawElement::default()
                }
            })
            .collect())
    }
}

#[cfg(test)]
#[path = "fake_tests.rs"]
mod tests;
