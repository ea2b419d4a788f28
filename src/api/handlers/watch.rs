//! watch: validates the request, registers a cache watcher and streams its frames.

use super::read::{filter_for, validate_list_options, BLOCK_TIMEOUT};
use super::{cache_not_ready, parse_rv, Api, Format, Resp, Wire};
use crate::api::request::{Query, ResourcePath};
use crate::api::selectors::field::FieldSelector;
use crate::api::status::ApiError;
use crate::api::table::MetaTarget;
use crate::cache::event::Encoding;
use crate::cache::WatchFrom;
use crate::storage::prefix_end;
use crate::watch::stream::{WatchBody, WatchOptions};
use crate::watch::transform::TransformBody;
use http::{HeaderValue, Response};
use http_body_util::BodyExt;
use rand::Rng;
use std::time::Duration;

pub async fn watch(
    api: &Api,
    path: &ResourcePath,
    q: &Query,
    format: Format,
) -> Result<Resp, ApiError> {
    let res = path.res;
    validate_list_options(q, true)?;
    let mut q = q.clone();
    // A watch on a named object is a watch with a metadata.name field selector.
    if let Some(name) = &path.name {
        let existing = q.field_selector.take().unwrap_or_default();
        if !existing.trim().is_empty() {
            let fs = FieldSelector::parse(&existing).map_err(ApiError::bad_request)?;
            if fs.exact("metadata.name").is_some_and(|n| n != name) {
                return Err(ApiError::bad_request(
                    "fieldSelector metadata.name doesn't match requested name",
                ));
            }
        }
        let name_sel = format!("metadata.name={name}");
        q.field_selector = Some(if existing.trim().is_empty() {
            name_sel
        } else {
            format!("{existing},{name_sel}")
        });
    }
    let filter = filter_for(res, path.namespace.as_deref(), &q)?;
    let cache = api.caches.get(res);
    let rv_param = q.resource_version.as_deref().unwrap_or("");
    let rv = parse_rv(rv_param)?;

    // WatchList defaulting (1.32/1.34+): rv "" or "0" without sendInitialEvents means
    // initial events; rv "" must first catch up with the store.
    let send_initial = match q.send_initial_events {
        Some(v) => v,
        None => rv_param.is_empty() || rv_param == "0",
    };
    let from = if send_initial {
        if rv_param.is_empty() {
            let current = api
                .store
                .current_revision()
                .await
                .map_err(|e| super::store_error(e, res, "watch"))?;
            if !cache.is_ready()
                || !cache
                    .ensure_fresh(current, BLOCK_TIMEOUT)
                    .await
                    .unwrap_or(false)
            {
                return Err(cache_not_ready());
            }
        } else if !cache.wait_ready(BLOCK_TIMEOUT).await {
            return Err(cache_not_ready());
        }
        if rv > 0 && !cache.wait_for(rv, BLOCK_TIMEOUT).await {
            return Err(ApiError::too_large_resource_version(rv, cache.revision()));
        }
        WatchFrom::InitialEvents
    } else if rv_param.is_empty() {
        // sendInitialEvents=false with rv "": start at the store's head.
        let current = api
            .store
            .current_revision()
            .await
            .map_err(|e| super::store_error(e, res, "watch"))?;
        cache.ensure_fresh(current, BLOCK_TIMEOUT).await.ok();
        WatchFrom::Revision(current)
    } else {
        if !cache.wait_ready(BLOCK_TIMEOUT).await {
            return Err(cache_not_ready());
        }
        WatchFrom::Revision(rv)
    };
    let timeout = match q.timeout_seconds {
        Some(t) => Duration::from_secs(t),
        None => {
            let t = api.min_request_timeout.max(1);
            Duration::from_secs(rand::thread_rng().gen_range(t..2 * t))
        }
    };
    let prefix = api.list_prefix(res, path.namespace.as_deref());
    let end = prefix_end(&prefix);
    let opts = WatchOptions {
        timeout,
        bookmarks: q.allow_watch_bookmarks,
        initial_events_end: send_initial,
    };
    let (encoding, transform) = watch_output(format);
    // A converting watcher takes the shared JSON frames and re-encodes them itself.
    let watcher_encoding = if transform.is_some() {
        Encoding::Json
    } else {
        encoding
    };
    let body = match cache.start_watch_as(filter, from, watcher_encoding) {
        Ok(start) => {
            let body = WatchBody::new(cache.clone(), start, (prefix, Some(end)), opts);
            match transform {
                Some(target) => TransformBody::new(body, target, encoding).boxed(),
                None => body.boxed(),
            }
        }
        // Too old: a 200 stream carrying one ERROR event (410 Expired).
        Err(e) => WatchBody::error_as(&e.to_json(), encoding).boxed(),
    };
    let mut resp = Response::new(body);
    let content_type = match encoding {
        Encoding::Json => "application/json",
        Encoding::Protobuf => "application/vnd.kubernetes.protobuf;stream=watch",
    };
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(resp)
}

/// The frame encoding of a watch (protobuf when negotiated, else JSON: there is no YAML watch),
/// and the conversion of its events if a `meta.k8s.io` kind was asked for. A
/// `PartialObjectMetadataList` watch gets the objects as they are (kube-apiserver cannot convert
/// one event's object to a list either).
fn watch_output(format: Format) -> (Encoding, Option<MetaTarget>) {
    let encoding = |wire: Wire| match wire {
        Wire::Protobuf => Encoding::Protobuf,
        Wire::Json | Wire::Yaml => Encoding::Json,
    };
    match format {
        Format::Protobuf => (Encoding::Protobuf, None),
        Format::Json | Format::Yaml => (Encoding::Json, None),
        Format::As(MetaTarget::PartialObjectMetadataList(_), wire) => (encoding(wire), None),
        Format::As(target, wire) => (encoding(wire), Some(target)),
    }
}
