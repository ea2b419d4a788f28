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

/// How a watcher wants its frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Encoding {
    /// `{"type":...,"object":...}\n`
    #[default]
    Json,
    /// 4-byte big-endian length + `WatchEvent` (API-SEMANTICS §3 "Protobuf framing").
    Protobuf,
}

/// Which variant of an event a watcher sees (selector transitions change the type).
#[derive(Clone, Copy)]
enum Variant {
    Plain,
    Added,
    Deleted,
}

#[derive(Debug, Default)]
struct Frames {
    plain: OnceLock<Option<Bytes>>,
    added: OnceLock<Option<Bytes>>,
    deleted: OnceLock<Option<Bytes>>,
}

impl Frames {
    fn slot(&self, v: Variant) -> &OnceLock<Option<Bytes>> {
        match v {
            Variant::Plain => &self.plain,
            Variant::Added => &self.added,
            Variant::Deleted => &self.deleted,
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
    /// The JSON frame for unfiltered watchers, built eagerly.
    frame: Bytes,
    /// Every other (encoding, variant) frame, built on first use and then shared.
    json: Frames,
    proto: Frames,
    /// The previous object served at this event's revision (a watcher whose selector it left
    /// gets it as DELETED).
    left_object: OnceLock<Bytes>,
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

/// A frame in `encoding` (protobuf falls back to JSON for objects it cannot encode).
pub fn encode_frame(etype: &str, json: &[u8], encoding: Encoding) -> Bytes {
    match encoding {
        Encoding::Json => frame(etype, json),
        Encoding::Protobuf => proto_frame(etype, json).unwrap_or_else(|| frame(etype, json)),
    }
}

/// A protobuf watch frame for a served JSON object.
pub fn proto_frame(etype: &str, json: &[u8]) -> Option<Bytes> {
    let obj: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(json).ok()?;
    match crate::object::protobuf::encode_object(&obj) {
        Ok(envelope) => Some(Bytes::from(crate::object::protobuf::encode_watch_frame(
            etype, &envelope,
        ))),
        Err(e) => {
            tracing::warn!(error = %e, "cannot encode a watch event as protobuf");
            None
        }
    }
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
            json: Frames::default(),
            proto: Frames::default(),
            left_object: OnceLock::new(),
        }
    }

    /// The JSON frame as built for unfiltered watchers.
    pub fn frame(&self) -> &Bytes {
        &self.frame
    }

    /// The JSON frame a watcher with `filter` must see, or None if the event is not for it.
    pub fn frame_for(&self, filter: &Filter) -> Option<Bytes> {
        self.frame_as(filter, Encoding::Json)
    }

    /// The frame in `encoding` a watcher with `filter` must see, or None.
    pub fn frame_as(&self, filter: &Filter, encoding: Encoding) -> Option<Bytes> {
        let variant = if filter.is_everything() {
            Variant::Plain
        } else {
            let now = filter.matches(&self.object);
            match self.etype {
                EventType::Added | EventType::Deleted if now => Variant::Plain,
                EventType::Added | EventType::Deleted => return None,
                EventType::Modified => {
                    let before = self.prev.as_ref().is_some_and(|p| filter.matches(p));
                    match (before, now) {
                        (true, true) => Variant::Plain,
                        (false, true) => Variant::Added,
                        (true, false) => Variant::Deleted,
                        (false, false) => return None,
                    }
                }
            }
        };
        if let (Encoding::Json, Variant::Plain) = (encoding, variant) {
            return Some(self.frame.clone());
        }
        let frames = match encoding {
            Encoding::Json => &self.json,
            Encoding::Protobuf => &self.proto,
        };
        frames
            .slot(variant)
            .get_or_init(|| self.build(encoding, variant, filter))
            .clone()
    }

    fn build(&self, encoding: Encoding, variant: Variant, filter: &Filter) -> Option<Bytes> {
        let (etype, json): (&str, &[u8]) = match variant {
            Variant::Plain => (self.etype.as_str(), self.object.json()),
            Variant::Added => ("ADDED", self.object.json()),
            Variant::Deleted => ("DELETED", self.left_object_json(filter)),
        };
        match encoding {
            Encoding::Json => Some(frame(etype, json)),
            Encoding::Protobuf => proto_frame(etype, json),
        }
    }

    fn left_object_json(&self, filter: &Filter) -> &[u8] {
        self.left_object.get_or_init(|| {
            let prev = self.prev.as_ref().expect("modified event has prev");
            match prev.with_revision(filter.res, self.revision) {
                Ok(o) => o.json().clone(),
                Err(_) => prev.json().clone(),
            }
        })
    }
}
