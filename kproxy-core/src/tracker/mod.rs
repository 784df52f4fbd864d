//! Incremental change tracking: the [`ChangeTracker`] owns the current (reduced) objects and
//! the current [`ProxyState`], takes [`ClusterEvent`]s, and on [`ChangeTracker::take_changes`]
//! re-translates only the services whose Service or EndpointSlices changed since the last
//! take. A one-endpoint change therefore costs one service's translation, whatever the
//! cluster size.
//!
//! Addresses two Services claim (the same ClusterIP:port, NodePort, ExternalIP:port or
//! LoadBalancer IP:port) go to one owner decided from the objects alone (`claims`); the
//! tracker re-resolves the other claimants when an owner changes, so incremental and
//! from-scratch translation agree, and reports each conflict and each address outside the
//! allow-lists once ([`ChangeTracker::take_address_notices`]).

mod claims;
mod one_shot;
mod time;

use std::collections::btree_map;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;

pub use claims::{AddressIssueCounts, AddressNotice};
pub use one_shot::{translate, ClusterObjects, Translation};
pub use time::parse_rfc3339;

use crate::diagnostic::Diagnostic;
use crate::event::{ClusterEvent, ObjectKind, Update};
use claims::{Claim, Issue, Ownership, Rank};

use crate::model::{Change, ChangeSet, IpFamily, Protocol, ProxySettings, ProxyState, ServicePort, ServicePortKey, ServicePortName};
use crate::translate::{self, meta, NodeContext, NodeInfo, NodeNames, ServiceInfo, SliceInfo, TranslateOptions};

/// Namespace and name of an object, in one allocation (`namespace/name`; the split is kept, so
/// malformed names containing `/` cannot collide).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ObjKey {
    joined: String,
    split: usize,
}

impl ObjKey {
    fn new(namespace: &str, name: &str) -> ObjKey {
        let mut joined = String::with_capacity(namespace.len() + 1 + name.len());
        joined.push_str(namespace);
        joined.push('/');
        joined.push_str(name);
        ObjKey { joined, split: namespace.len() }
    }

    fn namespace(&self) -> &str {
        &self.joined[..self.split]
    }

    fn name(&self) -> &str {
        &self.joined[self.split + 1..]
    }
}

/// Everything known about one service name: its Service (if any, and ours), its slices, and
/// bookkeeping for incremental updates.
#[derive(Debug, Default)]
struct Entry {
    service: Option<ServiceInfo>,
    /// Slices filed under this service, sorted by slice name (the stable order duplicates are
    /// merged in). A Vec: services almost always have one or two.
    slices: Vec<(String, SliceInfo)>,
    /// Number of service ports this service has in the state.
    ports_in_state: usize,
    /// The destinations this service's ports claim, as registered in the tracker's owners,
    /// and the rank they were registered with.
    claims: Vec<Claim>,
    rank: Option<Rank>,
    /// Its addresses that are not programmed (lost conflicts, outside the allow-lists), sorted.
    issues: Vec<Issue>,
    service_dirty: bool,
    endpoints_dirty: bool,
}

/// When the change behind an EndpointSlice update happened
/// (`endpoints.kubernetes.io/last-change-trigger-time`), for the
/// `network_programming_duration_seconds` metric.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerTime {
    /// Namespace of the service.
    pub namespace: String,
    /// Name of the service the slice belongs to.
    pub service: String,
    /// The annotation's time, in seconds since the Unix epoch.
    pub unix_seconds: f64,
    /// The slice's address family (`addressType`): the metric is labelled with it.
    pub family: IpFamily,
}

/// What [`ChangeTracker::take_changes`] returns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TakenChanges {
    /// The changes from the previous [`ChangeTracker::state`] to the new one.
    pub changes: ChangeSet,
    /// Trigger times of the EndpointSlice changes included.
    pub trigger_times: Vec<TriggerTime>,
}

/// Changes waiting for the next take (`sync_proxy_rules_*_changes_pending`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PendingChanges {
    /// Services whose Service object changed.
    pub services: usize,
    /// Services whose EndpointSlices changed.
    pub endpoints: usize,
}

/// Changes seen since the tracker was created (`sync_proxy_rules_*_changes_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChangeTotals {
    /// Service events that changed what the proxy knows of a service.
    pub services: u64,
    /// EndpointSlice events that changed what the proxy knows of a service's endpoints.
    pub endpoints: u64,
}

/// Owns the cluster objects and the desired state; turns events into change sets.
#[derive(Debug, Default)]
pub struct ChangeTracker {
    settings: ProxySettings,
    options: TranslateOptions,
    entries: HashMap<ObjKey, Entry>,
    /// Slice (namespace/name) -> the service it is filed under.
    slice_owner: HashMap<ObjKey, ObjKey>,
    node_names: NodeNames,
    service_cidrs: BTreeMap<String, Vec<IpNet>>,
    node: Option<NodeInfo>,
    /// Entries with a dirty flag set, each once.
    dirty: Vec<ObjKey>,
    pending: PendingChanges,
    cidrs_dirty: bool,
    trigger_times: Vec<TriggerTime>,
    totals: ChangeTotals,
    wait_for: BTreeSet<ObjectKind>,
    synced: BTreeSet<ObjectKind>,
    /// Who owns each address two Services may claim, and what is reported about it.
    ownership: Ownership,
    /// Node name and zone the current state was categorised with.
    topology: (String, Option<String>),
    /// The one copy of the desired state. Shared read-only through
    /// [`ChangeTracker::snapshot`]; changed in place at a take (copied only if a snapshot is
    /// still held then).
    state: Arc<ProxyState>,
}

/// Which part of an entry changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Service,
    Endpoints,
}

/// Set a dirty flag, queueing the entry once and counting the change.
fn mark(entry: &mut Entry, key: &ObjKey, part: Part, t: &mut Marks<'_>) {
    let was_dirty = entry.service_dirty || entry.endpoints_dirty;
    let flag = match part {
        Part::Service => {
            t.totals.services += 1;
            &mut entry.service_dirty
        }
        Part::Endpoints => {
            t.totals.endpoints += 1;
            &mut entry.endpoints_dirty
        }
    };
    if !*flag {
        *flag = true;
        match part {
            Part::Service => t.pending.services += 1,
            Part::Endpoints => t.pending.endpoints += 1,
        }
    }
    if !was_dirty {
        t.dirty.push(key.clone());
    }
}

/// The tracker fields [`mark`] updates (borrowed apart from `entries`).
struct Marks<'a> {
    dirty: &'a mut Vec<ObjKey>,
    pending: &'a mut PendingChanges,
    totals: &'a mut ChangeTotals,
}

impl ChangeTracker {
    /// An empty tracker. `settings` are the caller's (from the configuration); facts the
    /// caller left open are completed from the Node object (see [`ChangeTracker::state`]).
    pub fn new(settings: ProxySettings, options: TranslateOptions) -> ChangeTracker {
        let state = Arc::new(ProxyState { settings: settings.clone(), ..ProxyState::default() });
        let topology = (settings.node_name.clone(), None);
        ChangeTracker { settings, options, state, topology, ..ChangeTracker::default() }
    }

    /// Make [`ChangeTracker::is_synced`] wait for [`ClusterEvent::Synced`] of these kinds.
    pub fn wait_for(&mut self, kinds: &[ObjectKind]) {
        self.wait_for.extend(kinds.iter().copied());
    }

    /// Whether every kind given to [`ChangeTracker::wait_for`] has been synced.
    pub fn is_synced(&self) -> bool {
        self.wait_for.is_subset(&self.synced)
    }

    /// The desired state as of the last take.
    pub fn state(&self) -> &ProxyState {
        &self.state
    }

    /// The desired state as of the last take, shared: this is how the state reaches a backend
    /// on another thread without being copied. Drop the snapshot before the next take (as the
    /// sync loop does when its sync ends): a take while a snapshot is alive copies the state
    /// once to keep the snapshot unchanged.
    pub fn snapshot(&self) -> Arc<ProxyState> {
        Arc::clone(&self.state)
    }

    /// Replace the caller's settings (takes effect at the next take; a new node name
    /// re-translates every service, since it decides which endpoints are local).
    pub fn set_settings(&mut self, settings: ProxySettings) {
        // A Node kept under the old name is not this node any more; its source sends the new one.
        if self.node.as_ref().is_some_and(|n| !settings.node_name.is_empty() && n.name != settings.node_name) {
            self.node = None;
        }
        self.settings = settings;
    }

    /// Changes waiting for the next take.
    pub fn pending(&self) -> PendingChanges {
        self.pending
    }

    /// Whether the next take may produce changes.
    pub fn has_pending(&self) -> bool {
        !self.dirty.is_empty()
            || self.cidrs_dirty
            || self.state.settings != translate::effective_settings(&self.settings, self.node.as_ref())
    }

    /// Addresses currently not programmed because another Service owns them or they are
    /// outside the allow-lists (as of the last take).
    pub fn address_issues(&self) -> &AddressIssueCounts {
        self.ownership.counts()
    }

    /// What started or stopped being skipped at the takes since the last call: each conflict
    /// or disallowed address is reported once when it starts and once when it ends.
    pub fn take_address_notices(&mut self) -> Vec<AddressNotice> {
        self.ownership.take_notices()
    }

    /// Changes seen since the tracker was created.
    pub fn totals(&self) -> ChangeTotals {
        self.totals
    }

    /// Take one event. Returns the problems found in the object (which is then skipped, in
    /// whole or in part).
    pub fn apply(&mut self, event: ClusterEvent) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        match event {
            ClusterEvent::Service(Update::Upsert(svc)) => self.upsert_service(&svc, &mut out),
            ClusterEvent::Service(Update::Delete { namespace, name }) => {
                self.set_service(ObjKey::new(&namespace, &name), None);
            }
            ClusterEvent::EndpointSlice(Update::Upsert(slice)) => self.upsert_slice(&slice, &mut out),
            ClusterEvent::EndpointSlice(Update::Delete { namespace, name }) => {
                self.remove_slice(&ObjKey::new(&namespace, &name));
            }
            ClusterEvent::ServiceCidr(Update::Upsert(obj)) => self.upsert_service_cidr(&obj, &mut out),
            ClusterEvent::ServiceCidr(Update::Delete { name, .. }) => {
                if self.service_cidrs.remove(&name).is_some() {
                    self.cidrs_dirty = true;
                }
            }
            ClusterEvent::Node(Update::Upsert(node)) => self.upsert_node(&node, &mut out),
            ClusterEvent::Node(Update::Delete { name, .. }) => {
                if self.node.as_ref().is_some_and(|n| n.name == name) {
                    self.node = None;
                }
            }
            ClusterEvent::Synced(kind) => {
                self.synced.insert(kind);
            }
        }
        out
    }

    fn marks(&mut self) -> (&mut HashMap<ObjKey, Entry>, Marks<'_>) {
        (&mut self.entries, Marks { dirty: &mut self.dirty, pending: &mut self.pending, totals: &mut self.totals })
    }

    pub(crate) fn upsert_service(&mut self, svc: &Service, out: &mut Vec<Diagnostic>) {
        let info = translate::parse_service(svc, &self.options, out);
        // Without a name (reported by parse) nothing can be tracked.
        let Some(name) = svc.metadata.name.as_deref().filter(|n| !n.is_empty()) else { return };
        self.set_service(ObjKey::new(meta::namespace(&svc.metadata), name), info);
    }

    /// Set (or, with `None`, withdraw) the Service of an entry.
    fn set_service(&mut self, key: ObjKey, info: Option<ServiceInfo>) {
        let (entries, mut marks) = self.marks();
        match entries.get_mut(&key) {
            Some(entry) if entry.service != info => {
                entry.service = info;
                mark(entry, &key, Part::Service, &mut marks);
            }
            Some(_) => {}
            None if info.is_some() => {
                let mut entry = Entry { service: info, ..Entry::default() };
                mark(&mut entry, &key, Part::Service, &mut marks);
                entries.insert(key, entry);
            }
            None => {}
        }
    }

    pub(crate) fn upsert_slice(&mut self, slice: &EndpointSlice, out: &mut Vec<Diagnostic>) {
        let parsed = translate::parse_slice(slice, &self.options, &mut self.node_names, out);
        let Some(name) = slice.metadata.name.as_deref().filter(|n| !n.is_empty()) else { return };
        let namespace = meta::namespace(&slice.metadata);
        let slice_key = ObjKey::new(namespace, name);
        let Some(info) = parsed else {
            self.remove_slice(&slice_key);
            return;
        };
        let service_key = ObjKey::new(namespace, &info.service);
        let same_owner = match self.slice_owner.get(&slice_key) {
            Some(owner) if *owner == service_key => true,
            Some(_) => {
                self.remove_slice(&slice_key);
                false
            }
            None => false,
        };
        let trigger = trigger_time(slice, namespace, name, out);
        let family = info.family;
        let (entries, mut marks) = self.marks();
        let entry = match entries.get_mut(&service_key) {
            Some(entry) => entry,
            None => entries.entry(service_key.clone()).or_default(),
        };
        match entry.slices.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) if entry.slices[i].1 == info => return,
            Ok(i) => entry.slices[i].1 = info,
            Err(i) => entry.slices.insert(i, (name.to_string(), info)),
        }
        mark(entry, &service_key, Part::Endpoints, &mut marks);
        if let Some(t) = trigger {
            self.trigger_times.push(TriggerTime {
                namespace: namespace.to_string(),
                service: service_key.name().to_string(),
                unix_seconds: t,
                family,
            });
        }
        if !same_owner {
            self.slice_owner.insert(slice_key, service_key);
        }
    }

    fn remove_slice(&mut self, slice_key: &ObjKey) {
        let Some(service_key) = self.slice_owner.remove(slice_key) else { return };
        let (entries, mut marks) = self.marks();
        if let Some(entry) = entries.get_mut(&service_key) {
            if let Ok(i) = entry.slices.binary_search_by(|(n, _)| n.as_str().cmp(slice_key.name())) {
                entry.slices.remove(i);
                mark(entry, &service_key, Part::Endpoints, &mut marks);
            }
        }
    }

    pub(crate) fn upsert_service_cidr(&mut self, obj: &ServiceCIDR, out: &mut Vec<Diagnostic>) {
        let name = obj.metadata.name.clone().unwrap_or_default();
        match translate::parse_service_cidr(obj, out) {
            Some(nets) => {
                if self.service_cidrs.get(&name) != Some(&nets) {
                    self.service_cidrs.insert(name, nets);
                    self.cidrs_dirty = true;
                }
            }
            None => {
                if self.service_cidrs.remove(&name).is_some() {
                    self.cidrs_dirty = true;
                }
            }
        }
    }

    /// Only this node's Node counts (any Node, while the node name is not known).
    pub(crate) fn upsert_node(&mut self, node: &Node, out: &mut Vec<Diagnostic>) {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        if !self.settings.node_name.is_empty() && name != self.settings.node_name {
            return;
        }
        if let Some(info) = translate::parse_node(node, out) {
            self.node = Some(info);
        }
    }

    /// Bring [`ChangeTracker::state`] up to date and return what changed.
    pub fn take_changes(&mut self) -> TakenChanges {
        let mut changes = ChangeSet::default();
        self.process(Some(&mut changes));
        TakenChanges { changes, trigger_times: std::mem::take(&mut self.trigger_times) }
    }

    /// Bring [`ChangeTracker::state`] up to date without building a change set (cheaper, for
    /// a full sync, which programs the whole state anyway). Returns the trigger times.
    pub fn take_state(&mut self) -> Vec<TriggerTime> {
        self.process(None);
        std::mem::take(&mut self.trigger_times)
    }

    /// Make room for this many more services and EndpointSlices (a full translation knows).
    pub(crate) fn reserve(&mut self, services: usize, slices: usize) {
        self.entries.reserve(services);
        self.slice_owner.reserve(slices);
        self.dirty.reserve(services);
    }

    /// Consume the tracker, keeping its state.
    pub fn into_state(self) -> ProxyState {
        Arc::unwrap_or_clone(self.state)
    }

    fn process(&mut self, mut record: Option<&mut ChangeSet>) {
        // Copy on write: free unless a snapshot of the previous take is still held.
        let state = Arc::make_mut(&mut self.state);
        let settings = translate::effective_settings(&self.settings, self.node.as_ref());
        if settings != state.settings {
            if let Some(changes) = record.as_deref_mut() {
                changes.settings = Some(settings.clone());
            }
            state.settings = settings;
        }
        let zone = self.node.as_ref().and_then(|n| n.zone.as_deref());
        if self.settings.node_name != self.topology.0 || zone != self.topology.1.as_deref() {
            self.topology = (self.settings.node_name.clone(), zone.map(str::to_string));
            // Locality and hints depend on node name and zone: every service is re-translated.
            // (Not counted as service changes: no Service object changed.)
            for (key, entry) in self.entries.iter_mut() {
                if !entry.service_dirty && !entry.endpoints_dirty {
                    self.dirty.push(key.clone());
                }
                entry.service_dirty = true;
            }
        }
        if std::mem::take(&mut self.cidrs_dirty) {
            let mut cidrs: Vec<IpNet> = self.service_cidrs.values().flatten().copied().collect();
            cidrs.sort();
            cidrs.dedup();
            if cidrs != state.service_cidrs {
                if let Some(changes) = record.as_deref_mut() {
                    changes.service_cidrs = Some(cidrs.clone());
                }
                state.service_cidrs = cidrs;
            }
        }
        let ctx = NodeContext {
            node_name: &self.topology.0,
            node_id: self.node_names.get(&self.topology.0),
            zone: self.topology.1.as_deref(),
            node_hints: self.options.node_hints,
        };
        let dirty = std::mem::take(&mut self.dirty);
        self.pending = PendingChanges::default();
        if record.is_none() && state.services.is_empty() && self.ownership.is_empty() {
            drop(dirty);
            build_all(&mut self.entries, &mut state.services, &ctx, &mut self.ownership);
            return;
        }
        // 1. Translate the changed services and register the addresses they claim.
        let mut work: Vec<(ObjKey, Vec<ServicePort>)> = Vec::with_capacity(dirty.len());
        let mut affected: HashSet<ObjKey> = HashSet::new();
        for key in dirty {
            let Some(entry) = self.entries.get_mut(&key) else { continue };
            // Claims follow from the Service alone: an endpoint change cannot change them.
            let service_changed = std::mem::take(&mut entry.service_dirty);
            entry.endpoints_dirty = false;
            let ports = raw_ports(&key, entry, &ctx);
            if service_changed {
                self.ownership.register(&key, entry, &ports, |k| {
                    affected.insert(k.clone());
                });
            }
            work.push((key, ports));
        }
        // 2. Unchanged services that won or lost an address because of the changed ones.
        if !affected.is_empty() {
            for (key, _) in &work {
                affected.remove(key);
            }
            let mut extra: Vec<ObjKey> = affected.into_iter().collect();
            extra.sort_by(|a, b| a.joined.cmp(&b.joined));
            for key in extra {
                let Some(entry) = self.entries.get(&key) else { continue };
                let ports = raw_ports(&key, entry, &ctx);
                work.push((key, ports));
            }
        }
        // 3. Keep what each service owns, and put it into the state.
        let services = &mut state.services;
        let mut keys: Vec<ServicePortKey> = Vec::new();
        for (key, mut ports) in work {
            let Some(entry) = self.entries.get_mut(&key) else { continue };
            self.ownership.resolve(&key, entry, &mut ports);
            keys.clear();
            keys.extend(ports.iter().map(|p| p.key()));
            // Ports this service had that it no longer has. The common case (same ports) is
            // detected without scanning.
            let unchanged_keys = keys.len() == entry.ports_in_state && keys.iter().all(|k| services.contains_key(k));
            let stale: Vec<ServicePortKey> = if entry.ports_in_state == 0 || unchanged_keys {
                Vec::new()
            } else {
                stale_keys(services, key.namespace(), key.name(), &keys)
            };
            entry.ports_in_state = keys.len();
            for (port_key, port) in keys.drain(..).zip(ports.drain(..)) {
                match services.entry(port_key) {
                    btree_map::Entry::Vacant(e) => {
                        if let Some(changes) = record.as_deref_mut() {
                            changes.services.insert(e.key().clone(), Change::Added(port.clone()));
                        }
                        e.insert(port);
                    }
                    btree_map::Entry::Occupied(mut e) => {
                        if *e.get() != port {
                            let old = e.insert(port);
                            if let Some(changes) = record.as_deref_mut() {
                                changes.services.insert(e.key().clone(), Change::Modified { old, new: e.get().clone() });
                            }
                        }
                    }
                }
            }
            for old_key in stale {
                if let Some(old) = services.remove(&old_key) {
                    if let Some(changes) = record.as_deref_mut() {
                        changes.services.insert(old_key, Change::Removed(old));
                    }
                }
            }
            if entry.service.is_none() && entry.slices.is_empty() {
                self.entries.remove(&key);
            }
        }
    }
}

/// The service ports of one entry before address ownership is applied.
fn raw_ports(key: &ObjKey, entry: &Entry, ctx: &NodeContext<'_>) -> Vec<ServicePort> {
    let mut ports = Vec::new();
    if let Some(info) = &entry.service {
        let slices = entry.slices.iter().map(|(_, s)| s);
        translate::service_ports(key.namespace(), key.name(), info, slices, ctx, &mut ports);
    }
    ports
}

/// The first build of an empty state: every port is new, so instead of one B-tree insertion
/// per port (each a dozen string comparisons deep) the ports are sorted once and the map is
/// built in bulk; and entries are visited in table order instead of looked up one by one.
/// Nothing was claimed before, so every claimant is among the entries built here.
fn build_all(
    entries: &mut HashMap<ObjKey, Entry>,
    services: &mut BTreeMap<ServicePortKey, ServicePort>,
    ctx: &NodeContext<'_>,
    ownership: &mut Ownership,
) {
    let mut work: Vec<(ObjKey, Vec<ServicePort>)> = Vec::with_capacity(entries.len());
    entries.retain(|key, entry| {
        if !entry.service_dirty && !entry.endpoints_dirty {
            return true;
        }
        entry.service_dirty = false;
        entry.endpoints_dirty = false;
        let mut ports = raw_ports(key, entry, ctx);
        ownership.register(key, entry, &ports, |_| {});
        if entry.service.is_none() && entry.slices.is_empty() {
            // Gone: end whatever was reported about it.
            ownership.resolve(key, entry, &mut ports);
            return false;
        }
        work.push((key.clone(), ports));
        true
    });
    let mut all: Vec<ServicePort> = Vec::with_capacity(work.len());
    for (key, mut ports) in work {
        let Some(entry) = entries.get_mut(&key) else { continue };
        ownership.resolve(&key, entry, &mut ports);
        entry.ports_in_state = ports.len();
        all.append(&mut ports);
    }
    // Sort indices, not the (large) ports themselves.
    let mut order: Vec<usize> = (0..all.len()).collect();
    order.sort_unstable_by(|&a, &b| (&all[a].name, all[a].family).cmp(&(&all[b].name, all[b].family)));
    let mut slots: Vec<Option<ServicePort>> = all.into_iter().map(Some).collect();
    // Keys are unique (one entry per service name); from_iter bulk-builds sorted input.
    *services = order
        .into_iter()
        .filter_map(|i| slots[i].take())
        .map(|p| (p.key(), p))
        .collect();
}

/// Keys of service `namespace/name` in the state that are not in `keep`.
fn stale_keys(
    services: &BTreeMap<ServicePortKey, ServicePort>,
    namespace: &str,
    name: &str,
    keep: &[ServicePortKey],
) -> Vec<ServicePortKey> {
    // The smallest key of this service: ports are ordered by (namespace, name, port name,
    // protocol, family) and "" / Tcp / V4 are the smallest of each.
    let lowest = ServicePortKey {
        name: ServicePortName { namespace: namespace.to_string(), name: name.to_string(), port: String::new(), protocol: Protocol::Tcp },
        family: IpFamily::V4,
    };
    services
        .range(lowest..)
        .map(|(k, _)| k)
        .take_while(|k| k.name.namespace == namespace && k.name.name == name)
        .filter(|k| !keep.contains(k))
        .cloned()
        .collect()
}

/// The slice's last-change-trigger-time, if set and valid.
fn trigger_time(slice: &EndpointSlice, namespace: &str, name: &str, out: &mut Vec<Diagnostic>) -> Option<f64> {
    let value = slice.metadata.annotations.as_ref()?.get(meta::ANNOTATION_LAST_CHANGE_TRIGGER_TIME)?;
    let parsed = parse_rfc3339(value);
    if parsed.is_none() {
        out.push(Diagnostic::new(
            "EndpointSlice",
            namespace,
            name,
            format!(
                "annotation {}: {value:?} is not an RFC 3339 time: ignored for network programming latency",
                meta::ANNOTATION_LAST_CHANGE_TRIGGER_TIME
            ),
        ));
    }
    parsed
}
