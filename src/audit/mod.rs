//! Auditing (API-SEMANTICS §8, `WithAuditInit` and `WithAudit`): `audit.k8s.io/v1` `Event`s for
//! the requests an `--audit-policy-file` selects, written as JSON lines to `--audit-log-path`.
//!
//! The router asks [`Auditor::begin`] for a record once the user is known (after authentication,
//! before impersonation and authorization), feeds it what it learns (impersonated user, request
//! body, annotations) and hands the response to [`AuditRecord::finish`], which emits
//! `ResponseStarted` for long-running requests and `ResponseComplete` when the body has been sent.
//! A panic is recorded with [`AuditRecord::panicked`].
//!
//! Writing never blocks a request: events go through a bounded queue to a writer thread; when the
//! queue is full the event is dropped and counted in `apiserver_audit_error_total{plugin="log"}`.
//! Request headers are never recorded (so neither is `Authorization`); only `User-Agent` is.

pub mod log;
pub mod policy;

use crate::api::handlers::{Resp, RespBody};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Uri};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use policy::{Attributes, Decision, Level, Policy, Stage};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use time::macros::format_description;
use time::OffsetDateTime;

/// The request header a client may set to choose the audit ID, and the response header echoing it.
pub const AUDIT_ID_HEADER: &str = "audit-id";
/// Events queued for the writer before new ones are dropped (kube's batch buffer size).
pub const QUEUE_CAPACITY: usize = 10_000;
/// Response bodies larger than this are not copied into `responseObject`.
const MAX_RESPONSE_OBJECT: usize = 16 << 20;
/// Error bodies up to this size are read for `responseStatus` at any level.
const MAX_STATUS_BODY: usize = 64 << 10;

/// The peer address of a connection, put in request extensions by the listener.
#[derive(Clone, Copy, Debug)]
pub struct RemoteAddr(pub SocketAddr);

/// The user as an audit event shows it (`authentication.k8s.io/v1` `UserInfo`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AuditUser {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

impl From<&crate::auth::authn::UserInfo> for AuditUser {
    fn from(u: &crate::auth::authn::UserInfo) -> Self {
        AuditUser {
            username: u.name.clone(),
            uid: u.uid.clone(),
            groups: u.groups.clone(),
            extra: u.extra.clone(),
        }
    }
}

/// `objectRef`: what a resource request addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subresource: String,
}

/// What the router knows about a request when it starts auditing it.
#[derive(Clone, Debug)]
pub struct RequestMeta {
    pub audit_id: String,
    /// Path and query, as received.
    pub request_uri: String,
    /// Kubernetes verb (`get`, `list`, `watch`, `create`, …) or the lowercase HTTP method for
    /// non-resource requests.
    pub verb: String,
    /// The authenticated user (before impersonation).
    pub user: AuditUser,
    pub impersonated_user: Option<AuditUser>,
    pub source_ips: Vec<String>,
    pub user_agent: Option<String>,
    /// `Some` for resource requests.
    pub object_ref: Option<ObjectRef>,
    /// The URL path (what `nonResourceURLs` match).
    pub path: String,
    /// Watches, proxies, exec/attach/log/portforward: these get a `ResponseStarted` event.
    pub long_running: bool,
    pub received: OffsetDateTime,
}

impl RequestMeta {
    /// Parses the request line and headers as kube-apiserver's `RequestInfoFactory` does.
    pub fn new(
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        remote: Option<IpAddr>,
        audit_id: String,
        user: AuditUser,
    ) -> Self {
        let a = crate::auth::authz::request_info::attributes(method, uri.path(), uri.query());
        let long_running = matches!(a.verb.as_str(), "watch" | "proxy")
            || matches!(
                a.subresource.as_str(),
                "attach" | "exec" | "proxy" | "log" | "portforward"
            );
        RequestMeta {
            audit_id,
            request_uri: uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| uri.path().to_string()),
            object_ref: a.resource_request.then(|| ObjectRef {
                resource: a.resource.clone(),
                namespace: a.namespace.clone(),
                name: a.name.clone(),
                api_group: a.api_group.clone(),
                api_version: a.api_version.clone(),
                subresource: a.subresource.clone(),
                ..Default::default()
            }),
            verb: a.verb,
            user,
            impersonated_user: None,
            source_ips: source_ips(headers, remote),
            user_agent: headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            path: uri.path().to_string(),
            long_running,
            received: OffsetDateTime::now_utc(),
        }
    }

    fn attributes(&self) -> Attributes<'_> {
        let o = self.object_ref.as_ref();
        let f = |g: fn(&ObjectRef) -> &str| o.map(g).unwrap_or("");
        Attributes {
            user: &self.user.username,
            groups: &self.user.groups,
            verb: &self.verb,
            resource_request: o.is_some(),
            namespace: f(|o| &o.namespace),
            api_group: f(|o| &o.api_group),
            resource: f(|o| &o.resource),
            subresource: f(|o| &o.subresource),
            name: f(|o| &o.name),
            path: &self.path,
        }
    }
}

/// The audit ID of a request: the client's `Audit-ID` header if it sent a usable one, else a
/// new UUID. The router echoes it in the `Audit-Id` response header of every response.
pub fn audit_id(headers: &HeaderMap) -> String {
    headers
        .get(AUDIT_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 256)
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Sets the `Audit-Id` response header.
pub fn set_audit_id_header(resp: &mut Resp, id: &str) {
    if let Ok(v) = HeaderValue::from_str(id) {
        resp.headers_mut().insert(AUDIT_ID_HEADER, v);
    }
}

/// The request's source IPs as kube-apiserver lists them: `X-Forwarded-For`, then `X-Real-Ip`,
/// then the connection's peer (unless it is already last).
pub fn source_ips(headers: &HeaderMap, remote: Option<IpAddr>) -> Vec<String> {
    let mut ips: Vec<IpAddr> = Vec::new();
    if let Some(fwd) = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        ips.extend(
            fwd.split(',')
                .filter_map(|p| p.trim().parse::<IpAddr>().ok()),
        );
    }
    if let Some(ip) = headers
        .get("x-real-ip")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<IpAddr>().ok())
    {
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    if let Some(ip) = remote {
        if ips.last() != Some(&ip) {
            ips.push(ip);
        }
    }
    ips.into_iter().map(|ip| ip.to_string()).collect()
}

// ---- Events ----

/// The parts of an event that are the same for every stage of a request.
#[derive(Debug)]
struct Common {
    level: Level,
    omit_managed_fields: bool,
    meta: RequestMeta,
}

/// One event on its way to the writer; rendered there, off the request path.
#[derive(Debug)]
struct Event {
    common: Arc<Common>,
    stage: Stage,
    stage_timestamp: OffsetDateTime,
    impersonated_user: Option<AuditUser>,
    object_ref: Option<ObjectRef>,
    /// The response code (None for RequestReceived).
    code: Option<u16>,
    /// A panic's message (stage Panic).
    panic: Option<String>,
    request_body: Option<Bytes>,
    response_body: Option<Bytes>,
    annotations: BTreeMap<String, String>,
}

const MICRO_TIME: &[time::format_description::FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// RFC 3339 with microseconds in UTC (metav1.MicroTime).
fn micro_time(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(MICRO_TIME)
        .unwrap_or_default()
}

fn parse_object(body: &[u8]) -> Option<Value> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .or_else(|| serde_norway::from_slice::<Value>(body).ok())
        .filter(|v| v.is_object() || v.is_array())
}

fn strip_managed_fields(v: &mut Value) {
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    if let Some(items) = v.get_mut("items").and_then(Value::as_array_mut) {
        items.iter_mut().for_each(strip_managed_fields);
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_str)
        .unwrap_or("")
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventJson<'a> {
    kind: &'static str,
    api_version: &'static str,
    level: Level,
    #[serde(rename = "auditID")]
    audit_id: &'a str,
    stage: Stage,
    #[serde(rename = "requestURI")]
    request_uri: &'a str,
    verb: &'a str,
    user: &'a AuditUser,
    #[serde(skip_serializing_if = "Option::is_none")]
    impersonated_user: Option<&'a AuditUser>,
    #[serde(rename = "sourceIPs", skip_serializing_if = "<[String]>::is_empty")]
    source_ips: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    object_ref: Option<&'a ObjectRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_status: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_object: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_object: Option<Value>,
    request_received_timestamp: String,
    stage_timestamp: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: &'a BTreeMap<String, String>,
}

impl Event {
    /// The event as one JSON line.
    fn render(&self) -> Vec<u8> {
        let c = &self.common;
        let level = c.level;
        let mut object_ref = self.object_ref.clone();
        let mut request_object = self.request_body.as_deref().and_then(parse_object);
        if let (Some(o), Some(req)) = (object_ref.as_mut(), request_object.as_ref()) {
            // As kube's LogRequestObject: fill what the URL did not say from the object.
            for (field, path) in [
                (&mut o.name, ["metadata", "name"]),
                (&mut o.namespace, ["metadata", "namespace"]),
                (&mut o.uid, ["metadata", "uid"]),
                (&mut o.resource_version, ["metadata", "resourceVersion"]),
            ] {
                if field.is_empty() {
                    *field = str_at(req, &path).to_string();
                }
            }
        }
        if level < Level::Request {
            request_object = None;
        }
        let mut response_object = None;
        let mut response_status = None;
        if let Some(code) = self.code {
            let body = self.response_body.as_deref().and_then(parse_object);
            let mut status = Map::new();
            status.insert("metadata".into(), Value::Object(Map::new()));
            if let Some(b) = body
                .as_ref()
                .filter(|b| b.get("kind").and_then(Value::as_str) == Some("Status"))
            {
                for k in ["status", "message", "reason", "details"] {
                    if let Some(v) = b.get(k) {
                        status.insert(k.into(), v.clone());
                    }
                }
            }
            if let Some(msg) = &self.panic {
                status.insert("status".into(), "Failure".into());
                status.insert("message".into(), format!("APIServer panic'd: {msg}").into());
                status.insert("reason".into(), "InternalError".into());
            }
            status.insert("code".into(), code.into());
            response_status = Some(Value::Object(status));
            if level >= Level::RequestResponse {
                response_object = body;
            }
        }
        if c.omit_managed_fields {
            request_object
                .iter_mut()
                .chain(response_object.iter_mut())
                .for_each(strip_managed_fields);
        }
        let ev = EventJson {
            kind: "Event",
            api_version: "audit.k8s.io/v1",
            level,
            audit_id: &c.meta.audit_id,
            stage: self.stage,
            request_uri: &c.meta.request_uri,
            verb: &c.meta.verb,
            user: &c.meta.user,
            impersonated_user: self.impersonated_user.as_ref(),
            source_ips: &c.meta.source_ips,
            user_agent: c.meta.user_agent.as_deref(),
            object_ref: object_ref.as_ref(),
            response_status,
            request_object,
            response_object,
            request_received_timestamp: micro_time(c.meta.received),
            stage_timestamp: micro_time(self.stage_timestamp),
            annotations: &self.annotations,
        };
        let mut line = serde_json::to_vec(&ev).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

// ---- The auditor and the writer ----

enum Msg {
    Event(Box<Event>),
    Flush(std::sync::mpsc::Sender<()>),
}

struct Inner {
    policy: Policy,
    tx: SyncSender<Msg>,
    sent: AtomicU64,
    dropped: AtomicU64,
}

impl Inner {
    fn send(&self, ev: Event) {
        match self.tx.try_send(Msg::Event(Box::new(ev))) {
            Ok(()) => {
                self.sent.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("apiserver_audit_event_total").increment(1);
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                metrics::counter!("apiserver_audit_error_total", "plugin" => "log").increment(1);
                if n == 1 || n.is_multiple_of(1000) {
                    tracing::warn!(dropped = n, "audit queue full; dropping audit events");
                }
            }
        }
    }
}

/// The audit front end: policy plus the queue to the log writer. Cheap to clone.
#[derive(Clone)]
pub struct Auditor {
    inner: Arc<Inner>,
}

impl Auditor {
    /// From the `--audit-*` flags: `None` unless both a policy file and a log path are given
    /// (as kube-apiserver, which records nothing without a policy or without a backend).
    pub fn from_config(cfg: &crate::config::Config) -> anyhow::Result<Option<Auditor>> {
        if cfg.audit_log_format != "json" {
            anyhow::bail!(
                "--audit-log-format={}: kapi writes only the json format (legacy is not supported)",
                cfg.audit_log_format
            );
        }
        let (Some(policy), Some(path)) = (&cfg.audit_policy_file, &cfg.audit_log_path) else {
            if cfg.audit_log_path.is_some() {
                tracing::warn!("no --audit-policy-file: no audit events will be recorded");
            }
            return Ok(None);
        };
        let policy = Policy::load(policy)?;
        let opts = log::LogOptions::new(
            path,
            cfg.audit_log_maxage,
            cfg.audit_log_maxbackup,
            cfg.audit_log_maxsize,
        );
        let out = log::Output::open(&opts)
            .map_err(|e| anyhow::anyhow!("opening audit log {path:?}: {e}"))?;
        tracing::info!(path = %path, "audit logging enabled");
        Ok(Some(Auditor::start(policy, out, QUEUE_CAPACITY)))
    }

    /// An auditor writing to `out` from a writer thread.
    pub fn start(policy: Policy, out: log::Output, capacity: usize) -> Auditor {
        let (auditor, rx) = Auditor::unstarted(policy, capacity);
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || write_loop(rx, out))
            .expect("spawning the audit writer thread");
        auditor
    }

    /// An auditor and the receiving end of its queue (tests drive or stall the writer).
    fn unstarted(policy: Policy, capacity: usize) -> (Auditor, Receiver<Msg>) {
        let (tx, rx) = sync_channel(capacity);
        let inner = Inner {
            policy,
            tx,
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        };
        (
            Auditor {
                inner: Arc::new(inner),
            },
            rx,
        )
    }

    /// Evaluates the policy for a request and, unless its level is `None`, emits
    /// `RequestReceived` (unless omitted) and returns the record that follows the request.
    pub fn begin(&self, meta: RequestMeta) -> Option<AuditRecord> {
        let d: Decision = self.inner.policy.evaluate(&meta.attributes());
        metrics::counter!("apiserver_audit_level_total", "level" => d.level.as_str()).increment(1);
        if d.level == Level::None {
            return None;
        }
        let record = AuditRecord {
            inner: self.inner.clone(),
            omit: d.omit_stages,
            long_running: meta.long_running,
            impersonated_user: meta.impersonated_user.clone(),
            object_ref: meta.object_ref.clone(),
            common: Arc::new(Common {
                level: d.level,
                omit_managed_fields: d.omit_managed_fields,
                meta,
            }),
            request_body: None,
            annotations: BTreeMap::new(),
            done: false,
        };
        record.emit(Stage::RequestReceived, None, None, None);
        Some(record)
    }

    /// Events queued so far, and events dropped because the queue was full.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.inner.sent.load(Ordering::Relaxed),
            self.inner.dropped.load(Ordering::Relaxed),
        )
    }

    /// Waits until everything queued before the call is written and flushed (for tests and
    /// shutdown). False if the writer did not answer in time.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (tx, rx) = std::sync::mpsc::channel();
        if self.inner.tx.send(Msg::Flush(tx)).is_err() {
            return false;
        }
        rx.recv_timeout(timeout).is_ok()
    }
}

fn write_loop(rx: Receiver<Msg>, mut out: log::Output) {
    let mut failures: u64 = 0;
    let mut write = |out: &mut log::Output, ev: &Event| {
        if let Err(e) = out.write_line(&ev.render()) {
            failures += 1;
            metrics::counter!("apiserver_audit_error_total", "plugin" => "log").increment(1);
            if failures == 1 || failures.is_multiple_of(1000) {
                tracing::error!(error = %e, failures, "writing the audit log failed");
            }
        }
    };
    while let Ok(msg) = rx.recv() {
        let mut acks = Vec::new();
        let mut next = Some(msg);
        // Drain what is queued, then flush once.
        while let Some(msg) = next.take() {
            match msg {
                Msg::Event(ev) => write(&mut out, &ev),
                Msg::Flush(ack) => acks.push(ack),
            }
            next = rx.try_recv().ok();
        }
        if let Err(e) = out.flush() {
            metrics::counter!("apiserver_audit_error_total", "plugin" => "log").increment(1);
            tracing::error!(error = %e, "flushing the audit log failed");
        }
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

/// One audited request in flight.
pub struct AuditRecord {
    inner: Arc<Inner>,
    common: Arc<Common>,
    omit: policy::Stages,
    long_running: bool,
    impersonated_user: Option<AuditUser>,
    object_ref: Option<ObjectRef>,
    request_body: Option<Bytes>,
    annotations: BTreeMap<String, String>,
    done: bool,
}

impl AuditRecord {
    pub fn audit_id(&self) -> &str {
        &self.common.meta.audit_id
    }

    pub fn level(&self) -> Level {
        self.common.level
    }

    /// The user the request acts as, when impersonating.
    pub fn set_impersonated_user(&mut self, user: AuditUser) {
        self.impersonated_user = Some(user);
    }

    /// Adds an annotation (e.g. `authorization.k8s.io/decision: allow`).
    pub fn annotate(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.annotations.insert(key.into(), value.into());
    }

    /// The request body: `requestObject` at level Request and above; at any level it fills in
    /// `objectRef.name`/`namespace` the URL left out (creates).
    pub fn set_request_body(&mut self, body: &Bytes) {
        let create_without_name = self.object_ref.as_ref().is_some_and(|o| o.name.is_empty());
        if !body.is_empty() && (self.common.level >= Level::Request || create_without_name) {
            self.request_body = Some(body.clone());
        }
    }

    fn emit(
        &self,
        stage: Stage,
        code: Option<u16>,
        response_body: Option<Bytes>,
        panic: Option<String>,
    ) {
        if self.omit.contains(stage) {
            return;
        }
        self.inner.send(Event {
            common: self.common.clone(),
            stage,
            stage_timestamp: OffsetDateTime::now_utc(),
            impersonated_user: self.impersonated_user.clone(),
            object_ref: self.object_ref.clone(),
            code,
            panic,
            request_body: if stage == Stage::RequestReceived {
                None
            } else {
                self.request_body.clone()
            },
            response_body,
            annotations: self.annotations.clone(),
        });
    }

    /// Emits `ResponseComplete` with the response code and (for `responseObject` at
    /// RequestResponse, and for an error `Status`'s reason and message) the body.
    pub fn complete(mut self, code: u16, response_body: Option<&[u8]>) {
        self.done = true;
        let body = response_body
            .filter(|b| self.wants_body(code, b.len()))
            .map(Bytes::copy_from_slice);
        self.emit(Stage::ResponseComplete, Some(code), body, None);
    }

    /// Emits `Panic` (a 500 with the panic's message).
    pub fn panicked(mut self, message: &str) {
        self.done = true;
        self.emit(Stage::Panic, Some(500), None, Some(message.to_string()));
    }

    fn wants_body(&self, code: u16, len: usize) -> bool {
        !self.long_running
            && ((self.common.level >= Level::RequestResponse && len <= MAX_RESPONSE_OBJECT)
                || (code >= 300 && len <= MAX_STATUS_BODY))
    }

    /// Hands the response over: emits `ResponseStarted` now for long-running requests, and
    /// `ResponseComplete` once the body has been sent (or dropped, e.g. a watch's client going
    /// away). Sets the `Audit-Id` header.
    pub fn finish(mut self, mut resp: Resp) -> Resp {
        let code = resp.status().as_u16();
        set_audit_id_header(&mut resp, self.audit_id());
        if self.long_running {
            self.emit(Stage::ResponseStarted, Some(code), None, None);
        }
        let capture = self.wants_body(code, 0).then(Vec::new);
        self.done = true;
        resp.map(|inner| {
            AuditedBody {
                inner,
                record: Some(self),
                code,
                capture,
            }
            .boxed()
        })
    }
}

impl Drop for AuditRecord {
    /// A record dropped without an outcome: the request was abandoned (its client went away
    /// before the handler answered). Recorded as ResponseComplete without a status.
    fn drop(&mut self) {
        if !self.done {
            self.done = true;
            self.annotations.insert(
                "kapi.io/incomplete".into(),
                "the request ended before a response was written".into(),
            );
            self.emit(Stage::ResponseComplete, None, None, None);
        }
    }
}

/// A response body that records `ResponseComplete` when it ends or is dropped.
struct AuditedBody {
    inner: RespBody,
    record: Option<AuditRecord>,
    code: u16,
    /// The body so far, when the event wants it.
    capture: Option<Vec<u8>>,
}

impl AuditedBody {
    fn end(&mut self) {
        if let Some(r) = self.record.take() {
            let body = self.capture.take().map(Bytes::from);
            r.emit(Stage::ResponseComplete, Some(self.code), body, None);
        }
    }
}

impl Body for AuditedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let limit = if self
                        .record
                        .as_ref()
                        .is_some_and(|r| r.common.level >= Level::RequestResponse)
                    {
                        MAX_RESPONSE_OBJECT
                    } else {
                        MAX_STATUS_BODY
                    };
                    if let Some(cap) = &mut self.capture {
                        if cap.len() + data.len() <= limit {
                            cap.extend_from_slice(data);
                        } else {
                            self.capture = None;
                        }
                    }
                }
                if self.inner.is_end_stream() {
                    self.end();
                }
            }
            Poll::Ready(None) => self.end(),
            Poll::Ready(Some(Err(never))) => match *never {},
            Poll::Pending => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for AuditedBody {
    fn drop(&mut self) {
        self.end();
    }
}

#[cfg(test)]
mod tests;
