//! Talking to kapi: TLS with the admin client certificate (from admin.kubeconfig or the data
//! dir's pki/), HTTP/1.1 or HTTP/2 connections, the watchers and the writes.

use crate::objects::{parse_line, LineBuf};
use crate::track::WatchRec;
use crate::Ctx;
use anyhow::{anyhow, bail, Context as _};
use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsConnector;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum HttpVersion {
    Http1,
    Http2,
}

/// Where kapi is and how to authenticate to it.
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    /// Offers `version` by ALPN.
    connector: TlsConnector,
    /// Offers only HTTP/1.1 (stuck watchers speak HTTP/1.1 by hand whatever `version` is).
    h1_connector: TlsConnector,
    pub version: HttpVersion,
}

/// PEM material: (server URL if known, CA, client cert, client key).
type Material = (Option<String>, Vec<u8>, Vec<u8>, Vec<u8>);

fn from_kubeconfig(path: &Path) -> anyhow::Result<Material> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let kc: serde_json::Value = serde_norway::from_str(&text).context("kubeconfig is not YAML")?;
    let b64 = |v: &serde_json::Value, what: &str| -> anyhow::Result<Vec<u8>> {
        let s = v
            .as_str()
            .ok_or_else(|| anyhow!("kubeconfig lacks {what}"))?;
        base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .with_context(|| format!("kubeconfig {what} is not base64"))
    };
    let cluster = &kc["clusters"][0]["cluster"];
    let user = &kc["users"][0]["user"];
    Ok((
        cluster["server"].as_str().map(str::to_string),
        b64(
            &cluster["certificate-authority-data"],
            "certificate-authority-data",
        )?,
        b64(&user["client-certificate-data"], "client-certificate-data")?,
        b64(&user["client-key-data"], "client-key-data")?,
    ))
}

fn from_data_dir(dir: &Path) -> anyhow::Result<Material> {
    let pki = dir.join("pki");
    let read =
        |f: &str| std::fs::read(pki.join(f)).with_context(|| format!("{}/{f}", pki.display()));
    Ok((
        None,
        read("ca.crt")?,
        read("admin.crt")?,
        read("admin.key")?,
    ))
}

/// Accepts only loopback hosts: the generator never sends load anywhere else.
pub fn ensure_loopback(host: &str) -> anyhow::Result<()> {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    let ok = h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false);
    if !ok {
        bail!("refusing to target {host}: the load generator only talks to loopback addresses");
    }
    Ok(())
}

impl Endpoint {
    pub fn new(
        server: Option<&str>,
        kubeconfig: Option<&Path>,
        data_dir: Option<&Path>,
        version: HttpVersion,
    ) -> anyhow::Result<Endpoint> {
        let (url, ca, cert, key) = match (kubeconfig, data_dir) {
            (Some(k), _) => from_kubeconfig(k)?,
            (None, Some(d)) => match from_kubeconfig(&d.join("admin.kubeconfig")) {
                Ok(m) => m,
                Err(_) => from_data_dir(d)?,
            },
            (None, None) => {
                bail!("give --kubeconfig or --data-dir (kapi's, for its CA and admin cert)")
            }
        };
        let url = server
            .map(str::to_string)
            .or(url)
            .ok_or_else(|| anyhow!("no server URL: give --server"))?;
        let uri: http::Uri = url.parse().with_context(|| format!("server URL {url}"))?;
        let host = uri
            .host()
            .ok_or_else(|| anyhow!("server URL without host"))?;
        ensure_loopback(host)?;
        let port = uri.port_u16().unwrap_or(443);

        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(&ca) {
            roots.add(c.context("CA certificate")?)?;
        }
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert)
            .collect::<Result<_, _>>()
            .context("client certificate")?;
        let key = PrivateKeyDer::from_pem_slice(&key).context("client key")?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)?;
        let mut h1 = cfg.clone();
        h1.alpn_protocols = vec![b"http/1.1".to_vec()];
        cfg.alpn_protocols = match version {
            HttpVersion::Http1 => vec![b"http/1.1".to_vec()],
            HttpVersion::Http2 => vec![b"h2".to_vec()],
        };
        Ok(Endpoint {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            connector: TlsConnector::from(Arc::new(cfg)),
            h1_connector: TlsConnector::from(Arc::new(h1)),
            version,
        })
    }

    /// An HTTP/1.1 TLS session for hand-written requests. `rcvbuf` > 0 sets SO_RCVBUF before
    /// connecting, so a client that stops reading pushes back on the server after a few KB
    /// rather than after the kernel's default window.
    pub async fn tls_h1(
        &self,
        rcvbuf: u32,
    ) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let addr = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .context("resolve")?
            .next()
            .ok_or_else(|| anyhow!("{} resolves to nothing", self.host))?;
        let sock = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        if rcvbuf > 0 {
            sock.set_recv_buffer_size(rcvbuf)?;
        }
        let tcp = sock.connect(addr).await.context("connect")?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from(self.host.clone())?;
        self.h1_connector.connect(name, tcp).await.context("TLS")
    }

    async fn tls(&self) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .context("connect")?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from(self.host.clone())?;
        self.connector.connect(name, tcp).await.context("TLS")
    }

    /// A new connection (one TCP + TLS session).
    pub async fn connect(&self) -> anyhow::Result<Conn> {
        let io = TokioIo::new(self.tls().await?);
        match self.version {
            HttpVersion::Http1 => {
                let (sender, conn) = http1::handshake(io).await?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Ok(Conn::H1(sender, self.authority()))
            }
            HttpVersion::Http2 => {
                let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                    .initial_stream_window_size(1 << 20)
                    .initial_connection_window_size(8 << 20)
                    .handshake(io)
                    .await?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Ok(Conn::H2(sender, self.authority()))
            }
        }
    }

    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A connection. HTTP/2 senders are cheap clones sharing one connection.
pub enum Conn {
    H1(http1::SendRequest<Full<Bytes>>, String),
    H2(http2::SendRequest<Full<Bytes>>, String),
}

impl Conn {
    /// Another handle on the same connection (HTTP/2 only: HTTP/1.1 has one request at a time).
    pub fn share(&self) -> Option<Conn> {
        match self {
            Conn::H1(..) => None,
            Conn::H2(s, a) => Some(Conn::H2(s.clone(), a.clone())),
        }
    }

    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Response<Incoming>> {
        let has_body = body.is_some();
        let body = Full::new(Bytes::from(body.unwrap_or_default()));
        let mut req = Request::builder().method(method);
        if has_body {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        req = req.header(http::header::ACCEPT, "application/json");
        match self {
            Conn::H1(s, authority) => {
                let req = req
                    .uri(path)
                    .header(http::header::HOST, authority.as_str())
                    .body(body)?;
                s.ready().await?;
                Ok(s.send_request(req).await?)
            }
            Conn::H2(s, authority) => {
                let req = req.uri(format!("https://{authority}{path}")).body(body)?;
                s.ready().await?;
                Ok(s.send_request(req).await?)
            }
        }
    }

    pub fn is_closed(&self) -> bool {
        match self {
            Conn::H1(s, _) => s.is_closed(),
            Conn::H2(s, _) => s.is_closed(),
        }
    }

    /// A request whose whole answer is read: (status, body).
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let resp = self.send(method, path, body).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

fn rv_of(body: &[u8]) -> anyhow::Result<i64> {
    let v: serde_json::Value = serde_json::from_slice(body)?;
    v["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("answer without metadata.resourceVersion"))
}

fn short(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned()
}

/// Writes through kapi on one connection (reconnecting if it breaks).
pub struct Writer {
    ep: Arc<Endpoint>,
    conn: Option<Conn>,
    collection: String,
}

impl Writer {
    pub fn new(ep: Arc<Endpoint>, ns: &str, plural: &str) -> Self {
        Writer {
            ep,
            conn: None,
            collection: format!("/api/v1/namespaces/{ns}/{plural}"),
        }
    }

    async fn conn(&mut self) -> anyhow::Result<&mut Conn> {
        if self.conn.as_ref().is_none_or(Conn::is_closed) {
            self.conn = Some(self.ep.connect().await?);
        }
        Ok(self.conn.as_mut().expect("just set"))
    }

    async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let r = self.conn().await?.call(method, path, body).await;
        if r.is_err() {
            self.conn = None;
        }
        r
    }

    /// Returns the resourceVersion kapi acknowledged.
    pub async fn create(&mut self, obj: &serde_json::Value) -> anyhow::Result<i64> {
        let path = self.collection.clone();
        let (status, body) = self
            .call(Method::POST, &path, Some(serde_json::to_vec(obj)?))
            .await?;
        if status != StatusCode::CREATED && status != StatusCode::OK {
            bail!("create: {status}: {}", short(&body));
        }
        rv_of(&body)
    }

    pub async fn update(&mut self, name: &str, obj: &serde_json::Value) -> anyhow::Result<i64> {
        let path = format!("{}/{name}", self.collection);
        let (status, body) = self
            .call(Method::PUT, &path, Some(serde_json::to_vec(obj)?))
            .await?;
        if status != StatusCode::OK {
            bail!("update: {status}: {}", short(&body));
        }
        rv_of(&body)
    }

    /// Deletes; the answer must carry the delete's revision (Pods return the deleted object).
    pub async fn delete(&mut self, name: &str) -> anyhow::Result<i64> {
        let path = format!("{}/{name}", self.collection);
        let (status, body) = self.call(Method::DELETE, &path, None).await?;
        if status != StatusCode::OK && status != StatusCode::ACCEPTED {
            bail!("delete: {status}: {}", short(&body));
        }
        rv_of(&body)
    }

    /// Deletes without caring about the answer (cleanup).
    pub async fn delete_quietly(&mut self, name: &str) {
        let path = format!("{}/{name}", self.collection);
        let _ = self.call(Method::DELETE, &path, None).await;
    }

    /// GET returning JSON, 2xx only.
    pub async fn get_json(&mut self, path: &str) -> anyhow::Result<serde_json::Value> {
        let (status, body) = self.call(Method::GET, path, None).await?;
        if !status.is_success() {
            bail!("GET {path}: {status}: {}", short(&body));
        }
        Ok(serde_json::from_slice(&body)?)
    }

    /// GET returning the body as text, 2xx only (e.g. /metrics).
    pub async fn get_text(&mut self, path: &str) -> anyhow::Result<String> {
        let (status, body) = self.call(Method::GET, path, None).await?;
        if !status.is_success() {
            bail!("GET {path}: {status}: {}", short(&body));
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// Creates the namespace if it is missing.
    pub async fn ensure_namespace(&mut self, ns: &str) -> anyhow::Result<()> {
        let body =
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        let (status, text) = self
            .call(
                Method::POST,
                "/api/v1/namespaces",
                Some(serde_json::to_vec(&body)?),
            )
            .await?;
        if status.is_success() || status == StatusCode::CONFLICT {
            Ok(())
        } else {
            bail!("creating namespace {ns}: {status}: {}", short(&text))
        }
    }
}

/// Opens one watch on `conn` and records what it delivers until `stop`. Reports its connection
/// (success or failure) on `connected`.
pub async fn watch(
    ctx: Arc<Ctx>,
    mut conn: Conn,
    path: String,
    mut rec: WatchRec,
    connected: tokio::sync::mpsc::UnboundedSender<Result<Option<u32>, String>>,
    mut stop: watch::Receiver<bool>,
) -> WatchRec {
    let resp =
        match tokio::time::timeout(Duration::from_secs(60), conn.send(Method::GET, &path, None))
            .await
        {
            Ok(Ok(r)) if r.status() == StatusCode::OK => r,
            Ok(Ok(r)) => {
                let status = r.status();
                let body = r
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let e = format!("watch {path}: {status}: {}", short(&body));
                let _ = connected.send(Err(e.clone()));
                rec.error = Some(e);
                rec.ended_early = true;
                return rec;
            }
            Ok(Err(e)) => {
                let e = format!("watch {path}: {e:#}");
                let _ = connected.send(Err(e.clone()));
                rec.error = Some(e);
                rec.ended_early = true;
                return rec;
            }
            Err(_) => {
                let e = format!("watch {path}: no answer within 60 s");
                let _ = connected.send(Err(e.clone()));
                rec.error = Some(e);
                rec.ended_early = true;
                return rec;
            }
        };
    rec.connected = true;
    let _ = connected.send(Ok(rec.node));
    drop(connected);
    let mut body = resp.into_body();
    let mut lines = LineBuf::default();
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            frame = body.frame() => match frame {
                Some(Ok(f)) => {
                    let Ok(data) = f.into_data() else { continue };
                    rec.bytes += data.len() as u64;
                    let mut n = 0u64;
                    lines.feed(&data, |line| {
                        if line.is_empty() {
                            return;
                        }
                        match parse_line(line) {
                            Some(l) if l.etype == b"BOOKMARK" => {}
                            Some(l) if l.etype == b"ERROR" => {
                                rec.error.get_or_insert_with(|| short(line));
                            }
                            Some(l) => {
                                n += 1;
                                rec.on_event(&ctx.acks, ctx.nodes, ctx.naming.index(l.name), l.rv);
                            }
                            None => {
                                rec.error.get_or_insert_with(|| format!("unparsable line: {}", short(line)));
                            }
                        }
                    });
                    ctx.delivered.fetch_add(n, Ordering::Relaxed);
                }
                Some(Err(e)) => {
                    rec.error.get_or_insert_with(|| format!("watch body: {e}"));
                    rec.ended_early = !*stop.borrow();
                    break;
                }
                None => {
                    rec.ended_early = !*stop.borrow();
                    if rec.ended_early {
                        rec.error.get_or_insert_with(|| "watch ended by the server".into());
                    }
                    break;
                }
            }
        }
    }
    rec
}
