//! TokenRequest (`serviceaccounts/<name>/token`) and bound service-account tokens end to end:
//! real etcd, the real kapi binary with an RSA signing key, `kubectl create token` and
//! `kubectl auth whoami`, raw requests for the exact Status bodies.

mod common;

use base64::Engine;
use common::etcd::EtcdServer;
use common::kapi::{AuthClient, Kapi};
use http::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

struct Setup {
    kapi: Kapi,
    _etcd: EtcdServer,
}

/// kapi on a fresh etcd, signing with a new RSA key, tokens capped at 24h, and a static token
/// for a user with no permissions.
fn start() -> Setup {
    use aws_lc_rs::encoding::AsDer;
    let etcd = EtcdServer::start();
    let dir = tempfile::tempdir().unwrap().keep();
    let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der = kp.as_der().unwrap();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(der.as_ref())
    );
    let key = dir.join("sa.key");
    std::fs::write(&key, pem).unwrap();
    let tokens = dir.join("tokens.csv");
    std::fs::write(&tokens, "nobody-token,nobody,u-nobody\n").unwrap();
    let kapi = Kapi::start(vec![
        format!("--etcd-servers={}", etcd.endpoint),
        format!("--service-account-signing-key-file={}", key.display()),
        format!("--service-account-issuer={ISSUER}"),
        "--service-account-max-token-expiration=24h".into(),
        format!("--token-auth-file={}", tokens.display()),
    ]);
    Setup { kapi, _etcd: etcd }
}

fn admin_kubectl(k: &Kapi, args: &[&str]) -> String {
    let (ok, out, err) = k.kubectl(args);
    assert!(ok, "kubectl {args:?}: {err}");
    out
}

fn create_json(k: &Kapi, obj: &Value) -> Value {
    let (ok, out, err) =
        k.kubectl_with_input(&["create", "-f", "-", "-o", "json"], Some(&obj.to_string()));
    assert!(ok, "create {obj}: {err}");
    serde_json::from_str(&out).unwrap()
}

fn uid(obj: &Value) -> String {
    obj["metadata"]["uid"].as_str().unwrap().to_string()
}

/// `kubectl create token` with extra flags; the printed token.
fn create_token(k: &Kapi, sa: &str, ns: &str, flags: &[&str]) -> String {
    let mut args = vec!["create", "token", sa, "-n", ns];
    args.extend_from_slice(flags);
    let token = admin_kubectl(k, &args).trim().to_string();
    assert_eq!(token.split('.').count(), 3, "not a JWT: {token}");
    token
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// `kubectl auth whoami` with only the token: the UserInfo, or None when unauthorized.
fn whoami(k: &Kapi, token: &str) -> Option<Value> {
    let kc = k.token_kubeconfig("bearer", token);
    let (ok, out, err) = k.kubectl_with(&kc, &["auth", "whoami", "-o", "json"]);
    if !ok {
        assert!(
            err.contains("Unauthorized"),
            "whoami failed otherwise: {err}"
        );
        return None;
    }
    Some(serde_json::from_str::<Value>(&out).unwrap()["status"]["userInfo"].clone())
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn token_path(ns: &str, sa: &str) -> String {
    format!("/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token")
}

fn token_request(spec: Value) -> Value {
    json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})
}

/// Waits (briefly) until `f` holds.
async fn eventually(mut f: impl FnMut() -> bool) {
    for _ in 0..50 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("condition not reached");
}

fn robot(k: &Kapi, ns: &str) -> String {
    admin_kubectl(k, &["create", "namespace", ns]);
    let sa = create_json(
        k,
        &json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot", "namespace": ns}}),
    );
    uid(&sa)
}

#[tokio::test(flavor = "multi_thread")]
async fn create_token_issues_tokens_that_authenticate() {
    let s = start();
    let k = &s.kapi;
    let sa_uid = robot(k, "apps");

    // Discovery lists the subresource as kube-apiserver does.
    let list = k.client().get("/api/v1").await.json();
    let entry = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "serviceaccounts/token")
        .expect("serviceaccounts/token in discovery")
        .clone();
    assert_eq!(entry["group"], "authentication.k8s.io");
    assert_eq!(entry["version"], "v1");
    assert_eq!(entry["kind"], "TokenRequest");
    assert_eq!(entry["verbs"], json!(["create"]));

    let before = now();
    let token = create_token(k, "robot", "apps", &[]);
    let c = claims(&token);
    assert_eq!(c["iss"], ISSUER);
    assert_eq!(c["aud"], ISSUER);
    assert_eq!(c["sub"], "system:serviceaccount:apps:robot");
    assert_eq!(
        c["kubernetes.io"],
        json!({"namespace": "apps", "serviceaccount": {"name": "robot", "uid": sa_uid}})
    );
    let iat = c["iat"].as_i64().unwrap();
    assert!(iat >= before - 1 && iat <= now() + 1, "iat {iat}");
    assert_eq!(c["nbf"].as_i64(), Some(iat));
    assert_eq!(c["exp"].as_i64(), Some(iat + 3600));
    let jti = c["jti"].as_str().unwrap().to_string();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "RS256");
    assert!(header["kid"].as_str().is_some_and(|k| k.len() == 43));

    let info = whoami(k, &token).expect("the token authenticates");
    assert_eq!(info["username"], "system:serviceaccount:apps:robot");
    assert_eq!(info["uid"], sa_uid.as_str());
    assert_eq!(
        info["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:apps",
            "system:authenticated"
        ])
    );
    assert_eq!(
        info["extra"]["authentication.kubernetes.io/credential-id"],
        json!([format!("JTI={jti}")])
    );
    // A raw request with the token, authorized by RBAC like any service account.
    let client = AuthClient::new(&k.data_dir, k.port, None, Some(&token));
    let r = client.get("/api/v1/namespaces/apps/pods").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.json()["message"],
        r#"pods is forbidden: User "system:serviceaccount:apps:robot" cannot list resource "pods" in API group "" in the namespace "apps""#
    );

    // --duration becomes spec.expirationSeconds.
    let token = create_token(k, "robot", "apps", &["--duration=2h"]);
    let c = claims(&token);
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        7200
    );
    assert!(whoami(k, &token).is_some());

    // The raw API: 201 with the request, defaulted, and status.token/expirationTimestamp.
    let r = k
        .client()
        .post_json(
            &token_path("apps", "robot"),
            &token_request(json!({"expirationSeconds": 1200, "audiences": ["a", "b"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let tr = r.json();
    assert_eq!(tr["kind"], "TokenRequest");
    assert_eq!(tr["apiVersion"], "authentication.k8s.io/v1");
    assert_eq!(tr["metadata"]["name"], "robot");
    assert_eq!(tr["metadata"]["namespace"], "apps");
    assert_eq!(
        tr["spec"],
        json!({"audiences": ["a", "b"], "expirationSeconds": 1200, "boundObjectRef": null})
    );
    let token = tr["status"]["token"].as_str().unwrap();
    let c = claims(token);
    assert_eq!(c["aud"], json!(["a", "b"]));
    let expires = tr["status"]["expirationTimestamp"].as_str().unwrap();
    let expected = time::OffsetDateTime::from_unix_timestamp(c["exp"].as_i64().unwrap())
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    assert_eq!(expires, expected);
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        1200
    );
    // Audiences the API server is not: not accepted here.
    assert!(whoami(k, token).is_none());

    // Longer than --service-account-max-token-expiration: shortened, with a warning.
    let (ok, out, err) = k.kubectl(&["create", "token", "robot", "-n", "apps", "--duration=48h"]);
    assert!(ok, "{err}");
    assert!(
        err.contains("requested expiration of 172800 seconds shortened to 86400 seconds"),
        "{err}"
    );
    let c = claims(out.trim());
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        86400
    );

    // Too short: kube-apiserver's validation error.
    let msg = r#"TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"#;
    let (ok, _, err) = k.kubectl(&["create", "token", "robot", "-n", "apps", "--duration=1m"]);
    assert!(!ok);
    assert!(err.contains(msg), "{err}");
    let r = k
        .client()
        .post_json(
            &token_path("apps", "robot"),
            &token_request(json!({"expirationSeconds": 60})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let st = r.json();
    assert_eq!(st["reason"], "Invalid");
    assert_eq!(st["message"], msg);
    assert_eq!(
        st["details"],
        json!({"group": "authentication.k8s.io", "kind": "TokenRequest", "causes": [{
            "reason": "FieldValueInvalid",
            "message": "Invalid value: 60: may not specify a duration less than 10 minutes",
            "field": "spec.expirationSeconds"}]})
    );

    // A service account that does not exist: 404.
    let (ok, _, err) = k.kubectl(&["create", "token", "ghost", "-n", "apps"]);
    assert!(!ok);
    assert!(
        err.contains(r#"serviceaccounts "ghost" not found"#),
        "{err}"
    );
    let r = k
        .client()
        .post_json(&token_path("apps", "ghost"), &token_request(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.text(),
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"serviceaccounts \"ghost\" not found","reason":"NotFound","details":{"name":"ghost","kind":"serviceaccounts"},"code":404}"#
    );

    // Issuing tokens is `create serviceaccounts/token`, which RBAC checks.
    let nobody = AuthClient::new(&k.data_dir, k.port, None, Some("nobody-token"));
    let r = nobody
        .post_json(&token_path("apps", "robot"), &token_request(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.json()["message"],
        r#"serviceaccounts "robot" is forbidden: User "nobody" cannot create resource "serviceaccounts/token" in API group "" in the namespace "apps""#
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_bound_to_a_pod_or_secret_die_with_it() {
    let s = start();
    let k = &s.kapi;
    let sa_uid = robot(k, "apps");
    let pod = |name: &str, sa: &str| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "apps"},
               "spec": {"serviceAccountName": sa, "nodeName": "node-1",
                        "containers": [{"name": "c", "image": "busybox"}]}})
    };
    let web = create_json(k, &pod("web", "robot"));
    let pod_uid = uid(&web);

    let token = create_token(
        k,
        "robot",
        "apps",
        &["--bound-object-kind=Pod", "--bound-object-name=web"],
    );
    let c = claims(&token);
    assert_eq!(
        c["kubernetes.io"],
        // The pod's node is recorded by name (there is no Node object to take a uid from).
        json!({"namespace": "apps", "serviceaccount": {"name": "robot", "uid": sa_uid},
               "pod": {"name": "web", "uid": pod_uid}, "node": {"name": "node-1"}})
    );
    let info = whoami(k, &token).expect("the pod-bound token authenticates");
    assert_eq!(info["username"], "system:serviceaccount:apps:robot");
    assert_eq!(
        info["extra"]["authentication.kubernetes.io/pod-name"],
        json!(["web"])
    );
    assert_eq!(
        info["extra"]["authentication.kubernetes.io/pod-uid"],
        json!([pod_uid])
    );
    assert_eq!(
        info["extra"]["authentication.kubernetes.io/node-name"],
        json!(["node-1"])
    );

    // Binding errors: a missing pod, a pod running as another service account, a stale uid,
    // an unsupported kind.
    let (ok, _, err) = k.kubectl(&[
        "create",
        "token",
        "robot",
        "-n",
        "apps",
        "--bound-object-kind=Pod",
        "--bound-object-name=nope",
    ]);
    assert!(!ok);
    assert!(err.contains(r#"pods "nope" not found"#), "{err}");
    let bind = |kind: &str, name: &str, uid: &str| {
        token_request(
            json!({"boundObjectRef": {"kind": kind, "apiVersion": "v1", "name": name, "uid": uid}}),
        )
    };
    let r = k
        .client()
        .post_json(&token_path("apps", "robot"), &bind("Pod", "nope", ""))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["message"], r#"pods "nope" not found"#);
    create_json(
        k,
        &json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "helper", "namespace": "apps"}}),
    );
    create_json(k, &pod("other", "helper"));
    let r = k
        .client()
        .post_json(&token_path("apps", "robot"), &bind("Pod", "other", ""))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json()["message"],
        r#"cannot bind token for serviceaccount "robot" to pod running with different serviceaccount name."#
    );
    let r = k
        .client()
        .post_json(&token_path("apps", "robot"), &bind("Pod", "web", "stale"))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(
        r.json()["message"],
        r#"Operation cannot be fulfilled on Pod "web": the UID in the bound object reference (stale) does not match the UID in record. The object might have been deleted and then recreated"#
    );
    let r = k
        .client()
        .post_json(&token_path("apps", "robot"), &bind("ConfigMap", "x", ""))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json()["message"],
        "cannot bind token to object of type /v1, Kind=ConfigMap"
    );

    // Deleting the pod invalidates the token; a pod re-created under the same name does not
    // bring it back (another uid).
    admin_kubectl(k, &["delete", "pod", "web", "-n", "apps"]);
    eventually(|| whoami(k, &token).is_none()).await;
    create_json(k, &pod("web", "robot"));
    assert!(whoami(k, &token).is_none());

    // Same for a secret.
    create_json(
        k,
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "apps"}}),
    );
    let token = create_token(
        k,
        "robot",
        "apps",
        &["--bound-object-kind=Secret", "--bound-object-name=creds"],
    );
    assert_eq!(claims(&token)["kubernetes.io"]["secret"]["name"], "creds");
    assert!(whoami(k, &token).is_some());
    admin_kubectl(k, &["delete", "secret", "creds", "-n", "apps"]);
    eventually(|| whoami(k, &token).is_none()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_die_with_their_service_account() {
    let s = start();
    let k = &s.kapi;
    robot(k, "apps");
    let token = create_token(k, "robot", "apps", &[]);
    assert!(whoami(k, &token).is_some());
    admin_kubectl(k, &["delete", "serviceaccount", "robot", "-n", "apps"]);
    eventually(|| whoami(k, &token).is_none()).await;
    // Re-created under the same name, it is another account: the old token stays dead.
    let new_uid = uid(&create_json(
        k,
        &json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot", "namespace": "apps"}}),
    ));
    assert!(whoami(k, &token).is_none());
    let token = create_token(k, "robot", "apps", &[]);
    assert_eq!(
        whoami(k, &token).expect("new token")["uid"],
        new_uid.as_str()
    );
}

/// `etcd_requests_total` for `get` on `resource`, from kapi's /metrics.
async fn store_gets(k: &Kapi, resource: &str) -> f64 {
    let text = k.client().get("/metrics").await.text();
    text.lines()
        .filter(|l| l.starts_with("etcd_requests_total{"))
        .filter(|l| l.contains(r#"operation="get""#))
        .filter(|l| l.contains(&format!(r#"resource="{resource}""#)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn settled_tokens_are_checked_against_the_watch_cache() {
    let s = start();
    let k = &s.kapi;
    robot(k, "apps");
    create_json(
        k,
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "apps"},
                "spec": {"serviceAccountName": "robot", "containers": [{"name": "c", "image": "busybox"}]}}),
    );
    let token = create_token(
        k,
        "robot",
        "apps",
        &["--bound-object-kind=Pod", "--bound-object-name=web"],
    );
    // Past the window in which a token may name objects the cache has not seen yet, every
    // check is answered by the watch caches.
    tokio::time::sleep(Duration::from_secs(31)).await;
    let client = AuthClient::new(&k.data_dir, k.port, None, Some(&token));
    let (sa_gets, pod_gets) = (
        store_gets(k, "serviceaccounts").await,
        store_gets(k, "pods").await,
    );
    // TokenRequest itself read both from the store: the counters are there.
    assert!(sa_gets > 0.0 && pod_gets > 0.0, "{sa_gets} {pod_gets}");
    for _ in 0..20 {
        let r = client.get("/apis/authentication.k8s.io/v1").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    assert_eq!(store_gets(k, "serviceaccounts").await, sa_gets);
    assert_eq!(store_gets(k, "pods").await, pod_gets);

    // The cache sees the deletion, and the token stops working without a store read.
    admin_kubectl(k, &["delete", "pod", "web", "-n", "apps"]);
    let pod_gets = store_gets(k, "pods").await;
    for _ in 0..50 {
        if client.get("/apis").await.status == StatusCode::UNAUTHORIZED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = client.get("/apis").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(store_gets(k, "pods").await, pod_gets);
}
