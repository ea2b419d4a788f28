//! How plugins read (and, for quota status, write) cluster state: the watch caches first, the
//! store on a miss (kube-apiserver's informers plus "live lookups"). [`MemoryLookup`] is an
//! in-memory stand-in for tests.

use crate::api::catalogue::ResourceInfo;
use crate::api::handlers::{store_error, Api};
use crate::api::status::ApiError;
use crate::object::codec;
use crate::object::raw::RawObject;
use crate::storage::StoreError;
use async_trait::async_trait;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// An object and the revision it was read at (its resourceVersion).
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    pub object: Map<String, Value>,
    pub revision: i64,
}

#[async_trait]
pub trait Lookup: Send + Sync {
    /// One object: the watch cache's copy, or the store's when the cache has none.
    async fn get(
        &self,
        res: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Stored>, ApiError>;

    /// One object read from the store, bypassing the cache.
    async fn get_live(
        &self,
        res: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Stored>, ApiError>;

    /// Every object of a resource in a namespace (`None`: all namespaces, or cluster-scoped).
    async fn list(
        &self,
        res: &'static ResourceInfo,
        namespace: Option<&str>,
    ) -> Result<Vec<Stored>, ApiError>;

    /// Replaces an object if it is still at `expected` (CAS). `Ok(None)` when it changed or
    /// disappeared meanwhile.
    async fn update(
        &self,
        res: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        object: &Map<String, Value>,
        expected: i64,
    ) -> Result<Option<i64>, ApiError>;
}

fn stored_of(o: &RawObject) -> Stored {
    Stored {
        object: o.to_map(),
        revision: o.mod_revision,
    }
}

#[async_trait]
impl Lookup for Api {
    async fn get(
        &self,
        res: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Stored>, ApiError> {
        let cache = self.caches.get(res);
        if cache.is_ready() {
            if let Some(o) = cache.get(&self.key(res, namespace, name)) {
                return Ok(Some(stored_of(&o)));
            }
        }
        self.get_live(res, namespace, name).await
    }

    async fn get_live(
        &self,
        res: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Stored>, ApiError> {
        let key = self.key(res, namespace, name);
        let (kv, _) = self
            .store
            .get(&key)
            .await
            .map_err(|e| store_error(e, res, "get"))?;
        match kv {
            None => Ok(None),
            Some(kv) => {
                let o = RawObject::from_kv(res, &kv).map_err(ApiError::internal)?;
                Ok(Some(stored_of(&o)))
            }
        }
    }

    async fn list(
        &self,
        res: &'static ResourceInfo,
        namespace: Option<&str>,
    ) -> Result<Vec<Stored>, ApiError> {
        let prefix = self.list_prefix(res, namespace);
        let cache = self.caches.get(res);
        if cache.is_ready() {
            let snap = cache.snapshot();
            return Ok(snap
                .objects
                .range((
                    std::ops::Bound::Included(prefix.as_str()),
                    std::ops::Bound::Unbounded,
                ))
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(_, o)| stored_of(o))
                .collect());
        }
        let r = self
            .store
            .range(&prefix, None, 0, 0)
            .await
            .map_err(|e| store_error(e, res, "list"))?;
        r.kvs
            .iter()
            .map(|kv| {
                RawObject::from_kv(res, kv)
                    .map(|o| stored_of(&o))
                    .map_err(ApiError::internal)
            })
            .collect()
    }

    async fn update(
        &self,
        res: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        object: &Map<String, Value>,
        expected: i64,
    ) -> Result<Option<i64>, ApiError> {
        let key = self.key(res, namespace, name);
        match self
            .store
            .update(&key, codec::stored(res, object), expected)
            .await
        {
            Ok(rev) => Ok(Some(rev)),
            Err(StoreError::Conflict { .. }) | Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(store_error(e, res, "update")),
        }
    }
}

type MemKey = (String, String, String, String);

/// An in-memory [`Lookup`] for tests: objects put in by hand, revisions counted from 1.
#[derive(Default)]
pub struct MemoryLookup {
    state: Mutex<MemState>,
}

#[derive(Default)]
struct MemState {
    revision: i64,
    objects: BTreeMap<MemKey, Stored>,
    live_gets: usize,
}

fn mem_key(res: &ResourceInfo, namespace: Option<&str>, name: &str) -> MemKey {
    let ns = if res.namespaced {
        namespace.unwrap_or("")
    } else {
        ""
    };
    (
        res.group.to_string(),
        res.plural.to_string(),
        ns.to_string(),
        name.to_string(),
    )
}

impl MemoryLookup {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores an object (its namespace and name come from its metadata); returns its revision.
    pub fn put(&self, res: &'static ResourceInfo, object: Value) -> i64 {
        let Value::Object(mut object) = object else {
            panic!("objects are JSON objects");
        };
        let meta = object.get("metadata").cloned().unwrap_or_default();
        let ns = meta
            .get("namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let mut st = self.state.lock().unwrap();
        st.revision += 1;
        let revision = st.revision;
        if let Some(Value::Object(m)) = object.get_mut("metadata") {
            m.insert("resourceVersion".into(), revision.to_string().into());
        }
        st.objects.insert(
            mem_key(res, ns.as_deref(), &name),
            Stored { object, revision },
        );
        revision
    }

    /// An Active namespace with optional labels.
    pub fn put_namespace(&self, name: &str, labels: Option<Value>) -> i64 {
        let res = crate::api::catalogue::lookup("", "v1", "namespaces").expect("namespaces");
        let mut meta = serde_json::json!({"name": name, "uid": format!("uid-{name}")});
        if let Some(l) = labels {
            meta["labels"] = l;
        }
        self.put(
            res,
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": meta,
                "status": {"phase": "Active"}}),
        )
    }

    pub fn remove(&self, res: &'static ResourceInfo, namespace: Option<&str>, name: &str) {
        self.state
            .lock()
            .unwrap()
            .objects
            .remove(&mem_key(res, namespace, name));
    }

    /// The stored copy of an object.
    pub fn object(
        &self,
        res: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Map<String, Value>> {
        self.state
            .lock()
            .unwrap()
            .objects
            .get(&mem_key(res, namespace, name))
            .map(|s| s.object.clone())
    }

    /// How many `get_live` calls were made.
    pub fn live_gets(&self) -> usize {
        self.state.lock().unwrap().live_gets
    }
}

#[async_trait]
impl Lookup for MemoryLookup {
    async fn get(
        &self,
        res: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Stored>, ApiError> {
        Ok(self
            .state
            .lock()
            .unwrap()
            .objects
            .get(&mem_key(res, namespace, name))
            .cloned())
    }

    async fn get_live(
        &self,
        res: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Stored>, ApiError> {
        self.state.lock().unwrap().live_gets += 1;
        self.get(res, namespace, name).await
    }

    async fn list(
        &self,
        res: &'static ResourceInfo,
        namespace: Option<&str>,
    ) -> Result<Vec<Stored>, ApiError> {
        let st = self.state.lock().unwrap();
        Ok(st
            .objects
            .iter()
            .filter(|((g, p, ns, _), _)| {
                g == res.group && p == res.plural && namespace.is_none_or(|want| ns == want)
            })
            .map(|(_, s)| s.clone())
            .collect())
    }

    async fn update(
        &self,
        res: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        object: &Map<String, Value>,
        expected: i64,
    ) -> Result<Option<i64>, ApiError> {
        let mut st = self.state.lock().unwrap();
        let key = mem_key(res, namespace, name);
        match st.objects.get(&key) {
            Some(s) if s.revision == expected => {}
            _ => return Ok(None),
        }
        st.revision += 1;
        let revision = st.revision;
        let mut object = object.clone();
        if let Some(Value::Object(m)) = object.get_mut("metadata") {
            m.insert("resourceVersion".into(), revision.to_string().into());
        }
        st.objects.insert(key, Stored { object, revision });
        Ok(Some(revision))
    }
}
