//! Encryption at rest end to end: kapi on a real etcd with `--encryption-provider-config`
//! stores Secrets as `k8s:enc:aescbc:v1:key1:` ciphertext, serves them back in plaintext
//! (get, list, watch), and leaves resources the configuration does not name in plaintext.

mod common;

use base64::Engine as _;
use common::etcd::EtcdServer;
use common::kapi::Kapi;
use http::StatusCode;
use serde_json::json;
use std::time::Duration;

const CANARY: &str = "IF_YOU_CAN_READ_THIS";

fn config_file(dir: &std::path::Path) -> String {
    let path = dir.join("encryption.yaml");
    std::fs::write(
        &path,
        concat!(
            "apiVersion: apiserver.config.k8s.io/v1\n",
            "kind: EncryptionConfiguration\n",
            "resources:\n",
            "- resources:\n",
            "  - secrets\n",
            "  providers:\n",
            "  - aescbc:\n",
            "      keys:\n",
            "      - name: key1\n",
            "        secret: c2VjcmV0IGlzIHNlY3VyZSwgaXMgaXQgbm90PyAxMjM=\n",
            "  - identity: {}\n",
        ),
    )
    .unwrap();
    path.display().to_string()
}

async fn raw_value(etcd: &EtcdServer, key: &str) -> Vec<u8> {
    let mut c = etcd_client::Client::connect(etcd.endpoints(), None)
        .await
        .unwrap();
    let r = c.get(key, None).await.unwrap();
    r.kvs()
        .first()
        .unwrap_or_else(|| panic!("{key} not in etcd"))
        .value()
        .to_vec()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_encrypted_in_etcd_and_plaintext_through_the_api() {
    let etcd = EtcdServer::start();
    let dir = tempfile::tempdir().unwrap();
    let path = config_file(dir.path());
    let kapi = Kapi::start(vec![
        format!("--etcd-servers={}", etcd.endpoint),
        format!("--encryption-provider-config={path}"),
    ]);
    let c = kapi.client();
    let encoded = base64::engine::general_purpose::STANDARD.encode(CANARY);

    // A watch opened before the write sees it in plaintext.
    let mut watch = c
        .watch("/api/v1/namespaces/default/secrets?watch=true&fieldSelector=metadata.name%3Ds1")
        .await;

    let r = c
        .post_json(
            "/api/v1/namespaces/default/secrets",
            &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s1"},
                    "data": {"password": encoded}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["data"]["password"], encoded);

    // At rest: the aescbc prefix with the key name, and neither the plaintext nor its base64.
    let stored = raw_value(&etcd, "/registry/secrets/default/s1").await;
    assert!(
        stored.starts_with(b"k8s:enc:aescbc:v1:key1:"),
        "stored value starts {:?}",
        String::from_utf8_lossy(&stored[..stored.len().min(40)])
    );
    assert!(!contains(&stored, CANARY) && !contains(&stored, &encoded));
    assert!(!contains(&stored, "\"kind\""), "no JSON structure leaks");
    // What an operator sees with etcdctl (etcd-client package): the same prefix.
    let etcdctl = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            &format!("--endpoints={}", etcd.endpoint),
            "get",
            "/registry/secrets/default/s1",
            "--print-value-only",
        ])
        .output()
        .expect("etcdctl runs (apt-get install etcd-client)");
    assert!(etcdctl.status.success(), "{etcdctl:?}");
    assert!(
        etcdctl.stdout.starts_with(b"k8s:enc:aescbc:v1:key1:"),
        "etcdctl shows {:?}",
        String::from_utf8_lossy(&etcdctl.stdout[..etcdctl.stdout.len().min(40)])
    );

    // Through kapi: plaintext on get and list.
    let r = c.get("/api/v1/namespaces/default/secrets/s1").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["data"]["password"], encoded);
    let r = c.get("/api/v1/namespaces/default/secrets").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let items = r.json()["items"].as_array().unwrap().clone();
    assert!(items.iter().any(|s| s["data"]["password"] == encoded));

    let ev = watch
        .next(Duration::from_secs(10))
        .await
        .expect("ADDED event");
    assert_eq!(ev["type"], "ADDED");
    assert_eq!(ev["object"]["data"]["password"], encoded);

    // An update is re-encrypted (and its watch event decrypted).
    let r = c
        .patch(
            "/api/v1/namespaces/default/secrets/s1",
            "application/merge-patch+json",
            &json!({"data": {"other": encoded}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let ev = watch
        .next(Duration::from_secs(10))
        .await
        .expect("MODIFIED event");
    assert_eq!(ev["type"], "MODIFIED");
    assert_eq!(ev["object"]["data"]["other"], encoded);
    let stored = raw_value(&etcd, "/registry/secrets/default/s1").await;
    assert!(stored.starts_with(b"k8s:enc:aescbc:v1:key1:"));
    assert!(!contains(&stored, CANARY) && !contains(&stored, &encoded));

    // A resource the configuration does not name stays plaintext.
    let r = c
        .post_json(
            "/api/v1/namespaces/default/configmaps",
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm1"},
                    "data": {"k": CANARY}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let stored = raw_value(&etcd, "/registry/configmaps/default/cm1").await;
    assert!(contains(&stored, CANARY));

    // A Secret written in plaintext before encryption was enabled is still readable, since
    // identity is listed.
    let mut ec = etcd_client::Client::connect(etcd.endpoints(), None)
        .await
        .unwrap();
    let old = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "old", "namespace": "default", "uid": "0c5e5bd6-8f4e-4c4b-9a55-6a1e4e7b1a01",
                     "creationTimestamp": "2024-01-01T00:00:00Z"},
        "data": {"k": "dg=="}});
    ec.put(
        "/registry/secrets/default/old",
        serde_json::to_vec(&old).unwrap(),
        None,
    )
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = c.get("/api/v1/namespaces/default/secrets/old").await;
        if r.status == StatusCode::OK {
            assert_eq!(r.json()["data"]["k"], "dg==");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} {}",
            r.status,
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The exact Status kube-apiserver answers for a stored value its transformers cannot read.
fn internal_error(msg: &str) -> serde_json::Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": format!("Internal error occurred: {msg}"), "reason": "InternalError",
           "details": {"causes": [{"message": msg}]}, "code": 500})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecryptable_values_are_500_internal_error() {
    let etcd = EtcdServer::start();
    let dir = tempfile::tempdir().unwrap();
    let path = config_file(dir.path());
    let mut kapi = Kapi::start(vec![
        format!("--etcd-servers={}", etcd.endpoint),
        format!("--encryption-provider-config={path}"),
    ]);
    let c = kapi.client();
    let r = c
        .post_json(
            "/api/v1/namespaces/default/secrets",
            &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "lost"},
                    "data": {"k": "dg=="}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());

    // Corrupt ciphertext under the configured key: too short to hold an IV.
    let mut ec = etcd_client::Client::connect(etcd.endpoints(), None)
        .await
        .unwrap();
    ec.put(
        "/registry/secrets/default/short",
        b"k8s:enc:aescbc:v1:key1:tooshort".to_vec(),
        None,
    )
    .await
    .unwrap();
    let r = c.get("/api/v1/namespaces/default/secrets/short").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text());
    assert_eq!(
        r.json(),
        internal_error("the stored data was shorter than the required size")
    );

    // Restart with a configuration that no longer has key1 (a new key, identity still listed).
    std::fs::write(
        &path,
        concat!(
            "apiVersion: apiserver.config.k8s.io/v1\n",
            "kind: EncryptionConfiguration\n",
            "resources:\n",
            "- resources:\n",
            "  - secrets\n",
            "  providers:\n",
            "  - aescbc:\n",
            "      keys:\n",
            "      - name: key2\n",
            "        secret: MjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjI=\n",
            "  - identity: {}\n",
        ),
    )
    .unwrap();
    kapi.restart();
    let c = kapi.client();
    let r = c.get("/api/v1/namespaces/default/secrets/lost").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text());
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(
        r.json(),
        internal_error("no matching key was found for the provided AES transformer")
    );
    // A list that reaches the unreadable value fails as a whole, naming the key.
    let r = c.get("/api/v1/namespaces/default/secrets").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text());
    assert_eq!(
        r.json(),
        internal_error(
            "unable to transform key \"/registry/secrets/default/lost\": no matching key was found for the provided AES transformer"
        )
    );

    // Secrets written now use key2 and read back fine next to the unreadable one.
    let r = c
        .post_json(
            "/api/v1/namespaces/default/secrets",
            &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "fresh"},
                    "data": {"k": "dg=="}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert!(raw_value(&etcd, "/registry/secrets/default/fresh")
        .await
        .starts_with(b"k8s:enc:aescbc:v1:key2:"));
    let r = c.get("/api/v1/namespaces/default/secrets/fresh").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["data"]["k"], "dg==");
}
