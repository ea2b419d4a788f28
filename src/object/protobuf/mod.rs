//! `application/vnd.kubernetes.protobuf` for the built-in types: a generic transcoder between
//! kube-apiserver's protobuf encoding and the Kubernetes JSON kapi holds.
//!
//! It is driven by schema tables, not per-kind code. `src/object/protobuf/schema_gen.rs (run by build.rs)` derives the tables
//! at build time from two crates.io packages read as source text: `k8s-pb` (prost code generated
//! from the upstream `generated.proto`: message names, field numbers, wire types, declaration
//! order) and `k8s-openapi` (JSON field names, and which embedded structs JSON inlines). Neither is
//! compiled into kapi, and `protoc` is not needed.
//!
//! JSON conventions (API-SEMANTICS §1 and §3): int32/int64 are JSON numbers; `[]byte` is base64;
//! maps are objects; `metav1.Time` is RFC 3339 in seconds (`null` for the zero time, an empty
//! message), `metav1.MicroTime` has 6 fractional digits; `metav1.Duration` is a Go duration
//! string; `resource.Quantity` is its string; `intstr.IntOrString` is a number or a string;
//! `runtime.RawExtension`, `metav1.FieldsV1` and apiextensions `JSON` hold embedded JSON (a nested
//! `k8s\0` envelope in a RawExtension is decoded too); the JSONSchemaProps unions and the
//! `Verbs`/`ExtraValue` string lists take their JSON shapes. TypeMeta is not in the message: it
//! travels in the envelope.
//!
//! Decoding is lossless: every field on the wire appears in the JSON. Go's encoder writes every
//! non-pointer field, so a protobuf body from client-go carries explicit zero values
//! (`"nodeName": ""`, `"generation": 0`) that kube-apiserver's JSON would omit; they mean the same
//! to Go clients. Fields the schema doesn't know (a newer Kubernetes) are dropped, as in Go.

mod schema;
mod transcode;
mod values;
mod wire;

#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

/// The four bytes every protobuf-encoded object starts with.
pub const MAGIC: &[u8] = b"k8s\0";

/// Whether (apiVersion, kind) has a protobuf schema (a built-in kind, its list, or a
/// meta.k8s.io/v1 kind such as `Status`, `WatchEvent` or `DeleteOptions`).
pub fn is_supported(api_version: &str, kind: &str) -> bool {
    schema::lookup_kind(api_version, kind).is_some()
}

/// Decodes a protobuf body (`k8s\0` + `runtime.Unknown`) into (apiVersion, kind, object). The
/// object is Kubernetes JSON with `kind` and `apiVersion` first.
pub fn decode_object(body: &[u8]) -> Result<(String, String, Map<String, Value>), String> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or("protobuf: the body does not start with the k8s\\0 magic")?;
    let unknown = decode_unknown(rest)?;
    if !unknown.content_encoding.is_empty() {
        return Err(format!(
            "protobuf: unsupported contentEncoding {:?}",
            unknown.content_encoding
        ));
    }
    let (api_version, kind) = (unknown.api_version, unknown.kind);
    if kind.is_empty() {
        return Err("Object 'Kind' is missing in protobuf envelope".into());
    }
    let media = unknown.content_type.split(';').next().unwrap_or("").trim();
    let value = match media {
        "" | "application/vnd.kubernetes.protobuf" => {
            let msg = schema::lookup_kind(&api_version, &kind).ok_or_else(|| {
                format!("no kind \"{kind}\" is registered for version \"{api_version}\"")
            })?;
            transcode::decode(msg, unknown.raw)?
        }
        "application/json" => serde_json::from_slice(unknown.raw)
            .map_err(|e| format!("protobuf: embedded JSON: {e}"))?,
        other => return Err(format!("protobuf: unsupported contentType {other:?}")),
    };
    let Value::Object(fields) = value else {
        return Err(format!("protobuf: {kind} did not decode to an object"));
    };
    let mut obj = Map::new();
    obj.insert("kind".into(), Value::String(kind.clone()));
    obj.insert("apiVersion".into(), Value::String(api_version.clone()));
    for (k, v) in fields {
        if k != "kind" && k != "apiVersion" {
            obj.insert(k, v);
        }
    }
    Ok((api_version, kind, obj))
}

/// Encodes a Kubernetes JSON object (with `apiVersion` and `kind`) as `k8s\0` + `runtime.Unknown`.
/// JSON keys the schema doesn't know are ignored, as Go's JSON decoding would drop them.
pub fn encode_object(json: &Map<String, Value>) -> Result<Vec<u8>, String> {
    let get = |k: &str| json.get(k).and_then(Value::as_str).unwrap_or("");
    let (api_version, kind) = (get("apiVersion"), get("kind"));
    if kind.is_empty() {
        return Err("Object 'Kind' is missing".into());
    }
    let msg = schema::lookup_kind(api_version, kind).ok_or_else(|| {
        format!("no protobuf schema for kind \"{kind}\" in version \"{api_version}\"")
    })?;
    let mut raw = Vec::with_capacity(512);
    transcode::encode_object(msg, json, &mut raw)?;
    Ok(envelope(api_version, kind, &raw))
}

/// One frame of a protobuf watch stream: a 4-byte big-endian length, then a `metav1.WatchEvent`
/// (no magic) whose `object.raw` is the object's full envelope (as from [`encode_object`]).
pub fn encode_watch_frame(event_type: &str, object_envelope: &[u8]) -> Vec<u8> {
    let mut raw_ext = Vec::with_capacity(object_envelope.len() + 8);
    wire::put_len(&mut raw_ext, 1, object_envelope);
    let mut event = Vec::with_capacity(raw_ext.len() + event_type.len() + 8);
    wire::put_len(&mut event, 1, event_type.as_bytes());
    wire::put_len(&mut event, 2, &raw_ext);
    let mut frame = Vec::with_capacity(event.len() + 4);
    frame.extend_from_slice(&(event.len() as u32).to_be_bytes());
    frame.extend_from_slice(&event);
    frame
}

/// `k8s\0` + `runtime.Unknown{typeMeta{apiVersion, kind}, raw, contentEncoding: "", contentType: ""}`,
/// written field by field as Go does.
fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let mut type_meta = Vec::with_capacity(api_version.len() + kind.len() + 4);
    wire::put_len(&mut type_meta, 1, api_version.as_bytes());
    wire::put_len(&mut type_meta, 2, kind.as_bytes());
    let mut out = Vec::with_capacity(raw.len() + type_meta.len() + 16);
    out.extend_from_slice(MAGIC);
    wire::put_len(&mut out, 1, &type_meta);
    wire::put_len(&mut out, 2, raw);
    wire::put_len(&mut out, 3, b"");
    wire::put_len(&mut out, 4, b"");
    out
}

struct Unknown<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
    content_type: String,
}

fn decode_unknown(data: &[u8]) -> Result<Unknown<'_>, String> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut u = Unknown {
        api_version: String::new(),
        kind: String::new(),
        raw: &[],
        content_encoding: String::new(),
        content_type: String::new(),
    };
    let mut r = wire::Reader::new(data);
    while !r.is_empty() {
        match r.key()? {
            (1, wire::LEN) => {
                let mut tm = wire::Reader::new(r.bytes()?);
                while !tm.is_empty() {
                    match tm.key()? {
                        (1, wire::LEN) => u.api_version = text(tm.bytes()?),
                        (2, wire::LEN) => u.kind = text(tm.bytes()?),
                        (_, wt) => tm.skip(wt)?,
                    }
                }
            }
            (2, wire::LEN) => u.raw = r.bytes()?,
            (3, wire::LEN) => u.content_encoding = text(r.bytes()?),
            (4, wire::LEN) => u.content_type = text(r.bytes()?),
            (_, wt) => r.skip(wt)?,
        }
    }
    Ok(u)
}
