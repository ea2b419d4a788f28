//! etcd-backed Store.
//!
//! Every operation maps onto one etcd RPC (a transaction for guarded writes), so revisions,
//! compaction and watch semantics are etcd's own. Notes:
//! - `count` with a `min_mod_revision` bound runs a keys-only range and counts the returned keys:
//!   etcd ignores mod-revision filters for `count_only` requests (its `count` is unfiltered).
//! - etcd's "required revision has been compacted" error does not carry the compacted revision;
//!   `range`/`count`/`compact` find it by opening a short watch from revision 1, which etcd
//!   cancels with the compact revision (bounded by a timeout; `compacted: 0` if it fails).

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
use std::path::PathBuf;
use std::time::Duration;

/// Client TLS material for talking to etcd (PEM files).
#[derive(Clone, Debug, Default)]
pub struct EtcdTls {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

/// A `Store` backed by an etcd v3 cluster.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    kv: KvClient,
    watch: WatchClient,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const COMPACT_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_MESSAGE: usize = i32::MAX as usize;
const WATCH_CREATE_TIMEOUT: Duration = Duration::from_secs(10);

impl EtcdStore {
    /// Connects to etcd and checks that it answers (bounded by a few seconds).
    pub async fn connect(endpoints: &[String], tls: Option<EtcdTls>) -> Result<Self, StoreError> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_keep_alive_while_idle(true);
        if let Some(tls) = tls {
            options = options.with_tls(tls_options(&tls)?);
        }
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(|e| StoreError::Unavailable(format!("etcd connect: {e}")))?;
        // Lists and watch catch-up batches can be far larger than tonic's 4 MiB default.
        let store = EtcdStore {
            kv: client.kv_client().max_decoding_message_size(MAX_MESSAGE),
            watch: client.watch_client().max_decoding_message_size(MAX_MESSAGE),
            client,
        };
        match tokio::time::timeout(CONNECT_TIMEOUT * 2, store.current_revision()).await {
            Ok(Ok(_)) => Ok(store),
            Ok(Err(e)) => Err(StoreError::Unavailable(format!(
                "etcd at {endpoints:?} does not answer: {e}"
            ))),
            Err(_) => Err(StoreError::Unavailable(format!(
                "etcd at {endpoints:?} does not answer (timeout)"
            ))),
        }
    }

    /// The underlying etcd client (for health checks and metrics).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The revision etcd has compacted to, found by watching from revision 1 (etcd cancels such a
    /// watch with its compact revision). 0 if it cannot be determined.
    async fn compacted_revision(&self) -> Revision {
        let probe = async {
            let mut client = self.watch.clone();
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
        let resp = self.kv.clone().txn(txn).await.map_err(map_err)?;
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
        let resp = self.kv.clone().get(key, None).await.map_err(map_err)?;
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
        let resp = match self.kv.clone().get(from, Some(opts)).await {
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
        let resp = match self.kv.clone().get(from, Some(opts)).await {
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
        let resp = self.kv.clone().txn(txn).await.map_err(map_err)?;
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
        let ws = self
            .watch
            .clone()
            .watch(key, Some(opts))
            .await
            .map_err(map_err)?;
        // Wait until etcd has registered the watcher, so that a watch from "now" (0) sees every
        // write made after this call returns. Anything else read meanwhile is kept for the stream.
        let mut ws = ws;
        let first = tokio::time::timeout(WATCH_CREATE_TIMEOUT, ws.message())
            .await
            .map_err(|_| StoreError::Unavailable("etcd: watch creation timed out".into()))?;
        let pending = match first {
            Ok(Some(resp)) if resp.created() && !resp.canceled() => None,
            Ok(Some(resp)) => Some(resp),
            Ok(None) => return Err(StoreError::Unavailable("etcd: watch stream closed".into())),
            Err(e) => return Err(map_err(e)),
        };
        // The WatchStream (request sender + response stream) lives in the unfold state, so
        // dropping the returned stream cancels the etcd watch.
        Ok(futures::stream::unfold(Some((ws, pending)), next_watch_message).boxed())
    }

    async fn current_revision(&self) -> StoreResult<Revision> {
        let resp = self
            .kv
            .clone()
            .get("/", Some(GetOptions::new().with_count_only()))
            .await
            .map_err(map_err)?;
        header_revision(resp.header())
    }

    async fn compact(&self, revision: Revision) -> StoreResult<()> {
        match self.kv.clone().compact(revision, None).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.read_err(e).await),
        }
    }
}
