//! `events.k8s.io/v1` Events are a view of the stored `v1` Events (as on a real cluster):
//! one object, two shapes. These functions convert between them.

use serde_json::{Map, Value};

/// (events.k8s.io/v1 field, v1 field) pairs that are the same data under another name.
const RENAMES: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

/// Fields with the same name in both shapes.
const SAME: &[&str] = &[
    "metadata",
    "eventTime",
    "series",
    "action",
    "reason",
    "related",
    "reportingInstance",
    "type",
];

fn convert(src: &Value, api_version: &str, from_new: bool) -> Value {
    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    out.insert("kind".into(), Value::String("Event".into()));
    if let Some(obj) = src.as_object() {
        for key in SAME {
            if let Some(v) = obj.get(*key) {
                out.insert((*key).into(), v.clone());
            }
        }
        for (new, old) in RENAMES {
            let (from, to) = if from_new { (new, old) } else { (old, new) };
            if let Some(v) = obj.get(*from) {
                out.insert((*to).into(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// events.k8s.io/v1 shape → stored v1 shape.
pub fn from_events_v1(view: &Value) -> Value {
    let mut core = convert(view, "v1", true);
    // v1 requires involvedObject; an Event about nothing refers to an empty reference.
    if core.get("involvedObject").is_none() {
        core["involvedObject"] = Value::Object(Map::new());
    }
    core
}

/// Stored v1 shape → events.k8s.io/v1 shape.
pub fn to_events_v1(core: &Value) -> Value {
    convert(core, "events.k8s.io/v1", false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip_and_renames() {
        let new = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "svc.1", "namespace": "default"},
            "regarding": {"kind": "Service", "name": "svc", "namespace": "default", "uid": "u"},
            "note": "assigned 192.0.2.10", "reason": "IPAllocated", "type": "Normal", "action": "Allocate",
            "reportingController": "ferrolb.io/controller", "reportingInstance": "c-1",
            "eventTime": "2024-01-01T00:00:00.000000Z",
            "series": {"count": 3, "lastObservedTime": "2024-01-01T00:01:00.000000Z"},
            "deprecatedCount": 3
        });
        let core = from_events_v1(&new);
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "svc");
        assert_eq!(core["message"], "assigned 192.0.2.10");
        assert_eq!(core["reportingComponent"], "ferrolb.io/controller");
        assert_eq!(core["count"], 3);
        assert_eq!(core["series"]["count"], 3);
        assert_eq!(to_events_v1(&core), new);
    }
}
