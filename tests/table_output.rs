//! Server-side printing (API-SEMANTICS §7 "Table output", "Metadata-only and media types"):
//! kubectl's tables (`get`, `-o wide`, several kinds at once, `-w`) and the raw `Table`,
//! `PartialObjectMetadata` and `PartialObjectMetadataList` representations, through the real
//! binary on its embedded store.

mod common;

use common::kapi::{Kapi, RawClient, RawResponse};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

async fn get_as(c: &RawClient, path: &str, accept: &str) -> RawResponse {
    let resp = tokio::time::timeout(
        Duration::from_secs(30),
        c.send(Method::GET, path, &[("accept", accept)], None),
    )
    .await
    .expect("request timed out");
    let (parts, body) = resp.into_parts();
    RawResponse {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.expect("body").to_bytes(),
    }
}

async fn create(c: &RawClient, path: &str, body: Value) -> Value {
    let r = c.post_json(path, &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "POST {path}: {}", r.text());
    r.json()
}

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "web"}},
           "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox"}, {"name": "d", "image": "nginx"}]}})
}

/// Namespace `tbl` with a running pod `web` (one of two containers ready, three restarts),
/// a pending pod `idle`, a deployment, a service, a configmap and a secret.
async fn populate(c: &RawClient) {
    create(
        c,
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tbl"}}),
    )
    .await;
    create(c, "/api/v1/namespaces/tbl/pods", pod("web")).await;
    create(c, "/api/v1/namespaces/tbl/pods", pod("idle")).await;
    let status = json!({"status": {
    "phase": "Running", "podIP": "10.1.2.3", "podIPs": [{"ip": "10.1.2.3"}],
    "conditions": [{"type": "Ready", "status": "False"}],
    "containerStatuses": [
        {"name": "c", "ready": true, "restartCount": 0, "image": "busybox", "imageID": "", "state": {"running": {"startedAt": "2024-05-01T10:00:00Z"}}},
        {"name": "d", "ready": false, "restartCount": 3, "image": "nginx", "imageID": "", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
    ]}});
    let r = c
        .patch(
            "/api/v1/namespaces/tbl/pods/web/status",
            "application/merge-patch+json",
            &status,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    create(
        c,
        "/apis/apps/v1/namespaces/tbl/deployments",
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}}}),
    )
    .await;
    create(
        c,
        "/api/v1/namespaces/tbl/services",
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}),
    )
    .await;
    create(
        c,
        "/api/v1/namespaces/tbl/configmaps",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"a": "1", "b": "2"}}),
    )
    .await;
    create(
        c,
        "/api/v1/namespaces/tbl/secrets",
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "type": "Opaque", "data": {"k": "dg=="}}),
    )
    .await;
}

/// Whitespace-split rows of kubectl's table output, blank lines dropped.
fn rows(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

fn row<'a>(table: &'a [Vec<String>], name: &str) -> &'a [String] {
    table
        .iter()
        .find(|r| r.first().map(String::as_str) == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in {table:?}"))
}

fn kubectl_ok(kapi: &Kapi, args: &[&str]) -> String {
    let (ok, out, err) = kapi.kubectl(args);
    assert!(ok, "kubectl {args:?} failed:\n{out}\n{err}");
    assert!(
        !err.contains("Unable to decode") && !err.contains("error"),
        "kubectl {args:?} stderr: {err}"
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_prints_server_side_tables() {
    let kapi = Kapi::embedded();
    let c = kapi.client();
    populate(&c).await;

    let pods = rows(&kubectl_ok(&kapi, &["get", "pods", "-n", "tbl"]));
    assert_eq!(pods[0], ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert_eq!(row(&pods, "web")[1..4], ["1/2", "CrashLoopBackOff", "3"]);
    assert_eq!(row(&pods, "idle")[1..4], ["0/2", "Pending", "0"]);
    let age = &row(&pods, "web")[4];
    assert!(age.ends_with('s') || age.ends_with('m'), "age {age}");

    let wide = rows(&kubectl_ok(
        &kapi,
        &["get", "pods", "-n", "tbl", "-o", "wide"],
    ));
    assert_eq!(
        wide[0],
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED",
            "NODE",
            "READINESS",
            "GATES"
        ]
    );
    assert_eq!(
        row(&wide, "web")[5..],
        ["10.1.2.3", "node-1", "<none>", "<none>"]
    );
    assert_eq!(
        row(&wide, "idle")[5..],
        ["<none>", "node-1", "<none>", "<none>"]
    );

    let out = kubectl_ok(&kapi, &["get", "deploy,svc,cm,ns,secrets", "-n", "tbl"]);
    let all = rows(&out);
    // Each kind gets its own header line, followed by its rows.
    let header = |first: &str| -> Vec<String> {
        (0..all.len().saturating_sub(1))
            .find(|&i| all[i][0] == "NAME" && all[i + 1][0].starts_with(first))
            .map(|i| all[i].clone())
            .unwrap_or_else(|| panic!("no table of {first} in:\n{out}"))
    };
    assert_eq!(
        header("deployment.apps/"),
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    );
    assert_eq!(row(&all, "deployment.apps/web")[1..4], ["0/3", "0", "0"]);
    assert_eq!(
        header("service/"),
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    let svc = row(&all, "service/web");
    assert_eq!(
        (svc[1].as_str(), svc[3].as_str(), svc[4].as_str()),
        ("ClusterIP", "<none>", "80/TCP")
    );
    assert_eq!(header("configmap/"), ["NAME", "DATA", "AGE"]);
    assert_eq!(row(&all, "configmap/settings")[1], "2");
    assert_eq!(header("namespace/"), ["NAME", "STATUS", "AGE"]);
    assert_eq!(row(&all, "namespace/tbl")[1], "Active");
    assert_eq!(row(&all, "namespace/default")[1], "Active");
    assert_eq!(header("secret/"), ["NAME", "TYPE", "DATA", "AGE"]);
    assert_eq!(row(&all, "secret/creds")[1..3], ["Opaque", "1"]);

    // A kind without a printer: the default Name / Created At columns.
    let roles = rows(&kubectl_ok(&kapi, &["get", "clusterroles"]));
    assert_eq!(roles[0], ["NAME", "CREATED", "AT"]);
    assert!(
        row(&roles, "cluster-admin")[1].ends_with('Z'),
        "{:?}",
        roles[1]
    );

    // Sorting asks for whole objects (includeObject=Object).
    let sorted = rows(&kubectl_ok(
        &kapi,
        &["get", "pods", "-n", "tbl", "--sort-by=.metadata.name"],
    ));
    assert_eq!(
        (sorted[1][0].as_str(), sorted[2][0].as_str()),
        ("idle", "web")
    );
    // -o json is unaffected.
    let list: Value = serde_json::from_str(&kubectl_ok(
        &kapi,
        &["get", "pods", "-n", "tbl", "-o", "json"],
    ))
    .unwrap();
    assert_eq!(list["items"][0]["kind"], "Pod");
}

/// A background `kubectl get -w`; killed on drop.
struct Watching {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Watching {
    fn start(kapi: &Kapi, args: &[&str]) -> Watching {
        let home = kapi.data_dir.join("kubectl-home");
        std::fs::create_dir_all(&home).unwrap();
        let mut child = Command::new("kubectl")
            .arg(format!("--kubeconfig={}", kapi.kubeconfig.display()))
            .args(args)
            .env("HOME", &home)
            .env("KUBECACHEDIR", home.join("cache"))
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl on PATH");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (etx, stderr) = mpsc::channel();
        let mut err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            let _ = etx.send(s);
        });
        Watching {
            child,
            lines,
            stderr,
        }
    }

    /// The next line whose first column is `name` (within 10 s), split on whitespace.
    fn row(&self, name: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("kubectl get -w: no {name} row within 10 s"));
            let cols: Vec<String> = line.split_whitespace().map(str::to_string).collect();
            if cols.first().map(String::as_str) == Some(name) {
                return cols;
            }
        }
    }

    fn kill(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_default()
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_watch_prints_rows() {
    let kapi = Kapi::embedded();
    let c = kapi.client();
    create(
        &c,
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tbl"}}),
    )
    .await;
    create(&c, "/api/v1/namespaces/tbl/pods", pod("first")).await;

    let mut w = Watching::start(&kapi, &["get", "pods", "-n", "tbl", "-w"]);
    // The list: header and the existing pod.
    assert_eq!(
        w.row("NAME"),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    assert_eq!(w.row("first")[1..4], ["0/2", "Pending", "0"]);
    // Watch events: one row each, no header.
    create(&c, "/api/v1/namespaces/tbl/pods", pod("second")).await;
    assert_eq!(w.row("second")[1..4], ["0/2", "Pending", "0"]);
    let status = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [
            {"name": "c", "ready": true, "restartCount": 0, "image": "busybox", "imageID": "", "state": {"running": {}}},
            {"name": "d", "ready": true, "restartCount": 1, "image": "nginx", "imageID": "", "state": {"running": {}}}]}});
    let r = c
        .patch(
            "/api/v1/namespaces/tbl/pods/second/status",
            "application/merge-patch+json",
            &status,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(w.row("second")[1..4], ["2/2", "Running", "1"]);
    let r = c.delete("/api/v1/namespaces/tbl/pods/first").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(w.row("first")[0], "first");
    let stderr = w.kill();
    assert!(
        !stderr.contains("Unable to decode") && !stderr.contains("error"),
        "kubectl get -w stderr: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_table_and_metadata_representations() {
    let kapi = Kapi::embedded();
    let c = kapi.client();
    populate(&c).await;

    // A list as a Table with whole objects.
    let r = get_as(
        &c,
        "/api/v1/namespaces/tbl/pods?includeObject=Object",
        TABLE,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.headers["content-type"], "application/json");
    let t = r.json();
    assert_eq!(
        (t["kind"].as_str(), t["apiVersion"].as_str()),
        (Some("Table"), Some("meta.k8s.io/v1"))
    );
    assert!(t["metadata"]["resourceVersion"]
        .as_str()
        .is_some_and(|rv| !rv.is_empty()));
    let cols: Vec<(&str, i64)> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["priority"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        cols,
        [
            ("Name", 0),
            ("Ready", 0),
            ("Status", 0),
            ("Restarts", 0),
            ("Age", 0),
            ("IP", 1),
            ("Node", 1),
            ("Nominated Node", 1),
            ("Readiness Gates", 1)
        ]
    );
    assert_eq!(t["columnDefinitions"][0]["format"], "name");
    let rows = t["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let web = rows.iter().find(|r| r["cells"][0] == "web").unwrap();
    assert_eq!(
        web["cells"].as_array().unwrap()[1..4],
        [json!("1/2"), json!("CrashLoopBackOff"), json!("3")]
    );
    assert_eq!(web["cells"][5], "10.1.2.3");
    assert_eq!(web["object"]["kind"], "Pod");
    assert_eq!(web["object"]["spec"]["nodeName"], "node-1");

    // Paging carries over into the Table.
    let r = get_as(&c, "/api/v1/namespaces/tbl/pods?limit=1", TABLE).await;
    let t = r.json();
    assert_eq!(t["rows"].as_array().unwrap().len(), 1);
    assert!(
        t["metadata"]["continue"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{t}"
    );
    assert_eq!(t["metadata"]["remainingItemCount"], 1);
    // The default embeds PartialObjectMetadata.
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(t["rows"][0]["object"]["apiVersion"], "meta.k8s.io/v1");

    // One object, v1beta1, no object.
    let pod = c.get("/api/v1/namespaces/tbl/pods/web").await.json();
    let r = get_as(
        &c,
        "/api/v1/namespaces/tbl/pods/web?includeObject=None",
        "application/json;as=Table;v=v1beta1;g=meta.k8s.io",
    )
    .await;
    let t = r.json();
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1beta1");
    assert_eq!(
        t["metadata"]["resourceVersion"],
        pod["metadata"]["resourceVersion"]
    );
    assert_eq!(t["rows"][0]["object"], Value::Null);
    let r = get_as(
        &c,
        "/api/v1/namespaces/tbl/pods/web?includeObject=Everything",
        TABLE,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());

    // Other kinds: printer columns, and the default convertor.
    let t = get_as(&c, "/apis/apps/v1/namespaces/tbl/deployments", TABLE)
        .await
        .json();
    assert_eq!(
        t["rows"][0]["cells"].as_array().unwrap()[..4],
        [json!("web"), json!("0/3"), json!(0), json!(0)]
    );
    assert_eq!(t["rows"][0]["cells"][7], "app=web");
    let t = get_as(
        &c,
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/cluster-admin",
        TABLE,
    )
    .await
    .json();
    assert_eq!(t["columnDefinitions"][1]["name"], "Created At");
    assert_eq!(t["columnDefinitions"][1]["type"], "date");

    // PartialObjectMetadataList for a list, PartialObjectMetadata for one object.
    let meta_list =
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
    let l = get_as(&c, "/api/v1/namespaces/tbl/pods", meta_list)
        .await
        .json();
    assert_eq!(
        (l["kind"].as_str(), l["apiVersion"].as_str()),
        (Some("PartialObjectMetadataList"), Some("meta.k8s.io/v1"))
    );
    assert!(l["metadata"]["resourceVersion"].is_string());
    let items = l["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    for item in items {
        assert_eq!(item["kind"], "PartialObjectMetadata");
        assert_eq!(item["metadata"]["namespace"], "tbl");
        assert!(
            item.get("spec").is_none() && item.get("status").is_none(),
            "{item}"
        );
    }
    let p = get_as(
        &c,
        "/api/v1/namespaces/tbl/pods/web",
        "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
    )
    .await
    .json();
    assert_eq!(p["kind"], "PartialObjectMetadata");
    assert_eq!(p["metadata"], pod["metadata"]);
    // Asking for the wrong one is 406; nothing acceptable is 406.
    let r = get_as(
        &c,
        "/api/v1/namespaces/tbl/pods",
        "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE, "{}", r.text());
    let r = get_as(
        &c,
        "/api/v1/namespaces/tbl/pods",
        "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io",
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE, "{}", r.text());
    // The metadata client's protobuf list.
    let r = get_as(
        &c,
        "/api/v1/namespaces/tbl/pods",
        "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json",
    )
    .await;
    assert_eq!(
        r.headers["content-type"],
        "application/vnd.kubernetes.protobuf"
    );
    assert!(r.body.starts_with(b"k8s\0"));
    assert!(r
        .body
        .windows(25)
        .any(|w| w == b"PartialObjectMetadataList"));
}

/// Reads newline-delimited watch events from a response.
async fn watch_events(c: &RawClient, path: &str, accept: &str, n: usize) -> Vec<Value> {
    let resp = c.send(Method::GET, path, &[("accept", accept)], None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while out.len() < n {
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            out.push(serde_json::from_slice(&line[..line.len() - 1]).expect("event is JSON"));
        }
        if out.len() >= n {
            break;
        }
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .expect("watch events in time")
            .expect("stream open")
            .expect("frame");
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_watches_in_tables_and_metadata() {
    let kapi = Kapi::embedded();
    let c = kapi.client();
    populate(&c).await;

    // Initial events (resourceVersion=0): one Table per event, columns only in the first.
    let events = watch_events(
        &c,
        "/api/v1/namespaces/tbl/pods?watch=1&resourceVersion=0&timeoutSeconds=5",
        TABLE,
        2,
    )
    .await;
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["kind"], "Table");
    assert_eq!(
        events[0]["object"]["columnDefinitions"]
            .as_array()
            .unwrap()
            .len(),
        9
    );
    assert_eq!(events[1]["object"]["columnDefinitions"], Value::Null);
    for e in &events {
        let rows = e["object"]["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(
            e["object"]["metadata"]["resourceVersion"],
            rows[0]["object"]["metadata"]["resourceVersion"]
        );
    }

    // Metadata-only watch events, including the bookmark that ends the initial events.
    let events = watch_events(
        &c,
        "/api/v1/namespaces/tbl/configmaps?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=5&fieldSelector=metadata.name%21%3Dkube-root-ca.crt",
        "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json",
        2,
    )
    .await;
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(
        events[0]["object"]["kind"], "PartialObjectMetadata",
        "{}",
        events[0]
    );
    assert_eq!(events[0]["object"]["metadata"]["name"], "settings");
    assert!(events[0]["object"].get("data").is_none());
    assert_eq!(events[1]["type"], "BOOKMARK");
    assert_eq!(events[1]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(
        events[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );

    // Plain watchers are untouched.
    let events = watch_events(
        &c,
        "/api/v1/namespaces/tbl/configmaps?watch=1&resourceVersion=0&timeoutSeconds=5&fieldSelector=metadata.name%3Dsettings",
        "application/json",
        1,
    )
    .await;
    assert_eq!(events[0]["object"]["kind"], "ConfigMap");
    assert_eq!(events[0]["object"]["data"]["a"], "1");
}
