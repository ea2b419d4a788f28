//! Routing: health, version, discovery, then resource requests; anything else is a plain 404.

use super::health;
use crate::api::discovery::{self, DiscoveryFormat};
use crate::api::handlers::{self, error_response, json_response, text_response, Api, Resp};
use crate::api::openapi;
use crate::api::request::{parse_resource_path, PathKind};
use crate::api::status::ApiError;
use crate::audit::{AuditRecord, AuditUser, RequestMeta};
use crate::auth::authn::{ConnInfo, UserInfo};
use crate::auth::review;
use crate::object::codec::MAX_BODY_BYTES;
use bytes::Bytes;
use futures::FutureExt;
use http::{HeaderValue, Method, Request};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::panic::AssertUnwindSafe;

pub struct Router {
    pub api: std::sync::Arc<Api>,
    /// Authentication, impersonation and authorization, run before anything else.
    pub security: std::sync::Arc<crate::auth::Security>,
    /// host:port clients reach us at (for `/api`'s serverAddressByClientCIDRs).
    pub server_address: String,
    /// Audit logging (`--audit-policy-file` with `--audit-log-path`), if enabled.
    pub audit: Option<crate::audit::Auditor>,
}

impl Router {
    pub async fn route(&self, req: Request<Incoming>, conn: &ConnInfo) -> Resp {
        let (mut parts, body) = req.into_parts();
        let path = parts.uri.path().to_string();
        let query = parts.uri.query().map(str::to_string);
        let audit_id = crate::audit::audit_id(&parts.headers);
        let remote = parts
            .extensions
            .get::<crate::audit::RemoteAddr>()
            .map(|r| r.0.ip());
        let audit_meta = |parts: &http::request::Parts, user: &UserInfo| {
            RequestMeta::new(
                &parts.method,
                &parts.uri,
                &parts.headers,
                remote,
                audit_id.clone(),
                AuditUser::from(user),
            )
        };
        let finish = |record: Option<AuditRecord>, resp: Resp| match record {
            Some(r) => r.finish(resp),
            None => resp,
        };
        // The security chain of `Security::check`, in its order (authenticate, impersonate,
        // authorize), with the audit record begun in between as kube-apiserver's `WithAudit`:
        // after authentication (so the event names the requester) and before impersonation.
        let security = &self.security;
        let mut resp = 'resp: {
            let requester = match security
                .authn
                .authenticate(&security.api, &mut parts.headers, conn)
                .await
            {
                Ok(u) => u,
                Err(_) => {
                    let record = self
                        .audit
                        .as_ref()
                        .and_then(|a| a.begin(audit_meta(&parts, &UserInfo::default())));
                    break 'resp finish(record, crate::auth::unauthorized());
                }
            };
            let mut record = self
                .audit
                .as_ref()
                .and_then(|a| a.begin(audit_meta(&parts, &requester)));
            let impersonating = parts.headers.contains_key("impersonate-user");
            let user = match crate::auth::impersonation::impersonate(
                &security.authz,
                requester,
                &mut parts.headers,
            ) {
                Ok(u) => u,
                Err(r) => break 'resp finish(record, *r),
            };
            if let (Some(r), true) = (record.as_mut(), impersonating) {
                r.set_impersonated_user(AuditUser::from(&user));
            }
            let mut attrs = crate::auth::authz::request_info::attributes(
                &parts.method,
                &path,
                query.as_deref(),
            );
            attrs.user = user;
            let (decision, reason) = security.authz.authorize(&attrs);
            let allowed = decision == crate::auth::authz::Decision::Allow;
            if let Some(r) = record.as_mut() {
                r.annotate(
                    "authorization.k8s.io/decision",
                    if allowed { "allow" } else { "forbid" },
                );
                r.annotate("authorization.k8s.io/reason", reason.clone());
            }
            if !allowed {
                tracing::debug!(
                    user = %attrs.user.name,
                    verb = %attrs.verb,
                    path,
                    reason = %reason,
                    "request forbidden"
                );
                break 'resp finish(
                    record,
                    crate::auth::authz::forbidden_response(&attrs, &reason),
                );
            }
            let user = attrs.user;
            let inner = AssertUnwindSafe(self.route_inner(
                Request::from_parts(parts, body),
                &user,
                record.as_mut(),
            ))
            .catch_unwind()
            .await;
            match inner {
                Ok(resp) => finish(record, resp),
                Err(panic) => {
                    if let Some(r) = record {
                        let msg = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        r.panicked(&msg);
                    }
                    std::panic::resume_unwind(panic)
                }
            }
        };
        crate::audit::set_audit_id_header(&mut resp, &audit_id);
        resp.headers_mut()
            .entry(http::header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-cache, private"));
        resp
    }

    async fn route_inner(
        &self,
        req: Request<Incoming>,
        user: &UserInfo,
        mut audit: Option<&mut AuditRecord>,
    ) -> Resp {
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
            if let Some(r) = audit.as_deref_mut() {
                r.set_request_body(&body);
            }
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
        if let Some(r) = audit {
            r.set_request_body(&body);
        }
        handlers::handle(
            &self.api,
            &method,
            rp,
            query.as_deref(),
            &parts.headers,
            body,
            user,
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
