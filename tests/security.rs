//! The security chain end to end: authentication (x509, static tokens, service-account JWTs,
//! anonymous), impersonation, RBAC with the bootstrap policy, the Node authorizer, the review
//! APIs behind `kubectl auth can-i` / `kubectl auth whoami`, and the exact 401/403 bodies.
//!
//! Escalation prevention (an `edit` user creating a RoleBinding to `cluster-admin`, the
//! `escalate` and `bind` verbs) is tested in `rbac_escalation.rs`.

mod common;

use common::kapi::{issue_client_cert, AuthClient, Kapi};
use http::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

const ISSUER: &str = "https://kapi.test";
const UNAUTHORIZED: &str = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#;

struct Setup {
    kapi: Kapi,
    sa_private_key: String,
}

/// kapi with a token file (edit-user, view-user, nobody) and a service-account key.
fn start() -> Setup {
    let dir = tempfile::tempdir().unwrap().keep();
    let tokens = dir.join("tokens.csv");
    std::fs::write(
        &tokens,
        "edit-token,edit-user,u-edit,\"devs,humans\"\nview-token,view-user,u-view\nnobody-token,nobody,u-nobody\n",
    )
    .unwrap();
    let kp = rcgen::KeyPair::generate().unwrap();
    let public = dir.join("sa.pub");
    std::fs::write(&public, kp.public_key_pem()).unwrap();
    let kapi = Kapi::start(vec![
        format!("--token-auth-file={}", tokens.display()),
        format!("--service-account-key-file={}", public.display()),
        format!("--service-account-issuer={ISSUER}"),
    ]);
    Setup {
        kapi,
        sa_private_key: kp.serialize_pem(),
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn sa_token(key_pem: &str, ns: &str, name: &str, uid: &str, exp: i64) -> String {
    let claims = json!({
        "iss": ISSUER, "aud": [ISSUER], "sub": format!("system:serviceaccount:{ns}:{name}"),
        "iat": now(), "nbf": now() - 5, "exp": exp, "jti": "j-1",
        "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": name, "uid": uid}},
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_pem(key_pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn admin_kubectl(k: &Kapi, args: &[&str]) -> String {
    let (ok, out, err) = k.kubectl(args);
    assert!(ok, "kubectl {args:?}: {err}");
    out
}

/// `kubectl auth can-i` as `kubeconfig`: true for "yes".
fn can_i(k: &Kapi, kubeconfig: &std::path::Path, args: &[&str]) -> bool {
    let mut full = vec!["auth", "can-i"];
    full.extend_from_slice(args);
    let (ok, out, err) = k.kubectl_with(kubeconfig, &full);
    assert_eq!(ok, out.trim() == "yes", "can-i {args:?}: {out} {err}");
    ok
}

fn can_i_admin(k: &Kapi, args: &[&str]) -> bool {
    can_i(k, &k.kubeconfig, args)
}

/// Waits (briefly) until `f` holds: RBAC objects reach the authorizer through the watch cache.
async fn eventually(mut f: impl FnMut() -> bool) {
    for _ in 0..50 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("condition not reached");
}

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_and_bad_credentials() {
    let s = start();
    let k = &s.kapi;
    let anon = AuthClient::new(&k.data_dir, k.port, None, None);
    let r = anon.get("/healthz").await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "ok"));
    let r = anon.get("/version").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.json()["gitVersion"].is_string());
    let r = anon.get("/api/v1/pods").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.text(),
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods is forbidden: User \"system:anonymous\" cannot list resource \"pods\" in API group \"\" at the cluster scope","reason":"Forbidden","details":{"kind":"pods"},"code":403}"#
    );
    // Discovery needs an authenticated user (system:discovery is bound to system:authenticated).
    assert_eq!(anon.get("/apis").await.status, StatusCode::FORBIDDEN);

    // A bad bearer token is 401 even though anonymous is on.
    let bad = AuthClient::new(&k.data_dir, k.port, None, Some("not-a-token"));
    let r = bad.get("/healthz").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (StatusCode::UNAUTHORIZED, UNAUTHORIZED)
    );

    // An expired service-account JWT (signed by the right key) is 401 too.
    let out = admin_kubectl(k, &["create", "serviceaccount", "robot", "-o", "json"]);
    let uid = serde_json::from_str::<Value>(&out).unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let expired = sa_token(&s.sa_private_key, "default", "robot", &uid, now() - 3600);
    let r = AuthClient::new(&k.data_dir, k.port, None, Some(&expired))
        .get("/api/v1/namespaces/default/pods")
        .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (StatusCode::UNAUTHORIZED, UNAUTHORIZED)
    );
    // Signed by another key: 401.
    let other = rcgen::KeyPair::generate().unwrap().serialize_pem();
    let forged = sa_token(&other, "default", "robot", &uid, now() + 600);
    let r = AuthClient::new(&k.data_dir, k.port, None, Some(&forged))
        .get("/healthz")
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // A client certificate from a CA kapi does not trust is refused at the TLS handshake.
    let (cert, key) = issue_client_cert(&k.data_dir, "mallory", &["system:masters"], true);
    let foreign = AuthClient::new(&k.data_dir, k.port, Some((&cert, &key)), None);
    let attempt = tokio::spawn(async move { foreign.get("/api/v1/pods").await.status });
    match attempt.await {
        Err(e) => assert!(e.is_panic(), "the handshake or request must fail"),
        Ok(status) => assert_eq!(status, StatusCode::UNAUTHORIZED),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_auth_off_gives_401() {
    let k = Kapi::start(vec!["--anonymous-auth=false".into()]);
    let anon = AuthClient::new(&k.data_dir, k.port, None, None);
    let r = anon.get("/healthz").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (StatusCode::UNAUTHORIZED, UNAUTHORIZED)
    );
    // The admin certificate still works.
    assert_eq!(
        k.client().get("/api/v1/namespaces").await.status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn can_i_and_whoami_follow_rbac() {
    let s = start();
    let k = &s.kapi;
    admin_kubectl(k, &["create", "namespace", "team"]);
    admin_kubectl(
        k,
        &[
            "create",
            "rolebinding",
            "edit-user",
            "--clusterrole=edit",
            "--user=edit-user",
            "-n",
            "team",
        ],
    );
    admin_kubectl(
        k,
        &[
            "create",
            "rolebinding",
            "viewers",
            "--clusterrole=view",
            "--user=view-user",
            "-n",
            "team",
        ],
    );

    // cluster-admin (the admin certificate: CN kapi-admin, O system:masters).
    let (ok, out, _) = k.kubectl(&["auth", "whoami"]);
    assert!(ok);
    assert!(
        out.contains("kapi-admin") && out.contains("[system:masters system:authenticated]"),
        "{out}"
    );
    assert!(can_i_admin(k, &["create", "clusterrolebindings"]));
    assert!(can_i_admin(k, &["delete", "nodes"]));
    assert!(can_i_admin(k, &["get", "/metrics"]));

    // Token users: whoami shows their name, uid and groups.
    let edit = k.token_kubeconfig("edit", "edit-token");
    let view = k.token_kubeconfig("view", "view-token");
    let (ok, out, err) = k.kubectl_with(&edit, &["auth", "whoami", "-o", "json"]);
    assert!(ok, "{err}");
    let who: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(who["kind"], "SelfSubjectReview");
    assert_eq!(
        who["status"]["userInfo"],
        json!({"username": "edit-user", "uid": "u-edit", "groups": ["devs", "humans", "system:authenticated"]})
    );

    eventually(|| can_i(k, &edit, &["create", "deployments", "-n", "team"])).await;
    assert!(can_i(k, &edit, &["delete", "secrets", "-n", "team"]));
    assert!(can_i(
        k,
        &edit,
        &["get", "pods", "--subresource=log", "-n", "team"]
    ));
    assert!(!can_i(
        k,
        &edit,
        &["create", "deployments", "-n", "default"]
    ));
    assert!(!can_i(k, &edit, &["create", "rolebindings", "-n", "team"]));
    assert!(!can_i(k, &edit, &["list", "nodes"]));
    eventually(|| can_i(k, &view, &["list", "pods", "-n", "team"])).await;
    assert!(can_i(k, &view, &["get", "deployments.apps", "-n", "team"]));
    assert!(!can_i(k, &view, &["get", "secrets", "-n", "team"]));
    assert!(!can_i(k, &view, &["create", "configmaps", "-n", "team"]));
    // Impersonation from the admin kubeconfig answers the same.
    assert!(can_i_admin(
        k,
        &["create", "pods", "-n", "team", "--as=edit-user"]
    ));
    assert!(!can_i_admin(
        k,
        &["create", "pods", "-n", "team", "--as=view-user"]
    ));

    // The requests themselves agree with can-i.
    let (ok, _, err) = k.kubectl_with(&edit, &["create", "configmap", "c1", "-n", "team"]);
    assert!(ok, "{err}");
    let (ok, _, err) = k.kubectl_with(&view, &["create", "configmap", "c2", "-n", "team"]);
    assert!(!ok);
    assert!(
        err.contains(r#"configmaps is forbidden: User "view-user" cannot create resource "configmaps" in API group "" in the namespace "team""#),
        "{err}"
    );
    let (ok, out, _) = k.kubectl_with(&view, &["get", "configmaps", "-n", "team", "-o", "name"]);
    assert!(ok && out.contains("configmap/c1"));

    // can-i --list (SelfSubjectRulesReview).
    let (ok, out, err) = k.kubectl_with(&view, &["auth", "can-i", "--list", "-n", "team"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("selfsubjectaccessreviews.authorization.k8s.io"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("pods ") && l.contains("[get list watch]")),
        "{out}"
    );

    // SubjectAccessReview and TokenReview from the admin.
    let admin = k.client();
    let r = admin
        .post_json(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            &json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                    "spec": {"user": "view-user", "resourceAttributes": {"namespace": "team", "verb": "list", "resource": "pods"}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["status"]["allowed"], true);
    let r = admin
        .post_json(
            "/apis/authorization.k8s.io/v1/namespaces/team/localsubjectaccessreviews",
            &json!({"apiVersion": "authorization.k8s.io/v1", "kind": "LocalSubjectAccessReview",
                    "spec": {"user": "view-user", "resourceAttributes": {"namespace": "team", "verb": "delete", "resource": "pods"}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.json()["status"], json!({"allowed": false}));
    let r = admin
        .post_json(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": "view-token"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let st = &r.json()["status"];
    assert_eq!(st["authenticated"], true);
    assert_eq!(st["user"]["username"], "view-user");
    // Reviews are create-only.
    assert_eq!(
        admin
            .get("/apis/authorization.k8s.io/v1/subjectaccessreviews")
            .await
            .status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    // Discovery lists them with verbs ["create"].
    let d = admin.get("/apis/authorization.k8s.io/v1").await.json();
    let ssar = d["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "selfsubjectaccessreviews")
        .unwrap();
    assert_eq!(ssar["verbs"], json!(["create"]));
    // Aggregation: the edit ClusterRole shows the aggregated rules.
    eventually(|| {
        let out = admin_kubectl(k, &["get", "clusterrole", "edit", "-o", "json"]);
        let v: Value = serde_json::from_str(&out).unwrap();
        v["rules"].as_array().is_some_and(|r| r.len() > 5)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn service_account_tokens() {
    let s = start();
    let k = &s.kapi;
    admin_kubectl(k, &["create", "namespace", "apps"]);
    let out = admin_kubectl(
        k,
        &[
            "create",
            "serviceaccount",
            "robot",
            "-n",
            "apps",
            "-o",
            "json",
        ],
    );
    let uid = serde_json::from_str::<Value>(&out).unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    admin_kubectl(
        k,
        &[
            "create",
            "role",
            "pod-reader",
            "--verb=get,list,watch",
            "--resource=pods",
            "-n",
            "apps",
        ],
    );
    admin_kubectl(
        k,
        &[
            "create",
            "rolebinding",
            "robot-reads",
            "--role=pod-reader",
            "--serviceaccount=apps:robot",
            "-n",
            "apps",
        ],
    );

    let token = sa_token(&s.sa_private_key, "apps", "robot", &uid, now() + 600);
    let kc = k.token_kubeconfig("robot", &token);
    let (ok, out, err) = k.kubectl_with(&kc, &["auth", "whoami", "-o", "json"]);
    assert!(ok, "{err}");
    let info = &serde_json::from_str::<Value>(&out).unwrap()["status"]["userInfo"];
    assert_eq!(info["username"], "system:serviceaccount:apps:robot");
    assert_eq!(info["uid"], uid.as_str());
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
        json!(["JTI=j-1"])
    );

    eventually(|| can_i(k, &kc, &["list", "pods", "-n", "apps"])).await;
    assert!(!can_i(k, &kc, &["list", "pods", "-n", "default"]));
    assert!(!can_i(k, &kc, &["get", "secrets", "-n", "apps"]));
    assert!(!can_i(k, &kc, &["create", "pods", "-n", "apps"]));
    let client = AuthClient::new(&k.data_dir, k.port, None, Some(&token));
    assert_eq!(
        client.get("/api/v1/namespaces/apps/pods").await.status,
        StatusCode::OK
    );
    let r = client.get("/api/v1/namespaces/apps/secrets/x").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.json()["message"],
        r#"secrets "x" is forbidden: User "system:serviceaccount:apps:robot" cannot get resource "secrets" in API group "" in the namespace "apps""#
    );

    // A token claiming another uid, or for a deleted service account, no longer authenticates.
    let wrong = sa_token(
        &s.sa_private_key,
        "apps",
        "robot",
        "not-the-uid",
        now() + 600,
    );
    let r = AuthClient::new(&k.data_dir, k.port, None, Some(&wrong))
        .get("/healthz")
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    admin_kubectl(k, &["delete", "serviceaccount", "robot", "-n", "apps"]);
    eventually(|| {
        k.kubectl_with(&kc, &["auth", "whoami"])
            .2
            .contains("Unauthorized")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn node_identity_and_forbidden_shapes() {
    let s = start();
    let k = &s.kapi;
    let admin = k.client();
    for n in ["n1", "n2"] {
        let r = admin
            .post_json(
                "/api/v1/nodes",
                &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": n}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    }
    for s in ["s1", "s2"] {
        let r = admin
            .post_json(
                "/api/v1/namespaces/default/secrets",
                &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": s}, "data": {}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let r = admin
        .post_json(
            "/api/v1/namespaces/default/pods",
            &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"},
                    "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}],
                             "volumes": [{"name": "v", "secret": {"secretName": "s1"}}]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());

    let (cert, key) = issue_client_cert(&k.data_dir, "system:node:n1", &["system:nodes"], false);
    let node = AuthClient::new(&k.data_dir, k.port, Some((&cert, &key)), None);
    let r = node
        .post_json(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(
        r.json()["status"]["userInfo"],
        json!({"username": "system:node:n1", "groups": ["system:nodes", "system:authenticated"]})
    );
    assert_eq!(node.get("/api/v1/nodes/n1").await.status, StatusCode::OK);
    let r = node.get("/api/v1/nodes/n2").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.json()["message"],
        r#"nodes "n2" is forbidden: User "system:node:n1" cannot get resource "nodes" in API group "" at the cluster scope: node 'n1' cannot read 'n2', only its own Node object"#
    );
    assert_eq!(
        node.get("/api/v1/namespaces/default/pods/p1").await.status,
        StatusCode::OK
    );
    assert_eq!(
        node.get("/api/v1/namespaces/default/secrets/s1")
            .await
            .status,
        StatusCode::OK
    );
    let r = node.get("/api/v1/namespaces/default/secrets/s2").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.json()["message"],
        r#"secrets "s2" is forbidden: User "system:node:n1" cannot get resource "secrets" in API group "" in the namespace "default": no relationship found between node 'n1' and this object"#
    );
    let r = node
        .get("/api/v1/pods?fieldSelector=spec.nodeName%3Dn1")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 1);
    assert_eq!(node.get("/api/v1/pods").await.status, StatusCode::FORBIDDEN);
    let r = node
        .request(
            Method::PATCH,
            "/api/v1/nodes/n1/status",
            &[("content-type", "application/merge-patch+json")],
            None,
        )
        .await;
    assert_ne!(r.status, StatusCode::FORBIDDEN);

    // 403 shapes for a user with no bindings.
    let nobody = AuthClient::new(&k.data_dir, k.port, None, Some("nobody-token"));
    let r = nobody
        .get("/api/v1/namespaces/default/pods/p1/status")
        .await;
    assert_eq!(
        r.text(),
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \"p1\" is forbidden: User \"nobody\" cannot get resource \"pods/status\" in API group \"\" in the namespace \"default\"","reason":"Forbidden","details":{"name":"p1","kind":"pods"},"code":403}"#
    );
    let r = nobody.get("/apis/apps/v1/deployments").await;
    assert_eq!(
        r.json()["message"],
        r#"deployments.apps is forbidden: User "nobody" cannot list resource "deployments" in API group "apps" at the cluster scope"#
    );
    assert_eq!(
        r.json()["details"],
        json!({"group": "apps", "kind": "deployments"})
    );
    let r = nobody.get("/metrics").await;
    assert_eq!(
        r.text(),
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"forbidden: User \"nobody\" cannot get path \"/metrics\"","reason":"Forbidden","details":{},"code":403}"#
    );
    // Discovery and health are open to authenticated users.
    assert_eq!(nobody.get("/apis").await.status, StatusCode::OK);
    assert_eq!(nobody.get("/readyz").await.status, StatusCode::OK);
    // Impersonation needs the impersonate verb.
    let r = nobody
        .request(
            Method::GET,
            "/api/v1/namespaces",
            &[("impersonate-user", "jane")],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.json()["message"],
        r#"users "jane" is forbidden: User "nobody" cannot impersonate resource "users" in API group "" at the cluster scope"#
    );
    let r = admin
        .request(Method::GET, "/api/v1/namespaces", None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
}
