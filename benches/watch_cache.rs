//! Watch-cache micro-benchmarks (PERFORMANCE.md "How to measure").
//!
//! - `frame/*`: serialize an event once (`CacheEvent::new`), and the decode that precedes it.
//! - `cache_apply/*`: what applying one store event costs: the in-memory steps of
//!   `WatchCache::apply` on a 100k-object map, and the full path through the embedded store
//!   (write → store watch → cache → dispatch) measured as write-to-visible.
//! - `dispatch/*`: one event handed to 1 / 100 / 10,000 watchers (`WatcherRegistry::dispatch`),
//!   unfiltered, and with a `spec.nodeName` field selector per watcher (one matches).
//! - `list/*`: a list from a 100k-object cache snapshot with a label selector.
//! - `paging/*`: continue-token paging through the same snapshot.
//!
//! Full run: `cargo bench --bench watch_cache`. Short mode (CI): `KAPI_BENCH_QUICK=1 cargo bench
//! --bench watch_cache` or `bash benches/run.sh` (small sample size and measurement time, 10k
//! objects instead of 100k unless `KAPI_BENCH_OBJECTS` says otherwise).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kapi::api::catalogue::{lookup, ResourceInfo};
use kapi::api::continue_token;
use kapi::api::handlers::read::{list_body, snapshot_page, Page};
use kapi::api::selectors::field::FieldSelector;
use kapi::api::selectors::label::LabelSelector;
use kapi::cache::event::{CacheEvent, EventType};
use kapi::cache::filter::Filter;
use kapi::cache::watchers::{Delivery, WatcherRegistry};
use kapi::cache::{ObjectMap, Snapshot, WatchCache};
use kapi::object::raw::RawObject;
use kapi::storage::embedded::EmbeddedStore;
use kapi::storage::{DynStore, KeyValue};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

fn quick() -> bool {
    std::env::var("KAPI_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Objects in the list/paging snapshot.
fn list_objects() -> usize {
    std::env::var("KAPI_BENCH_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick() { 10_000 } else { 100_000 })
}

fn config() -> Criterion {
    let c = Criterion::default().configure_from_args();
    if quick() {
        c.sample_size(10)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_millis(600))
            .without_plots()
    } else {
        c
    }
}

fn configmaps() -> &'static ResourceInfo {
    lookup("", "v1", "configmaps").expect("configmaps in the catalogue")
}

fn pods() -> &'static ResourceInfo {
    lookup("", "v1", "pods").expect("pods in the catalogue")
}

/// A ~1 KB stored ConfigMap (the stored form has no resourceVersion).
fn configmap_value(ns: &str, name: &str, app: usize, seq: u64) -> Vec<u8> {
    let filler: String = "x".repeat(760);
    serde_json::to_vec(&serde_json::json!({
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": format!("00000000-0000-4000-8000-{:012}", seq),
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "labels": {"app": format!("app-{app}"), "tier": "bench"},
        },
        "data": {"seq": seq.to_string(), "payload": filler},
    }))
    .expect("json")
}

/// A ~1 KB stored Pod bound to `node`.
fn pod_value(ns: &str, name: &str, node: &str, seq: u64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": format!("00000000-0000-4000-8000-{:012}", seq),
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "labels": {"app": "bench"},
            "annotations": {"bench/seq": seq.to_string(), "bench/filler": "y".repeat(560)},
        },
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}],
        },
        "status": {"phase": "Running"},
    }))
    .expect("json")
}

fn kv(key: &str, value: Vec<u8>, create: i64, rev: i64) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: value.into(),
        create_revision: create,
        mod_revision: rev,
    }
}

fn cm_key(ns: &str, name: &str) -> String {
    format!("/registry/configmaps/{ns}/{name}")
}

fn raw_configmap(i: usize, rev: i64) -> RawObject {
    let name = format!("cm-{i:07}");
    let key = cm_key("bench", &name);
    let v = configmap_value("bench", &name, i % 100, i as u64);
    RawObject::from_kv(configmaps(), &kv(&key, v, rev, rev)).expect("decodes")
}

fn bench_frame(c: &mut Criterion) {
    let res = configmaps();
    let obj = Arc::new(raw_configmap(1, 42));
    let key = cm_key("bench", "cm-0000001");
    let stored = kv(&key, configmap_value("bench", "cm-0000001", 1, 1), 42, 42);
    let mut g = c.benchmark_group("frame");
    g.throughput(Throughput::Bytes(obj.json().len() as u64));
    g.bench_function("cache_event_new_1k", |b| {
        b.iter(|| {
            let ev = CacheEvent::new(EventType::Modified, 43, black_box(obj.clone()), None);
            // The frame is built on first use (once per event, shared by every watcher).
            black_box(ev.frame().len());
            ev
        })
    });
    g.bench_function("raw_object_from_kv_1k", |b| {
        b.iter(|| RawObject::from_kv(res, black_box(&stored)).expect("decodes"))
    });
    g.finish();
}

/// The in-memory steps of `WatchCache::apply` for one Put: decode, insert into the persistent
/// map (of `n` objects), frame. `apply` itself is private (see the report for the hook we want).
fn bench_apply(c: &mut Criterion) {
    let res = configmaps();
    let n = list_objects();
    let mut map = ObjectMap::new();
    for i in 0..n {
        let o = raw_configmap(i, 10);
        map.insert(Arc::new(o));
    }
    let target = n / 2;
    let name = format!("cm-{target:07}");
    let key = cm_key("bench", &name);
    let mut g = c.benchmark_group("cache_apply");
    let mut rev = 1_000_000i64;
    g.bench_function(BenchmarkId::new("decode_insert_frame", n), |b| {
        b.iter(|| {
            rev += 1;
            let v = configmap_value("bench", &name, target % 100, rev as u64);
            let obj = Arc::new(RawObject::from_kv(res, &kv(&key, v, 10, rev)).expect("decodes"));
            let prev = map.insert(obj.clone());
            let etype = if prev.is_some() {
                EventType::Modified
            } else {
                EventType::Added
            };
            Arc::new(CacheEvent::new(etype, rev, obj, prev))
        })
    });
    // Snapshot taken while writing: an update must then copy a path of the persistent map.
    g.bench_function(BenchmarkId::new("insert_with_live_snapshot", n), |b| {
        b.iter(|| {
            rev += 1;
            let snap = map.clone();
            let v = configmap_value("bench", &name, target % 100, rev as u64);
            let obj = Arc::new(RawObject::from_kv(res, &kv(&key, v, 10, rev)).expect("decodes"));
            let prev = map.insert(obj.clone());
            drop(snap);
            prev
        })
    });
    g.finish();

    // End to end on the embedded store: update → store watch → cache apply → dispatch, timed
    // until the cache publishes the write's revision. Includes redb's durable commit.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let store: DynStore =
        Arc::new(EmbeddedStore::open(&dir.path().join("bench.redb")).expect("embedded store"));
    let cache = WatchCache::new(res, "/registry", store.clone(), 1024, None);
    let key = cm_key("bench", "roundtrip");
    let mut expected = rt.block_on(async {
        let _guard = cache.start();
        let rev = store
            .create(&key, configmap_value("bench", "roundtrip", 0, 0).into())
            .await
            .expect("create");
        assert!(cache.wait_ready(Duration::from_secs(10)).await);
        assert!(cache.wait_for(rev, Duration::from_secs(10)).await);
        rev
    });
    let mut g = c.benchmark_group("cache_apply");
    g.bench_function("embedded_store_write_to_cache", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    let v = configmap_value("bench", "roundtrip", 0, i);
                    let rev = store
                        .update(&key, v.into(), expected)
                        .await
                        .expect("update");
                    assert!(cache.wait_for(rev, Duration::from_secs(10)).await);
                    expected = rev;
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("embedded_store_write_only", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    let v = configmap_value("bench", "roundtrip", 0, i);
                    expected = store
                        .update(&key, v.into(), expected)
                        .await
                        .expect("update");
                }
                let took = start.elapsed();
                assert!(cache.wait_for(expected, Duration::from_secs(10)).await);
                took
            })
        })
    });
    g.finish();
    drop(rt);
}

fn drain(rxs: &mut [mpsc::Receiver<Delivery>]) -> usize {
    let mut n = 0;
    for rx in rxs.iter_mut() {
        while rx.try_recv().is_ok() {
            n += 1;
        }
    }
    n
}

fn bench_dispatch(c: &mut Criterion) {
    let cms = configmaps();
    let mut g = c.benchmark_group("dispatch");
    for &n in &[1usize, 100, 10_000] {
        let reg = WatcherRegistry::default();
        let mut rxs: Vec<_> = (0..n)
            .map(|_| reg.register(Filter::everything(cms)).1)
            .collect();
        let obj = Arc::new(raw_configmap(1, 100));
        let prev = Some(Arc::new(raw_configmap(1, 99)));
        let ev = Arc::new(CacheEvent::new(EventType::Modified, 100, obj, prev));
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::new("all_watchers", n), |b| {
            b.iter_custom(|iters| {
                let mut took = Duration::ZERO;
                for _ in 0..iters {
                    let events = [ev.clone()];
                    let start = Instant::now();
                    reg.dispatch(&events);
                    took += start.elapsed();
                    assert_eq!(drain(&mut rxs), n, "every watcher got the event");
                }
                took
            })
        });
        // The same, with the receivers drained inside the measurement (the consumer's side of
        // the queue: what a watch body's poll costs per delivery, minus the socket write).
        g.bench_function(BenchmarkId::new("all_watchers_with_drain", n), |b| {
            b.iter(|| {
                reg.dispatch(std::slice::from_ref(&ev));
                drain(&mut rxs)
            })
        });
    }
    // Indexed fan-out target: 10k watchers, each on its own node; one event matches one watcher.
    let p = pods();
    let n = 10_000usize;
    let reg = WatcherRegistry::default();
    let mut rxs: Vec<_> = (0..n)
        .map(|i| {
            let fs = FieldSelector::parse(&format!("spec.nodeName=node-{i}")).expect("selector");
            reg.register(Filter::new(p, None, LabelSelector::default(), fs))
                .1
        })
        .collect();
    let key = "/registry/pods/bench/p1";
    let mk = |rev: i64, seq: u64| {
        Arc::new(
            RawObject::from_kv(p, &kv(key, pod_value("bench", "p1", "node-7", seq), 1, rev))
                .expect("pod decodes"),
        )
    };
    let ev = Arc::new(CacheEvent::new(
        EventType::Modified,
        101,
        mk(101, 2),
        Some(mk(100, 1)),
    ));
    g.throughput(Throughput::Elements(1));
    g.bench_function(BenchmarkId::new("node_selector_one_match", n), |b| {
        b.iter_custom(|iters| {
            let mut took = Duration::ZERO;
            for _ in 0..iters {
                let events = [ev.clone()];
                let start = Instant::now();
                reg.dispatch(&events);
                took += start.elapsed();
                assert_eq!(drain(&mut rxs), 1, "exactly node-7's watcher got it");
            }
            took
        })
    });
    g.finish();
}

/// One page through the server's own `read::snapshot_page` (which also retains the snapshot
/// and records the paging hint, as a real list does), on a cache that is never started.
fn page(snap: &Snapshot, prefix: &str, start: Option<&str>, filter: &Filter, limit: i64) -> Page {
    static CACHE: std::sync::OnceLock<(tempfile::TempDir, Arc<WatchCache>)> =
        std::sync::OnceLock::new();
    let (_, cache) = CACHE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: DynStore =
            Arc::new(EmbeddedStore::open(&dir.path().join("paging.redb")).expect("embedded store"));
        let cache = WatchCache::new(configmaps(), "/registry", store, 1024, None);
        (dir, cache)
    });
    snapshot_page(cache, snap, prefix, start, filter, limit)
}

fn snapshot(n: usize) -> Snapshot {
    let mut objects = ObjectMap::new();
    for i in 0..n {
        let o = raw_configmap(i, 10 + i as i64);
        objects.insert(Arc::new(o));
    }
    Snapshot {
        objects,
        revision: 10 + n as i64,
    }
}

fn bench_list(c: &mut Criterion) {
    let res = configmaps();
    let n = list_objects();
    let snap = snapshot(n);
    let prefix = "/registry/configmaps/";
    let filter_for = |sel: &str| {
        Filter::new(
            res,
            None,
            LabelSelector::parse(sel).expect("selector"),
            FieldSelector::default(),
        )
    };
    let mut g = c.benchmark_group("list");
    g.throughput(Throughput::Elements(n as u64));
    let none = filter_for("app=nothing");
    g.bench_function(BenchmarkId::new("label_selector_matches_none", n), |b| {
        b.iter(|| {
            let p = page(&snap, prefix, None, &none, 0);
            assert!(p.items.is_empty());
            list_body(res, &p)
        })
    });
    let one_pct = filter_for("app=app-7");
    g.bench_function(BenchmarkId::new("label_selector_matches_1pct", n), |b| {
        b.iter(|| {
            let p = page(&snap, prefix, None, &one_pct, 0);
            assert_eq!(p.items.len(), n / 100);
            list_body(res, &p)
        })
    });
    let everything = Filter::everything(res);
    g.bench_function(BenchmarkId::new("everything_with_body", n), |b| {
        b.iter(|| {
            let p = page(&snap, prefix, None, &everything, 0);
            list_body(res, &p).len()
        })
    });
    g.bench_function(BenchmarkId::new("take_snapshot", n), |b| {
        b.iter(|| black_box(snap.clone()))
    });
    g.finish();

    let mut g = c.benchmark_group("paging");
    g.throughput(Throughput::Elements(n as u64));
    for &limit in &[500i64, 5_000] {
        g.bench_function(
            BenchmarkId::new(format!("walk_all_limit_{limit}"), n),
            |b| {
                b.iter(|| {
                    let mut token: Option<String> = None;
                    let mut seen = 0usize;
                    loop {
                        let start = token.as_deref().map(|t| {
                            let (rv, rel) = continue_token::decode(t).expect("token");
                            assert_eq!(rv, snap.revision);
                            format!("{prefix}{rel}")
                        });
                        let p = page(&snap, prefix, start.as_deref(), &everything, limit);
                        seen += p.items.len();
                        black_box(list_body(res, &p));
                        match p.continue_token {
                            Some(t) => token = Some(t),
                            None => break,
                        }
                    }
                    assert_eq!(seen, n);
                })
            },
        );
    }
    // One page from the middle of the snapshot with a selector matching 1 %: the page scans
    // ~100 objects per returned item.
    let mid = format!("{prefix}bench/cm-{:07}", n / 2);
    g.throughput(Throughput::Elements(50));
    g.bench_function(
        BenchmarkId::new("one_page_limit_50_selector_1pct", n),
        |b| {
            b.iter(|| {
                let p = page(&snap, prefix, Some(&mid), &one_pct, 50);
                list_body(res, &p)
            })
        },
    );
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_frame, bench_dispatch, bench_list, bench_apply
}
criterion_main!(benches);
