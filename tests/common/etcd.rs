//! Runs a throwaway single-member etcd (Debian's `/usr/bin/etcd`, 3.4.x) for tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ETCD_BIN: &str = "/usr/bin/etcd";
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running etcd process; killed (and its data dir removed) on drop.
pub struct EtcdServer {
    /// Client URL, e.g. `http://127.0.0.1:23791`.
    pub endpoint: String,
    /// Prometheus metrics URL, e.g. `http://127.0.0.1:23793/metrics`.
    pub metrics_url: String,
    pub data_dir: PathBuf,
    pub log_file: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

/// Serving TLS for [`EtcdServer::start_tls`] (PEM files): etcd's serving certificate and key, and
/// the CA its clients' certificates must chain to (etcd runs with `--client-cert-auth`).
#[derive(Clone, Debug)]
pub struct EtcdServerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub trusted_ca_file: PathBuf,
}

/// A free loopback port (bound then released; a small race with other processes remains, which
/// `start` covers by retrying).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1:0")
        .port()
}

/// The etcd binary to use: `$KAPI_TEST_ETCD` or `/usr/bin/etcd`.
pub fn etcd_binary() -> PathBuf {
    let bin = std::env::var_os("KAPI_TEST_ETCD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(ETCD_BIN));
    if !bin.exists() {
        panic!(
            "etcd binary not found at {} (install Debian's `etcd-server` package, or set \
             KAPI_TEST_ETCD to an etcd 3.4+ binary)",
            bin.display()
        );
    }
    bin
}

impl EtcdServer {
    /// Starts etcd on random loopback ports with a 200ms watch progress-notify interval and
    /// waits (up to ~20 s) until it reports healthy. Panics with etcd's log on failure.
    pub fn start() -> EtcdServer {
        Self::start_with(None)
    }

    /// Like [`start`](Self::start), but clients must speak TLS (`https://` endpoint) and present
    /// a certificate signed by `tls.trusted_ca_file`. Metrics and `/health` stay on plain HTTP
    /// (`--listen-metrics-urls`), which is also how readiness is checked here.
    pub fn start_tls(tls: &EtcdServerTls) -> EtcdServer {
        Self::start_with(Some(tls))
    }

    fn start_with(tls: Option<&EtcdServerTls>) -> EtcdServer {
        let mut last_err = String::new();
        for _ in 0..3 {
            match Self::try_start(tls) {
                Ok(server) => return server,
                Err(e) => last_err = e,
            }
        }
        panic!("could not start etcd: {last_err}");
    }

    fn try_start(tls: Option<&EtcdServerTls>) -> Result<EtcdServer, String> {
        let bin = etcd_binary();
        let dir = tempfile::Builder::new()
            .prefix("kapi-etcd-")
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        let data_dir = dir.path().join("data");
        let log_file = dir.path().join("etcd.log");
        let (client, peer, metrics) = (free_port(), free_port(), free_port());
        let scheme = if tls.is_some() { "https" } else { "http" };
        let endpoint = format!("{scheme}://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let metrics_base = format!("http://127.0.0.1:{metrics}");
        let log = std::fs::File::create(&log_file).map_err(|e| format!("log file: {e}"))?;
        let log2 = log.try_clone().map_err(|e| format!("log file: {e}"))?;
        let mut cmd = Command::new(&bin);
        if let Some(tls) = tls {
            cmd.arg(format!("--cert-file={}", tls.cert_file.display()))
                .arg(format!("--key-file={}", tls.key_file.display()))
                .arg(format!(
                    "--trusted-ca-file={}",
                    tls.trusted_ca_file.display()
                ))
                .arg("--client-cert-auth");
        }
        let child = cmd
            .arg("--name=kapi-test")
            .arg(format!("--data-dir={}", data_dir.display()))
            .arg(format!("--listen-client-urls={endpoint}"))
            .arg(format!("--advertise-client-urls={endpoint}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=kapi-test={peer_url}"))
            .arg("--initial-cluster-state=new")
            .arg(format!("--listen-metrics-urls={metrics_base}"))
            .arg("--experimental-watch-progress-notify-interval=200ms")
            .arg("--log-level=warn")
            .arg("--logger=zap")
            .env("ETCD_UNSUPPORTED_ARCH", std::env::consts::ARCH)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", bin.display()))?;
        let mut server = EtcdServer {
            endpoint,
            metrics_url: format!("{metrics_base}/metrics"),
            data_dir,
            log_file,
            child,
            _dir: dir,
        };
        // With TLS the client port needs a certificate; the metrics listener serves /health too.
        let health_port = if tls.is_some() { metrics } else { client };
        let addr: SocketAddr = ([127, 0, 0, 1], health_port).into();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("etcd exited with {status}; log:\n{}", server.log()));
            }
            if http_get(addr, "/health").is_some_and(|body| body.contains("\"health\":\"true\"")) {
                return Ok(server);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "etcd did not become healthy within {START_TIMEOUT:?}; log:\n{}",
                    server.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// etcd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// The endpoint as the list `EtcdStore::connect` takes.
    pub fn endpoints(&self) -> Vec<String> {
        vec![self.endpoint.clone()]
    }

    /// Scrapes the metrics endpoint (Prometheus text format).
    pub fn metrics(&self) -> Option<String> {
        let rest = self.metrics_url.strip_prefix("http://")?;
        let (host, path) = rest.split_once('/')?;
        http_get(host.parse().ok()?, &format!("/{path}"))
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.0 GET; returns the body of a 200 answer.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let ok = head.split_whitespace().nth(1) == Some("200");
    ok.then(|| body.to_string())
}
