//! Watch behaviour through the real binary: one store watch per prefix whatever the number of
//! HTTP watchers, ordering and exactly-once delivery, resume and 410, bookmarks, selector
//! transitions, timeouts, and HTTP/1.0, HTTP/1.1 and HTTP/2 framing.

mod common;

use common::etcd::EtcdServer;
use common::kapi::{Kapi, RawClient};
use http::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn pod(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

async fn ensure_ns(c: &RawClient, ns: &str) {
    let r = c
        .post_json(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await;
    assert!(
        r.status == StatusCode::CREATED || r.status == StatusCode::CONFLICT,
        "{}",
        r.text()
    );
}

/// Sum of etcd's watcher gauge (all watchers on all streams).
async fn etcd_watchers(etcd: &EtcdServer) -> f64 {
    let body = etcd.metrics().expect("etcd metrics");
    body.lines()
        .filter(|l| l.starts_with("etcd_debugging_mvcc_watcher_total"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_watchers_share_one_etcd_watch() {
    let etcd = EtcdServer::start();
    let kapi = Kapi::on_etcd(&etcd);
    let c = kapi.client();
    ensure_ns(&c, "fan").await;
    // Let every cache open its watch, then count etcd watchers.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = etcd_watchers(&etcd).await;
    assert!(before >= 1.0, "kapi must hold etcd watches");

    let r = c.get("/api/v1/namespaces/fan/pods").await;
    let rv = r.json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    const WATCHERS: usize = 1000;
    const EVENTS: usize = 20;
    // HTTP/2 multiplexes the watchers over a few connections, like client-go does.
    let mut readers = Vec::new();
    for i in 0..WATCHERS {
        let path = if i % 2 == 0 {
            format!("/api/v1/namespaces/fan/pods?watch=1&resourceVersion={rv}")
        } else {
            format!("/api/v1/pods?watch=true&resourceVersion={rv}")
        };
        readers.push(c.watch(&path).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = etcd_watchers(&etcd).await;
    assert_eq!(before, during, "HTTP watchers must not open etcd watches");

    for i in 0..EVENTS {
        let r = c
            .post_json(
                "/api/v1/namespaces/fan/pods",
                &pod(&format!("p{i}"), json!({})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let mut handles = Vec::new();
    for mut reader in readers {
        handles.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while got.len() < EVENTS {
                let ev = reader
                    .next(Duration::from_secs(30))
                    .await
                    .expect("event before timeout");
                assert_eq!(ev["type"], "ADDED");
                got.push((
                    ev["object"]["metadata"]["name"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                    ev["object"]["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap()
                        .parse::<u64>()
                        .unwrap(),
                ));
            }
            got
        }));
    }
    for h in handles {
        let got = h.await.unwrap();
        let names: Vec<String> = got.iter().map(|(n, _)| n.clone()).collect();
        let want: Vec<String> = (0..EVENTS).map(|i| format!("p{i}")).collect();
        assert_eq!(names, want, "every event, in order, exactly once");
        assert!(got.windows(2).all(|w| w[0].1 < w[1].1), "revision order");
    }
    assert_eq!(etcd_watchers(&etcd).await, before);
}

async fn watch_semantics(kapi: &Kapi) {
    let c = kapi.client();
    ensure_ns(&c, "w").await;
    let r = c
        .post_json("/api/v1/namespaces/w/pods", &pod("a", json!({"app": "x"})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let rv_a: u64 = r.json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // rv=0: synthetic ADDED for the current state, then live events.
    let mut w0 = c
        .watch("/api/v1/namespaces/w/pods?watch=1&resourceVersion=0")
        .await;
    let ev = w0.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        (
            ev["type"].as_str(),
            ev["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("a"))
    );
    assert_eq!(ev["object"]["kind"], "Pod");

    // sendInitialEvents + bookmarks: the initial-events-end bookmark.
    let mut wl = c.watch("/api/v1/namespaces/w/pods?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&resourceVersion=").await;
    let ev = wl.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(ev["type"], "ADDED");
    let ev = wl.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(ev["type"], "BOOKMARK");
    assert_eq!(
        ev["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert!(
        ev["object"]["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= rv_a
    );

    // Selector transitions: leaving the selector is a DELETED with the old object.
    let mut sel = c
        .watch(&format!(
            "/api/v1/namespaces/w/pods?watch=1&labelSelector=app%3Dx&resourceVersion={rv_a}"
        ))
        .await;
    let r = c
        .patch(
            "/api/v1/namespaces/w/pods/a",
            "application/merge-patch+json",
            &json!({"metadata": {"labels": {"app": "y"}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let rv_mod = r.json()["metadata"]["resourceVersion"].clone();
    let ev = sel.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(ev["type"], "DELETED");
    assert_eq!(
        ev["object"]["metadata"]["labels"]["app"], "x",
        "the old object"
    );
    assert_eq!(
        ev["object"]["metadata"]["resourceVersion"], rv_mod,
        "at the event's RV"
    );
    let r = c
        .patch(
            "/api/v1/namespaces/w/pods/a",
            "application/merge-patch+json",
            &json!({"metadata": {"labels": {"app": "x"}}}),
        )
        .await;
    let ev = sel.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(ev["type"], "ADDED", "entering the selector");
    assert_eq!(
        ev["object"]["metadata"]["resourceVersion"],
        r.json()["metadata"]["resourceVersion"]
    );

    // The rv=0 watcher saw both modifications, then a delete.
    let r = c.delete("/api/v1/namespaces/w/pods/a").await;
    let del_rv = r.json()["metadata"]["resourceVersion"].clone();
    for want in ["MODIFIED", "MODIFIED", "DELETED"] {
        let ev = w0.next(Duration::from_secs(5)).await.unwrap();
        assert_eq!(ev["type"], want);
        if want == "DELETED" {
            assert_eq!(
                ev["object"]["metadata"]["resourceVersion"], del_rv,
                "DELETED carries the delete revision"
            );
        }
    }

    // Resume from an RV inside the ring replays what followed it.
    let mut resumed = c
        .watch(&format!(
            "/api/v1/namespaces/w/pods?watch=1&resourceVersion={rv_a}"
        ))
        .await;
    let types: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(
                resumed.next(Duration::from_secs(5)).await.unwrap()["type"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        v
    };
    assert_eq!(types, vec!["MODIFIED", "MODIFIED", "DELETED"]);

    // timeoutSeconds ends the stream without an ERROR.
    let mut short = c
        .watch("/api/v1/namespaces/w/pods?watch=1&timeoutSeconds=1&resourceVersion=0")
        .await;
    let started = std::time::Instant::now();
    assert!(short.next(Duration::from_secs(5)).await.is_none());
    assert!(started.elapsed() < Duration::from_secs(4));

    // Too old: a 200 stream with one ERROR event (410 Expired). The ring holds 16 events here.
    for i in 0..40 {
        c.post_json("/api/v1/namespaces/w/configmaps", &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("c{i}")}})).await;
    }
    let mut old = c
        .watch(&format!(
            "/api/v1/namespaces/w/configmaps?watch=1&resourceVersion={rv_a}"
        ))
        .await;
    let ev = old.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(ev["type"], "ERROR");
    assert_eq!(ev["object"]["kind"], "Status");
    assert_eq!(ev["object"]["code"], 410);
    assert_eq!(ev["object"]["reason"], "Expired");
    assert!(ev["object"]["message"]
        .as_str()
        .unwrap()
        .starts_with("too old resource version"));
    assert!(
        old.next(Duration::from_secs(2)).await.is_none(),
        "the stream ends after ERROR"
    );

    // HTTP/2: the same events over h2 DATA frames.
    let h2 = RawClient::http2(&kapi.data_dir, kapi.port);
    let mut w2 = h2
        .watch("/api/v1/namespaces/w/configmaps?watch=1&resourceVersion=0")
        .await;
    for _ in 0..40 {
        assert_eq!(
            w2.next(Duration::from_secs(5)).await.unwrap()["type"],
            "ADDED"
        );
    }

    // HTTP/1.0: no chunking; the body is close-delimited.
    let mut tls = c.tls_stream().await;
    tls.write_all(b"GET /api/v1/namespaces/w/configmaps?watch=1&resourceVersion=0&timeoutSeconds=1 HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut raw))
        .await
        .expect("closed by server")
        .ok();
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("headers");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    // Every namespace also holds the kube-root-ca.crt ConfigMap kapi publishes.
    let ours = lines
        .iter()
        .filter(|l| l["object"]["metadata"]["name"] != "kube-root-ca.crt")
        .count();
    assert_eq!(ours, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_semantics_on_etcd() {
    let etcd = EtcdServer::start();
    let kapi = Kapi::start(vec![
        format!("--etcd-servers={}", etcd.endpoint),
        "--watch-cache-history=16".into(),
    ]);
    watch_semantics(&kapi).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_semantics_on_embedded_store() {
    let kapi = Kapi::start(vec!["--watch-cache-history=16".into()]);
    watch_semantics(&kapi).await;
}

/// Consistent reads stay correct on a quiet prefix while another is busy, including when the
/// quiet prefix's last change was a delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_list_on_quiet_prefix() {
    let etcd = EtcdServer::start();
    let kapi = Kapi::on_etcd(&etcd);
    let c = kapi.client();
    ensure_ns(&c, "q").await;
    let secret =
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "Opaque"});
    assert_eq!(
        c.post_json("/api/v1/namespaces/q/secrets", &secret)
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        c.delete("/api/v1/namespaces/q/secrets/s").await.status,
        StatusCode::OK
    );
    let busy = {
        let c = c.clone();
        tokio::spawn(async move {
            for i in 0..200 {
                c.post_json("/api/v1/namespaces/q/configmaps", &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("b{i}")}})).await;
            }
        })
    };
    for _ in 0..20 {
        let r = c.get("/api/v1/namespaces/q/secrets").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            r.json()["items"],
            json!([]),
            "deleted secret must not reappear"
        );
        let list_rv: u64 = r.json()["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let r2 = c.get("/api/v1/namespaces/q/configmaps").await;
        let rv2: u64 = r2.json()["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(rv2 >= list_rv, "consistent lists move forward");
        let started = std::time::Instant::now();
        assert_eq!(
            c.post_json("/api/v1/namespaces/q/secrets", &secret)
                .await
                .status,
            StatusCode::CREATED
        );
        let r = c.get("/api/v1/namespaces/q/secrets").await;
        assert_eq!(
            r.json()["items"].as_array().unwrap().len(),
            1,
            "a write is visible to the next consistent list"
        );
        assert_eq!(
            c.delete("/api/v1/namespaces/q/secrets/s").await.status,
            StatusCode::OK
        );
        assert!(started.elapsed() < Duration::from_secs(3));
    }
    busy.await.unwrap();
}
