//! System namespaces at start-up, and namespace finalization: a namespace marked Terminating is
//! emptied of every namespaced object, then removed (the namespace controller's job, done here).

use crate::api::catalogue::{self, ResourceInfo};
use crate::api::handlers::Api;
use crate::object::codec;
use crate::object::raw::RawObject;
use crate::storage::StoreError;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

fn namespaces() -> &'static ResourceInfo {
    catalogue::lookup("", "v1", "namespaces").expect("namespaces are served")
}

/// Creates the system namespaces that are missing.
pub async fn ensure_system_namespaces(api: &Api) -> Result<(), StoreError> {
    let res = namespaces();
    for ns in SYSTEM_NAMESPACES {
        let key = api.key(res, None, ns);
        if api.store.get(&key).await?.0.is_some() {
            continue;
        }
        let obj = json!({
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": {
                "name": ns,
                "uid": uuid::Uuid::new_v4().to_string(),
                "creationTimestamp": crate::api::handlers::write::now_rfc3339(),
                "labels": {"kubernetes.io/metadata.name": ns},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        let obj = obj.as_object().expect("object literal").clone();
        match api.store.create(&key, codec::stored(res, &obj)).await {
            Ok(_) | Err(StoreError::AlreadyExists) => {
                tracing::info!(namespace = ns, "created system namespace")
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Runs forever: finalizes terminating namespaces when woken, and every few seconds.
pub async fn run_finalizer(api: Arc<Api>) {
    loop {
        if let Err(e) = finalize_terminating(&api).await {
            tracing::warn!(error = %e, "namespace finalization failed; will retry");
        }
        let _ =
            tokio::time::timeout(Duration::from_secs(2), api.namespace_deleted.notified()).await;
    }
}

async fn finalize_terminating(api: &Api) -> Result<(), StoreError> {
    let res = namespaces();
    let prefix = api.list_prefix(res, None);
    let list = api.store.range(&prefix, None, 0, 0).await?;
    for kv in list.kvs {
        let Ok(ns) = RawObject::from_kv(res, &kv) else {
            continue;
        };
        if ns.field(res, "status.phase") != Some("Terminating") {
            continue;
        }
        let remaining = purge_namespace(api, ns.name()).await?;
        // Like kube, a namespace whose metadata.finalizers are not empty stays Terminating; the
        // update that removes the last one deletes it.
        let held = ns
            .to_map()
            .get("metadata")
            .and_then(|m| m.get("finalizers"))
            .and_then(serde_json::Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if remaining == 0 && !held {
            match api.store.delete(&kv.key, kv.mod_revision).await {
                Ok(_) => tracing::info!(namespace = ns.name(), "namespace finalized and removed"),
                Err(StoreError::Conflict { .. }) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Deletes every namespaced object in `ns`; returns how many could not be deleted yet.
async fn purge_namespace(api: &Api, ns: &str) -> Result<usize, StoreError> {
    let mut remaining = 0;
    for res in catalogue::all().iter().filter(|r| r.namespaced) {
        let prefix = api.list_prefix(res, Some(ns));
        let list = api.store.range(&prefix, None, 0, 0).await?;
        for kv in list.kvs {
            match api.store.delete(&kv.key, kv.mod_revision).await {
                Ok(_) | Err(StoreError::NotFound) => {}
                Err(StoreError::Conflict { .. }) => remaining += 1,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(remaining)
}
