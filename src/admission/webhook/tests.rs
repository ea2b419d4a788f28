//! Webhooks against a real local HTTPS server (rustls, a CA and serving certificate made for
//! the test).

use super::*;
use crate::admission::lookup::MemoryLookup;
use crate::admission::AdmissionUser;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The last call: path with query, the review sent, any Authorization header.
type LastCall = Arc<Mutex<Option<(String, Value, Option<String>)>>>;

struct Server {
    addr: SocketAddr,
    ca_pem: String,
    calls: Arc<AtomicUsize>,
    last: LastCall,
    _dir: tempfile::TempDir,
}

fn response(uid: &str, body: Value) -> Value {
    let mut r = body;
    r["uid"] = json!(uid);
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": r})
}

async fn handle(
    req: hyper::Request<hyper::body::Incoming>,
    calls: Arc<AtomicUsize>,
    last: LastCall,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    calls.fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let auth = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("").to_string());
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let review: Value = serde_json::from_slice(&body).unwrap();
    *last.lock().unwrap() = Some((
        format!("{path}?{}", query.unwrap_or_default()),
        review.clone(),
        auth,
    ));
    let uid = review["request"]["uid"].as_str().unwrap_or("").to_string();
    let b64 = |v: Value| {
        base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&v).unwrap())
    };
    let out = match path.as_str() {
        "/allow" => response(&uid, json!({"allowed": true})),
        "/mutate" => response(
            &uid,
            json!({"allowed": true, "patchType": "JSONPatch",
            "patch": b64(json!([{"op": "add", "path": "/metadata/annotations", "value": {"hooked": "true"}}])),
            "warnings": ["mutated by the test webhook"]}),
        ),
        "/mutate-label" => response(
            &uid,
            json!({"allowed": true, "patchType": "JSONPatch",
            "patch": b64(json!([{"op": "add", "path": "/metadata/labels/second", "value": "yes"}]))}),
        ),
        "/deny" => response(
            &uid,
            json!({"allowed": false,
            "status": {"code": 403, "reason": "Forbidden", "message": "pods named bad are not welcome"}}),
        ),
        "/deny-plain" => response(&uid, json!({"allowed": false})),
        "/bad-uid" => response("someone-else", json!({"allowed": true})),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            response(&uid, json!({"allowed": true}))
        }
        "/500" => {
            let mut r = hyper::Response::new(Full::new(Bytes::from_static(b"boom")));
            *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            return Ok(r);
        }
        _ => response(&uid, json!({"allowed": true})),
    };
    Ok(hyper::Response::new(Full::new(Bytes::from(
        serde_json::to_vec(&out).unwrap(),
    ))))
}

async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let g = crate::server::certs::ensure_self_signed(
        dir.path(),
        &["127.0.0.1".to_string(), "hook.webhooks.svc".to_string()],
    )
    .unwrap();
    let mut cfg = crate::server::certs::server_config(&g.cert_pem, &g.key_pem, None).unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let last = Arc::new(Mutex::new(None));
    let (c, l) = (calls.clone(), last.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let (c, l) = (c.clone(), l.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = service_fn(move |req| handle(req, c.clone(), l.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    Server {
        addr,
        ca_pem: g.ca_pem,
        calls,
        last,
        _dir: dir,
    }
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    fn hook(&self, name: &str, path: &str, extra: Value) -> Value {
        let mut h = json!({
            "name": name,
            "clientConfig": {"url": self.url(path),
                "caBundle": base64::engine::general_purpose::STANDARD.encode(&self.ca_pem)},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        });
        for (k, v) in extra.as_object().unwrap() {
            h[k] = v.clone();
        }
        h
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

fn config(l: &MemoryLookup, kind: Kind, name: &str, hooks: Vec<Value>) {
    let res = catalogue::lookup(ADMISSION_GROUP, "v1", kind.plural()).unwrap();
    l.put(res, json!({"metadata": {"name": name}, "webhooks": hooks}));
}

fn pod_attrs(name: &str, labels: Value) -> Attributes {
    let pods = catalogue::lookup("", "v1", "pods").unwrap();
    let mut user = AdmissionUser::new("alice", &["devs", "system:authenticated"]);
    user.uid = "u-1".into();
    Attributes::new(Operation::Create, pods, Some("ns"), name, user).with_object(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "ns", "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
        .as_object()
        .unwrap()
        .clone(),
    )
}

fn lookup() -> MemoryLookup {
    let l = MemoryLookup::new();
    l.put_namespace("ns", Some(json!({"team": "a"})));
    l
}

#[tokio::test]
async fn mutating_webhooks_patch_in_order_and_send_a_v1_review() {
    let s = start().await;
    let l = lookup();
    // Configurations run in name order: "a-..." before "b-...".
    config(
        &l,
        Kind::Mutating,
        "b-labels",
        vec![s.hook("second.example.com", "/mutate-label", json!({}))],
    );
    config(
        &l,
        Kind::Mutating,
        "a-annotations",
        vec![s.hook("first.example.com", "/mutate", json!({}))],
    );
    let mut a = pod_attrs("p", json!({"app": "web"}));
    let mut w = Vec::new();
    MutatingWebhook::default()
        .admit(&l, &mut a, &mut w)
        .await
        .unwrap();
    let obj = Value::Object(a.object.clone().unwrap());
    assert_eq!(obj["metadata"]["annotations"], json!({"hooked": "true"}));
    assert_eq!(
        obj["metadata"]["labels"],
        json!({"app": "web", "second": "yes"})
    );
    assert_eq!(w, vec!["mutated by the test webhook"]);
    assert_eq!(s.calls(), 2);
    let (path, review, auth) = s.last.lock().unwrap().clone().unwrap();
    assert_eq!(path, "/mutate-label?timeout=10s");
    assert!(auth.is_none(), "no credentials are forwarded");
    let req = &review["request"];
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(req["operation"], "CREATE");
    assert_eq!(
        req["kind"],
        json!({"group": "", "version": "v1", "kind": "Pod"})
    );
    assert_eq!(
        req["resource"],
        json!({"group": "", "version": "v1", "resource": "pods"})
    );
    assert_eq!(req["namespace"], "ns");
    assert_eq!(req["name"], "p");
    assert_eq!(
        req["userInfo"],
        json!({"username": "alice", "uid": "u-1", "groups": ["devs", "system:authenticated"]})
    );
    // The second webhook saw the first one's patch.
    assert_eq!(
        req["object"]["metadata"]["annotations"],
        json!({"hooked": "true"})
    );
    assert_eq!(req["oldObject"], Value::Null);
    assert_eq!(req["dryRun"], false);
    assert_eq!(
        req["options"],
        json!({"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"})
    );
}

#[tokio::test]
async fn validating_webhook_denial_message() {
    let s = start().await;
    let l = lookup();
    config(
        &l,
        Kind::Validating,
        "v",
        vec![
            s.hook("allow.example.com", "/allow", json!({})),
            s.hook("deny.example.com", "/deny", json!({})),
        ],
    );
    let e = ValidatingWebhook::default()
        .validate(&l, &pod_attrs("bad", json!({})), &mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(e.code, 403);
    assert_eq!(e.reason, "Forbidden");
    assert_eq!(
        e.message,
        "admission webhook \"deny.example.com\" denied the request: pods named bad are not welcome"
    );
    assert_eq!(s.calls(), 2);
    let l = lookup();
    config(
        &l,
        Kind::Validating,
        "v",
        vec![s.hook("plain.example.com", "/deny-plain", json!({}))],
    );
    let e = ValidatingWebhook::default()
        .validate(&l, &pod_attrs("p", json!({})), &mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(e.code, 400);
    assert_eq!(
        e.message,
        "admission webhook \"plain.example.com\" denied the request without explanation"
    );
}

#[tokio::test]
async fn failure_policy_and_timeouts() {
    let s = start().await;
    let l = lookup();
    let v = ValidatingWebhook::default();
    // Fail (the default): a call that cannot complete is a 500.
    config(
        &l,
        Kind::Validating,
        "v",
        vec![s.hook("slow.example.com", "/slow", json!({"timeoutSeconds": 1}))],
    );
    let started = std::time::Instant::now();
    let e = v
        .validate(&l, &pod_attrs("p", json!({})), &mut Vec::new())
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "timeoutSeconds bounds the call"
    );
    assert_eq!((e.code, e.reason), (500, "InternalError"));
    assert_eq!(
        e.message,
        format!(
            "Internal error occurred: failed calling webhook \"slow.example.com\": failed to call webhook: Post \"{}/slow?timeout=1s\": context deadline exceeded",
            s.url("")
        )
    );
    // Ignore: the same failure lets the request through.
    config(
        &l,
        Kind::Validating,
        "v",
        vec![s.hook(
            "slow.example.com",
            "/slow",
            json!({"timeoutSeconds": 1, "failurePolicy": "Ignore"}),
        )],
    );
    v.validate(&l, &pod_attrs("p", json!({})), &mut Vec::new())
        .await
        .unwrap();
    // Nothing listening, an HTTP error, a mismatched uid, an untrusted certificate.
    let closed = json!({"clientConfig": {"url": "https://127.0.0.1:1/x"}});
    for (hook, want) in [
        (s.hook("down.example.com", "/", closed), "failed to call webhook: Post \"https://127.0.0.1:1/x?timeout=10s\": "),
        (s.hook("err.example.com", "/500", json!({})), "failed to call webhook: an error on the server (\"boom\") has prevented the request from succeeding"),
        (s.hook("uid.example.com", "/bad-uid", json!({})), "received invalid webhook response: expected response.uid="),
        (s.hook("tls.example.com", "/allow", json!({"clientConfig": {"url": s.url("/allow")}})), "failed to call webhook: Post"),
    ] {
        let name = hook["name"].as_str().unwrap().to_string();
        config(&l, Kind::Validating, "v", vec![hook]);
        let e = v.validate(&l, &pod_attrs("p", json!({})), &mut Vec::new()).await.unwrap_err();
        assert_eq!(e.code, 500, "{name}: {}", e.message);
        let prefix = format!("Internal error occurred: failed calling webhook \"{name}\": {want}");
        assert!(e.message.starts_with(&prefix), "{name}: {}", e.message);
    }
}

#[tokio::test]
async fn rules_and_selectors_decide_who_is_called() {
    let s = start().await;
    let l = lookup();
    let v = ValidatingWebhook::default();
    let deny = |name: &str, extra: Value| s.hook(name, "/deny", extra);
    let cases = [
        // Other operations, groups, resources and scopes do not match.
        json!({"rules": [{"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]}),
        json!({"rules": [{"operations": ["*"], "apiGroups": ["apps"], "apiVersions": ["*"], "resources": ["*"]}]}),
        json!({"rules": [{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["pods/status"]}]}),
        json!({"rules": [{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"], "scope": "Cluster"}]}),
        json!({"namespaceSelector": {"matchLabels": {"team": "b"}}}),
        json!({"objectSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["db"]}]}}),
    ];
    for (i, extra) in cases.iter().enumerate() {
        config(
            &l,
            Kind::Validating,
            "v",
            vec![deny(&format!("h{i}.example.com"), extra.clone())],
        );
        v.validate(&l, &pod_attrs("p", json!({"app": "web"})), &mut Vec::new())
            .await
            .unwrap_or_else(|e| panic!("case {i} should not call the webhook: {}", e.message));
    }
    assert_eq!(s.calls(), 0);
    for (i, extra) in [
        json!({"rules": [{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/*"], "scope": "Namespaced"}]}),
        json!({"namespaceSelector": {"matchLabels": {"team": "a"}}, "objectSelector": {"matchLabels": {"app": "web"}}}),
    ]
    .into_iter()
    .enumerate()
    {
        config(&l, Kind::Validating, "v", vec![deny(&format!("m{i}.example.com"), extra)]);
        let e = v.validate(&l, &pod_attrs("p", json!({"app": "web"})), &mut Vec::new()).await.unwrap_err();
        assert_eq!(e.code, 403);
    }
    assert_eq!(s.calls(), 2);
    // The webhook configurations themselves are never sent to webhooks.
    config(
        &l,
        Kind::Validating,
        "v",
        vec![deny(
            "all.example.com",
            json!({"rules": [{"operations": ["*"],
        "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}]}),
        )],
    );
    let cfg_res =
        catalogue::lookup(ADMISSION_GROUP, "v1", "validatingwebhookconfigurations").unwrap();
    let a = Attributes::new(
        Operation::Delete,
        cfg_res,
        None,
        "v",
        AdmissionUser::default(),
    );
    v.validate(&l, &a, &mut Vec::new()).await.unwrap();
    assert_eq!(s.calls(), 2);
}

#[tokio::test]
async fn service_references_resolve_to_the_cluster_ip() {
    let s = start().await;
    let l = lookup();
    let services = catalogue::lookup("", "v1", "services").unwrap();
    l.put(services, json!({"metadata": {"name": "hook", "namespace": "webhooks"}, "spec": {"clusterIP": "127.0.0.1"}}));
    let mut hook = s.hook("svc.example.com", "/", json!({}));
    hook["clientConfig"] = json!({"service": {"namespace": "webhooks", "name": "hook", "path": "/deny", "port": s.addr.port()},
        "caBundle": base64::engine::general_purpose::STANDARD.encode(&s.ca_pem)});
    config(&l, Kind::Validating, "v", vec![hook]);
    let e = ValidatingWebhook::default()
        .validate(&l, &pod_attrs("p", json!({})), &mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(e.code, 403, "{}", e.message);
    assert_eq!(s.calls(), 1);
}

#[tokio::test]
async fn mutating_failure_policy_ignore_keeps_the_object() {
    let s = start().await;
    let l = lookup();
    config(
        &l,
        Kind::Mutating,
        "m",
        vec![
            s.hook(
                "broken.example.com",
                "/500",
                json!({"failurePolicy": "Ignore"}),
            ),
            s.hook("works.example.com", "/mutate", json!({})),
        ],
    );
    let mut a = pod_attrs("p", json!({}));
    MutatingWebhook::default()
        .admit(&l, &mut a, &mut Vec::new())
        .await
        .unwrap();
    assert_eq!(
        a.object.unwrap()["metadata"]["annotations"],
        json!({"hooked": "true"})
    );
    config(
        &l,
        Kind::Mutating,
        "m",
        vec![s.hook("broken.example.com", "/500", json!({}))],
    );
    let mut a = pod_attrs("p", json!({}));
    let e = MutatingWebhook::default()
        .admit(&l, &mut a, &mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(e.code, 500);
    assert!(a.object.is_some());
}

#[tokio::test]
async fn dry_runs_only_reach_webhooks_without_side_effects() {
    let s = start().await;
    let l = lookup();
    let v = ValidatingWebhook::default();
    let dry = || pod_attrs("p", json!({})).with_dry_run(true);
    // None and NoneOnDryRun are called, with dryRun: true in the review.
    config(
        &l,
        Kind::Validating,
        "v",
        vec![
            s.hook("none.example.com", "/allow", json!({})),
            s.hook(
                "on-dry-run.example.com",
                "/allow",
                json!({"sideEffects": "NoneOnDryRun"}),
            ),
        ],
    );
    v.validate(&l, &dry(), &mut Vec::new()).await.unwrap();
    assert_eq!(s.calls(), 2);
    let (_, review, _) = s.last.lock().unwrap().clone().unwrap();
    assert_eq!(review["request"]["dryRun"], true);
    assert_eq!(
        review["request"]["options"],
        json!({"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1", "dryRun": ["All"]})
    );
    // Some and Unknown (v1beta1 values still found in stored objects) refuse the dry run with
    // a 400 that failurePolicy: Ignore does not soften, and are not called; the refusal wins
    // over another webhook's denial.
    for (side_effects, policy) in [("Some", "Fail"), ("Unknown", "Ignore")] {
        let before = s.calls();
        config(
            &l,
            Kind::Validating,
            "v",
            vec![
                s.hook("deny.example.com", "/deny", json!({})),
                s.hook(
                    "effects.example.com",
                    "/allow",
                    json!({"sideEffects": side_effects, "failurePolicy": policy}),
                ),
            ],
        );
        let e = v
            .validate(
                &l,
                &pod_attrs("bad", json!({})).with_dry_run(true),
                &mut Vec::new(),
            )
            .await
            .unwrap_err();
        assert_eq!((e.code, e.reason), (400, "BadRequest"), "{side_effects}");
        assert_eq!(
            e.message,
            "admission webhook \"effects.example.com\" does not support dry run"
        );
        assert_eq!(*e.details, Details::default());
        assert_eq!(s.calls(), before + 1, "only deny.example.com is called");
        // Without dryRun the same webhook is called as usual.
        config(
            &l,
            Kind::Validating,
            "v",
            vec![s.hook(
                "effects.example.com",
                "/allow",
                json!({"sideEffects": side_effects}),
            )],
        );
        v.validate(&l, &pod_attrs("p", json!({})), &mut Vec::new())
            .await
            .unwrap();
        assert_eq!(s.calls(), before + 2);
    }
}

#[tokio::test]
async fn mutating_dry_run_refusal_stops_the_chain() {
    let s = start().await;
    let l = lookup();
    config(
        &l,
        Kind::Mutating,
        "a",
        vec![s.hook(
            "first.example.com",
            "/mutate",
            json!({"sideEffects": "NoneOnDryRun"}),
        )],
    );
    config(
        &l,
        Kind::Mutating,
        "b",
        vec![
            s.hook(
                "effects.example.com",
                "/mutate-label",
                json!({"sideEffects": "Some", "failurePolicy": "Ignore"}),
            ),
            s.hook("never.example.com", "/mutate-label", json!({})),
        ],
    );
    let mut a = pod_attrs("p", json!({})).with_dry_run(true);
    let mut w = Vec::new();
    let e = MutatingWebhook::default()
        .admit(&l, &mut a, &mut w)
        .await
        .unwrap_err();
    assert_eq!((e.code, e.reason), (400, "BadRequest"));
    assert_eq!(
        e.message,
        "admission webhook \"effects.example.com\" does not support dry run"
    );
    // The webhook before it ran (and patched); the ones after it were not called.
    assert_eq!(s.calls(), 1);
    let (path, review, _) = s.last.lock().unwrap().clone().unwrap();
    assert_eq!(path, "/mutate?timeout=10s");
    assert_eq!(review["request"]["dryRun"], true);
    assert_eq!(w, vec!["mutated by the test webhook"]);
}

#[tokio::test]
async fn dry_run_without_side_effects_is_a_failed_call() {
    let s = start().await;
    let l = lookup();
    let v = ValidatingWebhook::default();
    let unset = |policy: &str| {
        let mut h = s.hook(
            "unset.example.com",
            "/allow",
            json!({"failurePolicy": policy}),
        );
        h.as_object_mut().unwrap().remove("sideEffects");
        h
    };
    config(&l, Kind::Validating, "v", vec![unset("Fail")]);
    let e = v
        .validate(
            &l,
            &pod_attrs("p", json!({})).with_dry_run(true),
            &mut Vec::new(),
        )
        .await
        .unwrap_err();
    assert_eq!((e.code, e.reason), (500, "InternalError"));
    assert_eq!(
        e.message,
        "Internal error occurred: failed calling webhook \"unset.example.com\": Webhook SideEffects is nil"
    );
    // failurePolicy: Ignore lets it through, uncalled; a real request calls it.
    config(&l, Kind::Validating, "v", vec![unset("Ignore")]);
    v.validate(
        &l,
        &pod_attrs("p", json!({})).with_dry_run(true),
        &mut Vec::new(),
    )
    .await
    .unwrap();
    assert_eq!(s.calls(), 0);
    v.validate(&l, &pod_attrs("p", json!({})), &mut Vec::new())
        .await
        .unwrap();
    assert_eq!(s.calls(), 1);
}
