//! Command-line flags, named after kube-apiserver's where one exists.

use clap::Parser;
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "kapi",
    version,
    about = "A Kubernetes API server built around a revision-indexed watch cache"
)]
pub struct Config {
    /// Address to serve HTTPS on.
    #[arg(long = "bind-address", default_value = "127.0.0.1")]
    pub bind_address: IpAddr,

    /// Port to serve HTTPS on (0 picks a free port; the chosen address is logged and printed).
    #[arg(long = "secure-port", default_value_t = 6443)]
    pub secure_port: u16,

    /// etcd endpoints (comma-separated). Without it, kapi uses its embedded store in --data-dir.
    #[arg(long = "etcd-servers", value_delimiter = ',')]
    pub etcd_servers: Vec<String>,

    /// Prefix of every key kapi stores.
    #[arg(long = "etcd-prefix", default_value = "/registry")]
    pub etcd_prefix: String,

    /// CA bundle to verify etcd's serving certificate.
    #[arg(long = "etcd-cafile")]
    pub etcd_cafile: Option<PathBuf>,

    /// Client certificate for etcd.
    #[arg(long = "etcd-certfile")]
    pub etcd_certfile: Option<PathBuf>,

    /// Client key for etcd.
    #[arg(long = "etcd-keyfile")]
    pub etcd_keyfile: Option<PathBuf>,

    /// Serving certificate (PEM). Without it, kapi generates a CA and certificate in --data-dir.
    #[arg(long = "tls-cert-file")]
    pub tls_cert_file: Option<PathBuf>,

    /// Serving key (PEM).
    #[arg(long = "tls-private-key-file")]
    pub tls_private_key_file: Option<PathBuf>,

    /// CA that signs client certificates kapi accepts.
    #[arg(long = "client-ca-file")]
    pub client_ca_file: Option<PathBuf>,

    /// Where the embedded store, generated certificates and admin.kubeconfig live.
    #[arg(long = "data-dir", default_value = "./kapi-data")]
    pub data_dir: PathBuf,

    /// Address advertised to clients (defaults to the bind address).
    #[arg(long = "advertise-address")]
    pub advertise_address: Option<IpAddr>,

    /// Watches without timeoutSeconds last a random time in [this, 2×this) seconds.
    #[arg(long = "min-request-timeout", default_value_t = 1800)]
    pub min_request_timeout: u64,

    /// Events kept per resource in the watch cache's history ring (resumable watch window).
    #[arg(long = "watch-cache-history", default_value_t = 10_240)]
    pub watch_cache_history: usize,

    /// Log verbosity (0 = info, 2+ = debug, 4+ = trace); RUST_LOG overrides it.
    #[arg(short = 'v', long = "v", default_value_t = 0)]
    pub verbosity: u8,
}
