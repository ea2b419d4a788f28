//! The Node authorizer for kubelets: users named `system:node:<name>` in group `system:nodes`
//! (`plugin/pkg/auth/authorizer/node`, kube-apiserver 1.32, where `AuthorizeNodeWithSelectors`
//! is on by default).
//!
//! - nodes: create, update and patch of any Node and update/patch of any `nodes/status` are
//!   allowed; limiting a node to its own object is NodeRestriction's job (admission). Reads
//!   compare the name: only its own Node (a list or watch must select `metadata.name=<node>`).
//! - pods: get of pods bound to it, list/watch with `fieldSelector=spec.nodeName=<node>` (or of
//!   one related pod by name); create/delete (mirror pods), `pods/status` update/patch and
//!   `pods/eviction` create are allowed and left to NodeRestriction.
//! - secrets, configmaps: get/list/watch of one named object a pod bound to the node references
//!   (volumes, projected volumes, env, envFrom, imagePullSecrets, volume secret refs); secrets
//!   also through the kubelet-visible secret refs of a PV bound to a claim such a pod uses.
//! - persistentvolumeclaims (get, `/status` update/patch), persistentvolumes (get, through the
//!   PV's `claimRef`), resourceclaims (get), volumeattachments (get, `spec.nodeName`),
//!   resourceslices, serviceaccounts (`token` create), leases and csinodes as kube decides.
//! - everything else: the static node rules (the `system:node` ClusterRole's rules).
//!
//! The graph (pods and persistent volumes) is rebuilt from the watch caches when they changed,
//! reusing the parsed references of objects whose revision did not change; a stale graph (< 1 s)
//! is used for allows, and rebuilt before anything is refused. Mirror pods relate only
//! themselves to their node, as in kube.

use super::{Attributes, Decision, Rule};
use crate::admission::service_account::{pod_secret_names, MIRROR_POD_ANNOTATION};
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
const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
const STALE_OK: Duration = Duration::from_secs(1);

/// The node a user is, if it is one (`nodeidentifier.NodeIdentity`; the name may be empty).
pub fn node_name(u: &UserInfo) -> Option<&str> {
    if !u.in_group(NODES_GROUP) {
        return None;
    }
    u.name.strip_prefix(NODE_USER_PREFIX)
}

/// `bootstrappolicy.NodeRules()`: the rules of the `system:node` ClusterRole (1.32 defaults:
/// the DynamicResourceAllocation and ClusterTrustBundle rules are feature-gated off).
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

/// Whether a field selector has the requirement `field=value` (or `==`), read as
/// `fields.ParseSelector` does: a selector that does not parse has no requirements.
fn selects(selector: Option<&str>, field: &str, value: &str) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_empty()) else {
        return false;
    };
    let mut found = false;
    for term in split_terms(selector) {
        if term.is_empty() {
            continue;
        }
        let Some((lhs, op, rhs)) = split_term(term) else {
            return false;
        };
        let Some(rhs) = unescape_value(rhs) else {
            return false;
        };
        found |= op != "!=" && lhs == field && rhs == value;
    }
    found
}

/// Splits on commas not escaped by a backslash (`fields.splitTerms`).
fn split_terms(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut in_slash) = (0, false);
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            out.push(&s[start..i]);
            start = i + 1;
        }
    }
    out.push(&s[start..]);
    out
}

/// The first operator in a term, trying `!=`, `==`, `=` at each position (`fields.splitTerm`).
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    term.char_indices().find_map(|(i, _)| {
        ["!=", "==", "="]
            .into_iter()
            .find(|op| term[i..].starts_with(op))
            .map(|op| (&term[..i], op, &term[i + op.len()..]))
    })
}

/// `fields.UnescapeValue`: `\\`, `\,` and `\=` are the only escapes; bare `,`/`=` are invalid.
fn unescape_value(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            if !matches!(c, '\\' | ',' | '=') {
                return None;
            }
            out.push(c);
            in_slash = false;
        } else {
            match c {
                '\\' => in_slash = true,
                ',' | '=' => return None,
                c => out.push(c),
            }
        }
    }
    (!in_slash).then_some(out)
}

type NsName = (String, String);

/// What one bound pod relates to its node (`Graph.AddPod`).
#[derive(Debug, Default, PartialEq, Eq)]
struct PodRefs {
    node: String,
    namespace: String,
    name: String,
    secrets: Vec<String>,
    configmaps: Vec<String>,
    pvcs: Vec<String>,
    resource_claims: Vec<String>,
    service_account: Option<String>,
}

/// What one persistent volume relates to its claim (`Graph.AddPV`).
#[derive(Debug, Default, PartialEq, Eq)]
struct PvRefs {
    name: String,
    claim: Option<NsName>,
    /// Kubelet-visible secrets, with the namespace each is read from.
    secrets: Vec<NsName>,
}

fn s(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn arr(v: Option<&Value>) -> impl Iterator<Item = &Value> {
    v.and_then(Value::as_array).into_iter().flatten()
}

/// A field that is present and not null.
fn present<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

fn pod_refs(pod: &Map<String, Value>) -> PodRefs {
    let meta = pod.get("metadata");
    let spec = pod.get("spec");
    let mut r = PodRefs {
        node: s(spec.and_then(|s| s.get("nodeName"))).unwrap_or_default(),
        namespace: s(meta.and_then(|m| m.get("namespace"))).unwrap_or_default(),
        name: s(meta.and_then(|m| m.get("name"))).unwrap_or_default(),
        ..Default::default()
    };
    let mirror = meta
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
        .is_some_and(|a| a.contains_key(MIRROR_POD_ANNOTATION));
    // A node must never gain access to other objects through a pod it can create itself.
    let Some(spec) = spec.filter(|_| !mirror) else {
        return r;
    };
    r.service_account = s(spec.get("serviceAccountName"));
    r.secrets = pod_secret_names(spec);
    // `podutil.VisitPodConfigmapNames`.
    for c in ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .flat_map(|k| arr(spec.get(k)))
    {
        for e in arr(c.get("envFrom")) {
            r.configmaps.extend(s(e.pointer("/configMapRef/name")));
        }
        for e in arr(c.get("env")) {
            r.configmaps
                .extend(s(e.pointer("/valueFrom/configMapKeyRef/name")));
        }
    }
    for vol in arr(spec.get("volumes")) {
        if let Some(p) = present(vol, "projected") {
            for src in arr(p.get("sources")) {
                r.configmaps.extend(s(src.pointer("/configMap/name")));
            }
        } else if let Some(cm) = present(vol, "configMap") {
            r.configmaps.extend(s(cm.get("name")));
        }
        if let Some(pvc) = present(vol, "persistentVolumeClaim") {
            r.pvcs.extend(s(pvc.get("claimName")));
        } else if present(vol, "ephemeral").is_some() {
            // `ephemeral.VolumeClaimName`: <pod>-<volume>.
            if let Some(vname) = vol.get("name").and_then(Value::as_str) {
                r.pvcs.push(format!("{}-{vname}", r.name));
            }
        }
    }
    // `resourceclaim.Name`: a direct claim name, or the claim generated from a template as
    // recorded in the pod status (none yet, or none needed: no edge).
    let statuses: Vec<&Value> = arr(pod
        .get("status")
        .and_then(|s| s.get("resourceClaimStatuses")))
    .collect();
    for claim in arr(spec.get("resourceClaims")) {
        if let Some(name) = present(claim, "resourceClaimName") {
            r.resource_claims.extend(name.as_str().map(str::to_string));
        } else if present(claim, "resourceClaimTemplateName").is_some() {
            let generated = statuses
                .iter()
                .find(|st| st.get("name") == claim.get("name"))
                .and_then(|st| st.get("resourceClaimName"))
                .and_then(Value::as_str);
            r.resource_claims.extend(generated.map(str::to_string));
        }
    }
    r
}

/// `pvutil.VisitPVSecretNames`, keeping the kubelet-visible references (one volume source, the
/// first set in kube's order).
fn pv_refs(pv: &Map<String, Value>) -> PvRefs {
    let mut r = PvRefs {
        name: s(pv.get("metadata").and_then(|m| m.get("name"))).unwrap_or_default(),
        ..Default::default()
    };
    let Some(spec) = pv.get("spec") else {
        return r;
    };
    let Some(claim) = present(spec, "claimRef") else {
        return r;
    };
    let str_at = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let claim_ns = str_at(claim, "namespace");
    r.claim = Some((claim_ns.clone(), str_at(claim, "name")));
    let mut add = |ns: String, name: String| {
        if !name.is_empty() {
            r.secrets.push((ns, name));
        }
    };
    // Secret refs whose empty namespace means the claim's (older PVs were written so).
    let claim_default = |src: &Value| {
        present(src, "secretRef").map(|sr| {
            let ns = str_at(sr, "namespace");
            let ns = if ns.is_empty() { claim_ns.clone() } else { ns };
            (ns, str_at(sr, "name"))
        })
    };
    if let Some(af) = present(spec, "azureFile") {
        let ns = str_at(af, "secretNamespace");
        let ns = if ns.is_empty() { claim_ns.clone() } else { ns };
        add(ns, str_at(af, "secretName"));
    } else if let Some(src) = present(spec, "cephfs") {
        if let Some((ns, n)) = claim_default(src) {
            add(ns, n);
        }
    } else if let Some(src) = present(spec, "cinder") {
        if let Some(sr) = present(src, "secretRef") {
            add(str_at(sr, "namespace"), str_at(sr, "name"));
        }
    } else if let Some(src) = present(spec, "flexVolume")
        .or_else(|| present(spec, "rbd"))
        .or_else(|| present(spec, "scaleIO"))
        .or_else(|| present(spec, "iscsi"))
    {
        if let Some((ns, n)) = claim_default(src) {
            add(ns, n);
        }
    } else if let Some(src) = present(spec, "storageos") {
        if let Some(sr) = present(src, "secretRef") {
            add(str_at(sr, "namespace"), str_at(sr, "name"));
        }
    } else if let Some(csi) = present(spec, "csi") {
        // The controller secrets are not for the kubelet.
        for k in [
            "nodePublishSecretRef",
            "nodeStageSecretRef",
            "nodeExpandSecretRef",
        ] {
            if let Some(sr) = present(csi, k) {
                add(str_at(sr, "namespace"), str_at(sr, "name"));
            }
        }
    }
    r
}

/// The object kinds the graph (or a cache lookup) relates to nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Vertex {
    Pod,
    Secret,
    ConfigMap,
    Pvc,
    Pv,
    ServiceAccount,
    ResourceClaim,
    VolumeAttachment,
    ResourceSlice,
}

/// Everything reachable from one node's vertex, by kind.
#[derive(Default, Debug)]
struct NodeRefs {
    pods: HashSet<NsName>,
    secrets: HashSet<NsName>,
    configmaps: HashSet<NsName>,
    pvcs: HashSet<NsName>,
    pvs: HashSet<NsName>,
    service_accounts: HashSet<NsName>,
    resource_claims: HashSet<NsName>,
}

impl NodeRefs {
    fn has(&self, v: Vertex, ns: &str, name: &str) -> bool {
        let set = match v {
            Vertex::Pod => &self.pods,
            Vertex::Secret => &self.secrets,
            Vertex::ConfigMap => &self.configmaps,
            Vertex::Pvc => &self.pvcs,
            Vertex::Pv => &self.pvs,
            Vertex::ServiceAccount => &self.service_accounts,
            Vertex::ResourceClaim => &self.resource_claims,
            Vertex::VolumeAttachment | Vertex::ResourceSlice => return false,
        };
        set.contains(&(ns.to_string(), name.to_string()))
    }
}

/// node ← pod ← {secret, configmap, pvc, serviceaccount, resourceclaim}; pod ← pvc ← pv ← secret.
fn relate<'a>(
    pods: impl Iterator<Item = &'a PodRefs>,
    pvs: impl Iterator<Item = &'a PvRefs>,
) -> HashMap<String, NodeRefs> {
    let mut nodes: HashMap<String, NodeRefs> = HashMap::new();
    for p in pods.filter(|p| !p.node.is_empty()) {
        let n = nodes.entry(p.node.clone()).or_default();
        let ns = &p.namespace;
        let pair = |x: &String| (ns.clone(), x.clone());
        n.pods.insert(pair(&p.name));
        n.secrets.extend(p.secrets.iter().map(pair));
        n.configmaps.extend(p.configmaps.iter().map(pair));
        n.pvcs.extend(p.pvcs.iter().map(pair));
        n.resource_claims.extend(p.resource_claims.iter().map(pair));
        n.service_accounts
            .extend(p.service_account.iter().map(pair));
    }
    let mut by_claim: HashMap<&NsName, Vec<&PvRefs>> = HashMap::new();
    for pv in pvs {
        if let Some(c) = &pv.claim {
            by_claim.entry(c).or_default().push(pv);
        }
    }
    if by_claim.is_empty() {
        return nodes;
    }
    for n in nodes.values_mut() {
        let NodeRefs {
            pvcs, pvs, secrets, ..
        } = n;
        for pv in pvcs.iter().filter_map(|c| by_claim.get(c)).flatten() {
            pvs.insert((String::new(), pv.name.clone()));
            secrets.extend(pv.secrets.iter().cloned());
        }
    }
    nodes
}

/// Answers "is there a path from this object to this node".
trait Relations {
    fn has_path(&self, node: &str, v: Vertex, ns: &str, name: &str) -> bool;
}

struct Graph {
    built_from: Option<(ObjectMap, ObjectMap)>,
    built_at: Instant,
    nodes: HashMap<String, NodeRefs>,
    /// Parsed references per store key, with the revision they were parsed at.
    pod_memo: HashMap<String, (i64, Arc<PodRefs>)>,
    pv_memo: HashMap<String, (i64, Arc<PvRefs>)>,
}

impl Graph {
    fn is_from(&self, pods: &ObjectMap, pvs: &ObjectMap) -> bool {
        self.built_from
            .as_ref()
            .is_some_and(|(p, v)| p.ptr_eq(pods) && v.ptr_eq(pvs))
    }
}

/// Reparses only objects whose revision changed since the last build.
fn memoized<T>(
    objects: &ObjectMap,
    old: &HashMap<String, (i64, Arc<T>)>,
    parse: impl Fn(&Map<String, Value>) -> T,
) -> HashMap<String, (i64, Arc<T>)> {
    objects
        .iter()
        .map(|(key, obj)| {
            let refs = match old.get(key) {
                Some((rev, refs)) if *rev == obj.mod_revision => refs.clone(),
                _ => Arc::new(parse(&obj.to_map())),
            };
            (key.to_string(), (obj.mod_revision, refs))
        })
        .collect()
}

pub struct NodeAuthorizer {
    api: Arc<Api>,
    graph: RwLock<Arc<Graph>>,
    rebuild: Mutex<()>,
    rules: Vec<Rule>,
}

impl NodeAuthorizer {
    pub fn new(api: Arc<Api>) -> Self {
        NodeAuthorizer {
            api,
            graph: RwLock::new(Arc::new(Graph {
                built_from: None,
                built_at: Instant::now(),
                nodes: HashMap::new(),
                pod_memo: HashMap::new(),
                pv_memo: HashMap::new(),
            })),
            rebuild: Mutex::new(()),
            rules: node_rules(),
        }
    }

    fn sources(&self) -> (ObjectMap, ObjectMap) {
        let objects = |plural| {
            let res = catalogue::lookup("", "v1", plural).expect("core resources are served");
            self.api.caches.get(res).snapshot().objects
        };
        (objects("pods"), objects("persistentvolumes"))
    }

    /// The graph; `fresh` forces a rebuild if pods or volumes changed since it was built.
    fn graph(&self, fresh: bool) -> Arc<Graph> {
        let (pods, pvs) = self.sources();
        {
            let g = self.graph.read().expect("node graph lock");
            if g.is_from(&pods, &pvs)
                || (!fresh && g.built_from.is_some() && g.built_at.elapsed() < STALE_OK)
            {
                return g.clone();
            }
        }
        let _guard = self.rebuild.lock().expect("node graph rebuild lock");
        let old = self.graph.read().expect("node graph lock").clone();
        let (pods, pvs) = self.sources();
        if old.is_from(&pods, &pvs) {
            return old;
        }
        let pod_memo = memoized(&pods, &old.pod_memo, pod_refs);
        let pv_memo = memoized(&pvs, &old.pv_memo, pv_refs);
        let nodes = relate(
            pod_memo.values().map(|(_, r)| r.as_ref()),
            pv_memo.values().map(|(_, r)| r.as_ref()),
        );
        let g = Arc::new(Graph {
            built_from: Some((pods, pvs)),
            built_at: Instant::now(),
            nodes,
            pod_memo,
            pv_memo,
        });
        *self.graph.write().expect("node graph lock") = g.clone();
        g
    }

    /// `spec.nodeName` of a cluster-scoped object, if kapi serves its resource and it exists.
    fn node_of(&self, group: &str, plural: &str, name: &str) -> Option<String> {
        let res = catalogue::all()
            .iter()
            .find(|r| r.group == group && r.plural == plural)?;
        let obj = self
            .api
            .caches
            .get(res)
            .get(&self.api.key(res, None, name))?;
        s(obj.to_map().get("spec").and_then(|s| s.get("nodeName")))
    }

    pub fn authorize(&self, a: &Attributes) -> (Decision, String) {
        decide(a, self, &self.rules)
    }
}

impl Relations for NodeAuthorizer {
    fn has_path(&self, node: &str, v: Vertex, ns: &str, name: &str) -> bool {
        let (group, plural) = match v {
            Vertex::VolumeAttachment => ("storage.k8s.io", "volumeattachments"),
            Vertex::ResourceSlice => ("resource.k8s.io", "resourceslices"),
            _ => {
                let check = |g: &Graph| g.nodes.get(node).is_some_and(|n| n.has(v, ns, name));
                return check(&self.graph(false)) || check(&self.graph(true));
            }
        };
        ns.is_empty() && self.node_of(group, plural, name).as_deref() == Some(node)
    }
}

fn allow() -> (Decision, String) {
    (Decision::Allow, String::new())
}

fn no(reason: impl Into<String>) -> (Decision, String) {
    (Decision::NoOpinion, reason.into())
}

/// `NodeAuthorizer.Authorize`.
fn decide(a: &Attributes, rel: &dyn Relations, rules: &[Rule]) -> (Decision, String) {
    let Some(node) = node_name(&a.user) else {
        return no("");
    };
    if node.is_empty() {
        return no(format!("unknown node for user {:?}", a.user.name));
    }
    if a.resource_request {
        let by_graph = |v| related(node, v, a, rel);
        match (a.api_group.as_str(), a.resource.as_str()) {
            ("", "secrets") => return read_namespaced(a, || by_graph(Vertex::Secret)),
            ("", "configmaps") => return read_namespaced(a, || by_graph(Vertex::ConfigMap)),
            ("", "persistentvolumeclaims") if a.subresource == "status" => {
                if !matches!(a.verb.as_str(), "update" | "patch") {
                    return no("can only get/update/patch this type");
                }
                return by_graph(Vertex::Pvc);
            }
            ("", "persistentvolumeclaims") => return get_only(a, || by_graph(Vertex::Pvc)),
            ("", "persistentvolumes") => return get_only(a, || by_graph(Vertex::Pv)),
            ("resource.k8s.io", "resourceclaims") => {
                return get_only(a, || by_graph(Vertex::ResourceClaim))
            }
            ("storage.k8s.io", "volumeattachments") => {
                return get_only(a, || by_graph(Vertex::VolumeAttachment))
            }
            ("", "serviceaccounts") => {
                if a.verb != "create" || a.name.is_empty() {
                    return no("can only create tokens for individual service accounts");
                }
                if a.subresource != "token" {
                    return no("can only create token subresource of serviceaccount");
                }
                return by_graph(Vertex::ServiceAccount);
            }
            ("coordination.k8s.io", "leases") => {
                if !matches!(
                    a.verb.as_str(),
                    "get" | "create" | "update" | "patch" | "delete"
                ) {
                    return no("can only get, create, update, patch, or delete a node lease");
                }
                if a.namespace != NODE_LEASE_NAMESPACE {
                    return no(format!(
                        "can only access leases in the {NODE_LEASE_NAMESPACE:?} system namespace"
                    ));
                }
                // The name of a created lease is checked by NodeRestriction.
                if a.verb != "create" && a.name != node {
                    return no(
                        "can only access node lease with the same name as the requesting node",
                    );
                }
                return allow();
            }
            ("storage.k8s.io", "csinodes") => {
                if !matches!(
                    a.verb.as_str(),
                    "get" | "create" | "update" | "patch" | "delete"
                ) {
                    return no("can only get, create, update, patch, or delete a CSINode");
                }
                if !a.subresource.is_empty() {
                    return no("cannot authorize CSINode subresources");
                }
                if a.verb != "create" && a.name != node {
                    return no("can only access CSINode with the same name as the requesting node");
                }
                return allow();
            }
            ("resource.k8s.io", "resourceslices") => return resource_slice(node, a, rel),
            ("", "nodes") => return node_object(node, a),
            ("", "pods") => return pod(node, a, rel),
            _ => {}
        }
    }
    if rules.iter().any(|r| r.allows(a)) {
        allow()
    } else {
        no("")
    }
}

/// `authorize`: a named object with a path to the node.
fn related(node: &str, v: Vertex, a: &Attributes, rel: &dyn Relations) -> (Decision, String) {
    if a.name.is_empty() {
        return no("No Object name found");
    }
    if rel.has_path(node, v, &a.namespace, &a.name) {
        allow()
    } else {
        no(format!(
            "no relationship found between node '{node}' and this object"
        ))
    }
}

/// `authorizeGet`.
fn get_only(a: &Attributes, then: impl FnOnce() -> (Decision, String)) -> (Decision, String) {
    if a.verb != "get" {
        return no("can only get individual resources of this type");
    }
    if !a.subresource.is_empty() {
        return no("cannot get subresource");
    }
    then()
}

/// `authorizeReadNamespacedObject`.
fn read_namespaced(
    a: &Attributes,
    then: impl FnOnce() -> (Decision, String),
) -> (Decision, String) {
    if !a.is_read_only() {
        return no("can only read resources of this type");
    }
    if !a.subresource.is_empty() {
        return no("cannot read subresource");
    }
    if a.namespace.is_empty() {
        return no("can only read namespaced object of this type");
    }
    then()
}

/// `authorizeResourceSlice`.
fn resource_slice(node: &str, a: &Attributes, rel: &dyn Relations) -> (Decision, String) {
    if !a.subresource.is_empty() {
        return no("cannot authorize ResourceSlice subresources");
    }
    match a.verb.as_str() {
        // NodeRestriction checks the node name of a created slice.
        "create" => allow(),
        "get" | "update" | "patch" | "delete" => related(node, Vertex::ResourceSlice, a, rel),
        "watch" | "list" | "deletecollection" => {
            if selects(a.field_selector.as_deref(), "spec.nodeName", node) {
                allow()
            } else {
                no("can only list/watch/deletecollection resourceslices with nodeName field selector")
            }
        }
        _ => no("only the following verbs are allowed for a ResourceSlice: get, watch, list, create, update, patch, delete, deletecollection"),
    }
}

/// `authorizeNode`: writes to any Node are allowed here and limited to the node's own by the
/// NodeRestriction admission plugin; reads compare the name.
fn node_object(node: &str, a: &Attributes) -> (Decision, String) {
    match (a.subresource.as_str(), a.verb.as_str()) {
        ("", "create" | "update" | "patch") | ("status", "update" | "patch") => allow(),
        ("", "get" | "list" | "watch") => {
            if a.name == node {
                allow()
            } else if a.name.is_empty() {
                no(format!(
                    "node '{node}' cannot read all nodes, only its own Node object"
                ))
            } else {
                no(format!(
                    "node '{node}' cannot read '{}', only its own Node object",
                    a.name
                ))
            }
        }
        _ => no(""),
    }
}

/// `authorizePod`: writes are left to NodeRestriction; reads need the graph or a
/// `spec.nodeName` field selector.
fn pod(node: &str, a: &Attributes, rel: &dyn Relations) -> (Decision, String) {
    match (a.subresource.as_str(), a.verb.as_str()) {
        ("", "get") => related(node, Vertex::Pod, a, rel),
        ("", "list" | "watch") => {
            if selects(a.field_selector.as_deref(), "spec.nodeName", node) {
                allow()
            } else if !a.name.is_empty() {
                related(node, Vertex::Pod, a, rel)
            } else {
                no("can only list/watch pods with spec.nodeName field selector")
            }
        }
        ("", "create" | "delete") | ("status", "update" | "patch") | ("eviction", "create") => {
            allow()
        }
        _ => no(""),
    }
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
                {"name": "f", "cephfs": {"secretRef": {"name": "s3"}}},
                {"name": "g", "azureFile": {"secretName": "s5", "shareName": "x"}},
                {"name": "h", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "s6"}}}
            ],
            "containers": [{"name": "x", "env": [{"name": "E", "valueFrom": {"secretKeyRef": {"name": "s4", "key": "k"}}}],
                            "envFrom": [{"configMapRef": {"name": "c3"}}]}],
            "ephemeralContainers": [{"name": "dbg", "env": [{"name": "F", "valueFrom": {"configMapKeyRef": {"name": "c4", "key": "k"}}}]}],
            "resourceClaims": [{"name": "direct", "resourceClaimName": "rc1"},
                               {"name": "tmpl", "resourceClaimTemplateName": "t"},
                               {"name": "pending", "resourceClaimTemplateName": "t"}]
        }, "status": {"resourceClaimStatuses": [{"name": "tmpl", "resourceClaimName": "p-tmpl-x7"}]}});
        let r = pod_refs(pod.as_object().unwrap());
        assert_eq!(r.node, "n1");
        assert_eq!(r.service_account.as_deref(), Some("sa"));
        let mut secrets = r.secrets.clone();
        secrets.sort();
        assert_eq!(secrets, vec!["pull", "s1", "s2", "s3", "s4", "s5", "s6"]);
        assert_eq!(r.configmaps, vec!["c3", "c4", "c1", "c2"]);
        assert_eq!(r.pvcs, vec!["claim", "p-e"]);
        assert_eq!(r.resource_claims, vec!["rc1", "p-tmpl-x7"]);

        // No service account name: no service account vertex (kube does not default it here).
        let bare =
            json!({"metadata": {"name": "q", "namespace": "ns"}, "spec": {"nodeName": "n1"}});
        assert_eq!(pod_refs(bare.as_object().unwrap()).service_account, None);

        // A mirror pod relates only itself to its node.
        let mut mirror = pod.clone();
        mirror["metadata"]["annotations"] = json!({MIRROR_POD_ANNOTATION: "hash"});
        let r = pod_refs(mirror.as_object().unwrap());
        assert_eq!((r.node.as_str(), r.name.as_str()), ("n1", "p"));
        assert!(r.secrets.is_empty() && r.configmaps.is_empty() && r.pvcs.is_empty());
        assert!(r.service_account.is_none() && r.resource_claims.is_empty());
    }

    #[test]
    fn pv_references() {
        let pv = |spec: Value| {
            pv_refs(
                json!({"metadata": {"name": "pv1"}, "spec": spec})
                    .as_object()
                    .unwrap(),
            )
        };
        let unbound = pv(
            json!({"csi": {"driver": "d", "nodePublishSecretRef": {"name": "x", "namespace": "y"}}}),
        );
        assert_eq!(unbound.claim, None);
        assert!(unbound.secrets.is_empty());
        let claim = json!({"namespace": "ns", "name": "claim"});
        let csi = pv(json!({"claimRef": claim, "csi": {"driver": "d",
            "controllerPublishSecretRef": {"name": "ctl", "namespace": "sys"},
            "nodeStageSecretRef": {"name": "stage", "namespace": "sys"},
            "nodeExpandSecretRef": {"name": "expand", "namespace": "sys"}}}));
        assert_eq!(csi.claim, Some(("ns".into(), "claim".into())));
        assert_eq!(
            csi.secrets,
            vec![
                ("sys".to_string(), "stage".to_string()),
                ("sys".to_string(), "expand".to_string())
            ]
        );
        // An empty secretRef namespace means the claim's.
        let rbd = pv(
            json!({"claimRef": claim, "rbd": {"monitors": ["m"], "image": "i", "secretRef": {"name": "ceph"}}}),
        );
        assert_eq!(rbd.secrets, vec![("ns".to_string(), "ceph".to_string())]);
        let af = pv(
            json!({"claimRef": claim, "azureFile": {"secretName": "az", "secretNamespace": "other", "shareName": "s"}}),
        );
        assert_eq!(af.secrets, vec![("other".to_string(), "az".to_string())]);
    }

    #[test]
    fn field_selectors() {
        let f = |s: &str| selects(Some(s), "spec.nodeName", "n1");
        assert!(f("spec.nodeName=n1"));
        assert!(f("spec.nodeName==n1"));
        assert!(f("status.phase=Running,spec.nodeName=n1"));
        assert!(!f("spec.nodeName!=n1"));
        assert!(!f("spec.nodeName=n2"));
        assert!(!f(" spec.nodeName=n1"));
        // A selector that does not parse grants nothing.
        assert!(!f("spec.nodeName=n1,garbage"));
        assert!(!f("spec.nodeName=n1,a=b=c"));
        assert!(!f("spec.nodeName=n1,a=x\\y"));
        assert!(f("spec.nodeName=n1,,a=x\\,y"));
        assert!(!selects(None, "spec.nodeName", "n1"));
        assert!(!selects(Some(""), "spec.nodeName", "n1"));
    }

    /// A graph from literal objects plus the node of each volume attachment / resource slice.
    struct Fixed {
        nodes: HashMap<String, NodeRefs>,
        attached: Vec<(Vertex, &'static str, &'static str)>,
    }

    impl Relations for Fixed {
        fn has_path(&self, node: &str, v: Vertex, ns: &str, name: &str) -> bool {
            match v {
                Vertex::VolumeAttachment | Vertex::ResourceSlice => {
                    ns.is_empty()
                        && self
                            .attached
                            .iter()
                            .any(|(k, n, nd)| *k == v && *n == name && *nd == node)
                }
                _ => self.nodes.get(node).is_some_and(|n| n.has(v, ns, name)),
            }
        }
    }

    fn cluster() -> Fixed {
        let pods: Vec<PodRefs> = [
            json!({"metadata": {"name": "pa", "namespace": "ns"}, "spec": {"nodeName": "node-a",
                "serviceAccountName": "sa-a",
                "volumes": [{"name": "v", "secret": {"secretName": "sec-a"}},
                            {"name": "c", "configMap": {"name": "cm-a"}},
                            {"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
                "resourceClaims": [{"name": "gpu", "resourceClaimName": "gpu-a"}]}}),
            json!({"metadata": {"name": "pb", "namespace": "ns"}, "spec": {"nodeName": "node-b",
                "volumes": [{"name": "v", "secret": {"secretName": "sec-b"}}]}}),
            json!({"metadata": {"name": "mirror", "namespace": "ns",
                "annotations": {MIRROR_POD_ANNOTATION: "x"}}, "spec": {"nodeName": "node-a",
                "volumes": [{"name": "v", "secret": {"secretName": "sec-b"}}]}}),
            json!({"metadata": {"name": "pending", "namespace": "ns"}, "spec": {
                "volumes": [{"name": "v", "secret": {"secretName": "sec-p"}}]}}),
        ]
        .iter()
        .map(|p| pod_refs(p.as_object().unwrap()))
        .collect();
        let pvs: Vec<PvRefs> = [
            json!({"metadata": {"name": "pv-data"}, "spec": {"claimRef": {"namespace": "ns", "name": "data"},
                "csi": {"driver": "d", "nodePublishSecretRef": {"namespace": "ns", "name": "pv-secret"},
                        "controllerPublishSecretRef": {"namespace": "ns", "name": "ctl-secret"}}}}),
            json!({"metadata": {"name": "pv-other"}, "spec": {"claimRef": {"namespace": "ns", "name": "other"}}}),
        ]
        .iter()
        .map(|p| pv_refs(p.as_object().unwrap()))
        .collect();
        Fixed {
            nodes: relate(pods.iter(), pvs.iter()),
            attached: vec![
                (Vertex::VolumeAttachment, "va-a", "node-a"),
                (Vertex::ResourceSlice, "slice-a", "node-a"),
            ],
        }
    }

    fn req(verb: &str, group: &str, res: &str, sub: &str, ns: &str, name: &str) -> Attributes {
        Attributes {
            user: UserInfo::new("system:node:node-a", &[NODES_GROUP]),
            verb: verb.into(),
            resource_request: true,
            api_group: group.into(),
            resource: res.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    fn check(g: &Fixed, a: &Attributes) -> (Decision, String) {
        decide(a, g, &node_rules())
    }

    fn allowed(g: &Fixed, a: &Attributes) -> bool {
        check(g, a).0 == Decision::Allow
    }

    const NO_REL: &str = "no relationship found between node 'node-a' and this object";

    #[test]
    fn identity() {
        let g = cluster();
        let u = UserInfo::new("system:node:n1", &[NODES_GROUP]);
        assert_eq!(node_name(&u), Some("n1"));
        assert_eq!(node_name(&UserInfo::new("system:node:n1", &[])), None);
        let mut a = req("get", "", "nodes", "", "", "node-a");
        a.user = UserInfo::new("bob", &[NODES_GROUP]);
        assert_eq!(check(&g, &a), no(""));
        a.user = UserInfo::new("system:node:node-a", &[]);
        assert_eq!(check(&g, &a), no(""));
        a.user = UserInfo::new("system:node:", &[NODES_GROUP]);
        assert_eq!(check(&g, &a), no("unknown node for user \"system:node:\""));
    }

    #[test]
    fn nodes_writes_are_left_to_admission() {
        let g = cluster();
        for verb in ["create", "update", "patch"] {
            for name in ["node-a", "node-b", ""] {
                assert!(
                    allowed(&g, &req(verb, "", "nodes", "", "", name)),
                    "{verb} {name}"
                );
            }
        }
        for verb in ["update", "patch"] {
            assert!(allowed(&g, &req(verb, "", "nodes", "status", "", "node-b")));
        }
        assert!(allowed(&g, &req("get", "", "nodes", "", "", "node-a")));
        assert_eq!(
            check(&g, &req("get", "", "nodes", "", "", "node-b")),
            no("node 'node-a' cannot read 'node-b', only its own Node object")
        );
        assert_eq!(
            check(&g, &req("list", "", "nodes", "", "", "")),
            no("node 'node-a' cannot read all nodes, only its own Node object")
        );
        assert!(allowed(&g, &req("watch", "", "nodes", "", "", "node-a")));
        // Not in kube's switch: no opinion and no reason, whatever the static rules say.
        for (verb, sub) in [
            ("delete", ""),
            ("deletecollection", ""),
            ("get", "status"),
            ("create", "status"),
            ("get", "proxy"),
        ] {
            assert_eq!(
                check(&g, &req(verb, "", "nodes", sub, "", "node-a")),
                no(""),
                "{verb} {sub}"
            );
        }
    }

    #[test]
    fn pods() {
        let g = cluster();
        assert!(allowed(&g, &req("get", "", "pods", "", "ns", "pa")));
        assert!(allowed(&g, &req("get", "", "pods", "", "ns", "mirror")));
        assert_eq!(
            check(&g, &req("get", "", "pods", "", "ns", "pb")),
            no(NO_REL)
        );
        assert_eq!(
            check(&g, &req("get", "", "pods", "", "other", "pa")),
            no(NO_REL)
        );
        let mut list = req("list", "", "pods", "", "", "");
        assert_eq!(
            check(&g, &list),
            no("can only list/watch pods with spec.nodeName field selector")
        );
        list.field_selector = Some("spec.nodeName=node-a".into());
        assert!(allowed(&g, &list));
        list.field_selector = Some("spec.nodeName=node-b".into());
        assert!(!allowed(&g, &list));
        let mut one = req("watch", "", "pods", "", "ns", "pa");
        one.field_selector = Some("metadata.name=pa".into());
        assert!(allowed(&g, &one));
        one.name = "pb".into();
        assert_eq!(check(&g, &one), no(NO_REL));
        // Writes NodeRestriction limits to the node's own pods.
        for (verb, sub, name) in [
            ("create", "", ""),
            ("delete", "", "pb"),
            ("update", "status", "pb"),
            ("patch", "status", "pb"),
            ("create", "eviction", "pb"),
        ] {
            assert!(
                allowed(&g, &req(verb, "", "pods", sub, "ns", name)),
                "{verb} {sub}"
            );
        }
        for (verb, sub) in [
            ("update", ""),
            ("patch", ""),
            ("deletecollection", ""),
            ("get", "status"),
            ("get", "log"),
            ("create", "exec"),
            ("create", "binding"),
        ] {
            assert_eq!(
                check(&g, &req(verb, "", "pods", sub, "ns", "pa")),
                no(""),
                "{verb} {sub}"
            );
        }
    }

    #[test]
    fn secrets_and_configmaps() {
        let g = cluster();
        assert!(allowed(&g, &req("get", "", "secrets", "", "ns", "sec-a")));
        // Through pod -> pvc -> pv -> secret, kubelet-visible refs only.
        assert!(allowed(
            &g,
            &req("get", "", "secrets", "", "ns", "pv-secret")
        ));
        assert_eq!(
            check(&g, &req("get", "", "secrets", "", "ns", "ctl-secret")),
            no(NO_REL)
        );
        // Another node's pod, a mirror pod's reference and an unbound pod's grant nothing.
        assert_eq!(
            check(&g, &req("get", "", "secrets", "", "ns", "sec-b")),
            no(NO_REL)
        );
        assert_eq!(
            check(&g, &req("get", "", "secrets", "", "ns", "sec-p")),
            no(NO_REL)
        );
        assert!(allowed(&g, &req("watch", "", "secrets", "", "ns", "sec-a")));
        assert_eq!(
            check(&g, &req("list", "", "secrets", "", "ns", "")),
            no("No Object name found")
        );
        assert_eq!(
            check(&g, &req("update", "", "secrets", "", "ns", "sec-a")),
            no("can only read resources of this type")
        );
        assert_eq!(
            check(&g, &req("get", "", "secrets", "x", "ns", "sec-a")),
            no("cannot read subresource")
        );
        assert_eq!(
            check(&g, &req("list", "", "secrets", "", "", "")),
            no("can only read namespaced object of this type")
        );
        assert!(allowed(&g, &req("get", "", "configmaps", "", "ns", "cm-a")));
        assert_eq!(
            check(&g, &req("get", "", "configmaps", "", "ns", "cm-b")),
            no(NO_REL)
        );
    }

    #[test]
    fn volumes_claims_and_tokens() {
        let g = cluster();
        let pvc = |verb: &str, sub: &str, name: &str| {
            check(
                &g,
                &req(verb, "", "persistentvolumeclaims", sub, "ns", name),
            )
        };
        assert_eq!(pvc("get", "", "data"), allow());
        assert_eq!(pvc("get", "", "other"), no(NO_REL));
        assert_eq!(
            pvc("list", "", ""),
            no("can only get individual resources of this type")
        );
        assert_eq!(pvc("update", "status", "data"), allow());
        assert_eq!(pvc("patch", "status", "other"), no(NO_REL));
        assert_eq!(
            pvc("get", "status", "data"),
            no("can only get/update/patch this type")
        );
        let pv = |verb: &str, sub: &str, name: &str| {
            check(&g, &req(verb, "", "persistentvolumes", sub, "", name))
        };
        assert_eq!(pv("get", "", "pv-data"), allow());
        assert_eq!(pv("get", "", "pv-other"), no(NO_REL));
        assert_eq!(pv("get", "status", "pv-data"), no("cannot get subresource"));
        assert_eq!(
            pv("update", "", "pv-data"),
            no("can only get individual resources of this type")
        );
        let claim = |name: &str| {
            check(
                &g,
                &req("get", "resource.k8s.io", "resourceclaims", "", "ns", name),
            )
        };
        assert_eq!(claim("gpu-a"), allow());
        assert_eq!(claim("gpu-b"), no(NO_REL));
        let va = |verb: &str, name: &str| {
            check(
                &g,
                &req(verb, "storage.k8s.io", "volumeattachments", "", "", name),
            )
        };
        assert_eq!(va("get", "va-a"), allow());
        assert_eq!(va("get", "va-b"), no(NO_REL));
        assert_eq!(
            va("list", ""),
            no("can only get individual resources of this type")
        );
        let sa = |verb: &str, sub: &str, name: &str| {
            check(&g, &req(verb, "", "serviceaccounts", sub, "ns", name))
        };
        assert_eq!(sa("create", "token", "sa-a"), allow());
        assert_eq!(sa("create", "token", "default"), no(NO_REL));
        assert_eq!(
            sa("get", "", "sa-a"),
            no("can only create tokens for individual service accounts")
        );
        assert_eq!(
            sa("create", "", ""),
            no("can only create tokens for individual service accounts")
        );
        assert_eq!(
            sa("create", "other", "sa-a"),
            no("can only create token subresource of serviceaccount")
        );
    }

    #[test]
    fn leases_csinodes_and_slices() {
        let g = cluster();
        let lease = |verb: &str, ns: &str, name: &str| {
            check(
                &g,
                &req(verb, "coordination.k8s.io", "leases", "", ns, name),
            )
        };
        assert_eq!(lease("get", "kube-node-lease", "node-a"), allow());
        assert_eq!(lease("create", "kube-node-lease", ""), allow());
        assert_eq!(
            lease("update", "kube-node-lease", "node-b"),
            no("can only access node lease with the same name as the requesting node")
        );
        assert_eq!(
            lease("get", "default", "node-a"),
            no("can only access leases in the \"kube-node-lease\" system namespace")
        );
        assert_eq!(
            lease("list", "kube-node-lease", ""),
            no("can only get, create, update, patch, or delete a node lease")
        );
        let csi = |verb: &str, sub: &str, name: &str| {
            check(&g, &req(verb, "storage.k8s.io", "csinodes", sub, "", name))
        };
        assert_eq!(csi("create", "", ""), allow());
        assert_eq!(csi("patch", "", "node-a"), allow());
        assert_eq!(
            csi("get", "", "node-b"),
            no("can only access CSINode with the same name as the requesting node")
        );
        assert_eq!(
            csi("get", "status", "node-a"),
            no("cannot authorize CSINode subresources")
        );
        assert_eq!(
            csi("watch", "", "node-a"),
            no("can only get, create, update, patch, or delete a CSINode")
        );
        let slice = |verb: &str, name: &str, fs: Option<&str>| {
            let mut a = req(verb, "resource.k8s.io", "resourceslices", "", "", name);
            a.field_selector = fs.map(str::to_string);
            check(&g, &a)
        };
        assert_eq!(slice("create", "", None), allow());
        assert_eq!(slice("delete", "slice-a", None), allow());
        assert_eq!(slice("update", "slice-b", None), no(NO_REL));
        assert_eq!(slice("list", "", Some("spec.nodeName=node-a")), allow());
        assert_eq!(
            slice("deletecollection", "", None),
            no("can only list/watch/deletecollection resourceslices with nodeName field selector")
        );
    }

    #[test]
    fn static_rules_for_the_rest() {
        let g = cluster();
        assert!(allowed(&g, &req("create", "", "events", "", "ns", "")));
        assert!(allowed(&g, &req("list", "", "services", "", "", "")));
        assert!(allowed(&g, &req("get", "", "endpoints", "", "ns", "e")));
        assert!(allowed(
            &g,
            &req(
                "create",
                "certificates.k8s.io",
                "certificatesigningrequests",
                "",
                "",
                ""
            )
        ));
        assert_eq!(
            check(&g, &req("list", "", "namespaces", "", "", "")),
            no("")
        );
        assert_eq!(
            check(&g, &req("delete", "", "services", "", "ns", "s")),
            no("")
        );
        let non_resource = Attributes {
            user: UserInfo::new("system:node:node-a", &[NODES_GROUP]),
            verb: "get".into(),
            path: "/healthz".into(),
            ..Default::default()
        };
        assert_eq!(check(&g, &non_resource), no(""));
    }
}
