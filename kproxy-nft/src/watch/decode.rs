//! Pure decoding and matching of nf_tables notifications: which object of which table a
//! notification is about, and which commits were someone else's. No sockets here.
//!
//! What the kernel sends (`net/netfilter/nf_tables_api.c`, checked with `nft monitor` and the
//! tests of `tests/tests/daemon_tamper.rs`): for each committed change one message per object
//! (`NFT_MSG_NEW*` / `NFT_MSG_DEL*`; destroy verbs are notified as `DEL*`), then one
//! `NFT_MSG_NEWGEN` with the new generation and the committing process's pid and name. Every
//! one of them carries, in `nlmsg_pid`, the port id of the netlink socket that sent the batch.
//! So a commit is someone else's exactly when its port id is not one of kproxy's commit
//! sockets, and it ends at its `NEWGEN`.

use std::fmt;

use kproxy_netlink::{Attrs, Msg};

/// The nf_tables netlink subsystem (`NFNL_SUBSYS_NFTABLES`).
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFT_MSG_NEWGEN`: the end of a commit's notifications.
const NFT_MSG_NEWGEN: u16 = 15;
/// Attributes of `NEWGEN`.
const NFTA_GEN_ID: u16 = 1;
const NFTA_GEN_PROC_PID: u16 = 2;
const NFTA_GEN_PROC_NAME: u16 = 3;
/// `NFTA_*_TABLE` is attribute 1 of every object that lives in a table.
const NFTA_TABLE: u16 = 1;
/// `NFTA_SET_ELEM_LIST_ELEMENTS`: the nest of elements of a `*SETELEM` message.
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;

/// `NFPROTO_*` numbers of the families kproxy programs (`nfgenmsg.nfgen_family`).
const NFPROTO_INET: u8 = 1;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;

/// What kind of nf_tables object a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    /// A table.
    Table,
    /// A chain.
    Chain,
    /// A rule (its chain is the name).
    Rule,
    /// A set or map.
    Set,
    /// Set or map elements (the set is the name).
    Element,
    /// A stateful object (counter, quota, ...).
    Object,
    /// A flowtable.
    Flowtable,
}

impl ObjectKind {
    fn noun(self, many: bool) -> &'static str {
        match (self, many) {
            (ObjectKind::Table, false) => "table",
            (ObjectKind::Table, true) => "tables",
            (ObjectKind::Chain, false) => "chain",
            (ObjectKind::Chain, true) => "chains",
            (ObjectKind::Rule, false) => "rule",
            (ObjectKind::Rule, true) => "rules",
            (ObjectKind::Set, false) => "set",
            (ObjectKind::Set, true) => "sets",
            (ObjectKind::Element, false) => "element",
            (ObjectKind::Element, true) => "elements",
            (ObjectKind::Object, false) => "object",
            (ObjectKind::Object, true) => "objects",
            (ObjectKind::Flowtable, false) => "flowtable",
            (ObjectKind::Flowtable, true) => "flowtables",
        }
    }

    /// Where the name attribute is, and what the name names (`None`: no name kept).
    fn name_attr(self) -> Option<u16> {
        match self {
            ObjectKind::Table => None,
            // NFTA_CHAIN_NAME, NFTA_RULE_CHAIN, NFTA_SET_NAME, NFTA_SET_ELEM_LIST_SET,
            // NFTA_OBJ_NAME, NFTA_FLOWTABLE_NAME.
            ObjectKind::Chain => Some(3),
            ObjectKind::Rule | ObjectKind::Set | ObjectKind::Element | ObjectKind::Object | ObjectKind::Flowtable => {
                Some(2)
            }
        }
    }
}

/// Whether an object was added or deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verb {
    /// `NFT_MSG_NEW*`.
    Add,
    /// `NFT_MSG_DEL*` (also `destroy` and flushes).
    Delete,
}

/// One object change of a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Added or deleted.
    pub verb: Verb,
    /// What kind of object.
    pub kind: ObjectKind,
    /// The table's family as `nft` names it (`ip`, `ip6`, `inet`, or the number).
    pub family: String,
    /// The table.
    pub table: String,
    /// The chain (of a chain or rule) or set (of a set or elements); `None` for a table.
    pub name: Option<String>,
    /// How many objects: the number of elements of an element message, else 1.
    pub count: usize,
}

impl Change {
    /// `table ip kproxy`, `chain ip kproxy services`, ...: as `nft` would name it.
    fn subject(&self) -> String {
        match &self.name {
            Some(name) => format!("{} {} {} {}", self.kind_of_name(), self.family, self.table, name),
            None => format!("table {} {}", self.family, self.table),
        }
    }

    /// The kind of object `name` names.
    fn kind_of_name(&self) -> &'static str {
        match self.kind {
            ObjectKind::Rule | ObjectKind::Chain => "chain",
            ObjectKind::Element | ObjectKind::Set => "set",
            other => other.noun(false),
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match self.verb {
            Verb::Add => "added",
            Verb::Delete => "deleted",
        };
        match self.kind {
            ObjectKind::Table | ObjectKind::Chain | ObjectKind::Set => write!(f, "{verb} {}", self.subject()),
            kind => write!(f, "{verb} {} {} in {}", self.count, kind.noun(self.count != 1), self.subject()),
        }
    }
}

/// A decoded nf_tables notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// An object changed.
    Change {
        /// Port id of the socket whose commit it was.
        port: u32,
        /// The change.
        change: Change,
    },
    /// A commit ended (`NFT_MSG_NEWGEN`).
    Generation {
        /// Port id of the socket whose commit it was.
        port: u32,
        /// The new generation.
        id: u32,
        /// The committing process's pid, if the kernel said.
        pid: Option<u32>,
        /// The committing process's name (`comm`), if the kernel said.
        process: Option<String>,
    },
}

fn family_name(family: u8) -> String {
    match family {
        NFPROTO_INET => "inet".into(),
        NFPROTO_IPV4 => "ip".into(),
        NFPROTO_IPV6 => "ip6".into(),
        n => format!("family {n}"),
    }
}

fn string_attr(payload: &[u8], kind: u16) -> Option<String> {
    Attrs::new(payload).find(|a| a.kind == kind).and_then(|a| a.str()).map(str::to_owned)
}

/// Decodes one message received on a socket subscribed to `NFNLGRP_NFTABLES`; `None` for
/// anything else (other subsystems, GET answers, truncated messages).
pub fn decode(msg: &Msg<'_>) -> Option<Notification> {
    if msg.msg_type >> 8 != NFNL_SUBSYS_NFTABLES || msg.payload.len() < 4 {
        return None;
    }
    let family = msg.payload[0];
    let attrs = &msg.payload[4..];
    let (verb, kind) = match msg.msg_type & 0xff {
        0 => (Verb::Add, ObjectKind::Table),
        2 => (Verb::Delete, ObjectKind::Table),
        3 => (Verb::Add, ObjectKind::Chain),
        5 => (Verb::Delete, ObjectKind::Chain),
        6 => (Verb::Add, ObjectKind::Rule),
        8 => (Verb::Delete, ObjectKind::Rule),
        9 => (Verb::Add, ObjectKind::Set),
        11 => (Verb::Delete, ObjectKind::Set),
        12 => (Verb::Add, ObjectKind::Element),
        14 => (Verb::Delete, ObjectKind::Element),
        18 => (Verb::Add, ObjectKind::Object),
        20 => (Verb::Delete, ObjectKind::Object),
        22 => (Verb::Add, ObjectKind::Flowtable),
        24 => (Verb::Delete, ObjectKind::Flowtable),
        NFT_MSG_NEWGEN => {
            let find = |k| Attrs::new(attrs).find(|a| a.kind == k);
            return Some(Notification::Generation {
                port: msg.port,
                id: find(NFTA_GEN_ID)?.be32()?,
                pid: find(NFTA_GEN_PROC_PID).and_then(|a| a.be32()),
                process: string_attr(attrs, NFTA_GEN_PROC_NAME),
            });
        }
        _ => return None,
    };
    // A table names itself with NFTA_TABLE_NAME (1), everything else its table with attribute 1.
    let table = string_attr(attrs, NFTA_TABLE)?;
    let name = kind.name_attr().and_then(|k| string_attr(attrs, k));
    let count = if kind == ObjectKind::Element {
        Attrs::new(attrs)
            .find(|a| a.kind & kproxy_netlink::NLA_TYPE_MASK == NFTA_SET_ELEM_LIST_ELEMENTS)
            .map_or(1, |a| a.nested().count().max(1))
    } else {
        1
    };
    Some(Notification::Change { port: msg.port, change: Change { verb, kind, family: family_name(family), table, name, count } })
}

/// One commit by someone other than kproxy that changed a watched table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignCommit {
    /// The port id of the committing socket.
    pub port: u32,
    /// The generation the commit made.
    pub generation: u32,
    /// The committing process's pid, if the kernel said.
    pub pid: Option<u32>,
    /// The committing process's name, if the kernel said.
    pub process: Option<String>,
    /// What it changed in the watched tables, merged by verb and object (counts added up).
    pub changes: Vec<Change>,
}

/// How many distinct changes [`ForeignCommit`]'s text lists before "and N more".
const SHOWN: usize = 6;

impl fmt::Display for ForeignCommit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = match (&self.process, self.pid) {
            (Some(name), Some(pid)) => format!("`{name}` (pid {pid})"),
            (None, Some(pid)) => format!("pid {pid}"),
            (Some(name), None) => format!("`{name}`"),
            (None, None) => format!("netlink port {}", self.port),
        };
        // Deleting a table deletes everything in it, one notification each: name the table only.
        let deleted_table = |c: &Change| {
            self.changes.iter().any(|t| {
                t.kind == ObjectKind::Table && t.verb == Verb::Delete && t.family == c.family && t.table == c.table
            })
        };
        let listed: Vec<&Change> = self
            .changes
            .iter()
            .filter(|c| c.kind == ObjectKind::Table || c.verb == Verb::Add || !deleted_table(c))
            .collect();
        let shown: Vec<String> = listed.iter().take(SHOWN).map(|c| c.to_string()).collect();
        write!(f, "{who} {}", shown.join(", "))?;
        if listed.len() > SHOWN {
            write!(f, ", and {} more changes", listed.len() - SHOWN)?;
        }
        Ok(())
    }
}

/// Groups notifications into commits and keeps the foreign commits that touched a watched
/// table. Pure: feed it what the socket received.
#[derive(Debug, Clone)]
pub struct Matcher {
    tables: Vec<String>,
    own_ports: Vec<u32>,
    /// Foreign changes of watched tables seen since the last `NEWGEN`.
    pending: Vec<(u32, Change)>,
}

impl Matcher {
    /// Watches the tables named `tables` (any family); commits from the sockets of `own_ports`
    /// are kproxy's own.
    pub fn new(tables: &[&str], own_ports: &[u32]) -> Matcher {
        Matcher {
            tables: tables.iter().map(|t| t.to_string()).collect(),
            own_ports: own_ports.to_vec(),
            pending: Vec::new(),
        }
    }

    /// Feeds one notification; returns a foreign commit when this one ends it.
    pub fn feed(&mut self, n: Notification) -> Option<ForeignCommit> {
        match n {
            Notification::Change { port, change } => {
                if !self.own_ports.contains(&port) && self.tables.contains(&change.table) {
                    self.pending.push((port, change));
                }
                None
            }
            Notification::Generation { port, id, pid, process } => {
                // Changes of other ports cannot end at this generation; they are dropped with
                // it (the kernel never interleaves two commits' notifications).
                let mine: Vec<Change> =
                    std::mem::take(&mut self.pending).into_iter().filter(|(p, _)| *p == port).map(|(_, c)| c).collect();
                if mine.is_empty() {
                    return None;
                }
                Some(ForeignCommit { port, generation: id, pid, process, changes: merge(mine) })
            }
        }
    }

    /// Forgets partial commits (after notifications were lost).
    pub fn reset(&mut self) {
        self.pending.clear();
    }
}

/// Merges changes of the same verb, kind and object, adding up their counts: deleting a table
/// notifies every rule, set and chain of it, one message each. Tables first, then chains,
/// rules, sets and elements, each in the order seen.
fn merge(changes: Vec<Change>) -> Vec<Change> {
    let mut out: Vec<Change> = Vec::new();
    for c in changes {
        match out
            .iter_mut()
            .find(|o| o.verb == c.verb && o.kind == c.kind && o.family == c.family && o.table == c.table && o.name == c.name)
        {
            Some(o) => o.count += c.count,
            None => out.push(c),
        }
    }
    out.sort_by_key(|c| c.kind);
    out
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
