//! Drift: whether the kernel holds exactly the tables kproxy would commit for a state, and
//! if not, every difference named one by one ("missing: element 198.18.0.10 . tcp . 80 :
//! goto cluster-1 in map service-ips").
//!
//! Pure: the desired table comes from the same render step the backend commits
//! ([`desired_table`]), the actual one from a read-back ([`crate::trace::read_table`], or
//! [`TableDump::from_fake`] in tests), and [`compare`] lists the differences. [`check`] is
//! the whole-table in-sync check (`kproxy explain`, `kproxy doctor`): it reads the kernel,
//! read-only, in the calling thread's network namespace.
//!
//! Compared: the table itself, kproxy's sets (present, and their elements by key, key end,
//! interval-end flag and data), chains (present, hook and priority) and each chain's rules
//! (decoded expressions, in order). Not compared: comments and timeouts of elements, the
//! entries of the dynamic affinity maps (the packet path adds them), set declarations
//! beyond their presence.

mod describe;
mod desired;

use std::collections::BTreeMap;
use std::fmt;

use kproxy_core::model::{IpFamily, ProxyState};

pub use describe::{describe, Mentions};
pub use desired::{desired_table, rule_texts};

use crate::netlink::NetlinkError;
use crate::plan::{ip_word, SetId};
use crate::render::{Plan, FAMILIES};
use crate::stmt::Expr;
use crate::trace::table::{element_comment, DumpedRule, TableDump, ELEM_INTERVAL_END};
use crate::tx::{RawData, RawElement};

/// Which side has something the other lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Presence {
    /// kproxy would commit it; the kernel does not hold it.
    Missing,
    /// The kernel holds it; kproxy would not commit it.
    Extra,
    /// Both hold the same rules, in another order.
    Reordered,
}

impl Presence {
    /// `missing`, `extra`, `reordered`.
    pub fn as_str(self) -> &'static str {
        match self {
            Presence::Missing => "missing",
            Presence::Extra => "extra",
            Presence::Reordered => "reordered",
        }
    }
}

/// What differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    /// The whole table.
    Table,
    /// A set or map (its elements are then not compared).
    Set {
        /// Name.
        name: String,
    },
    /// A chain, or its hook (a base chain hooked elsewhere is missing and extra).
    Chain {
        /// Name.
        name: String,
        /// `hook N priority P` of a base chain.
        hook: Option<String>,
    },
    /// A rule of a chain (all of a chain's rules for [`Presence::Reordered`]).
    Rule {
        /// Chain.
        chain: String,
        /// nft's text of a rule kproxy would add; for a rule only the kernel holds, its
        /// comment or a summary of its expressions.
        text: String,
    },
    /// An element of a set or map. A changed value is the old element extra and the new one
    /// missing.
    Element {
        /// The set.
        set: SetId,
        /// nft's notation of key and value.
        text: String,
        /// The comment kproxy gives it (`ns/name:port` or `ns/name`; the kernel's for an
        /// extra element, if it has one).
        comment: Option<String>,
        /// The addresses and port it names.
        mentions: Mentions,
    },
}

/// One difference between the desired and the actual table of one family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// Table family.
    pub family: IpFamily,
    /// Table name.
    pub table: String,
    /// Missing, extra or reordered.
    pub presence: Presence,
    /// What.
    pub object: Object,
}

impl Difference {
    /// Whether this concerns an element (service data) rather than the table's structure
    /// (table, sets, chains, rules), which every Service depends on.
    pub fn is_element(&self) -> bool {
        matches!(self.object, Object::Element { .. })
    }
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Objects named as nft names them: `map ip kproxy service-ips`.
        let t = format!("{} {}", ip_word(self.family), self.table);
        let p = self.presence.as_str();
        match &self.object {
            Object::Table => write!(f, "{p}: table {t}"),
            Object::Set { name } => write!(f, "{p}: set {t} {name}"),
            Object::Chain { name, hook: None } => write!(f, "{p}: chain {t} {name}"),
            Object::Chain { name, hook: Some(h) } => write!(f, "{p}: chain {t} {name} ({h})"),
            Object::Rule { chain, text } => write!(f, "{p}: rule in chain {t} {chain}: {text}"),
            Object::Element { set, text, comment, .. } => {
                let kind = if set.is_map() { "map" } else { "set" };
                write!(f, "{p}: element {text} in {kind} {t} {}", set.name())?;
                match comment {
                    Some(c) => write!(f, " (comment \"{c}\")"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// A rule kproxy would add: its chain, its expressions as a dump decodes them, its nft text
/// (to name a missing rule as `nft list` shows it).
pub type RuleText = (String, Vec<Expr>, String);

/// Every difference between what kproxy would commit (`desired`) and what the kernel holds
/// (`actual`; `None`: the table does not exist) for one family. Sorted: structure first,
/// then elements by set.
pub fn compare(
    family: IpFamily,
    table: &str,
    desired: &TableDump,
    actual: Option<&TableDump>,
    rule_texts: &[RuleText],
) -> Vec<Difference> {
    let mut out = Vec::new();
    let mut push = |presence, object| out.push(Difference { family, table: table.into(), presence, object });
    let Some(actual) = actual else {
        push(Presence::Missing, Object::Table);
        return out;
    };
    for (name, want) in &desired.chains {
        let hook = want.hook.as_ref().map(|h| format!("hook {} priority {}", h.hooknum, h.priority));
        match actual.chains.get(name) {
            None => push(Presence::Missing, Object::Chain { name: name.clone(), hook }),
            Some(have) => {
                let have_hook = have.hook.as_ref().map(|h| format!("hook {} priority {}", h.hooknum, h.priority));
                if have_hook != hook {
                    push(Presence::Missing, Object::Chain { name: name.clone(), hook });
                    push(Presence::Extra, Object::Chain { name: name.clone(), hook: have_hook });
                }
                rules(name, &want.rules, &have.rules, rule_texts, &mut push);
            }
        }
    }
    for (name, have) in actual.chains.iter().filter(|(n, _)| !desired.chains.contains_key(*n)) {
        let hook = have.hook.as_ref().map(|h| format!("hook {} priority {}", h.hooknum, h.priority));
        push(Presence::Extra, Object::Chain { name: name.clone(), hook });
    }
    for (name, want) in &desired.sets {
        let Some(set) = SetId::ALL.into_iter().find(|s| s.name() == name) else { continue };
        match actual.sets.get(name) {
            None => push(Presence::Missing, Object::Set { name: name.clone() }),
            Some(_) if is_dynamic(set) => {}
            Some(have) => elements(family, set, &want.elements, &have.elements, &mut push),
        }
    }
    for name in actual.sets.keys().filter(|n| !desired.sets.contains_key(*n)) {
        push(Presence::Extra, Object::Set { name: name.clone() });
    }
    out
}

/// The packet path fills these; what they hold is not kproxy's to compare.
fn is_dynamic(set: SetId) -> bool {
    matches!(set, SetId::Affinity | SetId::NodeportAffinity)
}

/// An element's identity and value for comparison (comments and timeouts left out).
type ElementId = (Vec<u8>, Option<Vec<u8>>, bool, RawData);

fn id(e: &RawElement) -> ElementId {
    (e.key.clone(), e.key_end.clone(), e.flags & ELEM_INTERVAL_END != 0, e.data.clone())
}

fn elements(family: IpFamily, set: SetId, want: &[RawElement], have: &[RawElement], push: &mut impl FnMut(Presence, Object)) {
    let want: BTreeMap<ElementId, &RawElement> = want.iter().map(|e| (id(e), e)).collect();
    let have: BTreeMap<ElementId, &RawElement> = have.iter().map(|e| (id(e), e)).collect();
    let mut named = |presence, e: &RawElement| {
        let (text, mentions) = describe(set, family, e);
        push(presence, Object::Element { set, text, comment: element_comment(e), mentions });
    };
    for (k, e) in &want {
        if !have.contains_key(k) {
            named(Presence::Missing, e);
        }
    }
    for (k, e) in &have {
        if !want.contains_key(k) {
            named(Presence::Extra, e);
        }
    }
}

fn rules(
    chain: &str,
    want: &[DumpedRule],
    have: &[DumpedRule],
    texts: &[RuleText],
    push: &mut impl FnMut(Presence, Object),
) {
    // A fake kernel's table keeps set lookups typed; a kernel dump has them by name.
    let have: Vec<DumpedRule> = have.iter().map(|r| DumpedRule { exprs: by_name(&r.exprs), ..r.clone() }).collect();
    let have = &have[..];
    let same = |a: &DumpedRule, b: &DumpedRule| a.foreign.is_none() && b.foreign.is_none() && a.exprs == b.exprs && a.comment == b.comment;
    if want.len() == have.len() && want.iter().zip(have).all(|(a, b)| same(a, b)) {
        return;
    }
    let mut unmatched: Vec<&DumpedRule> = have.iter().collect();
    let mut any = false;
    for w in want {
        match unmatched.iter().position(|h| same(w, h)) {
            Some(i) => {
                unmatched.remove(i);
            }
            None => {
                any = true;
                let text = texts
                    .iter()
                    .find(|(c, e, _)| c == chain && *e == w.exprs)
                    .map_or_else(|| summary(w), |(_, _, t)| t.clone());
                push(Presence::Missing, Object::Rule { chain: chain.into(), text });
            }
        }
    }
    for h in &unmatched {
        any = true;
        push(Presence::Extra, Object::Rule { chain: chain.into(), text: summary(h) });
    }
    if !any {
        push(Presence::Reordered, Object::Rule { chain: chain.into(), text: format!("{} rules in another order", want.len()) });
    }
}

/// Expressions with set lookups by name, as a kernel dump decodes them.
pub(crate) fn by_name(exprs: &[Expr]) -> Vec<Expr> {
    exprs
        .iter()
        .map(|e| match e {
            Expr::Lookup { sreg, set, dreg, invert } => {
                Expr::LookupNamed { sreg: *sreg, name: set.name().into(), dreg: *dreg, invert: *invert }
            }
            other => other.clone(),
        })
        .collect()
}

/// A rule the renderer has no text for: its comment, else what it is made of.
fn summary(r: &DumpedRule) -> String {
    let what = match &r.foreign {
        Some(kind) => format!("a rule with a `{kind}` expression kproxy never emits"),
        None => format!("a rule of {} expressions", r.exprs.len()),
    };
    match &r.comment {
        Some(c) => format!("{what}, comment \"{c}\""),
        None => what,
    }
}

/// Why [`check`] could not compare.
#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    /// Reading a table back from the kernel failed (not for a missing table: that is drift).
    #[error("reading table {family} {table} back from the kernel failed")]
    Read {
        /// `ip` or `ip6`.
        family: &'static str,
        /// Table name.
        table: String,
        /// The netlink error.
        #[source]
        source: NetlinkError,
    },
}

/// Renders `state` and compares both families' tables named `table` with the kernel's (of
/// the calling thread's network namespace), read-only. An empty result: in sync.
pub fn check(state: &ProxyState, table: &str) -> Result<Vec<Difference>, DriftError> {
    check_with(state, table, |family| match crate::trace::read_table(family, table) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(source) => Err(DriftError::Read { family: ip_word(family), table: table.into(), source }),
    })
}

/// [`check`] with the read-back supplied by the caller (`None`: no such table), e.g. from a
/// [`crate::lowlevel::FakeKernel`] through [`TableDump::from_fake`].
pub fn check_with(
    state: &ProxyState,
    table: &str,
    mut read: impl FnMut(IpFamily) -> Result<Option<TableDump>, DriftError>,
) -> Result<Vec<Difference>, DriftError> {
    let plan = Plan::render(state);
    let mut out = Vec::new();
    for family in FAMILIES {
        let actual = read(family)?;
        let desired = desired_table(&plan, family);
        out.extend(compare(family, table, &desired, actual.as_ref(), &rule_texts(&plan, family)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
