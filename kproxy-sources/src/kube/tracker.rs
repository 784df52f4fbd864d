//! Turns one kind's watcher events into [`ClusterEvent`]s, remembering which objects the
//! receiver knows so that a relist can report the ones that vanished meanwhile.

use std::collections::BTreeSet;

use kproxy_core::event::{ClusterEvent, Update};
use kube::runtime::watcher::Event;
use kube::ResourceExt;

use super::watched::Watched;

/// (namespace, name); the namespace is empty for cluster-scoped kinds.
type Key = (String, String);

/// Per-kind bookkeeping between the watcher and the event channel.
#[derive(Debug, Default)]
pub struct Tracker {
    /// Objects the receiver was told about and not told were deleted.
    known: BTreeSet<Key>,
    /// Objects seen since the current (re)list began; `Some` while a list is in progress.
    relisting: Option<BTreeSet<Key>>,
}

impl Tracker {
    /// The events to send for one watcher event, in order.
    pub fn handle<K: Watched>(&mut self, event: Event<K>) -> Vec<ClusterEvent> {
        match event {
            Event::Init => {
                self.relisting = Some(BTreeSet::new());
                Vec::new()
            }
            Event::InitApply(obj) => {
                let key = key_of(&obj);
                if let Some(seen) = self.relisting.as_mut() {
                    seen.insert(key.clone());
                }
                self.known.insert(key);
                vec![K::event(Update::Upsert(obj))]
            }
            Event::InitDone => {
                let seen = self.relisting.take().unwrap_or_default();
                let vanished: Vec<Key> = self.known.difference(&seen).cloned().collect();
                self.known = seen;
                let mut out: Vec<ClusterEvent> = vanished
                    .into_iter()
                    .map(|(namespace, name)| K::event(Update::Delete { namespace, name }))
                    .collect();
                out.push(ClusterEvent::Synced(K::KIND));
                out
            }
            Event::Apply(obj) => {
                self.known.insert(key_of(&obj));
                vec![K::event(Update::Upsert(obj))]
            }
            Event::Delete(obj) => {
                let (namespace, name) = key_of(&obj);
                self.known.remove(&(namespace.clone(), name.clone()));
                vec![K::event(Update::Delete { namespace, name })]
            }
        }
    }
}

fn key_of<K: Watched>(obj: &K) -> Key {
    (obj.namespace().unwrap_or_default(), obj.name_any())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Service;
    use kproxy_core::event::ObjectKind;
    use kube::api::ObjectMeta;

    fn svc(ns: &str, name: &str) -> Service {
        Service {
            metadata: ObjectMeta { namespace: Some(ns.into()), name: Some(name.into()), ..Default::default() },
            ..Default::default()
        }
    }

    fn del(ns: &str, name: &str) -> ClusterEvent {
        ClusterEvent::Service(Update::Delete { namespace: ns.into(), name: name.into() })
    }

    #[test]
    fn initial_list_then_synced_then_live_updates() {
        let mut t = Tracker::default();
        assert!(t.handle::<Service>(Event::Init).is_empty());
        assert_eq!(t.handle(Event::InitApply(svc("a", "x"))), vec![ClusterEvent::Service(Update::Upsert(svc("a", "x")))]);
        assert_eq!(t.handle::<Service>(Event::InitDone), vec![ClusterEvent::Synced(ObjectKind::Service)]);
        assert_eq!(t.handle(Event::Delete(svc("a", "x"))), vec![del("a", "x")]);
    }

    #[test]
    fn relist_reports_objects_that_vanished_before_synced() {
        let mut t = Tracker::default();
        t.handle::<Service>(Event::Init);
        t.handle(Event::InitApply(svc("a", "keep")));
        t.handle(Event::InitApply(svc("a", "gone")));
        t.handle::<Service>(Event::InitDone);
        t.handle(Event::Apply(svc("b", "live-gone")));
        // Watch broke (e.g. 410 Gone); the relist only returns "keep".
        t.handle::<Service>(Event::Init);
        t.handle(Event::InitApply(svc("a", "keep")));
        let out = t.handle::<Service>(Event::InitDone);
        assert_eq!(out, vec![del("a", "gone"), del("b", "live-gone"), ClusterEvent::Synced(ObjectKind::Service)]);
        // A second relist with nothing vanished only says Synced.
        t.handle::<Service>(Event::Init);
        t.handle(Event::InitApply(svc("a", "keep")));
        assert_eq!(t.handle::<Service>(Event::InitDone), vec![ClusterEvent::Synced(ObjectKind::Service)]);
    }
}
