//! kubectl (v1.32) against kapi on etcd and on the embedded store: cold-cache discovery, the
//! JSON fallback tables, `create -f`/`delete -f` of a multi-document file, `-o json`, `-A`,
//! `get -w` and `get --raw` watches, merge patches (`patch`, `label`, `annotate`), and
//! `api-resources`.
//!
//! Every kubectl run is bounded (killed after a deadline) and its stderr is checked for the
//! messages kubectl prints when discovery or a mapping is off ("the server doesn't have a
//! resource type", "unable to recognize", "couldn't get resource list", …).

mod common;

use common::etcd::EtcdServer;
use common::kapi::Kapi;
use http::StatusCode;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const KUBECTL: &str = "/usr/bin/kubectl";

/// Messages that mean kubectl and kapi disagree about discovery or types.
const BAD_STDERR: &[&str] = &[
    "the server doesn't have a resource type",
    "unable to recognize",
    "couldn't get resource list",
    "unable to retrieve the complete list of server APIs",
    "the server could not find the requested resource",
    "no matches for kind",
    "error:",
];

/// A kubectl invocation with its own HOME and cache dir.
struct Kubectl {
    kubeconfig: PathBuf,
    home: PathBuf,
}

struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Kubectl {
    fn new(kapi: &Kapi, home: &str) -> Kubectl {
        let home = kapi.data_dir.join(home);
        std::fs::create_dir_all(&home).expect("kubectl home");
        Kubectl {
            kubeconfig: kapi.kubeconfig.clone(),
            home,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(KUBECTL);
        cmd.arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .args(args)
            .env("HOME", &self.home)
            .env("KUBECACHEDIR", self.home.join("cache"))
            .env_remove("KUBECONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs kubectl to completion (killed after `timeout`).
    fn run_input(&self, args: &[&str], input: Option<&str>, timeout: Duration) -> Output {
        let mut cmd = self.command(args);
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd.spawn().expect("spawn kubectl");
        if let Some(input) = input {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .expect("kubectl stdin");
        }
        let out = read_all(child.stdout.take().unwrap());
        let err = read_all(child.stderr.take().unwrap());
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = child.try_wait().expect("kubectl wait") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "kubectl {args:?} did not finish within {timeout:?}; stderr: {}",
                    err.recv().unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Output {
            ok: status.success(),
            stdout: out.recv().unwrap_or_default(),
            stderr: err.recv().unwrap_or_default(),
        }
    }

    /// Runs kubectl (bounded) and checks its stderr for discovery/mapping complaints.
    fn run(&self, args: &[&str]) -> Output {
        let out = self.run_input(args, None, Duration::from_secs(20));
        check_stderr(args, &out.stderr);
        out
    }

    /// Runs kubectl and asserts success and a quiet stderr.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.ok,
            "kubectl {args:?} failed:\n{}\n{}",
            out.stdout, out.stderr
        );
        assert_eq!(out.stderr.trim(), "", "kubectl {args:?} stderr");
        out.stdout
    }

    /// Starts kubectl in the background; its stdout lines arrive on the returned channel.
    fn spawn_lines(&self, args: &[&str]) -> Background {
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::null());
        let mut child = cmd.spawn().expect("spawn kubectl");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = read_all(child.stderr.take().unwrap());
        Background {
            child,
            lines: rx,
            stderr,
        }
    }
}

fn read_all(mut r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
    });
    rx
}

fn check_stderr(args: &[&str], stderr: &str) {
    for line in stderr.lines() {
        // -v=6 logs are informational; their "Unable to decode … into a Table" is the expected
        // fallback (kapi serves no Table output).
        if line.contains("table_printer.go") || line.contains("round_trippers.go") {
            continue;
        }
        for bad in BAD_STDERR {
            assert!(
                !line.contains(bad),
                "kubectl {args:?} printed {bad:?}: {line}\nfull stderr:\n{stderr}"
            );
        }
    }
}

/// A background kubectl; killed on drop.
struct Background {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Background {
    /// Waits (up to `timeout`) for the next stdout line.
    fn next_line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    fn kill(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_default()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const MANIFEST_NS: &str = "apiVersion: v1
kind: Namespace
metadata:
  name: kctl
";

/// ConfigMap, Deployment (held by a finalizer, so `delete -f` has something to wait for) and
/// Service in namespace `kctl`.
const MANIFEST_OBJECTS: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: kctl
data:
  color: blue
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: kctl
  labels:
    app: web
  finalizers:
  - kapi.test/hold
spec:
  replicas: 3
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
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: kctl
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
";

/// Table rows (whitespace-split columns) of kubectl's default output, header first.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "w"}},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

/// Waits for a `kubectl get -w --output-watch-events` row `<EVENT> <name> …`.
fn expect_watch_row(w: &Background, event: &str, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = w
            .next_line(left)
            .unwrap_or_else(|| panic!("kubectl get -w: no {event} {name} row within 10 s"));
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.first() == Some(&"EVENT") {
            continue; // the header
        }
        assert_eq!(
            cols.get(..2),
            Some(&[event, name][..]),
            "kubectl get -w row: {line}"
        );
        return;
    }
}

async fn kubectl_scenario(kapi: &Kapi) {
    let c = kapi.client();

    // Discovery on a cold cache: exactly `/api` and `/apis` (aggregated discovery), then the list.
    let cold = Kubectl::new(kapi, "cold-home");
    let out = cold.run(&["get", "ns", "-v=6"]);
    assert!(out.ok, "{}", out.stderr);
    let gets: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("round_trippers.go") && l.contains("GET https://"))
        .collect();
    let list_at = gets
        .iter()
        .position(|l| l.contains("/api/v1/namespaces?"))
        .unwrap_or_else(|| panic!("no namespace list in:\n{}", out.stderr));
    let discovery: Vec<String> = gets[..list_at]
        .iter()
        .map(|l| {
            let url = l.split("GET ").nth(1).unwrap().split_whitespace().next();
            let url = url.unwrap();
            assert!(l.contains(" 200 OK"), "discovery request failed: {l}");
            let path = url.splitn(4, '/').nth(3).unwrap_or("");
            format!("/{}", path.split('?').next().unwrap())
        })
        .collect();
    assert_eq!(
        discovery,
        vec!["/api", "/apis"],
        "cold-cache discovery must take exactly two requests:\n{}",
        out.stderr
    );
    assert_eq!(gets.len(), list_at + 1, "nothing after the list");
    // A warm cache needs no discovery at all.
    let out = cold.run(&["get", "ns", "-v=6"]);
    let warm_gets = out
        .stderr
        .lines()
        .filter(|l| l.contains("round_trippers.go") && l.contains("GET https://"))
        .count();
    assert_eq!(warm_gets, 1, "warm cache: only the list\n{}", out.stderr);

    let k = Kubectl::new(kapi, "home");

    // `get ns`: the server-side Table lists the system namespaces.
    let table = rows(&k.ok(&["get", "ns"]));
    assert_eq!(table[0], ["NAME", "STATUS", "AGE"], "table header");
    let names: Vec<&str> = table[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );

    // `create -f` of a multi-document file (namespace first, then its objects).
    let dir = kapi.data_dir.join("manifests");
    std::fs::create_dir_all(&dir).unwrap();
    let all = dir.join("all.yaml");
    let objects = dir.join("objects.yaml");
    std::fs::write(&all, format!("{MANIFEST_NS}---\n{MANIFEST_OBJECTS}")).unwrap();
    std::fs::write(&objects, MANIFEST_OBJECTS).unwrap();
    let all_s = all.to_str().unwrap();
    let objects_s = objects.to_str().unwrap();
    // kubectl validates against the server's OpenAPI schemas first (no --validate=false).
    let out = k.run(&["create", "-f", all_s]);
    assert!(out.ok, "create -f: {}", out.stderr);
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        [
            "namespace/kctl created",
            "configmap/settings created",
            "deployment.apps/web created",
            "service/web created",
        ]
    );
    assert_eq!(out.stderr.trim(), "");

    // `get deploy -o json`: a v1 List of the typed objects.
    let list: Value = serde_json::from_str(&k.ok(&["get", "deploy", "-n", "kctl", "-o", "json"]))
        .expect("kubectl -o json is JSON");
    assert_eq!(list["kind"], "List");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    let d = &items[0];
    assert_eq!(d["apiVersion"], "apps/v1");
    assert_eq!(d["kind"], "Deployment");
    assert_eq!(d["metadata"]["name"], "web");
    assert_eq!(d["metadata"]["namespace"], "kctl");
    assert_eq!(d["metadata"]["generation"], 1);
    assert_eq!(d["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(d["metadata"]["finalizers"], json!(["kapi.test/hold"]));
    assert_eq!(d["metadata"]["uid"].as_str().unwrap().len(), 36);
    assert!(d["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(
        d["spec"]["selector"],
        json!({"matchLabels": {"app": "web"}})
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    let raw = c.get("/apis/apps/v1/namespaces/kctl/deployments/web").await;
    assert_eq!(
        d["metadata"]["resourceVersion"],
        raw.json()["metadata"]["resourceVersion"]
    );

    // `get cm -A`: namespaced rows across namespaces.
    let r = c
        .post_json(
            "/api/v1/namespaces/default/configmaps",
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "in-default"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let table = rows(&k.ok(&["get", "cm", "-A"]));
    assert_eq!(table[0][..2], ["NAMESPACE", "NAME"]);
    let pairs: Vec<(&str, &str)> = table[1..]
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str()))
        .filter(|(_, name)| *name != "kube-root-ca.crt")
        .collect();
    assert_eq!(pairs, [("default", "in-default"), ("kctl", "settings")]);

    // `label` / `annotate` (merge patches).
    assert_eq!(
        k.ok(&["label", "deploy", "web", "-n", "kctl", "tier=front"])
            .trim(),
        "deployment.apps/web labeled"
    );
    let out = k.run_input(
        &["label", "deploy", "web", "-n", "kctl", "tier=back"],
        None,
        Duration::from_secs(20),
    );
    assert!(!out.ok, "relabel without --overwrite must fail");
    assert!(
        out.stderr.contains("already has a value (front)"),
        "{}",
        out.stderr
    );
    k.ok(&[
        "label",
        "deploy",
        "web",
        "-n",
        "kctl",
        "tier=back",
        "--overwrite",
    ]);
    assert_eq!(
        k.ok(&[
            "annotate",
            "cm",
            "settings",
            "-n",
            "kctl",
            "note=hello world"
        ])
        .trim(),
        "configmap/settings annotated"
    );
    k.ok(&["label", "cm", "settings", "-n", "kctl", "stage=1"]);
    k.ok(&["label", "cm", "settings", "-n", "kctl", "stage-"]);
    let d = c
        .get("/apis/apps/v1/namespaces/kctl/deployments/web")
        .await
        .json();
    assert_eq!(
        d["metadata"]["labels"],
        json!({"app": "web", "tier": "back"})
    );
    assert_eq!(
        d["metadata"]["generation"], 1,
        "labels do not bump generation"
    );
    let cm = c
        .get("/api/v1/namespaces/kctl/configmaps/settings")
        .await
        .json();
    assert_eq!(
        cm["metadata"]["annotations"],
        json!({"note": "hello world"})
    );
    assert!(cm["metadata"].get("labels").is_none_or(|l| l == &json!({})));
    assert_eq!(cm["data"], json!({"color": "blue"}));

    // `get pods -w`: ADDED, MODIFIED, DELETED as the pod is created, patched and deleted.
    let mut w = k.spawn_lines(&[
        "get",
        "pods",
        "-n",
        "kctl",
        "-w",
        "--output-watch-events",
        "--request-timeout=60s",
    ]);
    let r = c
        .post_json("/api/v1/namespaces/kctl/pods", &pod("p1"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    expect_watch_row(&w, "ADDED", "p1");
    assert_eq!(
        k.ok(&[
            "patch",
            "pod",
            "p1",
            "-n",
            "kctl",
            "--type=merge",
            "-p",
            r#"{"metadata":{"labels":{"stage":"two"}}}"#,
        ])
        .trim(),
        "pod/p1 patched"
    );
    expect_watch_row(&w, "MODIFIED", "p1");
    let r = c
        .patch(
            "/api/v1/namespaces/kctl/pods/p1",
            "application/merge-patch+json",
            &json!({"metadata": {"annotations": {"raw": "yes"}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["metadata"]["labels"]["stage"], "two");
    expect_watch_row(&w, "MODIFIED", "p1");
    assert_eq!(
        k.ok(&["delete", "pod", "p1", "-n", "kctl"]).trim(),
        "pod \"p1\" deleted"
    );
    expect_watch_row(&w, "DELETED", "p1");
    assert!(
        w.next_line(Duration::from_millis(300)).is_none(),
        "no further rows"
    );
    let stderr = w.kill();
    check_stderr(&["get", "pods", "-w"], &stderr);

    // `get --raw` of a watch: newline-delimited events, ended by timeoutSeconds.
    for name in ["r1", "r2"] {
        let r = c
            .post_json("/api/v1/namespaces/kctl/pods", &pod(name))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    }
    let started = Instant::now();
    let args = ["get", "--raw", "/api/v1/pods?watch=true&timeoutSeconds=3"];
    let out = k.run_input(&args, None, Duration::from_secs(15));
    check_stderr(&args, &out.stderr);
    let took = started.elapsed();
    assert!(out.ok, "get --raw watch: {}", out.stderr);
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_secs(10),
        "timeoutSeconds=3 ended the watch after {took:?}"
    );
    let events: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| {
            assert!(l.starts_with(r#"{"type":"ADDED","object":{"#), "{l}");
            serde_json::from_str(l).expect("watch line is JSON")
        })
        .collect();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["object"]["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["r1", "r2"]);
    assert!(events.iter().all(|e| e["object"]["kind"] == "Pod"));

    // `delete -f` waits until the objects are gone: the Deployment's finalizer holds it.
    let mut del = k.spawn_lines(&["delete", "-f", objects_s, "--timeout=30s"]);
    let mut deleted = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while deleted.len() < 3 {
        let left = deadline.saturating_duration_since(Instant::now());
        deleted.push(
            del.next_line(left)
                .expect("kubectl delete -f reports each deletion"),
        );
    }
    assert_eq!(
        deleted,
        [
            "configmap \"settings\" deleted",
            "deployment.apps \"web\" deleted",
            "service \"web\" deleted",
        ]
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        del.child.try_wait().unwrap().is_none(),
        "kubectl delete -f must wait for the finalizer"
    );
    let r = c.get("/apis/apps/v1/namespaces/kctl/deployments/web").await;
    assert_eq!(r.status, StatusCode::OK, "held by its finalizer");
    assert!(r.json()["metadata"]["deletionTimestamp"].is_string());
    let r = c
        .patch(
            "/apis/apps/v1/namespaces/kctl/deployments/web",
            "application/merge-patch+json",
            &json!({"metadata": {"finalizers": null}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = del.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "kubectl delete -f did not return"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let stderr = del.kill();
    assert!(status.success(), "kubectl delete -f: {stderr}");
    check_stderr(&["delete", "-f"], &stderr);
    for path in [
        "/api/v1/namespaces/kctl/configmaps/settings",
        "/apis/apps/v1/namespaces/kctl/deployments/web",
        "/api/v1/namespaces/kctl/services/web",
    ] {
        let r = c.get(path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text());
    }
    // Deleting the namespace waits for its finalization.
    assert_eq!(
        k.ok(&["delete", "ns", "kctl", "--timeout=30s"]).trim(),
        "namespace \"kctl\" deleted"
    );
    let r = c.get("/api/v1/namespaces/kctl").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    let r = c.get("/api/v1/namespaces/kctl/pods/r1").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // `api-resources` lists every served resource, and each one can be listed.
    let table = rows(&k.ok(&["api-resources"]));
    assert_eq!(
        table[0],
        ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    );
    let listed: Vec<(String, String, String, String)> = table[1..]
        .iter()
        .map(|r| {
            let n = r.len();
            assert!(n == 4 || n == 5, "row {r:?}");
            (
                r[0].clone(),
                r[n - 3].clone(),
                r[n - 2].clone(),
                r[n - 1].clone(),
            )
        })
        .collect();
    let mut want = Vec::new();
    for r in kapi::api::catalogue::all()
        .iter()
        .chain(kapi::api::catalogue::review_resources())
    {
        let gv = if r.group.is_empty() {
            r.version.to_string()
        } else {
            format!("{}/{}", r.group, r.version)
        };
        want.push((
            r.plural.to_string(),
            gv,
            r.namespaced.to_string(),
            r.kind.to_string(),
        ));
    }
    for w in &want {
        assert!(listed.contains(w), "api-resources lacks {w:?}");
    }
    assert_eq!(listed.len(), want.len(), "api-resources lists {listed:?}");
    let every: Vec<String> = kapi::api::catalogue::all()
        .iter()
        .map(|r| {
            if r.group.is_empty() {
                r.plural.to_string()
            } else {
                format!("{}.{}", r.plural, r.group)
            }
        })
        .collect();
    let out = k.ok(&["get", &every.join(","), "-A", "-o", "name"]);
    assert!(
        out.lines().any(|l| l == "namespace/default"),
        "get of every resource: {out}"
    );
    assert!(out.lines().any(|l| l == "configmap/in-default"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_on_etcd() {
    let etcd = EtcdServer::start();
    let kapi = Kapi::on_etcd(&etcd);
    kubectl_scenario(&kapi).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_on_embedded_store() {
    let kapi = Kapi::embedded();
    kubectl_scenario(&kapi).await;
}
