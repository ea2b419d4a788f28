//! A cache event and its watch frames, each serialized once and shared by every watcher.

use super::filter::Filter;
use crate::object::raw::RawObject;
use bytes::Bytes;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

#[derive(Debug)]
pub struct CacheEvent {
    pub revision: i64,
    pub etype: EventType,
    /// Added/Modified: the new object. Deleted: the last state, served at the delete revision.
    pub object: Arc<RawObject>,
    /// Modified: the previous object (for selector transitions).
    pub prev: Option<Arc<RawObject>>,
    /// When the event entered the cache (delivery latency is measured from here).
    pub applied_at: Instant,
    frame: Bytes,
    /// The object entered a watcher's selector: ADDED with the new object.
    as_added: OnceLock<Bytes>,
    /// The object left a watcher's selector: DELETED with the old object at this event's RV.
    as_deleted: OnceLock<Bytes>,
}

/// `{"type":"<T>","object":<json>}\n`
pub fn frame(etype: &str, json: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(json.len() + 32);
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(etype.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    out.extend_from_slice(json);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

impl CacheEvent {
    pub fn new(
        etype: EventType,
        revision: i64,
        object: Arc<RawObject>,
        prev: Option<Arc<RawObject>>,
    ) -> Self {
        let frame = frame(etype.as_str(), object.json());
        CacheEvent {
            applied_at: Instant::now(),
            revision,
            etype,
            object,
            prev,
            frame,
            as_added: OnceLock::new(),
            as_deleted: OnceLock::new(),
        }
    }

    /// The frame as built for unfiltered watchers.
    pub fn frame(&self) -> &Bytes {
        &self.frame
    }

    /// The frame a watcher with `filter` must see, or None if the event is not for it.
    pub fn frame_for(&self, filter: &Filter) -> Option<Bytes> {
        if filter.is_everything() {
            return Some(self.frame.clone());
        }
        let now = filter.matches(&self.object);
        match self.etype {
            EventType::Added | EventType::Deleted => now.then(|| self.frame.clone()),
            EventType::Modified => {
                let before = self.prev.as_ref().is_some_and(|p| filter.matches(p));
                match (before, now) {
                    (true, true) => Some(self.frame.clone()),
                    (false, true) => Some(
                        self.as_added
                            .get_or_init(|| frame("ADDED", self.object.json()))
                            .clone(),
                    ),
                    (true, false) => Some(self.as_deleted_frame(filter)),
                    (false, false) => None,
                }
            }
        }
    }

    fn as_deleted_frame(&self, filter: &Filter) -> Bytes {
        self.as_deleted
            .get_or_init(|| {
                let prev = self.prev.as_ref().expect("modified event has prev");
                match prev.with_revision(filter.res, self.revision) {
                    Ok(o) => frame("DELETED", o.json()),
                    Err(_) => frame("DELETED", prev.json()),
                }
            })
            .clone()
    }
}
