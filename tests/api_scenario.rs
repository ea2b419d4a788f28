//! The raw-HTTP scenario of the foundation issue, against kapi on etcd and on the embedded store:
//! CRUD, selectors, paging, optimistic concurrency, patches, namespace deletion, and the exact
//! `Status` bodies of errors (API-SEMANTICS §5).

mod common;

use common::etcd::EtcdServer;
use common::kapi::{Kapi, RawClient};
use http::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

fn cm(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})
}

async fn scenario(c: &RawClient) {
    // Namespace.
    let r = c
        .post_json(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let ns = r.json();
    assert_eq!(ns["status"]["phase"], "Active");
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    // kapi publishes the default ServiceAccount and kube-root-ca.crt into new namespaces.
    for path in [
        "/api/v1/namespaces/demo/serviceaccounts/default",
        "/api/v1/namespaces/demo/configmaps/kube-root-ca.crt",
    ] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while c.get(path).await.status != StatusCode::OK {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path} never appeared"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(ns["metadata"]["uid"].as_str().unwrap().len() == 36);
    assert!(
        ns["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
    let r = c
        .post_json(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(
        r.text(),
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"namespaces \"demo\" already exists","reason":"AlreadyExists","details":{"name":"demo","kind":"namespaces"},"code":409}"#
    );

    // Deployment, Service, ConfigMap.
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
    let r = c
        .post_json("/apis/apps/v1/namespaces/demo/deployments", &deploy)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let d = r.json();
    assert_eq!(d["metadata"]["generation"], 1);
    assert_eq!(d["metadata"]["namespace"], "demo");
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}}});
    let r = c.post_json("/api/v1/namespaces/demo/services", &svc).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = c
        .post_json(
            "/api/v1/namespaces/demo/configmaps",
            &cm("settings", json!({"tier": "a"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let created = r.json();

    // Get returns what create returned.
    let r = c.get("/apis/apps/v1/namespaces/demo/deployments/web").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), d);
    let r = c
        .get("/apis/apps/v1/namespaces/demo/deployments/nope")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.text(),
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"deployments.apps \"nope\" not found","reason":"NotFound","details":{"name":"nope","group":"apps","kind":"deployments"},"code":404}"#
    );

    // Label selectors.
    for (i, tier) in ["a", "b", "b", "c", "a"].iter().enumerate() {
        let r = c
            .post_json(
                "/api/v1/namespaces/demo/configmaps",
                &cm(
                    &format!("cm-{i}"),
                    json!({"tier": tier, "idx": i.to_string()}),
                ),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let r = c
        .get("/api/v1/namespaces/demo/configmaps?labelSelector=tier%3Da")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let list = r.json();
    assert_eq!(list["kind"], "ConfigMapList");
    assert_eq!(names(&list), vec!["cm-0", "cm-4", "settings"]);
    assert!(
        list["items"][0].get("kind").is_none(),
        "typed list items omit kind"
    );
    let r = c
        .get("/api/v1/namespaces/demo/configmaps?labelSelector=tier+in+(b,c),idx!=1")
        .await;
    assert_eq!(names(&r.json()), vec!["cm-2", "cm-3"]);
    let r = c.get("/api/v1/configmaps?labelSelector=!tier,idx").await;
    assert!(names(&r.json()).is_empty());

    // Field selectors, including a per-resource field.
    for (name, node) in [("p1", "n1"), ("p2", "n2"), ("p3", "n1")] {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}});
        let r = c.post_json("/api/v1/namespaces/demo/pods", &pod).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        assert_eq!(r.json()["status"]["phase"], "Pending");
    }
    let r = c.get("/api/v1/pods?fieldSelector=spec.nodeName%3Dn1").await;
    assert_eq!(names(&r.json()), vec!["p1", "p3"]);
    let r = c
        .get(
            "/api/v1/namespaces/demo/pods?fieldSelector=metadata.name!%3Dp1,status.phase%3DPending",
        )
        .await;
    assert_eq!(names(&r.json()), vec!["p2", "p3"]);
    let r = c.get("/api/v1/pods?fieldSelector=spec.bogus%3Dx").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["message"], "field label not supported: spec.bogus");

    // Paging with limit/continue, consistent and from the cache.
    let mut seen = Vec::new();
    let mut path = "/api/v1/namespaces/demo/configmaps?limit=2".to_string();
    let mut pages = 0;
    let mut first_rv = None;
    loop {
        let r = c.get(&path).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let page = r.json();
        pages += 1;
        let rv = page["metadata"]["resourceVersion"].clone();
        assert_eq!(
            *first_rv.get_or_insert(rv.clone()),
            rv,
            "all pages pinned to the first page's RV"
        );
        seen.extend(names(&page));
        match page["metadata"]["continue"].as_str() {
            Some(tok) => {
                let remaining = page["metadata"]["remainingItemCount"]
                    .as_i64()
                    .expect("remainingItemCount without selectors");
                assert_eq!(remaining as usize, 7 - seen.len());
                path = format!("/api/v1/namespaces/demo/configmaps?limit=2&continue={tok}");
            }
            None => break,
        }
    }
    assert_eq!(pages, 4);
    assert_eq!(
        seen,
        vec![
            "cm-0",
            "cm-1",
            "cm-2",
            "cm-3",
            "cm-4",
            "kube-root-ca.crt",
            "settings"
        ]
    );
    let r = c
        .get("/api/v1/namespaces/demo/configmaps?limit=2&continue=bm90LWpzb24")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid continue token"),
        "{}",
        r.text()
    );
    let r = c
        .get("/api/v1/namespaces/demo/configmaps?resourceVersion=0&limit=2")
        .await;
    assert_eq!(names(&r.json()).len(), 7, "resourceVersion=0 ignores limit");
    let r = c
        .get("/api/v1/namespaces/demo/configmaps?resourceVersionMatch=Exact")
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Optimistic concurrency: a stale resourceVersion is a 409.
    let mut stale = created.clone();
    stale["data"] = json!({"k": "v2"});
    let r = c
        .put_json("/api/v1/namespaces/demo/configmaps/settings", &stale)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let updated = r.json();
    assert_ne!(
        updated["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
    assert_eq!(updated["metadata"]["uid"], created["metadata"]["uid"]);
    assert_eq!(
        updated["metadata"]["creationTimestamp"],
        created["metadata"]["creationTimestamp"]
    );
    stale["data"] = json!({"k": "v3"});
    let r = c
        .put_json("/api/v1/namespaces/demo/configmaps/settings", &stale)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(
        r.text(),
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Operation cannot be fulfilled on configmaps \"settings\": the object has been modified; please apply your changes to the latest version and try again","reason":"Conflict","details":{"name":"settings","kind":"configmaps"},"code":409}"#
    );

    // Patches.
    let r = c
        .patch(
            "/api/v1/namespaces/demo/configmaps/settings",
            "application/merge-patch+json",
            &json!({"data": {"m": "1"}, "metadata": {"labels": {"patched": "yes"}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["data"], json!({"k": "v2", "m": "1"}));
    let r = c.patch("/api/v1/namespaces/demo/configmaps/settings", "application/json-patch+json", &json!([{"op": "replace", "path": "/data/k", "value": "jp"}, {"op": "remove", "path": "/data/m"}])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["data"], json!({"k": "jp"}));
    assert_eq!(r.json()["metadata"]["labels"]["patched"], "yes");
    let r = c
        .patch(
            "/api/v1/namespaces/demo/configmaps/settings",
            "application/merge-patch+json",
            &json!({"metadata": {"resourceVersion": "1"}, "data": {"x": "y"}}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::CONFLICT,
        "a stale RV in a patch is a precondition"
    );
    let r = c
        .patch(
            "/api/v1/namespaces/demo/configmaps/missing",
            "application/merge-patch+json",
            &json!({"data": {}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = c
        .patch(
            "/apis/apps/v1/namespaces/demo/deployments/web",
            "application/merge-patch+json",
            &json!({"spec": {"replicas": 3}}),
        )
        .await;
    assert_eq!(
        r.json()["metadata"]["generation"],
        2,
        "a spec change bumps generation"
    );
    let r = c
        .patch(
            "/apis/apps/v1/namespaces/demo/deployments/web",
            "application/merge-patch+json",
            &json!({"status": {"replicas": 3}}),
        )
        .await;
    assert!(
        r.json()["status"].get("replicas").is_none(),
        "the main resource ignores status"
    );
    let r = c
        .patch(
            "/apis/apps/v1/namespaces/demo/deployments/web/status",
            "application/merge-patch+json",
            &json!({"status": {"replicas": 3}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["status"]["replicas"], 3);
    assert_eq!(r.json()["metadata"]["generation"], 2);

    // Deletes.
    let r = c.delete("/api/v1/namespaces/demo/configmaps/cm-1").await;
    assert_eq!(r.status, StatusCode::OK);
    let body = r.json();
    assert_eq!(body["status"], "Success");
    assert_eq!(body["details"]["kind"], "configmaps");
    let r = c.get("/api/v1/namespaces/demo/configmaps/cm-1").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = c.delete("/api/v1/namespaces/demo/pods/p1").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["kind"], "Pod", "pods return the deleted object");

    // Bad input.
    let r = c
        .request(
            Method::POST,
            "/api/v1/namespaces/demo/configmaps",
            Some("application/json"),
            Some(b"{\"kind\":".to_vec()),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["reason"], "BadRequest");
    let r = c
        .request(
            Method::POST,
            "/api/v1/namespaces/demo/configmaps",
            Some("application/yaml"),
            Some(b"kind: ConfigMap\nmetadata: [".to_vec()),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let yaml =
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  a: b\n".to_vec();
    let r = c
        .request(
            Method::POST,
            "/api/v1/namespaces/demo/configmaps",
            Some("application/yaml"),
            Some(yaml),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let big = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"x": "a".repeat(4 * 1024 * 1024)}});
    let r = c
        .post_json("/api/v1/namespaces/demo/configmaps", &big)
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        r.json()["message"],
        "Request entity too large: limit is 3145728"
    );
    let r = c.get("/api/v1/namespaces/demo/configmaps/big").await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "a rejected write leaves no trace"
    );
    let r = c
        .post_json(
            "/api/v1/namespaces/demo/configmaps",
            &cm("Bad_Name", json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["reason"], "Invalid");
    assert_eq!(r.json()["details"]["causes"][0]["field"], "metadata.name");
    let r = c
        .post_json("/api/v1/namespaces/nowhere/configmaps", &cm("x", json!({})))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["message"], "namespaces \"nowhere\" not found");
    let r = c.get("/api/v1/foos").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.json()["message"],
        "the server could not find the requested resource"
    );
    let r = c.get("/nothing/here").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.text(), "404 page not found\n");
    let r = c
        .request(
            Method::POST,
            "/api/v1/namespaces/demo/configmaps/settings",
            Some("application/json"),
            Some(b"{}".to_vec()),
        )
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let r = c.get("/api/v1/configmaps?labelSelector=a%20in%20(").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = c
        .request(
            Method::POST,
            "/api/v1/namespaces/demo/configmaps",
            Some("application/vnd.kubernetes.protobuf"),
            Some(b"k8s\0".to_vec()),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "a truncated protobuf envelope"
    );
    let r = c
        .request(
            Method::POST,
            "/api/v1/namespaces/demo/configmaps",
            Some("application/cbor"),
            Some(vec![0xa0]),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = c
        .post_json(
            "/api/v1/namespaces/demo/configmaps",
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let gen_name = r.json()["metadata"]["name"].as_str().unwrap().to_string();
    assert!(
        gen_name.starts_with("gen-") && gen_name.len() == 9,
        "{gen_name}"
    );

    // Deleting the namespace removes its contents, then the namespace.
    let r = c.delete("/api/v1/namespaces/demo").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["status"]["phase"], "Terminating");
    let r = c
        .post_json("/api/v1/namespaces/demo/configmaps", &cm("late", json!({})))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = c.get("/api/v1/namespaces/demo").await;
        if r.status == StatusCode::NOT_FOUND {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "namespace not finalized in time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for path in [
        "/api/v1/namespaces/demo/configmaps",
        "/api/v1/namespaces/demo/pods",
        "/apis/apps/v1/namespaces/demo/deployments",
        "/api/v1/namespaces/demo/services",
    ] {
        let r = c.get(path).await;
        assert!(names(&r.json()).is_empty(), "{path} still has objects");
    }
    // System namespaces exist.
    let r = c.get("/api/v1/namespaces").await;
    let ns = names(&r.json());
    for want in ["default", "kube-node-lease", "kube-public", "kube-system"] {
        assert!(ns.contains(&want.to_string()), "{want} missing from {ns:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_http_scenario_on_etcd() {
    let etcd = EtcdServer::start();
    let kapi = Kapi::on_etcd(&etcd);
    scenario(&kapi.client()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_http_scenario_on_embedded_store() {
    let kapi = Kapi::embedded();
    scenario(&kapi.client()).await;
}

/// events.k8s.io/v1 and core/v1 events share one storage (and one store watch): each API sees
/// the other's objects in its own shape.
async fn events_views(c: &RawClient) {
    let core = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"}, "reason": "Started", "message": "hello",
        "reportingComponent": "kubelet", "type": "Normal"});
    let mut w = c
        .watch("/apis/events.k8s.io/v1/namespaces/default/events?watch=1&resourceVersion=0")
        .await;
    let r = c
        .post_json("/api/v1/namespaces/default/events", &core)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = c
        .get("/apis/events.k8s.io/v1/namespaces/default/events/e1")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(
        (
            v["apiVersion"].as_str(),
            v["note"].as_str(),
            v["regarding"]["name"].as_str()
        ),
        (Some("events.k8s.io/v1"), Some("hello"), Some("p"))
    );
    assert_eq!(v["reportingController"], "kubelet");
    let ev = w
        .next(Duration::from_secs(5))
        .await
        .expect("view watch event");
    assert_eq!(
        (ev["type"].as_str(), ev["object"]["note"].as_str()),
        (Some("ADDED"), Some("hello"))
    );
    let view = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e2"},
        "regarding": {"kind": "Node", "name": "n1"}, "note": "from the new API", "reason": "R", "type": "Warning",
        "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "ctl", "reportingInstance": "i", "action": "A"});
    let r = c
        .post_json("/apis/events.k8s.io/v1/namespaces/default/events", &view)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = c
        .get("/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dn1")
        .await;
    let items = r.json()["items"].clone();
    assert_eq!(items.as_array().unwrap().len(), 1);
    assert_eq!(items[0]["message"], "from the new API");
    assert_eq!(items[0]["involvedObject"]["kind"], "Node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_views_on_etcd() {
    let etcd = EtcdServer::start();
    let kapi = Kapi::on_etcd(&etcd);
    events_views(&kapi.client()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_views_on_embedded_store() {
    let kapi = Kapi::embedded();
    events_views(&kapi.client()).await;
}
