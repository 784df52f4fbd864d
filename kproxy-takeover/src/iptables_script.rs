//! Pure: the text of `iptables-save` in, an `iptables-restore --noflush` script out.
//!
//! Which chains are kube-proxy's follows upstream's own mode switch
//! (`CleanupLeftovers` in pkg/proxy/iptables and pkg/proxy/ipvs): fixed names plus the
//! per-service prefixes. Chains that kubelet owns (`KUBE-FIREWALL`, `KUBE-KUBELET-CANARY`,
//! `KUBE-MARK-DROP`) are not kube-proxy's and stay, as upstream leaves them.
//!
//! The script per table declares each kube-proxy chain (which flushes it), deletes
//! (`-D`) every rule of a built-in chain that jumps to one, then deletes (`-X`) the chains:
//! one atomic commit per table. A kube-proxy chain that a foreign user chain still jumps to
//! is kept (with everything it reaches), and reported, because deleting it would make the
//! whole table's commit fail and removing the foreign rule would touch what is not ours.

use std::collections::{BTreeMap, BTreeSet};

/// The tables kube-proxy writes to.
pub const TABLES: &[&str] = &["filter", "nat", "mangle"];

/// kube-proxy's chains with fixed names: iptables mode (`KUBE-SERVICES`, `KUBE-NODEPORTS`,
/// `KUBE-POSTROUTING`, `KUBE-MARK-MASQ`, `KUBE-EXTERNAL-SERVICES`, `KUBE-FORWARD`,
/// `KUBE-PROXY-FIREWALL`, `KUBE-PROXY-CANARY`) and IPVS mode's iptables helpers.
pub const FIXED_CHAINS: &[&str] = &[
    "KUBE-SERVICES",
    "KUBE-NODEPORTS",
    "KUBE-POSTROUTING",
    "KUBE-MARK-MASQ",
    "KUBE-EXTERNAL-SERVICES",
    "KUBE-FORWARD",
    "KUBE-PROXY-FIREWALL",
    "KUBE-PROXY-CANARY",
    // IPVS mode.
    "KUBE-NODE-PORT",
    "KUBE-LOAD-BALANCER",
    "KUBE-SOURCE-RANGES-FIREWALL",
    "KUBE-IPVS-FILTER",
    "KUBE-IPVS-OUT-FILTER",
];

/// Prefixes of kube-proxy's per-service and per-endpoint chains.
pub const CHAIN_PREFIXES: &[&str] = &["KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SEP-"];

/// Whether `chain` is one kube-proxy creates (and its mode switch removes).
pub fn is_kube_proxy_chain(chain: &str) -> bool {
    FIXED_CHAINS.contains(&chain) || CHAIN_PREFIXES.iter().any(|p| chain.starts_with(p))
}

/// One table of `iptables-save` output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedTable {
    /// Chains in order; `true` for built-in chains (those with a policy).
    pub chains: Vec<(String, bool)>,
    /// Rules as `(chain, rest of the line after "-A CHAIN ")`.
    pub rules: Vec<(String, String)>,
}

/// Parses every table of `iptables-save` output (comments and counters ignored).
pub fn parse_save(text: &str) -> BTreeMap<String, SavedTable> {
    let mut tables = BTreeMap::new();
    let mut current: Option<(String, SavedTable)> = None;
    for line in text.lines().map(str::trim_end) {
        if let Some(name) = line.strip_prefix('*') {
            current = Some((name.to_string(), SavedTable::default()));
        } else if line == "COMMIT" {
            if let Some((name, table)) = current.take() {
                tables.insert(name, table);
            }
        } else if let (Some(decl), Some((_, table))) = (line.strip_prefix(':'), current.as_mut()) {
            let mut words = decl.split_whitespace();
            if let Some(chain) = words.next() {
                let builtin = words.next().is_some_and(|policy| policy != "-");
                table.chains.push((chain.to_string(), builtin));
            }
        } else if let (Some(rule), Some((_, table))) = (line.strip_prefix("-A "), current.as_mut()) {
            if let Some((chain, rest)) = rule.split_once(' ') {
                table.rules.push((chain.to_string(), rest.to_string()));
            }
        }
    }
    tables
}

/// The chain a rule jumps or goes to (`-j X` / `-g X` / `--jump X` / `--goto X`), if any.
pub fn rule_target(rule: &str) -> Option<String> {
    let words = split_words(rule);
    words.windows(2).find(|w| matches!(w[0].as_str(), "-j" | "-g" | "--jump" | "--goto")).map(|w| w[1].clone())
}

/// Splits a rule as iptables-restore does: whitespace, double quotes, backslash escapes.
fn split_words(rule: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let (mut quoted, mut in_word, mut chars) = (false, false, rule.chars());
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                word.extend(chars.next());
                in_word = true;
            }
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                }
                in_word = false;
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// What removing kube-proxy's leftovers from one table means.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TablePlan {
    /// The table (`filter`, `nat`, `mangle`).
    pub table: String,
    /// kube-proxy chains to flush and delete.
    pub chains: Vec<String>,
    /// Rules of built-in chains that jump to them, as `(chain, rule)`.
    pub jumps: Vec<(String, String)>,
    /// kube-proxy chains kept because a foreign chain still jumps to them.
    pub kept: Vec<String>,
}

impl TablePlan {
    /// Nothing to remove.
    pub fn is_empty(&self) -> bool {
        self.chains.is_empty() && self.jumps.is_empty()
    }

    /// The `iptables-restore --noflush` input that carries out the plan in one commit.
    pub fn restore_script(&self) -> String {
        let mut out = format!("*{}\n", self.table);
        for chain in &self.chains {
            out.push_str(&format!(":{chain} - [0:0]\n"));
        }
        for (chain, rule) in &self.jumps {
            out.push_str(&format!("-D {chain} {rule}\n"));
        }
        for chain in &self.chains {
            out.push_str(&format!("-X {chain}\n"));
        }
        out.push_str("COMMIT\n");
        out
    }
}

/// Plans the removal for each of [`TABLES`] present in `saved`.
pub fn plan(saved: &BTreeMap<String, SavedTable>) -> Vec<TablePlan> {
    TABLES.iter().filter_map(|name| saved.get(*name).map(|t| plan_table(name, t))).collect()
}

fn plan_table(name: &str, table: &SavedTable) -> TablePlan {
    let builtin: BTreeSet<&str> = table.chains.iter().filter(|(_, b)| *b).map(|(c, _)| c.as_str()).collect();
    let mut remove: BTreeSet<&str> =
        table.chains.iter().filter(|(c, b)| !b && is_kube_proxy_chain(c)).map(|(c, _)| c.as_str()).collect();
    let targets: Vec<(&str, Option<String>)> = table.rules.iter().map(|(c, r)| (c.as_str(), rule_target(r))).collect();
    // Keep what a kept (foreign) user chain reaches, until nothing changes.
    let mut kept = BTreeSet::new();
    loop {
        let newly: Vec<&str> = targets
            .iter()
            .filter(|(from, _)| !builtin.contains(from) && !remove.contains(from))
            .filter_map(|(_, to)| to.as_deref())
            .filter_map(|to| remove.get(to).copied())
            .collect();
        if newly.is_empty() {
            break;
        }
        for chain in newly {
            remove.remove(chain);
            kept.insert(chain.to_string());
        }
    }
    let jumps = table
        .rules
        .iter()
        .zip(&targets)
        .filter(|(_, (from, to))| builtin.contains(from) && to.as_deref().is_some_and(|t| remove.contains(t)))
        .map(|((chain, rule), _)| (chain.clone(), rule.clone()))
        .collect();
    // Declaration order of the save output, so scripts and logs are stable.
    let chains = table.chains.iter().filter(|(c, _)| remove.contains(c.as_str())).map(|(c, _)| c.clone()).collect();
    TablePlan { table: name.to_string(), chains, jumps, kept: kept.into_iter().collect() }
}

#[cfg(test)]
#[path = "iptables_script_tests.rs"]
mod tests;
