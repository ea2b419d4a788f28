//! The default chain over a real [`Api`] (embedded store and watch caches): the [`Lookup`]
//! implementation, quota status writes with CAS, and the plugins together.

use super::*;
use crate::api::catalogue;
use crate::cache::Caches;
use crate::object::codec;
use serde_json::json;
use std::time::Duration;

struct Fixture {
    api: Api,
    _dir: tempfile::TempDir,
}

fn res(group: &str, plural: &str) -> &'static ResourceInfo {
    catalogue::lookup(group, "v1", plural).unwrap()
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store: crate::storage::DynStore = Arc::new(
            crate::storage::embedded::EmbeddedStore::open(&dir.path().join("db.redb")).unwrap(),
        );
        let api = Api {
            admission: std::sync::Arc::new(crate::admission::Chain::default()),
            caches: Caches::start(store.clone(), "/registry", 100),
            store,
            etcd_prefix: "/registry".into(),
            namespace_deleted: Arc::new(tokio::sync::Notify::new()),
            min_request_timeout: 1800,
        };
        Fixture { api, _dir: dir }
    }

    /// Stores an object and waits until its cache has it.
    async fn put(&self, r: &'static ResourceInfo, obj: Value) -> i64 {
        let m = obj.as_object().unwrap().clone();
        let ns = m["metadata"].get("namespace").and_then(Value::as_str);
        let name = m["metadata"]["name"].as_str().unwrap();
        let rev = self
            .api
            .store
            .create(&self.api.key(r, ns, name), codec::stored(r, &m))
            .await
            .unwrap();
        self.settle(r, rev).await;
        rev
    }

    async fn settle(&self, r: &'static ResourceInfo, rev: i64) {
        assert!(
            self.api
                .caches
                .get(r)
                .wait_for(rev, Duration::from_secs(5))
                .await
        );
    }
}

fn pod(name: &str, ns: &str) -> Map<String, Value> {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
    .as_object()
    .unwrap()
    .clone()
}

fn user() -> AdmissionUser {
    AdmissionUser::new("alice", &["system:authenticated"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_chain_over_the_api() {
    let f = Fixture::new();
    let api = &f.api;
    let ns_res = res("", "namespaces");
    f.put(
        ns_res,
        json!({"metadata": {"name": "ns"}, "status": {"phase": "Active"}}),
    )
    .await;
    f.put(
        res("", "serviceaccounts"),
        json!({"metadata": {"name": "default", "namespace": "ns"}}),
    )
    .await;
    f.put(
        res("", "limitranges"),
        json!({"metadata": {"name": "lr", "namespace": "ns"},
        "spec": {"limits": [{"type": "Container", "default": {"memory": "256Mi"}}]}}),
    )
    .await;
    let quotas = res("", "resourcequotas");
    f.put(
        quotas,
        json!({"metadata": {"name": "q", "namespace": "ns"}, "spec": {"hard": {"pods": "1"}}}),
    )
    .await;

    // The quota controller fills in the status through the store.
    assert_eq!(resource_quota::sync_all(api).await.unwrap(), 1);
    let q = api
        .get_live(quotas, Some("ns"), "q")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        q.object["status"],
        json!({"hard": {"pods": "1"}, "used": {"pods": "0"}})
    );
    f.settle(quotas, q.revision).await;

    let chain = Chain::new(&[], &[], &PluginOptions::default()).unwrap();
    let pods = res("", "pods");
    let mut a = Attributes::new(Operation::Create, pods, Some("ns"), "p1", user())
        .with_object(pod("p1", "ns"));
    let warnings = chain.admit(api, &mut a).await.unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let out = Value::Object(a.object.unwrap());
    assert_eq!(out["spec"]["serviceAccountName"], "default");
    assert!(out["spec"]["volumes"][0]["name"]
        .as_str()
        .unwrap()
        .starts_with("kube-api-access-"));
    assert_eq!(out["spec"]["tolerations"].as_array().unwrap().len(), 2);
    assert_eq!(
        out["spec"]["containers"][0]["resources"]["limits"]["memory"],
        "256Mi"
    );
    let q = api
        .get_live(quotas, Some("ns"), "q")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(q.object["status"]["used"], json!({"pods": "1"}));

    // The cache may still hold the old quota: the CAS write fails and the live copy decides.
    let mut a = Attributes::new(Operation::Create, pods, Some("ns"), "p2", user())
        .with_object(pod("p2", "ns"));
    let e = chain.admit(api, &mut a).await.unwrap_err();
    assert_eq!(
        e.message,
        "pods \"p2\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=1, limited: pods=1"
    );

    // NamespaceLifecycle.
    let mut a = Attributes::new(Operation::Create, pods, Some("nope"), "p", user())
        .with_object(pod("p", "nope"));
    let e = chain.admit(api, &mut a).await.unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (404, "namespaces \"nope\" not found")
    );
    let mut a = Attributes::new(Operation::Delete, ns_res, None, "kube-system", user());
    assert_eq!(chain.admit(api, &mut a).await.unwrap_err().code, 403);

    // Lookup::update is a CAS write.
    let stale = q.revision - 1;
    assert!(api
        .update(quotas, Some("ns"), "q", &q.object, stale)
        .await
        .unwrap()
        .is_none());
    // list reads the cache.
    f.settle(quotas, q.revision).await;
    let listed = api.list(quotas, Some("ns")).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(api.list(quotas, Some("other")).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_service_accounts_and_root_ca() {
    let f = Fixture::new();
    let api = &f.api;
    f.put(
        res("", "namespaces"),
        json!({"metadata": {"name": "fresh"}, "status": {"phase": "Active"}}),
    )
    .await;
    f.put(
        res("", "namespaces"),
        json!({"metadata": {"name": "dying"}, "status": {"phase": "Terminating"}}),
    )
    .await;
    let created = service_account::ensure_defaults(api, Some("PEM"))
        .await
        .unwrap();
    assert_eq!(created, 2);
    let sa = api
        .get_live(res("", "serviceaccounts"), Some("fresh"), "default")
        .await
        .unwrap()
        .unwrap();
    assert!(sa.object["metadata"]["uid"].is_string());
    let cm = api
        .get_live(res("", "configmaps"), Some("fresh"), "kube-root-ca.crt")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cm.object["data"], json!({"ca.crt": "PEM"}));
    assert_eq!(
        service_account::ensure_defaults(api, Some("PEM"))
            .await
            .unwrap(),
        0
    );
}
