//! Every Kubernetes API call ferrolb's binaries make, in one list per binary.
//!
//! The RBAC rules in `deploy/` are checked against these lists (every entry is
//! granted, and nothing else is), the README's permission table is rendered from
//! them, and a test records the requests the binaries really send to the testbed's
//! API server and checks each one with [`permits`]. A new API call therefore has
//! to be added here first, or a test fails: the code, the manifests and the
//! documentation cannot drift apart.
//!
//! The namespaces and object names are flags of the binaries, so an entry names
//! them by role ([`Ns`], [`Names`]) and [`Install`] supplies the values.

use std::collections::BTreeSet;
use std::fmt::Write as _;

/// The namespace an entry is limited to, by the flag that sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ns {
    /// The pool ConfigMap's namespace (`--config-namespace`, both binaries).
    Config,
    /// The controller's leader-election namespace (`--leader-namespace`).
    ControllerLeader,
    /// The speakers' Lease namespace (the speaker's `--namespace`), apart from
    /// the controller's so that the speakers' Lease rights never cover its Lease.
    Speaker,
}

/// Where an entry applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Every namespace, or a cluster-scoped resource: a ClusterRole with a
    /// ClusterRoleBinding.
    Cluster,
    /// One namespace: a Role there with a RoleBinding.
    Namespace(Ns),
}

/// Which objects an entry covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Names {
    /// Any object (RBAC rule without `resourceNames`).
    Any,
    /// Only the pool ConfigMap (`--config-name`). For list and watch this holds
    /// because both binaries select it with `fieldSelector=metadata.name=<name>`,
    /// which the API server authorizes as a request for that name.
    ConfigMap,
    /// Only the controller's leader Lease (`--leader-lease`).
    ControllerLease,
    /// Only the membership Secret (the controller's `--membership-secret`),
    /// the key speakers sign heartbeats with. The speaker lists and watches it
    /// with `fieldSelector=metadata.name=<name>`, as it does the ConfigMap.
    MembershipSecret,
}

/// One kind of API call: these verbs on this resource, in this scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiAccess {
    /// API group, `""` for the core group.
    pub group: &'static str,
    /// Resource, with its subresource if any (`services/status`).
    pub resource: &'static str,
    /// RBAC verbs (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`).
    pub verbs: &'static [&'static str],
    /// Namespace scope.
    pub scope: Scope,
    /// Object names.
    pub names: Names,
}

/// What the controller calls.
///
/// - Services: one cluster-wide watch (`list` + `watch`) feeds its cache; it never
///   reads a Service by name and never writes a Service's spec or metadata.
/// - `services/status`: a JSON merge patch of `status.loadBalancer` and
///   `status.conditions`.
/// - The pool ConfigMap: a watch selected by name.
/// - Its leader Lease: read and replaced with `resourceVersion` guarding (create
///   once, when missing; `create` cannot be limited by name in RBAC).
/// - Events: kube-runtime's `Recorder` creates `events.k8s.io/v1` Events in the
///   namespace of the object they are about (any Service's, the ConfigMap's) and
///   patches them to count repeats.
/// - The membership Secret, in the config namespace: read by name while leading,
///   and created when missing (`create` cannot be limited by name in RBAC); never
///   updated, so an operator's keys are never overwritten.
pub const CONTROLLER: &[ApiAccess] = &[
    ApiAccess {
        group: "",
        resource: "services",
        verbs: &["list", "watch"],
        scope: Scope::Cluster,
        names: Names::Any,
    },
    ApiAccess {
        group: "",
        resource: "services/status",
        verbs: &["patch"],
        scope: Scope::Cluster,
        names: Names::Any,
    },
    ApiAccess {
        group: "",
        resource: "configmaps",
        verbs: &["list", "watch"],
        scope: Scope::Namespace(Ns::Config),
        names: Names::ConfigMap,
    },
    ApiAccess {
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["create"],
        scope: Scope::Namespace(Ns::ControllerLeader),
        names: Names::Any,
    },
    ApiAccess {
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["get", "update"],
        scope: Scope::Namespace(Ns::ControllerLeader),
        names: Names::ControllerLease,
    },
    ApiAccess {
        group: "events.k8s.io",
        resource: "events",
        verbs: &["create", "patch"],
        scope: Scope::Cluster,
        names: Names::Any,
    },
    ApiAccess {
        group: "",
        resource: "secrets",
        verbs: &["create"],
        scope: Scope::Namespace(Ns::Config),
        names: Names::Any,
    },
    ApiAccess {
        group: "",
        resource: "secrets",
        verbs: &["get"],
        scope: Scope::Namespace(Ns::Config),
        names: Names::MembershipSecret,
    },
];

/// What the speaker calls.
///
/// - Services, EndpointSlices and Nodes: cluster-wide watches feeding its caches
///   (the election needs every Service's IPs, every Service's ready endpoints
///   for `externalTrafficPolicy`, and every Node's readiness and labels).
/// - The pool ConfigMap (its `l2` section): a watch selected by name.
/// - The membership Secret (its heartbeat key): a watch selected by name.
/// - Leases in its namespace (`ferrolb-speaker-leases`, which holds nothing
///   else): a watch of every speaker's Lease (peer liveness), and its own Lease
///   read, created, renewed with `replace`, and deleted on SIGTERM. The names
///   follow the node names, so they cannot be listed in RBAC; the namespace of
///   their own is what keeps the controller's Lease out of the speakers' reach.
/// - Events on Services (which node announces) and on its Node (the kernel would
///   answer ARP itself); a Node's Events go to the `default` namespace.
pub const SPEAKER: &[ApiAccess] = &[
    ApiAccess {
        group: "",
        resource: "services",
        verbs: &["list", "watch"],
        scope: Scope::Cluster,
        names: Names::Any,
    },
    ApiAccess {
        group: "discovery.k8s.io",
        resource: "endpointslices",
        verbs: &["list", "watch"],
        scope: Scope::Cluster,
        names: Names::Any,
    },
    ApiAccess {
        group: "",
        resource: "nodes",
        verbs: &["list", "watch"],
        scope: Scope::Cluster,
        names: Names::Any,
    },
    ApiAccess {
        group: "",
        resource: "configmaps",
        verbs: &["list", "watch"],
        scope: Scope::Namespace(Ns::Config),
        names: Names::ConfigMap,
    },
    ApiAccess {
        group: "",
        resource: "secrets",
        verbs: &["list", "watch"],
        scope: Scope::Namespace(Ns::Config),
        names: Names::MembershipSecret,
    },
    ApiAccess {
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["list", "watch", "get", "create", "update", "delete"],
        scope: Scope::Namespace(Ns::Speaker),
        names: Names::Any,
    },
    ApiAccess {
        group: "events.k8s.io",
        resource: "events",
        verbs: &["create", "patch"],
        scope: Scope::Cluster,
        names: Names::Any,
    },
];

/// The verbs RBAC knows for resource requests.
pub const RBAC_VERBS: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

/// Verbs whose requests carry no object name, so that RBAC cannot limit them
/// with `resourceNames` (list and watch can, through a `metadata.name` field selector).
pub const UNNAMED_VERBS: &[&str] = &["create", "deletecollection"];

/// The namespaces and names an installation uses: the values of the flags that
/// [`Ns`] and [`Names`] stand for. [`Install::default`] is the binaries' defaults,
/// which `deploy/` uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Install {
    /// `--config-namespace`.
    pub config_namespace: String,
    /// `--config-name`.
    pub config_name: String,
    /// The controller's `--leader-namespace`.
    pub leader_namespace: String,
    /// The controller's `--leader-lease`.
    pub leader_lease: String,
    /// The speaker's `--namespace`.
    pub speaker_namespace: String,
    /// The controller's `--membership-secret`.
    pub membership_secret: String,
}

impl Default for Install {
    fn default() -> Self {
        Self {
            config_namespace: "ferrolb-system".into(),
            config_name: "ferrolb-config".into(),
            leader_namespace: "ferrolb-system".into(),
            leader_lease: "ferrolb-controller".into(),
            speaker_namespace: "ferrolb-speaker-leases".into(),
            membership_secret: "ferrolb-membership".into(),
        }
    }
}

impl Install {
    /// The namespace `ns` stands for.
    pub fn namespace(&self, ns: Ns) -> &str {
        match ns {
            Ns::Config => &self.config_namespace,
            Ns::ControllerLeader => &self.leader_namespace,
            Ns::Speaker => &self.speaker_namespace,
        }
    }

    /// The namespace of `scope`, `None` for cluster scope.
    pub fn scope_namespace(&self, scope: Scope) -> Option<&str> {
        match scope {
            Scope::Cluster => None,
            Scope::Namespace(ns) => Some(self.namespace(ns)),
        }
    }

    /// The object name `names` stands for, `None` for any.
    pub fn name(&self, names: Names) -> Option<&str> {
        match names {
            Names::Any => None,
            Names::ConfigMap => Some(&self.config_name),
            Names::ControllerLease => Some(&self.leader_lease),
            Names::MembershipSecret => Some(&self.membership_secret),
        }
    }
}

/// An RBAC rule rendered from one [`ApiAccess`]: the fields of a Kubernetes
/// `PolicyRule`, plus the namespace of the Role it belongs in (`None`: a ClusterRole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRule {
    /// Namespace of the Role; `None` for a ClusterRole bound cluster-wide.
    pub namespace: Option<String>,
    /// `apiGroups`.
    pub api_groups: Vec<String>,
    /// `resources`.
    pub resources: Vec<String>,
    /// `verbs`.
    pub verbs: Vec<String>,
    /// `resourceNames` (empty: any name).
    pub resource_names: Vec<String>,
}

/// Renders `list` as RBAC rules for `install`, one rule per entry, in list order.
pub fn policy_rules(list: &[ApiAccess], install: &Install) -> Vec<PolicyRule> {
    list.iter()
        .map(|a| PolicyRule {
            namespace: install.scope_namespace(a.scope).map(str::to_owned),
            api_groups: vec![a.group.to_owned()],
            resources: vec![a.resource.to_owned()],
            verbs: a.verbs.iter().map(|v| (*v).to_owned()).collect(),
            resource_names: install
                .name(a.names)
                .map(str::to_owned)
                .into_iter()
                .collect(),
        })
        .collect()
}

/// One permission in its smallest form: a verb on a resource, in a namespace
/// (`None`: every namespace / cluster-scoped), for one object name (`None`: any).
///
/// Two sets of grants are compared by equality: RBAC objects expand to grants
/// the same way, so "every listed call is allowed and nothing more" is
/// `grants(list) == grants(roles)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Grant {
    /// Namespace, `None` for cluster-wide.
    pub namespace: Option<String>,
    /// API group.
    pub group: String,
    /// Resource with subresource.
    pub resource: String,
    /// Verb.
    pub verb: String,
    /// Object name, `None` for any.
    pub name: Option<String>,
}

/// Expands rendered rules into grants.
pub fn rule_grants(rules: &[PolicyRule]) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for r in rules {
        let names: Vec<Option<String>> = if r.resource_names.is_empty() {
            vec![None]
        } else {
            r.resource_names.iter().cloned().map(Some).collect()
        };
        for g in &r.api_groups {
            for res in &r.resources {
                for v in &r.verbs {
                    for n in &names {
                        out.insert(Grant {
                            namespace: r.namespace.clone(),
                            group: g.clone(),
                            resource: res.clone(),
                            verb: v.clone(),
                            name: n.clone(),
                        });
                    }
                }
            }
        }
    }
    out
}

/// The grants `list` needs under `install`.
pub fn grants(list: &[ApiAccess], install: &Install) -> BTreeSet<Grant> {
    rule_grants(&policy_rules(list, install))
}

/// One API request, as the API server's authorizer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// API group.
    pub group: &'a str,
    /// Resource with subresource (`services/status`).
    pub resource: &'a str,
    /// RBAC verb (a GET with `watch=true` is `watch`, a GET of a collection `list`).
    pub verb: &'a str,
    /// Namespace of the request, `None` for a cluster-wide or cluster-scoped one.
    pub namespace: Option<&'a str>,
    /// Object name: from the path, or for list/watch from a
    /// `metadata.name=<name>` field selector.
    pub name: Option<&'a str>,
}

/// Whether `list` allows `req` under `install`, with RBAC's rules: a cluster-wide
/// entry allows every namespace, a namespaced one only its namespace (never a
/// cluster-wide request), and a named entry only requests for that name.
pub fn permits(list: &[ApiAccess], install: &Install, req: &Request<'_>) -> bool {
    list.iter().any(|a| {
        a.group == req.group
            && a.resource == req.resource
            && a.verbs.contains(&req.verb)
            && match install.scope_namespace(a.scope) {
                None => true,
                Some(ns) => req.namespace == Some(ns),
            }
            && match install.name(a.names) {
                None => true,
                Some(n) => req.name == Some(n),
            }
    })
}

/// The list as a Markdown table (API group, resource, verbs, scope), as the
/// README shows it.
pub fn markdown_table(list: &[ApiAccess], install: &Install) -> String {
    let mut s = String::from("| API group | Resource | Verbs | Scope |\n|---|---|---|---|\n");
    for a in list {
        let group = if a.group.is_empty() {
            "core (`\"\"`)".to_owned()
        } else {
            format!("`{}`", a.group)
        };
        let mut scope = match install.scope_namespace(a.scope) {
            None => "cluster-wide".to_owned(),
            Some(ns) => format!("namespace `{ns}`"),
        };
        if let Some(n) = install.name(a.names) {
            let _ = write!(scope, ", only `{n}`");
        }
        let _ = writeln!(
            s,
            "| {group} | `{}` | {} | {scope} |",
            a.resource,
            a.verbs.join(", ")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists() -> [(&'static str, &'static [ApiAccess]); 2] {
        [("controller", CONTROLLER), ("speaker", SPEAKER)]
    }

    fn req<'a>(
        group: &'a str,
        resource: &'a str,
        verb: &'a str,
        namespace: Option<&'a str>,
        name: Option<&'a str>,
    ) -> Request<'a> {
        Request {
            group,
            resource,
            verb,
            namespace,
            name,
        }
    }

    #[test]
    fn verbs_are_rbac_verbs_without_repeats_or_wildcards() {
        for (who, list) in lists() {
            for a in list {
                assert!(!a.verbs.is_empty(), "{who}: {} has no verb", a.resource);
                for (i, v) in a.verbs.iter().enumerate() {
                    assert!(RBAC_VERBS.contains(v), "{who}: {} verb {v:?}", a.resource);
                    assert!(
                        !a.verbs[..i].contains(v),
                        "{who}: {} repeats {v}",
                        a.resource
                    );
                }
                assert!(!a.resource.contains('*') && !a.group.contains('*'));
            }
        }
    }

    #[test]
    fn name_limits_are_only_used_where_rbac_can_enforce_them() {
        for (who, list) in lists() {
            for a in list.iter().filter(|a| a.names != Names::Any) {
                for v in a.verbs {
                    assert!(
                        !UNNAMED_VERBS.contains(v),
                        "{who}: {} {v} cannot be limited by name",
                        a.resource
                    );
                }
            }
        }
    }

    #[test]
    fn no_call_is_listed_twice() {
        for (who, list) in lists() {
            let g = grants(list, &Install::default());
            let total: usize = list.iter().map(|a| a.verbs.len()).sum();
            assert_eq!(g.len(), total, "{who}: overlapping entries");
        }
    }

    #[test]
    fn the_controller_writes_only_service_status_leases_events_and_the_secret() {
        let writes = ["create", "update", "patch", "delete", "deletecollection"];
        for a in CONTROLLER {
            if a.verbs.iter().any(|v| writes.contains(v)) {
                assert!(
                    matches!(
                        (a.group, a.resource),
                        ("", "services/status")
                            | ("coordination.k8s.io", "leases")
                            | ("events.k8s.io", "events")
                            | ("", "secrets")
                    ),
                    "controller writes {}",
                    a.resource
                );
                // The Secret is only ever created, never overwritten.
                if a.resource == "secrets" {
                    assert_eq!(a.verbs, ["create"]);
                }
            }
        }
        // The speaker never writes a Service or a Secret in any way.
        for a in SPEAKER {
            if a.resource.starts_with("services") || a.resource == "secrets" {
                assert!(a.verbs.iter().all(|v| !writes.contains(v)));
            }
        }
    }

    #[test]
    fn rules_render_with_the_installation_names() {
        let install = Install {
            config_namespace: "cfg".into(),
            config_name: "pools".into(),
            leader_namespace: "lead".into(),
            leader_lease: "lock".into(),
            speaker_namespace: "spk".into(),
            membership_secret: "keys".into(),
        };
        let rules = policy_rules(CONTROLLER, &install);
        assert_eq!(rules.len(), CONTROLLER.len());
        assert_eq!(
            rules[2],
            PolicyRule {
                namespace: Some("cfg".into()),
                api_groups: vec!["".into()],
                resources: vec!["configmaps".into()],
                verbs: vec!["list".into(), "watch".into()],
                resource_names: vec!["pools".into()],
            }
        );
        assert_eq!(rules[4].namespace.as_deref(), Some("lead"));
        assert_eq!(rules[4].resource_names, vec!["lock".to_owned()]);
        assert_eq!(rules[0].namespace, None);
        assert!(rules[0].resource_names.is_empty());
        let speaker = policy_rules(SPEAKER, &install);
        let leases = speaker.iter().find(|r| r.resources == ["leases"]).unwrap();
        assert_eq!(leases.namespace.as_deref(), Some("spk"));
        let secret = speaker.iter().find(|r| r.resources == ["secrets"]).unwrap();
        assert_eq!(secret.namespace.as_deref(), Some("cfg"));
        assert_eq!(secret.resource_names, vec!["keys".to_owned()]);
    }

    #[test]
    fn grants_expand_every_verb_and_name() {
        let rules = vec![PolicyRule {
            namespace: Some("ns".into()),
            api_groups: vec!["g".into()],
            resources: vec!["a".into(), "b".into()],
            verbs: vec!["get".into(), "update".into()],
            resource_names: vec!["x".into(), "y".into()],
        }];
        let g = rule_grants(&rules);
        assert_eq!(g.len(), 8);
        assert!(g.contains(&Grant {
            namespace: Some("ns".into()),
            group: "g".into(),
            resource: "b".into(),
            verb: "update".into(),
            name: Some("y".into()),
        }));
    }

    #[test]
    fn permits_follows_rbac_scope_and_names() {
        let i = Install::default();
        let ns = Some("ferrolb-system");
        // Cluster-wide entries allow any namespace and cluster-wide requests.
        assert!(permits(
            CONTROLLER,
            &i,
            &req("", "services", "watch", None, None)
        ));
        assert!(permits(
            CONTROLLER,
            &i,
            &req("", "services/status", "patch", Some("shop"), Some("web"))
        ));
        // ...but not other verbs or the main resource for a status verb.
        assert!(!permits(
            CONTROLLER,
            &i,
            &req("", "services", "patch", Some("shop"), Some("web"))
        ));
        assert!(!permits(
            CONTROLLER,
            &i,
            &req("", "services", "get", Some("shop"), Some("web"))
        ));
        // Namespaced entries: only their namespace, never cluster-wide.
        let cm = |ns, name| req("", "configmaps", "watch", ns, name);
        assert!(permits(CONTROLLER, &i, &cm(ns, Some("ferrolb-config"))));
        assert!(!permits(
            CONTROLLER,
            &i,
            &cm(Some("default"), Some("ferrolb-config"))
        ));
        assert!(!permits(CONTROLLER, &i, &cm(None, Some("ferrolb-config"))));
        // Named entries: only that name, and not an unselected list.
        assert!(!permits(CONTROLLER, &i, &cm(ns, Some("other"))));
        assert!(!permits(CONTROLLER, &i, &cm(ns, None)));
        // The controller's Lease: create any, update only its own.
        let lease = |verb, name| req("coordination.k8s.io", "leases", verb, ns, name);
        assert!(permits(CONTROLLER, &i, &lease("create", None)));
        assert!(permits(
            CONTROLLER,
            &i,
            &lease("update", Some("ferrolb-controller"))
        ));
        assert!(!permits(
            CONTROLLER,
            &i,
            &lease("update", Some("ferrolb-speaker-n1"))
        ));
        assert!(!permits(
            CONTROLLER,
            &i,
            &lease("delete", Some("ferrolb-controller"))
        ));
        // The speaker manages any Lease in its own namespace, none in ferrolb-system
        // (where the controller's is), and reads no ConfigMap but its own.
        let spk_ns = Some("ferrolb-speaker-leases");
        let spk_lease = |verb, name| req("coordination.k8s.io", "leases", verb, spk_ns, name);
        assert!(permits(
            SPEAKER,
            &i,
            &spk_lease("delete", Some("ferrolb-speaker-n1"))
        ));
        assert!(permits(SPEAKER, &i, &spk_lease("watch", None)));
        for verb in ["get", "update", "delete", "watch"] {
            assert!(!permits(
                SPEAKER,
                &i,
                &lease(verb, Some("ferrolb-controller"))
            ));
        }
        // The membership Secret: the controller reads it by name and creates it;
        // the speaker watches it by name; no other Secret is readable.
        let secret = |verb, name| req("", "secrets", verb, ns, name);
        assert!(permits(
            CONTROLLER,
            &i,
            &secret("get", Some("ferrolb-membership"))
        ));
        assert!(permits(CONTROLLER, &i, &secret("create", None)));
        assert!(!permits(CONTROLLER, &i, &secret("get", Some("other"))));
        assert!(!permits(
            CONTROLLER,
            &i,
            &secret("update", Some("ferrolb-membership"))
        ));
        assert!(permits(
            SPEAKER,
            &i,
            &secret("watch", Some("ferrolb-membership"))
        ));
        assert!(!permits(SPEAKER, &i, &secret("list", None)));
        assert!(!permits(
            SPEAKER,
            &i,
            &secret("get", Some("ferrolb-membership"))
        ));
        assert!(!permits(
            SPEAKER,
            &i,
            &req("", "configmaps", "list", ns, None)
        ));
        // Events go wherever the object is; a Node's to "default".
        assert!(permits(
            SPEAKER,
            &i,
            &req("events.k8s.io", "events", "create", Some("default"), None)
        ));
        assert!(!permits(
            SPEAKER,
            &i,
            &req("", "events", "create", Some("default"), None)
        ));
    }

    #[test]
    fn the_table_has_a_row_per_entry() {
        let i = Install::default();
        for (_, list) in lists() {
            let t = markdown_table(list, &i);
            assert_eq!(t.lines().count(), list.len() + 2);
        }
        let t = markdown_table(CONTROLLER, &i);
        assert!(t.contains(
            "| core (`\"\"`) | `configmaps` | list, watch | namespace `ferrolb-system`, only `ferrolb-config` |"
        ));
        assert!(t.contains("| `events.k8s.io` | `events` | create, patch | cluster-wide |"));
    }
}
