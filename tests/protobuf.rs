//! Protobuf on the wire: every served built-in kind created over protobuf reads back the same
//! over JSON (and the reverse), and a protobuf watch delivers the same events as a JSON one.

mod common;

use common::kapi::{Kapi, RawClient};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use kapi::api::catalogue;
use kapi::object::protobuf;
use serde_json::{json, Map, Value};
use std::time::Duration;

const PB: &str = "application/vnd.kubernetes.protobuf";

fn sample(res: &catalogue::ResourceInfo, name: &str) -> Map<String, Value> {
    let mut obj = json!({
        "apiVersion": res.api_version(),
        "kind": res.kind,
        "metadata": {"name": name, "labels": {"app": "pb", "tier": "x"}, "annotations": {"note": "protobuf round trip"}},
    });
    let extra = match (res.group, res.plural) {
        ("", "pods") => {
            json!({"spec": {"containers": [{"name": "c", "image": "nginx:1", "ports": [{"containerPort": 80, "protocol": "TCP"}],
            "env": [{"name": "A", "value": "1"}], "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}},
            "livenessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 10}}], "nodeName": "n1",
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
            // No token volume: its name is random, and the two creates are compared.
            "automountServiceAccountToken": false}})
        }
        ("apps", "deployments") => {
            json!({"spec": {"replicas": 3, "selector": {"matchLabels": {"app": "pb"}},
            "template": {"metadata": {"labels": {"app": "pb"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
        }
        ("", "services") => {
            json!({"spec": {"ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}], "selector": {"app": "pb"}, "type": "ClusterIP"}})
        }
        ("", "configmaps") => json!({"data": {"a": "b"}, "binaryData": {"bin": "AAEC"}}),
        ("", "secrets") => json!({"type": "Opaque", "data": {"password": "c2VjcmV0"}}),
        ("coordination.k8s.io", "leases") => {
            json!({"spec": {"holderIdentity": "me", "leaseDurationSeconds": 15, "renewTime": "2026-01-01T00:00:00.123456Z"}})
        }
        ("rbac.authorization.k8s.io", "roles" | "clusterroles") => {
            json!({"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]})
        }
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
            json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "bob", "apiGroup": "rbac.authorization.k8s.io"}]})
        }
        ("scheduling.k8s.io", "priorityclasses") => json!({"value": 1000, "description": "d"}),
        ("storage.k8s.io", "storageclasses") => {
            json!({"provisioner": "example.com/p", "reclaimPolicy": "Delete"})
        }
        ("", "events") => {
            json!({"involvedObject": {"kind": "Pod", "name": "p", "namespace": "pb"}, "reason": "R", "message": "m", "type": "Normal", "count": 2})
        }
        ("events.k8s.io", "events") => {
            json!({"regarding": {"kind": "Pod", "name": "p"}, "reason": "R", "note": "n", "type": "Normal",
            "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "c", "reportingInstance": "i", "action": "A"})
        }
        _ => json!({}),
    };
    for (k, v) in extra.as_object().unwrap() {
        obj[k] = v.clone();
    }
    obj.as_object().unwrap().clone()
}

fn collection(res: &catalogue::ResourceInfo, ns: &str) -> String {
    let base = if res.group.is_empty() {
        "/api/v1".to_string()
    } else {
        format!("/apis/{}/{}", res.group, res.version)
    };
    if res.namespaced {
        format!("{base}/namespaces/{ns}/{}", res.plural)
    } else {
        format!("{base}/{}", res.plural)
    }
}

async fn get_pb(c: &RawClient, path: &str) -> Map<String, Value> {
    let resp = c
        .send(
            Method::GET,
            path,
            &[(
                "accept",
                "application/vnd.kubernetes.protobuf,application/json",
            )],
            None,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    assert_eq!(resp.headers()["content-type"], PB);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    protobuf::decode_object(&body)
        .expect("protobuf response decodes")
        .2
}

/// The server-set fields differ between two creates; compare everything else.
fn comparable(mut o: Map<String, Value>) -> Map<String, Value> {
    if let Some(Value::Object(m)) = o.get_mut("metadata") {
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "name",
            "managedFields",
        ] {
            m.remove(k);
        }
    }
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_round_trips_through_protobuf() {
    let kapi = Kapi::embedded();
    let c = kapi.client();
    let r = c
        .post_json(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "pb"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let mut kinds = 0;
    for (idx, res) in catalogue::all().iter().enumerate() {
        if res.verbs.is_some() {
            continue;
        }
        let coll = collection(res, "pb");
        // protobuf in, JSON out
        // Names are unique across kinds: core and events.k8s.io events share storage.
        let (from_pb, from_json) = (format!("k{idx}-pb"), format!("k{idx}-json"));
        let obj = sample(res, &from_pb);
        let body = protobuf::encode_object(&obj).unwrap_or_else(|e| panic!("{}: {e}", res.kind));
        let r = c.request(Method::POST, &coll, Some(PB), Some(body)).await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "{} over protobuf: {}",
            res.kind,
            r.text()
        );
        let created = r.json();
        let read = c.get(&format!("{coll}/{from_pb}")).await;
        assert_eq!(read.json(), created, "{}", res.kind);
        // JSON in, protobuf out
        let r = c
            .post_json(&coll, &Value::Object(sample(res, &from_json)))
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "{} over JSON: {}",
            res.kind,
            r.text()
        );
        let json_obj = r.json().as_object().unwrap().clone();
        // Controllers may update the object in between (the ResourceQuota controller writes
        // status), so compare a protobuf read with a JSON read of the same revision.
        let item = format!("{coll}/{from_json}");
        let mut same = false;
        for _ in 0..20 {
            let pb_obj = get_pb(&c, &item).await;
            let now = c.get(&item).await.json();
            if pb_obj
                .get("metadata")
                .and_then(|m| m.get("resourceVersion"))
                != now["metadata"].get("resourceVersion")
            {
                continue;
            }
            assert_eq!(
                Value::Object(pb_obj),
                now,
                "{} read over protobuf",
                res.kind
            );
            same = true;
            break;
        }
        assert!(same, "{}: no stable revision to compare", res.kind);
        // Both paths store the same object.
        assert_eq!(
            comparable(created.as_object().unwrap().clone()),
            comparable(json_obj),
            "{}",
            res.kind
        );
        kinds += 1;
    }
    assert!(kinds >= 30, "{kinds} kinds");
    // Lists over protobuf too.
    let list = get_pb(
        &c,
        "/api/v1/namespaces/pb/configmaps?labelSelector=app%3Dpb",
    )
    .await;
    assert_eq!(list["kind"], "ConfigMapList");
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
}

/// Reads length-prefixed protobuf WatchEvents: (type, object).
async fn next_pb_event(
    body: &mut hyper::body::Incoming,
    buf: &mut Vec<u8>,
) -> Option<(String, Map<String, Value>)> {
    loop {
        if buf.len() >= 4 {
            let n = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if buf.len() >= 4 + n {
                let msg: Vec<u8> = buf.drain(..4 + n).skip(4).collect();
                return Some(parse_watch_event(&msg));
            }
        }
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .ok()??
            .ok()?;
        if let Ok(d) = frame.into_data() {
            buf.extend_from_slice(&d);
        }
    }
}

fn varint(b: &[u8], i: &mut usize) -> usize {
    let (mut v, mut shift) = (0usize, 0);
    loop {
        let byte = b[*i];
        *i += 1;
        v |= ((byte & 0x7f) as usize) << shift;
        if byte < 0x80 {
            return v;
        }
        shift += 7;
    }
}

/// WatchEvent{1: type string, 2: RawExtension{1: raw bytes}}.
fn parse_watch_event(msg: &[u8]) -> (String, Map<String, Value>) {
    let (mut i, mut etype, mut raw) = (0, String::new(), Vec::new());
    while i < msg.len() {
        let tag = varint(msg, &mut i);
        let len = varint(msg, &mut i);
        let field = &msg[i..i + len];
        i += len;
        match tag >> 3 {
            1 => etype = String::from_utf8(field.to_vec()).unwrap(),
            2 => {
                let mut j = 0;
                let t = varint(field, &mut j);
                assert_eq!(t >> 3, 1);
                let l = varint(field, &mut j);
                raw = field[j..j + l].to_vec();
            }
            _ => {}
        }
    }
    (
        etype,
        protobuf::decode_object(&raw)
            .expect("event object decodes")
            .2,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_watch_matches_json_watch() {
    let kapi = Kapi::embedded();
    let c = kapi.client();
    let rv = c.get("/api/v1/namespaces/default/pods").await.json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!(
        "/api/v1/namespaces/default/pods?watch=1&resourceVersion={rv}&labelSelector=app%3Dw"
    );
    let mut json_watch = c.watch(&path).await;
    let resp = c
        .send(
            Method::GET,
            &path,
            &[(
                "accept",
                "application/vnd.kubernetes.protobuf;stream=watch,application/json",
            )],
            None,
        )
        .await;
    assert_eq!(
        resp.headers()["content-type"],
        "application/vnd.kubernetes.protobuf;stream=watch"
    );
    let mut pb_body = resp.into_body();
    let pod = |labels: Value| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "w", "labels": labels}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
    assert_eq!(
        c.post_json("/api/v1/namespaces/default/pods", &pod(json!({"app": "w"})))
            .await
            .status,
        StatusCode::CREATED
    );
    c.patch(
        "/api/v1/namespaces/default/pods/w",
        "application/merge-patch+json",
        &json!({"metadata": {"labels": {"x": "1"}}}),
    )
    .await;
    c.patch(
        "/api/v1/namespaces/default/pods/w",
        "application/merge-patch+json",
        &json!({"metadata": {"labels": {"app": "other"}}}),
    )
    .await;
    let mut buf = Vec::new();
    for want in ["ADDED", "MODIFIED", "DELETED"] {
        let j = json_watch
            .next(Duration::from_secs(5))
            .await
            .expect("json event");
        let (t, obj) = next_pb_event(&mut pb_body, &mut buf)
            .await
            .expect("protobuf event");
        assert_eq!(j["type"], want);
        assert_eq!(t, want);
        assert_eq!(
            Value::Object(obj),
            j["object"],
            "same object in both encodings"
        );
    }
}
