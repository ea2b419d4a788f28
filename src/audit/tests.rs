use super::*;
use crate::api::handlers::full;
use http::{Response, StatusCode};

const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
  - level: None
    nonResourceURLs: ["/healthz*"]
  - level: RequestResponse
    resources: [{group: "", resources: ["configmaps"]}]
  - level: Request
    resources: [{group: "", resources: ["pods"]}]
    omitManagedFields: true
  - level: Metadata
"#;

fn auditor(capacity: usize) -> (Auditor, Receiver<Msg>) {
    Auditor::unstarted(Policy::parse(POLICY).unwrap(), capacity)
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

fn user() -> AuditUser {
    AuditUser {
        username: "alice".into(),
        uid: "u-1".into(),
        groups: vec!["devs".into(), "system:authenticated".into()],
        extra: BTreeMap::new(),
    }
}

fn meta(method: Method, uri: &str, h: &HeaderMap) -> RequestMeta {
    let uri: Uri = uri.parse().unwrap();
    RequestMeta::new(
        &method,
        &uri,
        h,
        Some("10.0.0.9".parse().unwrap()),
        audit_id(h),
        user(),
    )
}

/// Everything queued so far, rendered and parsed back.
fn drain(rx: &Receiver<Msg>) -> Vec<Value> {
    let mut out = Vec::new();
    while let Ok(msg) = rx.try_recv() {
        if let Msg::Event(ev) = msg {
            let line = ev.render();
            assert_eq!(line.last(), Some(&b'\n'));
            assert_eq!(
                line.iter().filter(|b| **b == b'\n').count(),
                1,
                "one line per event"
            );
            out.push(serde_json::from_slice(&line).unwrap());
        }
    }
    out
}

fn is_micro_time(s: &str) -> bool {
    // 2026-11-23T10:00:00.123456Z
    time::PrimitiveDateTime::parse(
        s.trim_end_matches('Z'),
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]"),
    )
    .is_ok()
        && s.ends_with('Z')
        && s.len() == 27
}

#[test]
fn event_shape() {
    let (a, rx) = auditor(100);
    let h = headers(&[
        ("user-agent", "kubectl/v1.36.0"),
        ("authorization", "Bearer secret-token-123"),
        ("audit-id", "c0ffee00-0000-4000-8000-000000000001"),
    ]);
    let mut rec = a
        .begin(meta(
            Method::POST,
            "/api/v1/namespaces/default/configmaps?fieldManager=kubectl",
            &h,
        ))
        .expect("audited");
    assert_eq!(rec.level(), Level::RequestResponse);
    rec.annotate("authorization.k8s.io/decision", "allow");
    rec.set_request_body(&Bytes::from_static(
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm1"},"data":{"k":"v"}}"#,
    ));
    rec.complete(
        201,
        Some(br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm1","namespace":"default","uid":"x"},"data":{"k":"v"}}"#),
    );
    let evs = drain(&rx);
    assert_eq!(evs.len(), 2);
    let (received, complete) = (&evs[0], &evs[1]);

    for e in &evs {
        assert_eq!(e["kind"], "Event");
        assert_eq!(e["apiVersion"], "audit.k8s.io/v1");
        assert_eq!(e["level"], "RequestResponse");
        assert_eq!(e["auditID"], "c0ffee00-0000-4000-8000-000000000001");
        assert_eq!(
            e["requestURI"],
            "/api/v1/namespaces/default/configmaps?fieldManager=kubectl"
        );
        assert_eq!(e["verb"], "create");
        assert_eq!(e["user"]["username"], "alice");
        assert_eq!(e["user"]["uid"], "u-1");
        assert_eq!(
            e["user"]["groups"],
            serde_json::json!(["devs", "system:authenticated"])
        );
        assert_eq!(e["sourceIPs"], serde_json::json!(["10.0.0.9"]));
        assert_eq!(e["userAgent"], "kubectl/v1.36.0");
        assert_eq!(e["objectRef"]["resource"], "configmaps");
        assert_eq!(e["objectRef"]["namespace"], "default");
        assert_eq!(e["objectRef"]["apiVersion"], "v1");
        assert!(
            e["objectRef"].get("apiGroup").is_none(),
            "the core group is omitted"
        );
        assert!(
            is_micro_time(e["requestReceivedTimestamp"].as_str().unwrap()),
            "{}",
            e["requestReceivedTimestamp"]
        );
        assert!(is_micro_time(e["stageTimestamp"].as_str().unwrap()));
        assert!(e.get("impersonatedUser").is_none());
        let text = e.to_string();
        assert!(!text.contains("secret-token-123") && !text.to_lowercase().contains("bearer"));
    }
    assert_eq!(received["stage"], "RequestReceived");
    assert!(received.get("responseStatus").is_none());
    assert!(received.get("requestObject").is_none());
    assert!(received.get("annotations").is_none());

    assert_eq!(complete["stage"], "ResponseComplete");
    assert_eq!(
        complete["responseStatus"],
        serde_json::json!({"metadata": {}, "code": 201})
    );
    assert_eq!(complete["requestObject"]["data"]["k"], "v");
    assert_eq!(complete["responseObject"]["metadata"]["uid"], "x");
    // The name comes from the created object.
    assert_eq!(complete["objectRef"]["name"], "cm1");
    assert_eq!(
        complete["annotations"]["authorization.k8s.io/decision"],
        "allow"
    );
    assert!(complete["requestReceivedTimestamp"].as_str() <= complete["stageTimestamp"].as_str());
}

#[test]
fn levels_decide_what_is_recorded() {
    let (a, rx) = auditor(100);
    let h = HeaderMap::new();
    // None: nothing at all.
    assert!(a.begin(meta(Method::GET, "/healthz/etcd", &h)).is_none());
    assert!(drain(&rx).is_empty());

    // Metadata: no objects, even with bodies; an error's Status reason and message are kept.
    let mut rec = a
        .begin(meta(
            Method::PUT,
            "/api/v1/namespaces/default/secrets/s1",
            &h,
        ))
        .unwrap();
    rec.set_request_body(&Bytes::from_static(
        br#"{"kind":"Secret","data":{"password":"aHVudGVyMg=="}}"#,
    ));
    rec.complete(
        404,
        Some(br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"secrets \"s1\" not found","reason":"NotFound","details":{"name":"s1","kind":"secrets"},"code":404}"#),
    );
    let evs = drain(&rx);
    let done = &evs[1];
    assert_eq!(done["level"], "Metadata");
    assert!(done.get("requestObject").is_none() && done.get("responseObject").is_none());
    assert!(!done.to_string().contains("aHVudGVyMg=="));
    assert_eq!(done["responseStatus"]["code"], 404);
    assert_eq!(done["responseStatus"]["reason"], "NotFound");
    assert_eq!(done["responseStatus"]["status"], "Failure");
    assert_eq!(done["responseStatus"]["details"]["name"], "s1");

    // Request: the request object, with managedFields stripped (omitManagedFields), no response.
    let mut rec = a
        .begin(meta(Method::POST, "/api/v1/namespaces/default/pods", &h))
        .unwrap();
    rec.set_request_body(&Bytes::from_static(
        br#"{"kind":"Pod","metadata":{"name":"p","managedFields":[{"manager":"m"}]}}"#,
    ));
    rec.complete(201, Some(br#"{"kind":"Pod","metadata":{"name":"p"}}"#));
    let evs = drain(&rx);
    assert_eq!(evs[1]["level"], "Request");
    assert_eq!(evs[1]["requestObject"]["metadata"]["name"], "p");
    assert!(evs[1]["requestObject"]["metadata"]
        .get("managedFields")
        .is_none());
    assert!(evs[1].get("responseObject").is_none());

    // A YAML request body is recorded as JSON.
    let mut rec = a
        .begin(meta(Method::PATCH, "/api/v1/namespaces/default/pods/p", &h))
        .unwrap();
    rec.set_request_body(&Bytes::from_static(b"metadata:\n  labels:\n    a: b\n"));
    rec.complete(200, None);
    assert_eq!(
        drain(&rx)[1]["requestObject"]["metadata"]["labels"]["a"],
        "b"
    );
}

#[test]
fn omitted_stages_are_not_emitted() {
    let policy = Policy::parse(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n  omitStages: [ResponseStarted]\n",
    )
    .unwrap();
    let (a, rx) = Auditor::unstarted(policy, 10);
    let rec = a
        .begin(meta(Method::GET, "/api/v1/pods?watch=1", &HeaderMap::new()))
        .unwrap();
    let resp = rec.finish(Response::new(full("")));
    drop(resp);
    let evs = drain(&rx);
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0]["stage"], "ResponseComplete");
}

#[tokio::test]
async fn finish_records_response_started_for_watches_and_complete_after_the_body() {
    let (a, rx) = auditor(100);
    let h = HeaderMap::new();
    let m = meta(
        Method::GET,
        "/api/v1/namespaces/default/configmaps?watch=true",
        &h,
    );
    assert!(m.long_running);
    assert_eq!(m.verb, "watch");
    let rec = a.begin(m).unwrap();
    let id = rec.audit_id().to_string();
    let resp = rec.finish(Response::new(full("{\"type\":\"ADDED\"}\n")));
    assert_eq!(resp.headers()[AUDIT_ID_HEADER], id.as_str());
    let evs = drain(&rx);
    assert_eq!(
        evs.iter()
            .map(|e| e["stage"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["RequestReceived", "ResponseStarted"]
    );
    assert_eq!(evs[1]["responseStatus"]["code"], 200);
    // The client reads the stream to its end.
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(!body.is_empty());
    let evs = drain(&rx);
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0]["stage"], "ResponseComplete");
    assert!(
        evs[0].get("responseObject").is_none(),
        "never for long-running requests"
    );

    // A regular request at RequestResponse: the body is captured as it is sent.
    let rec = a
        .begin(meta(
            Method::GET,
            "/api/v1/namespaces/default/configmaps/c",
            &h,
        ))
        .unwrap();
    let mut resp = rec.finish(Response::new(full(
        r#"{"kind":"ConfigMap","metadata":{"name":"c"}}"#,
    )));
    *resp.status_mut() = StatusCode::OK;
    assert_eq!(
        drain(&rx).len(),
        1,
        "only RequestReceived until the body is sent"
    );
    resp.into_body().collect().await.unwrap();
    let evs = drain(&rx);
    assert_eq!(evs[0]["stage"], "ResponseComplete");
    assert_eq!(evs[0]["responseObject"]["metadata"]["name"], "c");
}

#[test]
fn panic_and_abandoned_requests() {
    let (a, rx) = auditor(100);
    let rec = a
        .begin(meta(Method::GET, "/api/v1/pods", &HeaderMap::new()))
        .unwrap();
    rec.panicked("index out of bounds");
    let evs = drain(&rx);
    assert_eq!(evs[1]["stage"], "Panic");
    assert_eq!(evs[1]["responseStatus"]["code"], 500);
    assert_eq!(
        evs[1]["responseStatus"]["message"],
        "APIServer panic'd: index out of bounds"
    );

    let rec = a
        .begin(meta(Method::GET, "/api/v1/pods", &HeaderMap::new()))
        .unwrap();
    drop(rec);
    let evs = drain(&rx);
    assert_eq!(evs[1]["stage"], "ResponseComplete");
    assert!(evs[1].get("responseStatus").is_none());
    assert!(evs[1]["annotations"]["kapi.io/incomplete"].is_string());
}

#[test]
fn impersonation_is_recorded_separately() {
    let (a, rx) = auditor(100);
    let mut rec = a
        .begin(meta(
            Method::GET,
            "/api/v1/namespaces/default/pods/p",
            &HeaderMap::new(),
        ))
        .unwrap();
    rec.set_impersonated_user(AuditUser {
        username: "bob".into(),
        groups: vec!["system:authenticated".into()],
        ..Default::default()
    });
    rec.complete(200, None);
    let evs = drain(&rx);
    assert!(
        evs[0].get("impersonatedUser").is_none(),
        "RequestReceived precedes impersonation"
    );
    assert_eq!(evs[1]["user"]["username"], "alice");
    assert_eq!(evs[1]["impersonatedUser"]["username"], "bob");
    assert!(evs[1]["impersonatedUser"].get("uid").is_none());
}

#[test]
fn drops_are_counted_when_the_queue_is_full() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let (a, rx) = auditor(3);
    metrics::with_local_recorder(&recorder, || {
        // Nothing drains the queue: 3 events fit, the rest are dropped without blocking.
        for _ in 0..4 {
            let rec = a
                .begin(meta(Method::GET, "/api/v1/pods", &HeaderMap::new()))
                .unwrap();
            rec.complete(200, None);
        }
    });
    assert_eq!(a.counts(), (3, 5));
    let text = handle.render();
    assert!(text.contains("apiserver_audit_event_total 3"), "{text}");
    assert!(
        text.contains("apiserver_audit_error_total{plugin=\"log\"} 5"),
        "{text}"
    );
    assert!(
        text.contains("apiserver_audit_level_total{level=\"Request\"} 4"),
        "{text}"
    );
    assert_eq!(drain(&rx).len(), 3);
}

#[test]
fn request_meta_parsing() {
    let h = headers(&[
        ("x-forwarded-for", "1.2.3.4, 5.6.7.8"),
        ("x-real-ip", "5.6.7.8"),
    ]);
    let m = meta(
        Method::GET,
        "/apis/apps/v1/namespaces/ns/deployments/d/scale",
        &h,
    );
    assert_eq!(m.verb, "get");
    assert_eq!(m.source_ips, ["1.2.3.4", "5.6.7.8", "10.0.0.9"]);
    let o = m.object_ref.as_ref().unwrap();
    assert_eq!(
        (
            o.api_group.as_str(),
            o.api_version.as_str(),
            o.resource.as_str()
        ),
        ("apps", "v1", "deployments")
    );
    assert_eq!(
        (
            o.namespace.as_str(),
            o.name.as_str(),
            o.subresource.as_str()
        ),
        ("ns", "d", "scale")
    );
    assert!(!m.long_running);
    assert!(meta(Method::GET, "/api/v1/namespaces/ns/pods/p/log", &h).long_running);
    let m = meta(Method::GET, "/version", &HeaderMap::new());
    assert!(m.object_ref.is_none());
    assert_eq!(m.verb, "get");
    assert_eq!(m.source_ips, ["10.0.0.9"]);
    // The audit ID: echoed when given, else a fresh UUID.
    assert_eq!(audit_id(&headers(&[("audit-id", "abc")])), "abc");
    let generated = audit_id(&HeaderMap::new());
    assert!(uuid::Uuid::parse_str(&generated).is_ok());
    assert_ne!(generated, audit_id(&HeaderMap::new()));
}

#[test]
fn writer_thread_writes_json_lines_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let opts = log::LogOptions {
        path: path.display().to_string(),
        max_age_days: 0,
        max_backups: 2,
        max_size_bytes: 2000,
    };
    let a = Auditor::start(
        Policy::parse(POLICY).unwrap(),
        log::Output::open(&opts).unwrap(),
        1000,
    );
    for i in 0..30 {
        let rec = a
            .begin(meta(
                Method::GET,
                &format!("/api/v1/namespaces/default/pods/p{i}"),
                &HeaderMap::new(),
            ))
            .unwrap();
        rec.complete(200, None);
    }
    assert!(a.flush(Duration::from_secs(10)));
    let mut files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 3, "live file + 2 backups: {files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(text.len() <= 2000);
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["apiVersion"], "audit.k8s.io/v1");
        }
    }
    let last: Value = serde_json::from_str(
        std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(last["objectRef"]["name"], "p29");
    assert_eq!(last["stage"], "ResponseComplete");
}
