//! `NamespaceLifecycle` (`apiserver/pkg/admission/plugin/namespace/lifecycle`): no new content in
//! a missing (404) or terminating (403) namespace, and the immortal namespaces `default`,
//! `kube-system` and `kube-public` cannot be deleted.

use super::{forbidden, forbidden_named, Attributes, Lookup, MutatingPlugin, Operation};
use crate::api::catalogue::{self, ResourceInfo};
use crate::api::status::{ApiError, Cause};
use async_trait::async_trait;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a namespace seen being deleted is looked up live rather than in the cache.
const FORCE_LIVE_LOOKUP_TTL: Duration = Duration::from_secs(30);
/// How long a create waits for the cache to see a namespace it does not have yet.
const MISSING_NAMESPACE_WAIT: Duration = Duration::from_millis(50);

pub const IMMORTAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

#[derive(Default)]
pub struct NamespaceLifecycle {
    /// Namespaces recently deleted through admission, with when (`forceLiveLookupCache`).
    force_live: Mutex<HashMap<String, Instant>>,
}

fn namespaces() -> &'static ResourceInfo {
    catalogue::lookup("", "v1", "namespaces").expect("namespaces are served")
}

fn phase(obj: &serde_json::Map<String, Value>) -> &str {
    obj.get("status")
        .and_then(|s| s.get("phase"))
        .and_then(Value::as_str)
        .unwrap_or("Active")
}

impl NamespaceLifecycle {
    fn recently_deleted(&self, ns: &str) -> bool {
        let mut m = self.force_live.lock().unwrap();
        m.retain(|_, at| at.elapsed() < FORCE_LIVE_LOOKUP_TTL);
        m.contains_key(ns)
    }
}

#[async_trait]
impl MutatingPlugin for NamespaceLifecycle {
    fn name(&self) -> &'static str {
        "NamespaceLifecycle"
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
        let is_namespace = attrs.is("", "namespaces");
        if attrs.operation == Operation::Delete
            && is_namespace
            && IMMORTAL_NAMESPACES.contains(&attrs.name.as_str())
        {
            return Err(forbidden_named(
                attrs.resource,
                &attrs.name,
                "this namespace may not be deleted",
            ));
        }
        if is_namespace {
            if attrs.operation == Operation::Delete {
                self.force_live
                    .lock()
                    .unwrap()
                    .insert(attrs.name.clone(), Instant::now());
            }
            return Ok(());
        }
        // Cluster-scoped resources, deletes and access reviews pass.
        if attrs.namespace.is_empty() || attrs.operation == Operation::Delete {
            return Ok(());
        }
        if attrs.is("authorization.k8s.io", "localsubjectaccessreviews") {
            return Ok(());
        }
        let ns_res = namespaces();
        let ns = attrs.namespace.clone();
        let mut found = lookup.get(ns_res, None, &ns).await?;
        if found.is_none() && attrs.operation == Operation::Create {
            // Give the cache time to see a namespace created just before.
            tokio::time::sleep(MISSING_NAMESPACE_WAIT).await;
            found = lookup.get(ns_res, None, &ns).await?;
        }
        let force_live = found.as_ref().is_some_and(|n| phase(&n.object) == "Active")
            && self.recently_deleted(&ns);
        if found.is_none() || force_live {
            found = lookup.get_live(ns_res, None, &ns).await?;
        }
        let Some(namespace) = found else {
            return Err(ApiError::namespace_not_found(&ns));
        };
        if attrs.operation == Operation::Create && phase(&namespace.object) == "Terminating" {
            let mut e = forbidden(
                attrs,
                format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
            );
            e.details.causes.push(Cause {
                reason: "NamespaceTerminating".into(),
                message: format!("namespace {ns} is being terminated"),
                field: "metadata.namespace".into(),
            });
            return Err(e);
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

    fn pods() -> &'static ResourceInfo {
        catalogue::lookup("", "v1", "pods").unwrap()
    }

    fn attrs(
        op: Operation,
        res: &'static ResourceInfo,
        ns: Option<&str>,
        name: &str,
    ) -> Attributes {
        Attributes::new(op, res, ns, name, AdmissionUser::new("bob", &[])).with_object(
            json!({"metadata": {"name": name}})
                .as_object()
                .unwrap()
                .clone(),
        )
    }

    #[tokio::test]
    async fn missing_and_terminating_namespaces() {
        let l = MemoryLookup::new();
        let p = NamespaceLifecycle::default();
        let mut w = Vec::new();
        let e = p
            .admit(
                &l,
                &mut attrs(Operation::Create, pods(), Some("nope"), "p"),
                &mut w,
            )
            .await
            .unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (404, "namespaces \"nope\" not found")
        );
        // Updates in a missing namespace are 404 too; deletes pass.
        let e = p
            .admit(
                &l,
                &mut attrs(Operation::Update, pods(), Some("nope"), "p"),
                &mut w,
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, 404);
        p.admit(
            &l,
            &mut attrs(Operation::Delete, pods(), Some("nope"), "p"),
            &mut w,
        )
        .await
        .unwrap();

        l.put(
            namespaces(),
            json!({"metadata": {"name": "gone"}, "status": {"phase": "Terminating"}}),
        );
        let e = p
            .admit(
                &l,
                &mut attrs(Operation::Create, pods(), Some("gone"), "p"),
                &mut w,
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "pods \"p\" is forbidden: unable to create new content in namespace gone because it is being terminated"
        );
        assert_eq!(e.details.causes[0].reason, "NamespaceTerminating");
        // Updates in a terminating namespace are allowed.
        p.admit(
            &l,
            &mut attrs(Operation::Update, pods(), Some("gone"), "p"),
            &mut w,
        )
        .await
        .unwrap();

        l.put_namespace("live", None);
        p.admit(
            &l,
            &mut attrs(Operation::Create, pods(), Some("live"), "p"),
            &mut w,
        )
        .await
        .unwrap();
        // Cluster-scoped resources are not checked.
        let nodes = catalogue::lookup("", "v1", "nodes").unwrap();
        p.admit(&l, &mut attrs(Operation::Create, nodes, None, "n"), &mut w)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn immortal_namespaces_and_live_lookup_after_delete() {
        let l = MemoryLookup::new();
        let p = NamespaceLifecycle::default();
        let mut w = Vec::new();
        for ns in IMMORTAL_NAMESPACES {
            let e = p
                .admit(
                    &l,
                    &mut attrs(Operation::Delete, namespaces(), None, ns),
                    &mut w,
                )
                .await
                .unwrap_err();
            assert_eq!(e.code, 403);
            assert_eq!(
                e.message,
                format!("namespaces \"{ns}\" is forbidden: this namespace may not be deleted")
            );
        }
        l.put_namespace("x", None);
        p.admit(
            &l,
            &mut attrs(Operation::Delete, namespaces(), None, "x"),
            &mut w,
        )
        .await
        .unwrap();
        let before = l.live_gets();
        p.admit(
            &l,
            &mut attrs(Operation::Create, pods(), Some("x"), "p"),
            &mut w,
        )
        .await
        .unwrap();
        assert_eq!(
            l.live_gets(),
            before + 1,
            "a recently deleted namespace is read live"
        );
    }
}
