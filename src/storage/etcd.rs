//! etcd-backed Store.
//!
//! Every operation maps onto one etcd RPC (a transaction for guarded writes), so revisions,
//! compaction and watch semantics are etcd's own. Notes:
//! - `count` with a `min_mod_revision` bound runs a keys-only range and counts the returned keys:
//!   etcd ignores mod-revision filters for `count_only` requests (its `count` is unfiltered).
//! - etcd's "required revision has been compacted" error does not carry the compacted revision;
//!   `range`/`count`/`compact` find it by opening a short watch from revision 1, which etcd
//!   cancels with the compact revision (bounded by a timeout; `compacted: 0` if it fails).
//! - Several `--etcd-servers`: etcd-client balances requests over all endpoints but never retries,
//!   so with one member down a share of requests would fail. Each endpoint gets its own client
//!   instead, requests go to one active member, and a request its member could not serve moves on
//!   to the next one (which becomes the active member): reads on any transport failure, writes
//!   only when no connection could be made (the request was never sent, so it cannot apply
//!   twice).

use super::{
    prefix_end, KeyValue, RangeResult, Revision, Store, StoreError, StoreEvent, StoreResult,
    WatchMessage,
};
use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, Identity,
    KvClient, TlsOptions, Txn, TxnOp, TxnOpResponse, WatchClient, WatchOptions, WatchResponse,
    WatchStream,
};
use futures::stream::{BoxStream, StreamExt};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Client TLS material for talking to etcd (PEM files).
#[derive(Clone, Debug, Default)]
pub struct EtcdTls {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl EtcdTls {
    /// TLS settings from `--etcd-cafile/--etcd-certfile/--etcd-keyfile`; `None` if none is set.
    /// Any one of them turns TLS on, so that a lone key file is reported rather than ignored.
    pub fn from_flags(
        ca_file: Option<PathBuf>,
        cert_file: Option<PathBuf>,
        key_file: Option<PathBuf>,
    ) -> Option<EtcdTls> {
        (ca_file.is_some() || cert_file.is_some() || key_file.is_some()).then_some(EtcdTls {
            ca_file,
            cert_file,
            key_file,
        })
    }
}

/// One etcd endpoint and its clients.
#[derive(Clone)]
struct Member {
    endpoint: String,
    client: Client,
    kv: KvClient,
    watch: WatchClient,
}

/// A `Store` backed by an etcd v3 cluster (see the module notes on several endpoints).
#[derive(Clone)]
pub struct EtcdStore {
    members: Arc<[Member]>,
    /// Index of the member requests go to first.
    active: Arc<AtomicUsize>,
}

/// Whether a request may be sent again to another member after a failure.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Replay {
    /// Reads and watch creation: always.
    Safe,
    /// Writes: only if the failed attempt never reached etcd.
    IfUnsent,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const COMPACT_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_MESSAGE: usize = i32::MAX as usize;
const WATCH_CREATE_TIMEOUT: Duration = Duration::from_secs(10);

impl EtcdStore {
    /// Connects to etcd and checks that one of the endpoints answers (each bounded by a few
    /// seconds); the first that does becomes the active member. The error names every
    /// endpoint's failure, with a hint when it looks like a TLS misconfiguration.
    pub async fn connect(endpoints: &[String], tls: Option<EtcdTls>) -> Result<Self, StoreError> {
        if endpoints.is_empty() {
            return Err(StoreError::Unavailable("no etcd endpoints given".into()));
        }
        let tls_opts = tls.as_ref().map(tls_options).transpose()?;
        let mut members = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            let mut options = ConnectOptions::new()
                .with_connect_timeout(CONNECT_TIMEOUT)
                .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
                .with_keep_alive_while_idle(true);
            match &tls_opts {
                // As kube-apiserver's etcd client: credentials are dropped for http:// endpoints.
                Some(_) if endpoint.starts_with("http://") => {
                    tracing::warn!(
                        %endpoint,
                        "plain http:// etcd endpoint: the --etcd-* TLS files are not used for it"
                    );
                }
                Some(t) => options = options.with_tls(t.clone()),
                None => {}
            }
            // Connecting is lazy: this only validates the endpoint and builds the channel.
            let client = Client::connect([endpoint], Some(options))
                .await
                .map_err(|e| StoreError::Unavailable(format!("etcd endpoint {endpoint}: {e}")))?;
            // Lists and watch catch-up batches can be far larger than tonic's 4 MiB default.
            members.push(Member {
                endpoint: endpoint.clone(),
                kv: client.kv_client().max_decoding_message_size(MAX_MESSAGE),
                watch: client.watch_client().max_decoding_message_size(MAX_MESSAGE),
                client,
            });
        }
        let mut failures = Vec::new();
        for (i, m) in members.iter().enumerate() {
            let mut kv = m.kv.clone();
            let probe = kv.get("/", Some(GetOptions::new().with_count_only()));
            match tokio::time::timeout(CONNECT_TIMEOUT * 2, probe).await {
                Ok(Ok(_)) => {
                    if !failures.is_empty() {
                        tracing::warn!(
                            endpoint = %m.endpoint,
                            unreachable = ?failures,
                            "using a later etcd endpoint"
                        );
                    }
                    return Ok(EtcdStore {
                        members: members.into(),
                        active: Arc::new(AtomicUsize::new(i)),
                    });
                }
                Ok(Err(e)) => {
                    failures.push(format!("{}: {e}{}", m.endpoint, tls_hint(&e, tls.as_ref())))
                }
                Err(_) => failures.push(format!(
                    "{}: no answer within {:?}",
                    m.endpoint,
                    CONNECT_TIMEOUT * 2
                )),
            }
        }
        Err(StoreError::Unavailable(format!(
            "no etcd endpoint answers: {}",
            failures.join("; ")
        )))
    }

    /// The active member's etcd client (for health checks and metrics).
    pub fn client(&self) -> Client {
        self.member(self.active.load(Ordering::Relaxed))
            .client
            .clone()
    }

    fn member(&self, i: usize) -> &Member {
        &self.members[i % self.members.len()]
    }

    /// Runs `op` against the active member and, when that member could not serve it (see
    /// [`member_down`]), against the next ones in turn, making the one tried next active.
    async fn call<T, F, Fut>(&self, replay: Replay, op: F) -> Result<T, etcd_client::Error>
    where
        F: Fn(Member) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let n = self.members.len();
        let first = self.active.load(Ordering::Relaxed) % n;
        let mut tried = 0;
        loop {
            let i = (first + tried) % n;
            let m = self.member(i).clone();
            let endpoint = m.endpoint.clone();
            match op(m).await {
                Err(e) if tried + 1 < n && member_down(&e, replay) => {
                    tracing::warn!(
                        %endpoint,
                        error = %e,
                        "etcd endpoint failed; trying the next one"
                    );
                    // Only the first caller to see this member fail moves the pointer on.
                    let _ = self.active.compare_exchange(
                        i,
                        (i + 1) % n,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                    tried += 1;
                }
                r => return r,
            }
        }
    }

    /// The revision etcd has compacted to, found by watching from revision 1 (etcd cancels such a
    /// watch with its compact revision). 0 if it cannot be determined.
    async fn compacted_revision(&self) -> Revision {
        let probe = async {
            let mut client = self
                .member(self.active.load(Ordering::Relaxed))
                .watch
                .clone();
            let opts = WatchOptions::new().with_start_revision(1);
            let mut ws = client.watch("/", Some(opts)).await.ok()?;
            loop {
                let resp = ws.message().await.ok()??;
                if resp.compact_revision() > 0 {
                    return Some(resp.compact_revision());
                }
                if resp.canceled() || !resp.events().is_empty() {
                    return None;
                }
            }
        };
        tokio::time::timeout(COMPACT_PROBE_TIMEOUT, probe)
            .await
            .ok()
            .flatten()
            .unwrap_or(0)
    }

    /// Maps an etcd error, filling in the compacted revision when needed.
    async fn read_err(&self, e: etcd_client::Error) -> StoreError {
        match map_err(e) {
            StoreError::Compacted { .. } => StoreError::Compacted {
                compacted: self.compacted_revision().await,
            },
            other => other,
        }
    }

    /// Runs a guarded write; on guard failure reports `Conflict` or `NotFound` from the Get.
    async fn guarded(&self, key: &str, expected: Revision, op: TxnOp) -> StoreResult<Revision> {
        let txn = Txn::new()
            .when([
                Compare::version(key, CompareOp::Greater, 0),
                Compare::mod_revision(key, CompareOp::Equal, expected),
            ])
            .and_then([op])
            .or_else([TxnOp::get(key, None)]);
        let resp = self
            .call(Replay::IfUnsent, |mut m| {
                let txn = txn.clone();
                async move { m.kv.txn(txn).await }
            })
            .await
            .map_err(map_err)?;
        if resp.succeeded() {
            return header_revision(resp.header());
        }
        match first_get_kv(&resp.op_responses())? {
            Some(current) => Err(StoreError::Conflict {
                current: Some(current),
            }),
            None => Err(StoreError::NotFound),
        }
    }
}

/// The errors in `status`'s source chain.
fn sources(status: &tonic::Status) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    std::iter::successors(std::error::Error::source(status), |e| e.source())
}

/// Whether `e` means the member could not serve the request, so that another one may.
/// A status carrying a source was made by the client (transport failure); one without came from
/// etcd itself, and only its "unavailable" (no leader, stopping) says the member cannot serve.
fn member_down(e: &etcd_client::Error, replay: Replay) -> bool {
    let status = match e {
        etcd_client::Error::GRpcStatus(status) => status,
        // Building the channel failed: nothing was sent.
        etcd_client::Error::TransportError(_) => return true,
        _ => return false,
    };
    let unsent = sources(status).any(|s| s.is::<tonic::ConnectError>());
    match replay {
        Replay::IfUnsent => unsent,
        Replay::Safe => {
            unsent
                || status.code() == tonic::Code::Unavailable
                || (std::error::Error::source(status).is_some()
                    && matches!(
                        status.code(),
                        tonic::Code::Unknown | tonic::Code::Cancelled | tonic::Code::Internal
                    ))
        }
    }
}

/// A hint appended to a connection failure that looks like a TLS misconfiguration.
fn tls_hint(e: &etcd_client::Error, tls: Option<&EtcdTls>) -> String {
    let text = match e {
        etcd_client::Error::GRpcStatus(s) => {
            let mut t = s.message().to_string();
            for src in sources(s) {
                t.push_str(&format!(" {src} {src:?}"));
            }
            t
        }
        other => format!("{other} {other:?}"),
    };
    let has = |needle: &str| text.contains(needle);
    let ca = tls.and_then(|t| t.ca_file.as_ref());
    let cert = tls.and_then(|t| t.cert_file.as_ref());
    if has("invalid peer certificate") || has("InvalidCertificate") {
        return match ca {
            Some(ca) => format!(
                " (etcd's serving certificate does not verify against --etcd-cafile={})",
                ca.display()
            ),
            None => " (etcd's serving certificate cannot be verified: pass the CA that signed it \
                 with --etcd-cafile)"
                .into(),
        };
    }
    // With TLS 1.3 the client finishes its handshake before etcd checks the certificate, so a
    // rejection shows as an alert, or as the connection closing under the first request.
    let rejected = [
        "BadCertificate",
        "CertificateRequired",
        "UnknownCA",
        "connection closed",
        "operation was canceled",
        "BrokenPipe",
        "ConnectionReset",
        "UnexpectedEof",
    ]
    .iter()
    .any(|n| has(n));
    match (tls, cert) {
        (Some(_), None) if rejected => " (etcd closed the TLS connection: it may require a client \
             certificate; pass --etcd-certfile and --etcd-keyfile)"
            .into(),
        (Some(_), Some(cert)) if rejected => format!(
            " (etcd closed the TLS connection: it may have rejected the client certificate \
             --etcd-certfile={}; it must be signed by a CA in etcd's --trusted-ca-file)",
            cert.display()
        ),
        _ => String::new(),
    }
}

fn tls_options(tls: &EtcdTls) -> StoreResult<TlsOptions> {
    let read = |p: &PathBuf| {
        std::fs::read(p).map_err(|e| StoreError::Unavailable(format!("reading {p:?}: {e}")))
    };
    let mut opts = TlsOptions::new();
    if let Some(ca) = &tls.ca_file {
        opts = opts.ca_certificate(Certificate::from_pem(read(ca)?));
    }
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            opts = opts.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        (None, None) => {}
        _ => {
            return Err(StoreError::Unavailable(
                "etcd client TLS needs both a certificate and a key file".into(),
            ))
        }
    }
    Ok(opts)
}

fn map_err(e: etcd_client::Error) -> StoreError {
    if let etcd_client::Error::GRpcStatus(status) = &e {
        let msg = status.message();
        if msg.contains("required revision has been compacted") {
            return StoreError::Compacted { compacted: 0 };
        }
        if msg.contains("required revision is a future revision") {
            return StoreError::FutureRevision;
        }
    }
    StoreError::Unavailable(format!("etcd: {e}"))
}

fn header_revision(h: Option<&etcd_client::ResponseHeader>) -> StoreResult<Revision> {
    h.map(|h| h.revision())
        .ok_or_else(|| StoreError::Unavailable("etcd: response without header".into()))
}

fn convert_kv(kv: &etcd_client::KeyValue) -> StoreResult<KeyValue> {
    let key = kv
        .key_str()
        .map_err(|e| StoreError::Unavailable(format!("etcd: non UTF-8 key: {e}")))?;
    Ok(KeyValue {
        key: key.to_string(),
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    })
}

fn first_get_kv(responses: &[TxnOpResponse]) -> StoreResult<Option<KeyValue>> {
    for r in responses {
        if let TxnOpResponse::Get(get) = r {
            return get.kvs().first().map(convert_kv).transpose();
        }
    }
    Ok(None)
}

/// `[start or prefix, prefix_end(prefix))` as etcd key bytes (an empty key means "\0").
fn range_bounds(prefix: &str, start: Option<&str>) -> (Vec<u8>, Vec<u8>) {
    let mut from = match start {
        Some(s) if s > prefix => s.as_bytes().to_vec(),
        _ => prefix.as_bytes().to_vec(),
    };
    if from.is_empty() {
        from = vec![0];
    }
    (from, prefix_end(prefix))
}

fn convert_event(ev: &etcd_client::Event) -> StoreResult<StoreEvent> {
    let kv = ev
        .kv()
        .ok_or_else(|| StoreError::Unavailable("etcd: watch event without kv".into()))?;
    let prev = ev.prev_kv().map(convert_kv).transpose()?;
    Ok(match ev.event_type() {
        EventType::Put => StoreEvent::Put {
            kv: convert_kv(kv)?,
            prev,
        },
        EventType::Delete => StoreEvent::Delete {
            key: convert_kv(kv)?.key,
            revision: kv.mod_revision(),
            prev,
        },
    })
}

/// State of a watch stream: the etcd stream plus a response read ahead while waiting for the
/// watch to be created. `None` ends the stream.
type WatchState = Option<(WatchStream, Option<WatchResponse>)>;

/// Turns one etcd watch response into a kapi message; `None` skips it.
fn convert_response(resp: &WatchResponse) -> Option<Result<WatchMessage, StoreError>> {
    if resp.compact_revision() > 0 {
        let compacted = resp.compact_revision();
        return Some(Err(StoreError::Compacted { compacted }));
    }
    if resp.canceled() {
        let msg = format!("etcd: watch canceled: {}", resp.cancel_reason());
        return Some(Err(StoreError::Unavailable(msg)));
    }
    if resp.events().is_empty() {
        if resp.created() {
            return None;
        }
        return Some(header_revision(resp.header()).map(WatchMessage::Progress));
    }
    Some(
        resp.events()
            .iter()
            .map(convert_event)
            .collect::<StoreResult<Vec<_>>>()
            .map(WatchMessage::Events),
    )
}

/// Reads the next message for the kapi watch stream. Errors end the stream.
async fn next_watch_message(state: WatchState) -> Option<(StoreResult<WatchMessage>, WatchState)> {
    let (mut ws, mut pending) = state?;
    loop {
        let resp = match pending.take() {
            Some(resp) => resp,
            None => match ws.message().await {
                Ok(Some(resp)) => resp,
                Ok(None) => {
                    let e = StoreError::Unavailable("etcd: watch stream closed".into());
                    return Some((Err(e), None));
                }
                Err(e) => return Some((Err(map_err(e)), None)),
            },
        };
        match convert_response(&resp) {
            None => continue,
            Some(Ok(msg)) => return Some((Ok(msg), Some((ws, None)))),
            Some(Err(e)) => return Some((Err(e), None)),
        }
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> StoreResult<(Option<KeyValue>, Revision)> {
        let resp = self
            .call(
                Replay::Safe,
                |mut m| async move { m.kv.get(key, None).await },
            )
            .await
            .map_err(map_err)?;
        let kv = resp.kvs().first().map(convert_kv).transpose()?;
        Ok((kv, header_revision(resp.header())?))
    }

    async fn range(
        &self,
        prefix: &str,
        start: Option<&str>,
        limit: i64,
        revision: Revision,
    ) -> StoreResult<RangeResult> {
        let (from, end) = range_bounds(prefix, start);
        let opts = GetOptions::new()
            .with_range(end)
            .with_limit(limit.max(0))
            .with_revision(revision.max(0));
        let resp = match self
            .call(Replay::Safe, |mut m| {
                let (from, opts) = (from.clone(), opts.clone());
                async move { m.kv.get(from, Some(opts)).await }
            })
            .await
        {
            Ok(resp) => resp,
            Err(e) => return Err(self.read_err(e).await),
        };
        let kvs = resp
            .kvs()
            .iter()
            .map(convert_kv)
            .collect::<StoreResult<Vec<_>>>()?;
        let revision = if revision > 0 {
            revision
        } else {
            header_revision(resp.header())?
        };
        Ok(RangeResult {
            kvs,
            more: resp.more(),
            count: resp.count(),
            revision,
        })
    }

    async fn count(
        &self,
        prefix: &str,
        revision: Revision,
        min_mod_revision: Revision,
    ) -> StoreResult<i64> {
        let (from, end) = range_bounds(prefix, None);
        let mut opts = GetOptions::new()
            .with_range(end)
            .with_revision(revision.max(0));
        // etcd applies mod-revision filters to the returned keys only, never to `count`.
        opts = if min_mod_revision > 0 {
            opts.with_keys_only()
                .with_min_mod_revision(min_mod_revision)
        } else {
            opts.with_count_only()
        };
        let resp = match self
            .call(Replay::Safe, |mut m| {
                let (from, opts) = (from.clone(), opts.clone());
                async move { m.kv.get(from, Some(opts)).await }
            })
            .await
        {
            Ok(resp) => resp,
            Err(e) => return Err(self.read_err(e).await),
        };
        Ok(if min_mod_revision > 0 {
            resp.kvs().len() as i64
        } else {
            resp.count()
        })
    }

    async fn create(&self, key: &str, value: Bytes) -> StoreResult<Revision> {
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value.to_vec(), None)])
            .or_else([TxnOp::get(key, None)]);
        let resp = self
            .call(Replay::IfUnsent, |mut m| {
                let txn = txn.clone();
                async move { m.kv.txn(txn).await }
            })
            .await
            .map_err(map_err)?;
        if resp.succeeded() {
            header_revision(resp.header())
        } else {
            Err(StoreError::AlreadyExists)
        }
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> StoreResult<Revision> {
        self.guarded(key, expected, TxnOp::put(key, value.to_vec(), None))
            .await
    }

    async fn delete(&self, key: &str, expected: Revision) -> StoreResult<Revision> {
        self.guarded(key, expected, TxnOp::delete(key, None)).await
    }

    async fn watch(
        &self,
        prefix: &str,
        from: Revision,
    ) -> StoreResult<BoxStream<'static, StoreResult<WatchMessage>>> {
        let (key, end) = range_bounds(prefix, None);
        let opts = WatchOptions::new()
            .with_range(end)
            .with_prev_key()
            .with_progress_notify()
            .with_start_revision(from.max(0));
        // Wait until etcd has registered the watcher, so that a watch from "now" (0) sees every
        // write made after this call returns. Anything else read meanwhile is kept for the stream.
        // Etcd errors (the outer Result) may move on to another member; the rest end the call.
        let created = self
            .call(Replay::Safe, |mut m| {
                let (key, opts) = (key.clone(), opts.clone());
                async move {
                    let mut ws = m.watch.watch(key, Some(opts)).await?;
                    let Ok(first) = tokio::time::timeout(WATCH_CREATE_TIMEOUT, ws.message()).await
                    else {
                        return Ok(Err(StoreError::Unavailable(
                            "etcd: watch creation timed out".into(),
                        )));
                    };
                    Ok(match first? {
                        Some(resp) if resp.created() && !resp.canceled() => Ok((ws, None)),
                        Some(resp) => Ok((ws, Some(resp))),
                        None => Err(StoreError::Unavailable("etcd: watch stream closed".into())),
                    })
                }
            })
            .await
            .map_err(map_err)?;
        let (ws, pending) = created?;
        // The WatchStream (request sender + response stream) lives in the unfold state, so
        // dropping the returned stream cancels the etcd watch.
        Ok(futures::stream::unfold(Some((ws, pending)), next_watch_message).boxed())
    }

    async fn current_revision(&self) -> StoreResult<Revision> {
        let resp = self
            .call(Replay::Safe, |mut m| async move {
                m.kv.get("/", Some(GetOptions::new().with_count_only()))
                    .await
            })
            .await
            .map_err(map_err)?;
        header_revision(resp.header())
    }

    async fn compact(&self, revision: Revision) -> StoreResult<()> {
        match self
            .call(Replay::IfUnsent, |mut m| async move {
                m.kv.compact(revision, None).await
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(self.read_err(e).await),
        }
    }
}
