//! The Node authorizer for kubelets: users named `system:node:<name>` in group `system:nodes`.
//!
//! Implemented subset (kube-apiserver 1.32 with `AuthorizeNodeWithSelectors`):
//! - nodes: get/list/watch only its own Node (a list or watch must select
//!   `metadata.name=<node>`); create, and update/patch (also `/status`) of its own Node only
//!   (kube leaves the "own node" part to the NodeRestriction admission plugin, which kapi lacks);
//! - pods: get of pods bound to it, list/watch with `fieldSelector=spec.nodeName=<node>`;
//!   create/delete (mirror pods), `pods/status` update/patch and `pods/eviction` create via the
//!   node rules;
//! - secrets, configmaps: get (and list/watch of a single name) when a pod bound to the node
//!   references them (volumes, projected volumes, env, envFrom, imagePullSecrets, volume
//!   `secretRef`s);
//! - persistentvolumeclaims: get and `/status` update/patch when a pod bound to the node uses
//!   the claim (including generic ephemeral volumes); persistentvolumes: get when such a claim is
//!   bound to them;
//! - serviceaccounts: `token` create for the service accounts of its pods;
//! - leases: its own Lease in `kube-node-lease`;
//! - everything else: the static node rules (the `system:node` ClusterRole's rules).
//!
//! Not implemented: resourceclaims/resourceslices, volumeattachments by graph (allowed by the
//! static rules), csinodes by name.
//!
//! The pod graph is rebuilt from the pods cache when it changed, reusing the parsed references
//! of pods whose revision did not change; a stale graph (< 1 s) is used for allows, and rebuilt
//! before anything is refused.

use super::request_info::exact_field;
use super::{Attributes, Decision, Rule};
use crate::api::catalogue;
use crate::api::handlers::Api;
use crate::auth::authn::UserInfo;
use crate::cache::ObjectMap;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

pub const NODES_GROUP: &str = "system:nodes";
pub const NODE_USER_PREFIX: &str = "system:node:";
const STALE_OK: Duration = Duration::from_secs(1);

/// The node a user is, if it is one.
pub fn node_name(u: &UserInfo) -> Option<&str> {
    if !u.in_group(NODES_GROUP) {
        return None;
    }
    u.name.strip_prefix(NODE_USER_PREFIX)
}

/// `bootstrappolicy.NodeRules()`: the rules of the `system:node` ClusterRole.
pub fn node_rules() -> Vec<Rule> {
    let read = &["get", "list", "watch"];
    vec![
        Rule::new(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
        Rule::new(
            &["create"],
            &["authorization.k8s.io"],
            &["subjectaccessreviews", "localsubjectaccessreviews"],
        ),
        Rule::new(read, &[""], &["services"]),
        Rule::new(&["create", "get", "list", "watch"], &[""], &["nodes"]),
        Rule::new(&["update", "patch"], &[""], &["nodes/status"]),
        Rule::new(&["update", "patch"], &[""], &["nodes"]),
        Rule::new(
            &["create", "update", "patch"],
            &["", "events.k8s.io"],
            &["events"],
        ),
        Rule::new(read, &[""], &["pods"]),
        Rule::new(&["create", "delete"], &[""], &["pods"]),
        Rule::new(&["update", "patch"], &[""], &["pods/status"]),
        Rule::new(&["create"], &[""], &["pods/eviction"]),
        Rule::new(read, &[""], &["secrets", "configmaps"]),
        Rule::new(
            &["get"],
            &[""],
            &["persistentvolumeclaims", "persistentvolumes"],
        ),
        Rule::new(&["get"], &[""], &["endpoints"]),
        Rule::new(
            &["create", "get", "list", "watch"],
            &["certificates.k8s.io"],
            &["certificatesigningrequests"],
        ),
        Rule::new(
            &["get", "create", "update", "patch", "delete"],
            &["coordination.k8s.io"],
            &["leases"],
        ),
        Rule::new(&["get"], &["storage.k8s.io"], &["volumeattachments"]),
        Rule::new(
            &["get", "update", "patch"],
            &[""],
            &["persistentvolumeclaims/status"],
        ),
        Rule::new(&["create"], &[""], &["serviceaccounts/token"]),
        Rule::new(read, &["storage.k8s.io"], &["csidrivers"]),
        Rule::new(
            &["get", "create", "update", "patch", "delete"],
            &["storage.k8s.io"],
            &["csinodes"],
        ),
        Rule::new(read, &["node.k8s.io"], &["runtimeclasses"]),
    ]
}

/// What one pod references.
#[derive(Debug, Default, PartialEq, Eq)]
struct PodRefs {
    node: String,
    namespace: String,
    name: String,
    secrets: Vec<String>,
    configmaps: Vec<String>,
    pvcs: Vec<String>,
    service_account: String,
}

fn s(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn arr(v: Option<&Value>) -> impl Iterator<Item = &Value> {
    v.and_then(Value::as_array).into_iter().flatten()
}

fn pod_refs(pod: &Map<String, Value>) -> PodRefs {
    let meta = pod.get("metadata");
    let spec = pod.get("spec");
    let mut r = PodRefs {
        node: s(spec.and_then(|s| s.get("nodeName"))).unwrap_or_default(),
        namespace: s(meta.and_then(|m| m.get("namespace"))).unwrap_or_default(),
        name: s(meta.and_then(|m| m.get("name"))).unwrap_or_default(),
        service_account: s(spec.and_then(|s| s.get("serviceAccountName")))
            .unwrap_or_else(|| "default".into()),
        ..Default::default()
    };
    let Some(spec) = spec else { return r };
    for ips in arr(spec.get("imagePullSecrets")) {
        r.secrets.extend(s(ips.get("name")));
    }
    for vol in arr(spec.get("volumes")) {
        r.secrets.extend(s(vol.pointer("/secret/secretName")));
        r.configmaps.extend(s(vol.pointer("/configMap/name")));
        r.pvcs
            .extend(s(vol.pointer("/persistentVolumeClaim/claimName")));
        if vol.get("ephemeral").is_some() {
            if let Some(vname) = s(vol.get("name")) {
                r.pvcs.push(format!("{}-{}", r.name, vname));
            }
        }
        for src in arr(vol.pointer("/projected/sources")) {
            r.secrets.extend(s(src.pointer("/secret/name")));
            r.configmaps.extend(s(src.pointer("/configMap/name")));
        }
        if let Some(obj) = vol.as_object() {
            // Volume sources with a secretRef (cephfs, rbd, iscsi, flexVolume, csi's
            // nodePublishSecretRef, …).
            for v in obj.values() {
                r.secrets.extend(s(v.pointer("/secretRef/name")));
                r.secrets.extend(s(v.pointer("/nodePublishSecretRef/name")));
            }
        }
    }
    for key in ["containers", "initContainers", "ephemeralContainers"] {
        for c in arr(spec.get(key)) {
            for e in arr(c.get("env")) {
                r.secrets
                    .extend(s(e.pointer("/valueFrom/secretKeyRef/name")));
                r.configmaps
                    .extend(s(e.pointer("/valueFrom/configMapKeyRef/name")));
            }
            for e in arr(c.get("envFrom")) {
                r.secrets.extend(s(e.pointer("/secretRef/name")));
                r.configmaps.extend(s(e.pointer("/configMapRef/name")));
            }
        }
    }
    r
}

type NsName = (String, String);

#[derive(Default)]
struct NodeRefs {
    pods: HashSet<NsName>,
    secrets: HashSet<NsName>,
    configmaps: HashSet<NsName>,
    pvcs: HashSet<NsName>,
    service_accounts: HashSet<NsName>,
}

struct Graph {
    built_from: Option<ObjectMap>,
    built_at: Instant,
    nodes: HashMap<String, NodeRefs>,
    /// Parsed references per pod key, with the revision they were parsed at.
    memo: HashMap<String, (i64, Arc<PodRefs>)>,
}

pub struct NodeAuthorizer {
    api: Arc<Api>,
    graph: RwLock<Arc<Graph>>,
    rebuild: Mutex<()>,
    rules: Vec<Rule>,
}

enum Kind {
    Secret,
    ConfigMap,
    Pvc,
    ServiceAccount,
    Pod,
}

impl NodeAuthorizer {
    pub fn new(api: Arc<Api>) -> Self {
        NodeAuthorizer {
            api,
            graph: RwLock::new(Arc::new(Graph {
                built_from: None,
                built_at: Instant::now(),
                nodes: HashMap::new(),
                memo: HashMap::new(),
            })),
            rebuild: Mutex::new(()),
            rules: node_rules(),
        }
    }

    fn pods(&self) -> ObjectMap {
        let res = catalogue::lookup("", "v1", "pods").expect("pods are served");
        self.api.caches.get(res).snapshot().objects
    }

    /// The graph; `fresh` forces a rebuild if the pods changed since it was built.
    fn graph(&self, fresh: bool) -> Arc<Graph> {
        let pods = self.pods();
        {
            let g = self.graph.read().expect("node graph lock");
            let same = g.built_from.as_ref().is_some_and(|b| b.ptr_eq(&pods));
            if same || (!fresh && g.built_from.is_some() && g.built_at.elapsed() < STALE_OK) {
                return g.clone();
            }
        }
        let _guard = self.rebuild.lock().expect("node graph rebuild lock");
        let old = self.graph.read().expect("node graph lock").clone();
        let pods = self.pods();
        if old.built_from.as_ref().is_some_and(|b| b.ptr_eq(&pods)) {
            return old;
        }
        let mut memo = HashMap::with_capacity(pods.len());
        let mut nodes: HashMap<String, NodeRefs> = HashMap::new();
        for (key, obj) in pods.iter() {
            let refs = match old.memo.get(key) {
                Some((rev, refs)) if *rev == obj.mod_revision => refs.clone(),
                _ => Arc::new(pod_refs(&obj.to_map())),
            };
            if !refs.node.is_empty() {
                let n = nodes.entry(refs.node.clone()).or_default();
                let ns = &refs.namespace;
                let pair = |x: &String| (ns.clone(), x.clone());
                n.pods.insert(pair(&refs.name));
                n.secrets.extend(refs.secrets.iter().map(pair));
                n.configmaps.extend(refs.configmaps.iter().map(pair));
                n.pvcs.extend(refs.pvcs.iter().map(pair));
                n.service_accounts.insert(pair(&refs.service_account));
            }
            memo.insert(key.clone(), (obj.mod_revision, refs));
        }
        let g = Arc::new(Graph {
            built_from: Some(pods),
            built_at: Instant::now(),
            nodes,
            memo,
        });
        *self.graph.write().expect("node graph lock") = g.clone();
        g
    }

    fn related(&self, node: &str, kind: &Kind, ns: &str, name: &str) -> bool {
        let check = |g: &Graph| {
            g.nodes.get(node).is_some_and(|n| {
                let set = match kind {
                    Kind::Secret => &n.secrets,
                    Kind::ConfigMap => &n.configmaps,
                    Kind::Pvc => &n.pvcs,
                    Kind::ServiceAccount => &n.service_accounts,
                    Kind::Pod => &n.pods,
                };
                set.contains(&(ns.to_string(), name.to_string()))
            })
        };
        check(&self.graph(false)) || check(&self.graph(true))
    }

    fn pv_related(&self, node: &str, pv: &str) -> bool {
        let res = catalogue::lookup("", "v1", "persistentvolumeclaims").expect("pvcs are served");
        let cache = self.api.caches.get(res);
        let g = self.graph(true);
        let Some(n) = g.nodes.get(node) else {
            return false;
        };
        n.pvcs.iter().any(|(ns, name)| {
            cache
                .get(&self.api.key(res, Some(ns), name))
                .is_some_and(|o| {
                    o.to_map()
                        .get("spec")
                        .and_then(|s| s.get("volumeName"))
                        .and_then(Value::as_str)
                        == Some(pv)
                })
        })
    }

    fn static_rules(&self, a: &Attributes) -> (Decision, String) {
        if self.rules.iter().any(|r| r.allows(a)) {
            (Decision::Allow, String::new())
        } else {
            (Decision::NoOpinion, String::new())
        }
    }

    fn read_namespaced(&self, node: &str, kind: Kind, a: &Attributes) -> (Decision, String) {
        if !a.is_read_only() {
            return no("can only read resources of this type");
        }
        if !a.subresource.is_empty() {
            return no("cannot read subresource");
        }
        if a.namespace.is_empty() {
            return no("can only read namespaced object of this type");
        }
        self.by_graph(node, kind, a)
    }

    fn by_graph(&self, node: &str, kind: Kind, a: &Attributes) -> (Decision, String) {
        if a.name.is_empty() {
            return no("No Object name found");
        }
        if self.related(node, &kind, &a.namespace, &a.name) {
            (Decision::Allow, String::new())
        } else {
            (
                Decision::NoOpinion,
                format!("no relationship found between node '{node}' and this object"),
            )
        }
    }

    pub fn authorize(&self, a: &Attributes) -> (Decision, String) {
        if !a.user.in_group(NODES_GROUP) {
            return (Decision::NoOpinion, String::new());
        }
        let Some(node) = node_name(&a.user).filter(|n| !n.is_empty()) else {
            return (
                Decision::NoOpinion,
                format!("unknown node for user {:?}", a.user.name),
            );
        };
        if !a.resource_request {
            return self.static_rules(a);
        }
        match (a.api_group.as_str(), a.resource.as_str()) {
            ("", "secrets") => self.read_namespaced(node, Kind::Secret, a),
            ("", "configmaps") => self.read_namespaced(node, Kind::ConfigMap, a),
            ("", "persistentvolumeclaims") => {
                if a.subresource == "status" {
                    if !matches!(a.verb.as_str(), "update" | "patch") {
                        return no("can only get or update status of individual resources");
                    }
                    return self.by_graph(node, Kind::Pvc, a);
                }
                if a.verb != "get" {
                    return no("can only get individual resources of this type");
                }
                if !a.subresource.is_empty() {
                    return no("cannot get subresource");
                }
                self.by_graph(node, Kind::Pvc, a)
            }
            ("", "persistentvolumes") => {
                if a.verb != "get" {
                    return no("can only get individual resources of this type");
                }
                if !a.subresource.is_empty() {
                    return no("cannot get subresource");
                }
                if a.name.is_empty() {
                    return no("No Object name found");
                }
                if self.pv_related(node, &a.name) {
                    (Decision::Allow, String::new())
                } else {
                    (
                        Decision::NoOpinion,
                        format!("no relationship found between node '{node}' and this object"),
                    )
                }
            }
            ("", "serviceaccounts") => {
                if a.verb != "create" {
                    return no("can only create tokens for individual service accounts");
                }
                if a.subresource != "token" {
                    return no("can only create token subresource of serviceaccount");
                }
                self.by_graph(node, Kind::ServiceAccount, a)
            }
            ("coordination.k8s.io", "leases") => {
                if !matches!(
                    a.verb.as_str(),
                    "get" | "create" | "update" | "patch" | "delete"
                ) {
                    return no("can only get, create, update, patch, or delete a node lease");
                }
                if a.namespace != "kube-node-lease" {
                    return no("can only access leases in the kube-node-lease namespace");
                }
                if !a.name.is_empty() && a.name != node {
                    return no(
                        "can only access node lease with the same name as the requesting node",
                    );
                }
                (Decision::Allow, String::new())
            }
            ("", "nodes") => match a.verb.as_str() {
                "get" | "list" | "watch" if a.subresource.is_empty() => {
                    if a.name == node {
                        (Decision::Allow, String::new())
                    } else if a.name.is_empty() {
                        no_s(format!(
                            "node '{node}' cannot read all nodes, only its own Node object"
                        ))
                    } else {
                        no_s(format!(
                            "node '{node}' cannot read '{}', only its own Node object",
                            a.name
                        ))
                    }
                }
                "update" | "patch" if !a.name.is_empty() && a.name != node => no_s(format!(
                    "node '{node}' cannot modify '{}', only its own Node object",
                    a.name
                )),
                _ => self.static_rules(a),
            },
            ("", "pods") => match a.verb.as_str() {
                "get" if a.subresource.is_empty() => self.by_graph(node, Kind::Pod, a),
                "list" | "watch" => {
                    if a.field_selector
                        .as_deref()
                        .and_then(|fs| exact_field(fs, "spec.nodeName"))
                        == Some(node)
                    {
                        (Decision::Allow, String::new())
                    } else if !a.name.is_empty() {
                        self.by_graph(node, Kind::Pod, a)
                    } else {
                        no("can only list/watch pods with spec.nodeName field selector")
                    }
                }
                _ => self.static_rules(a),
            },
            _ => self.static_rules(a),
        }
    }
}

fn no(reason: &str) -> (Decision, String) {
    (Decision::NoOpinion, reason.to_string())
}

fn no_s(reason: String) -> (Decision, String) {
    (Decision::NoOpinion, reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_references() {
        let pod = json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {
            "nodeName": "n1", "serviceAccountName": "sa",
            "imagePullSecrets": [{"name": "pull"}],
            "volumes": [
                {"name": "a", "secret": {"secretName": "s1"}},
                {"name": "b", "configMap": {"name": "c1"}},
                {"name": "c", "persistentVolumeClaim": {"claimName": "claim"}},
                {"name": "d", "projected": {"sources": [{"secret": {"name": "s2"}}, {"configMap": {"name": "c2"}}]}},
                {"name": "e", "ephemeral": {"volumeClaimTemplate": {}}},
                {"name": "f", "cephfs": {"secretRef": {"name": "s3"}}}
            ],
            "containers": [{"name": "x", "env": [{"name": "E", "valueFrom": {"secretKeyRef": {"name": "s4", "key": "k"}}}],
                            "envFrom": [{"configMapRef": {"name": "c3"}}]}]
        }});
        let r = pod_refs(pod.as_object().unwrap());
        assert_eq!(r.node, "n1");
        assert_eq!(r.service_account, "sa");
        let mut secrets = r.secrets.clone();
        secrets.sort();
        assert_eq!(secrets, vec!["pull", "s1", "s2", "s3", "s4"]);
        assert_eq!(r.configmaps, vec!["c1", "c2", "c3"]);
        assert_eq!(r.pvcs, vec!["claim", "p-e"]);
    }

    #[test]
    fn node_identity() {
        let u = UserInfo::new("system:node:n1", &[NODES_GROUP]);
        assert_eq!(node_name(&u), Some("n1"));
        assert_eq!(node_name(&UserInfo::new("system:node:n1", &[])), None);
    }
}
