//! Multi-key etcd transactions through the real binary: every put and delete of one transaction
//! shares one revision. kapi never writes such transactions, but other etcd writers do, and the
//! watch cache must apply and serve all of a revision's events: to an open watch (one event per
//! key, all with that resourceVersion), in cache and consistent lists, to a watch resumed from
//! the ring, and after a restart, both when the cache refills its history from etcd and when its
//! initial list already holds the transactions.

mod common;

use common::etcd::EtcdServer;
use common::kapi::{Kapi, RawClient, WatchReader};
use etcd_client::{Txn, TxnOp};
use http::StatusCode;
use serde_json::{json, Map, Value};
use std::time::Duration;

const NS: &str = "txn";
const LABELS: &str = "labelSelector=test%3Dtxn";

fn key(name: &str) -> String {
    format!("/registry/configmaps/{NS}/{name}")
}

fn list_path(query: &str) -> String {
    format!("/api/v1/namespaces/{NS}/configmaps?{LABELS}{query}")
}

/// kapi's stored form of a ConfigMap: a template created through kapi, read back from etcd and
/// deleted again (the same way the load generator fills etcd directly).
async fn stored_template(c: &RawClient, etcd: &mut etcd_client::Client) -> Map<String, Value> {
    let r = c
        .post_json(
            &format!("/api/v1/namespaces/{NS}/configmaps"),
            &json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "template", "labels": {"test": "txn"}},
                    "data": {"k": "v"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let got = etcd.get(key("template"), None).await.unwrap();
    let stored = got.kvs().first().expect("the template is in etcd").value();
    let Ok(Value::Object(template)) = serde_json::from_slice(stored) else {
        panic!("kapi stores JSON: {}", String::from_utf8_lossy(stored));
    };
    let r = c
        .delete(&format!("/api/v1/namespaces/{NS}/configmaps/template"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    template
}

/// A uid of our own for object `name` ("cm-a" .. "cm-d").
fn uid(name: &str) -> String {
    format!(
        "5a7e0c1d-7c2b-4f00-8a00-0000000000{:02x}",
        name.as_bytes()[3]
    )
}

/// The template as object `name` (its own uid) with `data`.
fn stored(template: &Map<String, Value>, name: &str, data: &str) -> Vec<u8> {
    let mut o = template.clone();
    let meta = o["metadata"].as_object_mut().unwrap();
    meta.insert("name".into(), json!(name));
    meta.insert("uid".into(), json!(uid(name)));
    o.insert("data".into(), json!({ "k": data }));
    serde_json::to_vec(&o).unwrap()
}

/// Runs `ops` as one etcd transaction; returns its revision.
async fn txn(etcd: &mut etcd_client::Client, ops: Vec<TxnOp>) -> i64 {
    let r = etcd.txn(Txn::new().and_then(ops)).await.unwrap();
    assert!(r.succeeded());
    r.header().unwrap().revision()
}

/// "TYPE name@resourceVersion" of the next `n` watch events.
async fn events(w: &mut WatchReader, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        let Some(ev) = w.next(Duration::from_secs(10)).await else {
            panic!("watch ended or timed out after {out:?}");
        };
        let meta = &ev["object"]["metadata"];
        out.push(format!(
            "{} {}@{}",
            ev["type"].as_str().unwrap(),
            meta["name"].as_str().unwrap(),
            meta["resourceVersion"].as_str().unwrap()
        ));
    }
    out
}

async fn assert_quiet(w: &mut WatchReader) {
    if let Some(ev) = w.next(Duration::from_millis(500)).await {
        panic!("unexpected watch event: {ev}");
    }
}

/// Names and data of the listed ConfigMaps, and the list's resourceVersion.
async fn list(c: &RawClient, query: &str) -> (Vec<String>, i64) {
    let r = c.get(&list_path(query)).await;
    assert_eq!(r.status, StatusCode::OK, "list {query}: {}", r.text());
    let v = r.json();
    let items = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            format!(
                "{}={}",
                o["metadata"]["name"].as_str().unwrap(),
                o["data"]["k"].as_str().unwrap()
            )
        })
        .collect();
    let rv = v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    (items, rv)
}

/// The cache list (rv=0), the consistent list and an exact list at `rev` all show `want`.
async fn assert_lists(c: &RawClient, rev: i64, want: &[&str]) {
    let (cached, _) = list(c, "&resourceVersion=0").await;
    assert_eq!(cached, want, "cache list (resourceVersion=0)");
    let (consistent, rv) = list(c, "").await;
    assert_eq!(consistent, want, "consistent list");
    assert!(rv >= rev, "consistent list at {rv}, before {rev}");
    let (exact, rv) = list(
        c,
        &format!("&resourceVersion={rev}&resourceVersionMatch=Exact"),
    )
    .await;
    assert_eq!(exact, want, "exact list at {rev}");
    assert_eq!(rv, rev);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_of_a_multi_key_transaction_is_served() {
    let etcd = EtcdServer::start();
    let mut kapi = Kapi::on_etcd(&etcd);
    let c = kapi.client();
    let r = c
        .post_json(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let mut ec = etcd_client::Client::connect(etcd.endpoints(), None)
        .await
        .unwrap();
    let template = stored_template(&c, &mut ec).await;

    let (before, rv0) = list(&c, "").await;
    assert!(before.is_empty(), "{before:?}");
    let mut w = c
        .watch(&list_path(&format!("&watch=true&resourceVersion={rv0}")))
        .await;

    // Three creates in one transaction.
    let puts = ["cm-a", "cm-b", "cm-c"]
        .iter()
        .map(|n| TxnOp::put(key(n), stored(&template, n, "1"), None))
        .collect();
    let r1 = txn(&mut ec, puts).await;
    assert_eq!(
        events(&mut w, 3).await,
        [
            format!("ADDED cm-a@{r1}"),
            format!("ADDED cm-b@{r1}"),
            format!("ADDED cm-c@{r1}")
        ]
    );
    assert_quiet(&mut w).await;
    assert_lists(&c, r1, &["cm-a=1", "cm-b=1", "cm-c=1"]).await;
    let r = c
        .get(&format!("/api/v1/namespaces/{NS}/configmaps/cm-b"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["metadata"]["uid"], uid("cm-b"));
    assert_eq!(r.json()["metadata"]["resourceVersion"], r1.to_string());

    // A delete, an update and a create in one transaction.
    let mixed = vec![
        TxnOp::delete(key("cm-a"), None),
        TxnOp::put(key("cm-b"), stored(&template, "cm-b", "2"), None),
        TxnOp::put(key("cm-d"), stored(&template, "cm-d", "2"), None),
    ];
    let r2 = txn(&mut ec, mixed).await;
    let second = [
        format!("DELETED cm-a@{r2}"),
        format!("MODIFIED cm-b@{r2}"),
        format!("ADDED cm-d@{r2}"),
    ];
    assert_eq!(events(&mut w, 3).await, second);
    assert_quiet(&mut w).await;
    let now = ["cm-b=2", "cm-c=1", "cm-d=2"];
    assert_lists(&c, r2, &now).await;

    // Resuming from the ring: from before a transaction, all of it; from its revision, none of
    // it (as kube's cacher, the client has everything at the revision it resumes from).
    let mut all = vec![
        format!("ADDED cm-a@{r1}"),
        format!("ADDED cm-b@{r1}"),
        format!("ADDED cm-c@{r1}"),
    ];
    all.extend(second.iter().cloned());
    let resume = |rv: i64| list_path(&format!("&watch=true&resourceVersion={rv}"));
    let mut from_before = c.watch(&resume(r1 - 1)).await;
    assert_eq!(events(&mut from_before, 6).await, all);
    let mut from_r1 = c.watch(&resume(r1)).await;
    assert_eq!(events(&mut from_r1, 3).await, second);
    let mut from_r2 = c.watch(&resume(r2)).await;
    assert_quiet(&mut from_r2).await;
    drop((w, from_before, from_r1, from_r2));

    // Restarted, the cache refills its history from etcd: both transactions replay through it.
    kapi.restart();
    let c = kapi.client();
    assert_lists(&c, r2, &now).await;
    let mut replayed = c.watch(&resume(r1 - 1)).await;
    assert_eq!(events(&mut replayed, 6).await, all);
    assert_quiet(&mut replayed).await;
    drop(replayed);
    drop(kapi);

    // With a short history, the initial list is taken after both transactions instead.
    for i in 0..20 {
        ec.put(format!("/unrelated/{i}"), "x", None).await.unwrap();
    }
    let kapi = Kapi::start(vec![
        format!("--etcd-servers={}", etcd.endpoint),
        "--watch-cache-history=16".into(),
    ]);
    let c = kapi.client();
    assert_lists(&c, r2, &now).await;
    // And history before it is gone (a 200 stream with one ERROR event, as kube).
    let mut old = c.watch(&resume(r1 - 1)).await;
    let ev = old
        .next(Duration::from_secs(5))
        .await
        .expect("an ERROR event");
    assert_eq!(ev["type"], "ERROR", "{ev}");
    assert_eq!(ev["object"]["code"], 410, "{ev}");
}
