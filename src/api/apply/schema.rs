//! The structured-merge-diff view of an OpenAPI schema: every node is a scalar, a list (atomic,
//! set, or map keyed by `x-kubernetes-list-map-keys`), a map/struct (granular or atomic), or
//! "deduced" (untyped: maps are granular, lists atomic, everything else a scalar).
//!
//! Lists without `x-kubernetes-list-type` follow their patch strategy, as kube-openapi's
//! `schemaconv` does: `merge` with a merge key is a map keyed by it, `merge` without one a set,
//! anything else atomic.

use crate::api::catalogue;
use crate::api::openapi;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

use super::fieldpath::{PathElement, Set};

const REF_PREFIX: &str = "#/components/schemas/";

/// A schema node, or the deduced (untyped) type.
#[derive(Clone, Copy)]
pub struct Ty<'s> {
    defs: &'s BTreeMap<String, Value>,
    node: Option<&'s Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalarKind {
    String,
    Numeric,
    Boolean,
    /// int-or-string, quantities, anything scalar.
    Untyped,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListKind<'s> {
    Atomic,
    Set,
    Map(Vec<&'s str>),
}

pub enum Atom<'s> {
    Scalar(ScalarKind),
    List {
        elem: Ty<'s>,
        kind: ListKind<'s>,
    },
    Map {
        /// Declared fields (structs); None for plain maps.
        fields: Option<&'s Map<String, Value>>,
        /// Type of undeclared keys; None when undeclared keys are not allowed.
        elem: Option<Ty<'s>>,
        atomic: bool,
    },
    Deduced,
}

impl<'s> Ty<'s> {
    pub fn new(defs: &'s BTreeMap<String, Value>, node: &'s Value) -> Self {
        Ty {
            defs,
            node: Some(node),
        }
    }

    pub fn deduced(defs: &'s BTreeMap<String, Value>) -> Self {
        Ty { defs, node: None }
    }

    /// The type of a named definition (`io.k8s.api.apps.v1.Deployment`); deduced if unknown.
    pub fn definition(defs: &'s BTreeMap<String, Value>, name: &str) -> Self {
        Ty {
            defs,
            node: defs.get(name),
        }
    }

    fn with(self, node: Option<&'s Value>) -> Self {
        Ty {
            defs: self.defs,
            node,
        }
    }

    /// Follows `$ref`/`allOf` to the describing node; extensions found on the way win over the
    /// definition's own (property-level `x-kubernetes-map-type` overrides the struct's).
    fn chase(self) -> Option<(&'s Value, Vec<&'s Value>)> {
        let mut cur = self.node?;
        let mut chain = vec![cur];
        for _ in 0..16 {
            if let Some(r) = cur.get("$ref").and_then(Value::as_str) {
                let name = r.strip_prefix(REF_PREFIX).unwrap_or(r);
                cur = self.defs.get(name)?;
                chain.push(cur);
                continue;
            }
            match cur.get("allOf").and_then(Value::as_array) {
                Some(all) if all.len() == 1 => {
                    cur = &all[0];
                    chain.push(cur);
                }
                _ => break,
            }
        }
        Some((cur, chain))
    }

    pub fn atom(self) -> Atom<'s> {
        let Some((node, chain)) = self.chase() else {
            return Atom::Deduced;
        };
        let ext = |name: &str| -> Option<&'s Value> { chain.iter().find_map(|n| n.get(name)) };
        let str_ext = |name: &str| ext(name).and_then(Value::as_str);
        if ext("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
            return Atom::Scalar(ScalarKind::Untyped);
        }
        let ty = node.get("type").and_then(Value::as_str);
        match ty {
            Some("array") => {
                let elem = self.with(node.get("items"));
                let kind = match str_ext("x-kubernetes-list-type") {
                    Some("map") => ListKind::Map(
                        ext("x-kubernetes-list-map-keys")
                            .and_then(Value::as_array)
                            .map(|a| a.iter().filter_map(Value::as_str).collect())
                            .unwrap_or_default(),
                    ),
                    Some("set") => ListKind::Set,
                    Some(_) => ListKind::Atomic,
                    None => match str_ext("x-kubernetes-patch-strategy") {
                        Some(s) if s.split(',').any(|p| p == "merge") => {
                            match str_ext("x-kubernetes-patch-merge-key") {
                                Some(k) => ListKind::Map(vec![k]),
                                None => ListKind::Set,
                            }
                        }
                        _ => ListKind::Atomic,
                    },
                };
                // A keyed list without keys degrades to a set (kube-openapi does the same).
                let kind = match kind {
                    ListKind::Map(k) if k.is_empty() => ListKind::Set,
                    k => k,
                };
                Atom::List { elem, kind }
            }
            Some("string") => Atom::Scalar(ScalarKind::String),
            Some("integer") | Some("number") => Atom::Scalar(ScalarKind::Numeric),
            Some("boolean") => Atom::Scalar(ScalarKind::Boolean),
            _ => {
                let props = node.get("properties").and_then(Value::as_object);
                let additional = node.get("additionalProperties");
                let preserve =
                    ext("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
                let atomic = str_ext("x-kubernetes-map-type") == Some("atomic");
                let elem = match additional {
                    Some(Value::Object(_)) => Some(self.with(additional)),
                    Some(Value::Bool(true)) => Some(self.with(None)),
                    _ if preserve => Some(self.with(None)),
                    _ => None,
                };
                if props.is_some() || elem.is_some() {
                    Atom::Map {
                        fields: props,
                        elem,
                        atomic,
                    }
                } else if node.get("oneOf").is_some() || node.get("anyOf").is_some() {
                    Atom::Scalar(ScalarKind::Untyped)
                } else {
                    Atom::Deduced
                }
            }
        }
    }

    /// The type of field `name` of a map/struct type (None: not declared and no element type).
    pub fn field(self, name: &str) -> Option<(Ty<'s>, bool)> {
        match self.atom() {
            Atom::Map { fields, elem, .. } => match fields.and_then(|f| f.get(name)) {
                Some(node) => Some((self.with(Some(node)), true)),
                None => elem.map(|e| (e, false)),
            },
            Atom::Deduced => Some((self.with(None), false)),
            _ => None,
        }
    }

    /// Whether `name` is a declared field of this struct type.
    pub fn declares(self, name: &str) -> bool {
        matches!(self.atom(), Atom::Map { fields: Some(f), .. } if f.contains_key(name))
    }

    /// The default of a list-map key field missing from an item (kube-openapi publishes
    /// `default: "TCP"` for the port protocols).
    pub fn key_default(self, field: &str) -> Option<Value> {
        if let Some((t, true)) = self.field(field) {
            if let Some(d) = t.node.and_then(|n| n.get("default")) {
                return Some(d.clone());
            }
        }
        (field == "protocol").then(|| json!("TCP"))
    }

    /// The schema node (for tests and diagnostics).
    pub fn node(self) -> Option<&'s Value> {
        self.node
    }

    pub fn defs(self) -> &'s BTreeMap<String, Value> {
        self.defs
    }
}

/// What server-side apply and managedFields tracking need to know about an object's type.
#[derive(Clone)]
pub struct Schema {
    /// The kind's definition name (`io.k8s.api.apps.v1.Deployment`); None: deduced.
    pub definition: Option<String>,
    /// `apps/v1`
    pub api_version: String,
    pub kind: String,
    /// `""` for the main resource, else e.g. `status`.
    pub subresource: String,
    /// Fields the endpoint's strategy resets (the status of a main resource that has a /status
    /// subresource; everything but status on /status): nobody owns them through this endpoint.
    pub reset_fields: Set,
}

impl Schema {
    /// The schema of a served kind, with the reset fields of the given endpoint.
    pub fn for_kind(api_version: &str, kind: &str, subresource: &str) -> Schema {
        let (group, version) = split_api_version(api_version);
        let definition = openapi::kind_definition(group, version, kind)
            .filter(|d| openapi::definitions().contains_key(*d))
            .map(str::to_string);
        let res = catalogue::all()
            .iter()
            .find(|r| r.group == group && r.version == version && r.kind == kind);
        let mut reset_fields = Set::new();
        match subresource {
            "" if res.is_some_and(|r| r.status_subresource) => {
                reset_fields.insert(&[PathElement::field("status")]);
            }
            "status" => {
                let defs = openapi::definitions();
                if let Some(Value::Object(props)) = definition
                    .as_deref()
                    .and_then(|d| defs.get(d))
                    .and_then(|d| d.get("properties"))
                {
                    for k in props.keys() {
                        if !matches!(k.as_str(), "status" | "metadata" | "apiVersion" | "kind") {
                            reset_fields.insert(&[PathElement::field(k.clone())]);
                        }
                    }
                }
                if definition.is_none() {
                    reset_fields.insert(&[PathElement::field("spec")]);
                }
            }
            _ => {}
        }
        Schema {
            definition,
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            subresource: subresource.to_string(),
            reset_fields,
        }
    }

    /// The schema for an object, from its own apiVersion and kind.
    pub fn for_object(obj: &Map<String, Value>, subresource: &str) -> Schema {
        let av = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        Schema::for_kind(av, kind, subresource)
    }

    pub fn root(&self) -> Ty<'static> {
        let defs = openapi::definitions();
        match &self.definition {
            Some(d) => Ty::definition(defs, d),
            None => Ty::deduced(defs),
        }
    }

    /// The empty object of the kind as Go would serialize it (`runtime.ObjectCreater.New`): the
    /// "live" object of a create. Non-pointer structs are present, which decides whether a
    /// create owns the struct itself (`.` in FieldsV1) or only its fields.
    pub fn zero_object(&self) -> Map<String, Value> {
        let Some(def) = self.definition.as_deref() else {
            return Map::new();
        };
        let defs = openapi::definitions();
        let mut out = Map::new();
        let props = defs
            .get(def)
            .and_then(|d| d.get("properties"))
            .and_then(Value::as_object);
        if let Some(props) = props {
            for field in ["metadata", "spec", "status"] {
                let Some(p) = props.get(field) else { continue };
                let target = ref_target(p);
                let v = match target {
                    Some(t) => zero_of(t),
                    None if field == "metadata" => zero_of("ObjectMeta"),
                    None => continue,
                };
                out.insert(field.into(), v);
            }
        }
        // Kinds whose non-pointer fields sit at the top level.
        match def.rsplit('.').next().unwrap_or("") {
            "PodTemplate" => {
                out.insert("template".into(), zero_of("PodTemplateSpec"));
            }
            "Event" if def.contains(".core.") => {
                for (k, v) in [
                    ("involvedObject", json!({})),
                    ("source", json!({})),
                    ("firstTimestamp", Value::Null),
                    ("lastTimestamp", Value::Null),
                    ("eventTime", Value::Null),
                ] {
                    out.insert(k.into(), v);
                }
            }
            "RoleBinding" | "ClusterRoleBinding" => {
                out.insert(
                    "roleRef".into(),
                    json!({"apiGroup": "", "kind": "", "name": ""}),
                );
            }
            _ => {}
        }
        out
    }
}

fn ref_target(prop: &Value) -> Option<&str> {
    let r = prop
        .get("$ref")
        .or_else(|| prop.get("allOf")?.get(0)?.get("$ref"))?
        .as_str()?;
    Some(r.strip_prefix(REF_PREFIX).unwrap_or(r))
}

/// Go's zero value of a struct definition, for the few struct fields that are not pointers.
fn zero_of(def: &str) -> Value {
    let short = def.rsplit('.').next().unwrap_or(def);
    let group = def.strip_prefix("io.k8s.api.").unwrap_or("");
    match short {
        "ObjectMeta" => json!({"creationTimestamp": null}),
        "PodTemplateSpec" => json!({"metadata": zero_of("ObjectMeta"), "spec": zero_of("PodSpec")}),
        "PodSpec" => json!({"containers": null}),
        "DeploymentSpec" => json!({
            "selector": null,
            "template": zero_of("PodTemplateSpec"),
            "strategy": {},
        }),
        "ReplicaSetSpec" => json!({"selector": null, "template": zero_of("PodTemplateSpec")}),
        "DaemonSetSpec" | "StatefulSetSpec" => json!({
            "selector": null,
            "template": zero_of("PodTemplateSpec"),
            "updateStrategy": {},
        }),
        "JobSpec" => json!({"template": zero_of("PodTemplateSpec")}),
        "JobTemplateSpec" => json!({"metadata": zero_of("ObjectMeta"), "spec": zero_of("JobSpec")}),
        "CronJobSpec" => json!({"schedule": "", "jobTemplate": zero_of("JobTemplateSpec")}),
        "ServiceStatus" | "IngressStatus" => json!({"loadBalancer": {}}),
        "NetworkPolicySpec" => json!({"podSelector": {}}),
        "PersistentVolumeClaimSpec" => json!({"resources": {}}),
        "HorizontalPodAutoscalerSpec" if group.starts_with("autoscaling") => {
            json!({"scaleTargetRef": {"kind": "", "name": ""}, "maxReplicas": 0})
        }
        _ => json!({}),
    }
}

/// `apps/v1` → (`apps`, `v1`); `v1` → (``, `v1`).
pub fn split_api_version(av: &str) -> (&str, &str) {
    match av.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", av),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_types() {
        let s = Schema::for_kind("apps/v1", "Deployment", "");
        let root = s.root();
        let (spec, declared) = root.field("spec").unwrap();
        assert!(declared);
        let (tmpl, _) = spec.field("template").unwrap();
        let (pod, _) = tmpl.field("spec").unwrap();
        let (containers, _) = pod.field("containers").unwrap();
        match containers.atom() {
            Atom::List { kind, .. } => assert_eq!(kind, ListKind::Map(vec!["name"])),
            _ => panic!("containers is a list"),
        }
        let (sel, _) = spec.field("selector").unwrap();
        assert!(matches!(sel.atom(), Atom::Map { atomic: true, .. }));
        let (meta, _) = root.field("metadata").unwrap();
        let (labels, declared) = meta.field("labels").unwrap();
        assert!(declared);
        assert!(matches!(
            labels.atom(),
            Atom::Map {
                fields: None,
                atomic: false,
                ..
            }
        ));
        let (fin, _) = meta.field("finalizers").unwrap();
        assert!(matches!(
            fin.atom(),
            Atom::List {
                kind: ListKind::Set,
                ..
            }
        ));
        assert!(root.field("bogus").is_none());
        assert!(s.reset_fields.has(&[PathElement::field("status")]));
    }
}
