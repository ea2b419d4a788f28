//! get and list, served from the watch cache per the resourceVersion rules (API-SEMANTICS §2),
//! or from the store when the cache cannot answer.

use super::list_body::ListBody;
use super::{cache_not_ready, object_response, parse_rv, store_error, Api, Format, Resp, Wire};
use crate::api::catalogue::ResourceInfo;
use crate::api::continue_token;
use crate::api::request::{Query, ResourcePath};
use crate::api::selectors::field::FieldSelector;
use crate::api::selectors::label::LabelSelector;
use crate::api::status::ApiError;
use crate::api::table::{self, MetaTarget};
use crate::cache::filter::Filter;
use crate::cache::Snapshot;
use crate::object::raw::RawObject;
use crate::storage::{prefix_end, StoreError};
use bytes::Bytes;
use http::{HeaderValue, Response};
use http_body_util::BodyExt;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

/// How long a read waits for the cache to reach a requested revision (kube-apiserver: 3 s).
pub const BLOCK_TIMEOUT: Duration = Duration::from_secs(3);

pub async fn get(
    api: &Api,
    path: &ResourcePath,
    q: &Query,
    format: Format,
) -> Result<Resp, ApiError> {
    let res = path.res;
    let name = path.name.as_deref().unwrap_or_default();
    let key = api.key(res, path.namespace.as_deref(), name);
    let cache = api.caches.get(res);
    let from_cache = match q.resource_version.as_deref() {
        None | Some("") => false,
        Some(rv) => {
            let rv = parse_rv(rv)?;
            if rv > 0 && !cache.wait_for(rv, BLOCK_TIMEOUT).await {
                return Err(ApiError::too_large_resource_version(rv, cache.revision()));
            }
            cache.is_ready()
        }
    };
    let obj = if from_cache {
        cache.get(&key)
    } else {
        let (kv, _) = api
            .store
            .get(&key)
            .await
            .map_err(|e| store_error(e, res, "get"))?;
        match kv {
            Some(kv) => Some(Arc::new(
                RawObject::from_kv(res, &kv).map_err(ApiError::internal)?,
            )),
            None => None,
        }
    };
    let obj = obj.ok_or_else(|| ApiError::not_found(res, name))?;
    Ok(object_response(200, format, obj.json().clone()))
}

/// Builds the filter of a list or watch from its namespace and selectors.
pub fn filter_for(
    res: &'static ResourceInfo,
    namespace: Option<&str>,
    q: &Query,
) -> Result<Filter, ApiError> {
    let labels = match q.label_selector.as_deref() {
        Some(s) if !s.trim().is_empty() => {
            LabelSelector::parse(s).map_err(ApiError::bad_request)?
        }
        _ => LabelSelector::default(),
    };
    let fields = match q.field_selector.as_deref() {
        Some(s) if !s.trim().is_empty() => {
            FieldSelector::parse(s).map_err(ApiError::bad_request)?
        }
        _ => FieldSelector::default(),
    };
    for f in fields.fields() {
        let ok = f == "metadata.name"
            || (f == "metadata.namespace" && res.namespaced)
            || res.field(f).is_some();
        if !ok {
            return Err(ApiError::bad_request(format!(
                "field label not supported: {f}"
            )));
        }
    }
    Ok(Filter::new(
        res,
        namespace.filter(|_| res.namespaced).map(str::to_string),
        labels,
        fields,
    ))
}

/// The list-options checks kube-apiserver answers with 422 (watches have their own rules).
pub fn validate_list_options(q: &Query, is_watch: bool) -> Result<(), ApiError> {
    let kind = "ListOptions";
    let forbidden = |field: &str, msg: &str| {
        ApiError::invalid_options(
            kind,
            field,
            "FieldValueForbidden",
            &format!("Forbidden: {msg}"),
        )
    };
    let rv = q.resource_version.as_deref().unwrap_or("");
    let rvm = q.resource_version_match.as_deref();
    if is_watch {
        if q.send_initial_events.is_some() && rvm != Some("NotOlderThan") {
            return Err(forbidden(
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        if let Some(m) = rvm {
            if q.send_initial_events.is_none() {
                return Err(forbidden("resourceVersionMatch", "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"));
            }
            if m != "NotOlderThan" {
                return Err(ApiError::invalid_options(
                    kind,
                    "resourceVersionMatch",
                    "FieldValueNotSupported",
                    &format!("Unsupported value: \"{m}\": supported values: \"NotOlderThan\""),
                ));
            }
        }
        return Ok(());
    }
    if let Some(m) = rvm {
        if rv.is_empty() {
            return Err(forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        if q.continue_token.is_some() {
            return Err(forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden when continue is provided",
            ));
        }
        if m != "Exact" && m != "NotOlderThan" {
            return Err(ApiError::invalid_options(
                kind,
                "resourceVersionMatch",
                "FieldValueNotSupported",
                &format!("Unsupported value: \"{m}\": supported values: \"Exact\", \"NotOlderThan\", \"\""),
            ));
        }
        if m == "Exact" && rv == "0" {
            return Err(forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
            ));
        }
    }
    if q.send_initial_events.is_some() {
        return Err(forbidden(
            "sendInitialEvents",
            "sendInitialEvents is forbidden for list",
        ));
    }
    Ok(())
}

/// One page of a list.
pub struct Page {
    pub items: Vec<Arc<RawObject>>,
    pub revision: i64,
    pub continue_token: Option<String>,
    pub remaining: Option<i64>,
}

pub async fn list(
    api: &Api,
    path: &ResourcePath,
    q: &Query,
    format: Format,
) -> Result<Resp, ApiError> {
    validate_list_options(q, false)?;
    let res = path.res;
    let filter = filter_for(res, path.namespace.as_deref(), q)?;
    let page = list_page(api, res, path.namespace.as_deref(), &filter, q).await?;
    if let Format::As(target, wire) = format {
        return as_list_response(res, &page, target, wire);
    }
    if format == Format::Json {
        let mut r = Response::new(ListBody::new(res, page).boxed());
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return Ok(r);
    }
    Ok(object_response(
        200,
        format,
        ListBody::new(res, page).collect(),
    ))
}

/// A page as a `Table` or `PartialObjectMetadataList`, built straight from the items' JSON.
fn as_list_response(
    res: &ResourceInfo,
    page: &Page,
    target: MetaTarget,
    wire: Wire,
) -> Result<Resp, ApiError> {
    let meta = table::ListMeta {
        resource_version: page.revision.to_string(),
        continue_token: page.continue_token.as_deref(),
        remaining: page.remaining,
    };
    let items = page.items.iter().map(|o| o.json().as_ref());
    let body = match target {
        MetaTarget::Table(opts) => {
            table::list_table(res.group, res.kind, items, &meta, opts, table::now_ms())
        }
        MetaTarget::PartialObjectMetadataList(version) => {
            table::partial_object_metadata_list(items, &meta, version)
        }
        MetaTarget::PartialObjectMetadata(_) => {
            return Err(ApiError::new(
                406,
                "NotAcceptable",
                table::partial_of_list_error(res.group, &res.list_kind()),
            ))
        }
    };
    Ok(object_response(200, wire.format(), body))
}

/// Chooses the source of a list (cache snapshot or store) and reads one page.
pub async fn list_page(
    api: &Api,
    res: &'static ResourceInfo,
    namespace: Option<&str>,
    filter: &Filter,
    q: &Query,
) -> Result<Page, ApiError> {
    let cache = api.caches.get(res);
    let prefix = api.list_prefix(res, namespace);
    let limit = q.limit.max(0);
    let rv_param = q.resource_version.as_deref().unwrap_or("");

    if let Some(token) = q.continue_token.as_deref() {
        if !rv_param.is_empty() && rv_param != "0" {
            return Err(ApiError::bad_request(
                "specifying resource version is not allowed when using continue",
            ));
        }
        let (rv, start_rel) = continue_token::decode(token).map_err(ApiError::bad_request)?;
        let start = format!("{prefix}{start_rel}");
        if rv <= 0 {
            // rv:-1 continues the list at the latest revision.
            return consistent_page(api, res, &prefix, Some(&start), filter, limit).await;
        }
        if let Some(snap) = cache.snapshot_at(rv) {
            return Ok(snapshot_page(
                &cache,
                &snap,
                &prefix,
                Some(&start),
                filter,
                limit,
            ));
        }
        return match store_page(api, res, &prefix, Some(&start), filter, limit, rv).await {
            Err(e) if e.code == 410 => Err(expired_continue(&prefix, &start_rel)),
            other => other,
        };
    }

    match rv_param {
        "" => consistent_page(api, res, &prefix, None, filter, limit).await,
        "0" => {
            if !cache.wait_ready(BLOCK_TIMEOUT).await {
                return Err(cache_not_ready());
            }
            // resourceVersion=0 ignores limit (kube-apiserver's computeListLimit).
            Ok(snapshot_page(
                &cache,
                &cache.snapshot(),
                &prefix,
                None,
                filter,
                0,
            ))
        }
        rv => {
            let rv = parse_rv(rv)?;
            let exact = match q.resource_version_match.as_deref() {
                Some("Exact") => true,
                Some(_) => false,
                None => limit > 0,
            };
            if exact {
                if let Some(snap) = cache.snapshot_at(rv) {
                    return Ok(snapshot_page(&cache, &snap, &prefix, None, filter, limit));
                }
                return store_page(api, res, &prefix, None, filter, limit, rv).await;
            }
            if !cache.wait_for(rv, BLOCK_TIMEOUT).await {
                return Err(ApiError::too_large_resource_version(rv, cache.revision()));
            }
            Ok(snapshot_page(
                &cache,
                &cache.snapshot(),
                &prefix,
                None,
                filter,
                limit,
            ))
        }
    }
}

fn expired_continue(prefix: &str, start_rel: &str) -> ApiError {
    let _ = prefix;
    let mut e = ApiError::gone(
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
    );
    e.continue_token = Some(continue_token::encode(-1, start_rel));
    e
}

/// A consistent read: the cache once it has caught up with the store's current revision,
/// otherwise the store itself at that revision.
async fn consistent_page(
    api: &Api,
    res: &'static ResourceInfo,
    prefix: &str,
    start: Option<&str>,
    filter: &Filter,
    limit: i64,
) -> Result<Page, ApiError> {
    let cache = api.caches.get(res);
    let current = api
        .store
        .current_revision()
        .await
        .map_err(|e| store_error(e, res, "list"))?;
    if cache.is_ready()
        && cache
            .ensure_fresh(current, BLOCK_TIMEOUT)
            .await
            .unwrap_or(false)
    {
        return Ok(snapshot_page(
            &cache,
            &cache.snapshot(),
            prefix,
            start,
            filter,
            limit,
        ));
    }
    store_page(api, res, prefix, start, filter, limit, current).await
}

pub fn snapshot_page(
    cache: &crate::cache::WatchCache,
    snap: &Snapshot,
    prefix: &str,
    start: Option<&str>,
    filter: &Filter,
    limit: i64,
) -> Page {
    let end = prefix_end(prefix);
    let lower = Bound::Included(start.unwrap_or(prefix));
    let mut items = Vec::new();
    let mut more = false;
    let mut last_key: Option<&str> = None;
    let mut iter = snap
        .objects
        .range((lower, Bound::Unbounded))
        .take_while(|(k, _)| k.as_bytes() < end.as_slice());
    for (k, obj) in iter.by_ref() {
        if !filter.matches(obj) {
            continue;
        }
        if limit > 0 && items.len() as i64 == limit {
            more = true;
            break;
        }
        last_key = Some(k);
        items.push(obj.clone());
    }
    let mut page = Page {
        items,
        revision: snap.revision,
        continue_token: None,
        remaining: None,
    };
    if more {
        let last = last_key.unwrap_or(prefix);
        page.continue_token = Some(continue_token::next_after(
            snap.revision,
            &last[prefix.len()..],
        ));
        if !filter.has_selectors() {
            // Without selectors every key counts: a page continuing where a previous one left
            // off knows its remainder from that page's, so only the first page walks the rest.
            let next = format!("{last}\0");
            let remaining = match start.and_then(|s| cache.remaining_hint(snap.revision, s)) {
                Some(before) => before - page.items.len() as i64,
                // The item that stopped the loop plus what follows it.
                None => 1 + iter.count() as i64,
            };
            cache.record_remaining(snap.revision, next, remaining);
            page.remaining = Some(remaining);
        }
        cache.retain_snapshot(snap);
    }
    page
}

async fn store_page(
    api: &Api,
    res: &'static ResourceInfo,
    prefix: &str,
    start: Option<&str>,
    filter: &Filter,
    limit: i64,
    revision: i64,
) -> Result<Page, ApiError> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = start.map(str::to_string);
    let mut read_rev = revision;
    let mut remaining = None;
    let mut continue_from: Option<String> = None;
    // With selectors, pages are read in growing chunks until `limit` items match.
    let mut chunk = if limit > 0 { limit } else { 10_000 };
    loop {
        let page = match api
            .store
            .range(prefix, cursor.as_deref(), chunk, read_rev)
            .await
        {
            Ok(p) => p,
            Err(StoreError::FutureRevision) => {
                let current = api.store.current_revision().await.unwrap_or(0);
                return Err(ApiError::too_large_resource_version(revision, current));
            }
            Err(e) => return Err(store_error(e, res, "list")),
        };
        read_rev = page.revision;
        let mut stopped_at: Option<usize> = None;
        for (i, kv) in page.kvs.iter().enumerate() {
            let obj = match RawObject::from_kv(res, kv) {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(error = %e, "skipping undecodable object");
                    continue;
                }
            };
            if !filter.matches(&obj) {
                continue;
            }
            if limit > 0 && items.len() as i64 == limit {
                stopped_at = Some(i);
                break;
            }
            items.push(Arc::new(obj));
        }
        let last_returned = items.last().map(|o| o.key().to_string());
        if let Some(i) = stopped_at {
            continue_from = last_returned;
            if !filter.has_selectors() {
                remaining = Some(page.count - i as i64);
            }
            break;
        }
        match (page.more, page.kvs.last()) {
            (true, Some(last)) => {
                if limit > 0 && items.len() as i64 == limit {
                    continue_from = last_returned;
                    if !filter.has_selectors() {
                        remaining = Some(page.count - page.kvs.len() as i64);
                    }
                    break;
                }
                cursor = Some(format!("{}\0", last.key));
                chunk = (chunk * 2).min(10_000);
            }
            _ => break,
        }
    }
    let continue_token =
        continue_from.map(|k| continue_token::next_after(read_rev, &k[prefix.len()..]));
    Ok(Page {
        items,
        revision: read_rev,
        continue_token,
        remaining,
    })
}

/// The whole list body in memory (see `ListBody` for the streamed form).
pub fn list_body(res: &ResourceInfo, page: &Page) -> Bytes {
    ListBody::new(
        res,
        Page {
            items: page.items.clone(),
            revision: page.revision,
            continue_token: page.continue_token.clone(),
            remaining: page.remaining,
        },
    )
    .collect()
}
