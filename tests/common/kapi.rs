//! Starts the real kapi binary (embedded store or a test etcd) and talks to it over TLS.

use super::etcd::EtcdServer;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

pub struct Kapi {
    child: Option<Child>,
    pub url: String,
    pub port: u16,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub kubeconfig: PathBuf,
    args: Vec<String>,
}

impl Kapi {
    /// kapi on its embedded store in a fresh temp dir.
    pub fn embedded() -> Kapi {
        Self::start(Vec::new())
    }

    /// kapi on the given etcd.
    pub fn on_etcd(etcd: &EtcdServer) -> Kapi {
        Self::start(vec![format!("--etcd-servers={}", etcd.endpoint)])
    }

    pub fn start(args: Vec<String>) -> Kapi {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data_dir = tmp.path().to_path_buf();
        let mut k = Kapi {
            child: None,
            url: String::new(),
            port: 0,
            kubeconfig: data_dir.join("admin.kubeconfig"),
            data_dir,
            _tmp: Some(tmp),
            args,
        };
        k.launch();
        k
    }

    fn launch(&mut self) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kapi"));
        cmd.arg(format!("--secure-port={}", self.port))
            .arg(format!("--data-dir={}", self.data_dir.display()))
            .args(&self.args)
            .env(
                "RUST_LOG",
                std::env::var("KAPI_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("start kapi");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("kapi: serving on ") {
                    let url = rest.split_whitespace().next().unwrap_or("").to_string();
                    let _ = tx.send(url);
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                // Do not leave the process behind when the test fails here.
                let _ = child.kill();
                let _ = child.wait();
                panic!("kapi did not start within 60 s");
            }
        };
        self.port = url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in url");
        self.url = url;
        self.child = Some(child);
    }

    /// Kills kapi and starts it again on the same port and data dir.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match std::net::TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(l) => {
                    drop(l);
                    break;
                }
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => panic!("port {} not free after kill: {e}", self.port),
            }
        }
        self.launch();
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn client(&self) -> RawClient {
        RawClient::new(&self.data_dir, self.port)
    }

    /// A kube-rs client from the generated kubeconfig.
    pub async fn kube_client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig");
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("kube config");
        kube::Client::try_from(cfg).expect("kube client")
    }

    /// Runs kubectl against this kapi; returns (success, stdout, stderr).
    pub fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        self.kubectl_with_input(args, None)
    }

    pub fn kubectl_with_input(&self, args: &[&str], input: Option<&str>) -> (bool, String, String) {
        use std::io::Write;
        let home = self.data_dir.join("kubectl-home");
        std::fs::create_dir_all(&home).ok();
        let mut child = Command::new("kubectl")
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .args(args)
            .env("HOME", &home)
            .env("KUBECACHEDIR", home.join("cache"))
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl on PATH");
        if let Some(input) = input {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        let out = child.wait_with_output().expect("kubectl output");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Kapi {
    fn drop(&mut self) {
        self.kill();
    }
}

/// HTTP version for raw requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http1,
    Http2,
}

/// A bare HTTPS client with the admin certificate: full control over method, headers and body.
#[derive(Clone)]
pub struct RawClient {
    connector: TlsConnector,
    port: u16,
    pub version: Version,
}

pub struct RawResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl RawResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A TLS client config as the admin user of the kapi in `data_dir`, offering `alpn`.
pub fn tls_config(data_dir: &Path, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let pki = data_dir.join("pki");
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(pki.join("ca.crt")).expect("ca.crt") {
        roots.add(c.expect("ca cert")).expect("add root");
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(pki.join("admin.crt"))
        .expect("admin.crt")
        .map(|c| c.expect("cert"))
        .collect();
    let key = PrivateKeyDer::from_pem_file(pki.join("admin.key")).expect("admin.key");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .expect("client auth");
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    cfg
}

impl RawClient {
    pub fn new(data_dir: &Path, port: u16) -> RawClient {
        RawClient {
            connector: TlsConnector::from(Arc::new(tls_config(data_dir, &[b"http/1.1"]))),
            port,
            version: Version::Http1,
        }
    }

    pub fn http2(data_dir: &Path, port: u16) -> RawClient {
        RawClient {
            connector: TlsConnector::from(Arc::new(tls_config(data_dir, &[b"h2"]))),
            port,
            version: Version::Http2,
        }
    }

    pub async fn tls_stream(&self) -> tokio_rustls::client::TlsStream<TcpStream> {
        let tcp = TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect kapi");
        self.connector
            .connect(ServerName::try_from("127.0.0.1").unwrap().to_owned(), tcp)
            .await
            .expect("TLS handshake")
    }

    /// Sends a request and returns the response with its body still streaming.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> http::Response<hyper::body::Incoming> {
        let io = TokioIo::new(self.tls_stream().await);
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .expect("request");
        match self.version {
            Version::Http1 => {
                let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
                    .await
                    .expect("http1 handshake");
                tokio::spawn(conn);
                let mut req = req;
                req.headers_mut().insert(
                    http::header::HOST,
                    http::HeaderValue::from_static("127.0.0.1"),
                );
                sender.send_request(req).await.expect("send request")
            }
            Version::Http2 => {
                let (mut sender, conn) =
                    hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                        .await
                        .expect("h2 handshake");
                tokio::spawn(conn);
                let (mut parts, body) = req.into_parts();
                parts.uri = format!("https://127.0.0.1:{}{}", self.port, path)
                    .parse()
                    .expect("uri");
                sender
                    .send_request(Request::from_parts(parts, body))
                    .await
                    .expect("send request")
            }
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> RawResponse {
        let headers: Vec<(&str, &str)> = content_type
            .map(|c| vec![("content-type", c)])
            .unwrap_or_default();
        let resp = tokio::time::timeout(Duration::from_secs(30), async {
            let resp = self.send(method, path, &headers, body).await;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.expect("body").to_bytes();
            RawResponse {
                status: parts.status,
                headers: parts.headers,
                body,
            }
        })
        .await
        .expect("request timed out");
        resp
    }

    pub async fn get(&self, path: &str) -> RawResponse {
        self.request(Method::GET, path, None, None).await
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> RawResponse {
        self.request(
            Method::POST,
            path,
            Some("application/json"),
            Some(serde_json::to_vec(body).unwrap()),
        )
        .await
    }

    pub async fn put_json(&self, path: &str, body: &serde_json::Value) -> RawResponse {
        self.request(
            Method::PUT,
            path,
            Some("application/json"),
            Some(serde_json::to_vec(body).unwrap()),
        )
        .await
    }

    pub async fn patch(
        &self,
        path: &str,
        content_type: &str,
        body: &serde_json::Value,
    ) -> RawResponse {
        self.request(
            Method::PATCH,
            path,
            Some(content_type),
            Some(serde_json::to_vec(body).unwrap()),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> RawResponse {
        self.request(Method::DELETE, path, None, None).await
    }

    /// Opens a watch and returns a reader of its newline-delimited events.
    pub async fn watch(&self, path: &str) -> WatchReader {
        let resp = self.send(Method::GET, path, &[], None).await;
        assert_eq!(resp.status(), StatusCode::OK, "watch {path}");
        WatchReader {
            body: resp.into_body(),
            buf: Vec::new(),
        }
    }
}

pub struct WatchReader {
    body: hyper::body::Incoming,
    buf: Vec<u8>,
}

impl WatchReader {
    /// The next event, or None when the stream ends or `timeout` passes.
    pub async fn next(&mut self, timeout: Duration) -> Option<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Some(
                    serde_json::from_slice(&line[..line.len() - 1]).expect("watch line is JSON"),
                );
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .ok()??;
            if let Ok(data) = frame.expect("watch body").into_data() {
                self.buf.extend_from_slice(&data);
            }
        }
    }
}

// ---- Helpers for the security tests: other identities than the admin certificate. ----

/// A client certificate and key (PEM) for `cn` with organizations `orgs`, issued by kapi's
/// generated CA (or, with `foreign`, by a freshly made CA kapi does not trust).
pub fn issue_client_cert(
    data_dir: &Path,
    cn: &str,
    orgs: &[&str],
    foreign: bool,
) -> (String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_params = || {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "kapi-ca");
        p.distinguished_name = dn;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        p
    };
    let ca_key = if foreign {
        KeyPair::generate().unwrap()
    } else {
        let pem = std::fs::read_to_string(data_dir.join("pki/ca.key")).expect("ca.key");
        KeyPair::from_pem(&pem).unwrap()
    };
    let issuer = Issuer::new(ca_params(), ca_key);
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = DistinguishedName::new();
    for o in orgs {
        dn.push(DnType::OrganizationName, *o);
    }
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::hours(1);
    p.not_after = now + time::Duration::days(1);
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A raw client with any identity: a client certificate (PEM cert, key), a bearer token, both
/// or neither (anonymous).
#[derive(Clone)]
pub struct AuthClient {
    pub raw: RawClient,
    pub bearer: Option<String>,
}

impl AuthClient {
    pub fn new(
        data_dir: &Path,
        port: u16,
        cert: Option<(&str, &str)>,
        bearer: Option<&str>,
    ) -> AuthClient {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(data_dir.join("pki/ca.crt")).expect("ca.crt") {
            roots.add(c.expect("ca cert")).expect("add root");
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots);
        let mut cfg = match cert {
            Some((cert, key)) => {
                let certs: Vec<CertificateDer<'static>> =
                    CertificateDer::pem_slice_iter(cert.as_bytes())
                        .map(|c| c.expect("cert"))
                        .collect();
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key");
                builder
                    .with_client_auth_cert(certs, key)
                    .expect("client auth")
            }
            None => builder.with_no_client_auth(),
        };
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        AuthClient {
            raw: RawClient {
                connector: TlsConnector::from(Arc::new(cfg)),
                port,
                version: Version::Http1,
            },
            bearer: bearer.map(str::to_string),
        }
    }

    /// Sends a request with the bearer token (if any) and extra headers.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        extra_headers: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> RawResponse {
        let auth = self.bearer.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = extra_headers.to_vec();
        if let Some(a) = &auth {
            headers.push(("authorization", a));
        }
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        let body = body.map(|b| serde_json::to_vec(b).unwrap());
        tokio::time::timeout(Duration::from_secs(30), async {
            let resp = self.raw.send(method, path, &headers, body).await;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.expect("body").to_bytes();
            RawResponse {
                status: parts.status,
                headers: parts.headers,
                body,
            }
        })
        .await
        .expect("request timed out")
    }

    pub async fn get(&self, path: &str) -> RawResponse {
        self.request(Method::GET, path, &[], None).await
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> RawResponse {
        self.request(Method::POST, path, &[], Some(body)).await
    }
}

impl Kapi {
    /// Writes a kubeconfig for this kapi that authenticates with `token` (no client certificate).
    pub fn token_kubeconfig(&self, name: &str, token: &str) -> PathBuf {
        let path = self.data_dir.join(format!("{name}.kubeconfig"));
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority: {ca}\n    server: {url}\n  name: kapi\ncontexts:\n- context:\n    cluster: kapi\n    user: {name}\n  name: {name}\ncurrent-context: {name}\nusers:\n- name: {name}\n  user:\n    token: {token}\n",
            ca = self.data_dir.join("pki/ca.crt").display(),
            url = self.url,
        );
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    /// Runs kubectl with another kubeconfig; returns (success, stdout, stderr).
    pub fn kubectl_with(&self, kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
        let home = self.data_dir.join("kubectl-home");
        std::fs::create_dir_all(&home).ok();
        let out = Command::new("kubectl")
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .args(args)
            .env("HOME", &home)
            .env("KUBECACHEDIR", home.join("cache"))
            .stdin(Stdio::null())
            .output()
            .expect("kubectl on PATH");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}
