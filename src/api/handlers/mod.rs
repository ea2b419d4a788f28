//! The generic resource handler: one implementation of every verb, driven by `ResourceInfo`.

pub mod delete;
pub mod read;
pub mod subresources;
pub mod watch;
pub mod write;

use super::catalogue::ResourceInfo;
use super::request::{self, Query, ResourcePath, Verb};
use super::status::ApiError;
use crate::cache::Caches;
use crate::storage::{DynStore, StoreError};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::Notify;

pub type RespBody = BoxBody<Bytes, Infallible>;
pub type Resp = Response<RespBody>;

/// Everything a handler needs.
pub struct Api {
    pub store: DynStore,
    pub caches: Caches,
    /// `--etcd-prefix` without a trailing slash.
    pub etcd_prefix: String,
    /// Wakes the namespace finalizer when a namespace starts terminating.
    pub namespace_deleted: Arc<Notify>,
    /// `--min-request-timeout` in seconds (watch timeouts are random in [t, 2t)).
    pub min_request_timeout: u64,
}

impl Api {
    /// Key of an object: `<prefix>/<resourcePrefix>/[<ns>/]<name>`.
    pub fn key(&self, res: &ResourceInfo, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) if res.namespaced => format!(
                "{}/{}/{}/{}",
                self.etcd_prefix, res.storage_prefix, ns, name
            ),
            _ => format!("{}/{}/{}", self.etcd_prefix, res.storage_prefix, name),
        }
    }

    /// Key prefix of a list: the resource, or one namespace of it (always ends in `/`).
    pub fn list_prefix(&self, res: &ResourceInfo, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if res.namespaced => {
                format!("{}/{}/{}/", self.etcd_prefix, res.storage_prefix, ns)
            }
            _ => format!("{}/{}/", self.etcd_prefix, res.storage_prefix),
        }
    }
}

pub fn full(bytes: impl Into<Bytes>) -> RespBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn json_response(code: u16, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(full(body));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub fn error_response(e: &ApiError) -> Resp {
    let mut r = json_response(e.code, e.to_json());
    if e.details.retry_after_seconds > 0 {
        r.headers_mut().insert(
            http::header::RETRY_AFTER,
            HeaderValue::from(e.details.retry_after_seconds),
        );
    }
    r.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

pub fn text_response(code: u16, body: &'static str) -> Resp {
    let mut r = Response::new(full(body));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// The store error as the client sees it.
pub fn store_error(e: StoreError, res: &ResourceInfo, op: &str) -> ApiError {
    match e {
        StoreError::Compacted { .. } => {
            ApiError::gone("The resourceVersion for the provided list is too old.")
        }
        StoreError::Unavailable(msg) => {
            tracing::warn!(resource = res.plural, operation = op, error = %msg, "store unavailable");
            ApiError::server_timeout(op, res)
        }
        other => ApiError::internal(other),
    }
}

/// Parses a resourceVersion parameter (`""` and `"0"` both mean 0).
pub fn parse_rv(rv: &str) -> Result<i64, ApiError> {
    if rv.is_empty() {
        return Ok(0);
    }
    rv.parse::<u64>()
        .map(|v| v as i64)
        .map_err(|_| ApiError::new(400, "BadRequest", format!("invalid resource version: {rv}")))
}

/// Response format negotiated from Accept: JSON (the default) or YAML.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    Json,
    Yaml,
    /// `application/vnd.kubernetes.protobuf` (built-in kinds).
    Protobuf,
}

pub fn negotiate(headers: &HeaderMap) -> Result<Format, ApiError> {
    let Some(accept) = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(Format::Json);
    };
    if accept.trim().is_empty() {
        return Ok(Format::Json);
    }
    for part in accept.split(',') {
        let mut params = part.split(';');
        let mt = params.next().unwrap_or("").trim().to_ascii_lowercase();
        // Alternative representations (Table, PartialObjectMetadata) are not served yet.
        if params.any(|p| p.trim().starts_with("as=")) {
            continue;
        }
        match mt.as_str() {
            "application/json" | "*/*" | "application/*" => return Ok(Format::Json),
            "application/yaml" => return Ok(Format::Yaml),
            "application/vnd.kubernetes.protobuf" => return Ok(Format::Protobuf),
            _ => {}
        }
    }
    Err(ApiError::not_acceptable(&[
        "application/json",
        "application/yaml",
        "application/vnd.kubernetes.protobuf",
    ]))
}

/// Renders a JSON body in the negotiated format.
pub fn object_response(code: u16, format: Format, json: Bytes) -> Resp {
    match format {
        Format::Json => json_response(code, json),
        Format::Yaml => match serde_json::from_slice::<serde_json::Value>(&json)
            .ok()
            .and_then(|v| serde_norway::to_string(&v).ok())
        {
            Some(y) => {
                let mut r = json_response(code, y);
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/yaml"),
                );
                r
            }
            None => json_response(code, json),
        },
        Format::Protobuf => {
            let encoded = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&json)
                .map_err(|e| e.to_string())
                .and_then(|m| crate::object::protobuf::encode_object(&m));
            match encoded {
                Ok(pb) => {
                    let mut r = json_response(code, pb);
                    r.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        HeaderValue::from_static("application/vnd.kubernetes.protobuf"),
                    );
                    r
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot encode a response as protobuf; answering JSON");
                    json_response(code, json)
                }
            }
        }
    }
}

/// Serves one resource request.
pub async fn handle(
    api: &Api,
    method: &Method,
    path: ResourcePath,
    raw_query: Option<&str>,
    headers: &HeaderMap,
    body: Bytes,
) -> Resp {
    let started = std::time::Instant::now();
    let query = match Query::parse(raw_query) {
        Ok(q) => q,
        Err(e) => return error_response(&e),
    };
    let Some(verb) = request::verb(method, &path, &query) else {
        return error_response(&ApiError::route_method_not_allowed());
    };
    let labels = request_labels(verb, &path, &query, headers);
    let inflight = (verb != Verb::Watch).then(|| {
        let g = crate::metrics::inflight(!matches!(verb, Verb::Get | Verb::List));
        g.increment(1.0);
        g
    });
    let resp = match dispatch(api, verb, path, query, headers, body).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    if let Some(g) = inflight {
        g.decrement(1.0);
    }
    labels.finished(resp.status().as_u16(), started.elapsed().as_secs_f64());
    if verb == Verb::Watch && resp.status().is_success() {
        let gauge = labels.longrunning();
        return resp.map(|b| LongRunning::new(b, gauge).boxed());
    }
    resp
}

fn request_labels(verb: Verb, path: &ResourcePath, q: &Query, headers: &HeaderMap) -> crate::metrics::RequestLabels {
    let is_apply = verb == Verb::Patch
        && headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/apply-patch"));
    let verb = match verb {
        Verb::Get => "GET",
        Verb::List => "LIST",
        Verb::Watch => "WATCH",
        Verb::Create => "POST",
        Verb::Update => "PUT",
        Verb::Patch if is_apply => "APPLY",
        Verb::Patch => "PATCH",
        Verb::Delete => "DELETE",
        Verb::DeleteCollection => "DELETECOLLECTION",
    };
    let scope = if path.name.is_some() {
        "resource"
    } else if path.namespace.is_some() {
        "namespace"
    } else {
        "cluster"
    };
    crate::metrics::RequestLabels {
        verb,
        dry_run: q.is_dry_run(),
        group: path.res.group,
        version: path.res.version,
        resource: path.res.plural,
        subresource: path.subresource.clone().unwrap_or_default(),
        scope,
    }
}

/// A long-running response body that holds apiserver_longrunning_requests up while it lives.
struct LongRunning {
    inner: RespBody,
    gauge: metrics::Gauge,
}

impl LongRunning {
    fn new(inner: RespBody, gauge: metrics::Gauge) -> Self {
        gauge.increment(1.0);
        LongRunning { inner, gauge }
    }
}

impl Drop for LongRunning {
    fn drop(&mut self) {
        self.gauge.decrement(1.0);
    }
}

impl hyper::body::Body for LongRunning {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

async fn dispatch(
    api: &Api,
    verb: Verb,
    path: ResourcePath,
    query: Query,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Resp, ApiError> {
    if let Some(sub) = path.subresource.as_deref() {
        let Some(served) = path.res.subresource(sub) else {
            return Err(ApiError::resource_not_found());
        };
        let allowed = match verb {
            Verb::Get => served.verbs.contains(&"get"),
            Verb::Update => served.verbs.contains(&"update"),
            Verb::Patch => served.verbs.contains(&"patch"),
            Verb::Create => served.verbs.contains(&"create"),
            _ => false,
        };
        // POST to a named object's subresource arrives as "create" with a name.
        if !allowed {
            return Err(ApiError::route_method_not_allowed());
        }
        let format = negotiate(headers)?;
        match sub {
            "scale" => return subresources::scale(api, &path, verb, headers, body, format).await,
            "binding" => return subresources::binding(api, &path, headers, body).await,
            "eviction" => return subresources::eviction(api, &path, &query, body).await,
            "ephemeralcontainers" => {
                return subresources::ephemeral_containers(api, &path, verb, headers, body, format).await
            }
            _ => {}
        }
    }
    if !query.dry_run.is_empty() && query.dry_run.iter().any(|d| d != "All") {
        return Err(ApiError::invalid_dry_run(&query.dry_run));
    }
    let format = negotiate(headers)?;
    match verb {
        Verb::Get => read::get(api, &path, &query, format).await,
        Verb::List => read::list(api, &path, &query, format).await,
        Verb::Watch => watch::watch(api, &path, &query, headers).await,
        Verb::Create => write::create(api, &path, &query, headers, body, format).await,
        Verb::Update => write::update(api, &path, &query, headers, body, format).await,
        Verb::Patch => write::patch(api, &path, &query, headers, body, format).await,
        Verb::Delete => delete::delete(api, &path, &query, body, format).await,
        Verb::DeleteCollection => delete::delete_collection(api, &path, &query, body, format).await,
    }
}

/// 429 while a cache is (re)initialising (KEP-4568).
pub fn cache_not_ready() -> ApiError {
    ApiError::too_many_requests("storage is (re)initializing", 1)
}
