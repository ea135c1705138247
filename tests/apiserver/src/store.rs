//! In-memory object storage: objects keyed by (storage, namespace, name), one global
//! resourceVersion counter (as etcd's revision), a bounded history of changes for watches that
//! resume from a resourceVersion, and a broadcast channel that live watches follow.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    Added,
    Modified,
    Deleted,
}

impl ChangeType {
    /// The watch event type string.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Added => "ADDED",
            ChangeType::Modified => "MODIFIED",
            ChangeType::Deleted => "DELETED",
        }
    }
}

/// One committed change, in storage shape.
#[derive(Debug)]
pub struct Change {
    /// resourceVersion the change was committed at.
    pub rv: u64,
    /// Storage key.
    pub storage: &'static str,
    /// Namespace ("" for cluster-scoped objects).
    pub namespace: String,
    /// Change type.
    pub kind: ChangeType,
    /// The object after the change (for a deletion: the deleted object, at the deletion's rv),
    /// shared with the store and every watch that sends it rather than copied for each.
    pub object: Arc<Value>,
    /// The object before the change (for Modified), so selector watches can see transitions.
    pub old: Option<Arc<Value>>,
}

type Key = (&'static str, String, String);

/// The store. Callers hold it behind a mutex and do each read-modify-write under one lock,
/// which gives the linearizable, compare-and-swap behaviour of etcd.
pub struct Store {
    /// Shared with the change log: a write stores one object, not three copies of it.
    objects: BTreeMap<Key, Arc<Value>>,
    rv: u64,
    log: VecDeque<Arc<Change>>,
    log_cap: usize,
    /// The highest resourceVersion no longer in `log` (a watch from below it gets 410 Gone).
    compacted: u64,
    tx: broadcast::Sender<Arc<Change>>,
    /// Cluster IPs and node ports held by Services, kept current on every
    /// write so that allocating one does not scan (and parse) every Service.
    pub(crate) service_allocations: super::kinds::service::Allocations,
}

impl Store {
    /// A store that keeps the last `log_cap` changes for resuming watches.
    pub fn new(log_cap: usize) -> Self {
        let (tx, _) = broadcast::channel(4096);
        Self {
            objects: BTreeMap::new(),
            rv: 0,
            log: VecDeque::new(),
            log_cap: log_cap.max(1),
            compacted: 0,
            tx,
            service_allocations: Default::default(),
        }
    }

    /// The current (latest committed) resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    /// The highest resourceVersion that can no longer be watched from.
    pub fn compacted_rv(&self) -> u64 {
        self.compacted
    }

    /// One object.
    pub fn get(&self, storage: &'static str, ns: &str, name: &str) -> Option<&Value> {
        self.get_shared(storage, ns, name).map(|o| &**o)
    }

    /// One object, as the store shares it: a handle to keep across a write without a copy.
    pub fn get_shared(&self, storage: &'static str, ns: &str, name: &str) -> Option<&Arc<Value>> {
        self.objects
            .get(&(storage, ns.to_string(), name.to_string()))
    }

    /// Objects of a storage, optionally of one namespace, in key order (namespace, name).
    pub fn list<'a>(
        &'a self,
        storage: &'static str,
        ns: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects
            .range((storage, String::new(), String::new())..)
            .take_while(move |((s, _, _), _)| *s == storage)
            .filter(move |((_, n, _), _)| ns.is_none_or(|want| want == n))
            .map(|(_, v)| &**v)
    }

    /// Stores an object (created or replaced), stamping a new resourceVersion; returns the stored object.
    pub fn put(
        &mut self,
        storage: &'static str,
        ns: &str,
        name: &str,
        mut obj: Value,
    ) -> Arc<Value> {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let obj = Arc::new(obj);
        let key = (storage, ns.to_string(), name.to_string());
        let old = self.objects.insert(key, obj.clone());
        if storage == "services" {
            self.service_allocations
                .update(ns, name, old.as_deref(), Some(&obj));
        }
        let kind = if old.is_some() {
            ChangeType::Modified
        } else {
            ChangeType::Added
        };
        self.record(Change {
            rv: self.rv,
            storage,
            namespace: ns.to_string(),
            kind,
            object: obj.clone(),
            old,
        });
        obj
    }

    /// Removes an object; returns it as of the deletion (with the deletion's resourceVersion).
    pub fn remove(&mut self, storage: &'static str, ns: &str, name: &str) -> Option<Arc<Value>> {
        let obj = self
            .objects
            .remove(&(storage, ns.to_string(), name.to_string()))?;
        if storage == "services" {
            self.service_allocations.update(ns, name, Some(&obj), None);
        }
        self.rv += 1;
        // A copy only if the change log still shares the stored version.
        let mut obj = Arc::unwrap_or_clone(obj);
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let obj = Arc::new(obj);
        self.record(Change {
            rv: self.rv,
            storage,
            namespace: ns.to_string(),
            kind: ChangeType::Deleted,
            object: obj.clone(),
            old: None,
        });
        Some(obj)
    }

    fn record(&mut self, change: Change) {
        let change = Arc::new(change);
        self.log.push_back(change.clone());
        while self.log.len() > self.log_cap {
            if let Some(dropped) = self.log.pop_front() {
                self.compacted = dropped.rv;
            }
        }
        // No receiver is not an error: nobody is watching.
        let _ = self.tx.send(change);
    }

    /// Follows changes committed after this call.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    /// Changes with resourceVersion > `rv`, or Err(oldest watchable) when history no longer reaches back.
    pub fn changes_since(&self, rv: u64) -> Result<Vec<Arc<Change>>, u64> {
        if rv < self.compacted {
            return Err(self.compacted + 1);
        }
        Ok(self.log.iter().filter(|c| c.rv > rv).cloned().collect())
    }

    /// Forgets all history (like an etcd compaction): watches from any older resourceVersion get 410.
    pub fn compact(&mut self) {
        self.log.clear();
        self.compacted = self.rv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rv_is_global_and_history_bounded() {
        let mut s = Store::new(2);
        let a = s.put(
            "services",
            "default",
            "a",
            json!({"metadata": {"name": "a"}}),
        );
        assert_eq!(a["metadata"]["resourceVersion"], "1");
        s.put(
            "configmaps",
            "default",
            "c",
            json!({"metadata": {"name": "c"}}),
        );
        s.put("services", "other", "b", json!({"metadata": {"name": "b"}}));
        assert_eq!(s.current_rv(), 3);
        assert_eq!(s.list("services", None).count(), 2);
        assert_eq!(s.list("services", Some("other")).count(), 1);
        assert!(s.changes_since(0).is_err());
        assert_eq!(s.changes_since(1).unwrap().len(), 2);
        let gone = s.remove("services", "default", "a").unwrap();
        assert_eq!(gone["metadata"]["resourceVersion"], "4");
        assert!(s.get("services", "default", "a").is_none());
        s.compact();
        assert!(s.changes_since(3).is_err());
        assert_eq!(s.changes_since(4).unwrap().len(), 0);
    }
}
