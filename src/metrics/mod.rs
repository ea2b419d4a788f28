//! Prometheus metrics, named and labelled like kube-apiserver's where a counterpart exists
//! (API-SEMANTICS §9), plus kapi's own `kapi_*` series for dispatch internals.
//!
//! Hot paths hold resolved handles (`metrics::Counter`, …) or batch locally; the facade costs an
//! atomic add per update once a handle exists.

use crate::api::catalogue::ResourceInfo;
use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

const REQUEST_BUCKETS: &[f64] = &[
    0.005, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0,
    5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];
const EVENT_SIZE_BUCKETS: &[f64] = &[
    1024.0, 2048.0, 4096.0, 8192.0, 16384.0, 32768.0, 65536.0, 131072.0,
];
const ETCD_BUCKETS: &[f64] = &[
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Installs the global recorder (once per process) and returns the handle that renders it.
pub fn install() -> anyhow::Result<&'static PrometheusHandle> {
    if let Some(h) = HANDLE.get() {
        return Ok(h);
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("apiserver_request_duration_seconds".into()),
            REQUEST_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full("apiserver_watch_events_sizes".into()),
            EVENT_SIZE_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full("etcd_request_duration_seconds".into()),
            ETCD_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Prefix("kapi_watch_delivery".into()),
            LATENCY_BUCKETS,
        )?
        .install_recorder()?;
    describe();
    Ok(HANDLE.get_or_init(|| handle))
}

/// The exposition text for `/metrics`.
pub fn render() -> String {
    record_process();
    HANDLE.get().map(|h| h.render()).unwrap_or_default()
}

/// process_resident_memory_bytes and process_cpu_seconds_total, read from /proc at scrape time.
fn record_process() {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        let kb = |key: &str| -> Option<f64> {
            status
                .lines()
                .find(|l| l.starts_with(key))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        };
        if let Some(rss) = kb("VmRSS:") {
            gauge!("process_resident_memory_bytes").set(rss * 1024.0);
        }
        if let Some(hwm) = kb("VmHWM:") {
            gauge!("kapi_process_peak_resident_memory_bytes").set(hwm * 1024.0);
        }
    }
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the parenthesised command: utime and stime are the 12th and 13th.
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            if let (Some(u), Some(s)) = (
                f.get(11).and_then(|v| v.parse::<f64>().ok()),
                f.get(12).and_then(|v| v.parse::<f64>().ok()),
            ) {
                // Clock ticks are 100 per second on Linux.
                // Exported as a gauge: the facade's counters are integers.
                gauge!("process_cpu_seconds_total").set((u + s) / 100.0);
            }
        }
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!("apiserver_request_total", "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.");
    describe_histogram!("apiserver_request_duration_seconds", Unit::Seconds, "Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.");
    describe_gauge!("apiserver_longrunning_requests", "Gauge of all active long-running apiserver requests broken out by verb, group, version, resource, scope and component.");
    describe_gauge!("apiserver_current_inflight_requests", "Maximal number of currently used inflight request limit of this apiserver per request kind in last second.");
    describe_gauge!(
        "apiserver_registered_watchers",
        "Number of currently registered watchers for a given resources"
    );
    describe_counter!(
        "apiserver_watch_events_total",
        "Number of events sent in watch clients"
    );
    describe_histogram!(
        "apiserver_watch_events_sizes",
        "Watch event size distribution in bytes"
    );
    describe_counter!(
        "apiserver_watch_cache_events_dispatched_total",
        "Counter of events dispatched in watch cache broken by resource type."
    );
    describe_counter!(
        "apiserver_watch_cache_events_received_total",
        "Counter of events received in watch cache broken by resource type."
    );
    describe_gauge!(
        "apiserver_watch_cache_resource_version",
        "Current resource version of watch cache broken by resource type."
    );
    describe_counter!(
        "apiserver_terminated_watchers_total",
        "Counter of watchers closed due to unresponsiveness broken by resource type."
    );
    describe_counter!(
        "apiserver_watch_cache_initializations_total",
        "Counter of watch cache initializations broken by resource type."
    );
    describe_gauge!(
        "apiserver_storage_objects",
        "Number of stored objects at the time of last check split by kind."
    );
    describe_gauge!(
        "apiserver_resource_objects",
        "Number of stored objects at the time of last check split by kind."
    );
    describe_histogram!(
        "etcd_request_duration_seconds",
        Unit::Seconds,
        "Etcd request latency in seconds for each operation and object type."
    );
    describe_counter!(
        "etcd_requests_total",
        "Etcd request counts for each operation and object type."
    );
    describe_counter!(
        "etcd_request_errors_total",
        "Etcd failed request counts for each operation and object type."
    );
    describe_gauge!(
        "kapi_store_revision",
        "The store's current revision as last seen by kapi."
    );
    describe_counter!("kapi_watch_stalls_total", "Watchers whose queue filled up and that were switched to catching up from the history ring.");
    describe_histogram!("kapi_watch_delivery_latency_seconds", Unit::Seconds, "Sampled time from an event entering the watch cache to its frame being handed to the connection.");
    describe_gauge!(
        "kapi_watch_queue_depth",
        "Sampled depth of watcher queues when a frame is written."
    );
}

/// Per-resource handles used by the watch cache and watch streams.
pub struct ResourceMetrics {
    pub events_dispatched: Counter,
    pub events_received: Counter,
    pub cache_revision: Gauge,
    pub objects: Gauge,
    pub objects_legacy: Gauge,
    pub registered_watchers: Gauge,
    pub watch_events: Counter,
    pub watch_event_sizes: Histogram,
    pub terminated_watchers: Counter,
    pub stalls: Counter,
    pub delivery_latency: Histogram,
    pub queue_depth: Gauge,
    pub initializations: Counter,
}

impl ResourceMetrics {
    pub fn new(res: &ResourceInfo) -> Self {
        let (g, v, r, k) = (res.group, res.version, res.plural, res.kind);
        ResourceMetrics {
            events_dispatched: counter!("apiserver_watch_cache_events_dispatched_total", "group" => g, "resource" => r),
            events_received: counter!("apiserver_watch_cache_events_received_total", "group" => g, "resource" => r),
            cache_revision: gauge!("apiserver_watch_cache_resource_version", "group" => g, "resource" => r),
            objects: gauge!("apiserver_resource_objects", "group" => g, "resource" => r),
            objects_legacy: gauge!("apiserver_storage_objects", "resource" => res.qualified()),
            registered_watchers: gauge!("apiserver_registered_watchers", "group" => g, "version" => v, "kind" => k),
            watch_events: counter!("apiserver_watch_events_total", "group" => g, "version" => v, "resource" => r),
            watch_event_sizes: histogram!("apiserver_watch_events_sizes", "group" => g, "version" => v, "resource" => r),
            terminated_watchers: counter!("apiserver_terminated_watchers_total", "group" => g, "resource" => r),
            stalls: counter!("kapi_watch_stalls_total", "group" => g, "resource" => r),
            delivery_latency: histogram!("kapi_watch_delivery_latency_seconds", "group" => g, "resource" => r),
            queue_depth: gauge!("kapi_watch_queue_depth", "group" => g, "resource" => r),
            initializations: counter!("apiserver_watch_cache_initializations_total", "group" => g, "resource" => r),
        }
    }
}

/// Labels of one resource request (apiserver_request_total and friends).
pub struct RequestLabels {
    pub verb: &'static str,
    pub dry_run: bool,
    pub group: &'static str,
    pub version: &'static str,
    pub resource: &'static str,
    pub subresource: String,
    pub scope: &'static str,
}

impl RequestLabels {
    fn base(&self) -> Vec<(&'static str, String)> {
        vec![
            ("verb", self.verb.to_string()),
            (
                "dry_run",
                if self.dry_run {
                    "All".into()
                } else {
                    String::new()
                },
            ),
            ("group", self.group.to_string()),
            ("version", self.version.to_string()),
            ("resource", self.resource.to_string()),
            ("subresource", self.subresource.clone()),
            ("scope", self.scope.to_string()),
            ("component", "apiserver".to_string()),
        ]
    }

    /// Records a finished request.
    pub fn finished(&self, code: u16, seconds: f64) {
        let mut labels = self.base();
        histogram!("apiserver_request_duration_seconds", &labels).record(seconds);
        labels.push(("code", code.to_string()));
        counter!("apiserver_request_total", &labels).increment(1);
    }

    /// The long-running gauge for this request (watches).
    pub fn longrunning(&self) -> Gauge {
        let labels: Vec<(&'static str, String)> = self
            .base()
            .into_iter()
            .filter(|(k, _)| *k != "dry_run")
            .collect();
        gauge!("apiserver_longrunning_requests", &labels)
    }
}

/// apiserver_current_inflight_requests for non-long-running requests.
pub fn inflight(mutating: bool) -> Gauge {
    gauge!("apiserver_current_inflight_requests", "request_kind" => if mutating { "mutating" } else { "readOnly" })
}

/// Store request metrics, labelled by operation and the resource the key belongs to.
pub fn store_request(
    operation: &'static str,
    group: &'static str,
    resource: &'static str,
    seconds: f64,
    ok: bool,
) {
    let labels = [
        ("operation", operation),
        ("group", group),
        ("resource", resource),
    ];
    histogram!("etcd_request_duration_seconds", &labels).record(seconds);
    counter!("etcd_requests_total", &labels).increment(1);
    if !ok {
        counter!("etcd_request_errors_total", &labels).increment(1);
    }
}
