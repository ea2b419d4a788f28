//! watch: validates the request, registers a cache watcher and streams its frames.

use super::read::{filter_for, validate_list_options, BLOCK_TIMEOUT};
use super::{cache_not_ready, parse_rv, Api, Resp};
use crate::api::request::{Query, ResourcePath};
use crate::api::selectors::field::FieldSelector;
use crate::api::status::ApiError;
use crate::cache::event::Encoding;
use crate::cache::WatchFrom;
use crate::storage::prefix_end;
use crate::watch::stream::{WatchBody, WatchOptions};
use http::{HeaderMap, HeaderValue, Response};
use http_body_util::BodyExt;
use rand::Rng;
use std::time::Duration;

pub async fn watch(
    api: &Api,
    path: &ResourcePath,
    q: &Query,
    headers: &HeaderMap,
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
    let encoding = watch_encoding(headers);
    let body = match cache.start_watch_as(filter, from, encoding) {
        Ok(start) => WatchBody::new(cache.clone(), start, (prefix, Some(end)), opts).boxed(),
        // Too old: a 200 stream carrying one ERROR event (410 Expired).
        Err(e) => WatchBody::error_as(&e.to_json(), encoding).boxed(),
    };
    let mut resp = Response::new(body);
    let content_type = match encoding {
        Encoding::Json => "application/json",
        Encoding::Protobuf => "application/vnd.kubernetes.protobuf;stream=watch",
    };
    resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(resp)
}

/// Protobuf frames when the first usable Accept entry asks for protobuf, else JSON.
fn watch_encoding(headers: &HeaderMap) -> Encoding {
    let accept = headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    for part in accept.split(',') {
        let mut params = part.split(';');
        let mt = params.next().unwrap_or("").trim().to_ascii_lowercase();
        if params.any(|p| p.trim().starts_with("as=")) {
            continue;
        }
        match mt.as_str() {
            "application/vnd.kubernetes.protobuf" => return Encoding::Protobuf,
            "application/json" | "*/*" | "application/*" => return Encoding::Json,
            _ => {}
        }
    }
    Encoding::Json
}
