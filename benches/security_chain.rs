//! What the security chain costs per request: authentication (x509 client certificate from the
//! TLS layer, static bearer token, service-account JWT), authorization (Node + RBAC over the
//! bootstrap policy in the watch caches) and admission (the default plugin chain plus
//! NodeRestriction) on a Pod create, against the same request with `AlwaysAllow` and no
//! admission plugin.
//!
//! Everything is kapi's own code path: `Security::check` (authenticate, impersonate, authorize)
//! then `Chain::admit` (mutating, then validating), over a real `Api` (embedded store, watch
//! caches) holding the bootstrap RBAC policy, the system namespaces, service accounts, a
//! RoleBinding and a node. Only the store write that would follow is left out: it is the same
//! with or without security.
//!
//! `cargo bench --bench security_chain`; short mode (CI) with `KAPI_BENCH_QUICK=1`. After the
//! run, a summary prints each scenario's secured/baseline ratio from criterion's estimates.

use criterion::{BenchmarkId, Criterion};
use http::{HeaderMap, HeaderValue, Method};
use kapi::admission::{AdmissionUser, Attributes as AdmissionAttributes, Chain, Operation};
use kapi::api::catalogue::{self, ResourceInfo};
use kapi::api::handlers::Api;
use kapi::auth::authn::ConnInfo;
use kapi::auth::authz::request_info;
use kapi::auth::Security;
use kapi::cache::Caches;
use kapi::config::Config;
use kapi::object::codec;
use rustls_pki_types::CertificateDer;
use serde_json::{json, Map, Value};
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const ISSUER: &str = "https://kapi.bench";
const TOKEN: &str = "bench-static-token";
const SA_UID: &str = "5f0c7f3e-1c2b-4d5a-9e8f-0a1b2c3d4e5f";
const NODE_UID: &str = "0e9d8c7b-6a5f-4e3d-8c2b-1a0f9e8d7c6b";
const PODS_PATH: &str = "/api/v1/namespaces/default/pods";

fn quick() -> bool {
    std::env::var("KAPI_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

fn config() -> Criterion {
    let c = Criterion::default().configure_from_args();
    if quick() {
        c.sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_millis(800))
            .without_plots()
    } else {
        c
    }
}

fn res(plural: &str) -> &'static ResourceInfo {
    catalogue::all()
        .iter()
        .find(|r| r.plural == plural && r.conversion.is_none())
        .unwrap_or_else(|| panic!("{plural} in the catalogue"))
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().expect("object").clone()
}

/// A Pod as a Deployment's ReplicaSet would post it.
fn pod() -> Map<String, Value> {
    obj(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-7d4b9c8f6-x2k9q", "namespace": "default",
            "labels": {"app": "web", "pod-template-hash": "7d4b9c8f6"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c8f6",
                "uid": "1a2b3c4d-0000-4000-8000-000000000001", "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "env": [{"name": "MODE", "value": "prod"}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 80}, "periodSeconds": 10}}],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst"}
    }))
}

/// A static pod's mirror, as the kubelet on node-1 posts it.
fn mirror_pod() -> Map<String, Value> {
    obj(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "etcd-node-1", "namespace": "default",
            "annotations": {"kubernetes.io/config.mirror": "3f2a", "kubernetes.io/config.source": "file"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "node-1", "uid": NODE_UID, "controller": true}]},
        "spec": {"nodeName": "node-1", "containers": [{"name": "etcd", "image": "registry.k8s.io/etcd:3.5.16-0"}],
            "hostNetwork": true, "priorityClassName": "system-node-critical"}
    }))
}

/// A client certificate (DER) for `cn` in `orgs`, as rustls hands it over after the handshake.
fn client_cert(cn: &str, orgs: &[&str]) -> Vec<CertificateDer<'static>> {
    use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair};
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = DistinguishedName::new();
    for o in orgs {
        dn.push(DnType::OrganizationName, *o);
    }
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    vec![p.self_signed(&key).unwrap().der().clone()]
}

fn sa_token(key_pem: &str) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    // Issued an hour ago: an established token, checked against the watch cache only.
    let claims = json!({
        "iss": ISSUER, "aud": [ISSUER], "sub": "system:serviceaccount:default:builder",
        "iat": now - 3600, "nbf": now - 3600, "exp": now + 3600, "jti": "bench",
        "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "builder", "uid": SA_UID}},
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_pem(key_pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

struct Fixture {
    api: Arc<Api>,
    /// Node,RBAC (kube-apiserver's usual modes) and the default admission chain + NodeRestriction.
    secured: Security,
    admission: Chain,
    /// AlwaysAllow, same authenticators; no admission plugin.
    open: Security,
    no_admission: Chain,
    sa_token: String,
    alice: ConnInfo,
    kubelet: ConnInfo,
    _dir: tempfile::TempDir,
}

fn flags(dir: &Path, extra: &[&str]) -> Config {
    use clap::Parser;
    let mut args = vec![
        "kapi".to_string(),
        format!("--data-dir={}", dir.display()),
        format!("--token-auth-file={}", dir.join("tokens.csv").display()),
        format!(
            "--service-account-key-file={}",
            dir.join("sa.pub").display()
        ),
        format!("--service-account-issuer={ISSUER}"),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Config::parse_from(args)
}

/// Stores an object and waits until its watch cache has it.
async fn put(api: &Api, r: &'static ResourceInfo, o: Value) {
    let m = obj(o);
    let ns = m["metadata"].get("namespace").and_then(Value::as_str);
    let key = api.key(r, ns, m["metadata"]["name"].as_str().unwrap());
    api.store.create(&key, codec::stored(r, &m)).await.unwrap();
    settle(api, r, &key).await;
}

async fn settle(api: &Api, r: &'static ResourceInfo, key: &str) {
    let cache = api.caches.get(r);
    for _ in 0..500 {
        if cache.get(key).is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{key} never reached the {} cache", r.plural);
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tokens.csv"),
        format!("{TOKEN},bob,u-bob,\"devs\"\n"),
    )
    .unwrap();
    let sa_key = rcgen::KeyPair::generate().unwrap();
    std::fs::write(dir.path().join("sa.pub"), sa_key.public_key_pem()).unwrap();

    let secured_cfg = flags(dir.path(), &["--enable-admission-plugins=NodeRestriction"]);
    let open_cfg = flags(dir.path(), &["--authorization-mode=AlwaysAllow"]);
    let store: kapi::storage::DynStore = Arc::new(
        kapi::storage::embedded::EmbeddedStore::open(&dir.path().join("db.redb")).unwrap(),
    );
    let admission = Chain::from_config(&secured_cfg).unwrap();
    let api = Arc::new(Api {
        admission: Arc::new(admission.clone()),
        caches: Caches::start(store.clone(), "/registry", 1024),
        store,
        etcd_prefix: "/registry".into(),
        namespace_deleted: Arc::new(tokio::sync::Notify::new()),
        min_request_timeout: 1800,
    });
    kapi::controllers::namespaces::ensure_system_namespaces(&api)
        .await
        .unwrap();
    kapi::controllers::bootstrap_rbac::ensure_bootstrap_policy(&api)
        .await
        .unwrap();
    settle(&api, res("namespaces"), "/registry/namespaces/default").await;
    for (plural, key) in [
        ("clusterroles", "/registry/clusterroles/edit"),
        (
            "clusterrolebindings",
            "/registry/clusterrolebindings/system:discovery",
        ),
    ] {
        settle(&api, res(plural), key).await;
    }
    let sa = |name: &str, uid: &str| {
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": name, "namespace": "default", "uid": uid,
                            "creationTimestamp": "2026-01-01T00:00:00Z"}})
    };
    put(
        &api,
        res("serviceaccounts"),
        sa("default", "9a8b7c6d-0000-4000-8000-00000000000d"),
    )
    .await;
    put(&api, res("serviceaccounts"), sa("builder", SA_UID)).await;
    // The usual grant: `edit` in the namespace for a group and a service account.
    put(
        &api,
        res("rolebindings"),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "devs-edit", "namespace": "default", "uid": "7e6d5c4b-0000-4000-8000-00000000000e"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "devs"},
                            {"kind": "ServiceAccount", "name": "builder", "namespace": "default"}]}),
    )
    .await;
    put(
        &api,
        res("nodes"),
        json!({"apiVersion": "v1", "kind": "Node",
               "metadata": {"name": "node-1", "uid": NODE_UID, "creationTimestamp": "2026-01-01T00:00:00Z"}}),
    )
    .await;
    // A pod bound to node-1 that mounts secret s1: the Node authorizer's graph lets node-1 read
    // s1 and nothing else.
    put(
        &api,
        res("secrets"),
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "s1", "namespace": "default", "uid": "2c3d4e5f-0000-4000-8000-00000000000f"}}),
    )
    .await;
    put(
        &api,
        res("pods"),
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "bound", "namespace": "default", "uid": "3d4e5f60-0000-4000-8000-000000000010"},
               "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "nginx"}],
                        "volumes": [{"name": "s", "secret": {"secretName": "s1"}}]}}),
    )
    .await;

    let secured = Security::from_config(&secured_cfg, api.clone()).unwrap();
    let open = Security::from_config(&open_cfg, api.clone()).unwrap();
    Fixture {
        sa_token: sa_token(&sa_key.serialize_pem()),
        alice: ConnInfo {
            peer_certificates: Some(Arc::new(client_cert("alice", &["devs"]))),
        },
        kubelet: ConnInfo {
            peer_certificates: Some(Arc::new(client_cert(
                "system:node:node-1",
                &["system:nodes"],
            ))),
        },
        api,
        secured,
        admission,
        open,
        no_admission: Chain::default(),
        _dir: dir,
    }
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h
}

/// One Pod create through the security chain: authenticate + authorize, then admission on the
/// decoded body. Panics if the request is refused (the bench must measure the allowed path).
async fn create(
    security: &Security,
    chain: &Chain,
    api: &Api,
    headers: &HeaderMap,
    conn: &ConnInfo,
    body: &Map<String, Value>,
) {
    let mut headers = headers.clone();
    let user = match security
        .check(&Method::POST, PODS_PATH, None, &mut headers, conn)
        .await
    {
        Ok(u) => u,
        Err(r) => panic!("request refused with {}", r.status()),
    };
    let name = body["metadata"]["name"].as_str().unwrap_or("");
    let mut attrs = AdmissionAttributes::new(
        Operation::Create,
        res("pods"),
        Some("default"),
        name,
        AdmissionUser::from(&user),
    )
    .with_object(body.clone());
    if let Err(e) = chain.admit(api, &mut attrs).await {
        panic!("admission refused: {}", e.message);
    }
    black_box(attrs);
}

fn bench(c: &mut Criterion, rt: &tokio::runtime::Runtime, f: &Fixture) {
    let none = HeaderMap::new();
    let token = bearer(TOKEN);
    let jwt = bearer(&f.sa_token);
    let anonymous = ConnInfo::default();
    let (pod, mirror) = (pod(), mirror_pod());
    let api = &*f.api;

    let mut g = c.benchmark_group("security_chain");
    // (scenario, headers, connection, body)
    let scenarios: [(&str, &HeaderMap, &ConnInfo, &Map<String, Value>); 4] = [
        ("x509_rbac", &none, &f.alice, &pod),
        ("token_rbac", &token, &anonymous, &pod),
        ("sa_jwt_rbac", &jwt, &anonymous, &pod),
        ("node_mirror_pod", &none, &f.kubelet, &mirror),
    ];
    for (name, headers, conn, body) in scenarios {
        // A misconfigured fixture must fail loudly, not measure a 403.
        rt.block_on(create(&f.secured, &f.admission, api, headers, conn, body));
        g.bench_function(BenchmarkId::new(name, "secured"), |b| {
            b.iter(|| rt.block_on(create(&f.secured, &f.admission, api, headers, conn, body)))
        });
        g.bench_function(BenchmarkId::new(name, "baseline"), |b| {
            b.iter(|| rt.block_on(create(&f.open, &f.no_admission, api, headers, conn, body)))
        });
    }
    // No credentials at all, AlwaysAllow, no admission: the floor of the path measured here.
    g.bench_function(BenchmarkId::new("anonymous", "baseline"), |b| {
        b.iter(|| {
            rt.block_on(create(
                &f.open,
                &f.no_admission,
                api,
                &none,
                &anonymous,
                &pod,
            ))
        })
    });
    g.finish();

    // Each stage alone.
    let mut g = c.benchmark_group("security_stage");
    for (name, headers, conn) in [
        ("authn_x509", &none, &f.alice),
        ("authn_token", &token, &anonymous),
        ("authn_sa_jwt", &jwt, &anonymous),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let mut h = headers.clone();
                    black_box(
                        f.secured
                            .authn
                            .authenticate(api, &mut h, conn)
                            .await
                            .unwrap(),
                    )
                })
            })
        });
    }
    let user = |name: &str, groups: &[&str]| kapi::auth::authn::UserInfo::new(name, groups);
    let mut create_pod = request_info::attributes(&Method::POST, PODS_PATH, None);
    create_pod.user = user("alice", &["devs", "system:authenticated"]);
    let mut node_secret =
        request_info::attributes(&Method::GET, "/api/v1/namespaces/default/secrets/s1", None);
    node_secret.user = user(
        "system:node:node-1",
        &["system:nodes", "system:authenticated"],
    );
    for (name, attrs) in [
        ("authz_rbac_create_pod", &create_pod),
        ("authz_node_graph_get_secret", &node_secret),
    ] {
        let (d, reason) = f.secured.authz.authorize(attrs);
        assert_eq!(d, kapi::auth::authz::Decision::Allow, "{name}: {reason}");
        g.bench_function(name, |b| {
            b.iter(|| black_box(f.secured.authz.authorize(attrs)))
        });
    }
    g.bench_function("admission_default_pod_create", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut attrs = AdmissionAttributes::new(
                    Operation::Create,
                    res("pods"),
                    Some("default"),
                    "web-7d4b9c8f6-x2k9q",
                    AdmissionUser::new("alice", &["devs", "system:authenticated"]),
                )
                .with_object(pod.clone());
                f.admission.admit(api, &mut attrs).await.unwrap();
                black_box(attrs)
            })
        })
    });
    // Which plugins the admission time goes to: the same create through each one alone.
    let defaults: Vec<String> = kapi::admission::DEFAULT_ENABLED_PLUGINS
        .iter()
        .map(|s| s.to_string())
        .collect();
    for plugin in f.admission.enabled() {
        let disable: Vec<String> = defaults.iter().filter(|d| *d != plugin).cloned().collect();
        let enable = vec![plugin.to_string()];
        let one = Chain::new(&enable, &disable, &Default::default()).unwrap();
        assert_eq!(one.enabled(), [*plugin]);
        g.bench_function(format!("admission_only_{plugin}"), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let mut attrs = AdmissionAttributes::new(
                        Operation::Create,
                        res("pods"),
                        Some("default"),
                        "web-7d4b9c8f6-x2k9q",
                        AdmissionUser::new("alice", &["devs", "system:authenticated"]),
                    )
                    .with_object(pod.clone());
                    one.admit(api, &mut attrs).await.unwrap();
                    black_box(attrs)
                })
            })
        });
    }
    g.finish();
}

/// Mean time (ns) criterion estimated for `group/function/param`, from its estimates file.
fn mean_ns(path: &[&str]) -> Option<f64> {
    let mut p = std::path::PathBuf::from(
        std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()),
    );
    p.push("criterion");
    for part in path {
        p.push(part);
    }
    p.push("new/estimates.json");
    let v: Value = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
    v["mean"]["point_estimate"].as_f64()
}

fn summary() {
    println!("\nsecurity chain per Pod create (mean; secured = Node,RBAC + default admission + NodeRestriction; baseline = AlwaysAllow, no admission):");
    for name in ["x509_rbac", "token_rbac", "sa_jwt_rbac", "node_mirror_pod"] {
        let s = mean_ns(&["security_chain", name, "secured"]);
        let b = mean_ns(&["security_chain", name, "baseline"]);
        if let (Some(s), Some(b)) = (s, b) {
            println!(
                "  {name:<16} secured {:>9.2} µs  baseline {:>9.2} µs  ratio {:>5.2}x  (+{:.2} µs)",
                s / 1e3,
                b / 1e3,
                s / b,
                (s - b) / 1e3
            );
        }
    }
    if let Some(a) = mean_ns(&["security_chain", "anonymous", "baseline"]) {
        println!("  anonymous, AlwaysAllow, no admission: {:.2} µs", a / 1e3);
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let f = rt.block_on(fixture());
    let mut c = config();
    bench(&mut c, &rt, &f);
    c.final_summary();
    summary();
}
