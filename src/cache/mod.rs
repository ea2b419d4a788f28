//! The watch cache: per resource, one store watch feeds a sorted map of current objects and a
//! revision-indexed ring of recent events. Reads and watches are served from here.

pub mod event;
pub mod filter;
mod objects;
pub mod watchers;

use crate::api::catalogue::ResourceInfo;
use crate::api::status::ApiError;
use crate::object::raw::RawObject;
use crate::storage::{DynStore, StoreError, StoreEvent, WatchMessage};
use bytes::Bytes;
use event::{CacheEvent, Encoding, EventType};
use filter::Filter;
use futures::StreamExt;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use watchers::{Delivery, WatcherRegistry, WatcherShared};

/// Page size of the initial list. kube-apiserver pages by 10,000 (storageWatchListPageSize);
/// smaller pages keep a page's transient buffers (freed between the objects the cache keeps,
/// so the heap cannot give them back) ~3 MB instead of ~11 MB at 1 KB per object; at
/// 2,500 the cold start measured no slower (100k objects: 3.2 s either way, 4.1 s at 1,000).
const INIT_PAGE: i64 = 2_500;
/// Retained list snapshots for paging with continue tokens.
const MAX_SNAPSHOTS: usize = 32;
const SNAPSHOT_TTL: Duration = Duration::from_secs(300);

pub use objects::ObjectMap;

/// An O(1) view of the cache at one revision.
#[derive(Clone)]
pub struct Snapshot {
    pub objects: ObjectMap,
    pub revision: i64,
}

struct State {
    objects: ObjectMap,
    revision: i64,
    ring: VecDeque<Arc<CacheEvent>>,
    /// Watches from a revision >= floor can be resumed from the ring: every event after it is
    /// there (events at it may be partly gone: one revision can carry several events).
    floor: i64,
    snapshots: VecDeque<(Instant, Snapshot)>,
}

pub struct WatchCache {
    pub res: &'static ResourceInfo,
    /// Absolute key prefix with a trailing `/`, e.g. `/registry/pods/`.
    pub prefix: String,
    store: DynStore,
    state: RwLock<State>,
    rev_tx: watch::Sender<i64>,
    pub watchers: WatcherRegistry,
    pub metrics: crate::metrics::ResourceMetrics,
    ready: AtomicBool,
    history: usize,
    /// For a view of another resource's storage: the cache whose store watch feeds this one.
    source: Option<Arc<WatchCache>>,
    /// remainingItemCount after each page served from a snapshot, keyed by (revision, the next
    /// page's start key), so paging without selectors is linear overall.
    paging_hints: std::sync::Mutex<VecDeque<((i64, String), i64)>>,
    /// What this cache received from the store, relayed to caches that view the same storage.
    relay: tokio::sync::broadcast::Sender<WatchMessage>,
}

/// Where a watch starts.
pub enum WatchFrom {
    /// Events after this revision.
    Revision(i64),
    /// Synthetic ADDED events for the current state, then live events.
    InitialEvents,
}

pub struct WatchStart {
    pub shared: Arc<WatcherShared>,
    pub rx: mpsc::Receiver<Delivery>,
    /// For `InitialEvents`: the state to send first.
    pub initial: Option<Snapshot>,
    /// Ring events to replay first (revision, frame).
    pub replay: Vec<Delivery>,
    /// The revision this watcher has seen up to.
    pub start_revision: i64,
}

impl WatchCache {
    pub fn new(
        res: &'static ResourceInfo,
        etcd_prefix: &str,
        store: DynStore,
        history: usize,
        source: Option<Arc<WatchCache>>,
    ) -> Arc<Self> {
        let prefix = format!(
            "{}/{}/",
            etcd_prefix.trim_end_matches('/'),
            res.storage_prefix
        );
        Arc::new(WatchCache {
            res,
            prefix,
            store,
            state: RwLock::new(State {
                objects: ObjectMap::new(),
                revision: 0,
                ring: VecDeque::new(),
                floor: 0,
                snapshots: VecDeque::new(),
            }),
            rev_tx: watch::channel(0).0,
            watchers: {
                let m = crate::metrics::ResourceMetrics::new(res);
                WatcherRegistry::new(m.registered_watchers.clone(), m.stalls.clone())
            },
            metrics: crate::metrics::ResourceMetrics::new(res),
            ready: AtomicBool::new(false),
            history: history.max(16),
            source,
            paging_hints: std::sync::Mutex::new(VecDeque::new()),
            relay: tokio::sync::broadcast::channel(1024).0,
        })
    }

    pub fn start(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.clone().feed())
    }

    pub fn revision(&self) -> i64 {
        self.state.read().expect("cache lock").revision
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    pub fn len(&self) -> usize {
        self.state.read().expect("cache lock").objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn snapshot(&self) -> Snapshot {
        let st = self.state.read().expect("cache lock");
        Snapshot {
            objects: st.objects.clone(),
            revision: st.revision,
        }
    }

    pub fn get(&self, key: &str) -> Option<Arc<RawObject>> {
        self.state
            .read()
            .expect("cache lock")
            .objects
            .get(key)
            .cloned()
    }

    /// A snapshot at exactly `revision`, if the cache is there or retained one.
    pub fn snapshot_at(&self, revision: i64) -> Option<Snapshot> {
        let st = self.state.read().expect("cache lock");
        if st.revision == revision {
            return Some(Snapshot {
                objects: st.objects.clone(),
                revision,
            });
        }
        st.snapshots
            .iter()
            .find(|(_, s)| s.revision == revision)
            .map(|(_, s)| s.clone())
    }

    /// The remainingItemCount recorded for the page that ended before `start` at `revision`.
    pub fn remaining_hint(&self, revision: i64, start: &str) -> Option<i64> {
        let hints = self.paging_hints.lock().expect("paging hints lock");
        hints
            .iter()
            .rev()
            .find(|((r, k), _)| *r == revision && k == start)
            .map(|(_, n)| *n)
    }

    pub fn record_remaining(&self, revision: i64, next_start: String, remaining: i64) {
        const MAX_HINTS: usize = 1024;
        let mut hints = self.paging_hints.lock().expect("paging hints lock");
        if hints.len() >= MAX_HINTS {
            hints.pop_front();
        }
        hints.push_back(((revision, next_start), remaining));
    }

    /// Keeps `snap` for later pages of a list.
    pub fn retain_snapshot(&self, snap: &Snapshot) {
        let mut st = self.state.write().expect("cache lock");
        let now = Instant::now();
        st.snapshots
            .retain(|(t, s)| now.duration_since(*t) < SNAPSHOT_TTL && s.revision != snap.revision);
        if st.snapshots.len() >= MAX_SNAPSHOTS {
            st.snapshots.pop_front();
        }
        st.snapshots.push_back((now, snap.clone()));
    }

    /// Waits until the cache has reached `revision`; false on timeout.
    pub async fn wait_for(&self, revision: i64, timeout: Duration) -> bool {
        let mut rx = self.rev_tx.subscribe();
        let reached = matches!(
            tokio::time::timeout(timeout, rx.wait_for(|r| *r >= revision)).await,
            Ok(Ok(_))
        );
        reached
    }

    /// Waits until the cache is ready (initial state loaded and caught up).
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.is_ready() {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Makes sure the cache reflects the store at `target` (a revision read from the store).
    ///
    /// Events in flight are waited for briefly. A quiet prefix gets no events, so its revision
    /// lags; then the store proves the prefix unchanged since the cache's revision: no key with
    /// a newer mod_revision, and the same number of keys (so nothing was deleted either). We do
    /// not rely on etcd progress requests, which etcd 3.4.23 can answer ahead of pending events.
    pub async fn ensure_fresh(&self, target: i64, timeout: Duration) -> Result<bool, StoreError> {
        let deadline = Instant::now() + timeout;
        if self
            .wait_for(target, Duration::from_millis(20).min(timeout))
            .await
        {
            return Ok(true);
        }
        loop {
            let (rev, count) = {
                let st = self.state.read().expect("cache lock");
                (st.revision, st.objects.len() as i64)
            };
            if rev >= target {
                return Ok(true);
            }
            if rev > 0 {
                let changed = self.store.count(&self.prefix, target, rev + 1).await?;
                if changed == 0 && self.store.count(&self.prefix, target, 0).await? == count {
                    self.advance_to(target);
                    return Ok(true);
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            if self
                .wait_for(target, (deadline - now).min(Duration::from_millis(100)))
                .await
            {
                return Ok(true);
            }
        }
    }

    /// Registers a watcher and returns what it must send first.
    pub fn start_watch(&self, filter: Filter, from: WatchFrom) -> Result<WatchStart, ApiError> {
        self.start_watch_as(filter, from, Encoding::Json)
    }

    /// Registers a watcher that wants frames in `encoding`.
    pub fn start_watch_as(
        &self,
        filter: Filter,
        from: WatchFrom,
        encoding: Encoding,
    ) -> Result<WatchStart, ApiError> {
        let st = self.state.read().expect("cache lock");
        match from {
            WatchFrom::Revision(n) => {
                if n < st.floor {
                    return Err(ApiError::gone(format!(
                        "too old resource version: {} ({})",
                        n, st.floor
                    )));
                }
                let (shared, rx) = self.watchers.register_with(filter, encoding);
                let replay = ring_after(&st.ring, n, &shared.filter, encoding);
                Ok(WatchStart {
                    shared,
                    rx,
                    initial: None,
                    replay,
                    start_revision: n,
                })
            }
            WatchFrom::InitialEvents => {
                let snap = Snapshot {
                    objects: st.objects.clone(),
                    revision: st.revision,
                };
                let (shared, rx) = self.watchers.register_with(filter, encoding);
                Ok(WatchStart {
                    shared,
                    rx,
                    start_revision: snap.revision,
                    initial: Some(snap),
                    replay: Vec::new(),
                })
            }
        }
    }

    /// Frames of ring events after `after` for `filter`; None if `after` fell out of the ring.
    /// Like kube's cacher, events at `after` itself are not included, even when it carries
    /// several (a stream that sent only some of them resumes from `after - 1`).
    pub fn events_since(
        &self,
        after: i64,
        filter: &Filter,
        encoding: Encoding,
    ) -> Option<Vec<Delivery>> {
        let st = self.state.read().expect("cache lock");
        (after >= st.floor).then(|| ring_after(&st.ring, after, filter, encoding))
    }

    pub fn subscribe_revision(&self) -> watch::Receiver<i64> {
        self.rev_tx.subscribe()
    }

    /// Publishes the cache's revision to waiting readers and the metrics.
    fn publish(&self) {
        let (rev, len) = {
            let st = self.state.read().expect("cache lock");
            (st.revision, st.objects.len())
        };
        self.rev_tx.send_if_modified(|r| {
            let changed = *r < rev;
            *r = (*r).max(rev);
            changed
        });
        self.metrics.cache_revision.set(rev as f64);
        self.metrics.objects.set(len as f64);
        self.metrics.objects_legacy.set(len as f64);
    }

    fn advance_to(&self, revision: i64) {
        let mut st = self.state.write().expect("cache lock");
        if revision > st.revision {
            st.revision = revision;
            drop(st);
            self.publish();
        }
    }

    /// Loads the prefix at a revision somewhat before the store's current one, so that the ring
    /// is refilled from store history and clients can resume watches across a restart.
    async fn initialize(&self) -> Result<(i64, i64), StoreError> {
        let current = self.store.current_revision().await?;
        // Views are fed by their source's live events, so they cannot refill history.
        let base = if self.source.is_some() {
            current
        } else {
            (current - self.history as i64).max(1)
        };
        let (objects, base) = match self.list_all(base).await {
            Ok(m) => (m, base),
            Err(StoreError::Compacted { .. }) | Err(StoreError::FutureRevision) => {
                (self.list_all(current).await?, current)
            }
            Err(e) => return Err(e),
        };
        self.watchers.terminate_all();
        self.metrics.initializations.increment(1);
        {
            let mut st = self.state.write().expect("cache lock");
            st.objects = objects;
            st.revision = base;
            st.floor = base;
            st.ring.clear();
            st.snapshots.clear();
        }
        self.rev_tx.send_replace(base);
        self.publish();
        Ok((base, current))
    }

    async fn list_all(&self, revision: i64) -> Result<ObjectMap, StoreError> {
        let mut objects = ObjectMap::new();
        let mut start: Option<String> = None;
        loop {
            let page = self
                .store
                .range(&self.prefix, start.as_deref(), INIT_PAGE, revision)
                .await?;
            for kv in &page.kvs {
                match RawObject::from_kv(self.res, kv) {
                    Ok(o) => {
                        objects.insert(Arc::new(o));
                    }
                    Err(e) => tracing::warn!(error = %e, "skipping undecodable object"),
                }
            }
            match (page.more, page.kvs.last()) {
                (true, Some(last)) => start = Some(format!("{}\0", last.key)),
                _ => return Ok(objects),
            }
        }
    }

    async fn feed(self: Arc<Self>) {
        let mut resume: Option<i64> = None;
        let mut relay_rx = None;
        loop {
            if resume.is_none() {
                // Subscribe before listing so that no relayed event falls in between.
                relay_rx = self.source.as_ref().map(|s| s.relay.subscribe());
            }
            let from = match resume {
                Some(r) => r,
                None => match self.initialize().await {
                    Ok((base, current)) => {
                        self.ready.store(false, Ordering::SeqCst);
                        let me = self.clone();
                        tokio::spawn(async move {
                            loop {
                                match me.ensure_fresh(current, Duration::from_secs(5)).await {
                                    Ok(true) => break,
                                    Ok(false) => {}
                                    Err(e) => {
                                        tracing::warn!(resource = me.res.plural, error = %e, "cache freshness check failed")
                                    }
                                }
                                tokio::time::sleep(Duration::from_millis(200)).await;
                            }
                            me.ready.store(true, Ordering::SeqCst);
                            tracing::debug!(resource = me.res.plural, "watch cache ready");
                        });
                        base
                    }
                    Err(e) => {
                        tracing::warn!(resource = self.res.plural, error = %e, "watch cache initialisation failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                },
            };
            resume = Some(from);
            let watched = match (&self.source, relay_rx.take()) {
                (Some(_), Some(rx)) => Ok(relay_stream(rx)),
                (Some(_), None) => {
                    resume = None;
                    continue;
                }
                (None, _) => self.store.watch(&self.prefix, from + 1).await,
            };
            let mut stream = match watched {
                Ok(s) => s,
                Err(StoreError::Compacted { .. }) => {
                    resume = None;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(resource = self.res.plural, error = %e, "store watch failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            while let Some(msg) = stream.next().await {
                match msg {
                    Ok(WatchMessage::Events(events)) => {
                        if self.relay.receiver_count() > 0 {
                            let _ = self.relay.send(WatchMessage::Events(events.clone()));
                        }
                        self.metrics.events_received.increment(events.len() as u64);
                        let applied = self.apply(events);
                        self.watchers.dispatch(&applied);
                        self.metrics
                            .events_dispatched
                            .increment(applied.len() as u64);
                        self.publish();
                        resume = Some(self.revision());
                    }
                    Ok(WatchMessage::Progress(rev)) => {
                        if self.relay.receiver_count() > 0 {
                            let _ = self.relay.send(WatchMessage::Progress(rev));
                        }
                        self.advance_to(rev);
                        resume = Some(self.revision());
                    }
                    Err(StoreError::Compacted { .. }) => {
                        tracing::warn!(
                            resource = self.res.plural,
                            "store history compacted under the cache; relisting"
                        );
                        resume = None;
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(resource = self.res.plural, error = %e, "store watch broke; resuming");
                        break;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Applies store events to the state and ring; returns them as cache events to dispatch.
    fn apply(&self, events: Vec<StoreEvent>) -> Vec<Arc<CacheEvent>> {
        // Decode outside the lock.
        let decoded: Vec<(StoreEvent, Option<Arc<RawObject>>)> = events
            .into_iter()
            .map(|ev| {
                let obj = match &ev {
                    StoreEvent::Put { kv, .. } => match RawObject::from_kv(self.res, kv) {
                        Ok(o) => Some(Arc::new(o)),
                        Err(e) => {
                            tracing::warn!(error = %e, "skipping undecodable object");
                            None
                        }
                    },
                    StoreEvent::Delete { .. } => None,
                };
                (ev, obj)
            })
            .collect();
        let mut out = Vec::with_capacity(decoded.len());
        let mut st = self.state.write().expect("cache lock");
        for (ev, obj) in decoded {
            let rev = ev.revision();
            // One revision can carry several events (a multi-key transaction), so an event at
            // the cache's revision is new unless its key already shows it (a replay, or a
            // relayed event the list at that revision covered): a put leaves the key at that
            // mod revision, a delete leaves it gone (and the arms below skip a missing key).
            if rev < st.revision
                || (rev == st.revision
                    && st
                        .objects
                        .get(ev.key())
                        .is_some_and(|o| o.mod_revision == rev))
            {
                continue;
            }
            st.revision = rev;
            let cache_event = match (ev, obj) {
                (StoreEvent::Put { .. }, Some(obj)) => {
                    let prev = st.objects.insert(obj.clone());
                    let etype = if prev.is_some() {
                        EventType::Modified
                    } else {
                        EventType::Added
                    };
                    CacheEvent::new(etype, rev, obj, prev)
                }
                (StoreEvent::Put { kv, .. }, None) => match st.objects.remove(&kv.key) {
                    Some(old) => deleted_event(self.res, &old, rev),
                    None => continue,
                },
                (StoreEvent::Delete { key, .. }, _) => match st.objects.remove(&key) {
                    Some(old) => deleted_event(self.res, &old, rev),
                    None => continue,
                },
            };
            let cache_event = Arc::new(cache_event);
            st.ring.push_back(cache_event.clone());
            while st.ring.len() > self.history {
                if let Some(old) = st.ring.pop_front() {
                    st.floor = old.revision;
                }
            }
            self.metrics
                .watch_event_sizes
                .record(cache_event.frame().len() as f64);
            out.push(cache_event);
        }
        out
    }
}

/// A view cache's input: its source's relayed messages. Falling behind ends the stream, and
/// the view re-initialises.
fn relay_stream(
    rx: tokio::sync::broadcast::Receiver<WatchMessage>,
) -> futures::stream::BoxStream<'static, Result<WatchMessage, StoreError>> {
    futures::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Ok(m) => Some((Ok(m), rx)),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => Some((
                Err(StoreError::Unavailable(format!(
                    "view cache lagged {n} messages behind its source"
                ))),
                rx,
            )),
            Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
        }
    })
    .boxed()
}

fn deleted_event(res: &ResourceInfo, old: &Arc<RawObject>, rev: i64) -> CacheEvent {
    let obj = old
        .with_revision(res, rev)
        .map(Arc::new)
        .unwrap_or_else(|_| old.clone());
    CacheEvent::new(EventType::Deleted, rev, obj, None)
}

fn ring_after(
    ring: &VecDeque<Arc<CacheEvent>>,
    after: i64,
    filter: &Filter,
    encoding: Encoding,
) -> Vec<Delivery> {
    let start = ring.partition_point(|e| e.revision <= after);
    ring.range(start..)
        .filter_map(|e| {
            e.frame_as(filter, encoding).map(|frame| Delivery {
                revision: e.revision,
                frame,
                at: e.applied_at,
            })
        })
        .collect()
}

/// Every resource's cache, keyed by (group, plural).
pub struct Caches {
    by_resource: std::collections::HashMap<(&'static str, &'static str), Arc<WatchCache>>,
}

impl Caches {
    pub fn start(store: DynStore, etcd_prefix: &str, history: usize) -> Self {
        let mut by_resource = std::collections::HashMap::new();
        let all = crate::api::catalogue::all();
        // Storage owners first, then the views that read through them.
        for res in all
            .iter()
            .filter(|r| r.conversion.is_none())
            .chain(all.iter().filter(|r| r.conversion.is_some()))
        {
            let source = res.conversion.map(|c| {
                by_resource
                    .get(&c.storage_resource)
                    .cloned()
                    .expect("a view's storage resource is served")
            });
            let cache = WatchCache::new(res, etcd_prefix, store.clone(), history, source);
            cache.start();
            by_resource.insert((res.group, res.plural), cache);
        }
        Caches { by_resource }
    }

    pub fn get(&self, res: &ResourceInfo) -> Arc<WatchCache> {
        self.by_resource
            .get(&(res.group, res.plural))
            .expect("every catalogue resource has a cache")
            .clone()
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<WatchCache>> {
        self.by_resource.values()
    }
}

/// A BOOKMARK frame: an empty object of the watched kind carrying only the revision.
pub fn bookmark_frame(res: &ResourceInfo, revision: i64, initial_events_end: bool) -> Bytes {
    bookmark_frame_as(res, revision, initial_events_end, Encoding::Json)
}

pub fn bookmark_frame_as(
    res: &ResourceInfo,
    revision: i64,
    initial_events_end: bool,
    encoding: Encoding,
) -> Bytes {
    let annotations = if initial_events_end {
        r#","annotations":{"k8s.io/initial-events-end":"true"}"#
    } else {
        ""
    };
    let json = format!(
        r#"{{"kind":"{}","apiVersion":"{}","metadata":{{"resourceVersion":"{}","creationTimestamp":null{}}}}}"#,
        res.kind,
        res.api_version(),
        revision,
        annotations
    );
    event::encode_frame("BOOKMARK", json.as_bytes(), encoding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::KeyValue;
    use crate::watch::stream::{WatchBody, WatchOptions};
    use http_body_util::BodyExt;
    use watchers::WATCHER_QUEUE;

    fn configmaps() -> &'static ResourceInfo {
        crate::api::catalogue::lookup("", "v1", "configmaps").unwrap()
    }

    fn new_cache(history: usize) -> (tempfile::TempDir, Arc<WatchCache>) {
        let dir = tempfile::tempdir().unwrap();
        let store: DynStore = Arc::new(
            crate::storage::embedded::EmbeddedStore::open(&dir.path().join("db.redb")).unwrap(),
        );
        let cache = WatchCache::new(configmaps(), "/registry", store, history, None);
        (dir, cache)
    }

    fn key(name: &str) -> String {
        format!("/registry/configmaps/ns/{name}")
    }

    fn put(name: &str, rev: i64) -> StoreEvent {
        let value = format!(
            r#"{{"kind":"ConfigMap","apiVersion":"v1","metadata":{{"name":"{name}","namespace":"ns","uid":"uid-{name}"}},"data":{{"at":"{rev}"}}}}"#
        );
        StoreEvent::Put {
            kv: KeyValue {
                key: key(name),
                value: value.into(),
                create_revision: rev,
                mod_revision: rev,
            },
            prev: None,
        }
    }

    fn delete(name: &str, rev: i64) -> StoreEvent {
        StoreEvent::Delete {
            key: key(name),
            revision: rev,
            prev: None,
        }
    }

    /// "TYPE name@revision" of cache events.
    fn described(events: &[Arc<CacheEvent>]) -> Vec<String> {
        events
            .iter()
            .map(|e| format!("{} {}@{}", e.etype.as_str(), e.object.name(), e.revision))
            .collect()
    }

    /// "TYPE name@resourceVersion" of a JSON watch frame.
    fn frame_described(frame: &[u8]) -> String {
        let v: serde_json::Value = serde_json::from_slice(frame).unwrap();
        format!(
            "{} {}@{}",
            v["type"].as_str().unwrap(),
            v["object"]["metadata"]["name"].as_str().unwrap(),
            v["object"]["metadata"]["resourceVersion"].as_str().unwrap()
        )
    }

    /// Applies `events` and hands them to the watchers, as the feed does.
    fn feed(cache: &WatchCache, events: Vec<StoreEvent>) -> Vec<String> {
        let applied = cache.apply(events);
        cache.watchers.dispatch(&applied);
        described(&applied)
    }

    fn body(cache: &Arc<WatchCache>, start: WatchStart) -> WatchBody {
        WatchBody::new(
            cache.clone(),
            start,
            (
                cache.prefix.clone(),
                Some(crate::storage::prefix_end(&cache.prefix)),
            ),
            WatchOptions {
                timeout: Duration::from_secs(60),
                bookmarks: false,
                initial_events_end: false,
            },
        )
    }

    /// Every frame the body has ready (it is given a moment for more to come). Unconstrained by
    /// tokio's cooperative budget, so the body drains its queue before it resumes from the ring.
    async fn frames(body: &mut WatchBody) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(Some(f)) = tokio::time::timeout(
            Duration::from_millis(100),
            tokio::task::unconstrained(body.frame()),
        )
        .await
        {
            let data = f.unwrap().into_data().unwrap();
            out.push(frame_described(&data));
        }
        out
    }

    #[test]
    fn events_sharing_a_revision_are_all_applied_once() {
        let (_dir, cache) = new_cache(64);
        let txn = || vec![put("a", 5), put("b", 5), put("c", 5)];
        assert_eq!(
            described(&cache.apply(txn())),
            ["ADDED a@5", "ADDED b@5", "ADDED c@5"]
        );
        assert_eq!((cache.len(), cache.revision()), (3, 5));
        // Replayed (a store watch resumed too early): nothing new, in whole or in part.
        assert!(cache.apply(txn()).is_empty());
        assert!(cache.apply(vec![put("b", 5)]).is_empty());

        let mixed = || vec![delete("a", 6), put("b", 6), put("d", 6)];
        assert_eq!(
            described(&cache.apply(mixed())),
            ["DELETED a@6", "MODIFIED b@6", "ADDED d@6"]
        );
        assert!(cache.apply(mixed()).is_empty());
        assert!(cache.apply(vec![put("a", 5), delete("c", 5)]).is_empty());
        // A revision's events split over two batches are still all applied.
        assert_eq!(described(&cache.apply(vec![put("e", 7)])), ["ADDED e@7"]);
        assert_eq!(described(&cache.apply(vec![put("f", 7)])), ["ADDED f@7"]);

        let snap = cache.snapshot_at(7).expect("the cache is at 7");
        let names: Vec<&str> = snap.objects.values().map(|o| o.name()).collect();
        assert_eq!(names, ["b", "c", "d", "e", "f"]);
        assert_eq!(snap.objects.get(&key("b")).map(|o| o.mod_revision), Some(6));
    }

    #[test]
    fn the_ring_resumes_strictly_after_a_revision() {
        let (_dir, cache) = new_cache(16);
        let everything = || Filter::everything(configmaps());
        cache.apply(vec![put("a", 5), put("b", 5), put("c", 5)]);
        let replay = |after| {
            cache
                .events_since(after, &everything(), Encoding::Json)
                .map(|ds| {
                    ds.iter()
                        .map(|d| frame_described(&d.frame))
                        .collect::<Vec<_>>()
                })
        };
        assert_eq!(replay(4).unwrap(), ["ADDED a@5", "ADDED b@5", "ADDED c@5"]);
        // As kube's cacher: a client resuming from 5 has every event at 5.
        assert_eq!(replay(5).unwrap(), Vec::<String>::new());
        let start = cache
            .start_watch(everything(), WatchFrom::Revision(4))
            .unwrap();
        assert_eq!(start.replay.len(), 3);

        // 14 more events overflow the ring (16) by one: a@5 leaves, b@5 and c@5 stay.
        for rev in 6..20 {
            cache.apply(vec![put(&format!("p{rev}"), rev)]);
        }
        assert!(replay(4).is_none(), "an event at 5 is gone");
        let after5 = replay(5).unwrap();
        assert_eq!(after5.len(), 14);
        assert_eq!(after5[0], "ADDED p6@6");
        match cache.start_watch(everything(), WatchFrom::Revision(4)) {
            Err(e) => assert_eq!(e.code, 410),
            Ok(_) => panic!("a watch from 4 must be gone"),
        }
        assert!(cache
            .start_watch(everything(), WatchFrom::Revision(5))
            .is_ok());
    }

    #[tokio::test]
    async fn a_watcher_gets_every_event_of_a_revision() {
        let (_dir, cache) = new_cache(64);
        let ns_a = Filter::new(
            configmaps(),
            Some("ns".into()),
            Default::default(),
            Default::default(),
        );
        let start = cache.start_watch(ns_a, WatchFrom::Revision(4)).unwrap();
        let mut w = body(&cache, start);
        feed(&cache, vec![put("a", 5), put("b", 5), put("c", 5)]);
        feed(&cache, vec![delete("b", 6), put("a", 6)]);
        assert_eq!(
            frames(&mut w).await,
            [
                "ADDED a@5",
                "ADDED b@5",
                "ADDED c@5",
                "DELETED b@6",
                "MODIFIED a@6"
            ]
        );
    }

    #[tokio::test]
    async fn overlapping_replay_and_queue_send_each_event_once() {
        // A watch registered between apply and dispatch finds the events both in the ring
        // replay and in its queue.
        let (_dir, cache) = new_cache(64);
        let everything = || Filter::everything(configmaps());
        let applied = cache.apply(vec![put("a", 5), put("b", 5), put("c", 5)]);
        let from_rv = cache
            .start_watch(everything(), WatchFrom::Revision(4))
            .unwrap();
        let initial = cache
            .start_watch(everything(), WatchFrom::InitialEvents)
            .unwrap();
        let at_rv = cache
            .start_watch(everything(), WatchFrom::Revision(5))
            .unwrap();
        let (mut from_rv, mut initial, mut at_rv) = (
            body(&cache, from_rv),
            body(&cache, initial),
            body(&cache, at_rv),
        );
        cache.watchers.dispatch(&applied);
        feed(&cache, vec![put("d", 6)]);
        let all = ["ADDED a@5", "ADDED b@5", "ADDED c@5", "ADDED d@6"];
        assert_eq!(frames(&mut from_rv).await, all);
        assert_eq!(frames(&mut initial).await, all);
        assert_eq!(frames(&mut at_rv).await, ["ADDED d@6"]);
    }

    #[tokio::test]
    async fn a_stalled_watcher_resumes_with_the_rest_of_a_revision() {
        let (_dir, cache) = new_cache(4096);
        let start = cache
            .start_watch(Filter::everything(configmaps()), WatchFrom::Revision(0))
            .unwrap();
        let shared = start.shared.clone();
        let mut w = body(&cache, start);
        let mut expected = Vec::new();
        // Fill the queue but for one slot: the transaction's first event gets it, the second
        // stalls the watcher and the third is skipped.
        for rev in 1..WATCHER_QUEUE as i64 {
            expected.extend(feed(&cache, vec![put(&format!("p{rev}"), rev)]));
        }
        let txn = WATCHER_QUEUE as i64;
        expected.extend(feed(
            &cache,
            vec![put("x", txn), put("y", txn), put("z", txn)],
        ));
        assert!(shared.stalled.load(Ordering::SeqCst));
        expected.extend(feed(&cache, vec![put("w", txn + 1)]));
        expected.extend(feed(&cache, vec![put("v", txn + 2), put("u", txn + 2)]));
        assert_eq!(expected.len(), WATCHER_QUEUE + 5);
        assert_eq!(frames(&mut w).await, expected);
    }
}
