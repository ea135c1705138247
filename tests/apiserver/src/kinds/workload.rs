//! What the install manifests hold besides ferrolb's own kinds: Deployments, DaemonSets,
//! RBAC bindings and PodDisruptionBudgets. They are stored, not run (no pods start); the
//! checks here are the few kube-apiserver makes that a wrong manifest would trip on.

use serde_json::Value;

use super::super::status::FieldError;

/// The one Deployment default `kubectl get` shows: an unset `spec.replicas` is 1 (on create
/// and on every update, so an apply that drops the field scales back to one).
pub fn default_deployment(obj: &mut Value) {
    if obj["spec"].is_object() && obj["spec"]["replicas"].is_null() {
        obj["spec"]["replicas"] = Value::from(1);
    }
}

/// `spec.selector` of a Deployment or DaemonSet: required, non-empty, immutable, and it
/// must select the pod template's labels.
pub fn validate_workload(old: Option<&Value>, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let selector = &obj["spec"]["selector"];
    let match_labels = selector["matchLabels"].as_object();
    let has_expressions = selector["matchExpressions"]
        .as_array()
        .is_some_and(|a| !a.is_empty());
    if selector.is_null() {
        errs.push(FieldError::required("spec.selector", ""));
    } else if match_labels.is_none_or(|m| m.is_empty()) && !has_expressions {
        errs.push(FieldError::invalid(
            "spec.selector",
            selector.clone(),
            "empty selector is invalid for deployment",
        ));
    }
    let template_labels = obj["spec"]["template"]["metadata"]["labels"].as_object();
    if let Some(wanted) = match_labels {
        let selects = wanted
            .iter()
            .all(|(k, v)| template_labels.and_then(|l| l.get(k)) == Some(v));
        if !selects {
            errs.push(FieldError::invalid(
                "spec.template.metadata.labels",
                obj["spec"]["template"]["metadata"]["labels"].clone(),
                "`selector` does not match template `labels`",
            ));
        }
    }
    if let Some(old) = old
        && old["spec"]["selector"] != *selector
    {
        errs.push(FieldError::invalid(
            "spec.selector",
            selector.clone(),
            "field is immutable",
        ));
    }
    errs
}

/// `roleRef` of a RoleBinding or ClusterRoleBinding: required, of the RBAC group, and
/// immutable (a binding is deleted and recreated to point elsewhere).
pub fn validate_binding(old: Option<&Value>, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let role_ref = &obj["roleRef"];
    if role_ref["apiGroup"] != "rbac.authorization.k8s.io" {
        errs.push(FieldError::not_supported(
            "roleRef.apiGroup",
            role_ref["apiGroup"].clone(),
            &["rbac.authorization.k8s.io"],
        ));
    }
    match role_ref["kind"].as_str() {
        Some("Role" | "ClusterRole") => {}
        _ => errs.push(FieldError::not_supported(
            "roleRef.kind",
            role_ref["kind"].clone(),
            &["ClusterRole", "Role"],
        )),
    }
    if role_ref["name"].as_str().is_none_or(str::is_empty) {
        errs.push(FieldError::required("roleRef.name", ""));
    }
    if let Some(old) = old
        && old["roleRef"] != *role_ref
    {
        errs.push(FieldError::invalid(
            "roleRef",
            role_ref.clone(),
            "cannot change roleRef",
        ));
    }
    errs
}

/// A PodDisruptionBudget sets `minAvailable` or `maxUnavailable`, not both.
pub fn validate_pdb(obj: &Value) -> Vec<FieldError> {
    let spec = &obj["spec"];
    if !spec["minAvailable"].is_null() && !spec["maxUnavailable"].is_null() {
        return vec![FieldError::invalid(
            "spec",
            spec.clone(),
            "minAvailable and maxUnavailable cannot be both set",
        )];
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(selector: Value, labels: Value) -> Value {
        json!({"spec": {"selector": selector, "template": {"metadata": {"labels": labels}}}})
    }

    #[test]
    fn a_workload_selector_must_select_its_template() {
        let ok = deploy(
            json!({"matchLabels": {"app": "a"}}),
            json!({"app": "a", "x": "y"}),
        );
        assert!(validate_workload(None, &ok).is_empty());
        let bad = deploy(json!({"matchLabels": {"app": "a"}}), json!({"app": "b"}));
        let errs = validate_workload(None, &bad);
        assert_eq!(errs[0].field, "spec.template.metadata.labels");
        assert_eq!(
            validate_workload(None, &json!({"spec": {}}))[0].field,
            "spec.selector"
        );
        let moved = deploy(json!({"matchLabels": {"app": "b"}}), json!({"app": "b"}));
        let errs = validate_workload(Some(&ok), &moved);
        assert!(
            errs.iter().any(|e| e.detail == "field is immutable"),
            "{errs:?}"
        );
    }

    #[test]
    fn a_deployment_defaults_to_one_replica() {
        let mut d = json!({"spec": {}});
        default_deployment(&mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        let mut two = json!({"spec": {"replicas": 2}});
        default_deployment(&mut two);
        assert_eq!(two["spec"]["replicas"], 2);
    }

    #[test]
    fn a_binding_needs_an_rbac_role_ref_that_never_changes() {
        let b = json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}});
        assert!(validate_binding(None, &b).is_empty());
        let errs = validate_binding(None, &json!({}));
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["roleRef.apiGroup", "roleRef.kind", "roleRef.name"]);
        let other = json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "s"}});
        assert_eq!(
            validate_binding(Some(&b), &other)[0].detail,
            "cannot change roleRef"
        );
    }

    #[test]
    fn a_pdb_sets_one_bound() {
        assert!(validate_pdb(&json!({"spec": {"minAvailable": 1}})).is_empty());
        assert_eq!(
            validate_pdb(&json!({"spec": {"minAvailable": 1, "maxUnavailable": 1}})).len(),
            1
        );
    }
}
