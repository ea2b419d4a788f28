//! The registry of a cache's watchers and the dispatch of events to them.
//!
//! Dispatch never blocks: each watcher has a bounded queue of shared frames. A watcher whose
//! queue is full is marked stalled and skipped; when it drains, it resumes from the history ring
//! (see `watch::stream`), or ends if it fell out of the ring. No lock is held across an await.

use super::event::CacheEvent;
use super::filter::Filter;
use bytes::Bytes;
use metrics::{Counter, Gauge};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// Per-watcher queue length. Small, because a stalled watcher catches up from the ring.
pub const WATCHER_QUEUE: usize = 256;

#[derive(Debug)]
pub struct WatcherShared {
    pub id: u64,
    pub filter: Filter,
    tx: mpsc::Sender<Delivery>,
    pub stalled: AtomicBool,
}

#[derive(Default)]
struct Watchers {
    next_id: u64,
    map: HashMap<u64, Arc<WatcherShared>>,
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
        WatcherRegistry { inner: Mutex::new(Watchers::default()), registered, stalls }
    }

    pub fn register(&self, filter: Filter) -> (Arc<WatcherShared>, mpsc::Receiver<Delivery>) {
        let (tx, rx) = mpsc::channel(WATCHER_QUEUE);
        let mut w = self.inner.lock().expect("watchers lock");
        w.next_id += 1;
        let shared = Arc::new(WatcherShared { id: w.next_id, filter, tx, stalled: AtomicBool::new(false) });
        w.map.insert(shared.id, shared.clone());
        self.registered.set(w.map.len() as f64);
        (shared, rx)
    }

    pub fn remove(&self, id: u64) {
        let mut w = self.inner.lock().expect("watchers lock");
        w.map.remove(&id);
        self.registered.set(w.map.len() as f64);
    }

    pub fn len(&self) -> usize {
        self.inner.lock().expect("watchers lock").map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every watcher's sender: their streams end once drained (cache re-initialisation).
    pub fn terminate_all(&self) {
        self.inner.lock().expect("watchers lock").map.clear();
        self.registered.set(0.0);
    }

    /// Hands `events` (in revision order) to every interested watcher.
    pub fn dispatch(&self, events: &[Arc<CacheEvent>]) {
        if events.is_empty() {
            return;
        }
        let mut closed = Vec::new();
        let w = self.inner.lock().expect("watchers lock");
        for watcher in w.map.values() {
            if watcher.stalled.load(Ordering::SeqCst) {
                continue;
            }
            for ev in events {
                let Some(frame) = ev.frame_for(&watcher.filter) else { continue };
                let delivery = Delivery { revision: ev.revision, frame, at: ev.applied_at };
                match watcher.tx.try_send(delivery) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        watcher.stalled.store(true, Ordering::SeqCst);
                        self.stalls.increment(1);
                        break;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        closed.push(watcher.id);
                        break;
                    }
                }
            }
        }
        drop(w);
        if !closed.is_empty() {
            let mut w = self.inner.lock().expect("watchers lock");
            for id in closed {
                w.map.remove(&id);
            }
            self.registered.set(w.map.len() as f64);
        }
    }
}
