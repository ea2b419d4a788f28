//! Server-side apply goes through the admission chain, as kube-apiserver's patch handler does:
//! kapi on a real etcd, driven with `kubectl apply --server-side` (v1.32) and raw
//! `application/apply-patch+yaml` PATCHes.
//!
//! - ResourceQuota (`pods: "1"`): a second pod created by apply is refused with kube's
//!   `exceeded quota` message, with `--dry-run=server` too, and neither is charged; re-applying
//!   the admitted pod (an UPDATE) still passes.
//! - ServiceAccount: an applied pod without `serviceAccountName` gets `default` and the token
//!   volume, which the applier does not own (admission's changes are not attributed to it), so a
//!   re-apply keeps them.
//! - NamespaceLifecycle: an apply into a missing namespace is 404 `namespaces "x" not found`.

mod common;

use common::etcd::EtcdServer;
use common::kapi::{Kapi, RawClient, RawResponse};
use http::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Bound of every wait for a controller (quota status).
const WAIT: Duration = Duration::from_secs(20);

const APPLY: &str = "application/apply-patch+yaml";

fn pod_yaml(name: &str, namespace: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {namespace}
spec:
  containers:
  - name: c
    image: registry.k8s.io/pause:3.10
"
    )
}

fn pod_json(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}
    })
}

fn status_body(message: &str, details: Value, code: u16, reason: &str) -> String {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "details": details, "code": code
    })
    .to_string()
}

fn assert_status(r: &RawResponse, code: StatusCode, body: &str) {
    assert_eq!(r.status, code, "{}", r.text());
    assert_eq!(r.text(), body);
}

/// `kubectl apply --server-side -f <file with yaml>` plus `extra` flags.
fn kubectl_apply(k: &Kapi, yaml: &str, extra: &[&str]) -> (bool, String, String) {
    let mut args = vec!["apply", "--server-side", "-f", "-"];
    args.extend_from_slice(extra);
    k.kubectl_with_input(&args, Some(yaml))
}

/// Polls `path` until `check` holds on its JSON, within [`WAIT`].
async fn wait_for(c: &RawClient, path: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = c.get(path).await;
        let v = r.json();
        if r.status == StatusCode::OK && check(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not reached within {WAIT:?}; last: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The fieldsV1 of `manager`'s Apply entry, as a JSON string.
fn applied_fields(pod: &Value, manager: &str) -> String {
    pod["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == "Apply")
        .unwrap_or_else(|| panic!("no Apply entry of {manager}: {pod}"))["fieldsV1"]
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_runs_admission() {
    let etcd = EtcdServer::start();
    let k = Kapi::on_etcd(&etcd);
    let c = k.client();
    let r = c
        .post_json(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "quota"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = c
        .post_json(
            "/api/v1/namespaces/quota/resourcequotas",
            &json!({"apiVersion": "v1", "kind": "ResourceQuota",
                "metadata": {"name": "q"}, "spec": {"hard": {"pods": "1"}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let q_path = "/api/v1/namespaces/quota/resourcequotas/q";
    wait_for(&c, q_path, "quota status", |v| {
        v["status"]["hard"]["pods"] == "1" && v["status"]["used"]["pods"] == "0"
    })
    .await;

    // The first pod: created by apply, charged to the quota, given the default account.
    let (ok, out, err) = kubectl_apply(&k, &pod_yaml("p1", "quota"), &[]);
    assert!(ok, "{out}{err}");
    assert_eq!(out.trim(), "pod/p1 serverside-applied");
    let p1 = c.get("/api/v1/namespaces/quota/pods/p1").await.json();
    assert_eq!(p1["spec"]["serviceAccountName"], "default", "{p1}");
    let volume = p1["spec"]["volumes"][0]["name"]
        .as_str()
        .expect("token volume");
    assert!(volume.starts_with("kube-api-access-"), "{volume}");
    assert_eq!(
        p1["spec"]["containers"][0]["volumeMounts"][0]["mountPath"],
        "/var/run/secrets/kubernetes.io/serviceaccount"
    );
    // What admission added is not the applier's.
    let owned = applied_fields(&p1, "kubectl");
    assert!(owned.contains("f:image"), "{owned}");
    for f in ["f:serviceAccountName", "f:volumes", "f:volumeMounts"] {
        assert!(!owned.contains(f), "{f} attributed to kubectl: {owned}");
    }
    let q = c.get(q_path).await.json();
    assert_eq!(q["status"]["used"]["pods"], "1", "{q}");

    // Re-applying p1 is an UPDATE: not charged, not refused, and admission's fields stay.
    let rv = p1["metadata"]["resourceVersion"].clone();
    let (ok, out, err) = kubectl_apply(&k, &pod_yaml("p1", "quota"), &[]);
    assert!(ok, "{out}{err}");
    let again = c.get("/api/v1/namespaces/quota/pods/p1").await.json();
    assert_eq!(again["metadata"]["resourceVersion"], rv, "a no-op re-apply");
    assert_eq!(again["spec"]["serviceAccountName"], "default");
    assert_eq!(again["spec"]["volumes"][0]["name"], volume);

    // A second pod is over quota, with --dry-run=server as well; neither is stored or charged.
    let refused = "pods \"p2\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=1, limited: pods=1";
    for extra in [&["--dry-run=server"][..], &[]] {
        let (ok, out, err) = kubectl_apply(&k, &pod_yaml("p2", "quota"), extra);
        assert!(!ok, "{extra:?}: applied over quota: {out}");
        assert_eq!(
            err.trim(),
            format!("Error from server (Forbidden): {refused}"),
            "{extra:?}"
        );
    }
    let forbidden = status_body(
        refused,
        json!({"name": "p2", "kind": "pods"}),
        403,
        "Forbidden",
    );
    for query in ["fieldManager=raw", "fieldManager=raw&dryRun=All"] {
        let r = c
            .patch(
                &format!("/api/v1/namespaces/quota/pods/p2?{query}"),
                APPLY,
                &pod_json("p2"),
            )
            .await;
        assert_status(&r, StatusCode::FORBIDDEN, &forbidden);
    }
    assert_eq!(
        c.get("/api/v1/namespaces/quota/pods/p2").await.status,
        StatusCode::NOT_FOUND
    );
    let q = c.get(q_path).await.json();
    assert_eq!(q["status"]["used"]["pods"], "1", "{q}");

    // A missing namespace: NamespaceLifecycle's 404.
    let r = c
        .patch(
            "/api/v1/namespaces/x/pods/p?fieldManager=raw",
            APPLY,
            &pod_json("p"),
        )
        .await;
    assert_status(
        &r,
        StatusCode::NOT_FOUND,
        &status_body(
            "namespaces \"x\" not found",
            json!({"name": "x", "kind": "namespaces"}),
            404,
            "NotFound",
        ),
    );
    let (ok, out, err) = kubectl_apply(&k, &pod_yaml("p", "x"), &[]);
    assert!(!ok, "{out}");
    assert_eq!(
        err.trim(),
        "Error from server (NotFound): namespaces \"x\" not found"
    );
}
