//! The HTTP version of a connection follows TLS ALPN, as in kube-apiserver (Go's net/http):
//! HTTP/2 only when the client and server agreed on "h2", HTTP/1.1 otherwise (another ALPN
//! protocol, or none at all), and no HTTP/2 "prior knowledge" over TLS.

mod common;

use bytes::Bytes;
use common::kapi::Kapi;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// A TLS connection as the admin user, offering `alpn`; also the protocol the server chose.
async fn connect(kapi: &Kapi, alpn: &[&[u8]]) -> (TlsStream<TcpStream>, Option<Vec<u8>>) {
    let cfg = common::kapi::tls_config(&kapi.data_dir, alpn);
    let tcp = TcpStream::connect(("127.0.0.1", kapi.port))
        .await
        .expect("connect kapi");
    let tls = TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("127.0.0.1").unwrap().to_owned(), tcp)
        .await
        .expect("TLS handshake");
    let negotiated = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    (tls, negotiated)
}

/// GET /version over HTTP/1.1; the response's status, version and body.
async fn get_http1(tls: TlsStream<TcpStream>) -> hyper::Result<(StatusCode, Version, Bytes)> {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let req = Request::get("/version")
        .header(http::header::HOST, "127.0.0.1")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let resp = sender.send_request(req).await?;
    let (status, version) = (resp.status(), resp.version());
    Ok((
        status,
        version,
        resp.into_body().collect().await?.to_bytes(),
    ))
}

/// GET /version over HTTP/2; the response's status, version and body.
async fn get_http2(
    tls: TlsStream<TcpStream>,
    port: u16,
) -> hyper::Result<(StatusCode, Version, Bytes)> {
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let req = Request::get(format!("https://127.0.0.1:{port}/version"))
        .body(Empty::<Bytes>::new())
        .expect("request");
    let resp = sender.send_request(req).await?;
    let (status, version) = (resp.status(), resp.version());
    Ok((
        status,
        version,
        resp.into_body().collect().await?.to_bytes(),
    ))
}

fn assert_version_body(body: &Bytes) {
    let v: serde_json::Value = serde_json::from_slice(body).expect("version JSON");
    assert!(v["gitVersion"].is_string(), "{v}");
}

#[tokio::test]
async fn http_version_follows_alpn() {
    let kapi = Kapi::embedded();

    // client-go and kubectl offer both: the server picks h2 and speaks HTTP/2.
    let (tls, alpn) = connect(&kapi, &[b"h2", b"http/1.1"]).await;
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    let (status, version, body) = get_http2(tls, kapi.port).await.expect("HTTP/2 GET");
    assert_eq!((status, version), (StatusCode::OK, Version::HTTP_2));
    assert_version_body(&body);

    // Only http/1.1 offered (kubelets, client libraries built for HTTP/1.1): HTTP/1.1.
    let (tls, alpn) = connect(&kapi, &[b"http/1.1"]).await;
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    let (status, version, body) = get_http1(tls).await.expect("HTTP/1.1 GET");
    assert_eq!((status, version), (StatusCode::OK, Version::HTTP_11));
    assert_version_body(&body);

    // No ALPN at all (curl --no-alpn, plain TLS clients): HTTP/1.1.
    let (tls, alpn) = connect(&kapi, &[]).await;
    assert_eq!(alpn, None);
    let (status, version, body) = get_http1(tls).await.expect("HTTP/1.1 GET without ALPN");
    assert_eq!((status, version), (StatusCode::OK, Version::HTTP_11));
    assert_version_body(&body);

    // No ALPN and an HTTP/2 preface: the connection is HTTP/1.1, so HTTP/2 does not work.
    let (tls, alpn) = connect(&kapi, &[]).await;
    assert_eq!(alpn, None);
    let got = tokio::time::timeout(Duration::from_secs(20), get_http2(tls, kapi.port))
        .await
        .expect("the server answers or closes");
    assert!(
        got.is_err(),
        "HTTP/2 without ALPN h2 was served: {:?}",
        got.map(|(s, v, _)| (s, v))
    );

    // The server is still fine for the next client.
    let (tls, _) = connect(&kapi, &[b"h2"]).await;
    let (status, version, _) = get_http2(tls, kapi.port).await.expect("HTTP/2 GET");
    assert_eq!((status, version), (StatusCode::OK, Version::HTTP_2));
}
