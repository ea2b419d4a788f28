//! /healthz, /livez and /readyz with kube-apiserver's plain-text format (`?verbose`,
//! `?exclude=`, and `/<endpoint>/<check>` for one check).

use crate::api::handlers::{text_response, Api, Resp};
use http::{HeaderValue, Response, StatusCode};
use std::time::Duration;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

async fn run_check(api: &Api, name: &str) -> bool {
    match name {
        "ping" | "log" => true,
        "etcd" | "etcd-readiness" => {
            matches!(
                tokio::time::timeout(CHECK_TIMEOUT, api.store.current_revision()).await,
                Ok(Ok(_))
            )
        }
        "informer-sync" => api.caches.all().all(|c| c.is_ready()),
        "shutdown" => true,
        _ => false,
    }
}

fn checks_for(endpoint: &str) -> &'static [&'static str] {
    match endpoint {
        "livez" => &["ping", "log", "etcd"],
        "readyz" => &[
            "ping",
            "log",
            "etcd",
            "etcd-readiness",
            "informer-sync",
            "shutdown",
        ],
        _ => &["ping", "log", "etcd"],
    }
}

/// Serves `/healthz`, `/livez`, `/readyz` and their single-check sub-paths.
pub async fn serve(api: &Api, path: &str, query: Option<&str>) -> Resp {
    let mut parts = path.trim_matches('/').splitn(2, '/');
    let endpoint = parts.next().unwrap_or("healthz");
    let all = checks_for(endpoint);
    if let Some(single) = parts.next() {
        if !all.contains(&single) {
            return text_response(404, "404 page not found\n");
        }
        return if run_check(api, single).await {
            text_response(200, "ok")
        } else {
            plain(
                500,
                format!("internal server error: {single} check failed\n"),
            )
        };
    }
    let mut verbose = false;
    let mut excluded: Vec<String> = Vec::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*k {
            "verbose" => verbose = true,
            "exclude" => excluded.push(v.into_owned()),
            _ => {}
        }
    }
    let mut lines = String::new();
    let mut failed = false;
    for check in all {
        if excluded.iter().any(|e| e == check) {
            lines.push_str(&format!("[+]{check} excluded: ok\n"));
            continue;
        }
        if run_check(api, check).await {
            lines.push_str(&format!("[+]{check} ok\n"));
        } else {
            failed = true;
            lines.push_str(&format!("[-]{check} failed: reason withheld\n"));
        }
    }
    if failed {
        tracing::warn!(endpoint, "health check failed:\n{lines}");
        lines.push_str(&format!("{endpoint} check failed\n"));
        return plain(500, lines);
    }
    if verbose {
        lines.push_str(&format!("{endpoint} check passed\n"));
        plain(200, lines)
    } else {
        text_response(200, "ok")
    }
}

fn plain(code: u16, body: String) -> Resp {
    let mut r = Response::new(crate::api::handlers::full(body));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
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
