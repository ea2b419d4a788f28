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
    /// The JSON frame for unfiltered watchers, built when a watcher first needs it (events that
    /// no watcher sees, e.g. history loaded at start-up, never hold a copy of the object).
    frame: OnceLock<Bytes>,
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
        CacheEvent {
            applied_at: Instant::now(),
            revision,
            etype,
            object,
            prev,
            frame: OnceLock::new(),
            json: Frames::default(),
            proto: Frames::default(),
            left_object: OnceLock::new(),
        }
    }

    /// The JSON frame as built for unfiltered watchers.
    pub fn frame(&self) -> &Bytes {
        self.frame
            .get_or_init(|| frame(self.etype.as_str(), self.object.json()))
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
            return Some(self.frame().clone());
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

/// Where a watch stream is: the last revision it sent, and which events it sent at it.
///
/// One revision can carry several events (a multi-key etcd transaction), and a stream is fed by
/// sources that can overlap (ring replay, then its queue). It sends an event unless the event is
/// older than its revision or was sent already. Each event serializes a frame once and hands
/// every watcher the same bytes, so the frame's buffer identifies the event.
#[derive(Debug)]
pub struct StreamPosition {
    revision: i64,
    /// The last frame sent at `revision`; None while nothing was (the start revision, all of
    /// whose events the client has: it listed or watched up to there).
    last: Option<Bytes>,
    /// Frames sent at `revision` before `last`; only revisions with several events fill it.
    earlier: Vec<Bytes>,
}

impl StreamPosition {
    /// A stream that has every event up to and including `revision`.
    pub fn new(revision: i64) -> Self {
        StreamPosition {
            revision,
            last: None,
            earlier: Vec::new(),
        }
    }

    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// Whether to send `frame`, of an event at `revision`; if so, records it as sent.
    pub fn advance(&mut self, revision: i64, frame: &Bytes) -> bool {
        if revision > self.revision {
            self.revision = revision;
            self.last = Some(frame.clone());
            if !self.earlier.is_empty() {
                // Free what a large transaction left rather than keep its capacity.
                self.earlier = Vec::new();
            }
            return true;
        }
        if revision < self.revision {
            return false;
        }
        let Some(last) = &self.last else {
            return false;
        };
        if same_frame(last, frame) || self.earlier.iter().any(|f| same_frame(f, frame)) {
            return false;
        }
        self.earlier.extend(self.last.replace(frame.clone()));
        true
    }

    /// The revision after which a stream that lost queued events resumes from the ring: its
    /// own, or the one before if it sent events at it, since it may lack some of their siblings
    /// (`advance` drops the ones it sent).
    pub fn resume_after(&self) -> i64 {
        if self.last.is_some() {
            self.revision - 1
        } else {
            self.revision
        }
    }
}

fn same_frame(a: &Bytes, b: &Bytes) -> bool {
    a.as_ptr() == b.as_ptr() && a.len() == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_of(name: &str) -> Bytes {
        frame(
            "ADDED",
            format!(r#"{{"metadata":{{"name":"{name}"}}}}"#).as_bytes(),
        )
    }

    #[test]
    fn a_position_sends_each_event_of_a_revision_once() {
        let (a, b, c) = (frame_of("a"), frame_of("b"), frame_of("c"));
        let mut pos = StreamPosition::new(5);
        // Everything at the start revision is the client's already.
        assert!(!pos.advance(5, &a));
        assert!(!pos.advance(4, &a));
        assert_eq!(pos.resume_after(), 5);

        assert!(pos.advance(6, &a));
        assert!(!pos.advance(6, &a.clone()));
        assert!(pos.advance(6, &b));
        assert!(!pos.advance(6, &a));
        assert!(pos.advance(6, &c));
        assert!(!pos.advance(6, &b));
        assert!(!pos.advance(5, &frame_of("d")));
        assert_eq!((pos.revision(), pos.resume_after()), (6, 5));

        // Another event with the same bytes is another event (each event has its own frame).
        let mut pos = StreamPosition::new(0);
        assert!(pos.advance(1, &frame_of("a")));
        assert!(pos.advance(1, &frame_of("a")));
        assert!(pos.advance(2, &a));
        assert_eq!(pos.resume_after(), 1);
    }
}
