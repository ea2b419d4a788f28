//! A watch body whose events are converted for one watcher: `kubectl get -w` asks for Tables
//! (each event's object a one-row Table, column definitions only in the first), metadata
//! informers for `PartialObjectMetadata`. The wrapped body yields the shared JSON frames of the
//! cache; each is re-encoded here, so this costs per watcher and per event, unlike plain watches,
//! which stay zero-copy and never pass through this type.

use crate::api::table::{self, MetaTarget};
use crate::cache::event::{encode_frame, Encoding};
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

pub struct TransformBody<B> {
    inner: B,
    target: MetaTarget,
    /// The encoding of the frames sent (the wrapped body's are JSON).
    encoding: Encoding,
    /// A Table has been sent: later ones carry no column definitions.
    headers_sent: bool,
}

impl<B> TransformBody<B> {
    pub fn new(inner: B, target: MetaTarget, encoding: Encoding) -> Self {
        TransformBody {
            inner,
            target,
            encoding,
            headers_sent: false,
        }
    }

    /// Re-encodes every `{"type":…,"object":…}\n` event of a chunk.
    fn transform(&mut self, chunk: &[u8]) -> Bytes {
        let mut out = Vec::with_capacity(chunk.len() * 2);
        for line in chunk.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match split_event(line) {
                Some((etype, object)) => out.extend_from_slice(&self.event(&etype, object)),
                None => {
                    tracing::warn!("watch frame is not a JSON event; passing it through");
                    out.extend_from_slice(line);
                    out.push(b'\n');
                }
            }
        }
        Bytes::from(out)
    }

    fn event(&mut self, etype: &str, object: &[u8]) -> Bytes {
        // An ERROR event's Status passes through unchanged, as in kube-apiserver.
        let converted = match (etype, self.target) {
            ("ERROR", _) => None,
            (_, MetaTarget::Table(opts)) => {
                let headers = !self.headers_sent;
                self.headers_sent = true;
                match table::table_for_object(object, opts, headers, table::now_ms()) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot convert a watch event to a Table");
                        None
                    }
                }
            }
            (_, MetaTarget::PartialObjectMetadata(version)) => {
                Some(table::partial_object_metadata(object, version))
            }
            // kube-apiserver cannot make a list of one event's object and sends it as it is.
            (_, MetaTarget::PartialObjectMetadataList(_)) => None,
        };
        match &converted {
            Some(c) => encode_frame(etype, c, self.encoding),
            None => encode_frame(etype, object, self.encoding),
        }
    }
}

/// The type and object of a JSON watch frame line (without its newline).
fn split_event(line: &[u8]) -> Option<(String, &[u8])> {
    // The cache's frames are exactly `{"type":"<T>","object":<object>}`.
    if let Some(rest) = line.strip_prefix(b"{\"type\":\"") {
        let end = rest.iter().position(|b| *b == b'"')?;
        let object = rest[end..]
            .strip_prefix(b"\",\"object\":")
            .and_then(|o| o.strip_suffix(b"}"));
        if let Some(object) = object {
            return Some((String::from_utf8_lossy(&rest[..end]).into_owned(), object));
        }
    }
    None
}

impl<B> Body for TransformBody<B>
where
    B: Body<Data = Bytes, Error = Infallible> + Unpin,
{
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => Poll::Ready(Some(Ok(Frame::data(this.transform(&data))))),
                Err(other) => Poll::Ready(Some(Ok(other))),
            },
            other => Poll::Ready(other),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::table::{IncludeObject, MetaVersion, TableOptions};
    use crate::cache::event::frame;
    use http_body_util::{BodyExt, StreamBody};
    use serde_json::{json, Value};

    fn pod(name: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "resourceVersion": "4"}, "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Pending"}}))
        .unwrap()
    }

    async fn events(target: MetaTarget, frames: Vec<Bytes>) -> Vec<Value> {
        let stream = futures::stream::iter(
            frames
                .into_iter()
                .map(|f| Ok::<_, Infallible>(Frame::data(f))),
        );
        let body = TransformBody::new(StreamBody::new(stream), target, Encoding::Json);
        let bytes = body.collect().await.unwrap().to_bytes();
        bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn table_events_carry_columns_only_first() {
        let opts = TableOptions {
            version: MetaVersion::V1,
            include: IncludeObject::Metadata,
        };
        let status = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","code":410}"#;
        let got = events(
            MetaTarget::Table(opts),
            vec![
                frame("ADDED", &pod("a")),
                frame("MODIFIED", &pod("b")),
                frame("ERROR", status),
            ],
        )
        .await;
        assert_eq!(got.len(), 3);
        assert_eq!(got[0]["type"], "ADDED");
        assert_eq!(got[0]["object"]["kind"], "Table");
        assert_eq!(got[0]["object"]["columnDefinitions"][0]["name"], "Name");
        assert_eq!(got[0]["object"]["rows"][0]["cells"][0], "a");
        assert_eq!(got[1]["object"]["columnDefinitions"], Value::Null);
        assert_eq!(got[1]["object"]["rows"][0]["cells"][2], "Pending");
        assert_eq!(
            got[1]["object"]["rows"][0]["object"]["kind"],
            "PartialObjectMetadata"
        );
        assert_eq!(got[2]["object"]["kind"], "Status");
    }

    #[tokio::test]
    async fn metadata_events_and_chunks_of_several_events() {
        let mut chunk = frame("ADDED", &pod("a")).to_vec();
        chunk.extend_from_slice(&frame("DELETED", &pod("b")));
        let got = events(
            MetaTarget::PartialObjectMetadata(MetaVersion::V1),
            vec![Bytes::from(chunk)],
        )
        .await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[1]["type"], "DELETED");
        assert_eq!(
            got[1]["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                   "metadata": {"name": "b", "resourceVersion": "4"}})
        );
    }
}
