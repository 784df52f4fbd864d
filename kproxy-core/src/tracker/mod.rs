//! Incremental change tracking: the [`ChangeTracker`] owns the current (reduced) objects and
//! the current [`ProxyState`], takes [`ClusterEvent`]s, and on [`ChangeTracker::take_changes`]
//! re-translates only the services whose Service or EndpointSlices changed since the last
//! take. A one-endpoint change therefore costs one service's translation, whatever the
//! cluster size.

mod time;

use std::collections::btree_map;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;

pub use time::parse_rfc3339;

use crate::diagnostic::Diagnostic;
use crate::event::{ClusterEvent, ObjectKind, Update};
use crate::model::{Change, ChangeSet, ProxySettings, ProxyState, ServicePortKey};
use crate::translate::{self, meta, NodeContext, NodeInfo, ServiceInfo, SliceInfo, TranslateOptions};

/// Namespace and name of an object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct ObjKey {
    namespace: String,
    name: String,
}

impl ObjKey {
    fn new(namespace: &str, name: &str) -> ObjKey {
        ObjKey { namespace: namespace.to_string(), name: name.to_string() }
    }
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
    services: HashMap<ObjKey, ServiceInfo>,
    /// Slices by service, then by slice name (the stable order duplicates are merged in).
    slices: HashMap<ObjKey, BTreeMap<String, SliceInfo>>,
    /// Slice (namespace, name) -> the service name it is filed under.
    slice_owner: HashMap<ObjKey, String>,
    service_cidrs: BTreeMap<String, Vec<IpNet>>,
    node: Option<NodeInfo>,
    /// Keys each service has in `state`.
    produced: HashMap<ObjKey, Vec<ServicePortKey>>,
    service_dirty: HashSet<ObjKey>,
    endpoint_dirty: HashSet<ObjKey>,
    cidrs_dirty: bool,
    trigger_times: Vec<TriggerTime>,
    totals: ChangeTotals,
    wait_for: BTreeSet<ObjectKind>,
    synced: BTreeSet<ObjectKind>,
    /// Node name and zone the current state was categorised with.
    topology: (String, Option<String>),
    state: ProxyState,
}

impl ChangeTracker {
    /// An empty tracker. `settings` are the caller's (from the configuration); facts the
    /// caller left open are completed from the Node object (see [`ChangeTracker::state`]).
    pub fn new(settings: ProxySettings, options: TranslateOptions) -> ChangeTracker {
        let state = ProxyState { settings: settings.clone(), ..ProxyState::default() };
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
        PendingChanges { services: self.service_dirty.len(), endpoints: self.endpoint_dirty.len() }
    }

    /// Whether the next take may produce changes.
    pub fn has_pending(&self) -> bool {
        !self.service_dirty.is_empty()
            || !self.endpoint_dirty.is_empty()
            || self.cidrs_dirty
            || self.state.settings != translate::effective_settings(&self.settings, self.node.as_ref())
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
            ClusterEvent::Service(Update::Delete { namespace, name }) => self.delete_service(&namespace, &name),
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

    pub(crate) fn upsert_service(&mut self, svc: &Service, out: &mut Vec<Diagnostic>) {
        let Some(name) = svc.metadata.name.as_deref() else {
            // Reported by parse; nothing can be tracked without a name.
            translate::parse_service(svc, &self.options, out);
            return;
        };
        let key = ObjKey::new(meta::namespace(&svc.metadata), name);
        match translate::parse_service(svc, &self.options, out) {
            Some(info) => {
                if self.services.get(&key) != Some(&info) {
                    self.services.insert(key.clone(), info);
                    self.mark_service(key);
                }
            }
            None => self.delete_service(&key.namespace, &key.name),
        }
    }

    fn delete_service(&mut self, namespace: &str, name: &str) {
        let key = ObjKey::new(namespace, name);
        if self.services.remove(&key).is_some() {
            self.mark_service(key);
        }
    }

    fn mark_service(&mut self, key: ObjKey) {
        self.totals.services += 1;
        self.service_dirty.insert(key);
    }

    fn mark_endpoints(&mut self, key: ObjKey) {
        self.totals.endpoints += 1;
        self.endpoint_dirty.insert(key);
    }

    pub(crate) fn upsert_slice(&mut self, slice: &EndpointSlice, out: &mut Vec<Diagnostic>) {
        let Some(name) = slice.metadata.name.as_deref() else {
            translate::parse_slice(slice, &self.options, out);
            return;
        };
        let namespace = meta::namespace(&slice.metadata);
        let slice_key = ObjKey::new(namespace, name);
        let Some(info) = translate::parse_slice(slice, &self.options, out) else {
            self.remove_slice(&slice_key);
            return;
        };
        let service_key = ObjKey::new(namespace, &info.service);
        if self.slice_owner.get(&slice_key) != Some(&info.service) {
            self.remove_slice(&slice_key);
        }
        let group = self.slices.entry(service_key.clone()).or_default();
        if group.get(name) == Some(&info) {
            return;
        }
        self.slice_owner.insert(slice_key, info.service.clone());
        group.insert(name.to_string(), info);
        if let Some(t) = trigger_time(slice, namespace, name, out) {
            self.trigger_times.push(TriggerTime {
                namespace: namespace.to_string(),
                service: service_key.name.clone(),
                unix_seconds: t,
            });
        }
        self.mark_endpoints(service_key);
    }

    fn remove_slice(&mut self, slice_key: &ObjKey) {
        let Some(service) = self.slice_owner.remove(slice_key) else { return };
        let service_key = ObjKey::new(&slice_key.namespace, &service);
        if let Some(group) = self.slices.get_mut(&service_key) {
            group.remove(&slice_key.name);
            if group.is_empty() {
                self.slices.remove(&service_key);
            }
        }
        self.mark_endpoints(service_key);
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

    /// Consume the tracker, keeping its state.
    pub fn into_state(self) -> ProxyState {
        self.state
    }

    fn process(&mut self, mut record: Option<&mut ChangeSet>) {
        let settings = translate::effective_settings(&self.settings, self.node.as_ref());
        if settings != self.state.settings {
            if let Some(changes) = record.as_deref_mut() {
                changes.settings = Some(settings.clone());
            }
            self.state.settings = settings;
        }
        let topology = (self.settings.node_name.clone(), self.node.as_ref().and_then(|n| n.zone.clone()));
        let all = topology != self.topology;
        self.topology = topology;
        if std::mem::take(&mut self.cidrs_dirty) {
            let mut cidrs: Vec<IpNet> = self.service_cidrs.values().flatten().copied().collect();
            cidrs.sort();
            cidrs.dedup();
            if cidrs != self.state.service_cidrs {
                if let Some(changes) = record.as_deref_mut() {
                    changes.service_cidrs = Some(cidrs.clone());
                }
                self.state.service_cidrs = cidrs;
            }
        }
        let mut dirty: HashSet<ObjKey> = std::mem::take(&mut self.service_dirty);
        dirty.extend(std::mem::take(&mut self.endpoint_dirty));
        if all {
            dirty.extend(self.services.keys().cloned());
            dirty.extend(self.produced.keys().cloned());
        }
        let ctx = NodeContext {
            node_name: &self.topology.0,
            zone: self.topology.1.as_deref(),
            node_hints: self.options.node_hints,
        };
        let mut ports = Vec::new();
        for key in dirty {
            ports.clear();
            if let Some(info) = self.services.get(&key) {
                let slices = self.slices.get(&key).into_iter().flat_map(|group| group.values());
                translate::service_ports(&key.namespace, &key.name, info, slices, &ctx, &mut ports);
            }
            let old_keys = self.produced.remove(&key).unwrap_or_default();
            let mut new_keys = Vec::with_capacity(ports.len());
            for port in ports.drain(..) {
                let port_key = port.key();
                new_keys.push(port_key.clone());
                match self.state.services.entry(port_key) {
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
            for old_key in old_keys {
                if new_keys.contains(&old_key) {
                    continue;
                }
                if let Some(old) = self.state.services.remove(&old_key) {
                    if let Some(changes) = record.as_deref_mut() {
                        changes.services.insert(old_key, Change::Removed(old));
                    }
                }
            }
            if !new_keys.is_empty() {
                self.produced.insert(key, new_keys);
            }
        }
    }
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
