//! List pagination (`limit` / `continue`). A continue token carries the resourceVersion of the
//! first page and the key of the last item served; later pages report that first
//! resourceVersion, so a client that watches from the last page's version replays every change
//! made while it was paging (the store keeps no snapshots to serve pages from).

use base64::Engine as _;
use serde_json::{Value, json};

use crate::status::ApiError;

/// One page of a list.
pub struct Page {
    pub items: Vec<Value>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

fn key(o: &Value) -> (String, String) {
    let m = &o["metadata"];
    (
        m["namespace"].as_str().unwrap_or("").to_string(),
        m["name"].as_str().unwrap_or("").to_string(),
    )
}

fn encode(rv: u64, after: &(String, String)) -> String {
    let raw = json!({"rv": rv, "ns": after.0, "name": after.1}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// The `(namespace, name)` a continue token resumes after, if the query has a valid one.
pub fn resume_after(cont: Option<&str>) -> Option<(String, String)> {
    decode(cont.filter(|s| !s.is_empty())?)
        .ok()
        .map(|(_, after)| after)
}

fn decode(token: &str) -> Result<(u64, (String, String)), ApiError> {
    let bad = || ApiError::bad_request(format!("invalid continue token {token:?}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v["rv"].as_u64().ok_or_else(bad)?;
    let ns = v["ns"].as_str().ok_or_else(bad)?.to_string();
    let name = v["name"].as_str().ok_or_else(bad)?.to_string();
    Ok((rv, (ns, name)))
}

/// Cuts `items` (in key order) to the page that `limit` and `continue` ask for.
pub fn paginate(
    items: Vec<Value>,
    rv: u64,
    limit: Option<&str>,
    cont: Option<&str>,
) -> Result<Page, ApiError> {
    let limit: usize = match limit.filter(|s| !s.is_empty()) {
        Some(s) => s
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {s:?}")))?,
        None => 0,
    };
    let (rv, mut items) = match cont.filter(|s| !s.is_empty()) {
        Some(token) => {
            let (first_rv, after) = decode(token)?;
            (
                first_rv,
                items
                    .into_iter()
                    .filter(|o| key(o) > after)
                    .collect::<Vec<_>>(),
            )
        }
        None => (rv, items),
    };
    if limit == 0 || items.len() <= limit {
        return Ok(Page {
            items,
            resource_version: rv,
            continue_token: None,
            remaining: None,
        });
    }
    let rest = items.split_off(limit);
    let token = encode(rv, &key(items.last().expect("limit > 0 items")));
    Ok(Page {
        items,
        resource_version: rv,
        continue_token: Some(token),
        remaining: Some(rest.len()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objs(n: usize) -> Vec<Value> {
        (0..n)
            .map(|i| json!({"metadata": {"namespace": "default", "name": format!("o{i:02}")}}))
            .collect()
    }

    #[test]
    fn pages_cover_everything_once() {
        let p1 = paginate(objs(5), 10, Some("2"), None).unwrap();
        assert_eq!(p1.items.len(), 2);
        assert_eq!(p1.remaining, Some(3));
        let p2 = paginate(objs(5), 99, Some("2"), p1.continue_token.as_deref()).unwrap();
        assert_eq!(p2.resource_version, 10);
        assert_eq!(p2.items[0]["metadata"]["name"], "o02");
        let p3 = paginate(objs(5), 99, Some("2"), p2.continue_token.as_deref()).unwrap();
        assert_eq!(p3.items.len(), 1);
        assert!(p3.continue_token.is_none());
        assert!(paginate(objs(1), 1, Some("x"), None).is_err());
        assert!(paginate(objs(1), 1, None, Some("!!")).is_err());
        assert_eq!(paginate(objs(3), 1, None, None).unwrap().items.len(), 3);
    }
}
