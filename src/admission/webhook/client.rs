//! The HTTPS client webhooks are called with: hyper-util's pooled client over rustls (aws-lc-rs),
//! trusting only the webhook's `caBundle` (or the system roots when it has none), sending no
//! credentials of any kind.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where one call goes.
#[derive(Clone, Debug)]
pub struct Target {
    /// `https://host:port/path?timeout=Ns`.
    pub url: String,
    /// The name the certificate must carry when it differs from the URL's host (service
    /// references: `<name>.<namespace>.svc`).
    pub server_name: Option<String>,
    /// PEM certificates to trust; empty: the system roots.
    pub ca_bundle: Vec<u8>,
}

/// A TLS connection as hyper wants it.
pub struct TlsConn(TokioIo<tokio_rustls::client::TlsStream<TcpStream>>);

impl Connection for TlsConn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl Read for TlsConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl Write for TlsConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// Dials TCP and wraps it in TLS for the given roots.
#[derive(Clone)]
struct Connector {
    tls: tokio_rustls::TlsConnector,
    server_name: Option<String>,
}

impl tower::Service<http::Uri> for Connector {
    type Response = TlsConn;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<TlsConn, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let tls = self.tls.clone();
        let sni = self.server_name.clone();
        Box::pin(async move {
            let host = uri.host().ok_or("the webhook URL has no host")?;
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(443);
            let addr = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            let tcp = TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| format!("dial tcp {addr}: {}", go_dial_error(&e)))?;
            let _ = tcp.set_nodelay(true);
            let expected = sni.unwrap_or(host);
            let name = ServerName::try_from(expected.clone())?;
            let stream = tls
                .connect(name, tcp)
                .await
                .map_err(|e| go_tls_error(&e, &expected))?;
            Ok(TlsConn(TokioIo::new(stream)))
        })
    }
}

type HttpsClient = Client<Connector, Full<Bytes>>;
/// (CA bundle, server-name override).
type ClientKey = (Vec<u8>, Option<String>);

/// Clients per (CA bundle, server name), so connections are pooled per webhook trust setting.
#[derive(Default)]
pub struct WebhookClients {
    clients: Mutex<HashMap<ClientKey, HttpsClient>>,
}

fn system_roots() -> Vec<CertificateDer<'static>> {
    for path in [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/cert.pem",
    ] {
        if let Ok(pem) = std::fs::read(path) {
            return CertificateDer::pem_slice_iter(&pem)
                .filter_map(Result::ok)
                .collect();
        }
    }
    Vec::new()
}

fn tls_config(ca_bundle: &[u8]) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    let certs: Vec<CertificateDer<'static>> = if ca_bundle.is_empty() {
        system_roots()
    } else {
        CertificateDer::pem_slice_iter(ca_bundle)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("unable to load root certificates: {e}"))?
    };
    for c in certs {
        roots
            .add(c)
            .map_err(|e| format!("unable to load root certificates: {e}"))?;
    }
    if roots.is_empty() && !ca_bundle.is_empty() {
        return Err("unable to load root certificates: no certificates found".into());
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// A dial error as Go's `net` package words it (`connect: connection refused`).
fn go_dial_error(e: &io::Error) -> String {
    let text = match e.kind() {
        io::ErrorKind::ConnectionRefused => "connect: connection refused",
        io::ErrorKind::TimedOut => "connect: connection timed out",
        io::ErrorKind::HostUnreachable => "connect: no route to host",
        io::ErrorKind::NetworkUnreachable => "connect: network is unreachable",
        io::ErrorKind::AddrNotAvailable => "connect: cannot assign requested address",
        _ => return e.to_string(),
    };
    text.to_string()
}

/// A handshake error as Go's `crypto/tls` and `crypto/x509` word the usual ones.
fn go_tls_error(e: &io::Error, host: &str) -> String {
    use rustls::CertificateError as C;
    let Some(rustls::Error::InvalidCertificate(cert)) =
        e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
    else {
        return e.to_string();
    };
    let x509 = match cert {
        C::UnknownIssuer => "x509: certificate signed by unknown authority".to_string(),
        C::NotValidForNameContext { presented, .. } => {
            let is_ip = |n: &String| n.parse::<std::net::IpAddr>().is_ok();
            let valid: Vec<&str> = if host.parse::<std::net::IpAddr>().is_ok() {
                let ips: Vec<&str> = presented
                    .iter()
                    .filter(|n| is_ip(n))
                    .map(String::as_str)
                    .collect();
                if ips.is_empty() {
                    return format!("tls: failed to verify certificate: x509: cannot validate certificate for {host} because it doesn't contain any IP SANs");
                }
                ips
            } else {
                presented
                    .iter()
                    .filter(|n| !is_ip(n))
                    .map(String::as_str)
                    .collect()
            };
            if valid.is_empty() {
                format!("x509: certificate is not valid for any names, but wanted to match {host}")
            } else {
                format!(
                    "x509: certificate is valid for {}, not {host}",
                    valid.join(", ")
                )
            }
        }
        C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
            "x509: certificate has expired or is not yet valid".to_string()
        }
        other => format!("x509: {other:?}"),
    };
    format!("tls: failed to verify certificate: {x509}")
}

/// A failed call, worded like Go's HTTP client errors.
#[derive(Debug)]
pub struct CallError(pub String);

impl WebhookClients {
    fn client(&self, target: &Target) -> Result<HttpsClient, CallError> {
        let key = (target.ca_bundle.clone(), target.server_name.clone());
        let mut m = self.clients.lock().unwrap();
        if let Some(c) = m.get(&key) {
            return Ok(c.clone());
        }
        let cfg = tls_config(&target.ca_bundle).map_err(CallError)?;
        let connector = Connector {
            tls: tokio_rustls::TlsConnector::from(Arc::new(cfg)),
            server_name: target.server_name.clone(),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        m.insert(key, client.clone());
        Ok(client)
    }

    /// POSTs a JSON body and returns the 200 response's body.
    pub async fn post(
        &self,
        target: &Target,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Bytes, CallError> {
        let client = self.client(target)?;
        let post = |e: String| CallError(format!("Post \"{}\": {e}", target.url));
        let req = http::Request::post(&target.url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json, */*")
            .header(http::header::USER_AGENT, "kapi-admission")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| post(e.to_string()))?;
        let call = async {
            let resp = client
                .request(req)
                .await
                .map_err(|e| post(client_error(&e)))?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| post(e.to_string()))?
                .to_bytes();
            if status != http::StatusCode::OK {
                let text = String::from_utf8_lossy(&body).trim().to_string();
                return Err(CallError(if text.is_empty() {
                    format!(
                        "the server responded with the status code {} but did not return more information",
                        status.as_u16()
                    )
                } else {
                    format!("an error on the server (\"{text}\") has prevented the request from succeeding")
                }));
            }
            Ok(body)
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(post("context deadline exceeded".into())),
        }
    }
}

/// A client error without hyper's own wrapping of connect errors (`client error (Connect)`),
/// which Go's client does not have: the dial or handshake error is the message.
fn client_error(e: &hyper_util::client::legacy::Error) -> String {
    use std::error::Error;
    match e.source() {
        Some(src) if e.is_connect() => error_chain(src),
        _ => error_chain(e),
    }
}

/// An error and its sources, `a: b: c`.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}
