//! Admission plugins through the real server: kapi on a real etcd, driven over raw HTTPS and with
//! kubectl. Each test checks what kube-apiserver answers (status codes and exact `Status`
//! bodies) and what it stores (defaults, volumes, quota usage).
//!
//! - ResourceQuota: `pods: "2"`, the third pod refused with kube's message, `status.used`
//!   maintained by the quota controller, a deleted pod frees room.
//! - LimitRanger: container defaults and the `kubernetes.io/limit-ranger` annotation, `max`
//!   violations refused.
//! - NamespaceLifecycle: a Terminating namespace (held by a finalizer) refuses new content, a
//!   missing one is 404.
//! - ServiceAccount: `default` account, the projected `kube-api-access-<5>` volume and mounts.
//! - NodeRestriction: a kubelet certificate may update the status of its own pods only, and may
//!   not modify another Node.

mod common;

use common::etcd::EtcdServer;
use common::kapi::{issue_client_cert, AuthClient, Kapi, RawClient, RawResponse};
use http::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Bound of every wait for a controller (quota status, caches).
const WAIT: Duration = Duration::from_secs(20);

fn start(extra: &[&str]) -> (EtcdServer, Kapi) {
    let etcd = EtcdServer::start();
    let mut args = vec![format!("--etcd-servers={}", etcd.endpoint)];
    args.extend(extra.iter().map(|s| s.to_string()));
    let kapi = Kapi::start(args);
    (etcd, kapi)
}

fn kubectl_ok(k: &Kapi, args: &[&str]) -> String {
    let (ok, out, err) = k.kubectl(args);
    assert!(ok, "kubectl {args:?} failed: {err}");
    out
}

fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}
    })
}

fn status_body(message: &str, details: Value, code: u16, reason: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "details": details, "code": code
    })
}

/// The exact body kube-apiserver sends for `admission.NewForbidden` on a pod.
fn pod_forbidden(name: &str, message: &str) -> String {
    serde_json::to_string(&status_body(
        message,
        json!({"name": name, "kind": "pods"}),
        403,
        "Forbidden",
    ))
    .unwrap()
}

fn assert_status(r: &RawResponse, code: StatusCode, body: &str) {
    assert_eq!(r.status, code, "{}", r.text());
    assert_eq!(r.text(), body);
}

async fn create_namespace(c: &RawClient, name: &str) {
    let r = c
        .post_json(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
}

/// Polls `path` until `check` holds on its JSON, within [`WAIT`]; returns the last body.
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

#[tokio::test(flavor = "multi_thread")]
async fn resource_quota_limits_pod_count() {
    let (_etcd, k) = start(&[]);
    let c = k.client();
    create_namespace(&c, "quota").await;
    let r = c
        .post_json(
            "/api/v1/namespaces/quota/resourcequotas",
            &json!({"apiVersion": "v1", "kind": "ResourceQuota",
                "metadata": {"name": "q"}, "spec": {"hard": {"pods": "2"}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    // The quota controller fills in status.hard and status.used.
    let q_path = "/api/v1/namespaces/quota/resourcequotas/q";
    let q = wait_for(&c, q_path, "quota status", |v| {
        v["status"]["hard"]["pods"] == "2" && v["status"]["used"]["pods"] == "0"
    })
    .await;
    assert_eq!(
        q["status"],
        json!({"hard": {"pods": "2"}, "used": {"pods": "0"}})
    );

    for name in ["p1", "p2"] {
        let r = c
            .post_json("/api/v1/namespaces/quota/pods", &pod(name))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{name}: {}", r.text());
    }
    wait_for(&c, q_path, "usage of two pods", |v| {
        v["status"]["used"]["pods"] == "2"
    })
    .await;

    let r = c
        .post_json("/api/v1/namespaces/quota/pods", &pod("p3"))
        .await;
    assert_status(
        &r,
        StatusCode::FORBIDDEN,
        &pod_forbidden(
            "p3",
            "pods \"p3\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2",
        ),
    );
    // kubectl shows the same message.
    let (ok, _, err) = k.kubectl_with_input(
        &["create", "-n", "quota", "-f", "-"],
        Some(&pod("p3").to_string()),
    );
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "Error from server (Forbidden): error when creating \"STDIN\": pods \"p3\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"
    );
    // Nothing was stored, and the refused requests were not charged.
    assert_eq!(
        c.get("/api/v1/namespaces/quota/pods/p3").await.status,
        StatusCode::NOT_FOUND
    );
    let q = c.get(q_path).await.json();
    assert_eq!(q["status"]["used"]["pods"], "2");
    let out = kubectl_ok(&k, &["describe", "quota", "q", "-n", "quota"]);
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["pods", "2", "2"]),
        "{out}"
    );

    // Deleting a pod frees room once the controller has recounted.
    kubectl_ok(&k, &["delete", "pod", "p1", "-n", "quota", "--wait=false"]);
    wait_for(&c, q_path, "usage after a delete", |v| {
        v["status"]["used"]["pods"] == "1"
    })
    .await;
    let r = c
        .post_json("/api/v1/namespaces/quota/pods", &pod("p3"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    wait_for(&c, q_path, "usage of p2 and p3", |v| {
        v["status"]["used"]["pods"] == "2"
    })
    .await;
    // Full again.
    let r = c
        .post_json("/api/v1/namespaces/quota/pods", &pod("p4"))
        .await;
    assert_status(
        &r,
        StatusCode::FORBIDDEN,
        &pod_forbidden(
            "p4",
            "pods \"p4\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2",
        ),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn resource_quota_compute_resources() {
    let (_etcd, k) = start(&[]);
    let c = k.client();
    create_namespace(&c, "compute").await;
    let r = c
        .post_json(
            "/api/v1/namespaces/compute/resourcequotas",
            &json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "compute"},
                "spec": {"hard": {"requests.cpu": "2", "limits.cpu": "3"}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let q_path = "/api/v1/namespaces/compute/resourcequotas/compute";
    wait_for(&c, q_path, "quota status", |v| {
        v["status"]["used"] == json!({"requests.cpu": "0", "limits.cpu": "0"})
    })
    .await;

    // Limits only: like kube-apiserver's pod defaulting, the request is the limit, so the pod
    // satisfies the quota's requirement and is charged for both.
    let mut p = pod("limited");
    p["spec"]["containers"][0]["resources"] = json!({"limits": {"cpu": "1500m"}});
    let r = c.post_json("/api/v1/namespaces/compute/pods", &p).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(
        r.json()["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "1500m"}, "requests": {"cpu": "1500m"}})
    );
    wait_for(&c, q_path, "usage of one pod", |v| {
        v["status"]["used"] == json!({"requests.cpu": "1500m", "limits.cpu": "1500m"})
    })
    .await;

    let mut p = pod("more");
    p["spec"]["containers"][0]["resources"] = json!({"limits": {"cpu": "1"}});
    let r = c.post_json("/api/v1/namespaces/compute/pods", &p).await;
    assert_status(
        &r,
        StatusCode::FORBIDDEN,
        &pod_forbidden(
            "more",
            "pods \"more\" is forbidden: exceeded quota: compute, requested: requests.cpu=1, used: requests.cpu=1500m, limited: requests.cpu=2",
        ),
    );
    // A pod that states nothing cannot be charged: kube's "must specify".
    let r = c
        .post_json("/api/v1/namespaces/compute/pods", &pod("bare"))
        .await;
    assert_status(
        &r,
        StatusCode::FORBIDDEN,
        &pod_forbidden(
            "bare",
            "pods \"bare\" is forbidden: failed quota: compute: must specify limits.cpu for: c; requests.cpu for: c",
        ),
    );
    // Within the quota.
    let mut p = pod("small");
    p["spec"]["containers"][0]["resources"] =
        json!({"requests": {"cpu": "250m"}, "limits": {"cpu": "500m"}});
    let r = c.post_json("/api/v1/namespaces/compute/pods", &p).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    wait_for(&c, q_path, "usage of two pods", |v| {
        v["status"]["used"] == json!({"requests.cpu": "1750m", "limits.cpu": "2"})
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn limit_ranger_defaults_and_max() {
    let (_etcd, k) = start(&[]);
    let c = k.client();
    create_namespace(&c, "lr").await;
    let r = c
        .post_json(
            "/api/v1/namespaces/lr/limitranges",
            &json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "limits"},
                "spec": {"limits": [{"type": "Container",
                    "default": {"cpu": "500m", "memory": "256Mi"},
                    "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
                    "max": {"cpu": "1", "memory": "512Mi"}}]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());

    // A pod without resources gets the defaults and kube's annotation saying so.
    let mut p = pod("defaulted");
    p["spec"]["containers"].as_array_mut().unwrap().push(
        json!({"name": "side", "image": "registry.k8s.io/pause:3.10",
            "resources": {"requests": {"cpu": "200m"}, "limits": {"cpu": "300m"}}}),
    );
    let r = c.post_json("/api/v1/namespaces/lr/pods", &p).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let got = c.get("/api/v1/namespaces/lr/pods/defaulted").await.json();
    assert_eq!(
        got["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "500m", "memory": "256Mi"},
            "requests": {"cpu": "100m", "memory": "128Mi"}})
    );
    // Only what was missing is set.
    assert_eq!(
        got["spec"]["containers"][1]["resources"],
        json!({"limits": {"cpu": "300m", "memory": "256Mi"},
            "requests": {"cpu": "200m", "memory": "128Mi"}})
    );
    assert_eq!(
        got["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c; memory request for container side; memory limit for container side"
    );

    // A container over `max` is refused with kube's message.
    let mut big = pod("big");
    big["spec"]["containers"][0]["resources"] = json!({"limits": {"cpu": "2"}});
    let r = c.post_json("/api/v1/namespaces/lr/pods", &big).await;
    assert_status(
        &r,
        StatusCode::FORBIDDEN,
        &pod_forbidden(
            "big",
            "pods \"big\" is forbidden: maximum cpu usage per Container is 1, but limit is 2",
        ),
    );
    // Two violations are aggregated.
    big["spec"]["containers"][0]["resources"] = json!({"limits": {"cpu": "2", "memory": "1Gi"}});
    let (ok, _, err) =
        k.kubectl_with_input(&["create", "-n", "lr", "-f", "-"], Some(&big.to_string()));
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "Error from server (Forbidden): error when creating \"STDIN\": pods \"big\" is forbidden: [maximum cpu usage per Container is 1, but limit is 2, maximum memory usage per Container is 512Mi, but limit is 1Gi]"
    );
    assert_eq!(
        c.get("/api/v1/namespaces/lr/pods/big").await.status,
        StatusCode::NOT_FOUND
    );
    // Namespaces without a LimitRange are untouched.
    let r = c
        .post_json("/api/v1/namespaces/default/pods", &pod("plain"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let got = r.json();
    assert!(got["spec"]["containers"][0]
        .get("resources")
        .is_none_or(|r| r == &json!({})));
    assert!(got["metadata"]["annotations"]
        .get("kubernetes.io/limit-ranger")
        .is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn namespace_lifecycle_terminating_and_missing() {
    let (_etcd, k) = start(&[]);
    let c = k.client();
    // A finalizer of our own keeps the namespace Terminating after its content is gone.
    let r = c
        .post_json(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "doomed", "finalizers": ["example.com/hold"]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = c
        .post_json(
            "/api/v1/namespaces/doomed/configmaps",
            &json!({"metadata": {"name": "cm"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = c.delete("/api/v1/namespaces/doomed").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["status"]["phase"], "Terminating");

    // The namespace controller empties it but leaves it Terminating.
    wait_for(
        &c,
        "/api/v1/namespaces/doomed/configmaps",
        "content purged",
        |v| v["items"].as_array().is_some_and(|a| a.is_empty()),
    )
    .await;
    let ns = c.get("/api/v1/namespaces/doomed").await;
    assert_eq!(ns.status, StatusCode::OK);
    assert_eq!(ns.json()["status"]["phase"], "Terminating");

    let r = c
        .post_json("/api/v1/namespaces/doomed/pods", &pod("late"))
        .await;
    let expected = status_body(
        "pods \"late\" is forbidden: unable to create new content in namespace doomed because it is being terminated",
        json!({"name": "late", "kind": "pods", "causes": [{"reason": "NamespaceTerminating",
            "message": "namespace doomed is being terminated", "field": "metadata.namespace"}]}),
        403,
        "Forbidden",
    );
    assert_status(&r, StatusCode::FORBIDDEN, &expected.to_string());
    let r = c
        .post_json(
            "/api/v1/namespaces/doomed/configmaps",
            &json!({"metadata": {"name": "cm2"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.json()["message"],
        "configmaps \"cm2\" is forbidden: unable to create new content in namespace doomed because it is being terminated"
    );
    let (ok, _, err) = k.kubectl(&["create", "configmap", "cm3", "-n", "doomed"]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "error: failed to create configmap: configmaps \"cm3\" is forbidden: unable to create new content in namespace doomed because it is being terminated"
    );

    // Removing the finalizer lets the namespace go; then it is simply missing.
    let r = c
        .patch(
            "/api/v1/namespaces/doomed",
            "application/merge-patch+json",
            &json!({"metadata": {"finalizers": null}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let deadline = Instant::now() + WAIT;
    while c.get("/api/v1/namespaces/doomed").await.status != StatusCode::NOT_FOUND {
        assert!(Instant::now() < deadline, "namespace doomed not removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for ns in ["doomed", "never-existed"] {
        let r = c
            .post_json(&format!("/api/v1/namespaces/{ns}/pods"), &pod("p"))
            .await;
        let expected = status_body(
            &format!("namespaces \"{ns}\" not found"),
            json!({"name": ns, "kind": "namespaces"}),
            404,
            "NotFound",
        );
        assert_status(&r, StatusCode::NOT_FOUND, &expected.to_string());
    }
    let (ok, _, err) = k.kubectl(&["create", "configmap", "x", "-n", "never-existed"]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "error: failed to create configmap: namespaces \"never-existed\" not found"
    );
    // The immortal namespaces cannot be deleted.
    let r = c.delete("/api/v1/namespaces/default").await;
    let expected = status_body(
        "namespaces \"default\" is forbidden: this namespace may not be deleted",
        json!({"name": "default", "kind": "namespaces"}),
        403,
        "Forbidden",
    );
    assert_status(&r, StatusCode::FORBIDDEN, &expected.to_string());
}

/// kube's `utilrand.String` alphabet: the suffix of generated volume names.
fn is_generated_suffix(s: &str) -> bool {
    s.len() == 5
        && s.chars()
            .all(|ch| "bcdfghjklmnpqrstvwxz2456789".contains(ch))
}

#[tokio::test(flavor = "multi_thread")]
async fn service_account_defaults_and_token_volume() {
    let (_etcd, k) = start(&[]);
    let c = k.client();
    create_namespace(&c, "sa").await;
    let mut p = pod("web");
    p["spec"]["initContainers"] = json!([{"name": "init", "image": "registry.k8s.io/pause:3.10"}]);
    // The default account is created by the service-account controller; the plugin waits for it.
    let r = c.post_json("/api/v1/namespaces/sa/pods", &p).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let got = c.get("/api/v1/namespaces/sa/pods/web").await.json();
    let spec = &got["spec"];
    assert_eq!(spec["serviceAccountName"], "default");
    assert_eq!(spec["serviceAccount"], "default");
    let volumes = spec["volumes"].as_array().expect("volumes");
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    let vname = volumes[0]["name"].as_str().unwrap();
    let suffix = vname
        .strip_prefix("kube-api-access-")
        .unwrap_or_else(|| panic!("volume name {vname}"));
    assert!(is_generated_suffix(suffix), "{vname}");
    assert_eq!(
        volumes[0],
        json!({"name": vname, "projected": {
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace",
                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
            ],
            "defaultMode": 420}})
    );
    let mount = json!([{"name": vname, "readOnly": true,
        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]);
    assert_eq!(spec["containers"][0]["volumeMounts"], mount);
    assert_eq!(spec["initContainers"][0]["volumeMounts"], mount);
    // The ConfigMap the volume projects exists (root-ca publisher).
    let cm = wait_for(
        &c,
        "/api/v1/namespaces/sa/configmaps/kube-root-ca.crt",
        "kube-root-ca.crt",
        |v| v["data"]["ca.crt"].is_string(),
    )
    .await;
    assert!(cm["data"]["ca.crt"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));

    // automountServiceAccountToken: false → no volume.
    let mut p = pod("nomount");
    p["spec"]["automountServiceAccountToken"] = json!(false);
    let r = c.post_json("/api/v1/namespaces/sa/pods", &p).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let got = r.json();
    assert_eq!(got["spec"]["serviceAccountName"], "default");
    assert!(got["spec"].get("volumes").is_none(), "{got}");
    assert!(got["spec"]["containers"][0].get("volumeMounts").is_none());

    // An account that does not exist is refused.
    let mut p = pod("ghost");
    p["spec"]["serviceAccountName"] = json!("ghost");
    let r = c.post_json("/api/v1/namespaces/sa/pods", &p).await;
    assert_status(
        &r,
        StatusCode::FORBIDDEN,
        &pod_forbidden(
            "ghost",
            "pods \"ghost\" is forbidden: error looking up service account sa/ghost: serviceaccount \"ghost\" not found",
        ),
    );
    // kubectl run (a real client's pod) gets the same treatment.
    kubectl_ok(
        &k,
        &[
            "run",
            "runner",
            "-n",
            "sa",
            "--image=registry.k8s.io/pause:3.10",
            "--restart=Never",
        ],
    );
    let out = kubectl_ok(
        &k,
        &[
            "get",
            "pod",
            "runner",
            "-n",
            "sa",
            "-o",
            "jsonpath={.spec.serviceAccountName} {.spec.containers[0].volumeMounts[0].mountPath}",
        ],
    );
    assert_eq!(out, "default /var/run/secrets/kubernetes.io/serviceaccount");
}

/// A client authenticated as the kubelet of `node`.
fn kubelet(k: &Kapi, node: &str) -> AuthClient {
    let (cert, key) = issue_client_cert(
        &k.data_dir,
        &format!("system:node:{node}"),
        &["system:nodes"],
        false,
    );
    AuthClient::new(&k.data_dir, k.port, Some((&cert, &key)), None)
}

#[tokio::test(flavor = "multi_thread")]
async fn node_restriction_limits_kubelets() {
    let (_etcd, k) = start(&[
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
    ]);
    let c = k.client();
    for n in ["node-a", "node-b"] {
        let r = c
            .post_json(
                "/api/v1/nodes",
                &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": n}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    }
    for (name, node) in [("pa", "node-a"), ("pb", "node-b")] {
        let mut p = pod(name);
        p["spec"]["nodeName"] = json!(node);
        let r = c.post_json("/api/v1/namespaces/default/pods", &p).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    }
    let node_a = kubelet(&k, "node-a");

    // Status of its own pod: allowed.
    let mut pa = c.get("/api/v1/namespaces/default/pods/pa").await.json();
    pa["status"] = json!({"phase": "Running", "podIP": "10.0.0.7"});
    let r = node_a
        .request(
            Method::PUT,
            "/api/v1/namespaces/default/pods/pa/status",
            &[],
            Some(&pa),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["status"]["phase"], "Running");
    assert_eq!(
        c.get("/api/v1/namespaces/default/pods/pa").await.json()["status"]["podIP"],
        "10.0.0.7"
    );
    // ... but not its labels through the status.
    let mut pa = r.json();
    pa["metadata"]["labels"] = json!({"sneaky": "yes"});
    let r = node_a
        .request(
            Method::PUT,
            "/api/v1/namespaces/default/pods/pa/status",
            &[],
            Some(&pa),
        )
        .await;
    assert_status(
        &r,
        StatusCode::FORBIDDEN,
        &pod_forbidden(
            "pa",
            "pods \"pa\" is forbidden: node \"node-a\" cannot update labels through pod status",
        ),
    );

    // Status of a pod bound to another node: refused by NodeRestriction.
    let mut pb = c.get("/api/v1/namespaces/default/pods/pb").await.json();
    pb["status"] = json!({"phase": "Running"});
    let r = node_a
        .request(
            Method::PUT,
            "/api/v1/namespaces/default/pods/pb/status",
            &[],
            Some(&pb),
        )
        .await;
    assert_status(
        &r,
        StatusCode::FORBIDDEN,
        &pod_forbidden(
            "pb",
            "pods \"pb\" is forbidden: node \"node-a\" can only update pod status for pods with spec.nodeName set to itself",
        ),
    );
    assert_ne!(
        c.get("/api/v1/namespaces/default/pods/pb").await.json()["status"]["phase"],
        "Running"
    );

    // Its own Node: labels outside the restricted prefixes are fine, restricted ones are not.
    let mut na = c.get("/api/v1/nodes/node-a").await.json();
    na["metadata"]["labels"] = json!({"example.com/rack": "r1"});
    let r = node_a
        .request(Method::PUT, "/api/v1/nodes/node-a", &[], Some(&na))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let mut na = r.json();
    na["metadata"]["labels"]["node-restriction.kubernetes.io/pool"] = json!("gold");
    let r = node_a
        .request(Method::PUT, "/api/v1/nodes/node-a", &[], Some(&na))
        .await;
    let expected = status_body(
        "nodes \"node-a\" is forbidden: is not allowed to modify labels: node-restriction.kubernetes.io/pool",
        json!({"name": "node-a", "kind": "nodes"}),
        403,
        "Forbidden",
    );
    assert_status(&r, StatusCode::FORBIDDEN, &expected.to_string());

    // Another Node: the Node authorizer lets every node write through (as kube's does), and
    // NodeRestriction refuses it, for the object, its status and a create under another name.
    let node_b_forbidden = |name: &str| {
        status_body(
            &format!(
                "nodes \"{name}\" is forbidden: node \"node-a\" is not allowed to modify node \"{name}\""
            ),
            json!({"name": name, "kind": "nodes"}),
            403,
            "Forbidden",
        )
        .to_string()
    };
    let mut nb = c.get("/api/v1/nodes/node-b").await.json();
    nb["metadata"]["labels"] = json!({"example.com/rack": "r9"});
    let r = node_a
        .request(Method::PUT, "/api/v1/nodes/node-b", &[], Some(&nb))
        .await;
    assert_status(&r, StatusCode::FORBIDDEN, &node_b_forbidden("node-b"));
    let merge = [("content-type", "application/merge-patch+json")];
    let r = node_a
        .request(
            Method::PATCH,
            "/api/v1/nodes/node-b",
            &merge,
            Some(&json!({"metadata": {"labels": {"example.com/rack": "r9"}}})),
        )
        .await;
    assert_status(&r, StatusCode::FORBIDDEN, &node_b_forbidden("node-b"));
    let r = node_a
        .request(
            Method::PATCH,
            "/api/v1/nodes/node-b/status",
            &merge,
            Some(&json!({"status": {"phase": "Running"}})),
        )
        .await;
    assert_status(&r, StatusCode::FORBIDDEN, &node_b_forbidden("node-b"));
    let r = node_a
        .post_json(
            "/api/v1/nodes",
            &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-c"}}),
        )
        .await;
    assert_status(&r, StatusCode::FORBIDDEN, &node_b_forbidden("node-c"));
    assert!(c.get("/api/v1/nodes/node-b").await.json()["metadata"]
        .get("labels")
        .is_none());
    assert_eq!(
        c.get("/api/v1/nodes/node-c").await.status,
        StatusCode::NOT_FOUND
    );
    // Its own status goes through both.
    let r = node_a
        .request(
            Method::PATCH,
            "/api/v1/nodes/node-a/status",
            &merge,
            Some(&json!({"status": {"nodeInfo": {"kubeletVersion": "v1.32.0"}}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["status"]["nodeInfo"]["kubeletVersion"], "v1.32.0");
}
