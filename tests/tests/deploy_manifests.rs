//! The install manifests (`deploy/`), rendered offline with `kubectl kustomize` and
//! checked object by object: every object parses into its k8s-openapi type with no
//! field lost, the workloads have the security context, probes, ports and flags
//! they need, and each binary's RBAC grants exactly what
//! `ferrolb_testbed::api_access` lists for it — no call missing, nothing more.

mod deploy_support;

use std::collections::BTreeSet;

use deploy_support::*;
use ferrolb_testbed::api_access::{self, ApiAccess, Grant, Install};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::api::rbac::v1::PolicyRule;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

#[test]
fn kustomize_renders_every_object_into_its_type() {
    let docs = render();
    let m = Manifests::from_values(&docs).unwrap_or_else(|e| panic!("{e}"));
    let count = |k: &str| docs.iter().filter(|d| kind(d) == k).count();
    let ns_names: BTreeSet<_> = m
        .namespaces
        .iter()
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();
    assert_eq!(ns_names, BTreeSet::from([NAMESPACE, LEASE_NAMESPACE]));
    assert_eq!(m.service_accounts.len(), 2);
    assert_eq!(
        (m.cluster_roles.len(), m.cluster_role_bindings.len()),
        (2, 2)
    );
    assert_eq!((m.roles.len(), m.role_bindings.len()), (3, 3));
    assert_eq!(
        (m.deployments.len(), m.daemon_sets.len(), m.pdbs.len()),
        (1, 1, 1)
    );
    assert_eq!(m.config_maps.len(), 1);
    assert_eq!(
        docs.len(),
        18,
        "kinds: {:?}",
        docs.iter().map(kind).collect::<Vec<_>>()
    );
    assert_eq!(count("Namespace"), 2);
    // Everything namespaced lives in ferrolb-system but the speakers' Lease Role and
    // its binding, and every object is labelled.
    for d in &docs {
        let cluster_scoped = matches!(kind(d), "Namespace" | "ClusterRole" | "ClusterRoleBinding");
        let ns = d["metadata"]["namespace"].as_str();
        if cluster_scoped {
            assert_eq!(ns, None, "{} {}", kind(d), name(d));
        } else if ns == Some(LEASE_NAMESPACE) {
            assert!(
                matches!(kind(d), "Role" | "RoleBinding") && name(d) == SPEAKER_SA,
                "only the speakers' Lease Role belongs in {LEASE_NAMESPACE}: {} {}",
                kind(d),
                name(d)
            );
        } else {
            assert_eq!(ns, Some(NAMESPACE), "{} {}", kind(d), name(d));
        }
        assert_eq!(
            d["metadata"]["labels"]["app.kubernetes.io/part-of"].as_str(),
            Some("ferrolb"),
            "{} {}",
            kind(d),
            name(d)
        );
    }
    // The speaker needs hostNetwork and NET_RAW: Pod Security must allow it.
    let system = m
        .namespaces
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(NAMESPACE))
        .unwrap();
    let labels = system.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str),
        Some("privileged")
    );
}

#[test]
fn the_typed_check_catches_a_misspelt_field() {
    let mut docs = render();
    let d = docs
        .iter_mut()
        .find(|d| kind(d) == "DaemonSet")
        .expect("DaemonSet");
    let c = &mut d["spec"]["template"]["spec"]["containers"][0];
    let probe = c["readinessProbe"].take();
    c["readinesProbe"] = probe;
    let err = Manifests::from_values(&docs)
        .err()
        .expect("a misspelt field must be caught");
    assert!(
        err.contains("DaemonSet ferrolb-speaker: a field was lost"),
        "{err}"
    );
    // An object of a kind deploy/ should not hold is refused too.
    docs.push(serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}));
    let err = Manifests::from_values(&docs[docs.len() - 1..])
        .err()
        .expect("unexpected kind");
    assert!(err.contains("unexpected object v1 Secret x"), "{err}");
}

#[test]
fn controller_deployment_runs_two_locked_down_replicas_with_leader_election() {
    let m = Manifests::load();
    let d = m.deployment("ferrolb-controller");
    let spec = d.spec.as_ref().expect("spec");
    assert_eq!(spec.replicas, Some(2));
    let pod = pod_spec(&spec.template);
    assert_eq!(pod.service_account_name.as_deref(), Some(CONTROLLER_SA));
    assert_ne!(pod.host_network, Some(true));
    assert_ne!(
        pod.automount_service_account_token,
        Some(false),
        "it needs its token"
    );
    let c = only_container(pod);
    assert_eq!(c.image.as_deref(), Some(IMAGE));
    assert_eq!(
        c.command.as_deref(),
        Some(&["/usr/local/bin/ferrolb-controller".to_owned()][..])
    );

    // Non-root, nothing writable, no capability, no escalation.
    let psc = pod.security_context.as_ref().expect("pod securityContext");
    let sc = c
        .security_context
        .as_ref()
        .expect("container securityContext");
    assert_eq!(psc.run_as_non_root, Some(true));
    assert!(psc.run_as_user.is_some_and(|u| u != 0));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_ne!(sc.privileged, Some(true));
    let caps = sc.capabilities.as_ref().expect("capabilities");
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_owned()][..]));
    assert!(caps.add.as_ref().is_none_or(Vec::is_empty));
    assert_eq!(seccomp(pod, c).as_deref(), Some("RuntimeDefault"));

    // Leader election: the identity comes from the pod name; the flags parse.
    assert_eq!(field_ref(c, "POD_NAME"), Some("metadata.name"));
    let env = env_of(c, NAMESPACE);
    let cli: ferrolb_controller::cli::Cli = parse_env(&env);
    assert!(cli.command.is_none(), "the container runs the controller");
    let run = &cli.run;
    assert!(
        run.identity
            .as_deref()
            .is_some_and(|i| i.starts_with("ferrolb-controller-"))
    );
    assert!(run.renew_period < run.lease_duration);
    assert!(run.common.kubeconfig.is_none(), "in-cluster config");

    // Metrics and health on the named port the flags say.
    assert_eq!(metrics_port(c), i32::from(run.metrics_addr.port()));
    assert!(
        run.metrics_addr.ip().is_unspecified(),
        "probes reach the pod IP"
    );
    assert_health_probes(c);

    // Pods carry the labels the selector, the anti-affinity and the PDB use.
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let selector = spec.selector.match_labels.clone().unwrap_or_default();
    assert!(!selector.is_empty());
    assert!(selector.iter().all(|(k, v)| labels.get(k) == Some(v)));
}

#[test]
fn controller_has_a_disruption_budget_that_keeps_one_replica() {
    let m = Manifests::load();
    let d = m.deployment("ferrolb-controller");
    let spec = d.spec.as_ref().expect("spec");
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let pdb = &m.pdbs[0];
    let ps = pdb.spec.as_ref().expect("PDB spec");
    let sel = ps.selector.as_ref().expect("PDB selector");
    let want = sel.match_labels.clone().unwrap_or_default();
    assert!(!want.is_empty());
    assert!(sel.match_expressions.as_ref().is_none_or(Vec::is_empty));
    assert!(
        want.iter().all(|(k, v)| labels.get(k) == Some(v)),
        "PDB selects the controller pods"
    );
    // It must not select the speaker pods (a DaemonSet cannot be evicted sensibly).
    let ds = m.daemon_set("ferrolb-speaker");
    let sp = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    assert!(!want.iter().all(|(k, v)| sp.get(k) == Some(v)));
    match (&ps.min_available, &ps.max_unavailable) {
        (Some(IntOrString::Int(n)), None) => assert!(*n >= 1 && *n < spec.replicas.unwrap_or(1)),
        (None, Some(IntOrString::Int(1))) => {}
        other => panic!("unexpected PDB bounds {other:?}"),
    }
}

#[test]
fn speaker_daemonset_runs_on_every_node_with_net_raw_only() {
    let m = Manifests::load();
    let ds = m.daemon_set("ferrolb-speaker");
    let spec = ds.spec.as_ref().expect("spec");
    let pod = pod_spec(&spec.template);
    assert_eq!(pod.service_account_name.as_deref(), Some(SPEAKER_SA));
    assert_eq!(
        pod.host_network,
        Some(true),
        "ARP/NDP on the node's interfaces"
    );
    assert_eq!(pod.dns_policy.as_deref(), Some("ClusterFirstWithHostNet"));
    let c = only_container(pod);
    assert_eq!(c.image.as_deref(), Some(IMAGE));
    assert_eq!(
        c.command.as_deref(),
        Some(&["/usr/local/bin/ferrolb-speaker".to_owned()][..])
    );

    // Runs on control-plane nodes too.
    let tolerations = pod.tolerations.clone().unwrap_or_default();
    for key in [
        "node-role.kubernetes.io/control-plane",
        "node-role.kubernetes.io/master",
    ] {
        assert!(
            tolerations.iter().any(|t| t.key.as_deref() == Some(key)
                && t.operator.as_deref() == Some("Exists")
                && t.effect.as_deref() == Some("NoSchedule")),
            "no toleration for {key}"
        );
    }

    // Exactly NET_RAW; read-only root; no escalation; default seccomp. It runs as
    // uid 0 because only root keeps added capabilities (see speaker.yaml).
    let sc = c
        .security_context
        .as_ref()
        .expect("container securityContext");
    let caps = sc.capabilities.as_ref().expect("capabilities");
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_owned()][..]));
    assert_eq!(caps.add.as_deref(), Some(&["NET_RAW".to_owned()][..]));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_ne!(sc.privileged, Some(true));
    assert_eq!(sc.run_as_user, Some(0));
    assert_ne!(
        sc.run_as_non_root,
        Some(true),
        "runAsNonRoot would refuse uid 0"
    );
    assert_eq!(seccomp(pod, c).as_deref(), Some("RuntimeDefault"));
    assert!(pod.host_pid.is_none() && pod.host_ipc.is_none());
    assert!(
        pod.volumes
            .as_ref()
            .is_none_or(|v| v.iter().all(|v| v.host_path.is_none()))
    );

    // Node name from the downward API; the flags parse.
    assert_eq!(field_ref(c, "NODE_NAME"), Some("spec.nodeName"));
    let env = env_of(c, NAMESPACE);
    let cli: ferrolb_speaker::Cli = parse_env(&env);
    cli.settings()
        .expect("the speaker accepts the manifest's flags");
    assert_eq!(cli.node_name, "node-1");
    assert!(cli.common.kubeconfig.is_none(), "in-cluster config");

    // Metrics and health on the named port the flags say; on the host network the
    // container port is the host port.
    let port = metrics_port(c);
    assert_eq!(port, i32::from(cli.metrics_addr.port()));
    assert_eq!(port, 7473, "the documented speaker port");
    let p = c
        .ports
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|p| p.name.as_deref() == Some("metrics"))
        .cloned()
        .expect("port");
    assert!(p.host_port.is_none_or(|h| h == port));
    assert_health_probes(c);

    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let selector = spec.selector.match_labels.clone().unwrap_or_default();
    assert!(!selector.is_empty());
    assert!(selector.iter().all(|(k, v)| labels.get(k) == Some(v)));
}

#[test]
fn the_ports_do_not_collide_and_are_scrapable() {
    let m = Manifests::load();
    let c = only_container(pod_spec(
        &m.deployment("ferrolb-controller")
            .spec
            .as_ref()
            .unwrap()
            .template,
    ));
    let s = only_container(pod_spec(
        &m.daemon_set("ferrolb-speaker")
            .spec
            .as_ref()
            .unwrap()
            .template,
    ));
    // A controller replica may share a node with a speaker on the host network.
    assert_ne!(metrics_port(c), metrics_port(s));
    for t in [
        &m.deployment("ferrolb-controller")
            .spec
            .as_ref()
            .unwrap()
            .template,
        &m.daemon_set("ferrolb-speaker")
            .spec
            .as_ref()
            .unwrap()
            .template,
    ] {
        let ann = t
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.clone())
            .unwrap_or_default();
        let port: i32 = ann
            .get("prometheus.io/port")
            .expect("scrape port")
            .parse()
            .expect("number");
        assert_eq!(port, metrics_port(only_container(pod_spec(t))));
    }
}

#[test]
fn the_image_is_the_documented_tag_and_holds_both_binaries() {
    let m = Manifests::load();
    let mut images = BTreeSet::new();
    for c in [
        only_container(pod_spec(
            &m.deployment("ferrolb-controller")
                .spec
                .as_ref()
                .unwrap()
                .template,
        )),
        only_container(pod_spec(
            &m.daemon_set("ferrolb-speaker")
                .spec
                .as_ref()
                .unwrap()
                .template,
        )),
    ] {
        images.insert(c.image.clone().unwrap_or_default());
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
        // The Dockerfile installs the binary the container runs.
        let dockerfile =
            std::fs::read_to_string(repo_root().join("Dockerfile")).expect("Dockerfile");
        let bin = &c.command.as_ref().expect("command")[0];
        assert!(
            dockerfile.contains(bin.as_str()),
            "the Dockerfile does not install {bin}"
        );
    }
    assert_eq!(images, BTreeSet::from([IMAGE.to_owned()]));
}

/// The binaries are linked against the builder's glibc, so the runtime base must be the
/// same Debian release (an older glibc there fails at start with "GLIBC_2.xx not found").
#[test]
fn the_image_runs_on_the_debian_release_it_was_built_on() {
    let dockerfile = std::fs::read_to_string(repo_root().join("Dockerfile")).expect("Dockerfile");
    let froms: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("FROM "))
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    assert_eq!(froms.len(), 2, "a builder and a runtime stage: {froms:?}");
    let (builder, base) = (froms[0], froms[1]);
    // Debian release names and numbers as the two images spell them.
    let releases = [
        ("bullseye", "debian11"),
        ("bookworm", "debian12"),
        ("trixie", "debian13"),
    ];
    let built_on = releases
        .iter()
        .find(|(name, _)| builder.contains(name))
        .unwrap_or_else(|| panic!("builder {builder} names no Debian release"));
    assert!(
        base.contains(built_on.1),
        "built on {} but run on {base}",
        built_on.0
    );
    assert!(
        base.starts_with("gcr.io/distroless/cc-"),
        "the glibc binaries need the distroless cc base (glibc, libgcc), not {base}"
    );
}

/// The example pool ConfigMap is valid and uses documentation addresses only.
#[test]
fn the_example_config_is_valid_and_uses_documentation_ranges() {
    let m = Manifests::load();
    let cm = &m.config_maps[0];
    let install = Install::default();
    assert_eq!(
        cm.metadata.name.as_deref(),
        Some(install.config_name.as_str())
    );
    let data = cm.data.clone().expect("data");
    let parsed = ferrolb_config::parse_configmap_data(&data)
        .unwrap_or_else(|e| panic!("deploy/config.yaml is rejected: {e}"));
    assert_eq!(parsed.format, ferrolb_config::Format::Ferrolb);
    assert!(!parsed.config.pools.is_empty());
    let doc: [(std::net::IpAddr, std::net::IpAddr); 3] = [
        ("192.0.2.0".parse().unwrap(), "192.0.2.255".parse().unwrap()),
        (
            "198.51.100.0".parse().unwrap(),
            "198.51.100.255".parse().unwrap(),
        ),
        (
            "203.0.113.0".parse().unwrap(),
            "203.0.113.255".parse().unwrap(),
        ),
    ];
    for p in &parsed.config.pools {
        for r in &p.ranges {
            assert!(
                doc.iter().any(|(lo, hi)| *lo <= r.start && r.end <= *hi),
                "pool {}: {r:?} is not a documentation range",
                p.name
            );
        }
    }
}

// ---- RBAC ------------------------------------------------------------------

/// What a ServiceAccount is granted by the rendered bindings, as grants.
fn granted_to(m: &Manifests, sa_namespace: &str, sa: &str) -> BTreeSet<Grant> {
    let is_subject = |subjects: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>| {
        subjects.as_deref().unwrap_or_default().iter().any(|s| {
            s.kind == "ServiceAccount"
                && s.name == sa
                && s.namespace.as_deref() == Some(sa_namespace)
        })
    };
    let cluster_role = |name: &str| -> &[PolicyRule] {
        m.cluster_roles
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("ClusterRole {name} is bound but missing"))
            .rules
            .as_deref()
            .unwrap_or_default()
    };
    let mut out = BTreeSet::new();
    for b in m
        .cluster_role_bindings
        .iter()
        .filter(|b| is_subject(&b.subjects))
    {
        assert_eq!(b.role_ref.kind, "ClusterRole");
        assert_eq!(b.role_ref.api_group, "rbac.authorization.k8s.io");
        out.extend(expand(None, cluster_role(&b.role_ref.name)));
    }
    for b in m.role_bindings.iter().filter(|b| is_subject(&b.subjects)) {
        let ns = b.metadata.namespace.clone().expect("RoleBinding namespace");
        let rules = match b.role_ref.kind.as_str() {
            "ClusterRole" => cluster_role(&b.role_ref.name),
            "Role" => m
                .roles
                .iter()
                .find(|r| {
                    r.metadata.name.as_deref() == Some(b.role_ref.name.as_str())
                        && r.metadata.namespace.as_deref() == Some(ns.as_str())
                })
                .unwrap_or_else(|| panic!("Role {ns}/{} is bound but missing", b.role_ref.name))
                .rules
                .as_deref()
                .unwrap_or_default(),
            other => panic!("roleRef kind {other}"),
        };
        out.extend(expand(Some(ns), rules));
    }
    out
}

fn expand(namespace: Option<String>, rules: &[PolicyRule]) -> BTreeSet<Grant> {
    let rendered: Vec<api_access::PolicyRule> = rules
        .iter()
        .map(|r| {
            assert!(
                r.non_resource_urls.as_ref().is_none_or(Vec::is_empty),
                "non-resource URLs"
            );
            let api_groups = r.api_groups.clone().unwrap_or_default();
            let resources = r.resources.clone().unwrap_or_default();
            for s in api_groups.iter().chain(&resources).chain(&r.verbs) {
                assert!(!s.contains('*'), "wildcard in {r:?}");
            }
            api_access::PolicyRule {
                namespace: namespace.clone(),
                api_groups,
                resources,
                verbs: r.verbs.clone(),
                resource_names: r.resource_names.clone().unwrap_or_default(),
            }
        })
        .collect();
    api_access::rule_grants(&rendered)
}

/// The namespaces and names the binaries really use, from their flags in the manifests.
fn install_from_flags(m: &Manifests) -> Install {
    let c = only_container(pod_spec(
        &m.deployment("ferrolb-controller")
            .spec
            .as_ref()
            .unwrap()
            .template,
    ));
    let s = only_container(pod_spec(
        &m.daemon_set("ferrolb-speaker")
            .spec
            .as_ref()
            .unwrap()
            .template,
    ));
    let ctl: ferrolb_controller::cli::Cli = parse_env(&env_of(c, NAMESPACE));
    let spk: ferrolb_speaker::Cli = parse_env(&env_of(s, NAMESPACE));
    assert_eq!(
        (&ctl.run.config_namespace, &ctl.run.config_name),
        (&spk.config_namespace, &spk.config_name),
        "both binaries read the same ConfigMap"
    );
    Install {
        config_namespace: ctl.run.config_namespace.clone(),
        config_name: ctl.run.config_name.clone(),
        leader_namespace: ctl
            .run
            .leader_namespace
            .clone()
            .unwrap_or(ctl.run.config_namespace.clone()),
        leader_lease: ctl.run.leader_lease.clone(),
        speaker_namespace: spk.namespace.clone(),
        membership_secret: ctl.run.membership_secret.clone(),
    }
}

/// Compares what RBAC grants with what the list needs; returns the problems.
fn rbac_problems(m: &Manifests, sa: &str, list: &[ApiAccess], install: &Install) -> Vec<String> {
    let granted = granted_to(m, NAMESPACE, sa);
    let needed = api_access::grants(list, install);
    let mut problems = Vec::new();
    for g in needed.difference(&granted) {
        problems.push(format!("{sa}: missing {g:?}"));
    }
    for g in granted.difference(&needed) {
        problems.push(format!("{sa}: granted but never used {g:?}"));
    }
    problems
}

#[test]
fn rbac_grants_exactly_the_api_calls_of_each_binary() {
    let m = Manifests::load();
    let install = install_from_flags(&m);
    assert_eq!(
        install,
        Install::default(),
        "deploy/ uses the binaries' defaults"
    );
    // Each binary runs as its own ServiceAccount.
    let sa_of = |t: &PodTemplateSpec| pod_spec(t).service_account_name.clone();
    assert_eq!(
        sa_of(
            &m.deployment("ferrolb-controller")
                .spec
                .as_ref()
                .unwrap()
                .template
        )
        .as_deref(),
        Some(CONTROLLER_SA)
    );
    assert_eq!(
        sa_of(
            &m.daemon_set("ferrolb-speaker")
                .spec
                .as_ref()
                .unwrap()
                .template
        )
        .as_deref(),
        Some(SPEAKER_SA)
    );
    for sa in [CONTROLLER_SA, SPEAKER_SA] {
        assert!(
            m.service_accounts
                .iter()
                .any(|s| s.metadata.name.as_deref() == Some(sa))
        );
    }
    let mut problems = rbac_problems(&m, CONTROLLER_SA, api_access::CONTROLLER, &install);
    problems.extend(rbac_problems(&m, SPEAKER_SA, api_access::SPEAKER, &install));
    assert!(
        problems.is_empty(),
        "RBAC differs from api_access:\n{}",
        problems.join("\n")
    );

    // Every rule belongs to one of the two binaries, and every binding binds one of them.
    for b in &m.cluster_role_bindings {
        let subs = b.subjects.as_deref().unwrap_or_default();
        assert!(subs.iter().all(|s| s.kind == "ServiceAccount"
            && [CONTROLLER_SA, SPEAKER_SA].contains(&s.name.as_str())));
    }
    for b in &m.role_bindings {
        let subs = b.subjects.as_deref().unwrap_or_default();
        assert!(subs.iter().all(|s| s.kind == "ServiceAccount"
            && [CONTROLLER_SA, SPEAKER_SA].contains(&s.name.as_str())));
    }
    // Namespaced permissions live in Roles, not in cluster-wide grants; the
    // speakers' Lease rights only in their own namespace.
    for list in [api_access::CONTROLLER, api_access::SPEAKER] {
        for r in api_access::policy_rules(list, &install) {
            if let Some(ns) = &r.namespace {
                let want = if list == api_access::SPEAKER && r.resources == ["leases"] {
                    LEASE_NAMESPACE
                } else {
                    NAMESPACE
                };
                assert_eq!(ns, want, "{r:?}");
            }
        }
    }
    // No speaker right at all on a Lease in ferrolb-system, where the controller's is.
    let speaker = granted_to(&m, NAMESPACE, SPEAKER_SA);
    assert!(
        !speaker
            .iter()
            .any(|g| g.resource == "leases" && g.namespace.as_deref() != Some(LEASE_NAMESPACE)),
        "{speaker:?}"
    );
}

#[test]
fn the_rbac_check_catches_extra_and_missing_permissions() {
    let install = Install::default();
    // One verb too many on a cluster-wide rule.
    let mut m = Manifests::load();
    let cr = m
        .cluster_roles
        .iter_mut()
        .find(|r| r.metadata.name.as_deref() == Some(SPEAKER_SA))
        .unwrap();
    cr.rules.as_mut().unwrap()[0].verbs.push("get".into());
    let p = rbac_problems(&m, SPEAKER_SA, api_access::SPEAKER, &install);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].contains("granted but never used") && p[0].contains("\"get\""),
        "{p:?}"
    );

    // A name limit dropped: the ConfigMap rule would allow every ConfigMap.
    let mut m = Manifests::load();
    let role = m
        .roles
        .iter_mut()
        .find(|r| r.metadata.name.as_deref() == Some(CONTROLLER_SA))
        .unwrap();
    for r in role.rules.as_mut().unwrap() {
        if r.resources.as_deref() == Some(&["configmaps".to_owned()][..]) {
            r.resource_names = None;
        }
    }
    let p = rbac_problems(&m, CONTROLLER_SA, api_access::CONTROLLER, &install);
    assert!(
        p.iter().any(|s| s.contains("missing")) && p.iter().any(|s| s.contains("never used")),
        "{p:?}"
    );

    // The Role bound cluster-wide instead (a ClusterRole): wrong scope.
    let mut m = Manifests::load();
    m.role_bindings
        .retain(|b| b.metadata.name.as_deref() != Some(SPEAKER_SA));
    let p = rbac_problems(&m, SPEAKER_SA, api_access::SPEAKER, &install);
    assert!(
        !p.is_empty() && p.iter().all(|s| s.contains("missing")),
        "{p:?}"
    );

    // A renamed ConfigMap flag without the Role following.
    let m = Manifests::load();
    let renamed = Install {
        config_name: "pools".into(),
        ..Install::default()
    };
    assert!(!rbac_problems(&m, CONTROLLER_SA, api_access::CONTROLLER, &renamed).is_empty());
}
