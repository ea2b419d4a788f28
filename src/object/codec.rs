//! Request-body decoding and the JSON encoding kapi stores and serves.
//!
//! Stored and served JSON always begins with `{"kind":...,"apiVersion":...,` so a list item (which
//! omits kind and apiVersion, like kube-apiserver's typed lists) is a slice of the same bytes.

use crate::api::catalogue::ResourceInfo;
use crate::api::status::ApiError;
use bytes::Bytes;
use serde_json::{Map, Value};

/// kube-apiserver's request body limit (3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

pub const JSON: &str = "application/json";
pub const YAML: &str = "application/yaml";
pub const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// Media types accepted for request bodies of ordinary writes.
pub const ACCEPTED_BODY_TYPES: &[&str] = &[JSON, YAML, PROTOBUF];

/// The media type of a Content-Type header, lowercased and without parameters.
pub fn media_type(content_type: Option<&str>) -> String {
    content_type
        .unwrap_or(JSON)
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Decodes a create/update body (JSON or YAML) into a JSON object.
pub fn decode_body(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Map<String, Value>, ApiError> {
    let mt = media_type(content_type);
    let value = match mt.as_str() {
        "" | JSON | "*/*" => decode_json(body)?,
        YAML | "application/x-yaml" | "text/yaml" => decode_yaml(body)?,
        PROTOBUF => return decode_protobuf(body),
        _ => return Err(ApiError::unsupported_media_type(ACCEPTED_BODY_TYPES)),
    };
    match value {
        Value::Object(m) => Ok(m),
        other => Err(ApiError::bad_request(format!(
            "Object 'Kind' is missing in '{}'",
            truncate(&other.to_string(), 200)
        ))),
    }
}

/// A protobuf body (`k8s\0` + runtime.Unknown). Go clients write every non-pointer field, so
/// zero-valued ObjectMeta fields, which JSON clients omit, are dropped to give the same object.
fn decode_protobuf(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let (_, _, mut obj) = super::protobuf::decode_object(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body of the request could not be decoded as protobuf: {e}"
        ))
    })?;
    if let Some(Value::Object(m)) = obj.get_mut("metadata") {
        m.retain(|_, v| match v {
            Value::Null => false,
            Value::String(s) => !s.is_empty(),
            Value::Number(n) => n.as_i64() != Some(0),
            Value::Object(o) => !o.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Bool(_) => true,
        });
    }
    Ok(obj)
}

pub fn decode_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "couldn't get version/kind; json parse error: {}",
            e.to_string().replace('\n', " ")
        ))
    })
}

pub fn decode_yaml(body: &[u8]) -> Result<Value, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::bad_request(format!("yaml: invalid UTF-8: {e}")))?;
    serde_norway::from_str::<Value>(text).map_err(|e| {
        ApiError::bad_request(format!(
            "error converting YAML to JSON: yaml: {}",
            e.to_string().replace('\n', " ")
        ))
    })
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Serialized object: the full JSON and where the item form (without kind/apiVersion) starts.
#[derive(Clone, Debug)]
pub struct Encoded {
    pub json: Bytes,
    /// `json[item_offset..]` preceded by `{` is the object without kind and apiVersion.
    pub item_offset: usize,
}

impl Encoded {
    /// The list-item form: `{` + everything after kind and apiVersion.
    pub fn item_parts(&self) -> (&'static [u8], Bytes) {
        if self.item_offset == 0 {
            (b"", self.json.clone())
        } else {
            (b"{", self.json.slice(self.item_offset..))
        }
    }
}

/// Encodes `obj` with `kind` and `apiVersion` first and `metadata.resourceVersion` set to `rv`
/// (removed when `rv` is None, which is the stored form).
pub fn encode(kind: &str, api_version: &str, obj: &Map<String, Value>, rv: Option<i64>) -> Encoded {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"kind\":");
    serde_json::to_writer(&mut out, kind).expect("string serializes");
    out.extend_from_slice(b",\"apiVersion\":");
    serde_json::to_writer(&mut out, api_version).expect("string serializes");
    let item_offset = out.len() + 1; // after the comma that follows
    let mut first = true;
    for (k, v) in obj {
        if k == "kind" || k == "apiVersion" {
            continue;
        }
        out.push(b',');
        serde_json::to_writer(&mut out, k).expect("string serializes");
        out.push(b':');
        if k == "metadata" {
            write_metadata(&mut out, v, rv);
        } else {
            serde_json::to_writer(&mut out, v).expect("value serializes");
        }
        first = false;
    }
    out.push(b'}');
    // The cache keeps these bytes for the object's life: drop the growth slack.
    out.shrink_to_fit();
    if first {
        // No fields beyond kind/apiVersion: the item form is simply `{}`.
        return Encoded {
            item_offset: out.len() - 1,
            json: Bytes::from(out),
        };
    }
    Encoded {
        json: Bytes::from(out),
        item_offset,
    }
}

/// The object as served, at `rv` (None for dry runs, which have no resourceVersion yet).
pub fn served(res: &ResourceInfo, obj: &Map<String, Value>, rv: Option<i64>) -> Bytes {
    encode(res.kind, &res.api_version(), obj, rv).json
}

/// The bytes stored for `obj`: no resourceVersion, and in the storage type when the resource is
/// a view of another one (events.k8s.io/v1 events are stored as core/v1 events).
pub fn stored(res: &ResourceInfo, obj: &Map<String, Value>) -> Bytes {
    match res.conversion {
        Some(c) => {
            let mut m = obj.clone();
            (c.to_storage)(&mut m);
            encode(c.storage_kind, c.storage_api_version, &m, None).json
        }
        None => encode(res.kind, &res.api_version(), obj, None).json,
    }
}

fn write_metadata(out: &mut Vec<u8>, meta: &Value, rv: Option<i64>) {
    let Value::Object(m) = meta else {
        serde_json::to_writer(out, meta).expect("value serializes");
        return;
    };
    out.push(b'{');
    let mut first = true;
    let mut rv_written = false;
    for (k, v) in m {
        if k == "resourceVersion" || k == "selfLink" {
            continue;
        }
        // resourceVersion goes where kube-apiserver puts it: after uid.
        if !first {
            out.push(b',');
        }
        first = false;
        serde_json::to_writer(&mut *out, k).expect("string serializes");
        out.push(b':');
        serde_json::to_writer(&mut *out, v).expect("value serializes");
        if k == "uid" {
            if let Some(rv) = rv {
                out.extend_from_slice(format!(",\"resourceVersion\":\"{rv}\"").as_bytes());
                rv_written = true;
            }
        }
    }
    if let (Some(rv), false) = (rv, rv_written) {
        if !first {
            out.push(b',');
        }
        out.extend_from_slice(format!("\"resourceVersion\":\"{rv}\"").as_bytes());
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_puts_kind_first_and_sets_rv() {
        let obj: Map<String, Value> = serde_json::from_str(
            r#"{"apiVersion":"v1","metadata":{"name":"a","uid":"u","resourceVersion":"5","labels":{"x":"y"}},"kind":"Pod","spec":{}}"#,
        )
        .unwrap();
        let e = encode("Pod", "v1", &obj, Some(42));
        assert_eq!(
            std::str::from_utf8(&e.json).unwrap(),
            r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"a","uid":"u","resourceVersion":"42","labels":{"x":"y"}},"spec":{}}"#
        );
        let (open, rest) = e.item_parts();
        let item = [open, &rest[..]].concat();
        assert_eq!(
            std::str::from_utf8(&item).unwrap(),
            r#"{"metadata":{"name":"a","uid":"u","resourceVersion":"42","labels":{"x":"y"}},"spec":{}}"#
        );
        let stored = encode("Pod", "v1", &obj, None);
        assert!(!std::str::from_utf8(&stored.json)
            .unwrap()
            .contains("resourceVersion"));
    }

    #[test]
    fn decode_rejects_garbage_and_unknown_types() {
        assert_eq!(
            decode_body(Some("application/json"), b"{not json")
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(
            decode_body(Some("application/yaml"), b"a: [")
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(decode_body(Some(PROTOBUF), b"k8s\0").unwrap_err().code, 400);
        assert_eq!(
            decode_body(Some("application/cbor"), b"").unwrap_err().code,
            415
        );
        let m = decode_body(
            Some("application/yaml"),
            b"kind: Pod\nmetadata:\n  name: a\n",
        )
        .unwrap();
        assert_eq!(m["metadata"]["name"], "a");
    }
}
