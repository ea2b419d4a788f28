//! What the watch cache holds in memory for N ~1 KB ConfigMaps, against their wire bytes
//! (PERFORMANCE.md "cache memory": resident memory ≤ 1.5× the wire bytes of cached objects).
//!
//! A counting global allocator measures the bytes live after building the cache's own structures
//! the way `cache::WatchCache` does: every stored value decoded by `RawObject::from_kv` and kept
//! as `Arc<RawObject>` in the persistent `ObjectMap` (ordered by the key inside each object), plus
//! the history ring of the last `--watch-cache-history` events (each a `CacheEvent` whose JSON
//! frame is built eagerly).
//! The wire bytes are the length of the JSON LIST body of those objects, as served
//! (`list_body::ListBody`, exact from its size hint). Objects are what kapi stores for the
//! loadgen's ConfigMaps (`kapi-loadgen --fill`): labels, uid, creationTimestamp, one
//! managedFields entry, ~640 bytes of data.
//!
//! `cargo bench --bench cache_memory` (100k objects, about a second; also part of
//! `bash benches/run.sh`). `KAPI_BENCH_OBJECTS=N` and `KAPI_BENCH_RING=N` change the sizes;
//! `KAPI_CACHE_MEMORY_MAX_RATIO=1.5` makes it fail when the cache (map + ring, malloc
//! footprint) exceeds that multiple of the wire bytes.
//!
//! Then every object is replaced by a new version, as a MODIFIED event does: the cache must
//! then hold only the new versions (a map that keeps copies of keys in inner nodes, as a B+
//! tree does, would keep old versions alive through them). It reports the objects + map after
//! that, and fails if any replaced object is still referenced once the map let go of it.
//!
//! Two figures per structure: bytes requested from the allocator, and the malloc footprint
//! (`malloc_usable_size` + the 8-byte chunk header glibc keeps per allocation), which is what
//! the process's RSS pays before fragmentation.

use hyper::body::Body as _;
use kapi::api::catalogue::{lookup, ResourceInfo};
use kapi::api::handlers::list_body::ListBody;
use kapi::api::handlers::read::Page;
use kapi::cache::event::{CacheEvent, EventType};
use kapi::cache::ObjectMap;
use kapi::object::raw::RawObject;
use kapi::storage::KeyValue;
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

struct Counting;

static REQUESTED: AtomicI64 = AtomicI64::new(0);
static FOOTPRINT: AtomicI64 = AtomicI64::new(0);
static LIVE_ALLOCS: AtomicI64 = AtomicI64::new(0);

/// While set, the sizes of live-kept allocations are recorded (one object's worth).
static TRACE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static TRACE_LEN: AtomicI64 = AtomicI64::new(0);
static TRACE_SIZES: [AtomicI64; 512] = [const { AtomicI64::new(0) }; 512];

fn trace(size: i64) {
    if TRACE.load(Ordering::Relaxed) {
        let i = TRACE_LEN.fetch_add(1, Ordering::Relaxed);
        if let Some(slot) = TRACE_SIZES.get(i as usize) {
            slot.store(size, Ordering::Relaxed);
        }
    }
}

/// glibc's per-chunk header.
const CHUNK_HEADER: i64 = 8;

fn footprint_of(p: *const u8) -> i64 {
    footprint(p.cast_mut())
}

fn footprint(p: *mut u8) -> i64 {
    // SAFETY: `p` was returned by the system allocator (malloc family) and is still live.
    unsafe { libc::malloc_usable_size(p.cast()) as i64 + CHUNK_HEADER }
}

// SAFETY: every call is forwarded to `System`; the counters only observe.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            trace(layout.size() as i64);
            REQUESTED.fetch_add(layout.size() as i64, Ordering::Relaxed);
            FOOTPRINT.fetch_add(footprint(p), Ordering::Relaxed);
            LIVE_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            REQUESTED.fetch_add(layout.size() as i64, Ordering::Relaxed);
            FOOTPRINT.fetch_add(footprint(p), Ordering::Relaxed);
            LIVE_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        trace(-(layout.size() as i64));
        REQUESTED.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        FOOTPRINT.fetch_sub(footprint(p), Ordering::Relaxed);
        LIVE_ALLOCS.fetch_sub(1, Ordering::Relaxed);
        System.dealloc(p, layout)
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = footprint(p);
        let q = System.realloc(p, layout, new_size);
        if !q.is_null() {
            trace(-(layout.size() as i64));
            trace(new_size as i64);
            REQUESTED.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
            FOOTPRINT.fetch_add(footprint(q) - old, Ordering::Relaxed);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[derive(Clone, Copy)]
struct Live {
    requested: i64,
    footprint: i64,
    allocs: i64,
}

fn live() -> Live {
    Live {
        requested: REQUESTED.load(Ordering::Relaxed),
        footprint: FOOTPRINT.load(Ordering::Relaxed),
        allocs: LIVE_ALLOCS.load(Ordering::Relaxed),
    }
}

fn since(a: Live) -> Live {
    let b = live();
    Live {
        requested: b.requested - a.requested,
        footprint: b.footprint - a.footprint,
        allocs: b.allocs - a.allocs,
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The stored form kapi writes for the loadgen's ~1 KB ConfigMap number `i`.
fn stored_configmap(ns: &str, name: &str, i: usize) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {"loadgen": "true"},
            "uid": format!("5b2f1c3e-8d4a-4f6b-9c1d-{i:012}"),
            "creationTimestamp": "2026-11-23T12:00:00Z",
            "managedFields": [{
                "manager": "unknown",
                "operation": "Update",
                "apiVersion": "v1",
                "time": "2026-11-23T12:00:00Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {
                    "f:data": {".": {}, "f:payload": {}, "f:seq": {}},
                    "f:metadata": {"f:labels": {".": {}, "f:loadgen": {}}},
                },
            }],
        },
        "data": {"seq": i.to_string(), "payload": "x".repeat(644)},
    }))
    .expect("JSON serializes")
}

fn mb(b: i64) -> f64 {
    b as f64 / 1e6
}

fn report(what: &str, l: Live, wire: u64) {
    println!(
        "cache_memory: {what:<34} requested {:>8.1} MB ({:.3}× wire), malloc footprint {:>8.1} MB \
         ({:.3}× wire), {} allocations",
        mb(l.requested),
        l.requested as f64 / wire as f64,
        mb(l.footprint),
        l.footprint as f64 / wire as f64,
        l.allocs
    );
}

/// True when the command line selects this bench (cargo passes `--bench`; benches/run.sh
/// passes criterion's flags and an optional name filter).
fn selected() -> bool {
    let mut args = std::env::args().skip(1);
    let mut filters = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--output-format" | "--sample-size" | "--measurement-time" | "--warm-up-time" => {
                args.next();
            }
            s if s.starts_with('-') => {}
            s => filters.push(s.to_string()),
        }
    }
    filters.is_empty() || filters.iter().any(|f| "cache_memory".contains(f.as_str()))
}

fn main() {
    if !selected() {
        return;
    }
    let res: &'static ResourceInfo = lookup("", "v1", "configmaps").expect("configmaps");
    let n = env_usize("KAPI_BENCH_OBJECTS", 100_000);
    let ring_len = env_usize("KAPI_BENCH_RING", 10_240).min(n);
    let ns = "loadgen";
    if std::env::var_os("KAPI_BENCH_TRACE").is_some() {
        // Every allocation (+) and free (−) while one object is decoded, in order.
        let kv = KeyValue {
            key: "/registry/configmaps/loadgen/fill-0000001".into(),
            value: stored_configmap(ns, "fill-0000001", 1).into(),
            create_revision: 1,
            mod_revision: 1,
        };
        TRACE.store(true, Ordering::Relaxed);
        let o = RawObject::from_kv(res, &kv).expect("decodes");
        TRACE.store(false, Ordering::Relaxed);
        let k = (TRACE_LEN.load(Ordering::Relaxed) as usize).min(TRACE_SIZES.len());
        let sizes: Vec<i64> = TRACE_SIZES[..k]
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .collect();
        println!(
            "cache_memory: RawObject {} B, JSON {} B; allocations while decoding: {sizes:?}",
            std::mem::size_of::<RawObject>(),
            o.json().len()
        );
    }

    let start = live();
    // The cached objects: every stored value decoded as `WatchCache::list_all` does.
    let before = live();
    let mut decoded: Vec<Arc<RawObject>> = Vec::with_capacity(n);
    let vec_overhead = since(before);
    let before = live();
    let mut stored_bytes = 0u64;
    let mut json_bytes = 0u64;
    let mut key_bytes = 0u64;
    for i in 0..n {
        let name = format!("fill-{i:07}");
        let kv = KeyValue {
            key: format!("/registry/configmaps/{ns}/{name}"),
            value: stored_configmap(ns, &name, i).into(),
            create_revision: 100 + i as i64,
            mod_revision: 100 + i as i64,
        };
        stored_bytes += kv.value.len() as u64;
        let o = RawObject::from_kv(res, &kv).expect("decodes");
        json_bytes += o.json().len() as u64;
        key_bytes += kv.key.len() as u64;
        decoded.push(Arc::new(o));
    }
    let objs = since(before);

    // The map: the persistent tree's nodes (its keys are the objects' own).
    let before = live();
    let objects: ObjectMap = decoded.drain(..).collect();
    drop(decoded);
    let mut map = since(before);
    // `decoded`'s buffer was freed inside the window: add it back.
    map.requested += vec_overhead.requested;
    map.footprint += vec_overhead.footprint;
    map.allocs += vec_overhead.allocs;

    // For comparison: the served JSON copied into exactly sized buffers.
    let before = live();
    let exact: Vec<bytes::Bytes> = objects
        .values()
        .map(|o| bytes::Bytes::copy_from_slice(o.json()))
        .collect();
    let mut exact_json = since(before);
    let vec_of_exact = (exact.capacity() * std::mem::size_of::<bytes::Bytes>()) as i64;
    exact_json.requested -= vec_of_exact;
    exact_json.footprint -= footprint_of(exact.as_ptr().cast());
    exact_json.allocs -= 1;
    drop(exact);

    // The history ring: the last `ring_len` objects as ADDED events.
    let before = live();
    let ring: VecDeque<Arc<CacheEvent>> = objects
        .iter()
        .skip(n - ring_len)
        .map(|(_, o)| {
            Arc::new(CacheEvent::new(
                EventType::Added,
                o.mod_revision,
                o.clone(),
                None,
            ))
        })
        .collect();
    let ring_mem = since(before);

    // Wire bytes: the JSON LIST body of all of them, as kapi serves it.
    let page = Page {
        items: objects.values().cloned().collect(),
        revision: 100 + n as i64,
        continue_token: None,
        remaining: None,
    };
    let wire = ListBody::new(res, page)
        .size_hint()
        .exact()
        .expect("a list body knows its length");

    println!(
        "cache_memory: {n} ConfigMaps: LIST body {:.1} MB ({} B per object), stored values \
         {:.1} MB, served JSON {:.1} MB, keys {:.1} MB (held once, in RawObject)",
        wire as f64 / 1e6,
        wire / n as u64,
        stored_bytes as f64 / 1e6,
        json_bytes as f64 / 1e6,
        key_bytes as f64 / 1e6
    );
    report("decoded objects (Arc<RawObject>)", objs, wire);
    report("map (tree nodes)", map, wire);
    report(&format!("history ring ({ring_len} events)"), ring_mem, wire);
    let total = Live {
        requested: objs.requested + map.requested + ring_mem.requested,
        footprint: objs.footprint + map.footprint + ring_mem.footprint,
        allocs: objs.allocs + map.allocs + ring_mem.allocs,
    };
    report("objects + map + ring", total, wire);
    report("(served JSON in exact-size buffers)", exact_json, wire);
    println!(
        "cache_memory: per object: {} B decoded (served JSON {} B), {} B in the map, {} B in \
         the ring per event",
        objs.footprint / n as i64,
        json_bytes / n as u64,
        map.footprint / n as i64,
        ring_mem.footprint / ring_len.max(1) as i64,
    );
    drop(ring);

    // One update of every object, in key order as a rolling change would: each replaced version
    // must be referenced by nothing but the `prev` the map hands back, so that it is freed here.
    let mut objects = objects;
    let mut still_referenced = 0usize;
    for i in 0..n {
        let name = format!("fill-{i:07}");
        let kv = KeyValue {
            key: format!("/registry/configmaps/{ns}/{name}"),
            value: stored_configmap(ns, &name, i).into(),
            create_revision: 100 + i as i64,
            mod_revision: 100 + (n + i) as i64,
        };
        let o = RawObject::from_kv(res, &kv).expect("decodes");
        if let Some(prev) = objects.insert(Arc::new(o)) {
            if Arc::strong_count(&prev) > 1 {
                still_referenced += 1;
            }
        }
    }
    let updated = since(start);
    // Compared with the objects + map as decoded (leaving out what serving them added since,
    // e.g. the shared `Bytes` header a clone of each JSON buffer allocates).
    let loaded = Live {
        requested: objs.requested + map.requested,
        footprint: objs.footprint + map.footprint,
        allocs: objs.allocs + map.allocs,
    };
    report("objects + map, as decoded", loaded, wire);
    report("objects + map, after 1 update of each", updated, wire);
    println!(
        "cache_memory: replaced versions still referenced after the update: {still_referenced} \
         of {n}"
    );
    drop(objects);
    if still_referenced > 0 {
        eprintln!("cache_memory: the map keeps replaced objects alive");
        std::process::exit(1);
    }

    if let Ok(max) = std::env::var("KAPI_CACHE_MEMORY_MAX_RATIO") {
        let max: f64 = max
            .parse()
            .expect("KAPI_CACHE_MEMORY_MAX_RATIO is a number");
        let ratio = total.footprint as f64 / wire as f64;
        if ratio > max {
            eprintln!("cache_memory: {ratio:.3}× wire exceeds {max}×");
            std::process::exit(1);
        }
    }
}
