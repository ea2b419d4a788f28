//! kapi on an etcd that requires mutual TLS (`--client-cert-auth`), as in a production control
//! plane: the `--etcd-cafile/--etcd-certfile/--etcd-keyfile` flags, reads and writes through
//! kapi landing in etcd, refusal to start with a missing or untrusted client certificate (or an
//! etcd serving certificate kapi cannot verify), and `--etcd-servers` with a dead first endpoint.

mod common;

use common::etcd::{free_port, EtcdServer, EtcdServerTls};
use common::kapi::Kapi;
use http::StatusCode;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use serde_json::json;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A CA that signs etcd's serving certificate and client certificates.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        p.distinguished_name = dn;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut p);
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(p, key),
        }
    }

    /// A leaf certificate and key (PEM) for `cn`, with IP/DNS SANs for a server.
    fn issue(&self, cn: &str, server: bool) -> (String, String) {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        p.distinguished_name = dn;
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        if server {
            p.subject_alt_names = vec![
                SanType::IpAddress([127, 0, 0, 1].into()),
                SanType::DnsName("localhost".try_into().unwrap()),
            ];
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        } else {
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        validity(&mut p);
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn validity(p: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::hours(1);
    p.not_after = now + time::Duration::days(1);
}

/// Files for one test: etcd's CA and serving pair, a client pair from that CA, and a CA plus
/// client pair etcd does not trust.
struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    foreign_ca: PathBuf,
    foreign_cert: PathBuf,
    foreign_key: PathBuf,
    server: EtcdServerTls,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let ca = Ca::new("etcd-ca");
        let (server_cert, server_key) = ca.issue("etcd-server", true);
        let (client_cert, client_key) = ca.issue("kube-apiserver-etcd-client", false);
        let foreign = Ca::new("etcd-ca");
        let (foreign_cert, foreign_key) = foreign.issue("kube-apiserver-etcd-client", false);
        let ca_file = write("ca.crt", &ca.pem);
        Pki {
            client_cert: write("client.crt", &client_cert),
            client_key: write("client.key", &client_key),
            foreign_ca: write("foreign-ca.crt", &foreign.pem),
            foreign_cert: write("foreign-client.crt", &foreign_cert),
            foreign_key: write("foreign-client.key", &foreign_key),
            server: EtcdServerTls {
                cert_file: write("server.crt", &server_cert),
                key_file: write("server.key", &server_key),
                trusted_ca_file: ca_file.clone(),
            },
            ca: ca_file,
            _dir: dir,
        }
    }

    /// The three etcd TLS flags for kapi.
    fn flags(&self, ca: &Path, cert: &Path, key: &Path) -> Vec<String> {
        vec![
            format!("--etcd-cafile={}", ca.display()),
            format!("--etcd-certfile={}", cert.display()),
            format!("--etcd-keyfile={}", key.display()),
        ]
    }

    fn good_flags(&self) -> Vec<String> {
        self.flags(&self.ca, &self.client_cert, &self.client_key)
    }

    /// An etcd client with the given client pair (None: no client certificate).
    async fn etcd_client(
        &self,
        etcd: &EtcdServer,
        cert: Option<(&Path, &Path)>,
    ) -> Result<etcd_client::Client, etcd_client::Error> {
        let mut tls = etcd_client::TlsOptions::new().ca_certificate(
            etcd_client::Certificate::from_pem(std::fs::read(&self.ca).unwrap()),
        );
        if let Some((cert, key)) = cert {
            tls = tls.identity(etcd_client::Identity::from_pem(
                std::fs::read(cert).unwrap(),
                std::fs::read(key).unwrap(),
            ));
        }
        let opts = etcd_client::ConnectOptions::new()
            .with_tls(tls)
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(5));
        etcd_client::Client::connect(etcd.endpoints(), Some(opts)).await
    }
}

/// Runs kapi with `args` and waits (bounded) for it to exit. Returns its exit status (None if
/// it was still running at the deadline, then killed), its stderr, and whether it announced
/// that it was serving.
fn run_until_exit(
    args: &[String],
    limit: Duration,
) -> (Option<std::process::ExitStatus>, String, bool) {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kapi"))
        .arg("--secure-port=0")
        .arg(format!("--data-dir={}", data.path().display()))
        .args(args)
        .env("RUST_LOG", "warn")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kapi");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    let mut stdout = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    (status, stderr, stdout.contains("kapi: serving on"))
}

/// Starts kapi off the async runtime (its start-up blocks until kapi prints its URL, and the
/// test's own tasks, e.g. a proxy, must keep running meanwhile).
async fn start_kapi(args: Vec<String>) -> Kapi {
    tokio::task::spawn_blocking(move || Kapi::start(args))
        .await
        .expect("kapi start")
}

async fn create_configmap(c: &common::kapi::RawClient, name: &str, value: &str) {
    let r = c
        .post_json(
            "/api/v1/namespaces/default/configmaps",
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                    "data": {"k": value}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kapi_serves_from_an_etcd_that_requires_client_certificates() {
    let pki = Pki::new();
    let etcd = EtcdServer::start_tls(&pki.server);

    // etcd really enforces client certificates: without one it refuses, with ours it answers.
    // (etcd-client connects lazily, so the refusal shows on the first request.)
    if let Ok(mut c) = pki.etcd_client(&etcd, None).await {
        assert!(
            c.get("/", None).await.is_err(),
            "etcd served a client without a certificate"
        );
    }
    let mut ec = pki
        .etcd_client(&etcd, Some((&pki.client_cert, &pki.client_key)))
        .await
        .expect("etcd client with a certificate");
    ec.get("/", None)
        .await
        .expect("etcd answers a client with a certificate");

    let mut args = pki.good_flags();
    args.push(format!("--etcd-servers={}", etcd.endpoint));
    let kapi = start_kapi(args).await;
    let c = kapi.client();

    let mut watch = c
        .watch("/api/v1/namespaces/default/configmaps?watch=true&fieldSelector=metadata.name%3Dfrom-etcd")
        .await;

    // A write through kapi lands in etcd, readable with the client certificate.
    create_configmap(&c, "tls-cm", "over-mutual-tls").await;
    let r = c.get("/api/v1/namespaces/default/configmaps/tls-cm").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let rv: i64 = r.json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let got = ec
        .get("/registry/configmaps/default/tls-cm", None)
        .await
        .unwrap();
    let kv = got.kvs().first().expect("configmap in etcd");
    assert_eq!(kv.mod_revision(), rv);
    let stored: serde_json::Value = serde_json::from_slice(kv.value()).unwrap();
    assert_eq!(stored["data"]["k"], "over-mutual-tls");

    // An update through kapi, then a list and kubectl, all over the same TLS store.
    let r = c
        .patch(
            "/api/v1/namespaces/default/configmaps/tls-cm",
            "application/merge-patch+json",
            &json!({"data": {"k": "patched"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let got = ec
        .get("/registry/configmaps/default/tls-cm", None)
        .await
        .unwrap();
    let stored: serde_json::Value = serde_json::from_slice(got.kvs()[0].value()).unwrap();
    assert_eq!(stored["data"]["k"], "patched");
    let (ok, out, err) = kapi.kubectl(&["get", "configmap", "tls-cm", "-o", "jsonpath={.data.k}"]);
    assert!(ok, "{err}");
    assert_eq!(out, "patched");

    // A write made directly in etcd reaches kapi's watch cache over the TLS watch stream.
    let direct = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "from-etcd", "namespace": "default",
                     "uid": "6f1e2d3c-4b5a-4968-8776-5a4b3c2d1e0f",
                     "creationTimestamp": "2024-01-01T00:00:00Z"},
        "data": {"k": "direct"}});
    ec.put(
        "/registry/configmaps/default/from-etcd",
        serde_json::to_vec(&direct).unwrap(),
        None,
    )
    .await
    .unwrap();
    let ev = watch
        .next(Duration::from_secs(10))
        .await
        .expect("ADDED event for the object written in etcd");
    assert_eq!(ev["type"], "ADDED");
    assert_eq!(ev["object"]["data"]["k"], "direct");
    let r = c
        .get("/api/v1/namespaces/default/configmaps?limit=500")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let names: Vec<String> = r.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        names.contains(&"tls-cm".to_string()) && names.contains(&"from-etcd".to_string()),
        "{names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kapi_exits_with_a_readable_error_when_etcd_rejects_its_tls() {
    let pki = Pki::new();
    let etcd = EtcdServer::start_tls(&pki.server);
    let endpoint = format!("--etcd-servers={}", etcd.endpoint);
    let cases: [(&str, Vec<String>, &str); 4] = [
        (
            "no client certificate",
            vec![
                format!("--etcd-cafile={}", pki.ca.display()),
                endpoint.clone(),
            ],
            "it may require a client certificate; pass --etcd-certfile and --etcd-keyfile",
        ),
        (
            "client certificate from another CA",
            [
                pki.flags(&pki.ca, &pki.foreign_cert, &pki.foreign_key),
                vec![endpoint.clone()],
            ]
            .concat(),
            "it may have rejected the client certificate --etcd-certfile=",
        ),
        (
            "etcd's certificate checked against another CA",
            [
                pki.flags(&pki.foreign_ca, &pki.client_cert, &pki.client_key),
                vec![endpoint.clone()],
            ]
            .concat(),
            "etcd's serving certificate does not verify against --etcd-cafile=",
        ),
        (
            "https endpoint without any TLS flag",
            vec![endpoint.clone()],
            "pass the CA that signed it with --etcd-cafile",
        ),
    ];
    for (case, args, hint) in cases {
        let started = Instant::now();
        let (status, stderr, serving) = run_until_exit(&args, Duration::from_secs(40));
        let status = status
            .unwrap_or_else(|| panic!("{case}: kapi still running after 40 s; stderr:\n{stderr}"));
        assert!(!status.success(), "{case}: kapi exited with {status}");
        assert!(!serving, "{case}: kapi announced it was serving");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{case}: took {:?}",
            started.elapsed()
        );
        assert!(
            stderr.contains("connecting to etcd") && stderr.contains(&etcd.endpoint),
            "{case}: {stderr}"
        );
        assert!(
            stderr.contains(hint),
            "{case}: expected {hint:?} in:\n{stderr}"
        );
    }
    // None of them wrote anything (the bootstrap objects would be under /registry).
    let mut ec = pki
        .etcd_client(&etcd, Some((&pki.client_cert, &pki.client_key)))
        .await
        .unwrap();
    let r = ec
        .get(
            "/registry/",
            Some(
                etcd_client::GetOptions::new()
                    .with_prefix()
                    .with_count_only(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(r.count(), 0);
}

/// A TCP proxy in front of etcd that can be cut: new connections are refused and open ones
/// closed, as when the member behind an endpoint goes away.
struct Proxy {
    port: u16,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn start(target: std::net::SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tasks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let t = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let conn = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                t.lock().unwrap().push(conn.abort_handle());
            }
        });
        tasks.lock().unwrap().push(accept.abort_handle());
        Proxy { port, tasks }
    }

    fn cut(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_servers_fail_over_to_the_next_endpoint() {
    let pki = Pki::new();
    let etcd = EtcdServer::start_tls(&pki.server);
    let etcd_addr: std::net::SocketAddr = etcd
        .endpoint
        .strip_prefix("https://")
        .unwrap()
        .parse()
        .unwrap();

    // The first endpoint refuses connections from the start: kapi starts on the second one
    // and every request succeeds (etcd-client alone would send some of them to the dead one).
    let dead = format!("https://127.0.0.1:{}", free_port());
    let mut args = pki.good_flags();
    args.push(format!("--etcd-servers={dead},{}", etcd.endpoint));
    let kapi = start_kapi(args).await;
    let c = kapi.client();
    for i in 0..10 {
        create_configmap(&c, &format!("dead-first-{i}"), "v").await;
        let r = c
            .get(&format!(
                "/api/v1/namespaces/default/configmaps/dead-first-{i}"
            ))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    drop(kapi);

    // The first endpoint works at start-up, then goes away: reads, writes and watches carry on
    // through the second endpoint (both lead to the same etcd, as two members of one cluster
    // would).
    let proxy = Proxy::start(etcd_addr).await;
    let mut args = pki.good_flags();
    args.push(format!(
        "--etcd-servers=https://127.0.0.1:{},{}",
        proxy.port, etcd.endpoint
    ));
    let kapi = start_kapi(args).await;
    let c = kapi.client();
    create_configmap(&c, "before-cut", "v").await;
    let mut watch = c
        .watch("/api/v1/namespaces/default/configmaps?watch=true&fieldSelector=metadata.name%3Dafter-cut")
        .await;
    proxy.cut();

    let r = c
        .get("/api/v1/namespaces/default/configmaps/before-cut")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    create_configmap(&c, "after-cut", "v").await;
    let ev = watch
        .next(Duration::from_secs(15))
        .await
        .expect("ADDED event after the first endpoint went away");
    assert_eq!(ev["type"], "ADDED");
    assert_eq!(ev["object"]["metadata"]["name"], "after-cut");
    for i in 0..10 {
        create_configmap(&c, &format!("after-cut-{i}"), "v").await;
    }
    let r = c
        .get("/api/v1/namespaces/default/configmaps?limit=500")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let ours = r.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| {
            let name = i["metadata"]["name"].as_str().unwrap();
            name.starts_with("dead-first-") || name.contains("-cut")
        })
        .count();
    assert_eq!(ours, 10 + 1 + 1 + 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_files_are_not_used_for_http_endpoints() {
    // As kube-apiserver's etcd client: an http:// endpoint is dialled in plain text even when
    // the TLS flags are set (they serve https:// endpoints), rather than failing.
    let pki = Pki::new();
    let etcd = EtcdServer::start();
    let mut args = pki.good_flags();
    args.push(format!("--etcd-servers={}", etcd.endpoint));
    let kapi = start_kapi(args).await;
    create_configmap(&kapi.client(), "plain", "v").await;
    let mut ec = etcd_client::Client::connect(etcd.endpoints(), None)
        .await
        .unwrap();
    let r = ec
        .get("/registry/configmaps/default/plain", None)
        .await
        .unwrap();
    assert_eq!(r.kvs().len(), 1);
}
