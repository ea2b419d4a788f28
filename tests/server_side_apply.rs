//! Server-side apply through kubectl: idempotent re-apply, conflicts with another field manager
//! (409 with the real message), --force-conflicts taking ownership, and managedFields.

mod common;

use common::etcd::EtcdServer;
use common::kapi::Kapi;

const V1: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: ssa
  namespace: default
spec:
  replicas: 2
  selector:
    matchLabels: {app: ssa}
  template:
    metadata:
      labels: {app: ssa}
    spec:
      containers:
      - name: c
        image: nginx:1
";

fn scenario(kapi: &Kapi) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("d.yaml");
    std::fs::write(&file, V1).unwrap();
    let f = file.to_str().unwrap();
    let (ok, out, err) = kapi.kubectl(&["apply", "--server-side", "-f", f]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("serverside-applied"), "{out}");
    let (ok, out, err) = kapi.kubectl(&["apply", "--server-side", "-f", f]);
    assert!(ok, "second apply: {out}{err}");
    let (_, before, _) = kapi.kubectl(&[
        "get",
        "deploy",
        "ssa",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);

    // Another manager sets replicas: conflict.
    let other = V1.replace("replicas: 2", "replicas: 5");
    std::fs::write(&file, &other).unwrap();
    let (ok, out, err) =
        kapi.kubectl(&["apply", "--server-side", "--field-manager=other", "-f", f]);
    assert!(!ok, "conflict expected: {out}");
    assert!(
        err.contains("Apply failed with")
            && err.contains("conflict with \"kubectl\"")
            && err.contains(".spec.replicas"),
        "{err}"
    );
    let (_, after, _) = kapi.kubectl(&[
        "get",
        "deploy",
        "ssa",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    assert_eq!(before, after, "a conflicting apply writes nothing");

    // --force-conflicts takes ownership.
    let (ok, out, err) = kapi.kubectl(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "--force-conflicts",
        "-f",
        f,
    ]);
    assert!(ok, "{out}{err}");
    let (_, replicas, _) =
        kapi.kubectl(&["get", "deploy", "ssa", "-o", "jsonpath={.spec.replicas}"]);
    assert_eq!(replicas, "5");
    let (_, mf, _) = kapi.kubectl(&[
        "get",
        "deploy",
        "ssa",
        "-o",
        "json",
        "--show-managed-fields",
    ]);
    let v: serde_json::Value = serde_json::from_str(&mf).unwrap();
    let managers: Vec<(String, String)> = v["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["manager"].as_str().unwrap().to_string(),
                e["operation"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        managers.contains(&("kubectl".into(), "Apply".into())),
        "{managers:?}"
    );
    assert!(
        managers.contains(&("other".into(), "Apply".into())),
        "{managers:?}"
    );
    let other_fields = v["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "other")
        .unwrap()["fieldsV1"]
        .to_string();
    assert!(other_fields.contains("f:replicas"), "{other_fields}");

    // Ordinary writes are tracked too (kubectl label → manager kubectl-label, operation Update).
    let (ok, _, err) = kapi.kubectl(&["label", "deploy", "ssa", "x=y"]);
    assert!(ok, "{err}");
    let (_, mf, _) = kapi.kubectl(&[
        "get",
        "deploy",
        "ssa",
        "-o",
        "json",
        "--show-managed-fields",
    ]);
    let v: serde_json::Value = serde_json::from_str(&mf).unwrap();
    assert!(v["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["manager"] == "kubectl-label" && e["operation"] == "Update"));

    // describe, server dry-run and can-i round out the kubectl scenario.
    let (ok, out, err) = kapi.kubectl(&["run", "p1", "--image=busybox"]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = kapi.kubectl(&["describe", "pod", "p1"]);
    assert!(
        ok && out.contains("Name:") && out.contains("p1") && out.contains("busybox"),
        "{out}{err}"
    );
    let (ok, out, err) = kapi.kubectl(&[
        "create",
        "configmap",
        "dry",
        "--from-literal=a=b",
        "--dry-run=server",
        "-o",
        "yaml",
    ]);
    assert!(
        ok && out.contains("name: dry") && !out.contains("resourceVersion"),
        "{out}{err}"
    );
    let (ok, _, _) = kapi.kubectl(&["get", "configmap", "dry"]);
    assert!(!ok, "a server dry run stores nothing");
    let (ok, out, _) = kapi.kubectl(&["auth", "can-i", "create", "pods"]);
    assert!(ok && out.trim() == "yes", "{out}");

    // kubectl's generators send protobuf bodies.
    for args in [
        vec!["create", "namespace", "gen"],
        vec![
            "-n",
            "gen",
            "create",
            "configmap",
            "c",
            "--from-literal=a=b",
        ],
        vec![
            "-n",
            "gen",
            "create",
            "secret",
            "generic",
            "s",
            "--from-literal=x=y",
        ],
        vec![
            "-n",
            "gen",
            "create",
            "deployment",
            "d",
            "--image=nginx",
            "--replicas=2",
        ],
        vec!["-n", "gen", "scale", "deployment/d", "--replicas=3"],
        vec![
            "-n",
            "gen",
            "annotate",
            "--overwrite",
            "deployment/d",
            "a=1",
        ],
        vec!["-n", "gen", "set", "image", "deployment/d", "nginx=nginx:2"],
    ] {
        let (ok, out, err) = kapi.kubectl(&args);
        assert!(ok, "kubectl {args:?}: {out}{err}");
    }
    let (_, out, _) = kapi.kubectl(&["-n", "gen", "get", "cm", "c", "-o", "jsonpath={.data.a}"]);
    assert_eq!(out, "b");
    let (_, out, _) = kapi.kubectl(&[
        "-n",
        "gen",
        "get",
        "secret",
        "s",
        "-o",
        "jsonpath={.data.x}",
    ]);
    assert_eq!(out, "eQ==");
    let (_, out, _) = kapi.kubectl(&[
        "-n",
        "gen",
        "get",
        "deploy",
        "d",
        "-o",
        "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(out, "3 nginx:2");
    let (ok, out, err) = kapi.kubectl(&["-n", "gen", "get", "deploy", "d", "-o", "yaml"]);
    assert!(
        ok && out.contains("kind: Deployment") && out.contains("replicas: 3"),
        "{out}{err}"
    );
    let (ok, out, err) = kapi.kubectl(&["explain", "pods.spec"]);
    assert!(ok && out.contains("containers"), "{out}{err}");
    let (ok, out, err) = kapi.kubectl(&["-n", "gen", "get", "deploy", "-o", "wide"]);
    assert!(
        ok && out.contains("CONTAINERS") && out.contains("nginx:2"),
        "{out}{err}"
    );
}

#[test]
fn server_side_apply_on_embedded_store() {
    scenario(&Kapi::embedded());
}

#[test]
fn server_side_apply_on_etcd() {
    let etcd = EtcdServer::start();
    scenario(&Kapi::on_etcd(&etcd));
}
