//! Validation of the data-carrying kinds ferrolb reads: ConfigMaps (its pool configuration) and
//! EndpointSlices (which nodes have ready endpoints, for `externalTrafficPolicy: Local`).

use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::Value;

use super::super::status::FieldError;
use super::{is_dns_label, is_dns_subdomain};

const MAX_CONFIGMAP_BYTES: usize = 1024 * 1024;
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

fn valid_config_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 253
        && k != "."
        && k != ".."
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// ConfigMap keys (`[-._a-zA-Z0-9]+`, unique across data and binaryData) and total size (1 MiB).
/// Defaults and validates a Secret as the API server does: `stringData` is merged into
/// `data` (base64) and dropped, `type` defaults to `Opaque`, keys must be valid config
/// keys.
pub fn prepare_secret(obj: &mut Value) -> Vec<FieldError> {
    use base64::Engine as _;
    let mut errs = Vec::new();
    if let Some(strings) = obj.get("stringData").and_then(Value::as_object).cloned() {
        for (k, v) in strings {
            let text = v.as_str().unwrap_or_default();
            obj["data"][k.as_str()] =
                Value::String(base64::engine::general_purpose::STANDARD.encode(text));
        }
    }
    if let Some(o) = obj.as_object_mut() {
        o.remove("stringData");
    }
    if obj["type"].as_str().unwrap_or_default().is_empty() {
        obj["type"] = Value::String("Opaque".into());
    }
    for k in obj["data"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        if !valid_config_key(k) {
            errs.push(FieldError::invalid(
                format!("data[{k}]"),
                k.as_str(),
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
            ));
        }
    }
    errs
}

pub fn validate_configmap(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut total = 0usize;
    for field in ["data", "binaryData"] {
        for (k, v) in obj[field].as_object().into_iter().flatten() {
            if !valid_config_key(k) {
                errs.push(FieldError::invalid(
                    format!("{field}[{k}]"),
                    k.as_str(),
                    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                ));
            }
            if field == "binaryData" && obj["data"].get(k).is_some() {
                errs.push(FieldError::invalid(
                    format!("binaryData[{k}]"),
                    k.as_str(),
                    "duplicate of key present in data",
                ));
            }
            total += v.as_str().map_or(0, str::len);
        }
    }
    if total > MAX_CONFIGMAP_BYTES {
        errs.push(FieldError::invalid(
            "",
            total,
            format!("Too long: must have at most {MAX_CONFIGMAP_BYTES} bytes"),
        ));
    }
    errs
}

/// EndpointSlice addressType, addresses (valid for the type, 1 to 100 per endpoint), ports, and
/// the immutability of addressType.
pub fn validate_endpointslice(old: Option<&Value>, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ty = obj["addressType"].as_str().unwrap_or("");
    if !matches!(ty, "IPv4" | "IPv6" | "FQDN") {
        errs.push(FieldError::not_supported(
            "addressType",
            ty,
            &["FQDN", "IPv4", "IPv6"],
        ));
    }
    if let Some(old) = old
        && old["addressType"] != obj["addressType"]
    {
        errs.push(FieldError::invalid("addressType", ty, "field is immutable"));
    }
    let endpoints = obj["endpoints"].as_array().cloned().unwrap_or_default();
    if endpoints.len() > 1000 {
        errs.push(FieldError::invalid(
            "endpoints",
            endpoints.len(),
            "must have at most 1000 items",
        ));
    }
    for (i, ep) in endpoints.iter().enumerate() {
        let addrs = ep["addresses"].as_array().cloned().unwrap_or_default();
        if addrs.is_empty() || addrs.len() > 100 {
            errs.push(FieldError::invalid(
                format!("endpoints[{i}].addresses"),
                addrs.len(),
                "must contain at least 1 and at most 100 addresses",
            ));
        }
        for (j, a) in addrs.iter().enumerate() {
            let a = a.as_str().unwrap_or("");
            let ok = match ty {
                "IPv4" => a.parse::<Ipv4Addr>().is_ok(),
                "IPv6" => a.parse::<Ipv6Addr>().is_ok(),
                _ => is_dns_subdomain(a),
            };
            if !ok {
                let what = match ty {
                    "IPv4" => "must be a valid IPv4 address",
                    "IPv6" => "must be a valid IPv6 address",
                    _ => "must be a valid DNS subdomain",
                };
                errs.push(FieldError::invalid(
                    format!("endpoints[{i}].addresses[{j}]"),
                    a,
                    what,
                ));
            }
        }
        if let Some(n) = ep["nodeName"].as_str()
            && !is_dns_subdomain(n)
        {
            errs.push(FieldError::invalid(
                format!("endpoints[{i}].nodeName"),
                n,
                "must be a valid node name",
            ));
        }
    }
    for (i, p) in obj["ports"].as_array().into_iter().flatten().enumerate() {
        if let Some(name) = p["name"].as_str()
            && !name.is_empty()
            && !is_dns_label(name)
        {
            errs.push(FieldError::invalid(
                format!("ports[{i}].name"),
                name,
                "must be a DNS label",
            ));
        }
        if let Some(proto) = p["protocol"].as_str()
            && !PROTOCOLS.contains(&proto)
        {
            errs.push(FieldError::not_supported(
                format!("ports[{i}].protocol"),
                proto,
                PROTOCOLS,
            ));
        }
        if let Some(port) = p["port"].as_i64()
            && !(1..=65535).contains(&port)
        {
            errs.push(FieldError::invalid(
                format!("ports[{i}].port"),
                port,
                "must be between 1 and 65535, inclusive",
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn configmap_keys_and_size() {
        assert!(
            validate_configmap(&json!({"data": {"config.yaml": "x"}, "binaryData": {"b": "AA=="}}))
                .is_empty()
        );
        assert_eq!(
            validate_configmap(&json!({"data": {"bad key": "x"}}))[0].field,
            "data[bad key]"
        );
        assert_eq!(
            validate_configmap(&json!({"data": {"k": "x"}, "binaryData": {"k": "AA=="}})).len(),
            1
        );
        let big = "x".repeat(MAX_CONFIGMAP_BYTES + 1);
        assert_eq!(validate_configmap(&json!({"data": {"k": big}})).len(), 1);
    }

    #[test]
    fn endpointslice_addresses_follow_the_type() {
        let ok = json!({"addressType": "IPv4", "endpoints": [{"addresses": ["192.0.2.1"], "nodeName": "node-a"}], "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]});
        assert!(validate_endpointslice(None, &ok).is_empty());
        let wrong = json!({"addressType": "IPv6", "endpoints": [{"addresses": ["192.0.2.1"]}]});
        assert_eq!(
            validate_endpointslice(None, &wrong)[0].field,
            "endpoints[0].addresses[0]"
        );
        let empty = json!({"addressType": "IPv4", "endpoints": [{"addresses": []}]});
        assert_eq!(validate_endpointslice(None, &empty).len(), 1);
        let changed = json!({"addressType": "IPv6", "endpoints": []});
        assert_eq!(
            validate_endpointslice(Some(&ok), &changed)[0].detail,
            "field is immutable"
        );
        assert_eq!(
            validate_endpointslice(None, &json!({"addressType": "Other"})).len(),
            1
        );
    }
}
