//! Subresources used by kubectl and controllers: scale, pods/binding, pods/eviction,
//! pods/ephemeralcontainers, status.

mod common;

use common::kapi::{Kapi, RawClient};
use http::{Method, StatusCode};
use serde_json::json;

async fn post(c: &RawClient, path: &str, body: serde_json::Value) -> common::kapi::RawResponse {
    c.request(
        Method::POST,
        path,
        Some("application/json"),
        Some(serde_json::to_vec(&body).unwrap()),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_binding_eviction_ephemeral() {
    let kapi = Kapi::embedded();
    let c = kapi.client();
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
    assert_eq!(
        c.post_json("/apis/apps/v1/namespaces/default/deployments", &deploy)
            .await
            .status,
        StatusCode::CREATED
    );

    // Scale: GET, kubectl scale (PATCH), PUT with a stale RV.
    let r = c
        .get("/apis/apps/v1/namespaces/default/deployments/web/scale")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let s = r.json();
    assert_eq!(
        (s["kind"].as_str(), s["apiVersion"].as_str()),
        (Some("Scale"), Some("autoscaling/v1"))
    );
    assert_eq!(s["spec"]["replicas"], 1);
    assert_eq!(s["status"]["selector"], "app=web");
    let (ok, out, err) = kapi.kubectl(&["scale", "deployment/web", "--replicas=4"]);
    assert!(ok, "{out}{err}");
    let d = c
        .get("/apis/apps/v1/namespaces/default/deployments/web")
        .await
        .json();
    assert_eq!(d["spec"]["replicas"], 4);
    assert_eq!(d["metadata"]["generation"], 2);
    let mut stale = s.clone();
    stale["spec"]["replicas"] = json!(2);
    let r = c
        .put_json(
            "/apis/apps/v1/namespaces/default/deployments/web/scale",
            &stale,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = c
        .patch(
            "/apis/apps/v1/namespaces/default/deployments/web/scale",
            "application/merge-patch+json",
            &json!({"spec": {"replicas": -1}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Binding: once only.
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    assert_eq!(
        c.post_json("/api/v1/namespaces/default/pods", &pod)
            .await
            .status,
        StatusCode::CREATED
    );
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n1"}});
    let r = post(
        &c,
        "/api/v1/namespaces/default/pods/p/binding",
        binding.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let p = c.get("/api/v1/namespaces/default/pods/p").await.json();
    assert_eq!(p["spec"]["nodeName"], "n1");
    assert_eq!(p["status"]["conditions"][0]["type"], "PodScheduled");
    let r = post(&c, "/api/v1/namespaces/default/pods/p/binding", binding).await;
    assert_eq!(r.status, StatusCode::CONFLICT);

    // Ephemeral containers change only spec.ephemeralContainers.
    let r = c.patch("/api/v1/namespaces/default/pods/p/ephemeralcontainers", "application/strategic-merge-patch+json",
        &json!({"spec": {"ephemeralContainers": [{"name": "debug", "image": "busybox"}], "nodeName": "other"}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["spec"]["ephemeralContainers"][0]["name"], "debug");
    assert_eq!(r.json()["spec"]["nodeName"], "n1");

    // Eviction: blocked by a PDB that allows no disruption, then allowed.
    let pdb = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "pdb"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}});
    assert_eq!(
        c.post_json(
            "/apis/policy/v1/namespaces/default/poddisruptionbudgets",
            &pdb
        )
        .await
        .status,
        StatusCode::CREATED
    );
    let eviction = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p", "namespace": "default"}});
    // The PDB reaches the cache asynchronously.
    let mut blocked = false;
    for _ in 0..50 {
        let r = post(
            &c,
            "/api/v1/namespaces/default/pods/p/eviction",
            eviction.clone(),
        )
        .await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(
                r.json()["message"],
                "Cannot evict pod as it would violate the pod's disruption budget."
            );
            blocked = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(blocked, "the PDB must block the eviction");
    let r = c.patch("/apis/policy/v1/namespaces/default/poddisruptionbudgets/pdb/status", "application/merge-patch+json", &json!({"status": {"disruptionsAllowed": 1, "currentHealthy": 1, "desiredHealthy": 1, "expectedPods": 1}})).await;
    assert_eq!(r.status, StatusCode::OK);
    let mut evicted = false;
    for _ in 0..50 {
        let r = post(
            &c,
            "/api/v1/namespaces/default/pods/p/eviction",
            eviction.clone(),
        )
        .await;
        if r.status == StatusCode::CREATED {
            evicted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(evicted);
    assert_eq!(
        c.get("/api/v1/namespaces/default/pods/p").await.status,
        StatusCode::NOT_FOUND
    );

    // Unknown subresources are 404; discovery lists the served ones.
    assert_eq!(
        c.get("/api/v1/namespaces/default/pods/p/bogus")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let list = c.get("/apis/apps/v1").await.json();
    let scale = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "deployments/scale")
        .expect("deployments/scale")
        .clone();
    assert_eq!(
        (scale["group"].as_str(), scale["kind"].as_str()),
        (Some("autoscaling"), Some("Scale"))
    );
}
