//! What a lab created on its API server, so that it removes exactly that on exit.
//!
//! On the embedded server this is moot (the server goes with the lab); on an external
//! one ([`crate::external`]) the lab must leave the cluster as it found it and
//! never delete an object it did not create. Every object the lab creates is recorded
//! with its uid, and deleted with a uid precondition, so that an object of the same
//! name made by someone else meanwhile is left alone. Objects the lab's children
//! create under names the lab knows (the speakers' Leases, the controller's leader
//! Lease, the membership Secret) are *adopted* only when no object of that name
//! existed when the lab started. Events about the lab's objects (matched by uid) go
//! too. A namespace the lab created is deleted last, with whatever is left in it.
//!
//! The record is also kept in the run's state directory ([`RECORD_FILE`], with the
//! kubeconfig), so that when the lab process itself is killed (SIGKILL, no cleanup
//! runs) the next lab's reaping of stale runs removes the objects ([`reap_record`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Preconditions};
use serde::{Deserialize, Serialize};

use crate::error::LabError;

/// The kinds a lab creates or adopts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    /// core/v1 Namespace.
    Namespace,
    /// core/v1 Node.
    Node,
    /// core/v1 ConfigMap.
    ConfigMap,
    /// core/v1 Secret.
    Secret,
    /// core/v1 Service.
    Service,
    /// discovery.k8s.io/v1 EndpointSlice.
    EndpointSlice,
    /// coordination.k8s.io/v1 Lease.
    Lease,
}

impl Kind {
    /// The API resource of the kind.
    pub fn resource(self) -> ApiResource {
        match self {
            Kind::Namespace => ApiResource::erase::<Namespace>(&()),
            Kind::Node => ApiResource::erase::<Node>(&()),
            Kind::ConfigMap => ApiResource::erase::<ConfigMap>(&()),
            Kind::Secret => ApiResource::erase::<Secret>(&()),
            Kind::Service => ApiResource::erase::<Service>(&()),
            Kind::EndpointSlice => ApiResource::erase::<EndpointSlice>(&()),
            Kind::Lease => ApiResource::erase::<Lease>(&()),
        }
    }
}

/// How the lab came to own an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Origin {
    /// The lab created it; its uid.
    Created(String),
    /// A child of the lab creates it under this name, which was free at the start.
    Adopted,
}

/// One owned object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Its kind.
    pub kind: Kind,
    /// Its namespace (None: cluster-scoped).
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// How the lab owns it.
    pub origin: Origin,
}

impl Entry {
    /// `Kind ns/name`, for messages.
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{:?} {ns}/{}", self.kind, self.name),
            None => format!("{:?} {}", self.kind, self.name),
        }
    }
}

/// Name of the record in a run's state directory.
pub const RECORD_FILE: &str = "external-objects.json";

/// The record on disk: the kubeconfig of the server, and the owned objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The external server's kubeconfig.
    pub kubeconfig: PathBuf,
    /// The owned objects, in order.
    pub entries: Vec<Entry>,
}

/// The objects a lab owns on its API server, in the order it came to own them.
#[derive(Debug, Default)]
pub struct Ledger {
    entries: Mutex<Vec<Entry>>,
    /// Where the record is kept (file, kubeconfig), for an external server.
    file: Option<(PathBuf, PathBuf)>,
}

impl Ledger {
    /// A ledger kept in `state_dir` as well, for the server of `kubeconfig`.
    pub fn persisted(state_dir: &Path, kubeconfig: &Path) -> Ledger {
        Ledger {
            entries: Mutex::default(),
            file: Some((state_dir.join(RECORD_FILE), kubeconfig.to_path_buf())),
        }
    }

    /// Records an object the lab created (its metadata as the server returned it).
    pub fn created(
        &self,
        kind: Kind,
        meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ) {
        self.push(Entry {
            kind,
            namespace: meta.namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
            origin: Origin::Created(meta.uid.clone().unwrap_or_default()),
        });
    }

    /// Adopts `kind namespace/name` if no such object exists now: the lab's children
    /// will create it. Returns whether it was adopted.
    pub async fn adopt_if_absent(
        &self,
        client: &kube::Client,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<bool, LabError> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &kind.resource());
        let existing = api.get_opt(name).await.map_err(LabError::kube(format!(
            "reading {kind:?} {namespace}/{name}"
        )))?;
        if existing.is_some() {
            tracing::warn!(
                "{kind:?} {namespace}/{name} already exists on the API server: the lab uses it and leaves it there"
            );
            return Ok(false);
        }
        self.push(Entry {
            kind,
            namespace: Some(namespace.to_string()),
            name: name.to_string(),
            origin: Origin::Adopted,
        });
        Ok(true)
    }

    fn push(&self, e: Entry) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.push(e);
        if let Some((file, kubeconfig)) = &self.file {
            let record = Record {
                kubeconfig: kubeconfig.clone(),
                entries: entries.clone(),
            };
            // Written beside and renamed, so that a reaper never reads half a record.
            let tmp = file.with_extension("tmp");
            let written = serde_json::to_vec_pretty(&record)
                .map_err(std::io::Error::other)
                .and_then(|bytes| std::fs::write(&tmp, bytes))
                .and_then(|()| std::fs::rename(&tmp, file));
            if let Err(e) = written {
                tracing::warn!(error = %e, file = %file.display(), "cannot keep the record of the lab's objects");
            }
        }
    }

    /// Forgets the record on disk (its objects are removed).
    pub fn discard_file(&self) {
        if let Some((file, _)) = &self.file {
            let _ = std::fs::remove_file(file);
        }
    }

    /// The owned objects, in order.
    pub fn entries(&self) -> Vec<Entry> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The order of removal: the reverse of creation, namespaces last (their content first).
pub fn removal_order(entries: &[Entry]) -> Vec<Entry> {
    let mut out: Vec<Entry> = entries
        .iter()
        .rev()
        .filter(|e| e.kind != Kind::Namespace)
        .cloned()
        .collect();
    out.extend(
        entries
            .iter()
            .rev()
            .filter(|e| e.kind == Kind::Namespace)
            .cloned(),
    );
    out
}

/// The namespaces whose Events may be about the lab's objects: those of its
/// namespaced objects, and `default` (where Events about cluster-scoped objects go).
pub fn event_namespaces(entries: &[Entry]) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = entries.iter().filter_map(|e| e.namespace.clone()).collect();
    out.insert("default".into());
    out
}

/// Whether Event `ev` is about an object whose uid is in `uids` (core/v1
/// `involvedObject`, or events.k8s.io/v1 `regarding`, which the same list returns).
pub fn event_is_about(ev: &serde_json::Value, uids: &BTreeSet<String>) -> bool {
    ["involvedObject", "regarding"].iter().any(|f| {
        ev[*f]["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty() && uids.contains(u))
    })
}

/// Deletes every object of `entries` from the server, and the Events about them;
/// returns what could not be removed (or was left because it is not ours any more).
pub async fn remove_all(client: &kube::Client, entries: &[Entry]) -> Vec<String> {
    let mut problems = Vec::new();
    let uids: BTreeSet<String> = entries
        .iter()
        .filter_map(|e| match &e.origin {
            Origin::Created(uid) if !uid.is_empty() => Some(uid.clone()),
            _ => None,
        })
        .collect();
    for ns in event_namespaces(entries) {
        let events: Api<Event> = Api::namespaced(client.clone(), &ns);
        let list = match events.list(&ListParams::default()).await {
            Ok(l) => l,
            Err(e) => {
                problems.push(format!("listing the Events of {ns}: {e}"));
                continue;
            }
        };
        for ev in list.items {
            let value = serde_json::to_value(&ev).unwrap_or_default();
            if !event_is_about(&value, &uids) {
                continue;
            }
            let name = ev.metadata.name.unwrap_or_default();
            if let Err(e) = events.delete(&name, &DeleteParams::default()).await
                && !is_not_found(&e)
            {
                problems.push(format!("deleting Event {ns}/{name}: {e}"));
            }
        }
    }
    for entry in removal_order(entries) {
        let ar = entry.kind.resource();
        let api: Api<DynamicObject> = match &entry.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        let mut dp = DeleteParams::background();
        if let Origin::Created(uid) = &entry.origin
            && !uid.is_empty()
        {
            dp.preconditions = Some(Preconditions {
                uid: Some(uid.clone()),
                resource_version: None,
            });
        }
        match api.delete(&entry.name, &dp).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => problems.push(format!(
                "{} was replaced by another object of the same name; left alone",
                entry.describe()
            )),
            Err(e) => problems.push(format!("deleting {}: {e}", entry.describe())),
        }
    }
    // A real API server empties a namespace in the background: wait (bounded) so that
    // the next lab can create it again.
    for entry in entries.iter().filter(|e| e.kind == Kind::Namespace) {
        let api: Api<Namespace> = Api::all(client.clone());
        let gone = crate::wait_for(
            &format!("namespace {} to be gone", entry.name),
            Duration::from_secs(30),
            Duration::from_millis(200),
            || async { matches!(api.get_opt(&entry.name).await, Ok(None)).then_some(()) },
        )
        .await;
        if let Err(e) = gone {
            problems.push(e.to_string());
        }
    }
    problems
}

/// Removes `entries` from the server of `kubeconfig` from a synchronous context: a
/// thread of its own with its own runtime and client (the caller's runtime may be the
/// one blocked here), bounded by `within`.
pub fn remove_blocking(kubeconfig: &Path, entries: Vec<Entry>, within: Duration) {
    if entries.is_empty() {
        return;
    }
    let path = kubeconfig.to_path_buf();
    let worker = std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "no runtime to remove the lab's objects");
                return;
            }
        };
        rt.block_on(async move {
            match crate::external::client_from_file(&path).await {
                Ok(client) => {
                    report(tokio::time::timeout(within, remove_all(&client, &entries)).await)
                }
                Err(e) => tracing::error!(error = %e, "cannot remove the lab's objects"),
            }
        });
    });
    let _ = worker.join();
}

/// Logs what could not be removed from the external server.
pub fn report(outcome: Result<Vec<String>, tokio::time::error::Elapsed>) {
    match outcome {
        Ok(problems) => {
            for p in problems {
                tracing::error!("removing the lab's objects: {p}");
            }
        }
        Err(_) => tracing::error!(
            "removing the lab's objects from the API server timed out; some may be left"
        ),
    }
}

/// Reads the record a run left in `state_dir`, if any.
pub fn read_record(state_dir: &Path) -> Option<Record> {
    let text = std::fs::read(state_dir.join(RECORD_FILE)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Removes the objects of a killed run's record in `state_dir` (called when reaping it).
pub fn reap_record(state_dir: &Path) {
    if let Some(record) = read_record(state_dir) {
        tracing::warn!(
            "removing the {} objects a killed lab left on the API server of {}",
            record.entries.len(),
            record.kubeconfig.display()
        );
        remove_blocking(&record.kubeconfig, record.entries, Duration::from_secs(60));
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(kind: Kind, ns: Option<&str>, name: &str) -> Entry {
        Entry {
            kind,
            namespace: ns.map(str::to_string),
            name: name.into(),
            origin: Origin::Created(format!("uid-{name}")),
        }
    }

    #[test]
    fn removal_goes_backwards_with_namespaces_last() {
        let entries = vec![
            entry(Kind::Namespace, None, "ferrolb-system"),
            entry(Kind::Node, None, "n1"),
            entry(Kind::ConfigMap, Some("ferrolb-system"), "ferrolb-config"),
            entry(Kind::Namespace, None, "ferrolb-speaker-leases"),
            entry(Kind::Service, Some("default"), "web"),
        ];
        let names: Vec<String> = removal_order(&entries)
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(
            names,
            [
                "web",
                "ferrolb-config",
                "n1",
                "ferrolb-speaker-leases",
                "ferrolb-system"
            ]
        );
        assert_eq!(
            event_namespaces(&entries).into_iter().collect::<Vec<_>>(),
            ["default", "ferrolb-system"]
        );
    }

    #[test]
    fn the_record_on_disk_follows_every_entry() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::persisted(dir.path(), Path::new("/etc/kube/test"));
        assert_eq!(read_record(dir.path()), None);
        ledger.push(entry(Kind::Node, None, "n1"));
        ledger.push(Entry {
            origin: Origin::Adopted,
            ..entry(
                Kind::Lease,
                Some("ferrolb-speaker-leases"),
                "ferrolb-speaker-n1",
            )
        });
        let record = read_record(dir.path()).unwrap();
        assert_eq!(record.kubeconfig, Path::new("/etc/kube/test"));
        assert_eq!(record.entries, ledger.entries());
        ledger.discard_file();
        assert_eq!(read_record(dir.path()), None);
    }

    #[test]
    fn only_events_about_our_objects_match() {
        let uids = BTreeSet::from(["u1".to_string()]);
        assert!(event_is_about(
            &json!({"involvedObject": {"uid": "u1"}}),
            &uids
        ));
        assert!(event_is_about(&json!({"regarding": {"uid": "u1"}}), &uids));
        assert!(!event_is_about(
            &json!({"involvedObject": {"uid": "u2"}}),
            &uids
        ));
        assert!(!event_is_about(
            &json!({"involvedObject": {"uid": ""}}),
            &uids
        ));
        assert!(!event_is_about(&json!({}), &uids));
    }
}
