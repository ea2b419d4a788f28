//! kubectl's strategic-merge-patch workflows against kapi (embedded store and etcd): client-side
//! `apply -f` of a multi-document manifest and its 3-way patch on re-apply, `edit` with a
//! scripted editor, `set image`, `patch --type=strategic`, and server-side field validation
//! (`create -f` with an unknown field under the default Strict, `--validate=warn`,
//! `--validate=false`).

mod common;

use common::etcd::EtcdServer;
use common::kapi::Kapi;
use serde_json::{json, Value};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// kubectl with its own HOME and cache, bounded in time, with extra environment variables.
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
    fn new(kapi: &Kapi) -> Kubectl {
        let home = kapi.data_dir.join("kubectl-apply-home");
        std::fs::create_dir_all(&home).expect("kubectl home");
        Kubectl {
            kubeconfig: kapi.kubeconfig.clone(),
            home,
        }
    }

    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new("kubectl");
        cmd.arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .args(args)
            .env("HOME", &self.home)
            .env("KUBECACHEDIR", self.home.join("cache"))
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("kubectl on PATH");
        let out = read_all(child.stdout.take().unwrap());
        let err = read_all(child.stderr.take().unwrap());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.try_wait().expect("kubectl wait") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("kubectl {args:?} did not finish within 30 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Output {
            ok: status.success(),
            stdout: out.recv().unwrap_or_default(),
            stderr: err.recv().unwrap_or_default(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_env(args, &[])
    }

    /// Runs kubectl, asserting success and an empty stderr; returns stdout.
    #[track_caller]
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

    #[track_caller]
    fn get(&self, what: &str) -> Value {
        serde_json::from_str(&self.ok(&["get", what, "-o", "json"])).expect("kubectl -o json")
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

fn write_file(dir: &Path, name: &str, content: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, content).expect("write test file");
    p.display().to_string()
}

/// A Deployment, a Service and a ConfigMap in one file.
fn manifest(replicas: u32, extra_env: bool, https_port: bool) -> String {
    let env_b = if extra_env {
        "\n        - name: B\n          value: \"2\""
    } else {
        ""
    };
    let port_443 = if https_port {
        "\n        - containerPort: 443\n          name: https"
    } else {
        ""
    };
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: app
        image: nginx:1
        args: ["--port", "80"]
        env:
        - name: A
          value: "1"{env_b}
        ports:
        - containerPort: 80
          name: http{port_443}
        resources:
          limits:
            memory: 64Mi
      - name: sidecar
        image: busybox:1
        command: ["sleep", "3600"]
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 80
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  mode: production
  level: info
"#
    )
}

fn containers(d: &Value) -> &Vec<Value> {
    d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
}

fn container<'a>(d: &'a Value, name: &str) -> &'a Value {
    containers(d)
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("container {name} in {d}"))
}

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj["metadata"]["annotations"][key].as_str()
}

fn scenario(kapi: &Kapi) {
    let k = Kubectl::new(kapi);
    let dir = kapi.data_dir.join("manifests");
    std::fs::create_dir_all(&dir).unwrap();

    // --- apply -f: first apply creates all three objects -------------------------------------
    let v1 = write_file(&dir, "v1.yaml", &manifest(2, false, true));
    let out = k.ok(&["apply", "-f", &v1]);
    assert!(out.contains("deployment.apps/web created"), "{out}");
    assert!(out.contains("service/web created"), "{out}");
    assert!(out.contains("configmap/web-config created"), "{out}");
    let d1 = k.get("deployment/web");
    let s1 = k.get("service/web");
    let c1 = k.get("configmap/web-config");
    assert!(annotation(&d1, "kubectl.kubernetes.io/last-applied-configuration").is_some());
    assert_eq!(d1["spec"]["replicas"], 2);
    let ports: Vec<&Value> = container(&d1, "app")["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["containerPort"])
        .collect();
    assert_eq!(ports, vec![&json!(80), &json!(443)]);

    // An out-of-band change that a 3-way apply must keep.
    k.ok(&["label", "deployment/web", "team=blue"]);
    let d1 = k.get("deployment/web");

    // --- apply -f again: add an env var, change replicas, remove a container port ------------
    let v2 = write_file(&dir, "v2.yaml", &manifest(3, true, false));
    let out = k.ok(&["apply", "-f", &v2]);
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    assert!(out.contains("service/web unchanged"), "{out}");
    assert!(out.contains("configmap/web-config unchanged"), "{out}");
    let d2 = k.get("deployment/web");

    // Exactly the three changes: rebuild the expected spec from the old one.
    let mut want = d1["spec"].clone();
    want["replicas"] = json!(3);
    let app = want["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c["name"] == "app")
        .unwrap();
    app["env"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "B", "value": "2"}));
    app["ports"]
        .as_array_mut()
        .unwrap()
        .retain(|p| p["containerPort"] != 443);
    assert_eq!(d2["spec"], want, "spec after re-apply");
    assert_eq!(
        d2["metadata"]["labels"]["team"], "blue",
        "out-of-band label kept"
    );
    assert_eq!(d2["metadata"]["uid"], d1["metadata"]["uid"]);
    assert_eq!(
        d2["metadata"]["generation"].as_i64().unwrap(),
        d1["metadata"]["generation"].as_i64().unwrap() + 1
    );
    let applied: Value = serde_json::from_str(
        annotation(&d2, "kubectl.kubernetes.io/last-applied-configuration").unwrap(),
    )
    .unwrap();
    assert_eq!(applied["spec"]["replicas"], 3);
    // The untouched objects were not written.
    let s2 = k.get("service/web");
    let c2 = k.get("configmap/web-config");
    assert_eq!(
        s2["metadata"]["resourceVersion"],
        s1["metadata"]["resourceVersion"]
    );
    assert_eq!(
        c2["metadata"]["resourceVersion"],
        c1["metadata"]["resourceVersion"]
    );
    assert_eq!(c2["data"], json!({"mode": "production", "level": "info"}));

    // Re-applying the same file changes nothing.
    let out = k.ok(&["apply", "-f", &v2]);
    assert!(out.contains("deployment.apps/web unchanged"), "{out}");
    assert_eq!(
        k.get("deployment/web")["metadata"]["resourceVersion"],
        d2["metadata"]["resourceVersion"]
    );

    // --- edit with a scripted editor ---------------------------------------------------------
    let editor = write_file(
        &dir,
        "editor.sh",
        "#!/bin/sh\nsed -i -e 's/replicas: 3$/replicas: 4/' -e 's/value: \"2\"$/value: \"two\"/' \"$1\"\n",
    );
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = k.run_env(&["edit", "deployment/web"], &[("KUBE_EDITOR", &editor)]);
    assert!(
        out.ok,
        "kubectl edit failed:\n{}\n{}",
        out.stdout, out.stderr
    );
    assert!(
        out.stdout.contains("deployment.apps/web edited"),
        "{}",
        out.stdout
    );
    let d3 = k.get("deployment/web");
    assert_eq!(d3["spec"]["replicas"], 4);
    assert_eq!(
        container(&d3, "app")["env"],
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "two"}])
    );
    assert_eq!(container(&d3, "sidecar"), container(&d2, "sidecar"));

    // --- set image ---------------------------------------------------------------------------
    let out = k.ok(&["set", "image", "deployment/web", "app=nginx:2"]);
    assert!(out.contains("deployment.apps/web image updated"), "{out}");
    let d4 = k.get("deployment/web");
    assert_eq!(container(&d4, "app")["image"], "nginx:2");
    let mut app3 = container(&d3, "app").clone();
    app3["image"] = json!("nginx:2");
    assert_eq!(container(&d4, "app"), &app3, "only the image changed");
    assert_eq!(container(&d4, "sidecar")["image"], "busybox:1");

    // --- patch --type=strategic: env merges by name, $patch: delete removes one --------------
    let out = k.ok(&[
        "patch",
        "deployment/web",
        "--type=strategic",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"app","env":[{"name":"C","value":"3"},{"name":"A","$patch":"delete"}]}]}}}}"#,
    ]);
    assert!(out.contains("deployment.apps/web patched"), "{out}");
    let d5 = k.get("deployment/web");
    // Without $setElementOrder, kube-apiserver puts the patch's new items before live-only ones.
    assert_eq!(
        container(&d5, "app")["env"],
        json!([{"name": "C", "value": "3"}, {"name": "B", "value": "two"}])
    );
    assert_eq!(containers(&d5).len(), 2);
    // The default patch type of kubectl patch is strategic too: a new container is added.
    k.ok(&[
        "patch",
        "deployment/web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"extra","image":"redis:7"}]}}}}"#,
    ]);
    let d6 = k.get("deployment/web");
    let names: Vec<&str> = containers(&d6)
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&"extra") && names.contains(&"app") && names.contains(&"sidecar"));
    // A list item without its merge key is the server's plain 500.
    let out = k.run(&[
        "patch",
        "deployment/web",
        "--type=strategic",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}"#,
    ]);
    assert!(!out.ok);
    assert!(
        out.stderr
            .contains("does not contain declared merge key: name"),
        "{}",
        out.stderr
    );
    // Strategic merge patch of a finalizer list.
    k.ok(&[
        "patch",
        "configmap/web-config",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/a","example.com/b"]}}"#,
    ]);
    k.ok(&[
        "patch",
        "configmap/web-config",
        "-p",
        r#"{"metadata":{"$deleteFromPrimitiveList/finalizers":["example.com/a"]}}"#,
    ]);
    assert_eq!(
        k.get("configmap/web-config")["metadata"]["finalizers"],
        json!(["example.com/b"])
    );
    k.ok(&[
        "patch",
        "configmap/web-config",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);

    // --- server-side field validation ---------------------------------------------------------
    let bad = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: NAME
spec:
  foo: bar
  selector:
    matchLabels:
      app: bad
  template:
    metadata:
      labels:
        app: bad
    spec:
      containers:
      - name: c
        image: nginx
        imagee: typo
"#;
    let strict = write_file(&dir, "strict.yaml", &bad.replace("NAME", "strict"));
    let out = k.run(&["create", "-f", &strict]);
    assert!(!out.ok, "create with unknown fields must fail");
    assert!(
        out.stderr.contains(r#"Error from server (BadRequest)"#),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(r#"Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "spec.foo", unknown field "spec.template.spec.containers[0].imagee""#),
        "{}",
        out.stderr
    );
    let out = k.run(&["get", "deployment/strict"]);
    assert!(!out.ok, "nothing was created");

    let warn = write_file(&dir, "warn.yaml", &bad.replace("NAME", "warned"));
    let out = k.run(&["create", "--validate=warn", "-f", &warn]);
    assert!(
        out.ok,
        "create --validate=warn:\n{}\n{}",
        out.stdout, out.stderr
    );
    assert!(
        out.stdout.contains("deployment.apps/warned created"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains(r#"Warning: unknown field "spec.foo""#),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(r#"Warning: unknown field "spec.template.spec.containers[0].imagee""#),
        "{}",
        out.stderr
    );
    let warned = k.get("deployment/warned");
    assert!(
        warned["spec"].get("foo").is_none(),
        "unknown fields are dropped"
    );
    assert!(container(&warned, "c").get("imagee").is_none());

    let ignore = write_file(&dir, "ignore.yaml", &bad.replace("NAME", "ignored"));
    let out = k.run(&["create", "--validate=false", "-f", &ignore]);
    assert!(out.ok, "{}", out.stderr);
    assert!(!out.stderr.contains("Warning"), "{}", out.stderr);
    assert!(k.get("deployment/ignored")["spec"].get("foo").is_none());

    // kubectl patch sends no fieldValidation: the server default (Warn) applies to the patched
    // object, and the unknown field is dropped.
    let out = k.run(&["patch", "deployment/web", "-p", r#"{"spec":{"bogus":1}}"#]);
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(r#"Warning: unknown field "spec.bogus""#),
        "{}",
        out.stderr
    );
    assert!(k.get("deployment/web")["spec"].get("bogus").is_none());

    // Deleting what apply created works with the same file.
    let out = k.ok(&["delete", "-f", &v2, "--wait=false"]);
    assert!(out.contains("deployment.apps \"web\" deleted"), "{out}");
}

#[test]
fn kubectl_apply_on_embedded_store() {
    let kapi = Kapi::embedded();
    scenario(&kapi);
}

#[test]
fn kubectl_apply_on_etcd() {
    let etcd = EtcdServer::start();
    let kapi = Kapi::on_etcd(&etcd);
    scenario(&kapi);
}

/// Raw requests: fieldValidation values, Warning headers, the strict 400/422 bodies and 415 for
/// apply patches, over the harness's HTTPS client.
#[tokio::test]
async fn field_validation_over_http() {
    let kapi = Kapi::embedded();
    let c = kapi.client();
    let cm = |name: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "1"}, "bogus": true});
    let path = "/api/v1/namespaces/default/configmaps";

    let r = c
        .post_json(&format!("{path}?fieldValidation=Strict"), &cm("s"))
        .await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text());
    let body = r.json();
    assert_eq!(body["reason"], "BadRequest");
    assert_eq!(
        body["message"],
        r#"ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "bogus""#
    );

    let r = c.post_json(path, &cm("w")).await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text());
    let warnings: Vec<&str> = r
        .headers
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(warnings, vec![r#"299 - "unknown field \"bogus\"""#]);
    assert!(r.json().get("bogus").is_none());

    let r = c
        .post_json(&format!("{path}?fieldValidation=Ignore"), &cm("i"))
        .await;
    assert_eq!(r.status.as_u16(), 201);
    assert!(r.headers.get("warning").is_none());

    let r = c
        .post_json(&format!("{path}?fieldValidation=Loud"), &cm("x"))
        .await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.text());
    assert_eq!(
        r.json()["message"],
        r#"CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "Loud": supported values: "", "Ignore", "Strict", "Warn""#
    );

    // Duplicate fields in a raw body.
    let r = c
        .request(
            http::Method::POST,
            &format!("{path}?fieldValidation=Strict"),
            Some("application/json"),
            Some(
                br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"d","name":"d"}}"#
                    .to_vec(),
            ),
        )
        .await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text());
    assert!(
        r.text().contains(r#"duplicate field \"metadata.name\""#),
        "{}",
        r.text()
    );

    // Strategic merge patch with an unknown field: 422 under Strict, a warning under Warn.
    let smp = |q: &str| format!("{path}/w{q}");
    let r = c
        .patch(
            &smp("?fieldValidation=Strict"),
            "application/strategic-merge-patch+json",
            &json!({"data": {"b": "2"}, "nope": 1}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.text());
    let body = r.json();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .ends_with(r#"strict decoding error: unknown field "nope""#),
        "{body}"
    );
    assert_eq!(body["details"]["causes"][0]["field"], "patch");
    let r = c
        .patch(
            &smp(""),
            "application/strategic-merge-patch+json",
            &json!({"data": {"b": "2"}, "nope": 1}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    assert_eq!(
        r.headers.get("warning").unwrap().to_str().unwrap(),
        r#"299 - "unknown field \"nope\"""#
    );
    assert_eq!(r.json()["data"], json!({"a": "1", "b": "2"}));

    // Server-side apply needs a field manager.
    let r = c
        .patch(&smp(""), "application/apply-patch+yaml", &json!({}))
        .await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.text());
}
