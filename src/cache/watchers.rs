//! The registry of a cache's watchers and the dispatch of events to them.
//!
//! Dispatch never blocks: each watcher has a bounded queue of shared frames. A watcher whose
//! queue is full is marked stalled and skipped; when it drains, it resumes from the history ring
//! (see `watch::stream`), or ends if it fell out of the ring. No lock is held across an await.

use super::event::{CacheEvent, Encoding};
use super::filter::Filter;
use bytes::Bytes;
use metrics::{Counter, Gauge};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc;

/// A queued frame: its event's revision, the shared bytes, and when the event entered the cache.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub revision: i64,
    pub frame: Bytes,
    pub at: Instant,
}

/// Frames queued for the watch streams of one client connection and not yet taken by them.
/// The connection's writer holds its flush while this is non-zero (bounded in time, see
/// `server::coalesce`) and is woken when it drops to zero, so one event's frames for many
/// streams leave in one write.
#[derive(Debug, Default)]
pub struct Backlog {
    queued: AtomicUsize,
    writer: futures::task::AtomicWaker,
}

impl Backlog {
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// The writer to wake when the backlog empties.
    pub fn register(&self, waker: &std::task::Waker) {
        self.writer.register(waker);
    }

    fn add(&self) {
        self.queued.fetch_add(1, Ordering::AcqRel);
    }

    pub fn take(&self, n: usize) {
        if n == 0 {
            return;
        }
        // Never below zero: a frame is counted before it is queued.
        let before = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                Some(v.saturating_sub(n))
            })
            .unwrap_or(0);
        if before <= n {
            self.writer.wake();
        }
    }
}

tokio::task_local! {
    /// The backlog of the connection a request arrived on (set by the server per request).
    pub static CONN_BACKLOG: Arc<Backlog>;
}

/// Per-watcher queue length. Small, because a stalled watcher catches up from the ring.
pub const WATCHER_QUEUE: usize = 256;

#[derive(Debug)]
pub struct WatcherShared {
    pub id: u64,
    pub filter: Filter,
    pub encoding: Encoding,
    tx: mpsc::Sender<Delivery>,
    pub stalled: AtomicBool,
    /// The backlog of the connection this watcher streams on.
    pub backlog: Option<Arc<Backlog>>,
}

type Bucket = HashMap<u64, Arc<WatcherShared>>;

/// Watchers indexed so that an event touches only those that can want it: by the pods'
/// `spec.nodeName` a watcher selects on (the kubelet pattern), else by its namespace, else in
/// the unindexed set that sees every event.
#[derive(Default)]
struct Watchers {
    next_id: u64,
    len: usize,
    unindexed: Bucket,
    by_namespace: HashMap<Box<str>, Bucket>,
    by_node: HashMap<Box<str>, Bucket>,
    /// The resource of node-indexed watchers (pods), to read an object's spec.nodeName.
    node_res: Option<&'static crate::api::catalogue::ResourceInfo>,
}

/// Where a watcher is indexed.
enum Slot {
    Unindexed,
    Namespace(Box<str>),
    Node(Box<str>),
}

fn slot(filter: &Filter) -> Slot {
    if filter.res.plural == "pods" {
        if let Some(node) = filter
            .fields
            .exact("spec.nodeName")
            .or_else(|| filter.fields.exact("spec.host"))
        {
            return Slot::Node(node.into());
        }
    }
    match filter
        .namespace
        .as_deref()
        .or_else(|| filter.fields.exact("metadata.namespace"))
    {
        Some(ns) => Slot::Namespace(ns.into()),
        None => Slot::Unindexed,
    }
}

impl Watchers {
    fn bucket_mut(&mut self, slot: &Slot) -> &mut Bucket {
        match slot {
            Slot::Unindexed => &mut self.unindexed,
            Slot::Namespace(ns) => self.by_namespace.entry(ns.clone()).or_default(),
            Slot::Node(n) => self.by_node.entry(n.clone()).or_default(),
        }
    }

    fn remove(&mut self, w: &WatcherShared) {
        let removed = match slot(&w.filter) {
            Slot::Unindexed => self.unindexed.remove(&w.id),
            Slot::Namespace(ns) => remove_from(&mut self.by_namespace, &ns, w.id),
            Slot::Node(n) => remove_from(&mut self.by_node, &n, w.id),
        };
        if removed.is_some() {
            self.len -= 1;
        }
    }

    /// The buckets an event on `obj` (and its previous state) can matter to.
    fn candidates<'a>(&'a self, ev: &CacheEvent, out: &mut Vec<&'a Bucket>) {
        out.clear();
        out.push(&self.unindexed);
        let mut push = |map: &'a HashMap<Box<str>, Bucket>, key: Option<&str>| {
            if let Some(b) = key.and_then(|k| map.get(k)) {
                if !out.iter().any(|x| std::ptr::eq(*x, b)) {
                    out.push(b);
                }
            }
        };
        for o in std::iter::once(&ev.object).chain(ev.prev.iter()) {
            push(&self.by_namespace, Some(o.namespace()));
            if let Some(res) = self.node_res {
                push(&self.by_node, o.field(res, "spec.nodeName"));
            }
        }
    }
}

fn remove_from(
    map: &mut HashMap<Box<str>, Bucket>,
    key: &str,
    id: u64,
) -> Option<Arc<WatcherShared>> {
    let bucket = map.get_mut(key)?;
    let removed = bucket.remove(&id);
    if bucket.is_empty() {
        map.remove(key);
    }
    removed
}

pub struct WatcherRegistry {
    inner: Mutex<Watchers>,
    registered: Gauge,
    stalls: Counter,
}

impl Default for WatcherRegistry {
    fn default() -> Self {
        WatcherRegistry::new(Gauge::noop(), Counter::noop())
    }
}

impl WatcherRegistry {
    pub fn new(registered: Gauge, stalls: Counter) -> Self {
        WatcherRegistry {
            inner: Mutex::new(Watchers::default()),
            registered,
            stalls,
        }
    }

    pub fn register(&self, filter: Filter) -> (Arc<WatcherShared>, mpsc::Receiver<Delivery>) {
        self.register_with(filter, Encoding::Json)
    }

    pub fn register_with(
        &self,
        filter: Filter,
        encoding: Encoding,
    ) -> (Arc<WatcherShared>, mpsc::Receiver<Delivery>) {
        let (tx, rx) = mpsc::channel(WATCHER_QUEUE);
        let slot = slot(&filter);
        let mut w = self.inner.lock().expect("watchers lock");
        w.next_id += 1;
        let shared = Arc::new(WatcherShared {
            id: w.next_id,
            filter,
            encoding,
            tx,
            stalled: AtomicBool::new(false),
            backlog: CONN_BACKLOG.try_with(Arc::clone).ok(),
        });
        if matches!(slot, Slot::Node(_)) {
            w.node_res = Some(shared.filter.res);
        }
        w.bucket_mut(&slot).insert(shared.id, shared.clone());
        w.len += 1;
        self.registered.set(w.len as f64);
        (shared, rx)
    }

    pub fn remove(&self, watcher: &WatcherShared) {
        let mut w = self.inner.lock().expect("watchers lock");
        w.remove(watcher);
        self.registered.set(w.len as f64);
    }

    pub fn len(&self) -> usize {
        self.inner.lock().expect("watchers lock").len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every watcher's sender: their streams end once drained (cache re-initialisation).
    pub fn terminate_all(&self) {
        *self.inner.lock().expect("watchers lock") = Watchers::default();
        self.registered.set(0.0);
    }

    /// Hands `events` (in revision order) to every interested watcher: O(watchers in the
    /// buckets an event touches), one refcount per delivery, never blocking.
    pub fn dispatch(&self, events: &[Arc<CacheEvent>]) {
        if events.is_empty() {
            return;
        }
        let mut closed: Vec<Arc<WatcherShared>> = Vec::new();
        let w = self.inner.lock().expect("watchers lock");
        let mut buckets = Vec::with_capacity(4);
        for ev in events {
            w.candidates(ev, &mut buckets);
            // Count every frame this event may bring a connection before queuing any, so a
            // connection's writer does not flush halfway through the event.
            for bucket in &buckets {
                for watcher in bucket.values() {
                    if let Some(b) = &watcher.backlog {
                        b.add();
                    }
                }
            }
            for bucket in &buckets {
                for watcher in bucket.values() {
                    let frame = if watcher.stalled.load(Ordering::SeqCst) {
                        None
                    } else {
                        ev.frame_as(&watcher.filter, watcher.encoding)
                    };
                    let Some(frame) = frame else {
                        if let Some(b) = &watcher.backlog {
                            b.take(1);
                        }
                        continue;
                    };
                    let delivery = Delivery {
                        revision: ev.revision,
                        frame,
                        at: ev.applied_at,
                    };
                    let sent = watcher.tx.try_send(delivery);
                    if let (Err(_), Some(b)) = (&sent, &watcher.backlog) {
                        b.take(1);
                    }
                    match sent {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            watcher.stalled.store(true, Ordering::SeqCst);
                            self.stalls.increment(1);
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => {
                            watcher.stalled.store(true, Ordering::SeqCst);
                            closed.push(watcher.clone());
                        }
                    }
                }
            }
        }
        drop(w);
        if !closed.is_empty() {
            let mut w = self.inner.lock().expect("watchers lock");
            for watcher in closed {
                w.remove(&watcher);
            }
            self.registered.set(w.len as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::catalogue::lookup;
    use crate::api::selectors::field::FieldSelector;
    use crate::api::selectors::label::LabelSelector;
    use crate::cache::event::EventType;
    use crate::object::raw::RawObject;

    fn pod(name: &str, ns: &str, node: &str, rv: i64) -> Arc<RawObject> {
        let pods = lookup("", "v1", "pods").unwrap();
        let v = format!(
            r#"{{"metadata":{{"name":"{name}","namespace":"{ns}"}},"spec":{{"nodeName":"{node}"}}}}"#
        );
        Arc::new(
            RawObject::from_stored(
                pods,
                &format!("/registry/pods/{ns}/{name}"),
                v.as_bytes(),
                rv,
                rv,
            )
            .unwrap(),
        )
    }

    fn filter(ns: Option<&str>, fields: &str) -> Filter {
        let pods = lookup("", "v1", "pods").unwrap();
        let fs = if fields.is_empty() {
            FieldSelector::default()
        } else {
            FieldSelector::parse(fields).unwrap()
        };
        Filter::new(pods, ns.map(str::to_string), LabelSelector::default(), fs)
    }

    fn drain(rx: &mut mpsc::Receiver<Delivery>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(d) = rx.try_recv() {
            let v: serde_json::Value = serde_json::from_slice(&d.frame).unwrap();
            out.push(format!(
                "{} {}",
                v["type"].as_str().unwrap(),
                v["object"]["metadata"]["name"].as_str().unwrap()
            ));
        }
        out
    }

    #[test]
    fn indexed_watchers_see_exactly_their_events() {
        let reg = WatcherRegistry::default();
        let (_n1, mut rx_n1) = reg.register(filter(None, "spec.nodeName=n1"));
        let (_n2, mut rx_n2) = reg.register(filter(None, "spec.nodeName=n2"));
        let (_ns, mut rx_ns) = reg.register(filter(Some("a"), ""));
        let (_all, mut rx_all) = reg.register(filter(None, ""));
        let p1 = pod("p1", "a", "n1", 2);
        let moved = pod("p1", "a", "n2", 3);
        let other = pod("p2", "b", "n1", 4);
        let events = vec![
            Arc::new(CacheEvent::new(EventType::Added, 2, p1.clone(), None)),
            Arc::new(CacheEvent::new(EventType::Modified, 3, moved, Some(p1))),
            Arc::new(CacheEvent::new(EventType::Added, 4, other, None)),
        ];
        reg.dispatch(&events);
        assert_eq!(
            drain(&mut rx_n1),
            vec!["ADDED p1", "DELETED p1", "ADDED p2"]
        );
        assert_eq!(drain(&mut rx_n2), vec!["ADDED p1"]);
        assert_eq!(drain(&mut rx_ns), vec!["ADDED p1", "MODIFIED p1"]);
        assert_eq!(
            drain(&mut rx_all),
            vec!["ADDED p1", "MODIFIED p1", "ADDED p2"]
        );
        assert_eq!(reg.len(), 4);
    }

    #[test]
    fn a_full_queue_stalls_only_that_watcher() {
        let reg = WatcherRegistry::default();
        let (slow, _rx_slow) = reg.register(filter(None, ""));
        let (fast, mut rx_fast) = reg.register(filter(None, ""));
        for i in 0..(WATCHER_QUEUE as i64 + 10) {
            let ev = Arc::new(CacheEvent::new(
                EventType::Added,
                i + 1,
                pod(&format!("p{i}"), "a", "n", i + 1),
                None,
            ));
            reg.dispatch(&[ev]);
            while rx_fast.try_recv().is_ok() {}
        }
        assert!(slow.stalled.load(Ordering::SeqCst));
        assert!(!fast.stalled.load(Ordering::SeqCst));
    }
}
