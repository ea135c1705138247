//! Just enough of the Kubernetes protobuf encoding to accept the bodies kubectl's generators
//! send (`kubectl create namespace`, `create configmap`, `create service`): the `k8s\0` envelope
//! (`runtime.Unknown`) around Namespace, ConfigMap and Service. Decoded to the JSON shape; fields
//! this server does not know are skipped. Other kinds are refused with 415.

use base64::Engine as _;
use serde_json::{Map, Value, json};

/// A protobuf wire reader over a byte slice; every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Skipped,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or("truncated field")?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// The next (field number, value), or None at the end.
    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, String> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let (num, wire) = (tag >> 3, tag & 7);
        let f = match wire {
            0 => Field::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Field::Skipped
            }
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| "length overflow")?;
                Field::Bytes(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Field::Skipped
            }
            w => return Err(format!("unsupported wire type {w}")),
        };
        Ok(Some((num, f)))
    }
}

/// Go encodes unset (empty) strings and zero numbers of non-pointer fields; JSON omits them.
fn set_str(m: &mut Map<String, Value>, k: &str, b: &[u8]) -> Result<(), String> {
    let v = string(b)?;
    if !v.is_empty() {
        m.insert(k.into(), json!(v));
    }
    Ok(())
}

fn set_int(m: &mut Map<String, Value>, k: &str, v: u64) {
    let v = v as u32 as i32;
    if v != 0 {
        m.insert(k.into(), json!(v));
    }
}

fn string(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "string field is not UTF-8".to_string())
}

/// A `map<string, string>` entry (or string→bytes with `bytes_value`).
fn map_entry(b: &[u8], bytes_value: bool) -> Result<(String, Value), String> {
    let mut r = Reader::new(b);
    let (mut k, mut v) = (String::new(), Value::String(String::new()));
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Bytes(x)) => k = string(x)?,
            (2, Field::Bytes(x)) if bytes_value => {
                v = json!(base64::engine::general_purpose::STANDARD.encode(x))
            }
            (2, Field::Bytes(x)) => v = json!(string(x)?),
            _ => {}
        }
    }
    Ok((k, v))
}

fn insert_map(obj: &mut Map<String, Value>, key: &str, entry: (String, Value)) {
    let m = obj.entry(key).or_insert_with(|| json!({}));
    if let Some(m) = m.as_object_mut() {
        m.insert(entry.0, entry.1);
    }
}

fn push(obj: &mut Map<String, Value>, key: &str, v: Value) {
    let l = obj.entry(key).or_insert_with(|| json!([]));
    if let Some(l) = l.as_array_mut() {
        l.push(v);
    }
}

fn object_meta(b: &[u8]) -> Result<Value, String> {
    let mut r = Reader::new(b);
    let mut m = Map::new();
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Bytes(x)) => set_str(&mut m, "name", x)?,
            (2, Field::Bytes(x)) => set_str(&mut m, "generateName", x)?,
            (3, Field::Bytes(x)) => set_str(&mut m, "namespace", x)?,
            (6, Field::Bytes(x)) => set_str(&mut m, "resourceVersion", x)?,
            (11, Field::Bytes(x)) => insert_map(&mut m, "labels", map_entry(x, false)?),
            (12, Field::Bytes(x)) => insert_map(&mut m, "annotations", map_entry(x, false)?),
            (14, Field::Bytes(x)) => push(&mut m, "finalizers", json!(string(x)?)),
            _ => {}
        }
    }
    Ok(Value::Object(m))
}

fn int_or_string(b: &[u8]) -> Result<Value, String> {
    let mut r = Reader::new(b);
    let (mut ty, mut i, mut s) = (0u64, 0i64, String::new());
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Varint(v)) => ty = v,
            (2, Field::Varint(v)) => i = i64::from(v as u32 as i32),
            (3, Field::Bytes(x)) => s = string(x)?,
            _ => {}
        }
    }
    Ok(if ty == 1 { json!(s) } else { json!(i) })
}

fn service_port(b: &[u8]) -> Result<Value, String> {
    let mut r = Reader::new(b);
    let mut m = Map::new();
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Bytes(x)) => set_str(&mut m, "name", x)?,
            (2, Field::Bytes(x)) => set_str(&mut m, "protocol", x)?,
            (3, Field::Varint(v)) => set_int(&mut m, "port", v),
            (4, Field::Bytes(x)) => drop(m.insert("targetPort".into(), int_or_string(x)?)),
            (5, Field::Varint(v)) => set_int(&mut m, "nodePort", v),
            (6, Field::Bytes(x)) => set_str(&mut m, "appProtocol", x)?,
            _ => {}
        }
    }
    Ok(Value::Object(m))
}

fn service_spec(b: &[u8]) -> Result<Value, String> {
    let mut r = Reader::new(b);
    let mut m = Map::new();
    let str_field = |k: &str| -> Option<&'static str> {
        Some(match k {
            "3" => "clusterIP",
            "4" => "type",
            "7" => "sessionAffinity",
            "8" => "loadBalancerIP",
            "10" => "externalName",
            "11" => "externalTrafficPolicy",
            "17" => "ipFamilyPolicy",
            "21" => "loadBalancerClass",
            "22" => "internalTrafficPolicy",
            _ => return None,
        })
    };
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Bytes(x)) => push(&mut m, "ports", service_port(x)?),
            (2, Field::Bytes(x)) => insert_map(&mut m, "selector", map_entry(x, false)?),
            (5, Field::Bytes(x)) => push(&mut m, "externalIPs", json!(string(x)?)),
            (9, Field::Bytes(x)) => push(&mut m, "loadBalancerSourceRanges", json!(string(x)?)),
            (12, Field::Varint(v)) => set_int(&mut m, "healthCheckNodePort", v),
            (13, Field::Varint(v)) => {
                drop(m.insert("publishNotReadyAddresses".into(), json!(v != 0)))
            }
            (18, Field::Bytes(x)) => push(&mut m, "clusterIPs", json!(string(x)?)),
            (19, Field::Bytes(x)) => push(&mut m, "ipFamilies", json!(string(x)?)),
            (20, Field::Varint(v)) => {
                drop(m.insert("allocateLoadBalancerNodePorts".into(), json!(v != 0)))
            }
            (n, Field::Bytes(x)) => {
                if let Some(k) = str_field(&n.to_string()) {
                    set_str(&mut m, k, x)?;
                }
            }
            _ => {}
        }
    }
    Ok(Value::Object(m))
}

/// Decodes a `k8s\0`-enveloped protobuf body into the JSON object it encodes.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let inner = body
        .strip_prefix(b"k8s\0")
        .ok_or("missing the k8s protobuf envelope")?;
    let mut r = Reader::new(inner);
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), None);
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Bytes(tm)) => {
                let mut t = Reader::new(tm);
                while let Some((n, f)) = t.next()? {
                    match (n, f) {
                        (1, Field::Bytes(x)) => api_version = string(x)?,
                        (2, Field::Bytes(x)) => kind = string(x)?,
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(x)) => raw = Some(x),
            _ => {}
        }
    }
    if api_version != "v1" || !matches!(kind.as_str(), "Namespace" | "ConfigMap" | "Service") {
        return Err(format!(
            "protobuf bodies for {api_version} {kind} are not supported by this test server"
        ));
    }
    let raw = raw.ok_or("protobuf envelope without an object")?;
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    let mut r = Reader::new(raw);
    while let Some((n, f)) = r.next()? {
        match (api_version.as_str(), kind.as_str(), n, f) {
            ("v1", _, 1, Field::Bytes(x)) => drop(obj.insert("metadata".into(), object_meta(x)?)),
            ("v1", "Namespace", 2, Field::Bytes(x)) => {
                let mut spec = Map::new();
                let mut s = Reader::new(x);
                while let Some((n, f)) = s.next()? {
                    if let (1, Field::Bytes(v)) = (n, f) {
                        push(&mut spec, "finalizers", json!(string(v)?));
                    }
                }
                obj.insert("spec".into(), Value::Object(spec));
            }
            ("v1", "ConfigMap", 2, Field::Bytes(x)) => {
                insert_map(&mut obj, "data", map_entry(x, false)?)
            }
            ("v1", "ConfigMap", 3, Field::Bytes(x)) => {
                insert_map(&mut obj, "binaryData", map_entry(x, true)?)
            }
            ("v1", "ConfigMap", 4, Field::Varint(v)) => {
                drop(obj.insert("immutable".into(), json!(v != 0)))
            }
            ("v1", "Service", 2, Field::Bytes(x)) => {
                drop(obj.insert("spec".into(), service_spec(x)?))
            }
            ("v1", "Namespace" | "ConfigMap" | "Service", _, _) => {}
            _ => {
                return Err(format!(
                    "protobuf bodies for {api_version} {kind} are not supported by this test server"
                ));
            }
        }
    }
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(n: u64, wire: u64) -> u8 {
        ((n << 3) | wire) as u8
    }
    fn bytes_field(n: u64, b: &[u8]) -> Vec<u8> {
        let mut v = vec![tag(n, 2), b.len() as u8];
        v.extend_from_slice(b);
        v
    }
    fn map_field(n: u64, k: &str, val: &str) -> Vec<u8> {
        let mut e = bytes_field(1, k.as_bytes());
        e.extend(bytes_field(2, val.as_bytes()));
        bytes_field(n, &e)
    }
    fn envelope(kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut tm = bytes_field(1, b"v1");
        tm.extend(bytes_field(2, kind.as_bytes()));
        let mut u = bytes_field(1, &tm);
        u.extend(bytes_field(2, raw));
        let mut out = b"k8s\0".to_vec();
        out.extend(u);
        out
    }

    #[test]
    fn configmap_from_protobuf() {
        let mut meta = bytes_field(1, b"pools");
        meta.extend(map_field(11, "app", "ferrolb"));
        let mut raw = bytes_field(1, &meta);
        raw.extend(map_field(2, "config.yaml", "pools: []"));
        let v = decode(&envelope("ConfigMap", &raw)).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "pools", "labels": {"app": "ferrolb"}}, "data": {"config.yaml": "pools: []"}})
        );
    }

    #[test]
    fn service_from_protobuf() {
        let mut port = bytes_field(1, b"http");
        port.extend(bytes_field(2, b"TCP"));
        port.extend([tag(3, 0), 80]);
        port.extend(bytes_field(4, &[tag(1, 0), 0, tag(2, 0), 0x90, 0x3f]));
        let mut spec = bytes_field(1, &port);
        spec.extend(bytes_field(4, b"LoadBalancer"));
        let mut raw = bytes_field(1, &bytes_field(1, b"web"));
        raw.extend(bytes_field(2, &spec));
        let v = decode(&envelope("Service", &raw)).unwrap();
        assert_eq!(
            v["spec"],
            json!({"ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}], "type": "LoadBalancer"})
        );
    }

    #[test]
    fn malformed_and_unsupported_are_errors() {
        assert!(decode(b"nope").is_err());
        assert!(decode(b"k8s\0\x0a\x50").is_err());
        assert!(decode(&envelope("Pod", &bytes_field(1, b""))).is_err());
        assert!(decode(b"k8s\0\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff").is_err());
    }
}
