//! Audit logging end to end: kapi with `--audit-policy-file` and `--audit-log-path` writes
//! `audit.k8s.io/v1` Event JSON lines with the levels and stages the policy asks for, names the
//! requester and the impersonated user, echoes `Audit-Id`, and never records credentials.

mod common;

use common::kapi::{AuthClient, Kapi};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const TOKEN: &str = "bob-token-5f1d2c3b4a";
const SECRET_VALUE: &str = "c2VjcmV0LXZhbHVlLWRvLW5vdC1sb2c="; // base64 of a canary

const POLICY: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
rules:
  - level: None
    nonResourceURLs: ["/healthz*", "/livez*", "/readyz*"]
  - level: None
    users: ["system:apiserver"]
  - level: Request
    verbs: ["watch"]
  - level: RequestResponse
    resources:
      - group: ""
        resources: ["configmaps"]
  - level: Metadata
    resources:
      - group: ""
        resources: ["secrets"]
    omitStages: ["RequestReceived"]
  - level: Metadata
"#;

struct Setup {
    kapi: Kapi,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

fn start() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, format!("{TOKEN},bob,u-bob,\"devs\"\n")).unwrap();
    let log = dir.path().join("logs/audit.log");
    let kapi = Kapi::start(vec![
        format!("--audit-policy-file={}", policy.display()),
        format!("--audit-log-path={}", log.display()),
        "--audit-log-maxsize=1".into(),
        "--audit-log-maxbackup=2".into(),
        format!("--token-auth-file={}", tokens.display()),
    ]);
    Setup {
        kapi,
        log,
        _dir: dir,
    }
}

fn read_events(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Waits until the log holds an event matching `pred`; returns all events with that auditID.
async fn wait_for(log: &Path, what: &str, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let evs = read_events(log);
        if let Some(e) = evs.iter().find(|e| pred(e)) {
            let id = e["auditID"].clone();
            return evs.into_iter().filter(|e| e["auditID"] == id).collect();
        }
        assert!(Instant::now() < deadline, "no {what} event; log:\n{evs:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn stages(evs: &[Value]) -> Vec<&str> {
    evs.iter().map(|e| e["stage"].as_str().unwrap()).collect()
}

fn is_micro_time(v: &Value) -> bool {
    let s = v.as_str().unwrap_or("");
    // 2026-11-23T10:00:00.123456Z
    s.len() == 27 && s.ends_with('Z') && s.as_bytes()[10] == b'T' && s.as_bytes()[19] == b'.'
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_records_requests_per_policy() {
    let s = start();
    let admin = s.kapi.client();
    let bob = AuthClient::new(&s.kapi.data_dir, s.kapi.port, None, Some(TOKEN));
    let stranger = AuthClient::new(&s.kapi.data_dir, s.kapi.port, None, Some("not-a-token"));

    // RequestResponse: a ConfigMap create, with a client-chosen audit ID.
    let resp = admin
        .send(
            Method::POST,
            "/api/v1/namespaces/default/configmaps",
            &[
                ("content-type", "application/json"),
                ("audit-id", "my-audit-id-1"),
            ],
            Some(
                serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "cm1"}, "data": {"k": "v"}}))
                .unwrap(),
            ),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.headers()["audit-id"], "my-audit-id-1");
    resp.into_body().collect().await.unwrap();
    let evs = wait_for(&s.log, "configmap create", |e| {
        e["auditID"] == "my-audit-id-1" && e["stage"] == "ResponseComplete"
    })
    .await;
    assert_eq!(stages(&evs), ["RequestReceived", "ResponseComplete"]);
    for e in &evs {
        assert_eq!(e["kind"], "Event");
        assert_eq!(e["apiVersion"], "audit.k8s.io/v1");
        assert_eq!(e["level"], "RequestResponse");
        assert_eq!(e["verb"], "create");
        assert_eq!(e["requestURI"], "/api/v1/namespaces/default/configmaps");
        assert_eq!(e["user"]["username"], "kapi-admin");
        assert!(e["user"]["groups"]
            .as_array()
            .unwrap()
            .contains(&json!("system:masters")));
        assert_eq!(e["sourceIPs"], json!(["127.0.0.1"]));
        assert_eq!(e["objectRef"]["resource"], "configmaps");
        assert_eq!(e["objectRef"]["namespace"], "default");
        assert_eq!(e["objectRef"]["apiVersion"], "v1");
        assert!(is_micro_time(&e["requestReceivedTimestamp"]), "{e}");
        assert!(is_micro_time(&e["stageTimestamp"]), "{e}");
    }
    let done = &evs[1];
    assert_eq!(done["objectRef"]["name"], "cm1");
    assert_eq!(done["responseStatus"], json!({"metadata": {}, "code": 201}));
    assert_eq!(done["requestObject"]["data"]["k"], "v");
    assert_eq!(done["responseObject"]["metadata"]["name"], "cm1");
    assert!(done["responseObject"]["metadata"]["uid"].is_string());
    assert_eq!(
        done["annotations"]["authorization.k8s.io/decision"],
        "allow"
    );

    // Metadata for Secrets, RequestReceived omitted: the secret value never reaches the log.
    let r = admin
        .post_json(
            "/api/v1/namespaces/default/secrets",
            &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s1"},
                    "data": {"password": SECRET_VALUE}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let id = r.headers["audit-id"].to_str().unwrap().to_string();
    assert!(uuid_like(&id), "generated audit ID {id}");
    let evs = wait_for(&s.log, "secret create", |e| e["auditID"] == id.as_str()).await;
    assert_eq!(stages(&evs), ["ResponseComplete"]);
    assert_eq!(evs[0]["level"], "Metadata");
    assert_eq!(evs[0]["objectRef"]["name"], "s1");
    assert!(evs[0].get("requestObject").is_none() && evs[0].get("responseObject").is_none());

    // A bearer-token user who is forbidden: 403 with the user and the decision recorded.
    let r = bob.get("/api/v1/namespaces/default/pods").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    let id = r.headers["audit-id"].to_str().unwrap().to_string();
    let evs = wait_for(&s.log, "forbidden list", |e| {
        e["auditID"] == id.as_str() && e["stage"] == "ResponseComplete"
    })
    .await;
    let done = evs.last().unwrap();
    assert_eq!(done["level"], "Metadata");
    assert_eq!(done["verb"], "list");
    assert_eq!(done["user"]["username"], "bob");
    assert_eq!(done["user"]["uid"], "u-bob");
    assert_eq!(done["responseStatus"]["code"], 403);
    assert_eq!(done["responseStatus"]["reason"], "Forbidden");
    assert_eq!(
        done["annotations"]["authorization.k8s.io/decision"],
        "forbid"
    );

    // A bad token: 401 with an empty user.
    let r = stranger.get("/api/v1/namespaces").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let id = r.headers["audit-id"].to_str().unwrap().to_string();
    let evs = wait_for(&s.log, "unauthorized", |e| {
        e["auditID"] == id.as_str() && e["stage"] == "ResponseComplete"
    })
    .await;
    assert_eq!(evs.last().unwrap()["user"], json!({}));
    assert_eq!(evs.last().unwrap()["responseStatus"]["code"], 401);

    // Impersonation: the requester is the user, the impersonated user is recorded beside it.
    let resp = admin
        .send(
            Method::GET,
            "/api/v1/namespaces/default/configmaps/cm1",
            &[("impersonate-user", "bob"), ("audit-id", "impersonated-1")],
            None,
        )
        .await;
    assert_eq!(
        resp.status(),
        StatusCode::FORBIDDEN,
        "bob cannot read configmaps"
    );
    resp.into_body().collect().await.unwrap();
    let evs = wait_for(&s.log, "impersonated get", |e| {
        e["auditID"] == "impersonated-1" && e["stage"] == "ResponseComplete"
    })
    .await;
    let done = evs.last().unwrap();
    assert_eq!(done["user"]["username"], "kapi-admin");
    assert_eq!(done["impersonatedUser"]["username"], "bob");
    assert!(evs[0].get("impersonatedUser").is_none());

    // A watch: ResponseStarted then ResponseComplete when it ends, at the watch rule's level.
    let resp = admin
        .send(
            Method::GET,
            "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1",
            &[("audit-id", "watch-1")],
            None,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let started = wait_for(&s.log, "watch started", |e| {
        e["auditID"] == "watch-1" && e["stage"] == "ResponseStarted"
    })
    .await;
    assert_eq!(started.last().unwrap()["responseStatus"]["code"], 200);
    tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect())
        .await
        .expect("watch ends after timeoutSeconds")
        .unwrap();
    let evs = wait_for(&s.log, "watch complete", |e| {
        e["auditID"] == "watch-1" && e["stage"] == "ResponseComplete"
    })
    .await;
    assert_eq!(
        stages(&evs),
        ["RequestReceived", "ResponseStarted", "ResponseComplete"]
    );
    assert!(evs
        .iter()
        .all(|e| e["level"] == "Request" && e["verb"] == "watch"));
    assert!(evs.iter().all(|e| e.get("responseObject").is_none()));

    // Health checks are level None: nothing recorded (but the Audit-Id header is still set).
    let r = admin.get("/healthz").await;
    assert_eq!(r.status, StatusCode::OK);
    let health_id = r.headers["audit-id"].to_str().unwrap().to_string();

    // Nothing in the log carries a credential, the Authorization header, or the secret's value.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = std::fs::read_to_string(&s.log).unwrap();
    assert!(
        !text.contains(TOKEN),
        "bearer token leaked into the audit log"
    );
    assert!(!text.contains("not-a-token"));
    assert!(!text.to_lowercase().contains("authorization\":"));
    assert!(!text.to_lowercase().contains("bearer"));
    assert!(!text.contains(SECRET_VALUE));
    assert!(!text.contains(&health_id));
    for e in read_events(&s.log) {
        assert_ne!(e["requestURI"], "/healthz");
        assert!([
            "RequestReceived",
            "ResponseStarted",
            "ResponseComplete",
            "Panic"
        ]
        .contains(&e["stage"].as_str().unwrap()));
    }
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

#[test]
fn legacy_format_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kapi"))
        .arg(format!("--data-dir={}", dir.path().display()))
        .arg("--secure-port=0")
        .arg(format!("--audit-policy-file={}", policy.display()))
        .arg(format!(
            "--audit-log-path={}",
            dir.path().join("a.log").display()
        ))
        .arg("--audit-log-format=legacy")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("legacy"), "{err}");
}
