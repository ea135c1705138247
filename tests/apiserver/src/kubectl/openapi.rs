//! A minimal OpenAPI v3 surface: the index (`/openapi/v3`) and one document per group/version,
//! holding only each resource's PATCH operation with its group-version-kind and the
//! `fieldValidation` parameter. That is what kubectl looks for to decide that the server
//! validates fields itself (so `kubectl apply/create -f` work with their default `--validate`);
//! without schemas it computes apply patches from its built-in types, as it does for any
//! server without them.

use serde_json::{Map, Value, json};

use crate::registry::{self, ResourceDef};

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: where each group/version's document is.
pub fn index() -> Value {
    let mut paths = Map::new();
    let mut gvs: Vec<(&str, &str)> = vec![("", "v1")];
    gvs.extend(registry::groups());
    for (g, v) in gvs {
        let p = gv_path(g, v);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash=ferrolb-testbed-1")}),
        );
    }
    json!({"paths": paths})
}

fn patch_op(def: &ResourceDef) -> Value {
    json!({
        "operationId": format!("patch{}", def.kind),
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": {"group": def.group, "version": def.version, "kind": def.kind},
        "parameters": [
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}}
        ],
        "responses": {"200": {"description": "OK"}}
    })
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/<group>/<version>`, if served.
pub fn document(group: &str, version: &str) -> Option<Value> {
    let defs: Vec<&ResourceDef> = registry::in_group_version(group, version).collect();
    if defs.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let base = format!("/{}", gv_path(group, version));
    for def in defs {
        let item = if def.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", def.plural)
        } else {
            format!("{base}/{}/{{name}}", def.plural)
        };
        paths.insert(item, json!({"patch": patch_op(def)}));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (ferrolb testbed)", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": {}}
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_and_documents() {
        let i = index();
        assert!(
            i["paths"]["api/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/api/v1")
        );
        assert!(i["paths"].get("apis/coordination.k8s.io/v1").is_some());
        let d = document("", "v1").unwrap();
        let op = &d["paths"]["/api/v1/namespaces/{namespace}/services/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "Service");
        assert!(
            op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        assert!(d["paths"].get("/api/v1/nodes/{name}").is_some());
        assert!(document("apps", "v1").is_some());
        assert!(document("batch", "v1").is_none());
    }
}
