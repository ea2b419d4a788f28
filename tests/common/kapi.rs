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
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("kapi did not start within 60 s");
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

fn tls_config(data_dir: &Path, alpn: &[&[u8]]) -> rustls::ClientConfig {
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
