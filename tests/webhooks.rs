//! Admission webhooks end to end: kapi (on a real etcd) calls an HTTPS webhook server this test
//! runs on 127.0.0.1 (tokio + hyper + rustls, certificate from an rcgen CA given to kapi as
//! `caBundle`), for MutatingWebhookConfigurations and ValidatingWebhookConfigurations with
//! `clientConfig.url`.
//!
//! Checked: a mutating webhook's JSONPatch lands in the stored object; a validating webhook's
//! denial comes back as kube's `admission webhook "<name>" denied the request: <msg>`; an
//! unreachable or slow webhook fails the request under `failurePolicy: Fail` (kube's
//! `failed calling webhook` message, within `timeoutSeconds`) and is skipped under `Ignore`; the
//! caller's bearer token never reaches the webhook, while `userInfo` names the caller; dry runs
//! reach `sideEffects: NoneOnDryRun` webhooks with `dryRun: true` and store nothing.
//!
//! Each webhook is scoped by `namespaceSelector` to its own namespace so the cases do not meet.

mod common;

use base64::Engine;
use bytes::Bytes;
use common::etcd::EtcdServer;
use common::kapi::{AuthClient, Kapi, RawClient, RawResponse};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const TOKEN: &str = "hook-caller-token-7c1e9b2f4d";
/// How long the `/slow` endpoint takes: well over the 1 s timeout it is configured with.
const SLOW: Duration = Duration::from_secs(6);

// ---- the webhook server --------------------------------------------------------------------

/// One AdmissionReview the server received.
#[derive(Clone, Debug)]
struct Received {
    path_and_query: String,
    headers: http::HeaderMap,
    review: Value,
}

#[derive(Default)]
struct Log {
    /// Every plaintext byte read from every connection (request lines, headers, bodies).
    raw: Mutex<Vec<u8>>,
    requests: Mutex<Vec<Received>>,
}

struct HookServer {
    addr: SocketAddr,
    ca_pem: String,
    log: Arc<Log>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HookServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A stream that copies what it reads into the log.
struct Recording<S> {
    inner: S,
    log: Arc<Log>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Recording<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &r {
            let new = &buf.filled()[before..];
            self.log.raw.lock().unwrap().extend_from_slice(new);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recording<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn review_response(uid: &str, response: Value) -> Value {
    let mut r = response;
    r["uid"] = json!(uid);
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": r})
}

/// What each path answers.
async fn answer(path: &str, review: &Value) -> Value {
    let req = &review["request"];
    let uid = req["uid"].as_str().unwrap_or("");
    let name = req["object"]["metadata"]["name"].as_str().unwrap_or("");
    match path {
        "/mutate" => {
            let labels = &req["object"]["metadata"]["labels"];
            let patch = if labels.is_object() {
                json!([{"op": "add", "path": "/metadata/labels/mutated-by", "value": "webhook"}])
            } else {
                json!([{"op": "add", "path": "/metadata/labels", "value": {"mutated-by": "webhook"}}])
            };
            let patch = base64::engine::general_purpose::STANDARD
                .encode(serde_json::to_vec(&patch).unwrap());
            review_response(
                uid,
                json!({"allowed": true, "patchType": "JSONPatch", "patch": patch}),
            )
        }
        "/deny" if name.starts_with("bad") => review_response(
            uid,
            json!({"allowed": false, "status": {"code": 403, "reason": "Forbidden",
                "message": "names starting with bad are not allowed"}}),
        ),
        "/slow" => {
            tokio::time::sleep(SLOW).await;
            review_response(uid, json!({"allowed": true}))
        }
        _ => review_response(
            uid,
            json!({"allowed": true, "warnings": ["seen by the recording webhook"]}),
        ),
    }
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    log: Arc<Log>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let path = req.uri().path().to_string();
    let headers = req.headers().clone();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let review: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    log.requests.lock().unwrap().push(Received {
        path_and_query,
        headers,
        review: review.clone(),
    });
    let out = answer(&path, &review).await;
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(&out).unwrap())))
        .unwrap())
}

async fn start_hook_server() -> HookServer {
    let (ca_pem, acceptor) = common::pki::serving_acceptor("webhook-test-ca");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Log::default());
    let server_log = log.clone();
    let task = common::pki::spawn_tls_server(listener, acceptor, move |tls| {
        let log = server_log.clone();
        async move {
            let io = TokioIo::new(Recording {
                inner: tls,
                log: log.clone(),
            });
            let svc = hyper::service::service_fn(move |req| handle(req, log.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await;
        }
    });
    HookServer {
        addr,
        ca_pem,
        log,
        task,
    }
}

// ---- kapi side -----------------------------------------------------------------------------

struct Setup {
    _etcd: EtcdServer,
    kapi: Kapi,
    hooks: HookServer,
    _dir: tempfile::TempDir,
}

async fn start() -> Setup {
    let hooks = start_hook_server().await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(
        &tokens,
        format!("{TOKEN},hook-user,u-hook-1,\"hook-team\"\n"),
    )
    .unwrap();
    let etcd = EtcdServer::start();
    let kapi = Kapi::start(vec![
        format!("--etcd-servers={}", etcd.endpoint),
        format!("--token-auth-file={}", tokens.display()),
    ]);
    Setup {
        _etcd: etcd,
        kapi,
        hooks,
        _dir: dir,
    }
}

fn ca_bundle(s: &Setup) -> String {
    base64::engine::general_purpose::STANDARD.encode(&s.hooks.ca_pem)
}

/// One webhook entry for pods in namespaces labelled `hook=<scope>`.
fn webhook(name: &str, url: &str, ca: &str, scope: &str, extra: Value) -> Value {
    let mut w = json!({
        "name": name,
        "clientConfig": {"url": url, "caBundle": ca},
        "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
            "resources": ["pods", "configmaps"]}],
        "namespaceSelector": {"matchLabels": {"hook": scope}},
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    });
    for (k, v) in extra.as_object().unwrap() {
        w[k] = v.clone();
    }
    w
}

async fn create(c: &RawClient, path: &str, body: Value) -> RawResponse {
    let r = c.post_json(path, &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{path}: {}", r.text());
    r
}

async fn namespace(c: &RawClient, name: &str, scope: &str) {
    create(
        c,
        "/api/v1/namespaces",
        json!({"metadata": {"name": name, "labels": {"hook": scope}}}),
    )
    .await;
}

async fn configuration(c: &RawClient, kind: &str, name: &str, hooks: Vec<Value>) {
    let plural = if kind == "Mutating" {
        "mutatingwebhookconfigurations"
    } else {
        "validatingwebhookconfigurations"
    };
    create(
        c,
        &format!("/apis/admissionregistration.k8s.io/v1/{plural}"),
        json!({"apiVersion": "admissionregistration.k8s.io/v1",
            "kind": format!("{kind}WebhookConfiguration"),
            "metadata": {"name": name}, "webhooks": hooks}),
    )
    .await;
}

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}})
}

/// Dry-run creates of `body` in `ns` until `ready` holds on the response (the configuration has
/// reached kapi's cache), within a bound.
async fn until_active(c: &RawClient, ns: &str, body: &Value, ready: impl Fn(&RawResponse) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = c
            .post_json(&format!("/api/v1/namespaces/{ns}/pods?dryRun=All"), body)
            .await;
        if ready(&r) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "webhook for {ns} never became active; last: {} {}",
            r.status,
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn internal_error(message: &str) -> String {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("Internal error occurred: {message}"), "reason": "InternalError",
        "details": {"causes": [{"message": message}]}, "code": 500})
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn mutating_and_validating_webhooks() {
    let s = start().await;
    let c = s.kapi.client();
    let ca = ca_bundle(&s);
    let base = format!("https://127.0.0.1:{}", s.hooks.addr.port());
    namespace(&c, "mut", "mutate").await;
    namespace(&c, "val", "validate").await;
    configuration(
        &c,
        "Mutating",
        "labeler",
        vec![webhook(
            "label.example.com",
            &format!("{base}/mutate"),
            &ca,
            "mutate",
            json!({"failurePolicy": "Fail"}),
        )],
    )
    .await;
    configuration(
        &c,
        "Validating",
        "namer",
        vec![webhook(
            "deny.example.com",
            &format!("{base}/deny"),
            &ca,
            "validate",
            json!({}),
        )],
    )
    .await;

    // Mutation: the patch's label is stored and visible on GET.
    until_active(&c, "mut", &pod("probe"), |r| {
        r.status == StatusCode::CREATED && r.json()["metadata"]["labels"]["mutated-by"] == "webhook"
    })
    .await;
    let r = create(&c, "/api/v1/namespaces/mut/pods", pod("m1")).await;
    assert_eq!(
        r.json()["metadata"]["labels"],
        json!({"mutated-by": "webhook"})
    );
    let got = c.get("/api/v1/namespaces/mut/pods/m1").await.json();
    assert_eq!(got["metadata"]["labels"], json!({"mutated-by": "webhook"}));
    // Existing labels are kept, the webhook's added.
    let mut p = pod("m2");
    p["metadata"]["labels"] = json!({"app": "x"});
    let (ok, _, err) = s
        .kapi
        .kubectl_with_input(&["create", "-n", "mut", "-f", "-"], Some(&p.to_string()));
    assert!(ok, "{err}");
    let out = s.kapi.kubectl(&[
        "get",
        "pod",
        "m2",
        "-n",
        "mut",
        "-o",
        "jsonpath={.metadata.labels}",
    ]);
    assert_eq!(
        serde_json::from_str::<Value>(&out.1).unwrap(),
        json!({"app": "x", "mutated-by": "webhook"})
    );
    // What the webhook was sent for m1: a v1 AdmissionReview of the pod, with the timeout.
    let sent = s
        .hooks
        .log
        .requests
        .lock()
        .unwrap()
        .iter()
        .find(|r| r.review["request"]["name"] == "m1")
        .cloned()
        .expect("m1 reached the webhook");
    assert_eq!(sent.path_and_query, "/mutate?timeout=10s");
    assert_eq!(sent.headers["content-type"], "application/json");
    let req = &sent.review["request"];
    assert_eq!(sent.review["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(sent.review["kind"], "AdmissionReview");
    assert_eq!(
        req["kind"],
        json!({"group": "", "version": "v1", "kind": "Pod"})
    );
    assert_eq!(
        req["resource"],
        json!({"group": "", "version": "v1", "resource": "pods"})
    );
    assert_eq!(req["operation"], "CREATE");
    assert_eq!(req["namespace"], "mut");
    assert_eq!(req["dryRun"], false);
    assert_eq!(req["object"]["metadata"]["name"], "m1");
    assert_eq!(req["oldObject"], Value::Null);
    assert_eq!(req["options"]["kind"], "CreateOptions");
    assert_eq!(req["userInfo"]["username"], "kapi-admin");

    // Validation: denied with kube's message and the webhook's code and reason.
    until_active(&c, "val", &pod("bad-probe"), |r| {
        r.status == StatusCode::FORBIDDEN
    })
    .await;
    let r = c
        .post_json("/api/v1/namespaces/val/pods", &pod("bad-pod"))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.text(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "admission webhook \"deny.example.com\" denied the request: names starting with bad are not allowed",
            "reason": "Forbidden", "code": 403})
        .to_string()
    );
    assert_eq!(
        c.get("/api/v1/namespaces/val/pods/bad-pod").await.status,
        StatusCode::NOT_FOUND
    );
    let (ok, _, err) = s
        .kapi
        .kubectl(&["create", "configmap", "bad-cm", "-n", "val"]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "error: failed to create configmap: admission webhook \"deny.example.com\" denied the request: names starting with bad are not allowed"
    );
    create(&c, "/api/v1/namespaces/val/pods", pod("good-pod")).await;
    // Other namespaces are not selected.
    create(
        &c,
        "/api/v1/namespaces/default/pods",
        pod("bad-but-elsewhere"),
    )
    .await;
    let got = c
        .get("/api/v1/namespaces/default/pods/bad-but-elsewhere")
        .await
        .json();
    assert!(got["metadata"].get("labels").is_none(), "{got}");
}

#[tokio::test(flavor = "multi_thread")]
async fn failure_policy_and_timeouts() {
    let s = start().await;
    let c = s.kapi.client();
    let ca = ca_bundle(&s);
    let base = format!("https://127.0.0.1:{}", s.hooks.addr.port());
    let dead_port = closed_port();
    let dead = format!("https://127.0.0.1:{dead_port}/hook");
    for (ns, scope) in [
        ("down-fail", "down-fail"),
        ("down-ignore", "down-ignore"),
        ("slow-fail", "slow-fail"),
        ("slow-ignore", "slow-ignore"),
        ("bad-ca", "bad-ca"),
    ] {
        namespace(&c, ns, scope).await;
    }
    configuration(
        &c,
        "Validating",
        "unreachable",
        vec![
            webhook(
                "down-fail.example.com",
                &dead,
                &ca,
                "down-fail",
                json!({"failurePolicy": "Fail"}),
            ),
            webhook(
                "down-ignore.example.com",
                &dead,
                &ca,
                "down-ignore",
                json!({"failurePolicy": "Ignore"}),
            ),
        ],
    )
    .await;
    // Trusting another CA (kapi's own) than the one that signed the webhook's certificate.
    let wrong_ca = base64::engine::general_purpose::STANDARD
        .encode(std::fs::read(s.kapi.data_dir.join("pki/ca.crt")).unwrap());
    configuration(
        &c,
        "Validating",
        "untrusted",
        vec![webhook(
            "bad-ca.example.com",
            &format!("{base}/record"),
            &wrong_ca,
            "bad-ca",
            json!({}),
        )],
    )
    .await;
    configuration(
        &c,
        "Mutating",
        "sluggish",
        vec![
            webhook(
                "slow-fail.example.com",
                &format!("{base}/slow"),
                &ca,
                "slow-fail",
                json!({"failurePolicy": "Fail", "timeoutSeconds": 1}),
            ),
            webhook(
                "slow-ignore.example.com",
                &format!("{base}/slow"),
                &ca,
                "slow-ignore",
                json!({"failurePolicy": "Ignore", "timeoutSeconds": 1}),
            ),
        ],
    )
    .await;

    // Unreachable + Fail: 500 with kube's message.
    until_active(&c, "down-fail", &pod("probe"), |r| {
        r.status == StatusCode::INTERNAL_SERVER_ERROR
    })
    .await;
    let r = c
        .post_json("/api/v1/namespaces/down-fail/pods", &pod("p"))
        .await;
    let msg = format!(
        "failed calling webhook \"down-fail.example.com\": failed to call webhook: Post \"{dead}?timeout=10s\": dial tcp 127.0.0.1:{dead_port}: connect: connection refused"
    );
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text());
    assert_eq!(r.text(), internal_error(&msg));
    let (ok, _, err) = s
        .kapi
        .kubectl(&["create", "configmap", "cm", "-n", "down-fail"]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        format!("error: failed to create configmap: Internal error occurred: {msg}")
    );
    // A certificate the caBundle does not vouch for: Go's x509 wording.
    until_active(&c, "bad-ca", &pod("probe"), |r| {
        r.status == StatusCode::INTERNAL_SERVER_ERROR
    })
    .await;
    let r = c
        .post_json("/api/v1/namespaces/bad-ca/pods", &pod("p"))
        .await;
    let msg = format!(
        "failed calling webhook \"bad-ca.example.com\": failed to call webhook: Post \"{base}/record?timeout=10s\": tls: failed to verify certificate: x509: certificate signed by unknown authority"
    );
    assert_eq!(r.text(), internal_error(&msg));
    // Unreachable + Ignore: the request goes through.
    let r = create(&c, "/api/v1/namespaces/down-ignore/pods", pod("p")).await;
    assert_eq!(r.json()["metadata"]["name"], "p");

    // Slow + Fail: refused after timeoutSeconds (1 s), not after the webhook's 6 s.
    let started = Instant::now();
    let r = c
        .post_json("/api/v1/namespaces/slow-fail/pods", &pod("p"))
        .await;
    let took = started.elapsed();
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text());
    let msg = format!(
        "failed calling webhook \"slow-fail.example.com\": failed to call webhook: Post \"{base}/slow?timeout=1s\": context deadline exceeded"
    );
    assert_eq!(r.text(), internal_error(&msg));
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "took {took:?}"
    );
    assert_eq!(
        c.get("/api/v1/namespaces/slow-fail/pods/p").await.status,
        StatusCode::NOT_FOUND
    );
    // Slow + Ignore: admitted after the timeout, unmutated.
    let started = Instant::now();
    let r = create(&c, "/api/v1/namespaces/slow-ignore/pods", pod("p")).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert!(r.json()["metadata"].get("labels").is_none());
    // The slow webhook was really called, with the timeout in its URL.
    let calls: Vec<String> = s
        .hooks
        .log
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.review["request"]["namespace"] == "slow-ignore")
        .map(|r| r.path_and_query.clone())
        .collect();
    assert_eq!(calls, vec!["/slow?timeout=1s".to_string()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_never_sees_the_callers_credentials() {
    let s = start().await;
    let c = s.kapi.client();
    let ca = ca_bundle(&s);
    let base = format!("https://127.0.0.1:{}", s.hooks.addr.port());
    namespace(&c, "cred", "record").await;
    let (ok, _, err) = s.kapi.kubectl(&[
        "create",
        "rolebinding",
        "hook-user-edit",
        "--clusterrole=edit",
        "--user=hook-user",
        "-n",
        "cred",
    ]);
    assert!(ok, "{err}");
    configuration(
        &c,
        "Validating",
        "recorder",
        vec![webhook(
            "record.example.com",
            &format!("{base}/record"),
            &ca,
            "record",
            json!({}),
        )],
    )
    .await;
    configuration(
        &c,
        "Mutating",
        "recorder",
        vec![webhook(
            "record-m.example.com",
            &format!("{base}/record"),
            &ca,
            "record",
            json!({}),
        )],
    )
    .await;
    let user = AuthClient::new(&s.kapi.data_dir, s.kapi.port, None, Some(TOKEN));
    // RBAC and the configurations reach the caches; then a real create as hook-user.
    let deadline = Instant::now() + Duration::from_secs(20);
    let from_user = || {
        s.hooks
            .log
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.review["request"]["userInfo"]["username"] == "hook-user")
            .count()
    };
    let r = loop {
        let before = from_user();
        let r = user
            .post_json(
                "/api/v1/namespaces/cred/configmaps",
                &json!({"metadata": {"name": "from-user"}, "data": {"k": "v"}}),
            )
            .await;
        // Both the mutating and the validating webhook saw this very create.
        if r.status == StatusCode::CREATED && from_user() - before == 2 {
            break r;
        }
        if r.status == StatusCode::CREATED {
            // Created before both webhooks were active: delete it and try again.
            assert_eq!(
                user.request(
                    Method::DELETE,
                    "/api/v1/namespaces/cred/configmaps/from-user",
                    &[],
                    None
                )
                .await
                .status,
                StatusCode::OK
            );
        }
        assert!(
            Instant::now() < deadline,
            "hook-user's create never reached both webhooks: {} {}",
            r.status,
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The webhooks' warnings reach the caller.
    let warnings: Vec<&str> = r
        .headers
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        warnings.contains(&"299 - \"seen by the recording webhook\""),
        "{warnings:?}"
    );

    let requests = s.hooks.log.requests.lock().unwrap().clone();
    let mine: Vec<&Received> = requests
        .iter()
        .filter(|r| r.review["request"]["userInfo"]["username"] == "hook-user")
        .collect();
    assert!(mine.len() >= 2);
    for r in &mine {
        assert_eq!(
            r.review["request"]["userInfo"],
            json!({"username": "hook-user", "uid": "u-hook-1",
                "groups": ["hook-team", "system:authenticated"]})
        );
        assert!(r.headers.get("authorization").is_none(), "{:?}", r.headers);
        assert!(r.headers.get("impersonate-user").is_none());
    }
    // Not one byte sequence of the token anywhere in what the webhook server read.
    let raw = s.hooks.log.raw.lock().unwrap().clone();
    assert!(!raw.is_empty());
    assert!(
        raw.windows(TOKEN.len()).all(|w| w != TOKEN.as_bytes()),
        "the caller's token reached the webhook"
    );
    let text = String::from_utf8_lossy(&raw).to_lowercase();
    assert!(
        !text.contains("authorization:"),
        "an Authorization header was sent"
    );
    assert!(text.contains("\"username\":\"hook-user\""));
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_runs_reach_none_on_dry_run_webhooks() {
    let s = start().await;
    let c = s.kapi.client();
    let ca = ca_bundle(&s);
    let base = format!("https://127.0.0.1:{}", s.hooks.addr.port());
    namespace(&c, "dry", "dry").await;
    let on_dry_run = json!({"sideEffects": "NoneOnDryRun"});
    configuration(
        &c,
        "Mutating",
        "dry-labeler",
        vec![webhook(
            "dry-m.example.com",
            &format!("{base}/mutate"),
            &ca,
            "dry",
            on_dry_run.clone(),
        )],
    )
    .await;
    configuration(
        &c,
        "Validating",
        "dry-namer",
        vec![webhook(
            "dry-v.example.com",
            &format!("{base}/deny"),
            &ca,
            "dry",
            on_dry_run,
        )],
    )
    .await;
    // Both configurations active (until_active dry-runs): the validating one denies, the
    // mutating one labels.
    until_active(&c, "dry", &pod("bad-probe"), |r| {
        r.status == StatusCode::FORBIDDEN
    })
    .await;
    until_active(&c, "dry", &pod("probe"), |r| {
        r.status == StatusCode::CREATED && r.json()["metadata"]["labels"]["mutated-by"] == "webhook"
    })
    .await;

    // kubectl's server-side dry run: mutated in the answer, nothing stored.
    let (ok, out, err) = s.kapi.kubectl_with_input(
        &[
            "create",
            "-n",
            "dry",
            "--dry-run=server",
            "-o",
            "json",
            "-f",
            "-",
        ],
        Some(&pod("d1").to_string()),
    );
    assert!(ok, "{err}");
    let answered: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        answered["metadata"]["labels"],
        json!({"mutated-by": "webhook"})
    );
    assert_eq!(
        c.get("/api/v1/namespaces/dry/pods/d1").await.status,
        StatusCode::NOT_FOUND
    );
    // Both webhooks were told it is a dry run, in the request and in its options.
    let seen: Vec<Received> = s
        .hooks
        .log
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.review["request"]["name"] == "d1")
        .cloned()
        .collect();
    let paths: Vec<&str> = seen.iter().map(|r| r.path_and_query.as_str()).collect();
    assert_eq!(paths, vec!["/mutate?timeout=10s", "/deny?timeout=10s"]);
    for r in &seen {
        let req = &r.review["request"];
        assert_eq!(req["dryRun"], true, "{}", r.path_and_query);
        assert_eq!(req["options"]["kind"], "CreateOptions");
        assert_eq!(req["options"]["dryRun"], json!(["All"]));
    }
    // A dry run the validating webhook denies: kube's denial, nothing stored.
    let r = c
        .post_json("/api/v1/namespaces/dry/pods?dryRun=All", &pod("bad-dry"))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert_eq!(
        r.json()["message"],
        "admission webhook \"dry-v.example.com\" denied the request: names starting with bad are not allowed"
    );
    // The same webhooks see a real create as one.
    let r = create(&c, "/api/v1/namespaces/dry/pods", pod("d2")).await;
    assert_eq!(
        r.json()["metadata"]["labels"],
        json!({"mutated-by": "webhook"})
    );
    let real: Vec<Value> = s
        .hooks
        .log
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.review["request"]["name"] == "d2")
        .map(|r| r.review["request"]["dryRun"].clone())
        .collect();
    assert_eq!(real, vec![json!(false), json!(false)]);
}
