//! The listener side: TLS material, connection serving, routing and health.

pub mod certs;
pub mod coalesce;
pub mod health;
pub mod router;

use crate::api::handlers::{error_response, Api};
use crate::api::status::ApiError;
use crate::auth::authn::ConnInfo;
use crate::cache::watchers::{Backlog, CONN_BACKLOG};
use crate::cache::Caches;
use crate::config::Config;
use crate::storage::embedded::EmbeddedStore;
use crate::storage::encrypted::{Encrypted, EncryptionConfig};
use crate::storage::etcd::{EtcdStore, EtcdTls};
use crate::storage::metered::Metered;
use crate::storage::DynStore;
use anyhow::Context;
use coalesce::Coalesce;
use futures::FutureExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use router::Router;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Raises the open-file limit (soft to hard): every watcher is a socket.
pub fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let old = lim.rlim_cur;
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                tracing::info!(from = old, to = lim.rlim_max, "raised RLIMIT_NOFILE");
            }
        }
    }
}

/// The store stack: encryption at rest (if configured) outside the metered store, so that
/// `etcd_request_duration_seconds` times only the store round trip, as in kube-apiserver (where
/// transformation has its own `apiserver_storage_transformation_*` metrics).
fn layered<S: crate::storage::Store>(
    store: S,
    cfg: &Config,
    encryption: Option<EncryptionConfig>,
) -> DynStore {
    let metered = Metered::new(store, &cfg.etcd_prefix);
    match encryption {
        Some(e) => Arc::new(Encrypted::new(metered, &cfg.etcd_prefix, e)),
        None => Arc::new(metered),
    }
}

async fn open_store(cfg: &Config) -> anyhow::Result<DynStore> {
    let encryption = match &cfg.encryption_provider_config {
        Some(path) => Some(EncryptionConfig::load(path)?),
        None => None,
    };
    if cfg.etcd_servers.is_empty() {
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
        let path = cfg.data_dir.join("kapi.redb");
        let store = EmbeddedStore::open(&path)
            .map_err(|e| anyhow::anyhow!("opening {}: {e}", path.display()))?;
        tracing::info!(path = %path.display(), "using the embedded store");
        Ok(layered(store, cfg, encryption))
    } else {
        let tls = EtcdTls::from_flags(
            cfg.etcd_cafile.clone(),
            cfg.etcd_certfile.clone(),
            cfg.etcd_keyfile.clone(),
        );
        let store = EtcdStore::connect(&cfg.etcd_servers, tls)
            .await
            .map_err(|e| anyhow::anyhow!("connecting to etcd {:?}: {e}", cfg.etcd_servers))?;
        tracing::info!(endpoints = ?cfg.etcd_servers, "using etcd");
        Ok(layered(store, cfg, encryption))
    }
}

/// Starts everything and serves until the process is stopped.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    raise_nofile_limit();
    crate::metrics::install()?;
    let audit = crate::audit::Auditor::from_config(&cfg).context("configuring audit logging")?;
    let store = open_store(&cfg).await?;
    std::fs::create_dir_all(&cfg.data_dir)?;

    let listener = TcpListener::bind(SocketAddr::new(cfg.bind_address, cfg.secure_port))
        .await
        .with_context(|| format!("binding {}:{}", cfg.bind_address, cfg.secure_port))?;
    let local = listener.local_addr()?;
    let advertised = SocketAddr::new(cfg.advertise_address.unwrap_or(local.ip()), local.port());
    let host = match advertised.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let server_url = format!("https://{host}:{}", advertised.port());

    // TLS: operator-provided files, or a CA and certificates generated on first start.
    let hosts = vec![advertised.ip().to_string(), local.ip().to_string()];
    let generated = certs::ensure_self_signed(&cfg.data_dir.join("pki"), &hosts)?;
    let (cert_pem, key_pem) = match (&cfg.tls_cert_file, &cfg.tls_private_key_file) {
        (Some(c), Some(k)) => (std::fs::read_to_string(c)?, std::fs::read_to_string(k)?),
        (None, None) => (generated.cert_pem.clone(), generated.key_pem.clone()),
        _ => anyhow::bail!("--tls-cert-file and --tls-private-key-file go together"),
    };
    let client_ca = match &cfg.client_ca_file {
        Some(p) => std::fs::read_to_string(p)?,
        None => generated.ca_pem.clone(),
    };
    let tls = certs::server_config(&cert_pem, &key_pem, Some(&client_ca))?;
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let kubeconfig = cfg.data_dir.join("admin.kubeconfig");
    let serving_ca = if cfg.tls_cert_file.is_some() {
        None
    } else {
        Some(generated.ca_pem.as_str())
    };
    if let Some(ca) = serving_ca {
        certs::write_kubeconfig(
            &kubeconfig,
            &server_url,
            ca,
            &generated.admin_cert_pem,
            &generated.admin_key_pem,
        )?;
    }

    crate::api::handlers::token_request::install(&cfg)
        .context("configuring service-account token issuance")?;
    let admission =
        Arc::new(crate::admission::Chain::from_config(&cfg).context("configuring admission")?);
    let caches = Caches::start(store.clone(), &cfg.etcd_prefix, cfg.watch_cache_history);
    let api = Arc::new(Api {
        admission: admission.clone(),
        store,
        caches,
        etcd_prefix: cfg.etcd_prefix.trim_end_matches('/').to_string(),
        namespace_deleted: Arc::new(tokio::sync::Notify::new()),
        min_request_timeout: cfg.min_request_timeout,
    });
    loop {
        match crate::controllers::namespaces::ensure_system_namespaces(&api).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(error = %e, "cannot create system namespaces yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    tokio::spawn(crate::controllers::namespaces::run_finalizer(api.clone()));
    loop {
        match crate::controllers::bootstrap_rbac::ensure_bootstrap_policy(&api).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(error = %e, "cannot bootstrap the RBAC policy yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    tokio::spawn(crate::controllers::bootstrap_rbac::run_aggregation(
        api.clone(),
    ));
    // What kube-controller-manager would do and clients expect: default service accounts and
    // kube-root-ca.crt in every namespace, and ResourceQuota usage.
    crate::admission::service_account::spawn_controller(
        api.clone(),
        Some(generated.ca_pem.clone()),
        Duration::from_secs(60),
    );
    if admission.enabled().contains(&"ResourceQuota") {
        crate::admission::resource_quota::spawn_controller(api.clone(), Duration::from_secs(30));
    }

    let security = Arc::new(
        crate::auth::Security::from_config(&cfg, api.clone())
            .context("configuring authentication and authorization")?,
    );
    let router = Arc::new(Router {
        security,
        api,
        server_address: format!("{host}:{}", advertised.port()),
        audit,
    });
    tracing::info!(url = %server_url, kubeconfig = %kubeconfig.display(), "kapi is serving");
    println!(
        "kapi: serving on {server_url} (kubeconfig: {})",
        kubeconfig.display()
    );

    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => {
                tracing::info!("shutting down");
                if let Some(a) = &router.audit {
                    a.flush(Duration::from_secs(5));
                }
                return Ok(());
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            // Served by a task of its own, sized for serving: this one, sized for the handshake,
            // is freed now rather than held for the connection's life.
            serve(tls, peer, router);
        });
    }
}

type TlsStream = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

/// Serves one connection after its TLS handshake, in a task of its own.
fn serve(tls: TlsStream, peer: SocketAddr, router: Arc<Router>) {
    // The client certificates rustls verified against the client CA, for x509
    // authentication of every request on this connection.
    let conn = Arc::new(ConnInfo {
        peer_certificates: tls
            .get_ref()
            .1
            .peer_certificates()
            .map(|c| Arc::new(c.iter().map(|d| d.clone().into_owned()).collect())),
    });
    let alpn_h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
    // Watchers on this connection count their queued frames here; the writer below
    // waits for them before flushing.
    let backlog = Arc::new(Backlog::default());
    let io = TokioIo::new(Coalesce::new(tls, backlog.clone()));
    let service = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(crate::audit::RemoteAddr(peer));
        let router = router.clone();
        let conn = conn.clone();
        let backlog = backlog.clone();
        // Boxed: hyper keeps a request's task (HTTP/2) or connection state (HTTP/1.1)
        // sized for this future for as long as the response streams, and a watch streams
        // for minutes; boxed, the handler's state is freed once the response starts.
        Box::pin(async move {
            let route = CONN_BACKLOG.scope(backlog, async { router.route(req, &conn).await });
            let resp = AssertUnwindSafe(route)
                .catch_unwind()
                .await
                .unwrap_or_else(|_| {
                    tracing::error!("handler panicked");
                    error_response(&ApiError::internal(
                        "the server panicked while handling the request",
                    ))
                });
            Ok::<_, std::convert::Infallible>(resp)
        })
    });
    // As kube-apiserver (Go's net/http): HTTP/2 only when ALPN negotiated "h2", otherwise
    // HTTP/1.1. Serving with the version's own builder (rather than hyper-util's auto
    // builder, which sniffs the preface and replays it through a rewind buffer) keeps
    // no detection state for the connection's life, and hyper's HTTP/1.1 read buffer
    // stays at its initial 8 KiB (the rewind handed hyper the 24 sniffed bytes alone, so
    // it read the request head twice and grew the buffer to 16 KiB).
    let ended = move |served: hyper::Result<()>| {
        if let Err(e) = served {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
    };
    // The task is hyper's connection future itself (`map`, not an async block, which would
    // hold a second copy of it), so an idle connection's task is no larger than its state.
    if alpn_h2 {
        let builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        tokio::spawn(builder.serve_connection(io, service).map(ended));
    } else {
        let builder = hyper::server::conn::http1::Builder::new();
        tokio::spawn(builder.serve_connection(io, service).map(ended));
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
