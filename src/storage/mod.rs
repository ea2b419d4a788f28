//! The `Store`: a revisioned key-value store with etcd's semantics.
//!
//! Two implementations share this trait and one conformance suite (`tests/store_conformance.rs`):
//! `etcd` (the production path) and `embedded` (single-process default, persisted with redb).
//! Revisions are global to the store: every successful write bumps it by one, and a key carries
//! the revision that created it and the revision that last modified it.

pub mod embedded;
pub mod encrypted;
pub mod etcd;
pub mod metered;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use std::sync::Arc;

pub type Revision = i64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    pub create_revision: Revision,
    pub mod_revision: Revision,
}

/// One change seen by a watch. `prev` is the value before the change (etcd's `prev_kv`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreEvent {
    Put {
        kv: KeyValue,
        prev: Option<KeyValue>,
    },
    /// `revision` is the revision of the delete itself.
    Delete {
        key: String,
        revision: Revision,
        prev: Option<KeyValue>,
    },
}

impl StoreEvent {
    pub fn revision(&self) -> Revision {
        match self {
            StoreEvent::Put { kv, .. } => kv.mod_revision,
            StoreEvent::Delete { revision, .. } => *revision,
        }
    }
    pub fn key(&self) -> &str {
        match self {
            StoreEvent::Put { kv, .. } => &kv.key,
            StoreEvent::Delete { key, .. } => key,
        }
    }
}

/// What a watch stream yields: batches of events in revision order, or a progress notification
/// saying the stream has delivered everything up to and including `Revision` for its prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchMessage {
    Events(Vec<StoreEvent>),
    Progress(Revision),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeResult {
    pub kvs: Vec<KeyValue>,
    /// More keys exist in the range beyond `kvs` (only possible with a limit).
    pub more: bool,
    /// Number of keys in the whole requested range (from `start` to the end of the prefix).
    pub count: i64,
    /// The revision the range was read at.
    pub revision: Revision,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("key not found")]
    NotFound,
    #[error("key already exists")]
    AlreadyExists,
    /// A CAS guard failed; `current` is the key's value now (None if it is gone).
    #[error("revision mismatch")]
    Conflict { current: Option<KeyValue> },
    /// The requested revision is older than the compacted revision.
    #[error("mvcc: required revision has been compacted (compacted at {compacted})")]
    Compacted { compacted: Revision },
    /// The requested revision is newer than the store's current revision.
    #[error("mvcc: required revision is a future revision")]
    FutureRevision,
    /// The store could not be reached or answered with an error.
    #[error("{0}")]
    Unavailable(String),
    /// A stored value cannot be read back (e.g. encryption at rest cannot decrypt it): a server
    /// fault, not an outage — kube-apiserver's storage InternalError (500 InternalError).
    #[error("{0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The storage interface the rest of kapi uses. Keys are absolute (they include `--etcd-prefix`).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Current value of `key` and the store's revision at read time.
    async fn get(&self, key: &str) -> StoreResult<(Option<KeyValue>, Revision)>;

    /// Keys with `prefix`, starting at `start` (inclusive; `None` = the prefix itself), in key
    /// order, at most `limit` of them (0 = all), read at `revision` (0 = current).
    async fn range(
        &self,
        prefix: &str,
        start: Option<&str>,
        limit: i64,
        revision: Revision,
    ) -> StoreResult<RangeResult>;

    /// Number of keys under `prefix` at `revision` (0 = current) whose mod_revision is at least
    /// `min_mod_revision` (0 = no bound). Used to prove a quiet prefix unchanged.
    async fn count(
        &self,
        prefix: &str,
        revision: Revision,
        min_mod_revision: Revision,
    ) -> StoreResult<i64>;

    /// Creates `key`; `AlreadyExists` if it exists. Returns the new revision.
    async fn create(&self, key: &str, value: Bytes) -> StoreResult<Revision>;

    /// Replaces `key` if its mod_revision is `expected`; else `Conflict` (or `NotFound`).
    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> StoreResult<Revision>;

    /// Deletes `key` if its mod_revision is `expected`; else `Conflict` (or `NotFound`).
    /// Returns the revision of the delete.
    async fn delete(&self, key: &str, expected: Revision) -> StoreResult<Revision>;

    /// Events under `prefix` with revision >= `from` (0 = from now on), then progress
    /// notifications while the prefix is quiet. `Compacted` if `from` is compacted away.
    async fn watch(
        &self,
        prefix: &str,
        from: Revision,
    ) -> StoreResult<BoxStream<'static, StoreResult<WatchMessage>>>;

    async fn current_revision(&self) -> StoreResult<Revision>;

    /// Discards history before `revision`.
    async fn compact(&self, revision: Revision) -> StoreResult<()>;
}

pub type DynStore = Arc<dyn Store>;

/// The end of a prefix range: the prefix with its last byte incremented (etcd's `WithPrefix`).
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}
