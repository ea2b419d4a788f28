//! A `Store` wrapper that records etcd_request_duration_seconds / etcd_requests_total per
//! operation and resource (the resource is found from the key's storage prefix).

use super::{KeyValue, RangeResult, Revision, Store, StoreResult, WatchMessage};
use crate::api::catalogue;
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use std::time::Instant;

pub struct Metered<S> {
    inner: S,
    /// `--etcd-prefix` with a trailing slash.
    prefix: String,
}

impl<S: Store> Metered<S> {
    pub fn new(inner: S, etcd_prefix: &str) -> Self {
        Metered {
            inner,
            prefix: format!("{}/", etcd_prefix.trim_end_matches('/')),
        }
    }

    /// (group, resource) owning `key`, or ("", "") for keys outside the catalogue.
    fn resource(&self, key: &str) -> (&'static str, &'static str) {
        let rest = key.strip_prefix(&self.prefix).unwrap_or(key);
        catalogue::all()
            .iter()
            .filter(|r| r.conversion.is_none())
            .filter(|r| {
                rest.starts_with(r.storage_prefix)
                    && rest[r.storage_prefix.len()..].starts_with('/')
            })
            .max_by_key(|r| r.storage_prefix.len())
            .map(|r| (r.group, r.plural))
            .unwrap_or(("", ""))
    }

    fn record<T>(&self, op: &'static str, key: &str, started: Instant, r: &StoreResult<T>) {
        let (g, res) = self.resource(key);
        crate::metrics::store_request(op, g, res, started.elapsed().as_secs_f64(), r.is_ok());
    }
}

#[async_trait]
impl<S: Store> Store for Metered<S> {
    async fn get(&self, key: &str) -> StoreResult<(Option<KeyValue>, Revision)> {
        let t = Instant::now();
        let r = self.inner.get(key).await;
        self.record("get", key, t, &r);
        r
    }

    async fn range(
        &self,
        prefix: &str,
        start: Option<&str>,
        limit: i64,
        revision: Revision,
    ) -> StoreResult<RangeResult> {
        let t = Instant::now();
        let r = self.inner.range(prefix, start, limit, revision).await;
        self.record("list", prefix, t, &r);
        r
    }

    async fn count(
        &self,
        prefix: &str,
        revision: Revision,
        min_mod_revision: Revision,
    ) -> StoreResult<i64> {
        let t = Instant::now();
        let r = self.inner.count(prefix, revision, min_mod_revision).await;
        self.record("listWithCount", prefix, t, &r);
        r
    }

    async fn create(&self, key: &str, value: Bytes) -> StoreResult<Revision> {
        let t = Instant::now();
        let r = self.inner.create(key, value).await;
        self.record("create", key, t, &r);
        r
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> StoreResult<Revision> {
        let t = Instant::now();
        let r = self.inner.update(key, value, expected).await;
        self.record("update", key, t, &r);
        r
    }

    async fn delete(&self, key: &str, expected: Revision) -> StoreResult<Revision> {
        let t = Instant::now();
        let r = self.inner.delete(key, expected).await;
        self.record("delete", key, t, &r);
        r
    }

    async fn watch(
        &self,
        prefix: &str,
        from: Revision,
    ) -> StoreResult<BoxStream<'static, StoreResult<WatchMessage>>> {
        self.inner.watch(prefix, from).await
    }

    async fn current_revision(&self) -> StoreResult<Revision> {
        let t = Instant::now();
        let r = self.inner.current_revision().await;
        self.record("getCurrentResourceVersion", "", t, &r);
        if let Ok(rev) = &r {
            metrics::gauge!("kapi_store_revision").set(*rev as f64);
        }
        r
    }

    async fn compact(&self, revision: Revision) -> StoreResult<()> {
        self.inner.compact(revision).await
    }
}
