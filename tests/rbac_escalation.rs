//! RBAC escalation prevention end to end (real etcd, the real binary with a token file, raw HTTP
//! and kubectl): Roles and ClusterRoles may only grant what the writer already holds unless the
//! writer may `escalate`; RoleBindings and ClusterRoleBindings may only reference roles whose
//! permissions the writer holds unless the writer may `bind` them. Create, update, patch,
//! server-side apply and dry runs are all checked; `system:masters` and `AlwaysAllow` are not.

mod common;

use common::etcd::EtcdServer;
use common::kapi::{AuthClient, Kapi, RawResponse};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const RBAC: &str = "/apis/rbac.authorization.k8s.io/v1";
const GROUP: &str = "rbac.authorization.k8s.io";
/// cluster-admin's rules as the escalation message lists them.
const CLUSTER_ADMIN_MISSING: &str =
    "{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}\n{NonResourceURLs:[\"*\"], Verbs:[\"*\"]}";
const ALICE_GROUPS: &str = r#"["g1" "system:authenticated"]"#;

/// kapi on a fresh etcd with a token file: alice (group g1), erin, carl.
fn start(etcd: &EtcdServer, extra: &[&str]) -> Kapi {
    let dir = tempfile::tempdir().unwrap().keep();
    let tokens = dir.join("tokens.csv");
    std::fs::write(
        &tokens,
        "alice-token,alice,u-alice,g1\nerin-token,erin,u-erin\ncarl-token,carl,u-carl\n",
    )
    .unwrap();
    let mut args = vec![
        format!("--etcd-servers={}", etcd.endpoint),
        format!("--token-auth-file={}", tokens.display()),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Kapi::start(args)
}

fn admin_kubectl(k: &Kapi, args: &[&str]) -> String {
    let (ok, out, err) = k.kubectl(args);
    assert!(ok, "kubectl {args:?}: {err}");
    out
}

fn client(k: &Kapi, token: &str) -> AuthClient {
    AuthClient::new(&k.data_dir, k.port, None, Some(token))
}

/// A request as `c` with any content type.
async fn send(c: &AuthClient, method: Method, path: &str, ct: &str, body: &[u8]) -> RawResponse {
    let auth = format!("Bearer {}", c.bearer.as_deref().unwrap_or(""));
    let headers = [("authorization", auth.as_str()), ("content-type", ct)];
    let resp = c
        .raw
        .send(method, path, &headers, Some(body.to_vec()))
        .await;
    let (parts, body) = resp.into_parts();
    RawResponse {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

async fn merge_patch(c: &AuthClient, path: &str, patch: Value) -> RawResponse {
    let body = serde_json::to_vec(&patch).unwrap();
    send(
        c,
        Method::PATCH,
        path,
        "application/merge-patch+json",
        &body,
    )
    .await
}

async fn apply(c: &AuthClient, path: &str, yaml: &str) -> RawResponse {
    let path = format!("{path}?fieldManager=escalation-test");
    send(
        c,
        Method::PATCH,
        &path,
        "application/apply-patch+yaml",
        yaml.as_bytes(),
    )
    .await
}

/// `kubectl auth can-i` as `kubeconfig`, polled until yes: RBAC objects reach the authorizer
/// through the watch cache.
async fn wait_can(k: &Kapi, kubeconfig: &Path, args: &[&str]) {
    let mut full = vec!["auth", "can-i"];
    full.extend_from_slice(args);
    for _ in 0..50 {
        let (_, out, _) = k.kubectl_with(kubeconfig, &full);
        if out.trim() == "yes" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{kubeconfig:?} never got {args:?}");
}

/// The escalation denial kube-apiserver's RBAC registry answers.
fn escalation(resource: &str, name: &str, user: &str, groups: &str, missing: &str) -> String {
    let who = if name.is_empty() {
        format!("{resource}.{GROUP}")
    } else {
        format!("{resource}.{GROUP} \"{name}\"")
    };
    format!(
        "{who} is forbidden: user \"{user}\" (groups={groups}) is attempting to grant RBAC permissions not currently held:\n{missing}"
    )
}

/// Asserts a 403 Forbidden Status with `message` about `resource` `name`.
fn assert_forbidden(r: &RawResponse, resource: &str, name: &str, message: &str) {
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    let mut details = json!({"group": GROUP, "kind": resource});
    if !name.is_empty() {
        details["name"] = json!(name);
    }
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": "Forbidden", "details": details, "code": 403})
    );
}

/// Repeats a write while it is denied with `denied` (a grant is on its way through the watch
/// cache), then returns the first other answer.
async fn until_allowed<F, Fut>(denied: &str, mut write: F) -> RawResponse
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = RawResponse>,
{
    for _ in 0..50 {
        let r = write().await;
        if r.status != StatusCode::FORBIDDEN {
            return r;
        }
        assert_eq!(r.json()["message"], denied, "denied for another reason");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("still denied: {denied}");
}

fn binding(name: &str, kind: &str, role: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": if kind == "ClusterRoleBinding" { "ClusterRoleBinding" } else { "RoleBinding" },
        "metadata": {"name": name},
        "roleRef": {"apiGroup": GROUP, "kind": role_kind(kind), "name": role},
        "subjects": [{"apiGroup": GROUP, "kind": "User", "name": "mallory"}],
    })
}

/// `binding`'s kind argument is the roleRef kind for RoleBindings ("ClusterRole" or "Role").
fn role_kind(kind: &str) -> &str {
    if kind == "ClusterRoleBinding" {
        "ClusterRole"
    } else {
        kind
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bindings_need_the_permissions_or_bind() {
    let etcd = EtcdServer::start();
    let k = start(&etcd, &[]);
    admin_kubectl(&k, &["create", "namespace", "team"]);
    // alice: admin in team (which may create rolebindings).
    admin_kubectl(
        &k,
        &[
            "create",
            "rolebinding",
            "alice-admin",
            "--clusterrole=admin",
            "--user=alice",
            "-n",
            "team",
        ],
    );
    // erin: edit in team, plus a Role that only lets her create rolebindings.
    admin_kubectl(
        &k,
        &[
            "create",
            "rolebinding",
            "erin-edit",
            "--clusterrole=edit",
            "--user=erin",
            "-n",
            "team",
        ],
    );
    admin_kubectl(
        &k,
        &[
            "create",
            "role",
            "rolebinding-creator",
            "--verb=create",
            "--resource=rolebindings.rbac.authorization.k8s.io",
            "-n",
            "team",
        ],
    );
    admin_kubectl(
        &k,
        &[
            "create",
            "rolebinding",
            "erin-rolebinding-creator",
            "--role=rolebinding-creator",
            "--user=erin",
            "-n",
            "team",
        ],
    );
    let alice_kc = k.token_kubeconfig("alice", "alice-token");
    let erin_kc = k.token_kubeconfig("erin", "erin-token");
    wait_can(&k, &alice_kc, &["create", "rolebindings", "-n", "team"]).await;
    wait_can(&k, &erin_kc, &["create", "rolebindings", "-n", "team"]).await;
    wait_can(&k, &erin_kc, &["create", "deployments", "-n", "team"]).await;

    // (1) A namespace admin cannot hand out cluster-admin, even in their namespace.
    let alice = client(&k, "alice-token");
    let rbs = format!("{RBAC}/namespaces/team/rolebindings");
    let denied = escalation(
        "rolebindings",
        "x",
        "alice",
        ALICE_GROUPS,
        CLUSTER_ADMIN_MISSING,
    );
    let r = alice
        .post_json(&rbs, &binding("x", "ClusterRole", "cluster-admin"))
        .await;
    assert_eq!(
        r.text(),
        format!(
            r#"{{"kind":"Status","apiVersion":"v1","metadata":{{}},"status":"Failure","message":{},"reason":"Forbidden","details":{{"name":"x","group":"rbac.authorization.k8s.io","kind":"rolebindings"}},"code":403}}"#,
            serde_json::to_string(&denied).unwrap()
        )
    );
    // A dry run is checked too, and nothing was written.
    let r = alice
        .post_json(
            &format!("{rbs}?dryRun=All"),
            &binding("x", "ClusterRole", "cluster-admin"),
        )
        .await;
    assert_forbidden(&r, "rolebindings", "x", &denied);
    assert_eq!(
        k.client().get(&format!("{rbs}/x")).await.status,
        StatusCode::NOT_FOUND
    );
    // kubectl shows the same message.
    let (ok, _, err) = k.kubectl_with(
        &alice_kc,
        &[
            "create",
            "rolebinding",
            "x",
            "--clusterrole=cluster-admin",
            "--user=mallory",
            "-n",
            "team",
        ],
    );
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "rolebindings.rbac.authorization.k8s.io \"x\" is forbidden: user \"alice\" (groups={ALICE_GROUPS}) is attempting to grant RBAC permissions not currently held:"
        )),
        "{err}"
    );
    // (3) Binding a role whose permissions alice holds needs no `bind`.
    let (ok, _, err) = k.kubectl_with(
        &alice_kc,
        &[
            "create",
            "rolebinding",
            "alice-grants-view",
            "--clusterrole=view",
            "--user=mallory",
            "-n",
            "team",
        ],
    );
    assert!(ok, "{err}");
    // A missing role is the registry's 404 (plural resource name).
    let r = alice
        .post_json(&rbs, &binding("y", "ClusterRole", "nope"))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.json()["message"],
        "clusterroles.rbac.authorization.k8s.io \"nope\" not found"
    );
    assert_eq!(
        r.json()["details"],
        json!({"name": "nope", "group": GROUP, "kind": "clusterroles"})
    );
    let r = alice.post_json(&rbs, &binding("y", "Role", "nope")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.json()["message"],
        "roles.rbac.authorization.k8s.io \"nope\" not found"
    );

    // (5) system:masters (the admin kubeconfig) is not checked.
    admin_kubectl(
        &k,
        &[
            "create",
            "rolebinding",
            "x",
            "--clusterrole=cluster-admin",
            "--user=mallory",
            "-n",
            "team",
        ],
    );
    // Updating that binding (even only its subjects) grants cluster-admin again: denied, for
    // PUT, merge patch and server-side apply alike.
    let mut existing = alice.get(&format!("{rbs}/x")).await.json();
    existing["subjects"]
        .as_array_mut()
        .unwrap()
        .push(json!({"apiGroup": GROUP, "kind": "User", "name": "trudy"}));
    let body = serde_json::to_vec(&existing).unwrap();
    let r = send(
        &alice,
        Method::PUT,
        &format!("{rbs}/x"),
        "application/json",
        &body,
    )
    .await;
    assert_forbidden(&r, "rolebindings", "x", &denied);
    let r = merge_patch(
        &alice,
        &format!("{rbs}/x"),
        json!({"metadata": {"labels": {"a": "b"}}}),
    )
    .await;
    assert_forbidden(&r, "rolebindings", "x", &denied);
    let r = apply(
        &alice,
        &format!("{rbs}/x"),
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: x\n  labels:\n    a: b\n",
    )
    .await;
    assert_forbidden(&r, "rolebindings", "x", &denied);
    // ... except a change of what the garbage collector manages (finalizers, ownerReferences).
    let r = merge_patch(
        &alice,
        &format!("{rbs}/x"),
        json!({"metadata": {"finalizers": ["example.com/keep"]}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // (2) edit plus rolebinding creation is not enough to bind cluster-admin ...
    let erin = client(&k, "erin-token");
    let erin_denied = escalation(
        "rolebindings",
        "erin-x",
        "erin",
        r#"["system:authenticated"]"#,
        CLUSTER_ADMIN_MISSING,
    );
    let body = binding("erin-x", "ClusterRole", "cluster-admin");
    let r = erin.post_json(&rbs, &body).await;
    assert_forbidden(&r, "rolebindings", "erin-x", &erin_denied);
    // ... but erin holds view's permissions (edit includes them), so she may bind view.
    let r = erin
        .post_json(&rbs, &binding("erin-view", "ClusterRole", "view"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    // `bind` on clusterroles named cluster-admin, granted by a Role in the binding's namespace,
    // lets the same request through; other roles stay checked.
    admin_kubectl(
        &k,
        &[
            "create",
            "role",
            "bind-cluster-admin",
            "--verb=bind",
            "--resource=clusterroles.rbac.authorization.k8s.io",
            "--resource-name=cluster-admin",
            "-n",
            "team",
        ],
    );
    admin_kubectl(
        &k,
        &[
            "create",
            "rolebinding",
            "erin-bind-cluster-admin",
            "--role=bind-cluster-admin",
            "--user=erin",
            "-n",
            "team",
        ],
    );
    let r = until_allowed(&erin_denied, || erin.post_json(&rbs, &body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["roleRef"]["name"], "cluster-admin");
    let r = erin
        .post_json(&rbs, &binding("erin-admin", "ClusterRole", "admin"))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("rolebindings.rbac.authorization.k8s.io \"erin-admin\" is forbidden: user \"erin\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n"),
        "{}",
        r.text()
    );

    // ClusterRoleBindings: checked against cluster-wide permissions only.
    admin_kubectl(
        &k,
        &[
            "create",
            "clusterrole",
            "crb-creator",
            "--verb=create",
            "--resource=clusterrolebindings.rbac.authorization.k8s.io",
        ],
    );
    admin_kubectl(
        &k,
        &[
            "create",
            "clusterrolebinding",
            "carl-crb-creator",
            "--clusterrole=crb-creator",
            "--user=carl",
        ],
    );
    admin_kubectl(
        &k,
        &[
            "create",
            "clusterrole",
            "pod-reader",
            "--verb=get,list",
            "--resource=pods",
        ],
    );
    let carl_kc = k.token_kubeconfig("carl", "carl-token");
    wait_can(&k, &carl_kc, &["create", "clusterrolebindings"]).await;
    let carl = client(&k, "carl-token");
    let crbs = format!("{RBAC}/clusterrolebindings");
    let carl_denied = escalation(
        "clusterrolebindings",
        "carl-pods",
        "carl",
        r#"["system:authenticated"]"#,
        r#"{APIGroups:[""], Resources:["pods"], Verbs:["get" "list"]}"#,
    );
    let crb = binding("carl-pods", "ClusterRoleBinding", "pod-reader");
    let r = carl.post_json(&crbs, &crb).await;
    assert_forbidden(&r, "clusterrolebindings", "carl-pods", &carl_denied);
    // carl holds crb-creator itself.
    let r = carl
        .post_json(
            &crbs,
            &binding("carl-again", "ClusterRoleBinding", "crb-creator"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    // `bind` granted cluster-wide on pod-reader.
    admin_kubectl(
        &k,
        &[
            "create",
            "clusterrole",
            "pod-reader-binder",
            "--verb=bind",
            "--resource=clusterroles.rbac.authorization.k8s.io",
            "--resource-name=pod-reader",
        ],
    );
    admin_kubectl(
        &k,
        &[
            "create",
            "clusterrolebinding",
            "carl-pod-reader-binder",
            "--clusterrole=pod-reader-binder",
            "--user=carl",
        ],
    );
    let r = until_allowed(&carl_denied, || carl.post_json(&crbs, &crb)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_need_the_permissions_or_escalate() {
    let etcd = EtcdServer::start();
    let k = start(&etcd, &[]);
    admin_kubectl(&k, &["create", "namespace", "team"]);
    admin_kubectl(
        &k,
        &[
            "create",
            "rolebinding",
            "alice-admin",
            "--clusterrole=admin",
            "--user=alice",
            "-n",
            "team",
        ],
    );
    let alice_kc = k.token_kubeconfig("alice", "alice-token");
    wait_can(&k, &alice_kc, &["create", "roles", "-n", "team"]).await;
    let alice = client(&k, "alice-token");
    let roles = format!("{RBAC}/namespaces/team/roles");
    let widgets =
        json!([{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get", "list"]}]);
    let widgets_missing =
        r#"{APIGroups:["example.com"], Resources:["widgets"], Verbs:["get" "list"]}"#;

    // (4) A rule alice does not hold: 403, dry run included, generated names unnamed.
    let role = json!({"metadata": {"name": "widget-reader"}, "rules": widgets});
    let reader_denied = escalation(
        "roles",
        "widget-reader",
        "alice",
        ALICE_GROUPS,
        widgets_missing,
    );
    let r = alice.post_json(&roles, &role).await;
    assert_forbidden(&r, "roles", "widget-reader", &reader_denied);
    let r = alice.post_json(&format!("{roles}?dryRun=All"), &role).await;
    assert_forbidden(&r, "roles", "widget-reader", &reader_denied);
    let r = alice
        .post_json(
            &roles,
            &json!({"metadata": {"generateName": "gen-"}, "rules": widgets}),
        )
        .await;
    assert_forbidden(
        &r,
        "roles",
        "",
        &escalation("roles", "", "alice", ALICE_GROUPS, widgets_missing),
    );
    // Mixed rules: only the part alice lacks is listed.
    let r = alice
        .post_json(
            &roles,
            &json!({"metadata": {"name": "mixed"}, "rules": [
                {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["a"], "verbs": ["get", "impersonate"]},
            ]}),
        )
        .await;
    assert_forbidden(
        &r,
        "roles",
        "mixed",
        &escalation(
            "roles",
            "mixed",
            "alice",
            ALICE_GROUPS,
            r#"{APIGroups:[""], Resources:["nodes"], Verbs:["get"]}
{APIGroups:[""], Resources:["secrets"], ResourceNames:["a"], Verbs:["impersonate"]}"#,
        ),
    );
    // Rules alice holds (admin covers pods and their subresources): allowed, kubectl too.
    let r = alice
        .post_json(
            &roles,
            &json!({"metadata": {"name": "pod-logs"}, "rules": [
                {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]},
            ]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let (ok, _, err) = k.kubectl_with(
        &alice_kc,
        &[
            "create",
            "role",
            "cm-editor",
            "--verb=get,update",
            "--resource=configmaps",
            "-n",
            "team",
        ],
    );
    assert!(ok, "{err}");

    // An existing Role with rules alice lacks (written by system:masters): any change but the
    // garbage collector's is denied.
    let r = k
        .client()
        .post_json(
            &roles,
            &json!({"metadata": {"name": "widgets"}, "rules": widgets}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let denied = escalation("roles", "widgets", "alice", ALICE_GROUPS, widgets_missing);
    let path = format!("{roles}/widgets");
    let r = merge_patch(&alice, &path, json!({"metadata": {"labels": {"a": "b"}}})).await;
    assert_forbidden(&r, "roles", "widgets", &denied);
    let mut current = alice.get(&path).await.json();
    current["metadata"]["labels"] = json!({"a": "b"});
    let body = serde_json::to_vec(&current).unwrap();
    let r = send(&alice, Method::PUT, &path, "application/json", &body).await;
    assert_forbidden(&r, "roles", "widgets", &denied);
    let r = apply(
        &alice,
        &path,
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: widgets\n  labels:\n    a: b\n",
    )
    .await;
    assert_forbidden(&r, "roles", "widgets", &denied);
    let r = merge_patch(
        &alice,
        &path,
        json!({"metadata": {"ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": "6a1f0b2e-0000-4000-8000-000000000001"}]}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // `escalate` on roles lifts the check, for creates and updates.
    admin_kubectl(
        &k,
        &[
            "create",
            "role",
            "escalator",
            "--verb=escalate",
            "--resource=roles.rbac.authorization.k8s.io",
            "-n",
            "team",
        ],
    );
    admin_kubectl(
        &k,
        &[
            "create",
            "rolebinding",
            "alice-escalator",
            "--role=escalator",
            "--user=alice",
            "-n",
            "team",
        ],
    );
    let r = until_allowed(&reader_denied, || alice.post_json(&roles, &role)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["rules"], widgets);
    let r = merge_patch(&alice, &path, json!({"metadata": {"labels": {"a": "b"}}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // It is namespaced: ClusterRoles and other namespaces are still checked.
    admin_kubectl(&k, &["create", "namespace", "other"]);
    admin_kubectl(
        &k,
        &[
            "create",
            "rolebinding",
            "alice-admin",
            "--clusterrole=admin",
            "--user=alice",
            "-n",
            "other",
        ],
    );
    wait_can(&k, &alice_kc, &["create", "roles", "-n", "other"]).await;
    let r = alice
        .post_json(&format!("{RBAC}/namespaces/other/roles"), &role)
        .await;
    assert_forbidden(&r, "roles", "widget-reader", &reader_denied);

    // ClusterRoles: non-resource URLs count, and an aggregationRule needs cluster-admin.
    admin_kubectl(
        &k,
        &[
            "create",
            "clusterrole",
            "cr-creator",
            "--verb=create",
            "--resource=clusterroles.rbac.authorization.k8s.io",
        ],
    );
    admin_kubectl(
        &k,
        &[
            "create",
            "clusterrolebinding",
            "carl-cr-creator",
            "--clusterrole=cr-creator",
            "--user=carl",
        ],
    );
    let carl_kc = k.token_kubeconfig("carl", "carl-token");
    wait_can(&k, &carl_kc, &["create", "clusterroles"]).await;
    let carl = client(&k, "carl-token");
    let crs = format!("{RBAC}/clusterroles");
    let r = carl
        .post_json(
            &crs,
            &json!({"metadata": {"name": "metrics-reader"}, "rules": [{"nonResourceURLs": ["/metrics", "/healthz"], "verbs": ["get"]}]}),
        )
        .await;
    assert_forbidden(
        &r,
        "clusterroles",
        "metrics-reader",
        &escalation(
            "clusterroles",
            "metrics-reader",
            "carl",
            r#"["system:authenticated"]"#,
            r#"{NonResourceURLs:["/metrics"], Verbs:["get"]}"#,
        ),
    );
    // /healthz is held through system:public-info-viewer.
    let r = carl
        .post_json(
            &crs,
            &json!({"metadata": {"name": "health-reader"}, "rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = carl
        .post_json(
            &crs,
            &json!({"metadata": {"name": "agg"}, "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"example.com/agg": "true"}}]}}),
        )
        .await;
    assert_forbidden(
        &r,
        "clusterroles",
        "agg",
        "clusterroles.rbac.authorization.k8s.io \"agg\" is forbidden: must have cluster-admin privileges to use the aggregationRule",
    );
    // (5) system:masters may.
    let r = k
        .client()
        .post_json(
            &crs,
            &json!({"metadata": {"name": "agg"}, "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"example.com/agg": "true"}}]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
}

/// With `--authorization-mode=AlwaysAllow` every user may `escalate` and `bind`.
#[tokio::test(flavor = "multi_thread")]
async fn always_allow_has_no_escalation_checks() {
    let etcd = EtcdServer::start();
    let k = start(&etcd, &["--authorization-mode=AlwaysAllow"]);
    let erin = client(&k, "erin-token");
    let r = erin
        .post_json(
            &format!("{RBAC}/namespaces/default/rolebindings"),
            &binding("erin-root", "ClusterRole", "cluster-admin"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = erin
        .post_json(
            &format!("{RBAC}/clusterroles"),
            &json!({"metadata": {"name": "everything"}, "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
}
