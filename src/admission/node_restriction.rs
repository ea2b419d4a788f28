//! `NodeRestriction` (`plugin/pkg/admission/noderestriction`): a kubelet (user
//! `system:node:<name>` in group `system:nodes`) may only modify its own Node (not its taints,
//! its config source or restricted labels), create and delete mirror pods bound to itself,
//! update the status of and evict pods bound to itself, update PVC status, request tokens bound
//! to its own pods, and use its own Lease and CSINode.

use super::pod::{annotation, get};
use super::service_account::{pod_secret_names, MIRROR_POD_ANNOTATION};
use super::{forbidden, Attributes, Lookup, MutatingPlugin, Operation};
use crate::api::catalogue;
use crate::api::status::ApiError;
use async_trait::async_trait;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

pub const NODE_USER_PREFIX: &str = "system:node:";
pub const NODES_GROUP: &str = "system:nodes";
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

pub struct NodeRestriction;

/// `nodeidentifier.NodeIdentity`: `(name, true)` for a node user.
pub fn node_identity(attrs: &Attributes) -> Option<String> {
    let name = attrs.user.username.strip_prefix(NODE_USER_PREFIX)?;
    attrs.user.in_group(NODES_GROUP).then(|| name.to_string())
}

fn labels(obj: Option<&Map<String, Value>>) -> Map<String, Value> {
    obj.map(super::pod::labels).unwrap_or_default()
}

fn label_namespace(key: &str) -> &str {
    key.split_once('/').map(|(ns, _)| ns).unwrap_or("")
}

const KUBELET_LABELS: &[&str] = &[
    "kubernetes.io/hostname",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
];

fn is_kubelet_label(key: &str) -> bool {
    if KUBELET_LABELS.contains(&key) {
        return true;
    }
    let ns = label_namespace(key);
    ["kubelet.kubernetes.io", "node.kubernetes.io"]
        .iter()
        .any(|a| ns == *a || ns.ends_with(&format!(".{a}")))
}

fn is_kubernetes_label(key: &str) -> bool {
    let ns = label_namespace(key);
    ns == "kubernetes.io"
        || ns.ends_with(".kubernetes.io")
        || ns == "k8s.io"
        || ns.ends_with(".k8s.io")
}

/// Label keys a node may not add, change or remove.
fn forbidden_labels(new: &Map<String, Value>, old: &Map<String, Value>) -> Vec<String> {
    let mut modified = BTreeSet::new();
    for (k, v) in new {
        if old.get(k) != Some(v) {
            modified.insert(k.clone());
        }
    }
    for (k, v) in old {
        if new.get(k) != Some(v) {
            modified.insert(k.clone());
        }
    }
    modified
        .into_iter()
        .filter(|k| {
            let ns = label_namespace(k);
            let restricted = ns == "node-restriction.kubernetes.io"
                || ns.ends_with(".node-restriction.kubernetes.io");
            restricted || (is_kubernetes_label(k) && !is_kubelet_label(k))
        })
        .collect()
}

fn spec_field<'a>(obj: Option<&'a Map<String, Value>>, field: &str) -> Option<&'a Value> {
    obj.and_then(|o| o.get("spec"))
        .and_then(|s| s.get(field))
        .filter(|v| !v.is_null())
}

fn str_at<'a>(obj: &'a Map<String, Value>, path: &[&str]) -> &'a str {
    let mut cur: Option<&Value> = obj.get(path[0]);
    for p in &path[1..] {
        cur = cur.and_then(|v| v.get(*p));
    }
    cur.and_then(Value::as_str).unwrap_or("")
}

impl NodeRestriction {
    async fn existing_pod(
        &self,
        lookup: &dyn Lookup,
        attrs: &Attributes,
        name: &str,
    ) -> Result<Map<String, Value>, ApiError> {
        let pods = catalogue::lookup("", "v1", "pods").expect("pods are served");
        match lookup.get(pods, Some(&attrs.namespace), name).await {
            Ok(Some(p)) => Ok(p.object),
            Ok(None) => Err(ApiError::not_found(pods, name)),
            Err(e) => Err(forbidden(attrs, e.message)),
        }
    }

    async fn admit_pod_create(
        &self,
        lookup: &dyn Lookup,
        node: &str,
        attrs: &Attributes,
    ) -> Result<(), ApiError> {
        let Some(pod) = attrs.object.as_ref() else {
            return Err(forbidden(attrs, "unexpected type <nil>"));
        };
        if annotation(pod, MIRROR_POD_ANNOTATION).is_none() {
            return Err(forbidden(attrs, format!(
                "pod does not have \"{MIRROR_POD_ANNOTATION}\" annotation, node \"{node}\" can only create mirror pods"
            )));
        }
        if str_at(pod, &["spec", "nodeName"]) != node {
            return Err(forbidden(
                attrs,
                format!("node \"{node}\" can only create pods with spec.nodeName set to itself"),
            ));
        }
        let owners: Vec<Value> = pod
            .get("metadata")
            .and_then(|m| m.get("ownerReferences"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if owners.len() > 1 {
            return Err(forbidden(
                attrs,
                format!(
                "node \"{node}\" can only create pods with a single owner reference set to itself"
            ),
            ));
        }
        let Some(owner) = owners.first() else {
            return Err(forbidden(
                attrs,
                format!(
                    "node \"{node}\" can only create pods with an owner reference set to itself"
                ),
            ));
        };
        let s = |k: &str| owner.get(k).and_then(Value::as_str).unwrap_or("");
        if s("apiVersion") != "v1" || s("kind") != "Node" || s("name") != node {
            return Err(forbidden(
                attrs,
                format!(
                    "node \"{node}\" can only create pods with an owner reference set to itself"
                ),
            ));
        }
        if owner.get("controller").and_then(Value::as_bool) != Some(true) {
            return Err(forbidden(attrs, format!(
                "node \"{node}\" can only create pods with a controller owner reference set to itself"
            )));
        }
        if owner.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true) {
            return Err(forbidden(
                attrs,
                format!("node \"{node}\" must not set blockOwnerDeletion on an owner reference"),
            ));
        }
        let nodes = catalogue::lookup("", "v1", "nodes").expect("nodes are served");
        let node_obj = match lookup.get(nodes, None, node).await {
            Ok(Some(n)) => n.object,
            Ok(None) => return Err(ApiError::not_found(nodes, node)),
            Err(e) => {
                return Err(forbidden(
                    attrs,
                    format!("error looking up node {node} to verify uid: {}", e.message),
                ))
            }
        };
        let node_uid = str_at(&node_obj, &["metadata", "uid"]);
        if s("uid") != node_uid {
            return Err(forbidden(
                attrs,
                format!(
                    "node {node} UID mismatch: expected {} got {node_uid}",
                    s("uid")
                ),
            ));
        }
        let spec = pod.get("spec").cloned().unwrap_or_default();
        if !str_at(pod, &["spec", "serviceAccountName"]).is_empty() {
            return Err(forbidden(
                attrs,
                format!("node \"{node}\" can not create pods that reference a service account"),
            ));
        }
        if !pod_secret_names(&spec).is_empty() {
            return Err(forbidden(
                attrs,
                format!("node \"{node}\" can not create pods that reference secrets"),
            ));
        }
        if references_configmaps(&spec) {
            return Err(forbidden(
                attrs,
                format!("node \"{node}\" can not create pods that reference configmaps"),
            ));
        }
        for v in spec
            .get("volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let ctb = get(v, &["projected", "sources"])
                .and_then(Value::as_array)
                .is_some_and(|s| s.iter().any(|x| x.get("clusterTrustBundle").is_some()));
            if ctb {
                return Err(forbidden(
                    attrs,
                    format!(
                        "node \"{node}\" can not create pods that reference clustertrustbundles"
                    ),
                ));
            }
        }
        if spec
            .get("volumes")
            .and_then(Value::as_array)
            .is_some_and(|vs| vs.iter().any(|v| v.get("persistentVolumeClaim").is_some()))
        {
            return Err(forbidden(
                attrs,
                format!(
                    "node \"{node}\" can not create pods that reference persistentvolumeclaims"
                ),
            ));
        }
        Ok(())
    }

    async fn admit_pod(
        &self,
        lookup: &dyn Lookup,
        node: &str,
        attrs: &Attributes,
    ) -> Result<(), ApiError> {
        match attrs.operation {
            Operation::Create => self.admit_pod_create(lookup, node, attrs).await,
            Operation::Delete => {
                let pod = self.existing_pod(lookup, attrs, &attrs.name).await?;
                if str_at(&pod, &["spec", "nodeName"]) != node {
                    return Err(forbidden(attrs, format!(
                        "node \"{node}\" can only delete pods with spec.nodeName set to itself"
                    )));
                }
                Ok(())
            }
            op => Err(forbidden(attrs, format!(
                "unexpected operation \"{op}\", node \"{node}\" can only create and delete mirror pods"
            ))),
        }
    }

    fn admit_pod_status(&self, node: &str, attrs: &Attributes) -> Result<(), ApiError> {
        if attrs.operation != Operation::Update {
            return Err(forbidden(
                attrs,
                format!("unexpected operation \"{}\"", attrs.operation),
            ));
        }
        let Some(old) = attrs.old_object.as_ref() else {
            return Err(forbidden(attrs, "unexpected type <nil>"));
        };
        if str_at(old, &["spec", "nodeName"]) != node {
            return Err(forbidden(attrs, format!(
                "node \"{node}\" can only update pod status for pods with spec.nodeName set to itself"
            )));
        }
        if labels(attrs.object.as_ref()) != labels(Some(old)) {
            return Err(forbidden(
                attrs,
                format!("node \"{node}\" cannot update labels through pod status"),
            ));
        }
        let claims = |o: Option<&Map<String, Value>>| {
            o.and_then(|o| o.get("status"))
                .and_then(|s| s.get("resourceClaimStatuses"))
                .cloned()
                .unwrap_or(Value::Null)
        };
        if claims(attrs.object.as_ref()) != claims(Some(old)) {
            return Err(forbidden(
                attrs,
                format!("node \"{node}\" cannot update resource claim statues"),
            ));
        }
        Ok(())
    }

    async fn admit_pod_eviction(
        &self,
        lookup: &dyn Lookup,
        node: &str,
        attrs: &Attributes,
    ) -> Result<(), ApiError> {
        if attrs.operation != Operation::Create {
            return Err(forbidden(
                attrs,
                format!("unexpected operation {}", attrs.operation),
            ));
        }
        let mut pod_name = attrs.name.clone();
        if pod_name.is_empty() {
            pod_name = attrs
                .object
                .as_ref()
                .map(|o| str_at(o, &["metadata", "name"]).to_string())
                .unwrap_or_default();
            if pod_name.is_empty() {
                return Err(forbidden(
                    attrs,
                    "could not determine pod from request data",
                ));
            }
        }
        let pod = self.existing_pod(lookup, attrs, &pod_name).await?;
        if str_at(&pod, &["spec", "nodeName"]) != node {
            return Err(forbidden(
                attrs,
                format!("node {node} can only evict pods with spec.nodeName set to itself"),
            ));
        }
        Ok(())
    }

    fn admit_pvc_status(&self, node: &str, attrs: &Attributes) -> Result<(), ApiError> {
        if attrs.operation != Operation::Update {
            return Err(forbidden(
                attrs,
                format!("unexpected operation \"{}\"", attrs.operation),
            ));
        }
        let strip = |o: Option<&Map<String, Value>>| -> Value {
            let mut o = o.cloned().unwrap_or_default();
            if let Some(Value::Object(m)) = o.get_mut("metadata") {
                m.remove("resourceVersion");
                m.remove("managedFields");
            }
            if let Some(Value::Object(s)) = o.get_mut("status") {
                for k in [
                    "capacity",
                    "conditions",
                    "allocatedResourceStatuses",
                    "allocatedResources",
                ] {
                    s.remove(k);
                }
                if s.is_empty() {
                    o.remove("status");
                }
            }
            Value::Object(o)
        };
        let (old, new) = (
            strip(attrs.old_object.as_ref()),
            strip(attrs.object.as_ref()),
        );
        if old != new {
            return Err(forbidden(attrs, format!(
                "node \"{node}\" is not allowed to update fields other than status.capacity and status.conditions: {}",
                diff(&old, &new)
            )));
        }
        Ok(())
    }

    fn admit_node(&self, node: &str, attrs: &Attributes) -> Result<(), ApiError> {
        if attrs.name != node {
            return Err(forbidden(
                attrs,
                format!(
                    "node \"{node}\" is not allowed to modify node \"{}\"",
                    attrs.name
                ),
            ));
        }
        let new = attrs.object.as_ref();
        match attrs.operation {
            Operation::Create => {
                if spec_field(new, "configSource").is_some() {
                    return Err(forbidden(
                        attrs,
                        format!(
                        "node \"{node}\" is not allowed to create pods with a non-nil configSource"
                    ),
                    ));
                }
                let bad = forbidden_labels(&labels(new), &Map::new());
                if !bad.is_empty() {
                    return Err(forbidden(
                        attrs,
                        format!(
                            "node \"{node}\" is not allowed to set the following labels: {}",
                            bad.join(", ")
                        ),
                    ));
                }
            }
            Operation::Update => {
                let old = attrs.old_object.as_ref();
                if let Some(cs) = spec_field(new, "configSource") {
                    if Some(cs) != spec_field(old, "configSource") {
                        return Err(forbidden(attrs, format!(
                            "node \"{node}\" is not allowed to update configSource to a new non-nil configSource"
                        )));
                    }
                }
                let taints = |o| {
                    spec_field(o, "taints")
                        .cloned()
                        .filter(|t| t.as_array().is_none_or(|a| !a.is_empty()))
                };
                if taints(new) != taints(old) {
                    return Err(forbidden(
                        attrs,
                        format!("node \"{node}\" is not allowed to modify taints"),
                    ));
                }
                let bad = forbidden_labels(&labels(new), &labels(old));
                if !bad.is_empty() {
                    return Err(forbidden(
                        attrs,
                        format!("is not allowed to modify labels: {}", bad.join(", ")),
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn admit_token_request(
        &self,
        lookup: &dyn Lookup,
        node: &str,
        attrs: &Attributes,
    ) -> Result<(), ApiError> {
        if attrs.operation != Operation::Create || attrs.subresource != "token" {
            return Ok(());
        }
        let tr = Value::Object(attrs.object.clone().unwrap_or_default());
        let r = |k: &str| {
            get(&tr, &["spec", "boundObjectRef", k])
                .and_then(Value::as_str)
                .unwrap_or("")
        };
        if get(&tr, &["spec", "boundObjectRef"]).is_none_or(Value::is_null)
            || r("apiVersion") != "v1"
            || r("kind") != "Pod"
            || r("name").is_empty()
        {
            return Err(forbidden(attrs, "node requested token not bound to a pod"));
        }
        if r("uid").is_empty() {
            return Err(forbidden(
                attrs,
                "node requested token with a pod binding without a uid",
            ));
        }
        let pod = self.existing_pod(lookup, attrs, r("name")).await?;
        if str_at(&pod, &["metadata", "uid"]) != r("uid") {
            return Err(forbidden(attrs, format!(
                "the UID in the bound object reference ({}) does not match the UID in record. The object might have been deleted and then recreated",
                r("uid")
            )));
        }
        if str_at(&pod, &["spec", "nodeName"]) != node {
            return Err(forbidden(
                attrs,
                "node requested token bound to a pod scheduled on a different node",
            ));
        }
        Ok(())
    }

    fn admit_named(&self, node: &str, attrs: &Attributes, what: &str) -> Result<(), ApiError> {
        let name = if attrs.operation == Operation::Create {
            attrs
                .object
                .as_ref()
                .map(|o| str_at(o, &["metadata", "name"]).to_string())
                .unwrap_or_default()
        } else {
            attrs.name.clone()
        };
        if name != node {
            return Err(forbidden(
                attrs,
                format!("can only access {what} with the same name as the requesting node"),
            ));
        }
        Ok(())
    }
}

/// `podutil.VisitPodConfigmapNames` found something.
fn references_configmaps(spec: &Value) -> bool {
    for c in super::pod::all_containers(spec) {
        for e in c
            .get("envFrom")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if get(e, &["configMapRef", "name"]).is_some() {
                return true;
            }
        }
        for e in c.get("env").and_then(Value::as_array).into_iter().flatten() {
            if get(e, &["valueFrom", "configMapKeyRef", "name"]).is_some() {
                return true;
            }
        }
    }
    for v in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if v.get("configMap").is_some() {
            return true;
        }
        let projected = get(v, &["projected", "sources"])
            .and_then(Value::as_array)
            .is_some_and(|s| s.iter().any(|x| x.get("configMap").is_some()));
        if projected {
            return true;
        }
    }
    false
}

/// A short description of what changed between two JSON values (paths with old → new).
fn diff(old: &Value, new: &Value) -> String {
    fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(
                        &p,
                        x.get(k).unwrap_or(&Value::Null),
                        y.get(k).unwrap_or(&Value::Null),
                        out,
                    );
                }
            }
            _ if a != b => out.push(format!("{path}: {a} -> {b}")),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", old, new, &mut out);
    out.join("; ")
}

#[async_trait]
impl MutatingPlugin for NodeRestriction {
    fn name(&self) -> &'static str {
        "NodeRestriction"
    }

    async fn admit(
        &self,
        lookup: &dyn Lookup,
        attrs: &mut Attributes,
        _warnings: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        if attrs.operation == Operation::Connect {
            return Ok(());
        }
        let Some(node) = node_identity(attrs) else {
            return Ok(());
        };
        if node.is_empty() {
            return Err(forbidden(
                attrs,
                format!(
                    "could not determine node from user \"{}\"",
                    attrs.user.username
                ),
            ));
        }
        let attrs: &Attributes = attrs;
        match (attrs.resource.group, attrs.resource.plural) {
            ("", "pods") => match attrs.subresource.as_str() {
                "" => self.admit_pod(lookup, &node, attrs).await,
                "status" => self.admit_pod_status(&node, attrs),
                "eviction" => self.admit_pod_eviction(lookup, &node, attrs).await,
                other => Err(forbidden(attrs, format!(
                    "unexpected pod subresource \"{other}\", only 'status' and 'eviction' are allowed"
                ))),
            },
            ("", "nodes") => self.admit_node(&node, attrs),
            ("", "persistentvolumeclaims") => match attrs.subresource.as_str() {
                "status" => self.admit_pvc_status(&node, attrs),
                _ => Err(forbidden(attrs, "may only update PVC status")),
            },
            ("", "serviceaccounts") => self.admit_token_request(lookup, &node, attrs).await,
            ("coordination.k8s.io", "leases") => {
                if attrs.namespace != NODE_LEASE_NAMESPACE {
                    return Err(forbidden(attrs, format!(
                        "can only access leases in the \"{NODE_LEASE_NAMESPACE}\" system namespace"
                    )));
                }
                self.admit_named(&node, attrs, "node lease")
            }
            ("storage.k8s.io", "csinodes") => self.admit_named(&node, attrs, "CSINode"),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::lookup::MemoryLookup;
    use crate::admission::AdmissionUser;
    use serde_json::json;

    fn kubelet(name: &str) -> AdmissionUser {
        AdmissionUser::new(
            format!("system:node:{name}"),
            &["system:nodes", "system:authenticated"],
        )
    }

    fn res(g: &str, p: &str) -> &'static crate::api::catalogue::ResourceInfo {
        catalogue::lookup(g, "v1", p).unwrap()
    }

    async fn run(l: &MemoryLookup, mut a: Attributes) -> Result<(), ApiError> {
        NodeRestriction.admit(l, &mut a, &mut Vec::new()).await
    }

    fn setup() -> MemoryLookup {
        let l = MemoryLookup::new();
        l.put(
            res("", "nodes"),
            json!({"metadata": {"name": "n1", "uid": "node-uid"}}),
        );
        l.put(
            res("", "pods"),
            json!({"metadata": {"name": "mine", "namespace": "ns"}, "spec": {"nodeName": "n1"}}),
        );
        l.put(
            res("", "pods"),
            json!({"metadata": {"name": "theirs", "namespace": "ns"}, "spec": {"nodeName": "n2"}}),
        );
        l
    }

    #[tokio::test]
    async fn nodes_may_only_modify_themselves() {
        let l = setup();
        let node = |name: &str, op| {
            Attributes::new(op, res("", "nodes"), None, name, kubelet("n1"))
                .with_object(
                    json!({"metadata": {"name": name}})
                        .as_object()
                        .unwrap()
                        .clone(),
                )
                .with_old_object(
                    json!({"metadata": {"name": name}})
                        .as_object()
                        .unwrap()
                        .clone(),
                )
        };
        run(&l, node("n1", Operation::Update)).await.unwrap();
        let e = run(&l, node("n2", Operation::Update)).await.unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "nodes \"n2\" is forbidden: node \"n1\" is not allowed to modify node \"n2\""
        );
        // Others are not restricted.
        let mut a = node("n2", Operation::Update);
        a.user = AdmissionUser::new("admin", &["system:masters"]);
        run(&l, a).await.unwrap();
        // Taints and restricted labels.
        let a = node("n1", Operation::Update).with_object(
            json!({"metadata": {"name": "n1"}, "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}}).as_object().unwrap().clone());
        let e = run(&l, a).await.unwrap_err();
        assert_eq!(
            e.message,
            "nodes \"n1\" is forbidden: node \"n1\" is not allowed to modify taints"
        );
        let a = node("n1", Operation::Create).with_object(
            json!({"metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/master": "", "kubernetes.io/hostname": "n1",
                "node-restriction.kubernetes.io/x": "y"}}}).as_object().unwrap().clone());
        let e = run(&l, a).await.unwrap_err();
        assert_eq!(
            e.message,
            "nodes \"n1\" is forbidden: node \"n1\" is not allowed to set the following labels: node-restriction.kubernetes.io/x, node-role.kubernetes.io/master"
        );
    }

    #[tokio::test]
    async fn pods_bound_to_the_node() {
        let l = setup();
        let pods = res("", "pods");
        let status = |name: &str, node: &str| {
            Attributes::new(Operation::Update, pods, Some("ns"), name, kubelet("n1"))
            .with_subresource(Some("status"))
            .with_old_object(json!({"metadata": {"name": name}, "spec": {"nodeName": node}}).as_object().unwrap().clone())
            .with_object(json!({"metadata": {"name": name}, "spec": {"nodeName": node}, "status": {"phase": "Running"}}).as_object().unwrap().clone())
        };
        run(&l, status("mine", "n1")).await.unwrap();
        let e = run(&l, status("theirs", "n2")).await.unwrap_err();
        assert_eq!(
            e.message,
            "pods \"theirs\" is forbidden: node \"n1\" can only update pod status for pods with spec.nodeName set to itself"
        );
        let del =
            |name: &str| Attributes::new(Operation::Delete, pods, Some("ns"), name, kubelet("n1"));
        run(&l, del("mine")).await.unwrap();
        let e = run(&l, del("theirs")).await.unwrap_err();
        assert_eq!(e.message, "pods \"theirs\" is forbidden: node \"n1\" can only delete pods with spec.nodeName set to itself");
        let e = run(&l, del("ghost")).await.unwrap_err();
        assert_eq!(e.code, 404);
        // Plain updates of pods are refused.
        let e = run(
            &l,
            Attributes::new(Operation::Update, pods, Some("ns"), "mine", kubelet("n1")),
        )
        .await
        .unwrap_err();
        assert_eq!(
            e.message,
            "pods \"mine\" is forbidden: unexpected operation \"UPDATE\", node \"n1\" can only create and delete mirror pods"
        );
    }

    #[tokio::test]
    async fn mirror_pod_creation() {
        let l = setup();
        let pods = res("", "pods");
        let create = |pod: Value| {
            Attributes::new(Operation::Create, pods, Some("ns"), "m", kubelet("n1"))
                .with_object(pod.as_object().unwrap().clone())
        };
        let owner = json!([{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "node-uid", "controller": true}]);
        let good = json!({"metadata": {"name": "m", "annotations": {MIRROR_POD_ANNOTATION: "h"}, "ownerReferences": owner},
            "spec": {"nodeName": "n1", "containers": [{"name": "c"}]}});
        run(&l, create(good.clone())).await.unwrap();
        let e = run(
            &l,
            create(json!({"metadata": {"name": "m"}, "spec": {"nodeName": "n1"}})),
        )
        .await
        .unwrap_err();
        assert_eq!(
            e.message,
            "pods \"m\" is forbidden: pod does not have \"kubernetes.io/config.mirror\" annotation, node \"n1\" can only create mirror pods"
        );
        let mut other = good.clone();
        other["spec"]["nodeName"] = json!("n2");
        let e = run(&l, create(other)).await.unwrap_err();
        assert_eq!(e.message, "pods \"m\" is forbidden: node \"n1\" can only create pods with spec.nodeName set to itself");
        let mut secret = good.clone();
        secret["spec"]["volumes"] = json!([{"name": "s", "secret": {"secretName": "x"}}]);
        let e = run(&l, create(secret)).await.unwrap_err();
        assert_eq!(
            e.message,
            "pods \"m\" is forbidden: node \"n1\" can not create pods that reference secrets"
        );
        let mut uid = good;
        uid["metadata"]["ownerReferences"][0]["uid"] = json!("other");
        let e = run(&l, create(uid)).await.unwrap_err();
        assert_eq!(
            e.message,
            "pods \"m\" is forbidden: node n1 UID mismatch: expected other got node-uid"
        );
    }

    #[tokio::test]
    async fn leases() {
        let l = setup();
        let leases = res("coordination.k8s.io", "leases");
        let a = |ns: &str, name: &str| {
            Attributes::new(Operation::Update, leases, Some(ns), name, kubelet("n1"))
        };
        run(&l, a(NODE_LEASE_NAMESPACE, "n1")).await.unwrap();
        let e = run(&l, a(NODE_LEASE_NAMESPACE, "n2")).await.unwrap_err();
        assert_eq!(
            e.message,
            "leases.coordination.k8s.io \"n2\" is forbidden: can only access node lease with the same name as the requesting node"
        );
        let e = run(&l, a("default", "n1")).await.unwrap_err();
        assert_eq!(
            e.message,
            "leases.coordination.k8s.io \"n1\" is forbidden: can only access leases in the \"kube-node-lease\" system namespace"
        );
    }
}
