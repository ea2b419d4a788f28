//! kube-rs (kube 5, k8s-openapi 0.29) against kapi on etcd and on the embedded store.
//!
//! * Typed CRUD through `Api<Namespace>`, `Api<Deployment>`, `Api<Service>`, `Api<ConfigMap>`:
//!   label and field selectors, paging with `limit` + continue tokens, a stale `replace` (409
//!   Conflict as `kube::Error::Api`), merge and JSON patches, deletes, and namespace deletion
//!   emptying the namespace.
//! * Watching across `kapi.restart()`, two ways at once:
//!   (pods, whose delete answers carry the delete's resourceVersion, so every expected event RV
//!   is known exactly)
//!   - a plain reflector loop over `Api::watch(&WatchParams, rv)`: it keeps the last
//!     resourceVersion (objects and bookmarks) and re-watches from it whenever a stream ends or
//!     fails. It sees exact event types, so the test checks every ADDED/MODIFIED/DELETED in
//!     order, exactly once, and that no watch answered 410.
//!   - `kube::runtime::watcher` with its default `Config`, i.e. the `ListWatch` initial strategy
//!     (a paged list, then a watch with bookmarks from the list's RV). This is what kube-rs
//!     controllers run; the streaming-list strategy (`sendInitialEvents`) is exercised by raw
//!     requests in tests/watch.rs. The watcher must list once only: a second `Init` would mean
//!     a 410 forced a relist.

mod common;

use common::etcd::EtcdServer;
use common::kapi::{Kapi, RawClient};
use futures::{StreamExt, TryStreamExt};
use http::StatusCode;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service};
use kube::api::{
    Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc;

const NS: &str = "kr";

fn labels(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn configmap(name: &str, tier: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: labels(&[("tier", tier)]),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("k".to_string(), name.to_string())])),
        ..Default::default()
    }
}

fn names<K: ResourceExt>(items: &[K]) -> Vec<String> {
    items.iter().map(|o| o.name_any()).collect()
}

fn expect_api_error<T: std::fmt::Debug>(r: kube::Result<T>, code: u16, reason: &str) {
    match r {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, code, "{s:?}");
            assert_eq!(s.reason, reason, "{s:?}");
        }
        other => panic!("expected a {code} {reason} API error, got {other:?}"),
    }
}

async fn typed_crud(client: Client) {
    // Namespaces (cluster-scoped).
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns = nss
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(NS.into()),
                    labels: labels(&[("kapi-test", "kube-rs")]),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("create namespace");
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Active"));
    assert_eq!(
        ns.spec.unwrap().finalizers,
        Some(vec!["kubernetes".to_string()])
    );
    // kapi publishes kube-root-ca.crt into new namespaces, like kube-controller-manager.
    let cm_api: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while cm_api.get_opt("kube-root-ca.crt").await.unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "kube-root-ca.crt never appeared"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let got = nss.get(NS).await.unwrap();
    assert_eq!(got.metadata.uid, ns.metadata.uid);
    let list = nss
        .list(&ListParams::default().labels("kapi-test=kube-rs"))
        .await
        .unwrap();
    assert_eq!(names(&list.items), [NS]);
    let list = nss
        .list(&ListParams::default().fields("metadata.name=kube-system"))
        .await
        .unwrap();
    assert_eq!(names(&list.items), ["kube-system"]);
    expect_api_error(nss.get("missing").await, 404, "NotFound");

    // ConfigMaps: selectors and paging.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    for (i, tier) in ["a", "b", "a", "c", "a"].iter().enumerate() {
        cms.create(&PostParams::default(), &configmap(&format!("cm-{i}"), tier))
            .await
            .unwrap();
    }
    expect_api_error(
        cms.create(&PostParams::default(), &configmap("cm-0", "a"))
            .await,
        409,
        "AlreadyExists",
    );
    let list = cms
        .list(&ListParams::default().labels("tier=a"))
        .await
        .unwrap();
    assert_eq!(names(&list.items), ["cm-0", "cm-2", "cm-4"]);
    let list = cms
        .list(&ListParams::default().labels("tier in (b,c),tier!=c"))
        .await
        .unwrap();
    assert_eq!(names(&list.items), ["cm-1"]);
    let list = cms
        .list(
            &ListParams::default().fields(
                "metadata.name!=cm-0,metadata.name!=kube-root-ca.crt,metadata.namespace=kr",
            ),
        )
        .await
        .unwrap();
    assert_eq!(names(&list.items), ["cm-1", "cm-2", "cm-3", "cm-4"]);
    let list = cms
        .list(
            &ListParams::default()
                .labels("tier=a")
                .fields("metadata.name=cm-2"),
        )
        .await
        .unwrap();
    assert_eq!(names(&list.items), ["cm-2"]);
    // Paging: limit 2, following continue tokens, all pages at the first page's RV.
    let mut seen = Vec::new();
    let mut lp = ListParams::default().limit(2);
    let mut pages = 0;
    let mut page_rv = None;
    loop {
        let page = cms.list(&lp).await.unwrap();
        pages += 1;
        seen.extend(names(&page.items));
        let rv = page.metadata.resource_version.clone();
        assert_eq!(*page_rv.get_or_insert(rv.clone()), rv);
        match page.metadata.continue_.as_deref() {
            Some(token) if !token.is_empty() => {
                assert_eq!(
                    page.metadata.remaining_item_count,
                    Some(6 - seen.len() as i64)
                );
                lp = lp.continue_token(token);
            }
            _ => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        seen,
        ["cm-0", "cm-1", "cm-2", "cm-3", "cm-4", "kube-root-ca.crt"]
    );

    // replace: fresh RV succeeds, stale RV is a 409 Conflict.
    let original = cms.get("cm-0").await.unwrap();
    let mut next = original.clone();
    next.data = Some(BTreeMap::from([("k".to_string(), "v2".to_string())]));
    let replaced = cms
        .replace("cm-0", &PostParams::default(), &next)
        .await
        .unwrap();
    assert_ne!(replaced.resource_version(), original.resource_version());
    assert_eq!(replaced.metadata.uid, original.metadata.uid);
    let mut stale = original.clone();
    stale.data = Some(BTreeMap::from([("k".to_string(), "v3".to_string())]));
    expect_api_error(
        cms.replace("cm-0", &PostParams::default(), &stale).await,
        409,
        "Conflict",
    );
    assert_eq!(
        cms.get("cm-0").await.unwrap().data.unwrap()["k"],
        "v2",
        "the conflicting replace changed nothing"
    );

    // Deployments: create, get, merge and JSON patches.
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}}
    }))
    .unwrap();
    let created = deploys.create(&PostParams::default(), &d).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(created.metadata.namespace.as_deref(), Some(NS));
    let got = deploys.get("web").await.unwrap();
    assert_eq!(got.metadata.uid, created.metadata.uid);
    assert_eq!(got.spec.replicas, Some(2));
    let patched = deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"replicas": 4}, "metadata": {"labels": {"tier": "front"}}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(patched.spec.replicas, Some(4));
    assert_eq!(
        patched.metadata.generation,
        Some(2),
        "spec change bumps generation"
    );
    assert_eq!(patched.labels()["tier"], "front");
    let patched = deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::<()>::Json(
                serde_json::from_value(json!([
                    {"op": "test", "path": "/spec/replicas", "value": 4},
                    {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "nginx:1.28"},
                    {"op": "remove", "path": "/metadata/labels/tier"},
                ]))
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    let spec = &patched.spec;
    assert_eq!(
        spec.template.spec.as_ref().unwrap().containers[0]
            .image
            .as_deref(),
        Some("nginx:1.28")
    );
    assert!(!patched.labels().contains_key("tier"));
    assert_eq!(patched.metadata.generation, Some(3));
    // A failing JSON-patch `test` op changes nothing.
    let r = deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::<()>::Json(
                serde_json::from_value(json!([
                    {"op": "test", "path": "/spec/replicas", "value": 99},
                    {"op": "replace", "path": "/spec/replicas", "value": 1},
                ]))
                .unwrap(),
            ),
        )
        .await;
    assert!(matches!(r, Err(kube::Error::Api(_))), "{r:?}");
    assert_eq!(deploys.get("web").await.unwrap().spec.replicas, Some(4));

    // Services.
    let svcs: Api<Service> = Api::namespaced(client.clone(), NS);
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    }))
    .unwrap();
    svcs.create(&PostParams::default(), &svc).await.unwrap();
    let got = svcs.get("web").await.unwrap();
    let spec = got.spec.unwrap();
    assert_eq!(spec.ports.as_ref().unwrap()[0].port, 80);
    assert_eq!(spec.selector, labels(&[("app", "web")]));
    let list = svcs
        .list(
            &ListParams::default()
                .labels("app=web")
                .fields("metadata.name=web"),
        )
        .await
        .unwrap();
    assert_eq!(names(&list.items), ["web"]);
    let patched = svcs
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"note": "merged"}}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.annotations()["note"], "merged");

    // Deletes.
    let r = cms.delete("cm-1", &DeleteParams::default()).await.unwrap();
    assert!(r.is_right(), "configmaps answer with a Status");
    expect_api_error(cms.get("cm-1").await, 404, "NotFound");
    expect_api_error(
        cms.delete("cm-1", &DeleteParams::default()).await,
        404,
        "NotFound",
    );
    svcs.delete("web", &DeleteParams::default()).await.unwrap();

    // Deleting the namespace finalizes it: its configmaps and deployments go, then it does.
    let r = nss.delete(NS, &DeleteParams::default()).await.unwrap();
    let terminating = r.left().expect("namespace delete returns the namespace");
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(
        terminating.status.unwrap().phase.as_deref(),
        Some("Terminating")
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = cms.list(&ListParams::default()).await.unwrap().items.len()
            + deploys
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .len();
        let gone = matches!(nss.get(NS).await, Err(kube::Error::Api(s)) if s.code == 404);
        if left == 0 && gone {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "namespace {NS} not emptied and removed within 20 s ({left} objects left)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// (type, name, resourceVersion)
type Ev = (String, String, String);

/// A reflector loop over `Api::watch`: resumes from the last RV after every stream end or
/// failure; a 410 is reported as an `("GONE", …)` event (which fails the test). Also reports
/// each (re)watch as `("WATCH", cause, rv)`.
async fn reflector_loop(api: Api<Pod>, mut rv: String, tx: mpsc::UnboundedSender<Ev>) {
    let wp = WatchParams::default().timeout(3);
    let mut cause = "start".to_string();
    loop {
        let _ = tx.send(("WATCH".into(), cause.clone(), rv.clone()));
        let stream = match api.watch(&wp, &rv).await {
            Ok(s) => s,
            Err(e) => {
                cause = format!("watch failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let mut stream = stream.boxed();
        cause = "stream ended".into();
        loop {
            match stream.try_next().await {
                Ok(Some(ev)) => {
                    let (kind, obj) = match ev {
                        WatchEvent::Added(o) => ("ADDED", o),
                        WatchEvent::Modified(o) => ("MODIFIED", o),
                        WatchEvent::Deleted(o) => ("DELETED", o),
                        WatchEvent::Bookmark(b) => {
                            rv = b.metadata.resource_version;
                            continue;
                        }
                        WatchEvent::Error(s) if s.code == 410 => {
                            let _ = tx.send(("GONE".into(), s.message.clone(), rv.clone()));
                            return;
                        }
                        WatchEvent::Error(s) => {
                            cause = format!("ERROR event: {s:?}");
                            break;
                        }
                    };
                    rv = obj.resource_version().expect("event RV");
                    if tx.send((kind.into(), obj.name_any(), rv.clone())).is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    cause = format!("stream failed: {e}");
                    break;
                }
            }
        }
    }
}

/// What `kube::runtime::watcher` reported, in order: `Init`, `InitApply name`, `InitDone`,
/// `Apply name rv`, `Delete name rv`.
async fn runtime_watcher(api: Api<Pod>, tx: mpsc::UnboundedSender<String>) {
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(item) = stream.next().await {
        let line = match item {
            Ok(watcher::Event::Init) => "Init".to_string(),
            Ok(watcher::Event::InitApply(o)) => format!("InitApply {}", o.name_any()),
            Ok(watcher::Event::InitDone) => "InitDone".to_string(),
            Ok(watcher::Event::Apply(o)) => {
                format!("Apply {} {}", o.name_any(), o.resource_version().unwrap())
            }
            Ok(watcher::Event::Delete(o)) => {
                format!("Delete {} {}", o.name_any(), o.resource_version().unwrap())
            }
            Err(e) => {
                let s = e.to_string();
                if s.contains("410") || s.contains("Expired") {
                    format!("GONE {s}")
                } else {
                    continue; // connection errors while kapi restarts; the backoff retries
                }
            }
        };
        if tx.send(line).is_err() {
            return;
        }
    }
}

fn rv_of(v: &Value) -> String {
    v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn create(c: &RawClient, name: &str) -> Ev {
    let r = c
        .post_json(
            "/api/v1/namespaces/w/pods",
            &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    ("ADDED".into(), name.into(), rv_of(&r.json()))
}

async fn patch(c: &RawClient, name: &str, n: u32) -> Ev {
    let r = c
        .patch(
            &format!("/api/v1/namespaces/w/pods/{name}"),
            "application/merge-patch+json",
            &json!({"metadata": {"labels": {"n": n.to_string()}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    ("MODIFIED".into(), name.into(), rv_of(&r.json()))
}

async fn delete(c: &RawClient, name: &str) -> Ev {
    let r = c.delete(&format!("/api/v1/namespaces/w/pods/{name}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // Pods answer a delete with the deleted object at the delete's revision.
    ("DELETED".into(), name.into(), rv_of(&r.json()))
}

/// Collects reflector events until `n` object events arrived (bounded).
async fn collect(rx: &mut mpsc::UnboundedReceiver<Ev>, log: &mut Vec<Ev>, n: usize) {
    let objects = |log: &[Ev]| log.iter().filter(|e| e.0 != "WATCH").count();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while objects(log) < n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(ev)) => {
                assert_ne!(
                    ev.0, "GONE",
                    "410: a relist would be needed: {ev:?}\n{log:#?}"
                );
                log.push(ev);
            }
            _ => panic!("reflector saw {} of {n} events: {log:#?}", objects(log)),
        }
    }
}

async fn watch_across_restart(kapi: &mut Kapi) {
    let client = kapi.kube_client().await;
    let c = kapi.client();
    let r = c
        .post_json(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "w"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    create(&c, "pre").await;
    let api: Api<Pod> = Api::namespaced(client.clone(), "w");
    let start_rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();

    let (tx, mut rx) = mpsc::unbounded_channel();
    let reflector = tokio::spawn(reflector_loop(api.clone(), start_rv.clone(), tx));
    let (wtx, mut wrx) = mpsc::unbounded_channel();
    let runtime = tokio::spawn(runtime_watcher(api.clone(), wtx));
    // The runtime watcher's initial list: exactly the pre-existing object.
    let mut wlog = Vec::new();
    for _ in 0..3 {
        let line = tokio::time::timeout(Duration::from_secs(10), wrx.recv())
            .await
            .expect("watcher initial list")
            .unwrap();
        wlog.push(line);
    }
    assert_eq!(wlog, ["Init", "InitApply pre", "InitDone"]);

    let mut want = vec![
        create(&c, "a").await,
        patch(&c, "a", 1).await,
        create(&c, "b").await,
        patch(&c, "pre", 1).await,
        delete(&c, "a").await,
    ];
    const BEFORE_RESTART: usize = 5;
    assert_eq!(want.len(), BEFORE_RESTART);
    let mut log = Vec::new();
    collect(&mut rx, &mut log, want.len()).await;

    let pid = kapi.pid();
    tokio::task::block_in_place(|| kapi.restart());
    assert_ne!(pid, kapi.pid());
    let c = kapi.client();
    want.extend([
        patch(&c, "b", 2).await,
        create(&c, "c").await,
        delete(&c, "pre").await,
        delete(&c, "b").await,
        create(&c, "d").await,
    ]);
    collect(&mut rx, &mut log, want.len()).await;
    // Nothing more (no replays) within a short grace period.
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
        log.push(ev);
    }
    reflector.abort();

    let objects: Vec<Ev> = log.iter().filter(|e| e.0 != "WATCH").cloned().collect();
    assert_eq!(
        objects, want,
        "every event in order, exactly once: {log:#?}"
    );
    // Every re-watch resumed from the last RV seen, and one followed the restart (the watch
    // open at the restart died with the old process).
    let mut last = start_rv.clone();
    let mut seen = 0;
    let mut rewatched_across_restart = false;
    for e in &log {
        if e.0 == "WATCH" {
            assert_eq!(e.2, last, "resume point of {e:?}: {log:#?}");
            rewatched_across_restart |= seen == BEFORE_RESTART;
        } else {
            last = e.2.clone();
            seen += 1;
        }
    }
    assert!(rewatched_across_restart, "{log:#?}");

    // The runtime watcher saw the same changes as Apply/Delete, with no second Init.
    let want_w: Vec<String> = want
        .iter()
        .map(|(t, n, rv)| match t.as_str() {
            "DELETED" => format!("Delete {n} {rv}"),
            _ => format!("Apply {n} {rv}"),
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while wlog.len() < 3 + want_w.len() {
        match tokio::time::timeout_at(deadline, wrx.recv()).await {
            Ok(Some(line)) => {
                assert!(
                    !line.starts_with("GONE") && line != "Init",
                    "kube::runtime::watcher relisted: {line}\n{wlog:#?}"
                );
                wlog.push(line);
            }
            _ => panic!("runtime watcher log: {wlog:#?}\nwant: {want_w:#?}"),
        }
    }
    runtime.abort();
    assert_eq!(wlog[3..], want_w[..], "runtime watcher log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_typed_api_on_etcd() {
    let etcd = EtcdServer::start();
    let kapi = Kapi::on_etcd(&etcd);
    typed_crud(kapi.kube_client().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_typed_api_on_embedded_store() {
    let kapi = Kapi::embedded();
    typed_crud(kapi.kube_client().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_watch_across_restart_on_etcd() {
    let etcd = EtcdServer::start();
    let mut kapi = Kapi::on_etcd(&etcd);
    watch_across_restart(&mut kapi).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_watch_across_restart_on_embedded_store() {
    let mut kapi = Kapi::embedded();
    watch_across_restart(&mut kapi).await;
}
