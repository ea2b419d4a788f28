//! Schema-driven object surgery for the write path: strategic merge patch ([`strategic`]) and
//! kube-apiserver's strict field checks ([`fields`]).
//!
//! Both read the OpenAPI definitions built by [`crate::api::openapi`] through [`SchemaRef`], a
//! cursor into the schema graph that resolves `$ref`/`allOf` and answers the questions the
//! algorithms ask: which properties a struct has, whether a property is a map
//! (`additionalProperties`), whether unknown fields are preserved
//! (`x-kubernetes-preserve-unknown-fields`), and how a list merges
//! (`x-kubernetes-patch-strategy`, `x-kubernetes-patch-merge-key`).

pub mod fields;
pub mod strategic;

use crate::api::catalogue::ResourceInfo;
use serde_json::Value;
use std::collections::BTreeMap;

const REF_PREFIX: &str = "#/components/schemas/";

/// A position in the OpenAPI schema graph.
///
/// `node` is the schema as written where it is used (a property, an `items` or an
/// `additionalProperties` node). It carries the `x-kubernetes-patch-*` extensions, while the
/// shape (properties, items) may sit behind a `$ref` or a one-element `allOf`. A cursor without
/// a node knows nothing: every field is accepted and every list is replaced.
#[derive(Clone, Copy)]
pub struct SchemaRef<'a> {
    defs: &'a BTreeMap<String, Value>,
    node: Option<&'a Value>,
}

/// How a list property merges under strategic merge patch (`patchStrategy` struct tags, exposed
/// as `x-kubernetes-patch-strategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// No tag: lists are replaced, maps merged.
    Default,
    /// `merge`: lists merge by their merge key (or as sets of scalars).
    Merge,
    /// `replace`: the value is replaced as a whole.
    Replace,
}

impl SchemaRef<'static> {
    /// The schema of a served kind (`apps`, `v1`, `Deployment`); None for kinds kapi does not
    /// serve.
    pub fn for_kind(group: &str, version: &str, kind: &str) -> Option<SchemaRef<'static>> {
        let name = crate::api::openapi::kind_definition(group, version, kind)?;
        SchemaRef::definition(crate::api::openapi::definitions(), name)
    }

    /// The schema of a catalogue resource's kind.
    pub fn for_resource(res: &ResourceInfo) -> Option<SchemaRef<'static>> {
        Self::for_kind(res.group, res.version, res.kind)
    }
}

impl<'a> SchemaRef<'a> {
    /// The named definition (`io.k8s.api.apps.v1.Deployment`) of `defs`.
    pub fn definition(defs: &'a BTreeMap<String, Value>, name: &str) -> Option<SchemaRef<'a>> {
        defs.get(name).map(|node| SchemaRef {
            defs,
            node: Some(node),
        })
    }

    /// A cursor that knows nothing (free-form content).
    pub fn unknown(defs: &'a BTreeMap<String, Value>) -> SchemaRef<'a> {
        SchemaRef { defs, node: None }
    }

    fn at(&self, node: Option<&'a Value>) -> SchemaRef<'a> {
        SchemaRef {
            defs: self.defs,
            node,
        }
    }

    /// Whether anything is known about this position.
    pub fn is_known(&self) -> bool {
        self.node.is_some()
    }

    /// The schema that describes the shape: `$ref` and one-element `allOf` chains followed.
    fn resolved(&self) -> Option<&'a Value> {
        let mut node = self.node?;
        for _ in 0..32 {
            if let Some(r) = node.get("$ref").and_then(Value::as_str) {
                node = self.defs.get(r.strip_prefix(REF_PREFIX).unwrap_or(r))?;
                continue;
            }
            match node.get("allOf").and_then(Value::as_array) {
                Some(all) if all.len() == 1 && node.get("properties").is_none() => {
                    node = &all[0];
                }
                _ => return Some(node),
            }
        }
        Some(node)
    }

    /// An extension, read where the property is declared, then on the resolved definition.
    fn extension(&self, name: &str) -> Option<&'a Value> {
        self.node
            .and_then(|n| n.get(name))
            .or_else(|| self.resolved().and_then(|n| n.get(name)))
    }

    /// `x-kubernetes-preserve-unknown-fields: true`.
    pub fn preserves_unknown_fields(&self) -> bool {
        self.extension("x-kubernetes-preserve-unknown-fields")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// Whether an object here accepts only the declared properties: a struct with
    /// `properties`, no `additionalProperties` and no `x-kubernetes-preserve-unknown-fields`.
    /// Free-form objects (`RawExtension`, `FieldsV1`, custom resources) are not closed.
    pub fn is_closed(&self) -> bool {
        let Some(r) = self.resolved() else {
            return false;
        };
        r.get("properties").is_some_and(Value::is_object)
            && r.get("additionalProperties").is_none()
            && !self.preserves_unknown_fields()
    }

    /// The schema of field `name` of an object at this position: a declared property, or the
    /// value schema of a map. None when the field is unknown to a closed struct; an unknown
    /// cursor when nothing is known about it.
    pub fn field(&self, name: &str) -> Option<SchemaRef<'a>> {
        let Some(r) = self.resolved() else {
            return Some(self.at(None));
        };
        if let Some(p) = r.get("properties").and_then(|p| p.get(name)) {
            return Some(self.at(Some(p)));
        }
        match r.get("additionalProperties") {
            Some(v @ Value::Object(_)) => return Some(self.at(Some(v))),
            Some(_) => return Some(self.at(None)),
            None => {}
        }
        if self.is_closed() {
            None
        } else {
            Some(self.at(None))
        }
    }

    /// The schema of the items of a list at this position.
    pub fn items(&self) -> SchemaRef<'a> {
        self.at(self.resolved().and_then(|r| r.get("items")))
    }

    /// The strategic-merge strategy of this property and whether it has `retainKeys`.
    pub fn patch_strategy(&self) -> (Strategy, bool) {
        let Some(s) = self
            .extension("x-kubernetes-patch-strategy")
            .and_then(Value::as_str)
        else {
            return (Strategy::Default, false);
        };
        let mut strategy = Strategy::Default;
        let mut retain = false;
        for part in s.split(',').map(str::trim) {
            match part {
                "merge" => strategy = Strategy::Merge,
                "replace" => strategy = Strategy::Replace,
                "retainKeys" => retain = true,
                _ => {}
            }
        }
        (strategy, retain)
    }

    /// `x-kubernetes-patch-merge-key` of a merging list.
    pub fn merge_key(&self) -> Option<&'a str> {
        self.extension("x-kubernetes-patch-merge-key")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_deployment_fields() {
        let d = SchemaRef::for_kind("apps", "v1", "Deployment").expect("deployments are served");
        assert!(d.is_closed());
        let containers = d
            .field("spec")
            .and_then(|s| s.field("template"))
            .and_then(|t| t.field("spec"))
            .and_then(|s| s.field("containers"))
            .expect("containers");
        assert_eq!(containers.patch_strategy(), (Strategy::Merge, false));
        assert_eq!(containers.merge_key(), Some("name"));
        let c = containers.items();
        assert!(c.is_closed());
        assert!(c.field("image").is_some());
        assert!(c.field("imagee").is_none());
        assert_eq!(c.field("ports").unwrap().merge_key(), Some("containerPort"));
        let labels = d
            .field("metadata")
            .and_then(|m| m.field("labels"))
            .expect("labels");
        assert!(!labels.is_closed());
        assert!(labels.field("anything").is_some());
        let volumes = d
            .field("spec")
            .and_then(|s| s.field("template"))
            .and_then(|t| t.field("spec"))
            .and_then(|s| s.field("volumes"))
            .expect("volumes");
        assert_eq!(volumes.patch_strategy(), (Strategy::Merge, true));
        let fin = d
            .field("metadata")
            .and_then(|m| m.field("finalizers"))
            .unwrap();
        assert_eq!(fin.patch_strategy(), (Strategy::Merge, false));
        assert_eq!(fin.merge_key(), None);
    }

    #[test]
    fn free_form_fields_accept_anything() {
        let d = SchemaRef::for_kind("apps", "v1", "Deployment").unwrap();
        let mf = d
            .field("metadata")
            .and_then(|m| m.field("managedFields"))
            .map(|m| m.items())
            .unwrap();
        let fields_v1 = mf.field("fieldsV1").unwrap();
        assert!(!fields_v1.is_closed());
        assert!(fields_v1.field("f:spec").is_some());
    }
}
