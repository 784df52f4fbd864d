//! ProxyState -> [`Plan`]: the pure render step.

use std::collections::{BTreeMap, BTreeSet};

use kproxy_core::model::{IpFamily, ProxySettings, ProxyState};

use crate::elements::all_elements;
use crate::plan::{ChainRef, Element, Value};
use crate::skeleton::{dynamic_rules, skeleton, Skeleton};
use crate::stmt::Rule;

/// Everything one family's table holds apart from elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyPlan {
    /// Family of the table.
    pub family: IpFamily,
    /// Fixed chains and rules.
    pub skeleton: Skeleton,
    /// Chains created because elements point to them, with their rules.
    pub dynamic: BTreeMap<ChainRef, Vec<Rule>>,
}

/// The complete desired ruleset: both tables and every element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The `ip` and the `ip6` table.
    pub families: Vec<FamilyPlan>,
    /// Every element (possibly repeated when several service ports need it).
    pub elements: Vec<Element>,
}

/// Both families, in table order.
pub const FAMILIES: [IpFamily; 2] = [IpFamily::V4, IpFamily::V6];

impl Plan {
    /// Renders a state.
    pub fn render(state: &ProxyState) -> Plan {
        let elements = all_elements(state);
        let chains = referenced_chains(&elements);
        let families = FAMILIES
            .iter()
            .map(|&family| FamilyPlan {
                family,
                skeleton: skeleton(family, &state.settings),
                dynamic: chains
                    .iter()
                    .filter(|(f, _)| *f == family)
                    .map(|(_, c)| (*c, dynamic_rules(family, *c, &state.settings)))
                    .collect(),
            })
            .collect();
        Plan { families, elements }
    }
}

/// The dynamic chains elements point to.
pub fn referenced_chains(elements: &[Element]) -> BTreeSet<(IpFamily, ChainRef)> {
    elements
        .iter()
        .filter_map(|e| match e.value {
            Value::Verdict(v) => v.chain().filter(|c| c.is_dynamic()).map(|c| (e.family, c)),
            _ => None,
        })
        .collect()
}

/// The rules of a dynamic chain (re-exported for the diff step).
pub fn chain_rules(family: IpFamily, chain: ChainRef, settings: &ProxySettings) -> Vec<Rule> {
    dynamic_rules(family, chain, settings)
}
