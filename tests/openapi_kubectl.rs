//! OpenAPI against real clients: kubectl v1.32 `create -f` with its default (strict) validation,
//! which needs `/openapi/v3` to learn that PATCH takes `fieldValidation`; `kubectl explain`, which
//! renders the per-group-version documents; client-side `apply` (first time and unchanged); and
//! the caching protocol of kube-openapi's handler seen over HTTP.

mod common;

use common::kapi::Kapi;
use http::{Method, StatusCode};
use serde_json::Value;

const MANIFEST: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  greeting: hello
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        ports:
        - containerPort: 80
        env:
        - name: GREETING
          valueFrom:
            configMapKeyRef:
              name: web-config
              key: greeting
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 80
"#;

const APPLY: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: applied
  namespace: default
data:
  a: "1"
"#;

fn assert_ok(what: &str, (ok, stdout, stderr): &(bool, String, String)) {
    assert!(*ok, "{what} failed\nstdout: {stdout}\nstderr: {stderr}");
    assert!(
        !stderr.contains("openapi") && !stderr.contains("validate"),
        "{what}: unexpected stderr: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_uses_openapi() {
    let kapi = Kapi::embedded();

    // create -f with kubectl's default --validate=strict.
    let out = kapi.kubectl_with_input(&["create", "-f", "-"], Some(MANIFEST));
    assert_ok("create -f", &out);
    for line in [
        "configmap/web-config created",
        "deployment.apps/web created",
        "service/web created",
    ] {
        assert!(out.1.contains(line), "missing {line:?} in {}", out.1);
    }

    // kubectl found `fieldValidation` on the PATCH operation of the kind's OpenAPI document, so
    // it leaves validation to the server and asks for it on the write.
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: strict\ndata:\n  k: v\n";
    let (ok, stdout, stderr) = kapi.kubectl_with_input(&["create", "-f", "-", "-v=6"], Some(cm));
    assert!(ok, "create -v=6: {stdout}\n{stderr}");
    assert!(
        stderr.contains("/openapi/v3") && stderr.contains("fieldValidation=Strict"),
        "kubectl did not use the OpenAPI documents: {stderr}"
    );

    // explain renders the v3 documents.
    let out = kapi.kubectl(&["explain", "pods.spec"]);
    assert_ok("explain pods.spec", &out);
    assert!(out.1.contains("KIND:       Pod"), "{}", out.1);
    assert!(
        out.1.contains("containers\t<[]Container> -required-"),
        "{}",
        out.1
    );
    assert!(
        out.1.contains("List of containers belonging to the pod."),
        "{}",
        out.1
    );
    let out = kapi.kubectl(&["explain", "deployments.spec.template.spec.containers.ports"]);
    assert_ok("explain deployments…ports", &out);
    assert!(out.1.contains("GROUP:      apps"), "{}", out.1);
    assert!(
        out.1.contains("containerPort\t<integer> -required-"),
        "{}",
        out.1
    );
    let out = kapi.kubectl(&["explain", "clusterroles.rules", "--recursive"]);
    assert_ok("explain clusterroles.rules", &out);
    assert!(out.1.contains("verbs"), "{}", out.1);

    // Client-side apply: creates, then finds nothing to change.
    let out = kapi.kubectl_with_input(&["apply", "-f", "-"], Some(APPLY));
    assert_ok("apply (create)", &out);
    assert!(out.1.contains("configmap/applied created"), "{}", out.1);
    let out = kapi.kubectl_with_input(&["apply", "-f", "-"], Some(APPLY));
    assert_ok("apply (unchanged)", &out);
    assert!(out.1.contains("configmap/applied unchanged"), "{}", out.1);

    // The caching protocol over HTTP.
    let c = kapi.client();
    let idx = c.get("/openapi/v3").await;
    assert_eq!(idx.status, StatusCode::OK);
    assert_eq!(idx.headers["content-type"], "application/json");
    assert_eq!(idx.headers["cache-control"], "no-cache, private");
    let idx_etag = idx.headers["etag"].to_str().unwrap().to_string();
    assert!(idx_etag.starts_with('"') && idx_etag.ends_with('"'));
    let index: Value = idx.json();
    for gv in [
        "api/v1",
        "apis/apps/v1",
        "apis/rbac.authorization.k8s.io/v1",
    ] {
        assert!(index["paths"][gv]["serverRelativeURL"].is_string(), "{gv}");
    }
    let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    let hash = url.split("?hash=").nth(1).unwrap().to_string();

    let doc = c.get(&url).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert_eq!(doc.headers["cache-control"], "public, immutable");
    assert!(doc.headers.contains_key("expires"));
    assert_eq!(doc.headers["etag"].to_str().unwrap(), format!("\"{hash}\""));
    let body: Value = doc.json();
    assert_eq!(body["openapi"], "3.0.0");
    assert!(body["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"].is_object());

    let plain = c.get("/openapi/v3/apis/apps/v1").await;
    assert_eq!(plain.status, StatusCode::OK);
    assert_eq!(plain.headers["cache-control"], "no-cache, private");

    let etag = format!("\"{hash}\"");
    let resp = c
        .send(Method::GET, &url, &[("if-none-match", etag.as_str())], None)
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    let resp = c
        .send(
            Method::GET,
            "/openapi/v3",
            &[("if-none-match", idx_etag.as_str())],
            None,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);

    let resp = c
        .send(
            Method::GET,
            "/openapi/v3/apis/apps/v1?hash=DEADBEEF",
            &[],
            None,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(resp.headers()["location"].to_str().unwrap(), url);

    let missing = c.get("/openapi/v3/apis/nope.example.com/v1").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let v2 = c.get("/openapi/v2").await;
    assert_eq!(v2.status, StatusCode::OK);
    assert_eq!(v2.json()["swagger"], "2.0");
}
