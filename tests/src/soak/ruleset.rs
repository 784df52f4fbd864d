//! Comparing two namespaces' rulesets (`nft -j list ruleset`) as sets of objects: handles
//! and the order of set elements and of objects ignored, the order of rules in a chain kept
//! (it decides what matches first).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// A ruleset in canonical form: each non-rule object as one JSON line, and each chain's
/// rules in order.
#[derive(Debug, PartialEq, Eq)]
pub struct Canonical {
    objects: BTreeSet<String>,
    rules: BTreeMap<String, Vec<String>>,
}

impl Canonical {
    /// From the output of `nft -j list ruleset`.
    pub fn new(listing: &Value) -> Canonical {
        let mut objects = BTreeSet::new();
        let mut rules: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let items = listing["nftables"].as_array().map(Vec::as_slice).unwrap_or_default();
        for item in items {
            let Some((kind, body)) = item.as_object().and_then(|o| o.iter().next()) else { continue };
            if kind == "metainfo" {
                continue;
            }
            let mut body = body.clone();
            strip_handles(&mut body);
            if let Some(elems) = body.get_mut("elem").and_then(Value::as_array_mut) {
                elems.sort_by_cached_key(Value::to_string);
            }
            if kind == "rule" {
                let chain = format!("{} {} {}", body["family"], body["table"], body["chain"]);
                rules.entry(chain).or_default().push(body.to_string());
            } else {
                objects.insert(format!("{kind} {body}"));
            }
        }
        Canonical { objects, rules }
    }

    /// Number of objects and rules.
    pub fn size(&self) -> usize {
        self.objects.len() + self.rules.values().map(Vec::len).sum::<usize>()
    }

    /// Up to `limit` lines saying where `self` and `other` differ; empty when equal.
    pub fn differences(&self, other: &Canonical, limit: usize) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        out.extend(self.objects.difference(&other.objects).map(|o| format!("only in the first: {}", clip(o))));
        out.extend(other.objects.difference(&self.objects).map(|o| format!("only in the second: {}", clip(o))));
        let chains: BTreeSet<&String> = self.rules.keys().chain(other.rules.keys()).collect();
        for chain in chains {
            let (a, b) = (self.rules.get(chain), other.rules.get(chain));
            if a != b {
                let (la, lb) = (a.map_or(0, Vec::len), b.map_or(0, Vec::len));
                out.push(format!("chain {chain}: rules differ ({la} vs {lb} rules)"));
            }
        }
        out.truncate(limit);
        out
    }
}

fn strip_handles(v: &mut Value) {
    match v {
        Value::Object(o) => {
            o.remove("handle");
            o.values_mut().for_each(strip_handles);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_handles),
        _ => {}
    }
}

fn clip(s: &str) -> String {
    s.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn handles_and_element_order_do_not_count_rule_order_does() {
        let a = json!({"nftables": [
            {"metainfo": {"version": "1"}},
            {"map": {"family": "ip", "name": "m", "handle": 3, "elem": [[1, 2], [3, 4]]}},
            {"rule": {"family": "ip", "table": "t", "chain": "c", "handle": 5, "expr": [1]}},
            {"rule": {"family": "ip", "table": "t", "chain": "c", "handle": 6, "expr": [2]}},
        ]});
        let b = json!({"nftables": [
            {"rule": {"family": "ip", "table": "t", "chain": "c", "handle": 9, "expr": [1]}},
            {"map": {"family": "ip", "name": "m", "handle": 7, "elem": [[3, 4], [1, 2]]}},
            {"rule": {"family": "ip", "table": "t", "chain": "c", "handle": 8, "expr": [2]}},
        ]});
        assert_eq!(Canonical::new(&a), Canonical::new(&b));
        let c = json!({"nftables": [
            {"map": {"family": "ip", "name": "m", "elem": [[1, 2], [3, 4]]}},
            {"rule": {"family": "ip", "table": "t", "chain": "c", "expr": [2]}},
            {"rule": {"family": "ip", "table": "t", "chain": "c", "expr": [1]}},
        ]});
        let d = Canonical::new(&a).differences(&Canonical::new(&c), 5);
        assert_eq!(d.len(), 1, "{d:?}");
    }
}
