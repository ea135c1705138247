//! The resources this server serves: group, version, kind, plural, scope, short names,
//! subresources, and which storage they live in (two resources may be views of one stored object,
//! as `v1` Events and `events.k8s.io/v1` Events are on a real cluster).

/// A served resource.
#[derive(Debug)]
pub struct ResourceDef {
    /// API group ("" for the core group).
    pub group: &'static str,
    /// API version.
    pub version: &'static str,
    /// Kind of one object.
    pub kind: &'static str,
    /// Plural resource name used in URLs.
    pub plural: &'static str,
    /// Singular name (discovery).
    pub singular: &'static str,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// kubectl short names.
    pub short_names: &'static [&'static str],
    /// Discovery categories (`kubectl get all`).
    pub categories: &'static [&'static str],
    /// Storage key; resources sharing one are views of the same objects.
    pub storage: &'static str,
    /// Whether `.../status` is a subresource (spec and status are then written separately).
    pub status_subresource: bool,
    /// Whether `metadata.generation` is set and bumped on spec changes.
    pub tracks_generation: bool,
    /// Whether PUT on a missing object creates it.
    pub create_on_update: bool,
    /// Field selector labels this resource supports besides `metadata.name`/`metadata.namespace`.
    pub field_labels: &'static [&'static str],
}

impl ResourceDef {
    /// `apiVersion` of its objects.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    /// `plural.group`, as in error messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
    /// Kind of the list of these objects.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

const NO_FIELDS: &[&str] = &[];

/// Every served resource. The first resource with a given storage is that storage's canonical shape.
pub static RESOURCES: &[ResourceDef] = &[
    ResourceDef {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        singular: "namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        storage: "namespaces",
        status_subresource: true,
        tracks_generation: false,
        create_on_update: false,
        field_labels: &["status.phase"],
    },
    ResourceDef {
        group: "",
        version: "v1",
        kind: "Node",
        plural: "nodes",
        singular: "node",
        namespaced: false,
        short_names: &["no"],
        categories: &[],
        storage: "nodes",
        status_subresource: true,
        tracks_generation: true,
        create_on_update: false,
        field_labels: &["spec.unschedulable"],
    },
    ResourceDef {
        group: "",
        version: "v1",
        kind: "Service",
        plural: "services",
        singular: "service",
        namespaced: true,
        short_names: &["svc"],
        categories: &["all"],
        storage: "services",
        status_subresource: true,
        tracks_generation: true,
        create_on_update: false,
        field_labels: &["spec.clusterIP", "spec.type"],
    },
    ResourceDef {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        singular: "configmap",
        namespaced: true,
        short_names: &["cm"],
        categories: &[],
        storage: "configmaps",
        status_subresource: false,
        tracks_generation: false,
        create_on_update: false,
        field_labels: NO_FIELDS,
    },
    ResourceDef {
        group: "",
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        singular: "secret",
        namespaced: true,
        short_names: &[],
        categories: &[],
        storage: "secrets",
        status_subresource: false,
        tracks_generation: false,
        create_on_update: false,
        field_labels: NO_FIELDS,
    },
    ResourceDef {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        storage: "events",
        status_subresource: false,
        tracks_generation: false,
        create_on_update: true,
        field_labels: &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
    },
    ResourceDef {
        group: "",
        version: "v1",
        kind: "Endpoints",
        plural: "endpoints",
        singular: "endpoints",
        namespaced: true,
        short_names: &["ep"],
        categories: &[],
        storage: "endpoints",
        status_subresource: false,
        tracks_generation: false,
        create_on_update: true,
        field_labels: NO_FIELDS,
    },
    ResourceDef {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        singular: "pod",
        namespaced: true,
        short_names: &["po"],
        categories: &["all"],
        storage: "pods",
        status_subresource: true,
        tracks_generation: false,
        create_on_update: false,
        field_labels: &["spec.nodeName", "status.phase"],
    },
    ResourceDef {
        group: "discovery.k8s.io",
        version: "v1",
        kind: "EndpointSlice",
        plural: "endpointslices",
        singular: "endpointslice",
        namespaced: true,
        short_names: &[],
        categories: &[],
        storage: "endpointslices",
        status_subresource: false,
        tracks_generation: true,
        create_on_update: false,
        field_labels: &["addressType"],
    },
    ResourceDef {
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        plural: "leases",
        singular: "lease",
        namespaced: true,
        short_names: &[],
        categories: &[],
        storage: "leases",
        status_subresource: false,
        tracks_generation: false,
        create_on_update: false,
        field_labels: NO_FIELDS,
    },
    ResourceDef {
        group: "events.k8s.io",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        storage: "events",
        status_subresource: false,
        tracks_generation: false,
        create_on_update: true,
        field_labels: &[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reason",
            "reportingController",
            "type",
        ],
    },
    // What `kubectl apply -k deploy/` installs, stored with the common semantics (and the
    // few checks in `kinds::workload`), so that the install manifests apply as on a cluster.
    ResourceDef {
        group: "",
        version: "v1",
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        namespaced: true,
        short_names: &["sa"],
        categories: &[],
        storage: "serviceaccounts",
        status_subresource: false,
        tracks_generation: false,
        create_on_update: false,
        field_labels: NO_FIELDS,
    },
    ResourceDef {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
        singular: "deployment",
        namespaced: true,
        short_names: &["deploy"],
        categories: &["all"],
        storage: "deployments",
        status_subresource: true,
        tracks_generation: true,
        create_on_update: false,
        field_labels: NO_FIELDS,
    },
    ResourceDef {
        group: "apps",
        version: "v1",
        kind: "DaemonSet",
        plural: "daemonsets",
        singular: "daemonset",
        namespaced: true,
        short_names: &["ds"],
        categories: &["all"],
        storage: "daemonsets",
        status_subresource: true,
        tracks_generation: true,
        create_on_update: false,
        field_labels: NO_FIELDS,
    },
    ResourceDef {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "ClusterRole",
        plural: "clusterroles",
        singular: "clusterrole",
        namespaced: false,
        short_names: &[],
        categories: &[],
        storage: "clusterroles",
        status_subresource: false,
        tracks_generation: false,
        create_on_update: false,
        field_labels: NO_FIELDS,
    },
    ResourceDef {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "ClusterRoleBinding",
        plural: "clusterrolebindings",
        singular: "clusterrolebinding",
        namespaced: false,
        short_names: &[],
        categories: &[],
        storage: "clusterrolebindings",
        status_subresource: false,
        tracks_generation: false,
        create_on_update: false,
        field_labels: NO_FIELDS,
    },
    ResourceDef {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "Role",
        plural: "roles",
        singular: "role",
        namespaced: true,
        short_names: &[],
        categories: &[],
        storage: "roles",
        status_subresource: false,
        tracks_generation: false,
        create_on_update: false,
        field_labels: NO_FIELDS,
    },
    ResourceDef {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "RoleBinding",
        plural: "rolebindings",
        singular: "rolebinding",
        namespaced: true,
        short_names: &[],
        categories: &[],
        storage: "rolebindings",
        status_subresource: false,
        tracks_generation: false,
        create_on_update: false,
        field_labels: NO_FIELDS,
    },
    ResourceDef {
        group: "policy",
        version: "v1",
        kind: "PodDisruptionBudget",
        plural: "poddisruptionbudgets",
        singular: "poddisruptionbudget",
        namespaced: true,
        short_names: &["pdb"],
        categories: &[],
        storage: "poddisruptionbudgets",
        status_subresource: true,
        tracks_generation: true,
        create_on_update: false,
        field_labels: NO_FIELDS,
    },
];

/// The resource served at `/api(s)/<group>/<version>/<plural>`.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Resources of one group/version, in registry order.
pub fn in_group_version(group: &str, version: &str) -> impl Iterator<Item = &'static ResourceDef> {
    RESOURCES
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

/// Served API groups (non-core), each with its single version.
pub fn groups() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        if !out.iter().any(|(g, _)| *g == r.group) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// The canonical resource of a storage key (the shape objects are stored in).
pub fn storage_def(storage: &str) -> &'static ResourceDef {
    RESOURCES
        .iter()
        .find(|r| r.storage == storage)
        .expect("every storage key has a resource")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_core_and_group_resources() {
        assert_eq!(lookup("", "v1", "services").unwrap().kind, "Service");
        assert_eq!(
            lookup("coordination.k8s.io", "v1", "leases")
                .unwrap()
                .qualified(),
            "leases.coordination.k8s.io"
        );
        assert!(lookup("", "v1", "leases").is_none());
        assert_eq!(storage_def("events").group, "");
        assert_eq!(
            lookup("events.k8s.io", "v1", "events").unwrap().storage,
            "events"
        );
    }

    #[test]
    fn groups_are_unique() {
        let g = groups();
        assert_eq!(g.len(), 6);
        assert!(g.contains(&("discovery.k8s.io", "v1")));
        assert!(g.contains(&("rbac.authorization.k8s.io", "v1")));
        let mut names: Vec<_> = g.iter().map(|(n, _)| *n).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), g.len());
    }
}
