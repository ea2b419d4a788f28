//! The baseline: the same watchers as etcd watch streams on the same prefix, and the writes as
//! etcd puts and deletes.

use crate::track::WatchRec;
use crate::Ctx;
use anyhow::{anyhow, Context as _};
use etcd_client::{Client, DeleteOptions, EventType, GetOptions, WatchOptions};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub async fn connect(endpoint: &str) -> anyhow::Result<Client> {
    let uri: http::Uri = endpoint
        .parse()
        .with_context(|| format!("etcd endpoint {endpoint}"))?;
    crate::kapi::ensure_loopback(uri.host().unwrap_or(""))?;
    Client::connect([endpoint], None)
        .await
        .with_context(|| format!("connecting to etcd at {endpoint}"))
}

/// The store revision now.
pub async fn current_revision(client: &mut Client, prefix: &str) -> anyhow::Result<i64> {
    let r = client
        .get(
            prefix,
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await?;
    r.header()
        .map(|h| h.revision())
        .ok_or_else(|| anyhow!("etcd answer without header"))
}

pub struct Writer {
    client: Client,
    prefix: String,
}

impl Writer {
    pub fn new(client: Client, prefix: &str) -> Self {
        Writer {
            client,
            prefix: prefix.to_string(),
        }
    }

    pub async fn put(&mut self, name: &str, value: Vec<u8>) -> anyhow::Result<i64> {
        let r = self
            .client
            .put(format!("{}{name}", self.prefix), value, None)
            .await?;
        r.header()
            .map(|h| h.revision())
            .ok_or_else(|| anyhow!("put answer without header"))
    }

    pub async fn delete(&mut self, name: &str) -> anyhow::Result<i64> {
        let r = self
            .client
            .delete(format!("{}{name}", self.prefix), None)
            .await?;
        r.header()
            .map(|h| h.revision())
            .ok_or_else(|| anyhow!("delete answer without header"))
    }

    /// The stored value of one name under the prefix.
    pub async fn get(&mut self, name: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let r = self
            .client
            .get(format!("{}{name}", self.prefix), None)
            .await?;
        Ok(r.kvs().first().map(|kv| kv.value().to_vec()))
    }

    /// Removes every key under `key_prefix` (cleanup).
    pub async fn delete_prefix(&mut self, key_prefix: &str) {
        let _ = self
            .client
            .delete(key_prefix, Some(DeleteOptions::new().with_prefix()))
            .await;
    }
}

/// One etcd watch stream on `prefix` from `start_revision`; records until `stop`.
pub async fn watch(
    ctx: Arc<Ctx>,
    mut client: Client,
    prefix: String,
    start_revision: i64,
    mut rec: WatchRec,
    connected: tokio::sync::mpsc::UnboundedSender<Result<Option<u32>, String>>,
    mut stop: watch::Receiver<bool>,
) -> WatchRec {
    let opts = WatchOptions::new()
        .with_prefix()
        .with_start_revision(start_revision);
    let mut stream = match tokio::time::timeout(
        Duration::from_secs(60),
        client.watch(prefix.as_str(), Some(opts)),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let e = format!("etcd watch: {e}");
            let _ = connected.send(Err(e.clone()));
            rec.error = Some(e);
            rec.ended_early = true;
            return rec;
        }
        Err(_) => {
            let e = "etcd watch: not created within 60 s".to_string();
            let _ = connected.send(Err(e.clone()));
            rec.error = Some(e);
            rec.ended_early = true;
            return rec;
        }
    };
    let mut connected = Some(connected);
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            msg = stream.message() => match msg {
                Ok(Some(resp)) => {
                    if resp.created() {
                        rec.connected = true;
                        if let Some(c) = connected.take() {
                            let _ = c.send(Ok(rec.node));
                        }
                    }
                    if resp.canceled() {
                        rec.error.get_or_insert_with(|| format!("etcd canceled the watch: {}", resp.cancel_reason()));
                        rec.ended_early = true;
                        break;
                    }
                    let mut n = 0u64;
                    for ev in resp.events() {
                        let Some(kv) = ev.kv() else { continue };
                        rec.bytes += (kv.key().len() + kv.value().len()) as u64;
                        let name = kv.key().rsplit(|b| *b == b'/').next().unwrap_or_default();
                        let rv = match ev.event_type() {
                            EventType::Put | EventType::Delete => kv.mod_revision(),
                        };
                        n += 1;
                        rec.on_event(&ctx.acks, ctx.nodes, ctx.naming.index(name), rv);
                    }
                    ctx.delivered.fetch_add(n, Ordering::Relaxed);
                }
                Ok(None) => {
                    rec.ended_early = !*stop.borrow();
                    if rec.ended_early {
                        rec.error.get_or_insert_with(|| "etcd watch stream ended".into());
                    }
                    break;
                }
                Err(e) => {
                    rec.error.get_or_insert_with(|| format!("etcd watch: {e}"));
                    rec.ended_early = !*stop.borrow();
                    break;
                }
            }
        }
    }
    if let Some(c) = connected.take() {
        let _ = c.send(Err(rec
            .error
            .clone()
            .unwrap_or_else(|| "etcd watch never confirmed".into())));
    }
    rec
}
