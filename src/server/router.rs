//! Routing: health, version, discovery, then resource requests; anything else is a plain 404.

use super::health;
use crate::api::discovery::{self, DiscoveryFormat};
use crate::api::handlers::{self, error_response, json_response, text_response, Api, Resp};
use crate::api::openapi;
use crate::api::request::{parse_resource_path, PathKind};
use crate::api::status::ApiError;
use crate::auth::authn::{ConnInfo, UserInfo};
use crate::auth::review;
use crate::object::codec::MAX_BODY_BYTES;
use bytes::Bytes;
use http::{HeaderValue, Method, Request};
use http_body_util::BodyExt;
use hyper::body::Incoming;

pub struct Router {
    pub api: std::sync::Arc<Api>,
    /// Authentication, impersonation and authorization, run before anything else.
    pub security: std::sync::Arc<crate::auth::Security>,
    /// host:port clients reach us at (for `/api`'s serverAddressByClientCIDRs).
    pub server_address: String,
}

impl Router {
    pub async fn route(&self, req: Request<Incoming>, conn: &ConnInfo) -> Resp {
        let (mut parts, body) = req.into_parts();
        let path = parts.uri.path().to_string();
        let query = parts.uri.query().map(str::to_string);
        let checked = self
            .security
            .check(
                &parts.method,
                &path,
                query.as_deref(),
                &mut parts.headers,
                conn,
            )
            .await;
        let mut resp = match checked {
            Ok(user) => {
                self.route_inner(Request::from_parts(parts, body), &user)
                    .await
            }
            Err(resp) => resp,
        };
        resp.headers_mut()
            .entry(http::header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-cache, private"));
        resp
    }

    async fn route_inner(&self, req: Request<Incoming>, user: &UserInfo) -> Resp {
        let path = req.uri().path().to_string();
        let query = req.uri().query().map(str::to_string);
        let method = req.method().clone();
        let is_get = method == Method::GET || method == Method::HEAD;
        if is_get && path.starts_with("/openapi/") {
            if let Some(resp) = openapi::serve(&path, query.as_deref(), req.headers()) {
                return resp;
            }
        }
        match path.trim_end_matches('/') {
            "/healthz" | "/livez" | "/readyz" => {
                return health::serve(&self.api, &path, query.as_deref()).await
            }
            p if p.starts_with("/healthz/")
                || p.starts_with("/livez/")
                || p.starts_with("/readyz/") =>
            {
                return health::serve(&self.api, p, query.as_deref()).await
            }
            "/version" if is_get => return json_response(200, discovery::version_info()),
            "/metrics" if is_get => {
                let mut r = json_response(200, crate::metrics::render());
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                return r;
            }
            "/api" if is_get => return self.discovery_root(&req, true),
            "/apis" if is_get => return self.discovery_root(&req, false),
            "/api/v1" if is_get => {
                return json_response(
                    200,
                    discovery::api_resource_list("", "v1").expect("core/v1 is served"),
                )
            }
            _ => {}
        }
        if is_get {
            let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
            match parts.as_slice() {
                ["apis", g] => {
                    if let Some(body) = discovery::api_group(g) {
                        return json_response(200, body);
                    }
                }
                ["apis", g, v] => {
                    if let Some(body) = discovery::api_resource_list(g, v) {
                        return json_response(200, body);
                    }
                }
                _ => {}
            }
        }
        if let Some(review) = review::match_path(&path) {
            let (res, namespace) = match review {
                Ok(r) => r,
                Err(e) => return error_response(&e),
            };
            let (parts, body) = req.into_parts();
            let body = match read_body(body).await {
                Ok(b) => b,
                Err(e) => return error_response(&e),
            };
            return review::serve(
                &self.security,
                user,
                &method,
                res,
                namespace,
                &parts.headers,
                &body,
            )
            .await;
        }
        let rp = match parse_resource_path(&path) {
            PathKind::Resource(rp) => rp,
            PathKind::UnknownResource => return error_response(&ApiError::resource_not_found()),
            PathKind::NotFound => return text_response(404, "404 page not found\n"),
        };
        let (parts, body) = req.into_parts();
        let body = match read_body(body).await {
            Ok(b) => b,
            Err(e) => return error_response(&e),
        };
        handlers::handle(
            &self.api,
            &method,
            rp,
            query.as_deref(),
            &parts.headers,
            body,
        )
        .await
    }

    fn discovery_root(&self, req: &Request<Incoming>, core: bool) -> Resp {
        let accept = req
            .headers()
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok());
        match discovery::negotiate(accept) {
            DiscoveryFormat::Aggregated => {
                let body = discovery::aggregated(core);
                let etag = discovery::aggregated_etag(&body);
                let not_modified = req
                    .headers()
                    .get(http::header::IF_NONE_MATCH)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v == etag);
                let mut resp = if not_modified {
                    json_response(304, Bytes::new())
                } else {
                    json_response(200, body)
                };
                let h = resp.headers_mut();
                h.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static(discovery::AGGREGATED_CONTENT_TYPE),
                );
                if let Ok(v) = HeaderValue::from_str(&etag) {
                    h.insert(http::header::ETAG, v);
                }
                h.insert(http::header::VARY, HeaderValue::from_static("Accept"));
                h.insert(
                    http::header::CACHE_CONTROL,
                    HeaderValue::from_static("public"),
                );
                resp
            }
            DiscoveryFormat::Legacy if core => {
                json_response(200, discovery::api_versions(&self.server_address))
            }
            DiscoveryFormat::Legacy => json_response(200, discovery::api_group_list()),
        }
    }
}

/// Reads a request body up to kube-apiserver's 3 MiB limit. An oversized body is drained (up to
/// a bound) before the 413 goes out, so the client reads the answer instead of a broken pipe.
async fn read_body(mut body: Incoming) -> Result<Bytes, ApiError> {
    const DRAIN_LIMIT: usize = 16 * MAX_BODY_BYTES;
    let mut buf = Vec::new();
    let mut seen = 0usize;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(f))) => f,
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(ApiError::bad_request(format!(
                    "error reading request body: {e}"
                )))
            }
            Err(_) => return Err(ApiError::bad_request("timed out reading the request body")),
        };
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen <= MAX_BODY_BYTES {
                buf.extend_from_slice(&data);
            } else if seen > DRAIN_LIMIT {
                break;
            }
        }
    }
    if seen > MAX_BODY_BYTES {
        return Err(ApiError::too_large_body(MAX_BODY_BYTES));
    }
    Ok(Bytes::from(buf))
}
