//! Watchers that never read: each on its own TLS connection, the HTTP/1.1 watch request written
//! by hand, then not a byte read while the run lasts. They show what one stuck client costs the
//! server and the healthy watchers. After the measured window the generator reads what each one
//! had coming (bounded in time) to learn whether the server answered 200, how much it had queued
//! in the connection and whether it had cut the watcher off.

use crate::kapi::Endpoint;
use memchr::memmem;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

pub struct Stuck {
    stream: TlsStream<TcpStream>,
}

/// Opens the connection and sends the watch request; reads nothing.
pub async fn open(ep: &Endpoint, path: &str, rcvbuf: u32) -> anyhow::Result<Stuck> {
    let mut stream = ep.tls_h1(rcvbuf).await?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nUser-Agent: kapi-loadgen-stuck\r\n\r\n",
        ep.authority()
    );
    stream.write_all(req.as_bytes()).await?;
    stream.flush().await?;
    Ok(Stuck { stream })
}

/// What a stuck watcher received once it started reading after the run.
#[derive(Default)]
pub struct Drained {
    pub status: String,
    pub bytes: u64,
    /// Watch frames (`{"type":"`) in those bytes.
    pub events: u64,
    /// The server closed the connection (EOF or reset) while we read.
    pub closed: bool,
    pub error: Option<String>,
    pub read_s: f64,
}

impl Drained {
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "status": self.status,
            "bytes_read_after_run": self.bytes,
            "events_read_after_run": self.events,
            "closed_by_server": self.closed,
            "error": self.error,
            "read_s": (self.read_s * 1000.0).round() / 1000.0,
        })
    }
}

impl Stuck {
    /// Reads until EOF, `idle` without data, or `limit` in all.
    pub async fn drain(mut self, idle: Duration, limit: Duration) -> Drained {
        let started = Instant::now();
        let mut d = Drained::default();
        let mut buf = vec![0u8; 64 * 1024];
        let mut head: Vec<u8> = Vec::new();
        let needle = b"{\"type\":\"";
        // The last bytes of the previous read, so a frame marker split across reads counts.
        let mut carry: Vec<u8> = Vec::new();
        while started.elapsed() < limit {
            match tokio::time::timeout(idle, self.stream.read(&mut buf)).await {
                Err(_) => break,
                Ok(Ok(0)) => {
                    d.closed = true;
                    break;
                }
                Ok(Ok(n)) => {
                    let data = &buf[..n];
                    d.bytes += n as u64;
                    if head.len() < 256 {
                        head.extend_from_slice(&data[..data.len().min(256 - head.len())]);
                    }
                    carry.extend_from_slice(data);
                    d.events += memmem::find_iter(&carry, needle).count() as u64;
                    let keep = carry.len().min(needle.len() - 1);
                    carry.drain(..carry.len() - keep);
                }
                Ok(Err(e)) => {
                    d.closed = true;
                    d.error = Some(e.to_string());
                    break;
                }
            }
        }
        d.status = String::from_utf8_lossy(&head)
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        d.read_s = started.elapsed().as_secs_f64();
        d
    }
}
