//! Protobuf vs JSON for a typical Pod: decode (request bodies) and encode (responses, watch
//! frames). `cargo bench --bench codec`; short mode with `KAPI_BENCH_QUICK=1`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kapi::object::protobuf;
use serde_json::{json, Map, Value};
use std::hint::black_box;
use std::time::Duration;

fn pod() -> Map<String, Value> {
    json!({
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": "web-7d4b9c8f6-x2k9q", "generateName": "web-7d4b9c8f6-", "namespace": "default",
            "uid": "3b0c5a9e-8f1d-4c2e-9a7b-6d5e4f3c2b1a", "resourceVersion": "123456", "creationTimestamp": "2026-11-23T10:00:00Z",
            "labels": {"app": "web", "pod-template-hash": "7d4b9c8f6"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c8f6", "uid": "1a2b3c4d-0000-4000-8000-000000000001", "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "env": [{"name": "MODE", "value": "prod"}, {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 80, "scheme": "HTTP"}, "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
                "volumeMounts": [{"name": "kube-api-access-abcde", "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst", "serviceAccountName": "default",
            "nodeName": "node-17", "schedulerName": "default-scheduler",
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
            "volumes": [{"name": "kube-api-access-abcde", "projected": {"defaultMode": 420, "sources": [{"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}]}}]},
        "status": {"phase": "Running", "podIP": "10.1.17.5", "hostIP": "192.0.2.17", "startTime": "2026-11-23T10:00:01Z",
            "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-23T10:00:05Z"}],
            "containerStatuses": [{"name": "web", "ready": true, "restartCount": 0, "image": "nginx:1.27", "imageID": "docker.io/library/nginx@sha256:0000",
                "containerID": "containerd://abc", "started": true, "state": {"running": {"startedAt": "2026-11-23T10:00:03Z"}}}],
            "qosClass": "Burstable"}
    })
    .as_object()
    .unwrap()
    .clone()
}

fn bench(c: &mut Criterion) {
    let obj = pod();
    let json_bytes = serde_json::to_vec(&obj).unwrap();
    let pb_bytes = protobuf::encode_object(&obj).unwrap();
    let mut g = c.benchmark_group("pod");
    g.throughput(Throughput::Elements(1));
    g.bench_function("json_decode", |b| {
        b.iter(|| {
            black_box(serde_json::from_slice::<Map<String, Value>>(black_box(&json_bytes)).unwrap())
        })
    });
    g.bench_function("protobuf_decode", |b| {
        b.iter(|| black_box(protobuf::decode_object(black_box(&pb_bytes)).unwrap()))
    });
    g.bench_function("json_encode", |b| {
        b.iter(|| black_box(serde_json::to_vec(black_box(&obj)).unwrap()))
    });
    g.bench_function("protobuf_encode", |b| {
        b.iter(|| black_box(protobuf::encode_object(black_box(&obj)).unwrap()))
    });
    g.finish();
    println!(
        "sizes: json {} bytes, protobuf {} bytes",
        json_bytes.len(),
        pb_bytes.len()
    );
}

fn config() -> Criterion {
    let c = Criterion::default().configure_from_args();
    if std::env::var("KAPI_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0") {
        c.sample_size(10)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_millis(600))
            .without_plots()
    } else {
        c
    }
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);
