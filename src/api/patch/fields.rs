//! Strict field checks (`fieldValidation`, API-SEMANTICS §4): unknown fields, which the typed
//! decoders of kube-apiserver drop, and duplicate fields, which they resolve last-wins.
//!
//! The texts are those of `sigs.k8s.io/json`'s strict decoder: `unknown field "spec.foo"`,
//! `duplicate field "spec.paused"`, with list items as `spec.containers[0].foo` and map entries
//! as `metadata.labels.app`. A field that is both unknown and repeated is reported once, as
//! unknown; nothing inside an unknown field is reported; messages are deduplicated and capped at
//! 100. Fields under `x-kubernetes-preserve-unknown-fields`, maps (`additionalProperties`) and
//! free-form objects (`RawExtension`, `FieldsV1`, custom resource bodies) accept any key.

use super::SchemaRef;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;

/// The strict decoder stops recording after this many errors.
const MAX_ERRORS: usize = 100;

static NO_DEFINITIONS: BTreeMap<String, Value> = BTreeMap::new();

/// `strict decoding error: <e1>, <e2>` (`runtime.NewStrictDecodingError`).
pub fn strict_decoding_error(errors: &[String]) -> String {
    format!("strict decoding error: {}", errors.join(", "))
}

/// The unknown fields of a decoded object, in document order: `unknown field "spec.foo"`.
pub fn unknown_fields(obj: &Value, schema: &SchemaRef) -> Vec<String> {
    let mut out = Errors::default();
    walk_unknown(obj, schema, &Seg::Root, false, &mut out);
    out.list
}

/// [`unknown_fields`] with every map visited in key order: what kube-apiserver reports for a
/// body that went through a Go map first (YAML bodies, JSON and merge patch results).
pub fn unknown_fields_sorted(obj: &Value, schema: &SchemaRef) -> Vec<String> {
    let mut out = Errors::default();
    walk_unknown(obj, schema, &Seg::Root, true, &mut out);
    out.list
}

fn walk_unknown(v: &Value, schema: &SchemaRef, path: &Seg, sorted: bool, out: &mut Errors) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            if sorted {
                keys.sort();
            }
            for k in keys {
                let seg = Seg::Key(path, k);
                match schema.field(k) {
                    Some(s) => walk_unknown(&m[k.as_str()], &s, &seg, sorted, out),
                    None => out.push(format!("unknown field {}", go_quote(&seg.render()))),
                }
            }
        }
        Value::Array(items) => {
            let item = schema.items();
            for (i, x) in items.iter().enumerate() {
                walk_unknown(x, &item, &Seg::Index(path, i), sorted, out);
            }
        }
        _ => {}
    }
}

/// Removes the fields [`unknown_fields`] reports, as decoding into the Go type does.
pub fn prune_unknown_fields(obj: &mut Value, schema: &SchemaRef) {
    match obj {
        Value::Object(m) => prune_map(m, schema),
        Value::Array(items) => {
            let item = schema.items();
            for x in items {
                prune_unknown_fields(x, &item);
            }
        }
        _ => {}
    }
}

fn prune_map(m: &mut Map<String, Value>, schema: &SchemaRef) {
    if !schema.is_known() {
        return;
    }
    m.retain(|k, _| schema.field(k).is_some());
    for (k, v) in m.iter_mut() {
        if let Some(s) = schema.field(k) {
            if s.is_known() {
                prune_unknown_fields(v, &s);
            }
        }
    }
}

/// The duplicate fields of a raw JSON document, whatever its schema: `duplicate field "x"`,
/// with paths as in [`unknown_fields`] (what decoding a patch into a Go map reports).
pub fn duplicate_fields(body: &[u8]) -> Vec<String> {
    scan(body, SchemaRef::unknown(&NO_DEFINITIONS))
}

/// The strict decoding errors of a raw JSON body decoded into the type of `schema`: unknown
/// and duplicate fields, in document order.
pub fn strict_errors(body: &[u8], schema: &SchemaRef) -> Vec<String> {
    scan(body, *schema)
}

fn scan(body: &[u8], schema: SchemaRef) -> Vec<String> {
    let mut out = Errors::default();
    let mut de = serde_json::Deserializer::from_slice(body);
    // A malformed body is reported by the decoder proper.
    let _ = Scan {
        schema,
        path: &Seg::Root,
        out: &mut out,
    }
    .deserialize(&mut de);
    out.list
}

#[derive(Default)]
struct Errors {
    list: Vec<String>,
}

impl Errors {
    fn push(&mut self, e: String) {
        if self.list.len() < MAX_ERRORS && !self.list.contains(&e) {
            self.list.push(e);
        }
    }
}

/// A field path, rendered only when an error needs it.
enum Seg<'p> {
    Root,
    Key(&'p Seg<'p>, &'p str),
    Index(&'p Seg<'p>, usize),
}

impl Seg<'_> {
    fn render(&self) -> String {
        let mut s = String::new();
        self.write(&mut s);
        s
    }

    fn write(&self, out: &mut String) {
        match self {
            Seg::Root => {}
            Seg::Key(parent, k) => {
                parent.write(out);
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(parent, i) => {
                parent.write(out);
                out.push_str(&format!("[{i}]"));
            }
        }
    }
}

/// Walks a raw JSON value against a schema, recording unknown and duplicate fields.
struct Scan<'s, 'p, 'a> {
    schema: SchemaRef<'a>,
    path: &'p Seg<'p>,
    out: &'s mut Errors,
}

impl<'de> DeserializeSeed<'de> for Scan<'_, '_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Scan<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let item = self.schema.items();
        let out = self.out;
        let mut i = 0;
        loop {
            let seg = Seg::Index(self.path, i);
            let next = seq.next_element_seed(Scan {
                schema: item,
                path: &seg,
                out: &mut *out,
            })?;
            if next.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let out = self.out;
        let mut seen: Vec<String> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let seg = Seg::Key(self.path, &key);
            match self.schema.field(&key) {
                None => {
                    out.push(format!("unknown field {}", go_quote(&seg.render())));
                    map.next_value::<IgnoredAny>()?;
                }
                Some(child) => {
                    if seen.contains(&key) {
                        out.push(format!("duplicate field {}", go_quote(&seg.render())));
                    }
                    map.next_value_seed(Scan {
                        schema: child,
                        path: &seg,
                        out: &mut *out,
                    })?;
                }
            }
            seen.push(key);
        }
        Ok(())
    }
}

/// Go's `%q` for the (printable) strings that appear in field paths.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> SchemaRef<'static> {
        SchemaRef::for_kind("apps", "v1", "Deployment").expect("deployments are served")
    }

    /// The body of kube-apiserver's `TestFieldValidation` (test/integration/apiserver).
    const INVALID_DEPLOYMENT: &str = r#"{
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "dupename",
            "name": "test-deployment",
            "labels": {"app": "nginx"},
            "unknownMeta": "metaVal"
        },
        "spec": {
            "unknown1": "val1",
            "unknownDupe": "valDupe",
            "unknownDupe": "valDupe2",
            "paused": true,
            "paused": false,
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {
                    "containers": [{
                        "name": "nginx",
                        "image": "nginx:latest",
                        "unknownNested": "val1",
                        "imagePullPolicy": "Always",
                        "imagePullPolicy": "Never"
                    }]
                }
            }
        }
    }"#;

    #[test]
    fn strict_errors_match_kube_apiserver() {
        let errs = strict_errors(INVALID_DEPLOYMENT.as_bytes(), &deployment());
        assert_eq!(
            strict_decoding_error(&errs),
            "strict decoding error: duplicate field \"metadata.name\", unknown field \"metadata.unknownMeta\", unknown field \"spec.unknown1\", unknown field \"spec.unknownDupe\", duplicate field \"spec.paused\", unknown field \"spec.template.spec.containers[0].unknownNested\", duplicate field \"spec.template.spec.containers[0].imagePullPolicy\""
        );
    }

    #[test]
    fn unknown_fields_of_a_value() {
        let obj: Value = serde_json::from_str(INVALID_DEPLOYMENT).unwrap();
        assert_eq!(
            unknown_fields(&obj, &deployment()),
            vec![
                r#"unknown field "metadata.unknownMeta""#,
                r#"unknown field "spec.unknown1""#,
                r#"unknown field "spec.unknownDupe""#,
                r#"unknown field "spec.template.spec.containers[0].unknownNested""#,
            ]
        );
        // A Go map round trip visits keys in order ("template" < "unknown1").
        assert_eq!(
            unknown_fields_sorted(&obj, &deployment()),
            vec![
                r#"unknown field "metadata.unknownMeta""#,
                r#"unknown field "spec.template.spec.containers[0].unknownNested""#,
                r#"unknown field "spec.unknown1""#,
                r#"unknown field "spec.unknownDupe""#,
            ]
        );
    }

    #[test]
    fn maps_and_free_form_fields_accept_any_key() {
        let obj = json!({
            "metadata": {
                "name": "x",
                "labels": {"anything": "goes"},
                "annotations": {"a/b": "c"},
                "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]
            },
            "spec": {"template": {"spec": {"nodeSelector": {"disk": "ssd"}}}}
        });
        assert!(unknown_fields(&obj, &deployment()).is_empty());
    }

    #[test]
    fn preserve_unknown_fields_and_unknown_kinds() {
        let defs: BTreeMap<String, Value> = serde_json::from_value(json!({
            "Widget": {
                "type": "object",
                "properties": {
                    "spec": {
                        "type": "object",
                        "properties": {"size": {"type": "integer"}},
                        "x-kubernetes-preserve-unknown-fields": true
                    },
                    "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}
                }
            }
        }))
        .unwrap();
        let w = SchemaRef::definition(&defs, "Widget").unwrap();
        let obj = json!({"spec": {"size": 1, "extra": {"deep": true}}, "status": {"ready": true, "why": "x"}, "top": 1});
        assert_eq!(
            unknown_fields(&obj, &w),
            vec![r#"unknown field "status.why""#, r#"unknown field "top""#]
        );
        let mut pruned = obj.clone();
        prune_unknown_fields(&mut pruned, &w);
        assert_eq!(
            pruned,
            json!({"spec": {"size": 1, "extra": {"deep": true}}, "status": {"ready": true}})
        );
        // Everything but metadata is free in a custom resource.
        let cr = SchemaRef::unknown(&defs);
        assert!(unknown_fields(&obj, &cr).is_empty());
    }

    #[test]
    fn prune_drops_unknown_fields_only() {
        let mut obj: Value = serde_json::from_str(INVALID_DEPLOYMENT).unwrap();
        prune_unknown_fields(&mut obj, &deployment());
        assert!(unknown_fields(&obj, &deployment()).is_empty());
        assert_eq!(obj["spec"]["paused"], json!(false));
        assert_eq!(
            obj["spec"]["template"]["spec"]["containers"][0],
            json!({"name": "nginx", "image": "nginx:latest", "imagePullPolicy": "Never"})
        );
        assert_eq!(obj["metadata"]["labels"], json!({"app": "nginx"}));
    }

    #[test]
    fn duplicates_anywhere_in_a_patch() {
        let body = br#"{"spec":{"replicas":1,"replicas":2,"template":{"spec":{"containers":[{"name":"a","name":"b"}]}}},"metadata":{"labels":{"x":"1","x":"2"}}}"#;
        assert_eq!(
            duplicate_fields(body),
            vec![
                r#"duplicate field "spec.replicas""#,
                r#"duplicate field "spec.template.spec.containers[0].name""#,
                r#"duplicate field "metadata.labels.x""#,
            ]
        );
        assert!(duplicate_fields(b"{not json").is_empty());
        assert!(duplicate_fields(br#"{"a":{"b":1},"c":[1,2]}"#).is_empty());
    }

    #[test]
    fn quoting_and_cap() {
        assert_eq!(go_quote("a\"b"), r#""a\"b""#);
        let mut body = String::from("{");
        for i in 0..150 {
            body.push_str(&format!("\"f{i}\":1,"));
        }
        body.push_str("\"kind\":\"Deployment\"}");
        assert_eq!(
            strict_errors(body.as_bytes(), &deployment()).len(),
            MAX_ERRORS
        );
    }
}
