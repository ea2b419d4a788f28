//! Bootstrap RBAC (post-start hook `rbac/bootstrap-roles`, API-SEMANTICS §10): the default
//! ClusterRoles, ClusterRoleBindings and kube-system Roles/RoleBindings, labelled
//! `kubernetes.io/bootstrapping=rbac-defaults` and annotated
//! `rbac.authorization.kubernetes.io/autoupdate=true`. Missing objects are created on every
//! start; existing ones that keep `autoupdate` other than `false` are reconciled: missing rules,
//! aggregation selectors, subjects, labels and annotations are added (nothing is removed).
//!
//! Rules follow `plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go`. The per-controller
//! `system:controller:*` roles are not bootstrapped (kapi runs no kube-controller-manager).
//!
//! Also here: the clusterrole-aggregation controller, which writes the union of the rules of
//! the ClusterRoles an `aggregationRule` selects into the aggregating ClusterRole (the RBAC
//! authorizer already evaluates aggregation itself, so this only makes objects show it).

use crate::api::handlers::Api;
use crate::auth::authz::node::node_rules;
use crate::auth::authz::rbac::{effective_rules, resource, rules_of, ClusterRoleInfo};
use crate::auth::authz::Rule;
use crate::object::codec;
use crate::storage::StoreError;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

const API_VERSION: &str = "rbac.authorization.k8s.io/v1";
const GROUP: &str = "rbac.authorization.k8s.io";
pub const BOOTSTRAP_LABEL: (&str, &str) = ("kubernetes.io/bootstrapping", "rbac-defaults");
pub const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "update", "patch", "delete", "deletecollection"];
const READ_WRITE: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];
const READ_UPDATE: &[&str] = &["get", "list", "watch", "update", "patch"];

fn events_rule() -> Rule {
    Rule::new(
        &["create", "update", "patch"],
        &["", "events.k8s.io"],
        &["events"],
    )
}

/// One default role: name, extra labels, rules, aggregation selectors (matchLabels each).
struct RoleDef {
    name: &'static str,
    labels: &'static [(&'static str, &'static str)],
    rules: Vec<Rule>,
    aggregate_from: &'static [&'static str],
}

fn role(name: &'static str, rules: Vec<Rule>) -> RoleDef {
    RoleDef {
        name,
        labels: &[],
        rules,
        aggregate_from: &[],
    }
}

const AGG_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
const AGG_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
const AGG_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

fn cluster_roles() -> Vec<RoleDef> {
    let public_urls: &[&str] = &["/livez", "/readyz", "/healthz", "/version", "/version/"];
    vec![
        role(
            "cluster-admin",
            vec![
                Rule::new(&["*"], &["*"], &["*"]),
                Rule::urls(&["*"], &["*"]),
            ],
        ),
        role(
            "system:discovery",
            vec![Rule::urls(
                &["get"],
                &[
                    "/livez",
                    "/readyz",
                    "/healthz",
                    "/version",
                    "/version/",
                    "/openapi",
                    "/openapi/*",
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                ],
            )],
        ),
        role(
            "system:monitoring",
            vec![Rule::urls(
                &["get"],
                &[
                    "/metrics",
                    "/metrics/slis",
                    "/livez",
                    "/readyz",
                    "/healthz",
                    "/livez/*",
                    "/readyz/*",
                    "/healthz/*",
                ],
            )],
        ),
        role(
            "system:basic-user",
            vec![
                Rule::new(
                    &["create"],
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                ),
                Rule::new(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
            ],
        ),
        role(
            "system:public-info-viewer",
            vec![Rule::urls(&["get"], public_urls)],
        ),
        RoleDef {
            name: "admin",
            labels: &[],
            rules: vec![],
            aggregate_from: &[AGG_ADMIN],
        },
        RoleDef {
            name: "edit",
            labels: &[(AGG_ADMIN, "true")],
            rules: vec![],
            aggregate_from: &[AGG_EDIT],
        },
        RoleDef {
            name: "view",
            labels: &[(AGG_EDIT, "true")],
            rules: vec![],
            aggregate_from: &[AGG_VIEW],
        },
        RoleDef {
            name: "system:aggregate-to-admin",
            labels: &[(AGG_ADMIN, "true")],
            rules: vec![
                Rule::new(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["localsubjectaccessreviews"],
                ),
                Rule::new(READ_WRITE, &[GROUP], &["roles", "rolebindings"]),
            ],
            aggregate_from: &[],
        },
        RoleDef {
            name: "system:aggregate-to-edit",
            labels: &[(AGG_EDIT, "true")],
            rules: vec![
                Rule::new(
                    READ,
                    &[""],
                    &[
                        "pods/attach",
                        "pods/proxy",
                        "pods/exec",
                        "pods/portforward",
                        "secrets",
                        "services/proxy",
                    ],
                ),
                Rule::new(&["impersonate"], &[""], &["serviceaccounts"]),
                Rule::new(
                    WRITE,
                    &[""],
                    &[
                        "pods",
                        "pods/attach",
                        "pods/proxy",
                        "pods/exec",
                        "pods/portforward",
                    ],
                ),
                Rule::new(&["create"], &[""], &["pods/eviction"]),
                Rule::new(
                    WRITE,
                    &[""],
                    &[
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/proxy",
                        "persistentvolumeclaims",
                        "configmaps",
                        "secrets",
                        "events",
                    ],
                ),
                Rule::new(&["create"], &[""], &["serviceaccounts/token"]),
                Rule::new(
                    WRITE,
                    &["apps"],
                    &[
                        "statefulsets",
                        "statefulsets/scale",
                        "daemonsets",
                        "deployments",
                        "deployments/scale",
                        "deployments/rollback",
                        "replicasets",
                        "replicasets/scale",
                    ],
                ),
                Rule::new(WRITE, &["autoscaling"], &["horizontalpodautoscalers"]),
                Rule::new(WRITE, &["batch"], &["jobs", "cronjobs"]),
                Rule::new(
                    WRITE,
                    &["extensions"],
                    &[
                        "daemonsets",
                        "deployments",
                        "deployments/scale",
                        "deployments/rollback",
                        "ingresses",
                        "replicasets",
                        "replicasets/scale",
                        "replicationcontrollers/scale",
                        "networkpolicies",
                    ],
                ),
                Rule::new(WRITE, &["policy"], &["poddisruptionbudgets"]),
                Rule::new(
                    WRITE,
                    &["networking.k8s.io"],
                    &["networkpolicies", "ingresses"],
                ),
                Rule::new(WRITE, &["coordination.k8s.io"], &["leases"]),
            ],
            aggregate_from: &[],
        },
        RoleDef {
            name: "system:aggregate-to-view",
            labels: &[(AGG_VIEW, "true")],
            rules: vec![
                Rule::new(
                    READ,
                    &[""],
                    &[
                        "pods",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/status",
                        "endpoints",
                        "persistentvolumeclaims",
                        "persistentvolumeclaims/status",
                        "configmaps",
                    ],
                ),
                Rule::new(
                    READ,
                    &[""],
                    &[
                        "limitranges",
                        "resourcequotas",
                        "bindings",
                        "events",
                        "pods/status",
                        "resourcequotas/status",
                        "namespaces/status",
                        "replicationcontrollers/status",
                        "pods/log",
                    ],
                ),
                Rule::new(READ, &[""], &["namespaces"]),
                Rule::new(READ, &["discovery.k8s.io"], &["endpointslices"]),
                Rule::new(
                    READ,
                    &["apps"],
                    &[
                        "controllerrevisions",
                        "statefulsets",
                        "statefulsets/status",
                        "statefulsets/scale",
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/status",
                        "deployments/scale",
                        "replicasets",
                        "replicasets/status",
                        "replicasets/scale",
                    ],
                ),
                Rule::new(
                    READ,
                    &["autoscaling"],
                    &[
                        "horizontalpodautoscalers",
                        "horizontalpodautoscalers/status",
                    ],
                ),
                Rule::new(
                    READ,
                    &["batch"],
                    &["jobs", "cronjobs", "cronjobs/status", "jobs/status"],
                ),
                Rule::new(
                    READ,
                    &["extensions"],
                    &[
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "ingresses",
                        "ingresses/status",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "replicationcontrollers/scale",
                        "networkpolicies",
                    ],
                ),
                Rule::new(
                    READ,
                    &["policy"],
                    &["poddisruptionbudgets", "poddisruptionbudgets/status"],
                ),
                Rule::new(
                    READ,
                    &["networking.k8s.io"],
                    &["networkpolicies", "ingresses", "ingresses/status"],
                ),
            ],
            aggregate_from: &[],
        },
        role(
            "system:heapster",
            vec![
                Rule::new(READ, &[""], &["events", "pods", "nodes", "namespaces"]),
                Rule::new(READ, &["extensions"], &["deployments"]),
            ],
        ),
        role("system:node", node_rules()),
        role(
            "system:node-problem-detector",
            vec![
                Rule::new(&["get"], &[""], &["nodes"]),
                Rule::new(&["patch"], &[""], &["nodes/status"]),
                events_rule(),
            ],
        ),
        role(
            "system:kubelet-api-admin",
            vec![
                Rule::new(READ, &[""], &["nodes"]),
                Rule::new(&["proxy"], &[""], &["nodes"]),
                Rule::new(
                    &["*"],
                    &[""],
                    &[
                        "nodes/proxy",
                        "nodes/metrics",
                        "nodes/spec",
                        "nodes/stats",
                        "nodes/log",
                    ],
                ),
            ],
        ),
        role(
            "system:node-bootstrapper",
            vec![Rule::new(
                &["create", "get", "list", "watch"],
                &["certificates.k8s.io"],
                &["certificatesigningrequests"],
            )],
        ),
        role(
            "system:auth-delegator",
            vec![
                Rule::new(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                Rule::new(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
            ],
        ),
        role(
            "system:kube-aggregator",
            vec![Rule::new(READ, &[""], &["services", "endpoints"])],
        ),
        role(
            "system:kube-controller-manager",
            vec![
                events_rule(),
                Rule::new(&["create"], &["coordination.k8s.io"], &["leases"]),
                Rule::new(&["get", "update"], &["coordination.k8s.io"], &["leases"])
                    .names(&["kube-controller-manager"]),
                Rule::new(&["create"], &[""], &["secrets", "serviceaccounts"]),
                Rule::new(&["delete"], &[""], &["secrets"]),
                Rule::new(
                    &["get"],
                    &[""],
                    &["namespaces", "secrets", "serviceaccounts", "configmaps"],
                ),
                Rule::new(&["update"], &[""], &["secrets", "serviceaccounts"]),
                Rule::new(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                Rule::new(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
                Rule::new(&["list", "watch"], &["*"], &["*"]),
                Rule::new(&["create"], &[""], &["serviceaccounts/token"]),
            ],
        ),
        role(
            "system:kube-dns",
            vec![Rule::new(
                &["list", "watch"],
                &[""],
                &["endpoints", "services"],
            )],
        ),
        role(
            "system:persistent-volume-provisioner",
            vec![
                Rule::new(
                    &["get", "list", "watch", "create", "delete"],
                    &[""],
                    &["persistentvolumes"],
                ),
                Rule::new(
                    &["get", "list", "watch", "update"],
                    &[""],
                    &["persistentvolumeclaims"],
                ),
                Rule::new(READ, &["storage.k8s.io"], &["storageclasses"]),
                Rule::new(&["watch"], &[""], &["events"]),
                events_rule(),
            ],
        ),
        role(
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            vec![Rule::new(
                &["create"],
                &["certificates.k8s.io"],
                &["certificatesigningrequests/nodeclient"],
            )],
        ),
        role(
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            vec![Rule::new(
                &["create"],
                &["certificates.k8s.io"],
                &["certificatesigningrequests/selfnodeclient"],
            )],
        ),
        role(
            "system:volume-scheduler",
            vec![
                Rule::new(READ_UPDATE, &[""], &["persistentvolumes"]),
                Rule::new(READ, &["storage.k8s.io"], &["storageclasses"]),
                Rule::new(READ_UPDATE, &[""], &["persistentvolumeclaims"]),
            ],
        ),
        role(
            "system:certificates.k8s.io:legacy-unknown-approver",
            vec![
                Rule::new(&["approve"], &["certificates.k8s.io"], &["signers"])
                    .names(&["kubernetes.io/legacy-unknown"]),
            ],
        ),
        role(
            "system:certificates.k8s.io:kubelet-serving-approver",
            vec![
                Rule::new(&["approve"], &["certificates.k8s.io"], &["signers"])
                    .names(&["kubernetes.io/kubelet-serving"]),
            ],
        ),
        role(
            "system:certificates.k8s.io:kube-apiserver-client-approver",
            vec![
                Rule::new(&["approve"], &["certificates.k8s.io"], &["signers"])
                    .names(&["kubernetes.io/kube-apiserver-client"]),
            ],
        ),
        role(
            "system:certificates.k8s.io:kube-apiserver-client-kubelet-approver",
            vec![
                Rule::new(&["approve"], &["certificates.k8s.io"], &["signers"])
                    .names(&["kubernetes.io/kube-apiserver-client-kubelet"]),
            ],
        ),
        role(
            "system:service-account-issuer-discovery",
            vec![Rule::urls(
                &["get"],
                &["/.well-known/openid-configuration", "/openid/v1/jwks"],
            )],
        ),
        role(
            "system:node-proxier",
            vec![
                Rule::new(&["list", "watch"], &[""], &["services", "endpoints"]),
                Rule::new(READ, &[""], &["nodes"]),
                events_rule(),
                Rule::new(
                    &["list", "watch"],
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                ),
            ],
        ),
        role(
            "system:kube-scheduler",
            vec![
                events_rule(),
                Rule::new(&["create"], &["coordination.k8s.io"], &["leases"]),
                Rule::new(&["get", "update"], &["coordination.k8s.io"], &["leases"])
                    .names(&["kube-scheduler"]),
                Rule::new(READ, &[""], &["nodes"]),
                Rule::new(&["get", "list", "watch", "delete"], &[""], &["pods"]),
                Rule::new(&["create"], &[""], &["pods/binding", "bindings"]),
                Rule::new(&["patch", "update"], &[""], &["pods/status"]),
                Rule::new(READ, &[""], &["services", "replicationcontrollers"]),
                Rule::new(READ, &["apps", "extensions"], &["replicasets"]),
                Rule::new(READ, &["apps"], &["statefulsets"]),
                Rule::new(READ, &["policy"], &["poddisruptionbudgets"]),
                Rule::new(
                    READ,
                    &[""],
                    &["persistentvolumeclaims", "persistentvolumes"],
                ),
                Rule::new(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                Rule::new(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
                Rule::new(READ, &["storage.k8s.io"], &["csinodes"]),
                Rule::new(READ, &[""], &["namespaces"]),
                Rule::new(READ, &["storage.k8s.io"], &["csidrivers"]),
                Rule::new(READ, &["storage.k8s.io"], &["csistoragecapacities"]),
            ],
        ),
    ]
}

/// (kind, name, namespace) of a subject.
type Subject = (&'static str, &'static str, &'static str);

fn cluster_role_bindings() -> Vec<(&'static str, Vec<Subject>)> {
    let g = |n| ("Group", n, "");
    let u = |n| ("User", n, "");
    vec![
        ("cluster-admin", vec![g("system:masters")]),
        ("system:monitoring", vec![g("system:monitoring")]),
        ("system:discovery", vec![g("system:authenticated")]),
        ("system:basic-user", vec![g("system:authenticated")]),
        (
            "system:public-info-viewer",
            vec![g("system:authenticated"), g("system:unauthenticated")],
        ),
        ("system:node-proxier", vec![u("system:kube-proxy")]),
        (
            "system:kube-controller-manager",
            vec![u("system:kube-controller-manager")],
        ),
        (
            "system:kube-dns",
            vec![("ServiceAccount", "kube-dns", "kube-system")],
        ),
        ("system:kube-scheduler", vec![u("system:kube-scheduler")]),
        ("system:volume-scheduler", vec![u("system:kube-scheduler")]),
        ("system:node", vec![]),
        (
            "system:service-account-issuer-discovery",
            vec![g("system:serviceaccounts")],
        ),
    ]
}

/// Namespaced defaults: (namespace, role name, rules, binding subjects).
fn namespace_roles() -> Vec<(&'static str, &'static str, Vec<Rule>, Vec<Subject>)> {
    vec![
        (
            "kube-system",
            "extension-apiserver-authentication-reader",
            vec![Rule::new(READ, &[""], &["configmaps"])
                .names(&["extension-apiserver-authentication"])],
            vec![
                ("User", "system:kube-controller-manager", ""),
                ("User", "system:kube-scheduler", ""),
            ],
        ),
        (
            "kube-system",
            "system::leader-locking-kube-controller-manager",
            vec![
                Rule::new(&["watch"], &[""], &["configmaps"]),
                Rule::new(&["get", "update"], &[""], &["configmaps"])
                    .names(&["kube-controller-manager"]),
            ],
            vec![
                ("User", "system:kube-controller-manager", ""),
                ("ServiceAccount", "kube-controller-manager", "kube-system"),
            ],
        ),
        (
            "kube-system",
            "system::leader-locking-kube-scheduler",
            vec![
                Rule::new(&["watch"], &[""], &["configmaps"]),
                Rule::new(&["get", "update"], &[""], &["configmaps"]).names(&["kube-scheduler"]),
            ],
            vec![
                ("User", "system:kube-scheduler", ""),
                ("ServiceAccount", "kube-scheduler", "kube-system"),
            ],
        ),
    ]
}

fn subject_json((kind, name, ns): &Subject) -> Value {
    if *kind == "ServiceAccount" {
        json!({"kind": kind, "name": name, "namespace": ns})
    } else {
        json!({"kind": kind, "apiGroup": GROUP, "name": name})
    }
}

fn metadata(name: &str, namespace: Option<&str>, labels: &[(&str, &str)]) -> Value {
    let mut l = Map::new();
    for (k, v) in labels.iter().chain([&BOOTSTRAP_LABEL]) {
        l.insert(k.to_string(), json!(v));
    }
    let mut m = Map::new();
    m.insert("name".into(), json!(name));
    if let Some(ns) = namespace {
        m.insert("namespace".into(), json!(ns));
    }
    m.insert("labels".into(), Value::Object(l));
    m.insert("annotations".into(), json!({AUTOUPDATE: "true"}));
    Value::Object(m)
}

fn rules_json(rules: &[Rule]) -> Value {
    Value::Array(rules.iter().map(Rule::to_json).collect())
}

/// Every default object: (plural, namespace, desired object).
pub fn default_objects() -> Vec<(&'static str, Option<&'static str>, Map<String, Value>)> {
    let mut out = Vec::new();
    for r in cluster_roles() {
        let mut o = json!({
            "kind": "ClusterRole",
            "apiVersion": API_VERSION,
            "metadata": metadata(r.name, None, r.labels),
        });
        if r.aggregate_from.is_empty() {
            o["rules"] = rules_json(&r.rules);
        } else {
            let sel: Vec<Value> = r
                .aggregate_from
                .iter()
                .map(|k| json!({"matchLabels": {*k: "true"}}))
                .collect();
            o["aggregationRule"] = json!({"clusterRoleSelectors": sel});
            o["rules"] = json!([]);
        }
        out.push(("clusterroles", None, into_map(o)));
    }
    for (name, subjects) in cluster_role_bindings() {
        let mut o = json!({
            "kind": "ClusterRoleBinding",
            "apiVersion": API_VERSION,
            "metadata": metadata(name, None, &[]),
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": name},
        });
        if !subjects.is_empty() {
            o["subjects"] = Value::Array(subjects.iter().map(subject_json).collect());
        }
        out.push(("clusterrolebindings", None, into_map(o)));
    }
    for (ns, name, rules, subjects) in namespace_roles() {
        let role = json!({
            "kind": "Role",
            "apiVersion": API_VERSION,
            "metadata": metadata(name, Some(ns), &[]),
            "rules": rules_json(&rules),
        });
        out.push(("roles", Some(ns), into_map(role)));
        let binding_name = if name.starts_with("system::") {
            name.to_string()
        } else {
            format!("system::{name}")
        };
        let rb = json!({
            "kind": "RoleBinding",
            "apiVersion": API_VERSION,
            "metadata": metadata(&binding_name, Some(ns), &[]),
            "roleRef": {"apiGroup": GROUP, "kind": "Role", "name": name},
            "subjects": Value::Array(subjects.iter().map(subject_json).collect()),
        });
        out.push(("rolebindings", Some(ns), into_map(rb)));
    }
    out
}

fn into_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("object literal"),
    }
}

/// Adds to `have` what `want` has and it lacks; true when anything changed.
fn reconcile(plural: &str, have: &mut Map<String, Value>, want: &Map<String, Value>) -> bool {
    let mut changed = false;
    // Labels and annotations: add missing keys.
    for field in ["labels", "annotations"] {
        let Some(want_m) = want["metadata"].get(field).and_then(Value::as_object) else {
            continue;
        };
        let meta = crate::object::raw::meta_mut(have);
        let entry = meta
            .entry(field)
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let have_m = entry.as_object_mut().expect("just made an object");
        for (k, v) in want_m {
            if !have_m.contains_key(k) {
                have_m.insert(k.clone(), v.clone());
                changed = true;
            }
        }
    }
    let mut add_missing = |field: &str, parse: fn(&Value) -> Value| {
        let Some(want_a) = want.get(field).and_then(Value::as_array) else {
            return;
        };
        let entry = have.entry(field).or_insert_with(|| json!([]));
        if !entry.is_array() {
            *entry = json!([]);
        }
        let have_a = entry.as_array_mut().expect("just made an array");
        for w in want_a {
            if !have_a.iter().any(|h| parse(h) == parse(w)) {
                have_a.push(w.clone());
                changed = true;
            }
        }
    };
    match plural {
        "clusterroles" | "roles" => {
            if let Some(sel) = want.get("aggregationRule") {
                let have_sel = have
                    .entry("aggregationRule")
                    .or_insert_with(|| json!({"clusterRoleSelectors": []}));
                let list = have_sel
                    .as_object_mut()
                    .map(|m| m.entry("clusterRoleSelectors").or_insert_with(|| json!([])));
                if let Some(Value::Array(have_a)) = list {
                    for s in sel["clusterRoleSelectors"].as_array().into_iter().flatten() {
                        if !have_a.contains(s) {
                            have_a.push(s.clone());
                            changed = true;
                        }
                    }
                }
            } else {
                add_missing("rules", |v| Rule::from_json(v).to_json());
            }
        }
        _ => add_missing("subjects", |v| v.clone()),
    }
    changed
}

/// Creates the default RBAC objects that are missing and reconciles the others.
pub async fn ensure_bootstrap_policy(api: &Api) -> Result<(), StoreError> {
    let mut created = 0;
    let mut updated = 0;
    for (plural, ns, want) in default_objects() {
        let res = resource(plural);
        let name = want["metadata"]["name"].as_str().unwrap_or("").to_string();
        let key = api.key(res, ns, &name);
        for _attempt in 0..5 {
            let (current, _) = api.store.get(&key).await?;
            let Some(kv) = current else {
                let mut obj = want.clone();
                let meta = crate::object::raw::meta_mut(&mut obj);
                meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
                meta.insert(
                    "creationTimestamp".into(),
                    json!(crate::api::handlers::write::now_rfc3339()),
                );
                match api.store.create(&key, codec::stored(res, &obj)).await {
                    Ok(_) => {
                        created += 1;
                        break;
                    }
                    Err(StoreError::AlreadyExists) => continue,
                    Err(e) => return Err(e),
                }
            };
            let Ok(Value::Object(mut have)) = serde_json::from_slice::<Value>(&kv.value) else {
                tracing::warn!(
                    resource = plural,
                    name,
                    "cannot decode a stored RBAC object; leaving it"
                );
                break;
            };
            let autoupdate = have
                .get("metadata")
                .and_then(|m| m.get("annotations"))
                .and_then(|a| a.get(AUTOUPDATE))
                .and_then(Value::as_str);
            if autoupdate == Some("false") || !reconcile(plural, &mut have, &want) {
                break;
            }
            match api
                .store
                .update(&key, codec::stored(res, &have), kv.mod_revision)
                .await
            {
                Ok(_) => {
                    updated += 1;
                    break;
                }
                Err(StoreError::Conflict { .. }) | Err(StoreError::NotFound) => continue,
                Err(e) => return Err(e),
            }
        }
    }
    tracing::info!(created, updated, "bootstrap RBAC policy in place");
    // Serve only once the caches the authorizer reads have seen the policy.
    let revision = api.store.current_revision().await?;
    for plural in [
        "roles",
        "rolebindings",
        "clusterroles",
        "clusterrolebindings",
    ] {
        let cache = api.caches.get(resource(plural));
        if !cache.wait_ready(Duration::from_secs(30)).await {
            tracing::warn!(resource = plural, "RBAC cache not ready after 30 s");
            continue;
        }
        cache
            .ensure_fresh(revision, Duration::from_secs(10))
            .await?;
    }
    Ok(())
}

/// The clusterrole-aggregation controller: keeps the `rules` of every ClusterRole with an
/// `aggregationRule` equal to the union of the rules of the ClusterRoles it selects.
pub async fn run_aggregation(api: Arc<Api>) {
    let res = resource("clusterroles");
    let cache = api.caches.get(res);
    let mut last: Option<crate::cache::ObjectMap> = None;
    loop {
        let snap = cache.snapshot().objects;
        if cache.is_ready() && !last.as_ref().is_some_and(|l| l.ptr_eq(&snap)) {
            match aggregate_once(&api, &snap).await {
                Ok(()) => last = Some(snap),
                Err(e) => tracing::warn!(error = %e, "clusterrole aggregation failed; will retry"),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn aggregate_once(api: &Api, snap: &crate::cache::ObjectMap) -> Result<(), StoreError> {
    let res = resource("clusterroles");
    let infos: Vec<ClusterRoleInfo> = snap
        .values()
        .map(|o| ClusterRoleInfo::from_map(&o.to_map()))
        .collect();
    let effective = effective_rules(&infos);
    for info in infos.iter().filter(|i| i.aggregation.is_some()) {
        let want = &effective[&info.name];
        if info.rules == **want {
            continue;
        }
        let key = api.key(res, None, &info.name);
        let (Some(kv), _) = api.store.get(&key).await? else {
            continue;
        };
        let Ok(Value::Object(mut obj)) = serde_json::from_slice::<Value>(&kv.value) else {
            continue;
        };
        if rules_of(&obj) == **want {
            continue;
        }
        obj.insert("rules".into(), rules_json(want));
        match api
            .store
            .update(&key, codec::stored(res, &obj), kv.mod_revision)
            .await
        {
            Ok(_) => tracing::debug!(clusterrole = %info.name, "aggregated rules updated"),
            Err(StoreError::Conflict { .. }) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_labelled_and_unique() {
        let objs = default_objects();
        let mut seen = std::collections::HashSet::new();
        for (plural, ns, o) in &objs {
            let name = o["metadata"]["name"].as_str().unwrap();
            assert!(seen.insert((*plural, *ns, name)), "{plural} {name} twice");
            assert_eq!(o["metadata"]["labels"][BOOTSTRAP_LABEL.0], "rbac-defaults");
            assert_eq!(o["metadata"]["annotations"][AUTOUPDATE], "true");
        }
        let crbs: Vec<&str> = objs
            .iter()
            .filter(|(p, _, _)| *p == "clusterrolebindings")
            .map(|(_, _, o)| o["metadata"]["name"].as_str().unwrap())
            .collect();
        for (p, _, o) in &objs {
            if *p == "clusterrolebindings" {
                let role = o["roleRef"]["name"].as_str().unwrap();
                assert!(objs
                    .iter()
                    .any(|(p, _, r)| *p == "clusterroles" && r["metadata"]["name"] == role));
            }
        }
        assert!(crbs.contains(&"cluster-admin"));
        // admin ⊇ edit ⊇ view through aggregation.
        let infos: Vec<ClusterRoleInfo> = objs
            .iter()
            .filter(|(p, _, _)| *p == "clusterroles")
            .map(|(_, _, o)| ClusterRoleInfo::from_map(o))
            .collect();
        let eff = effective_rules(&infos);
        for r in eff["view"].iter() {
            assert!(eff["edit"].contains(r));
        }
        for r in eff["edit"].iter() {
            assert!(eff["admin"].contains(r));
        }
        assert!(eff["admin"]
            .iter()
            .any(|r| r.resources.contains(&"rolebindings".to_string())));
        assert!(!eff["edit"]
            .iter()
            .any(|r| r.resources.contains(&"rolebindings".to_string())));
    }

    #[test]
    fn reconcile_adds_missing_only() {
        let want = default_objects()
            .into_iter()
            .find(|(p, _, o)| *p == "clusterroles" && o["metadata"]["name"] == "system:basic-user")
            .unwrap()
            .2;
        let mut have = want.clone();
        have["rules"].as_array_mut().unwrap().remove(0);
        have["rules"]
            .as_array_mut()
            .unwrap()
            .push(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["extra"]}));
        have["metadata"]["labels"] = json!({"mine": "x"});
        assert!(reconcile("clusterroles", &mut have, &want));
        assert_eq!(have["rules"].as_array().unwrap().len(), 3);
        assert_eq!(have["metadata"]["labels"]["mine"], "x");
        assert!(!reconcile("clusterroles", &mut have, &want));
        let binding = default_objects()
            .into_iter()
            .find(|(p, _, o)| {
                *p == "clusterrolebindings" && o["metadata"]["name"] == "system:public-info-viewer"
            })
            .unwrap()
            .2;
        let mut have = binding.clone();
        have["subjects"].as_array_mut().unwrap().pop();
        assert!(reconcile("clusterrolebindings", &mut have, &binding));
        assert_eq!(have["subjects"].as_array().unwrap().len(), 2);
    }
}
