//! `DefaultStorageClass` (`plugin/pkg/admission/storage/storageclass/setdefault`): a new
//! PersistentVolumeClaim with no class (neither `spec.storageClassName` nor the beta
//! annotation) gets the default StorageClass: the one annotated
//! `storageclass.kubernetes.io/is-default-class: "true"`, the newest if several.

use super::pod::{annotation, obj_mut};
use super::{forbidden, Attributes, Lookup, MutatingPlugin, Operation};
use crate::api::catalogue;
use crate::api::status::ApiError;
use async_trait::async_trait;
use serde_json::{Map, Value};

pub const IS_DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";
pub const BETA_IS_DEFAULT_CLASS: &str = "storageclass.beta.kubernetes.io/is-default-class";
pub const BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

pub struct DefaultStorageClass;

fn is_default(sc: &Map<String, Value>) -> bool {
    annotation(sc, IS_DEFAULT_CLASS) == Some("true")
        || annotation(sc, BETA_IS_DEFAULT_CLASS) == Some("true")
}

/// The default class among `classes`: the most recently created, ties broken by name.
pub fn default_class(classes: &[Map<String, Value>]) -> Option<String> {
    let mut defaults: Vec<(&str, &str)> = classes
        .iter()
        .filter(|c| is_default(c))
        .map(|c| {
            (
                c.get("metadata")
                    .and_then(|m| m.get("creationTimestamp"))
                    .and_then(Value::as_str)
                    .unwrap_or(""),
                c.get("metadata")
                    .and_then(|m| m.get("name"))
                    .and_then(Value::as_str)
                    .unwrap_or(""),
            )
        })
        .collect();
    // Newest first; equal times by name ascending.
    defaults.sort_by(|a, b| b.0.cmp(a.0).then(a.1.cmp(b.1)));
    defaults.first().map(|(_, n)| n.to_string())
}

#[async_trait]
impl MutatingPlugin for DefaultStorageClass {
    fn name(&self) -> &'static str {
        "DefaultStorageClass"
    }

    async fn admit(
        &self,
        lookup: &dyn Lookup,
        attrs: &mut Attributes,
        _warnings: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        if attrs.operation != Operation::Create || !attrs.is_main("", "persistentvolumeclaims") {
            return Ok(());
        }
        let Some(pvc) = attrs.object.as_ref() else {
            return Ok(());
        };
        let v = Value::Object(pvc.clone());
        let has_class = v
            .get("spec")
            .and_then(|s| s.get("storageClassName"))
            .is_some_and(|c| !c.is_null())
            || annotation(pvc, BETA_STORAGE_CLASS).is_some();
        if has_class {
            return Ok(());
        }
        let sc = catalogue::lookup("storage.k8s.io", "v1", "storageclasses")
            .expect("storageclasses are served");
        let classes: Vec<Map<String, Value>> = lookup
            .list(sc, None)
            .await
            .map_err(|e| forbidden(attrs, e.message))?
            .into_iter()
            .map(|s| s.object)
            .collect();
        if let Some(name) = default_class(&classes) {
            let pvc = attrs.object.as_mut().expect("checked above");
            obj_mut(pvc, "spec").insert("storageClassName".into(), Value::String(name));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::lookup::MemoryLookup;
    use crate::admission::AdmissionUser;
    use serde_json::json;

    fn sc(l: &MemoryLookup, name: &str, default: bool, created: &str) {
        let res = catalogue::lookup("storage.k8s.io", "v1", "storageclasses").unwrap();
        let mut meta = json!({"name": name, "creationTimestamp": created});
        if default {
            meta["annotations"] = json!({IS_DEFAULT_CLASS: "true"});
        }
        l.put(res, json!({"metadata": meta, "provisioner": "p"}));
    }

    async fn run(l: &MemoryLookup, pvc: Value) -> Value {
        let res = catalogue::lookup("", "v1", "persistentvolumeclaims").unwrap();
        let mut a = Attributes::new(
            Operation::Create,
            res,
            Some("ns"),
            "c",
            AdmissionUser::default(),
        )
        .with_object(pvc.as_object().unwrap().clone());
        DefaultStorageClass
            .admit(l, &mut a, &mut Vec::new())
            .await
            .unwrap();
        Value::Object(a.object.unwrap())
    }

    #[tokio::test]
    async fn sets_the_newest_default_class() {
        let l = MemoryLookup::new();
        let pvc = json!({"metadata": {"name": "c"}, "spec": {"accessModes": ["ReadWriteOnce"]}});
        // No default class: unchanged.
        sc(&l, "plain", false, "2024-01-01T00:00:00Z");
        assert!(run(&l, pvc.clone()).await["spec"]
            .get("storageClassName")
            .is_none());
        sc(&l, "old", true, "2024-01-01T00:00:00Z");
        sc(&l, "new", true, "2025-01-01T00:00:00Z");
        assert_eq!(
            run(&l, pvc.clone()).await["spec"]["storageClassName"],
            "new"
        );
        // An explicit class, even "", is kept.
        let explicit = json!({"spec": {"storageClassName": ""}});
        assert_eq!(run(&l, explicit).await["spec"]["storageClassName"], "");
        let beta = json!({"metadata": {"annotations": {BETA_STORAGE_CLASS: "x"}}, "spec": {}});
        assert!(run(&l, beta).await["spec"]
            .get("storageClassName")
            .is_none());
    }
}
