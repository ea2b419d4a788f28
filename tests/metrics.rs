//! /metrics: kube-apiserver's series names, every dashboard query names a series kapi exports,
//! and a real Prometheus scrapes kapi over TLS.

mod common;

use common::etcd::free_port;
use common::kapi::Kapi;
use http::StatusCode;
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Generates enough traffic that every family has samples (watch counters flush every 64 frames).
async fn traffic(kapi: &Kapi) {
    let c = kapi.client();
    let r = c
        .post_json(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "m"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let mut w = c
        .watch("/api/v1/namespaces/m/configmaps?watch=1&resourceVersion=0")
        .await;
    for i in 0..130 {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("c{i}")}, "data": {"k": "v"}});
        assert_eq!(
            c.post_json("/api/v1/namespaces/m/configmaps", &cm)
                .await
                .status,
            StatusCode::CREATED
        );
    }
    for _ in 0..130 {
        w.next(Duration::from_secs(5)).await.expect("watch event");
    }
    drop(w);
    c.get("/api/v1/namespaces/m/configmaps?limit=10").await;
}

/// Metric names used by a PromQL expression (label matchers, ranges and `by (...)` removed).
fn metric_names(expr: &str) -> Vec<String> {
    let mut cleaned = String::new();
    let mut depth_brace = 0;
    let mut depth_bracket = 0;
    for ch in expr.chars() {
        match ch {
            '{' => depth_brace += 1,
            '}' => depth_brace -= 1,
            '[' => depth_bracket += 1,
            ']' => depth_bracket -= 1,
            _ if depth_brace > 0 || depth_bracket > 0 => {}
            c => cleaned.push(c),
        }
    }
    let mut out = Vec::new();
    let mut rest = cleaned.as_str();
    while let Some(i) = rest.find(" by (") {
        let end = rest[i..].find(')').map(|j| i + j + 1).unwrap_or(rest.len());
        out.extend(tokens(&rest[..i]));
        rest = &rest[end..];
    }
    out.extend(tokens(rest));
    out
}

fn tokens(s: &str) -> Vec<String> {
    s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| {
            t.contains('_')
                && t != &"histogram_quantile"
                && !t.chars().next().unwrap().is_ascii_digit()
        })
        .map(str::to_string)
        .collect()
}

fn exported(body: &str, name: &str) -> bool {
    body.lines().any(|l| {
        !l.starts_with('#')
            && (l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_have_apiserver_names_and_cover_the_dashboard() {
    let kapi = Kapi::embedded();
    traffic(&kapi).await;
    let r = kapi.client().get("/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    let body = r.text();
    for name in [
        "apiserver_request_total",
        "apiserver_request_duration_seconds_bucket",
        "apiserver_current_inflight_requests",
        "apiserver_registered_watchers",
        "apiserver_watch_events_total",
        "apiserver_watch_events_sizes_bucket",
        "apiserver_watch_cache_events_dispatched_total",
        "apiserver_watch_cache_resource_version",
        "apiserver_terminated_watchers_total",
        "apiserver_storage_objects",
        "apiserver_resource_objects",
        "etcd_request_duration_seconds_bucket",
        "kapi_watch_stalls_total",
        "kapi_watch_delivery_latency_seconds_bucket",
        "process_resident_memory_bytes",
    ] {
        assert!(exported(&body, name), "{name} missing from /metrics");
    }
    assert!(body.contains(r#"apiserver_request_total{verb="POST",dry_run="",group="",version="v1",resource="configmaps",subresource="",scope="namespace",component="apiserver",code="201"} 130"#), "{body}");

    let dash: serde_json::Value =
        serde_json::from_str(include_str!("../dashboards/kapi.json")).expect("dashboard JSON");
    let mut checked = 0;
    for panel in dash["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            let names = metric_names(expr);
            assert!(!names.is_empty(), "no metric in {expr}");
            for n in names {
                assert!(
                    exported(&body, &n),
                    "dashboard query `{expr}` uses {n}, which kapi does not export"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_kapi() {
    let kapi = Kapi::embedded();
    traffic(&kapi).await;
    let dir = tempfile::tempdir().unwrap();
    let config = include_str!("../dashboards/prometheus.yml")
        .replace("KAPI_DATA_DIR", &kapi.data_dir.display().to_string())
        .replace("127.0.0.1:6443", &format!("127.0.0.1:{}", kapi.port))
        .replace("scrape_interval: 5s", "scrape_interval: 1s");
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    let port = free_port();
    let mut prom = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus on PATH (Debian package `prometheus`)");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    let found = loop {
        if let Some(body) =
            common::etcd::http_get(addr, "/api/v1/query?query=apiserver_request_total")
        {
            last = body.clone();
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) {
                if v["data"]["result"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty())
                {
                    break v;
                }
            }
        }
        if std::time::Instant::now() > deadline {
            let _ = prom.kill();
            panic!("Prometheus never scraped apiserver_request_total: {last}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let _ = prom.kill();
    let _ = prom.wait();
    let results = found["data"]["result"].as_array().unwrap();
    assert!(results
        .iter()
        .any(|r| r["metric"]["resource"] == "configmaps" && r["metric"]["verb"] == "POST"));
}
