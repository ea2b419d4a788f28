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
    /// All of the object's strings in one allocation (the cache holds one RawObject per stored
    /// object, so per-string boxes dominated its overhead): the store key, then the uid, then
    /// namespace and name when they are not substrings of the key, then label keys and values
    /// alternating (sorted by key), then the selectable field values.
    text: Box<str>,
    /// Piece boundaries after the uid: piece `j` is `text[bounds[j]..bounds[j + 1]]`; pieces
    /// `0..2 * n_labels` are the labels, the rest the fields. Empty when there are neither.
    bounds: Box<[u32]>,
    key_end: u32,
    uid_end: u32,
    namespace: (u32, u32),
    name: (u32, u32),
    n_labels: u32,
    pub mod_revision: i64,
    pub create_revision: i64,
    pub encoded: Encoded,
}

impl RawObject {
    /// Store key (absolute).
    pub fn key(&self) -> &str {
        &self.text[..self.key_end as usize]
    }

    pub fn uid(&self) -> &str {
        &self.text[self.key_end as usize..self.uid_end as usize]
    }

    pub fn namespace(&self) -> &str {
        &self.text[self.namespace.0 as usize..self.namespace.1 as usize]
    }

    pub fn name(&self) -> &str {
        &self.text[self.name.0 as usize..self.name.1 as usize]
    }

    fn piece(&self, j: usize) -> &str {
        &self.text[self.bounds[j] as usize..self.bounds[j + 1] as usize]
    }

    /// Sorted (key, value) label pairs.
    pub fn labels(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        (0..self.n_labels as usize).map(|i| (self.piece(2 * i), self.piece(2 * i + 1)))
    }

    pub fn label(&self, k: &str) -> Option<&str> {
        let (mut lo, mut hi) = (0, self.n_labels as usize);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.piece(2 * mid).cmp(k) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(self.piece(2 * mid + 1)),
            }
        }
        None
    }

    /// A selectable field's value (metadata.name, metadata.namespace or a resource field).
    pub fn field(&self, res: &ResourceInfo, name: &str) -> Option<&str> {
        match name {
            "metadata.name" => Some(self.name()),
            "metadata.namespace" => Some(self.namespace()),
            _ => {
                let f = res.field(name)?;
                let i = res.fields.iter().position(|x| std::ptr::eq(x, f))?;
                let j = 2 * self.n_labels as usize + i;
                (j + 1 < self.bounds.len()).then(|| self.piece(j))
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
        let s = |k: &str| -> &str {
            meta.and_then(|m| m.get(k))
                .and_then(Value::as_str)
                .unwrap_or("")
        };
        let mut labels: Vec<(&str, &str)> = meta
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object)
            .map(|l| {
                l.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.as_str(), v)))
                    .collect()
            })
            .unwrap_or_default();
        labels.sort();
        let fields: Vec<Box<str>> = res
            .fields
            .iter()
            .map(|f| field_value(obj, f.path, f.default))
            .collect();
        let (namespace, name, uid) = (s("namespace"), s("name"), s("uid"));
        let pieces = labels
            .iter()
            .flat_map(|(k, v)| [*k, *v])
            .chain(fields.iter().map(|f| &**f));
        let mut text = String::with_capacity(
            key.len()
                + uid.len()
                + namespace.len()
                + name.len()
                + pieces.clone().map(str::len).sum::<usize>(),
        );
        text.push_str(key);
        let key_end = text.len();
        text.push_str(uid);
        let uid_end = text.len();
        let (namespace, name) = ns_name_spans(&mut text, key_end, namespace, name);
        let mut bounds = Vec::new();
        for p in pieces {
            bounds.push(off(text.len()));
            text.push_str(p);
        }
        if !bounds.is_empty() {
            bounds.push(off(text.len()));
        }
        RawObject {
            text: text.into_boxed_str(),
            bounds: bounds.into_boxed_slice(),
            key_end: off(key_end),
            uid_end: off(uid_end),
            namespace,
            name,
            n_labels: off(labels.len()),
            mod_revision: rv,
            create_revision,
            encoded: codec::encode(res.kind, &res.api_version(), obj, Some(rv)),
        }
    }

    /// The same object served at another resourceVersion (DELETED events carry the delete's RV).
    pub fn with_revision(&self, res: &ResourceInfo, rv: i64) -> Result<Self, String> {
        let obj: Map<String, Value> = match serde_json::from_slice(&self.encoded.json) {
            Ok(Value::Object(m)) => m,
            _ => return Err(format!("{}: cached value is not an object", self.key())),
        };
        Ok(Self::from_map(
            res,
            self.key(),
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

/// An offset into `RawObject::text`. Objects are bounded by etcd's request limit (1.5 MiB by
/// default, at most a few GiB by configuration), far below `u32::MAX`.
fn off(n: usize) -> u32 {
    u32::try_from(n).expect("object text under 4 GiB")
}

/// The spans of namespace and name in `text`: inside the key `text[..key_end]` when they are
/// its last segments (`<prefix>/<resource>/<ns>/<name>`, or `.../<name>` when cluster-scoped),
/// else appended to `text` (a key from elsewhere, or metadata that disagrees with it).
fn ns_name_spans(
    text: &mut String,
    key_end: usize,
    namespace: &str,
    name: &str,
) -> ((u32, u32), (u32, u32)) {
    // Start of `s` as a whole trailing segment of `text[..end]`.
    let segment = |text: &str, end: usize, s: &str| -> Option<usize> {
        let head = &text[..end];
        let i = end.checked_sub(s.len())?;
        (!s.is_empty() && head.ends_with(s) && i > 0 && head.as_bytes()[i - 1] == b'/').then_some(i)
    };
    let name_at = segment(text, key_end, name);
    let ns_at = name_at.and_then(|i| segment(text, i - 1, namespace));
    let mut place = |at: Option<usize>, s: &str| -> (u32, u32) {
        if s.is_empty() {
            return (0, 0);
        }
        let i = at.unwrap_or_else(|| {
            let i = text.len();
            text.push_str(s);
            i
        });
        (off(i), off(i + s.len()))
    };
    let ns = place(ns_at, namespace);
    (ns, place(name_at, name))
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

    #[test]
    fn strings_share_one_buffer() {
        let pods = lookup("", "v1", "pods").unwrap();
        let v = br#"{"metadata":{"name":"p","namespace":"ns","uid":"u-1","labels":{"z":"","a":"1","m":"x"}}}"#;
        let o = RawObject::from_stored(pods, "/registry/pods/ns/p", v, 1, 2).unwrap();
        assert_eq!(
            (o.key(), o.namespace(), o.name(), o.uid()),
            ("/registry/pods/ns/p", "ns", "p", "u-1")
        );
        // Key, uid, labels and field values; namespace and name are inside the key.
        let fields = o.bounds.len() - 1 - 2 * o.n_labels as usize;
        assert_eq!(fields, pods.fields.len());
        let field_text = o.text.len() - o.bounds[2 * o.n_labels as usize] as usize;
        assert_eq!(
            o.text.len(),
            "/registry/pods/ns/p".len() + 3 + 5 + field_text
        );
        assert!(o.text.ends_with("Pending"));
        let labels: Vec<_> = o.labels().collect();
        assert_eq!(labels, [("a", "1"), ("m", "x"), ("z", "")]);
        assert_eq!(o.label("z"), Some(""));
        assert_eq!(o.label("b"), None);
        assert_eq!(o.field(pods, "spec.nodeName"), Some(""));

        // Metadata that disagrees with the key (or no namespace) is kept as given.
        let v = br#"{"metadata":{"name":"other","namespace":"ns2"}}"#;
        let o = RawObject::from_stored(pods, "/registry/pods/ns/p", v, 1, 2).unwrap();
        assert_eq!((o.namespace(), o.name(), o.uid()), ("ns2", "other", ""));
        assert_eq!(o.label("a"), None);
        let ns = lookup("", "v1", "namespaces").unwrap();
        let v = br#"{"metadata":{"name":"kube-system"}}"#;
        let o = RawObject::from_stored(ns, "/registry/namespaces/kube-system", v, 1, 2).unwrap();
        assert_eq!((o.namespace(), o.name()), ("", "kube-system"));
        // Nothing appended between the key and the field values.
        let before_fields = o.bounds.first().map_or(o.text.len(), |&b| b as usize);
        assert_eq!(before_fields, "/registry/namespaces/kube-system".len());
        // A name equal to the key's tail but not a whole segment is not taken from the key.
        let v = br#"{"metadata":{"name":"p","namespace":"s"}}"#;
        let o = RawObject::from_stored(pods, "/registry/pods/ns/xp", v, 1, 2).unwrap();
        assert_eq!((o.namespace(), o.name()), ("s", "p"));
    }
}
