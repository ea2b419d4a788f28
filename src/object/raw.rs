//! The raw object: its serialized bytes plus the little metadata the server needs to index,
//! select and version it. Built once per stored revision and shared by the cache, lists and
//! every watcher.

use super::codec::{self, Encoded};
use crate::api::catalogue::ResourceInfo;
use crate::storage::KeyValue;
use bytes::Bytes;
use serde_json::{Map, Value};

#[derive(Debug)]
pub struct RawObject {
    /// Store key (absolute).
    pub key: Box<str>,
    pub namespace: Box<str>,
    pub name: Box<str>,
    pub uid: Box<str>,
    /// Sorted (key, value) label pairs.
    pub labels: Box<[(Box<str>, Box<str>)]>,
    /// Values of the resource's selectable fields, in `ResourceInfo::fields` order.
    pub fields: Box<[Box<str>]>,
    pub mod_revision: i64,
    pub create_revision: i64,
    pub encoded: Encoded,
}

impl RawObject {
    pub fn label(&self, k: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|(lk, _)| (**lk).cmp(k))
            .ok()
            .map(|i| &*self.labels[i].1)
    }

    /// A selectable field's value (metadata.name, metadata.namespace or a resource field).
    pub fn field(&self, res: &ResourceInfo, name: &str) -> Option<&str> {
        match name {
            "metadata.name" => Some(&self.name),
            "metadata.namespace" => Some(&self.namespace),
            _ => {
                let f = res.field(name)?;
                let i = res.fields.iter().position(|x| std::ptr::eq(x, f))?;
                self.fields.get(i).map(|s| &**s)
            }
        }
    }

    pub fn json(&self) -> &Bytes {
        &self.encoded.json
    }

    /// Builds the object from a stored value, serving it at `rv`.
    pub fn from_stored(
        res: &ResourceInfo,
        key: &str,
        value: &[u8],
        create_revision: i64,
        rv: i64,
    ) -> Result<Self, String> {
        let mut obj: Map<String, Value> = match serde_json::from_slice(value) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err(format!("{key}: stored value is not an object")),
            Err(e) => return Err(format!("{key}: stored value is not JSON: {e}")),
        };
        if let Some(c) = res.conversion {
            (c.from_storage)(&mut obj);
        }
        Ok(Self::from_map(res, key, &obj, create_revision, rv))
    }

    pub fn from_kv(res: &ResourceInfo, kv: &KeyValue) -> Result<Self, String> {
        Self::from_stored(res, &kv.key, &kv.value, kv.create_revision, kv.mod_revision)
    }

    pub fn from_map(
        res: &ResourceInfo,
        key: &str,
        obj: &Map<String, Value>,
        create_revision: i64,
        rv: i64,
    ) -> Self {
        let meta = obj.get("metadata").and_then(Value::as_object);
        let s = |k: &str| -> Box<str> {
            meta.and_then(|m| m.get(k))
                .and_then(Value::as_str)
                .unwrap_or("")
                .into()
        };
        let mut labels: Vec<(Box<str>, Box<str>)> = meta
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object)
            .map(|l| {
                l.iter()
                    .filter_map(|(k, v)| {
                        v.as_str()
                            .map(|v| (Box::<str>::from(k.as_str()), Box::<str>::from(v)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        labels.sort();
        let fields = res
            .fields
            .iter()
            .map(|f| field_value(obj, f.path, f.default))
            .collect();
        RawObject {
            key: key.into(),
            namespace: s("namespace"),
            name: s("name"),
            uid: s("uid"),
            labels: labels.into_boxed_slice(),
            fields,
            mod_revision: rv,
            create_revision,
            encoded: codec::encode(res.kind, &res.api_version(), obj, Some(rv)),
        }
    }

    /// The same object served at another resourceVersion (DELETED events carry the delete's RV).
    pub fn with_revision(&self, res: &ResourceInfo, rv: i64) -> Result<Self, String> {
        let obj: Map<String, Value> = match serde_json::from_slice(&self.encoded.json) {
            Ok(Value::Object(m)) => m,
            _ => return Err(format!("{}: cached value is not an object", self.key)),
        };
        Ok(Self::from_map(
            res,
            &self.key,
            &obj,
            self.create_revision,
            rv,
        ))
    }

    /// Decoded JSON (for writes and patches).
    pub fn to_map(&self) -> Map<String, Value> {
        match serde_json::from_slice(&self.encoded.json) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }
}

fn field_value(obj: &Map<String, Value>, path: &[&str], default: &str) -> Box<str> {
    let mut cur: Option<&Value> = None;
    for (i, p) in path.iter().enumerate() {
        cur = if i == 0 {
            obj.get(*p)
        } else {
            cur.and_then(|v| v.get(*p))
        };
    }
    match cur {
        Some(Value::String(s)) => s.as_str().into(),
        Some(Value::Bool(b)) => b.to_string().into(),
        Some(Value::Number(n)) => n.to_string().into(),
        _ => default.into(),
    }
}

/// Small accessors for JSON objects.
pub fn meta(obj: &Map<String, Value>) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

pub fn meta_mut(obj: &mut Map<String, Value>) -> &mut Map<String, Value> {
    let entry = obj
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    entry.as_object_mut().expect("just made an object")
}

pub fn meta_str<'a>(obj: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    meta(obj).and_then(|m| m.get(k)).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::catalogue::lookup;

    #[test]
    fn indexes_labels_and_fields() {
        let pods = lookup("", "v1", "pods").unwrap();
        let v = br#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p","namespace":"ns","labels":{"b":"2","a":"1"}},"spec":{"nodeName":"n1"}}"#;
        let o = RawObject::from_stored(pods, "/registry/pods/ns/p", v, 3, 7).unwrap();
        assert_eq!(o.label("a"), Some("1"));
        assert_eq!(o.label("c"), None);
        assert_eq!(o.field(pods, "spec.nodeName"), Some("n1"));
        assert_eq!(o.field(pods, "spec.host"), Some("n1"));
        assert_eq!(o.field(pods, "status.phase"), Some("Pending"));
        assert_eq!(o.field(pods, "metadata.namespace"), Some("ns"));
        assert!(std::str::from_utf8(o.json())
            .unwrap()
            .contains(r#""resourceVersion":"7""#));
    }
}
