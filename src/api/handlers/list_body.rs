//! A JSON list response written item by item.
//!
//! The items are the cache's own serialized objects (shared, not copied per request); the body
//! copies them into chunks of at most `CHUNK` bytes as the connection asks for them, so a list of
//! 100k objects costs one chunk of extra memory rather than a second copy of the whole list. The
//! exact length is known up front, so clients still get a Content-Length.

use super::read::Page;
use crate::api::catalogue::ResourceInfo;
use bytes::{BufMut, Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Bytes gathered per body frame.
const CHUNK: usize = 64 * 1024;

pub struct ListBody {
    head: Option<Bytes>,
    page: Page,
    next: usize,
    done: bool,
    remaining_len: u64,
}

impl ListBody {
    /// `{"kind":"<Kind>List","apiVersion":...,"metadata":{...},"items":[...]}`.
    pub fn new(res: &ResourceInfo, page: Page) -> Self {
        let mut head = Vec::with_capacity(256);
        head.extend_from_slice(b"{\"kind\":\"");
        head.extend_from_slice(res.list_kind().as_bytes());
        head.extend_from_slice(b"\",\"apiVersion\":\"");
        head.extend_from_slice(res.api_version().as_bytes());
        head.extend_from_slice(b"\",\"metadata\":{\"resourceVersion\":\"");
        head.extend_from_slice(page.revision.to_string().as_bytes());
        head.push(b'"');
        if let Some(c) = &page.continue_token {
            head.extend_from_slice(b",\"continue\":");
            serde_json::to_writer(&mut head, c).expect("a string serializes");
        }
        if let Some(n) = page.remaining {
            head.extend_from_slice(format!(",\"remainingItemCount\":{n}").as_bytes());
        }
        head.extend_from_slice(b"},\"items\":[");
        let items: usize = page
            .items
            .iter()
            .map(|o| {
                let (open, rest) = o.encoded.item_parts();
                open.len() + rest.len()
            })
            .sum();
        let commas = page.items.len().saturating_sub(1);
        let remaining_len = (head.len() + items + commas + 2) as u64;
        ListBody {
            head: Some(Bytes::from(head)),
            page,
            next: 0,
            done: false,
            remaining_len,
        }
    }

    /// The next piece of the body: the head, then items gathered up to `CHUNK` bytes, then `]}`.
    fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(h) = self.head.take() {
            return Some(h);
        }
        if self.done {
            return None;
        }
        let items = &self.page.items;
        let mut out = BytesMut::new();
        while self.next < items.len() {
            let (open, rest) = items[self.next].encoded.item_parts();
            let len = open.len() + rest.len() + 1;
            if !out.is_empty() && out.len() + len > CHUNK {
                break;
            }
            if out.is_empty() {
                out.reserve(len.max(CHUNK.min(len * 4)));
            }
            if self.next > 0 {
                out.put_u8(b',');
            }
            out.put_slice(open);
            out.put_slice(&rest);
            self.next += 1;
        }
        if self.next == items.len() {
            out.put_slice(b"]}");
            self.done = true;
        }
        Some(out.freeze())
    }

    /// The whole body in one buffer (for callers that need it in memory, e.g. protobuf or YAML
    /// conversion).
    pub fn collect(mut self) -> Bytes {
        let mut out = Vec::with_capacity(self.remaining_len as usize);
        while let Some(c) = self.next_chunk() {
            out.extend_from_slice(&c);
        }
        Bytes::from(out)
    }
}

impl Body for ListBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        Poll::Ready(this.next_chunk().map(|c| {
            this.remaining_len -= c.len() as u64;
            Ok(Frame::data(c))
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::catalogue::lookup;
    use crate::object::raw::RawObject;
    use std::sync::Arc;

    fn page(n: usize, size: usize) -> (&'static ResourceInfo, Page) {
        let res = lookup("", "v1", "configmaps").unwrap();
        let items = (0..n)
            .map(|i| {
                let v = serde_json::json!({
                    "kind": "ConfigMap", "apiVersion": "v1",
                    "metadata": {"name": format!("cm-{i}"), "namespace": "ns"},
                    "data": {"k": "x".repeat(size)},
                });
                let key = format!("/registry/configmaps/ns/cm-{i}");
                Arc::new(RawObject::from_stored(res, &key, v.to_string().as_bytes(), 2, 3).unwrap())
            })
            .collect();
        let page = Page {
            items,
            revision: 9,
            continue_token: Some("tok".into()),
            remaining: Some(4),
        };
        (res, page)
    }

    #[test]
    fn streams_a_valid_list_with_its_exact_length() {
        for (n, size) in [(0, 10), (1, 10), (3, 10), (500, 1000), (3, 200_000)] {
            let (res, p) = page(n, size);
            let body = ListBody::new(res, p);
            let hinted = body.size_hint().exact().unwrap();
            let bytes = body.collect();
            assert_eq!(bytes.len() as u64, hinted, "n={n} size={size}");
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(v["kind"], "ConfigMapList");
            assert_eq!(v["metadata"]["resourceVersion"], "9");
            assert_eq!(v["metadata"]["continue"], "tok");
            assert_eq!(v["metadata"]["remainingItemCount"], 4);
            let items = v["items"].as_array().unwrap();
            assert_eq!(items.len(), n);
            if n > 0 {
                assert_eq!(items[n - 1]["metadata"]["name"], format!("cm-{}", n - 1));
                assert!(items[0].get("kind").is_none());
            }
        }
    }

    #[test]
    fn chunks_stay_small() {
        let (res, p) = page(500, 1000);
        let mut body = ListBody::new(res, p);
        let mut chunks = 0;
        while let Some(c) = body.next_chunk() {
            assert!(c.len() <= CHUNK + 2);
            chunks += 1;
        }
        assert!(chunks > 5);
    }
}
