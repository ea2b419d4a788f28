//! Embedded Store: a single-process store with etcd's revision semantics, persisted with redb.
//!
//! Layout (one redb file):
//! - `kv`: key → `create_revision | mod_revision | value` (the current state);
//! - `history`: revision → the event written at that revision (with the previous value), used to
//!   replay watches and to reconstruct a range at a past revision by undoing newer events;
//! - `meta`: the store revision (1 for an empty store, like etcd) and the compacted revision.
//!
//! Every write is one redb transaction, committed (durable) before it returns. Writers are
//! serialized by a mutex held around commit + publish, so events reach the in-process broadcast
//! channel in revision order. Ordering protocol: `committed` is stored after the commit and before
//! the broadcast send, `published` after the send. A watch subscribes first and then reads
//! `committed` (everything up to it is in redb; everything after it will reach the receiver). A
//! progress notification reads `published` and then drains the receiver, so it never overtakes
//! an event. A receiver that lags re-reads the missed revisions from the history table.

use super::{
    prefix_end, KeyValue, RangeResult, Revision, Store, StoreError, StoreEvent, StoreResult,
    WatchMessage,
};
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::sync::mpsc;

const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");
const HISTORY: TableDefinition<i64, &[u8]> = TableDefinition::new("history");
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
const META_REVISION: &str = "revision";
const META_COMPACTED: &str = "compacted";

const DEFAULT_PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
const BROADCAST_CAPACITY: usize = 4096;
const WATCH_QUEUE: usize = 64;
const MAX_BATCH: usize = 1024;

/// A `Store` in a single redb file, for single-process deployments.
pub struct EmbeddedStore {
    inner: Arc<Inner>,
    progress_interval: Duration,
}

struct Inner {
    db: Database,
    write_lock: Mutex<()>,
    /// Last committed revision (stored after commit, before broadcast).
    committed: AtomicI64,
    /// Last revision whose event has been broadcast.
    published: AtomicI64,
    events: broadcast::Sender<Arc<StoreEvent>>,
}

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("embedded store: {e}"))
}

trait DbResult<T> {
    fn db(self) -> StoreResult<T>;
}

impl<T, E: std::fmt::Display> DbResult<T> for Result<T, E> {
    fn db(self) -> StoreResult<T> {
        self.map_err(db_err)
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the store in the redb file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_capacity(path, BROADCAST_CAPACITY)
    }

    fn open_with_capacity(path: &Path, capacity: usize) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).db()?;
            }
        }
        let db = Database::create(path).db()?;
        let txn = db.begin_write().db()?;
        let revision = {
            txn.open_table(KV).db()?;
            txn.open_table(HISTORY).db()?;
            let mut meta = txn.open_table(META).db()?;
            let revision = meta.get(META_REVISION).db()?.map(|g| g.value());
            match revision {
                Some(rev) => rev,
                None => {
                    meta.insert(META_REVISION, 1).db()?;
                    meta.insert(META_COMPACTED, 0).db()?;
                    1
                }
            }
        };
        txn.commit().db()?;
        let (events, _) = broadcast::channel(capacity);
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                db,
                write_lock: Mutex::new(()),
                committed: AtomicI64::new(revision),
                published: AtomicI64::new(revision),
                events,
            }),
            progress_interval: DEFAULT_PROGRESS_INTERVAL,
        })
    }

    /// Sets how long a watch stream must be quiet before it gets a `Progress` message.
    pub fn with_progress_interval(mut self, interval: Duration) -> Self {
        self.progress_interval = interval.max(Duration::from_millis(1));
        self
    }

    async fn blocking<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| db_err(format!("task failed: {e}")))?
    }
}

enum WriteOp {
    Create(Bytes),
    Update(Bytes, Revision),
    Delete(Revision),
}

// ---- encoding ----

fn encode_kv(kv: &KeyValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + kv.value.len());
    out.extend_from_slice(&kv.create_revision.to_le_bytes());
    out.extend_from_slice(&kv.mod_revision.to_le_bytes());
    out.extend_from_slice(&kv.value);
    out
}

fn read_i64(raw: &[u8], at: usize) -> StoreResult<i64> {
    raw.get(at..at + 8)
        .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
        .ok_or_else(|| db_err("corrupt record"))
}

fn read_u32(raw: &[u8], at: usize) -> StoreResult<usize> {
    raw.get(at..at + 4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
        .ok_or_else(|| db_err("corrupt record"))
}

fn key_string(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

fn decode_kv(key: &[u8], raw: &[u8]) -> StoreResult<KeyValue> {
    Ok(KeyValue {
        key: key_string(key),
        create_revision: read_i64(raw, 0)?,
        mod_revision: read_i64(raw, 8)?,
        value: Bytes::copy_from_slice(raw.get(16..).ok_or_else(|| db_err("corrupt record"))?),
    })
}

/// `kind u8 | key_len u32 | key | has_prev u8 [| prev_create i64 | prev_mod i64 | prev_len u32 |
/// prev_value] [| create i64 | value]` (the last part for puts only).
fn encode_event(ev: &StoreEvent) -> Vec<u8> {
    let (kind, key, prev) = match ev {
        StoreEvent::Put { kv, prev } => (0u8, kv.key.as_str(), prev),
        StoreEvent::Delete { key, prev, .. } => (1u8, key.as_str(), prev),
    };
    let mut out = Vec::new();
    out.push(kind);
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    match prev {
        Some(p) => {
            out.push(1);
            out.extend_from_slice(&p.create_revision.to_le_bytes());
            out.extend_from_slice(&p.mod_revision.to_le_bytes());
            out.extend_from_slice(&(p.value.len() as u32).to_le_bytes());
            out.extend_from_slice(&p.value);
        }
        None => out.push(0),
    }
    if let StoreEvent::Put { kv, .. } = ev {
        out.extend_from_slice(&kv.create_revision.to_le_bytes());
        out.extend_from_slice(&kv.value);
    }
    out
}

/// The key of an encoded event, without decoding the rest.
fn event_key(raw: &[u8]) -> StoreResult<&[u8]> {
    let len = read_u32(raw, 1)?;
    raw.get(5..5 + len).ok_or_else(|| db_err("corrupt event"))
}

fn decode_event(revision: Revision, raw: &[u8]) -> StoreResult<StoreEvent> {
    let corrupt = || db_err("corrupt event");
    let kind = *raw.first().ok_or_else(corrupt)?;
    let key_bytes = event_key(raw)?;
    let key = key_string(key_bytes);
    let mut at = 5 + key_bytes.len();
    let prev = match *raw.get(at).ok_or_else(corrupt)? {
        0 => {
            at += 1;
            None
        }
        _ => {
            let create_revision = read_i64(raw, at + 1)?;
            let mod_revision = read_i64(raw, at + 9)?;
            let len = read_u32(raw, at + 17)?;
            let start = at + 21;
            let value = raw.get(start..start + len).ok_or_else(corrupt)?;
            at = start + len;
            Some(KeyValue {
                key: key.clone(),
                value: Bytes::copy_from_slice(value),
                create_revision,
                mod_revision,
            })
        }
    };
    Ok(match kind {
        0 => StoreEvent::Put {
            kv: KeyValue {
                key,
                create_revision: read_i64(raw, at)?,
                mod_revision: revision,
                value: Bytes::copy_from_slice(raw.get(at + 8..).ok_or_else(corrupt)?),
            },
            prev,
        },
        _ => StoreEvent::Delete {
            key,
            revision,
            prev,
        },
    })
}

// ---- reads ----

/// `[start or prefix, prefix_end)`; `None` as the end means "to the end of the key space".
fn bounds(prefix: &str, start: Option<&str>) -> (Vec<u8>, Option<Vec<u8>>) {
    let lower = match start {
        Some(s) if s > prefix => s.as_bytes().to_vec(),
        _ => prefix.as_bytes().to_vec(),
    };
    let end = prefix_end(prefix);
    let upper = if end == [0] { None } else { Some(end) };
    (lower, upper)
}

fn in_bounds(key: &[u8], lower: &[u8], upper: &Option<Vec<u8>>) -> bool {
    key >= lower && upper.as_ref().is_none_or(|u| key < u.as_slice())
}

fn read_meta(txn: &ReadTransaction) -> StoreResult<(Revision, Revision)> {
    let meta = txn.open_table(META).db()?;
    let rev = meta
        .get(META_REVISION)
        .db()?
        .map(|g| g.value())
        .unwrap_or(1);
    let compacted = meta
        .get(META_COMPACTED)
        .db()?
        .map(|g| g.value())
        .unwrap_or(0);
    Ok((rev, compacted))
}

/// Resolves the revision to read at: 0 = current; errors for compacted or future revisions.
fn read_revision(
    requested: Revision,
    current: Revision,
    compacted: Revision,
) -> StoreResult<Revision> {
    if requested <= 0 {
        return Ok(current);
    }
    if requested > current {
        return Err(StoreError::FutureRevision);
    }
    if requested < compacted {
        return Err(StoreError::Compacted { compacted });
    }
    Ok(requested)
}

impl Inner {
    fn write(&self, key: &str, op: WriteOp) -> StoreResult<Revision> {
        let _guard = self
            .write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let txn = self.db.begin_write().db()?;
        let event = {
            let mut kv = txn.open_table(KV).db()?;
            let mut history = txn.open_table(HISTORY).db()?;
            let mut meta = txn.open_table(META).db()?;
            let current = match kv.get(key.as_bytes()).db()? {
                Some(g) => Some(decode_kv(key.as_bytes(), g.value())?),
                None => None,
            };
            let rev = meta
                .get(META_REVISION)
                .db()?
                .map(|g| g.value())
                .unwrap_or(1)
                + 1;
            let event = match (op, current) {
                (WriteOp::Create(value), None) => StoreEvent::Put {
                    kv: KeyValue {
                        key: key.to_string(),
                        value,
                        create_revision: rev,
                        mod_revision: rev,
                    },
                    prev: None,
                },
                (WriteOp::Create(_), Some(_)) => return Err(StoreError::AlreadyExists),
                (WriteOp::Update(value, expected), Some(cur)) if cur.mod_revision == expected => {
                    StoreEvent::Put {
                        kv: KeyValue {
                            key: key.to_string(),
                            value,
                            create_revision: cur.create_revision,
                            mod_revision: rev,
                        },
                        prev: Some(cur),
                    }
                }
                (WriteOp::Delete(expected), Some(cur)) if cur.mod_revision == expected => {
                    StoreEvent::Delete {
                        key: key.to_string(),
                        revision: rev,
                        prev: Some(cur),
                    }
                }
                (_, Some(cur)) => return Err(StoreError::Conflict { current: Some(cur) }),
                (_, None) => return Err(StoreError::NotFound),
            };
            match &event {
                StoreEvent::Put { kv: new, .. } => {
                    kv.insert(key.as_bytes(), encode_kv(new).as_slice()).db()?;
                }
                StoreEvent::Delete { .. } => {
                    kv.remove(key.as_bytes()).db()?;
                }
            }
            history.insert(rev, encode_event(&event).as_slice()).db()?;
            meta.insert(META_REVISION, rev).db()?;
            event
        };
        txn.commit().db()?;
        let rev = event.revision();
        self.committed.store(rev, Ordering::SeqCst);
        let _ = self.events.send(Arc::new(event));
        self.published.store(rev, Ordering::SeqCst);
        Ok(rev)
    }

    fn get(&self, key: &str) -> StoreResult<(Option<KeyValue>, Revision)> {
        let txn = self.db.begin_read().db()?;
        let (rev, _) = read_meta(&txn)?;
        let table = txn.open_table(KV).db()?;
        let kv = match table.get(key.as_bytes()).db()? {
            Some(g) => Some(decode_kv(key.as_bytes(), g.value())?),
            None => None,
        };
        Ok((kv, rev))
    }

    /// The keys in `[lower, upper)` as they were at revision `at` (`at <= current`, not compacted).
    fn state_at(
        &self,
        txn: &ReadTransaction,
        lower: &[u8],
        upper: &Option<Vec<u8>>,
        at: Revision,
        current: Revision,
    ) -> StoreResult<BTreeMap<Vec<u8>, KeyValue>> {
        let mut state = BTreeMap::new();
        let table = txn.open_table(KV).db()?;
        for item in kv_range(&table, lower, upper)? {
            let (k, v) = item.db()?;
            state.insert(k.value().to_vec(), decode_kv(k.value(), v.value())?);
        }
        if at < current {
            let history = txn.open_table(HISTORY).db()?;
            for item in history.range((at + 1)..=current).db()?.rev() {
                let (r, raw) = item.db()?;
                let raw = raw.value();
                let key = event_key(raw)?;
                if !in_bounds(key, lower, upper) {
                    continue;
                }
                let key = key.to_vec();
                match decode_event(r.value(), raw)? {
                    StoreEvent::Put { prev: Some(p), .. }
                    | StoreEvent::Delete { prev: Some(p), .. } => {
                        state.insert(key, p);
                    }
                    StoreEvent::Put { prev: None, .. } | StoreEvent::Delete { prev: None, .. } => {
                        state.remove(&key);
                    }
                }
            }
        }
        Ok(state)
    }

    fn range(
        &self,
        prefix: &str,
        start: Option<&str>,
        limit: i64,
        revision: Revision,
    ) -> StoreResult<RangeResult> {
        let txn = self.db.begin_read().db()?;
        let (current, compacted) = read_meta(&txn)?;
        let at = read_revision(revision, current, compacted)?;
        let (lower, upper) = bounds(prefix, start);
        let limit = if limit <= 0 {
            usize::MAX
        } else {
            limit as usize
        };
        let mut kvs = Vec::new();
        let mut count = 0i64;
        if at == current {
            let table = txn.open_table(KV).db()?;
            for item in kv_range(&table, &lower, &upper)? {
                let (k, v) = item.db()?;
                count += 1;
                if kvs.len() < limit {
                    kvs.push(decode_kv(k.value(), v.value())?);
                }
            }
        } else {
            let state = self.state_at(&txn, &lower, &upper, at, current)?;
            count = state.len() as i64;
            kvs.extend(state.into_values().take(limit));
        }
        Ok(RangeResult {
            more: (kvs.len() as i64) < count,
            kvs,
            count,
            revision: at,
        })
    }

    fn count(&self, prefix: &str, revision: Revision, min_mod: Revision) -> StoreResult<i64> {
        let txn = self.db.begin_read().db()?;
        let (current, compacted) = read_meta(&txn)?;
        let at = read_revision(revision, current, compacted)?;
        let (lower, upper) = bounds(prefix, None);
        if at == current {
            let table = txn.open_table(KV).db()?;
            let mut n = 0;
            for item in kv_range(&table, &lower, &upper)? {
                let (_, v) = item.db()?;
                if min_mod <= 0 || read_i64(v.value(), 8)? >= min_mod {
                    n += 1;
                }
            }
            Ok(n)
        } else {
            let state = self.state_at(&txn, &lower, &upper, at, current)?;
            Ok(state
                .values()
                .filter(|kv| kv.mod_revision >= min_mod)
                .count() as i64)
        }
    }

    /// Events under `prefix` with revisions in `(after, upto]`, scanning at most `max` history
    /// entries; returns them and the last revision scanned.
    fn history(
        &self,
        prefix: &[u8],
        after: Revision,
        upto: Revision,
        max: usize,
    ) -> StoreResult<(Vec<StoreEvent>, Revision)> {
        let txn = self.db.begin_read().db()?;
        let (_, compacted) = read_meta(&txn)?;
        if after + 1 < compacted {
            return Err(StoreError::Compacted { compacted });
        }
        let history = txn.open_table(HISTORY).db()?;
        let mut events = Vec::new();
        let mut last = upto;
        for (i, item) in history.range((after + 1)..=upto).db()?.enumerate() {
            let (r, raw) = item.db()?;
            let raw = raw.value();
            if event_key(raw)?.starts_with(prefix) {
                events.push(decode_event(r.value(), raw)?);
            }
            if i + 1 >= max {
                last = r.value();
                break;
            }
        }
        Ok((events, last))
    }

    fn compact(&self, revision: Revision) -> StoreResult<()> {
        let _guard = self
            .write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let txn = self.db.begin_write().db()?;
        {
            let mut meta = txn.open_table(META).db()?;
            let current = meta
                .get(META_REVISION)
                .db()?
                .map(|g| g.value())
                .unwrap_or(1);
            let compacted = meta
                .get(META_COMPACTED)
                .db()?
                .map(|g| g.value())
                .unwrap_or(0);
            if revision > current {
                return Err(StoreError::FutureRevision);
            }
            if revision <= compacted {
                return Err(StoreError::Compacted { compacted });
            }
            let mut history = txn.open_table(HISTORY).db()?;
            history.retain_in::<i64, _>(..revision, |_, _| false).db()?;
            meta.insert(META_COMPACTED, revision).db()?;
        }
        txn.commit().db()?;
        Ok(())
    }
}

type KvTable = redb::ReadOnlyTable<&'static [u8], &'static [u8]>;

fn kv_range<'t>(
    table: &'t KvTable,
    lower: &[u8],
    upper: &Option<Vec<u8>>,
) -> StoreResult<redb::Range<'t, &'static [u8], &'static [u8]>> {
    let upper = match upper {
        Some(u) => Bound::Excluded(u.as_slice()),
        None => Bound::Unbounded,
    };
    if let Bound::Excluded(u) = upper {
        if lower >= u {
            // An empty range (redb rejects inverted bounds).
            return table
                .range::<&[u8]>((Bound::Excluded(u), Bound::Excluded(u)))
                .db();
        }
    }
    table.range::<&[u8]>((Bound::Included(lower), upper)).db()
}

// ---- watch ----

enum Stop {
    /// The consumer dropped the stream.
    Consumer,
    /// End the stream with this error.
    Fail(StoreError),
}

type Step = Result<(), Stop>;

struct WatchTask {
    inner: Weak<Inner>,
    prefix: Vec<u8>,
    rx: broadcast::Receiver<Arc<StoreEvent>>,
    out: mpsc::Sender<StoreResult<WatchMessage>>,
    /// Events with a revision <= `last` are delivered (or precede the watch's start).
    last: Revision,
    /// The highest real store revision this watch has accounted for.
    seen: Revision,
    /// Something was sent since the last progress tick.
    sent: bool,
}

impl WatchTask {
    async fn run(mut self, from: Revision, interval: Duration) {
        let mut step = if from > 0 {
            let upto = self.seen;
            self.replay(upto).await
        } else {
            Ok(())
        };
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while step.is_ok() {
            step = tokio::select! {
                _ = self.out.closed() => Err(Stop::Consumer),
                r = self.rx.recv() => self.pump(Some(r)).await,
                _ = ticker.tick() => {
                    if std::mem::take(&mut self.sent) {
                        Ok(())
                    } else {
                        self.progress().await
                    }
                }
            };
        }
        if let Err(Stop::Fail(e)) = step {
            let _ = self.out.send(Err(e)).await;
        }
    }

    async fn emit(&mut self, msg: WatchMessage) -> Step {
        self.sent = true;
        self.out.send(Ok(msg)).await.map_err(|_| Stop::Consumer)
    }

    /// Handles `first` (if any) and then everything already queued in the receiver.
    async fn pump(&mut self, first: Option<Result<Arc<StoreEvent>, RecvError>>) -> Step {
        let mut batch = Vec::new();
        let mut next = first;
        loop {
            let item = match next.take() {
                Some(item) => item,
                None => match self.rx.try_recv() {
                    Ok(ev) => Ok(ev),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                    Err(TryRecvError::Closed) => Err(RecvError::Closed),
                },
            };
            match item {
                Ok(ev) => {
                    let rev = ev.revision();
                    if rev <= self.last {
                        continue;
                    }
                    self.last = rev;
                    self.seen = self.seen.max(rev);
                    if ev.key().as_bytes().starts_with(&self.prefix) {
                        batch.push((*ev).clone());
                        if batch.len() >= MAX_BATCH {
                            self.emit(WatchMessage::Events(std::mem::take(&mut batch)))
                                .await?;
                        }
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    if !batch.is_empty() {
                        self.emit(WatchMessage::Events(std::mem::take(&mut batch)))
                            .await?;
                    }
                    let upto = self.upgrade()?.committed.load(Ordering::SeqCst);
                    self.replay(upto).await?;
                }
                Err(RecvError::Closed) => {
                    return Err(Stop::Fail(StoreError::Unavailable(
                        "embedded store closed".into(),
                    )))
                }
            }
        }
        if !batch.is_empty() {
            self.emit(WatchMessage::Events(batch)).await?;
        }
        Ok(())
    }

    fn upgrade(&self) -> Result<Arc<Inner>, Stop> {
        self.inner
            .upgrade()
            .ok_or_else(|| Stop::Fail(StoreError::Unavailable("embedded store closed".into())))
    }

    /// Sends the events in `(last, upto]` from the history table.
    async fn replay(&mut self, upto: Revision) -> Step {
        while self.last < upto {
            let inner = self.upgrade()?;
            let prefix = self.prefix.clone();
            let after = self.last;
            let (events, scanned) =
                tokio::task::spawn_blocking(move || inner.history(&prefix, after, upto, MAX_BATCH))
                    .await
                    .map_err(|e| Stop::Fail(db_err(format!("task failed: {e}"))))?
                    .map_err(Stop::Fail)?;
            self.last = scanned;
            self.seen = self.seen.max(scanned);
            if !events.is_empty() {
                self.emit(WatchMessage::Events(events)).await?;
            }
        }
        Ok(())
    }

    /// Everything published so far has been delivered once the receiver is drained.
    async fn progress(&mut self) -> Step {
        let published = self.upgrade()?.published.load(Ordering::SeqCst);
        self.pump(None).await?;
        let rev = published.max(self.seen);
        self.emit(WatchMessage::Progress(rev)).await?;
        self.sent = false;
        Ok(())
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &str) -> StoreResult<(Option<KeyValue>, Revision)> {
        let key = key.to_string();
        self.blocking(move |inner| inner.get(&key)).await
    }

    async fn range(
        &self,
        prefix: &str,
        start: Option<&str>,
        limit: i64,
        revision: Revision,
    ) -> StoreResult<RangeResult> {
        let prefix = prefix.to_string();
        let start = start.map(str::to_string);
        self.blocking(move |inner| inner.range(&prefix, start.as_deref(), limit, revision))
            .await
    }

    async fn count(
        &self,
        prefix: &str,
        revision: Revision,
        min_mod_revision: Revision,
    ) -> StoreResult<i64> {
        let prefix = prefix.to_string();
        self.blocking(move |inner| inner.count(&prefix, revision, min_mod_revision))
            .await
    }

    async fn create(&self, key: &str, value: Bytes) -> StoreResult<Revision> {
        let key = key.to_string();
        self.blocking(move |inner| inner.write(&key, WriteOp::Create(value)))
            .await
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> StoreResult<Revision> {
        let key = key.to_string();
        self.blocking(move |inner| inner.write(&key, WriteOp::Update(value, expected)))
            .await
    }

    async fn delete(&self, key: &str, expected: Revision) -> StoreResult<Revision> {
        let key = key.to_string();
        self.blocking(move |inner| inner.write(&key, WriteOp::Delete(expected)))
            .await
    }

    async fn watch(
        &self,
        prefix: &str,
        from: Revision,
    ) -> StoreResult<BoxStream<'static, StoreResult<WatchMessage>>> {
        // Subscribe first, then read `committed`: every later revision reaches `rx`.
        let rx = self.inner.events.subscribe();
        let current = self.inner.committed.load(Ordering::SeqCst);
        let (out, out_rx) = mpsc::channel(WATCH_QUEUE);
        let task = WatchTask {
            inner: Arc::downgrade(&self.inner),
            prefix: prefix.as_bytes().to_vec(),
            rx,
            out,
            last: if from > 0 { from - 1 } else { current },
            seen: current,
            sent: false,
        };
        tokio::spawn(task.run(from, self.progress_interval));
        Ok(futures::stream::unfold(out_rx, |mut rx| async move {
            rx.recv().await.map(|msg| (msg, rx))
        })
        .boxed())
    }

    async fn current_revision(&self) -> StoreResult<Revision> {
        Ok(self.inner.committed.load(Ordering::SeqCst))
    }

    async fn compact(&self, revision: Revision) -> StoreResult<()> {
        self.blocking(move |inner| inner.compact(revision)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str, c: i64, m: i64) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Bytes::from(value.to_string()),
            create_revision: c,
            mod_revision: m,
        }
    }

    #[test]
    fn event_encoding_round_trips() {
        let events = [
            StoreEvent::Put {
                kv: kv("/a", "v1", 2, 2),
                prev: None,
            },
            StoreEvent::Put {
                kv: kv("/a", "", 2, 3),
                prev: Some(kv("/a", "v1", 2, 2)),
            },
            StoreEvent::Delete {
                key: "/a".into(),
                revision: 4,
                prev: Some(kv("/a", "", 2, 3)),
            },
        ];
        for ev in events {
            let raw = encode_event(&ev);
            assert_eq!(event_key(&raw).unwrap(), b"/a");
            assert_eq!(decode_event(ev.revision(), &raw).unwrap(), ev);
        }
        let k = kv("/b", "xyz", 5, 7);
        assert_eq!(decode_kv(b"/b", &encode_kv(&k)).unwrap(), k);
    }

    /// A subscriber that lags behind the broadcast channel re-reads history: no gaps, no dups.
    #[tokio::test]
    async fn lagging_watch_rereads_history() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open_with_capacity(&dir.path().join("kapi.redb"), 2).unwrap();
        let mut watch = store.watch("/lag/", 0).await.unwrap();
        let mut expected = Vec::new();
        for i in 0..200 {
            let key = format!("/lag/{i}");
            expected.push(store.create(&key, Bytes::from("x")).await.unwrap());
            store
                .create(&format!("/other/{i}"), Bytes::from("y"))
                .await
                .unwrap();
        }
        let mut got = Vec::new();
        while got.len() < expected.len() {
            let msg = tokio::time::timeout(Duration::from_secs(5), watch.next())
                .await
                .expect("watch timed out")
                .expect("stream ended")
                .expect("watch error");
            if let WatchMessage::Events(evs) = msg {
                got.extend(evs.iter().map(|e| e.revision()));
            }
        }
        assert_eq!(got, expected);
    }
}
