//! The generic resource handler: one implementation of every verb, driven by `ResourceInfo`.

pub mod delete;
pub mod list_body;
pub mod read;
pub mod subresources;
pub mod token_request;
pub mod watch;
pub mod write;

use super::catalogue::ResourceInfo;
use super::request::{self, Query, ResourcePath, Verb};
use super::status::ApiError;
use super::table::{self, IncludeObject, MetaTarget, MetaVersion, TableOptions};
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
    /// The admission chain (mutating, then validating) every write passes.
    pub admission: Arc<crate::admission::Chain>,
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
        // "Internal error occurred: <msg>", as kube-apiserver's storage InternalError.
        StoreError::Internal(msg) => ApiError::internal(msg),
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

/// Response format negotiated from Accept: JSON (the default), YAML, protobuf, or a
/// `meta.k8s.io` representation (`as=Table`, `as=PartialObjectMetadata[List]`) in one of them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    Json,
    Yaml,
    /// `application/vnd.kubernetes.protobuf` (built-in kinds).
    Protobuf,
    /// The response converted to a `meta.k8s.io` kind, then encoded as `Wire`.
    As(MetaTarget, Wire),
}

/// The encoding of a converted response.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Wire {
    Json,
    Yaml,
    Protobuf,
}

impl Wire {
    pub fn format(self) -> Format {
        match self {
            Wire::Json => Format::Json,
            Wire::Yaml => Format::Yaml,
            Wire::Protobuf => Format::Protobuf,
        }
    }
}

/// The first acceptable Accept entry (kube-apiserver's negotiation with its endpoint
/// restrictions): JSON, YAML or protobuf, optionally with `as=<Kind>;g=meta.k8s.io;v=<v1|v1beta1>`
/// for `Table` (JSON and YAML only) and `PartialObjectMetadata[List]`. Entries kapi cannot serve
/// are skipped; 406 only when none is left. Table options default (includeObject=Metadata);
/// [`negotiate_request`] reads them from the query.
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
        let (mut as_kind, mut group, mut version) = (None, None, None);
        for p in params {
            let Some((k, v)) = p.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches('"');
            match k.trim().to_ascii_lowercase().as_str() {
                "as" => as_kind = Some(v),
                "g" => group = Some(v),
                "v" => version = Some(v),
                _ => {}
            }
        }
        let wire = match mt.as_str() {
            "application/json" => Wire::Json,
            "application/yaml" => Wire::Yaml,
            "application/vnd.kubernetes.protobuf" => Wire::Protobuf,
            "*/*" | "application/*" if as_kind.is_none() => Wire::Json,
            _ => continue,
        };
        let Some(kind) = as_kind else {
            return Ok(wire.format());
        };
        let Some(version) = version
            .filter(|_| group == Some("meta.k8s.io"))
            .and_then(MetaVersion::parse)
        else {
            continue;
        };
        let target = match kind {
            "Table" if wire != Wire::Protobuf => MetaTarget::Table(TableOptions {
                version,
                include: IncludeObject::default(),
            }),
            "PartialObjectMetadata" => MetaTarget::PartialObjectMetadata(version),
            "PartialObjectMetadataList" => MetaTarget::PartialObjectMetadataList(version),
            _ => continue,
        };
        return Ok(Format::As(target, wire));
    }
    Err(ApiError::not_acceptable(&[
        "application/json",
        "application/yaml",
        "application/vnd.kubernetes.protobuf",
    ]))
}

/// [`negotiate`], with a Table's `includeObject` taken from the query (400 when invalid).
pub fn negotiate_request(headers: &HeaderMap, raw_query: Option<&str>) -> Result<Format, ApiError> {
    let mut format = negotiate(headers)?;
    if let Format::As(MetaTarget::Table(opts), _) = &mut format {
        let value = form_urlencoded::parse(raw_query.unwrap_or("").as_bytes())
            .filter(|(k, _)| k == "includeObject")
            .map(|(_, v)| v.into_owned())
            .last()
            .unwrap_or_default();
        opts.include = IncludeObject::parse(&value).ok_or_else(|| {
            ApiError::bad_request(format!(
                "Unable to convert to Table as requested: includeObject: Invalid value: {value:?}: must be 'Metadata', 'Object', 'None', or empty"
            ))
        })?;
    }
    Ok(format)
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
            let encoded =
                serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&json)
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
        Format::As(target, wire) => match table::convert(&json, target, table::now_ms()) {
            Ok(converted) => object_response(code, wire.format(), converted),
            Err(message) => error_response(&ApiError::new(406, "NotAcceptable", message)),
        },
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
    user: &crate::auth::authn::UserInfo,
) -> Resp {
    let started = std::time::Instant::now();
    let query = match Query::parse(raw_query) {
        Ok(mut q) => {
            q.user_agent = headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            q.requester = crate::admission::AdmissionUser::from(user);
            q
        }
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
    let resp = match dispatch(api, verb, path, query, raw_query, headers, body).await {
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

fn request_labels(
    verb: Verb,
    path: &ResourcePath,
    q: &Query,
    headers: &HeaderMap,
) -> crate::metrics::RequestLabels {
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
    raw_query: Option<&str>,
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
            "token" => return token_request::create(api, &path, headers, body, format).await,
            "ephemeralcontainers" => {
                return subresources::ephemeral_containers(api, &path, verb, headers, body, format)
                    .await
            }
            _ => {}
        }
    }
    if !query.dry_run.is_empty() && query.dry_run.iter().any(|d| d != "All") {
        return Err(ApiError::invalid_dry_run(&query.dry_run));
    }
    let format = negotiate_request(headers, raw_query)?;
    match verb {
        Verb::Get => read::get(api, &path, &query, format).await,
        Verb::List => read::list(api, &path, &query, format).await,
        Verb::Watch => watch::watch(api, &path, &query, format).await,
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

#[cfg(test)]
mod negotiation_tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    fn table(version: MetaVersion, include: IncludeObject) -> MetaTarget {
        MetaTarget::Table(TableOptions { version, include })
    }

    #[test]
    fn accept_entries_with_meta_kinds() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            negotiate(&accept(kubectl)).unwrap(),
            Format::As(table(MetaVersion::V1, IncludeObject::Metadata), Wire::Json)
        );
        assert_eq!(
            negotiate(&accept("application/json;as=Table;v=v1beta1;g=meta.k8s.io")).unwrap(),
            Format::As(
                table(MetaVersion::V1beta1, IncludeObject::Metadata),
                Wire::Json
            )
        );
        // The metadata client: protobuf first.
        let metadata = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
        assert_eq!(
            negotiate(&accept(metadata)).unwrap(),
            Format::As(
                MetaTarget::PartialObjectMetadataList(MetaVersion::V1),
                Wire::Protobuf
            )
        );
        assert_eq!(
            negotiate(&accept(
                "application/yaml;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
            ))
            .unwrap(),
            Format::As(
                MetaTarget::PartialObjectMetadata(MetaVersion::V1),
                Wire::Yaml
            )
        );
        // Skipped: Table in protobuf, other groups, versions or kinds; then plain JSON is left.
        for skipped in [
            "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io",
            "application/json;as=Table;v=v1;g=example.com",
            "application/json;as=Table;v=v2;g=meta.k8s.io",
            "application/json;as=Table;g=meta.k8s.io",
            "application/json;as=Widget;v=v1;g=meta.k8s.io",
            "*/*;as=Table;v=v1;g=meta.k8s.io",
        ] {
            assert_eq!(
                negotiate(&accept(&format!("{skipped},application/json"))).unwrap(),
                Format::Json
            );
            assert_eq!(
                negotiate(&accept(skipped)).unwrap_err().code,
                406,
                "{skipped}"
            );
        }
        assert_eq!(
            negotiate(&accept(
                "application/vnd.kubernetes.protobuf,application/json"
            ))
            .unwrap(),
            Format::Protobuf
        );
        assert_eq!(
            negotiate(&accept("application/json, */*")).unwrap(),
            Format::Json
        );
        assert_eq!(negotiate(&HeaderMap::new()).unwrap(), Format::Json);
    }

    #[test]
    fn include_object_from_the_query() {
        let h = accept("application/json;as=Table;v=v1;g=meta.k8s.io");
        for (q, include) in [
            (None, IncludeObject::Metadata),
            (Some("includeObject="), IncludeObject::Metadata),
            (
                Some("limit=500&includeObject=Object"),
                IncludeObject::Object,
            ),
            (Some("includeObject=None"), IncludeObject::None),
        ] {
            assert_eq!(
                negotiate_request(&h, q).unwrap(),
                Format::As(table(MetaVersion::V1, include), Wire::Json)
            );
        }
        let e = negotiate_request(&h, Some("includeObject=All")).unwrap_err();
        assert_eq!(e.code, 400);
        assert!(
            e.message.contains("includeObject: Invalid value: \"All\""),
            "{}",
            e.message
        );
        // Only Tables read it.
        assert_eq!(
            negotiate_request(&accept("application/json"), Some("includeObject=All")).unwrap(),
            Format::Json
        );
    }
}
