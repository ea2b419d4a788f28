//! One conformance suite for both `Store` implementations: every behaviour is a generic async fn
//! over `Arc<dyn Store>`, run against a real etcd (one per test, see `common::etcd`) and against
//! the embedded redb store (one temp dir per test).

mod common;

use bytes::Bytes;
use common::etcd::EtcdServer;
use futures::stream::{BoxStream, StreamExt};
use kapi::storage::embedded::EmbeddedStore;
use kapi::storage::etcd::EtcdStore;
use kapi::storage::{KeyValue, Revision, Store, StoreError, StoreEvent, StoreResult, WatchMessage};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::timeout;

type DynStore = Arc<dyn Store>;
type Watch = BoxStream<'static, StoreResult<WatchMessage>>;

const STEP: Duration = Duration::from_secs(5);
const TEST_BUDGET: Duration = Duration::from_secs(10);
const PROGRESS_INTERVAL: Duration = Duration::from_millis(200);

// ---- backends ----

/// Keeps whatever backs a store (an etcd process, a temp dir) alive for the test.
struct Backend {
    store: DynStore,
    _guard: Box<dyn std::any::Any + Send>,
}

async fn etcd_backend() -> Backend {
    let server = tokio::task::spawn_blocking(EtcdServer::start)
        .await
        .expect("etcd start task");
    let store = EtcdStore::connect(&server.endpoints(), None)
        .await
        .expect("connect to etcd");
    Backend {
        store: Arc::new(store),
        _guard: Box::new(server),
    }
}

async fn embedded_backend() -> Backend {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(&dir.path().join("kapi.redb"))
        .expect("open embedded store")
        .with_progress_interval(PROGRESS_INTERVAL);
    Backend {
        store: Arc::new(store),
        _guard: Box::new(dir),
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let backend = super::etcd_backend().await;
                    tokio::time::timeout(super::TEST_BUDGET, super::$name(backend.store.clone()))
                        .await
                        .expect("test exceeded its time budget");
                }
            )*
        }
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let backend = super::embedded_backend().await;
                    tokio::time::timeout(super::TEST_BUDGET, super::$name(backend.store.clone()))
                        .await
                        .expect("test exceeded its time budget");
                }
            )*
        }
    };
}

conformance!(
    fresh_store_starts_at_revision_one,
    create_and_get,
    update_is_compare_and_swap,
    delete_is_compare_and_swap,
    revisions_are_global_and_increasing,
    range_isolates_prefixes_and_pages,
    range_at_past_revision,
    compaction,
    count_with_min_mod_revision,
    watch_replays_then_continues_live,
    watch_from_now_sees_only_new_events,
    watch_progress_on_quiet_prefix,
    watch_from_compacted_revision_fails,
    large_range_and_watch,
);

// ---- helpers ----

fn b(s: &str) -> Bytes {
    Bytes::from(s.to_string())
}

async fn get(store: &DynStore, key: &str) -> Option<KeyValue> {
    store.get(key).await.expect("get").0
}

/// The next `n` events (progress notifications skipped), bounded in time.
async fn next_events(watch: &mut Watch, n: usize) -> Vec<StoreEvent> {
    let mut events = Vec::new();
    while events.len() < n {
        let msg = timeout(STEP, watch.next())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for events; got {events:?}"))
            .expect("watch stream ended")
            .expect("watch error");
        if let WatchMessage::Events(batch) = msg {
            assert!(!batch.is_empty(), "empty event batch");
            events.extend(batch);
        }
    }
    assert_eq!(events.len(), n, "more events than expected: {events:?}");
    events
}

/// Asserts the watch yields no event within `wait` (progress notifications are fine).
async fn assert_no_events(watch: &mut Watch, wait: Duration) {
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(msg) = tokio::time::timeout_at(deadline, watch.next()).await {
        match msg.expect("watch stream ended").expect("watch error") {
            WatchMessage::Progress(_) => {}
            WatchMessage::Events(evs) => panic!("unexpected events: {evs:?}"),
        }
    }
}

/// A watch from a compacted revision fails with `Compacted`, either at once or as the stream's
/// first item; returns the compacted revision.
async fn expect_compacted_watch(store: &DynStore, prefix: &str, from: Revision) -> Revision {
    let mut watch = match store.watch(prefix, from).await {
        Err(StoreError::Compacted { compacted }) => return compacted,
        Err(e) => panic!("unexpected watch error {e:?}"),
        Ok(w) => w,
    };
    loop {
        let msg = timeout(STEP, watch.next())
            .await
            .expect("timed out waiting for Compacted")
            .expect("stream ended without Compacted");
        match msg {
            Err(StoreError::Compacted { compacted }) => return compacted,
            Ok(WatchMessage::Progress(_)) => {}
            other => panic!("expected Compacted, got {other:?}"),
        }
    }
}

fn put_of(ev: &StoreEvent) -> (&KeyValue, &Option<KeyValue>) {
    match ev {
        StoreEvent::Put { kv, prev } => (kv, prev),
        other => panic!("expected a put, got {other:?}"),
    }
}

fn keys(kvs: &[KeyValue]) -> Vec<&str> {
    kvs.iter().map(|kv| kv.key.as_str()).collect()
}

// ---- behaviours ----

async fn fresh_store_starts_at_revision_one(store: DynStore) {
    assert_eq!(store.current_revision().await.unwrap(), 1);
    let rev = store.create("/registry/pods/ns/a", b("a")).await.unwrap();
    assert_eq!(rev, 2);
    assert_eq!(store.current_revision().await.unwrap(), 2);
}

async fn create_and_get(store: DynStore) {
    let key = "/registry/pods/ns/a";
    let (none, rev0) = store.get(key).await.unwrap();
    assert_eq!(none, None);
    assert!(rev0 >= 1);

    let r1 = store.create(key, b("v1")).await.unwrap();
    assert!(r1 > rev0);
    let (kv, rev) = store.get(key).await.unwrap();
    let kv = kv.expect("created key");
    assert_eq!(kv.key, key);
    assert_eq!(kv.value, b("v1"));
    assert_eq!((kv.create_revision, kv.mod_revision), (r1, r1));
    assert_eq!(rev, r1);

    assert_eq!(
        store.create(key, b("v2")).await,
        Err(StoreError::AlreadyExists)
    );
    // The failed create changed nothing.
    assert_eq!(get(&store, key).await.unwrap().value, b("v1"));
    assert_eq!(store.current_revision().await.unwrap(), r1);

    // Empty values are values.
    let r2 = store
        .create("/registry/pods/ns/empty", Bytes::new())
        .await
        .unwrap();
    let kv = get(&store, "/registry/pods/ns/empty").await.unwrap();
    assert_eq!((kv.value.len(), kv.mod_revision), (0, r2));
}

async fn update_is_compare_and_swap(store: DynStore) {
    let key = "/registry/pods/ns/a";
    let r1 = store.create(key, b("v1")).await.unwrap();
    let r2 = store.update(key, b("v2"), r1).await.unwrap();
    assert!(r2 > r1);
    let kv = get(&store, key).await.unwrap();
    assert_eq!(kv.value, b("v2"));
    assert_eq!((kv.create_revision, kv.mod_revision), (r1, r2));

    // A stale expected revision is a conflict that reports the current value.
    match store.update(key, b("v3"), r1).await {
        Err(StoreError::Conflict {
            current: Some(current),
        }) => assert_eq!(current, kv),
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(get(&store, key).await.unwrap().value, b("v2"));
    assert_eq!(store.current_revision().await.unwrap(), r2);

    assert_eq!(
        store.update("/registry/pods/ns/missing", b("x"), r1).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        store.update("/registry/pods/ns/missing", b("x"), 0).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(get(&store, "/registry/pods/ns/missing").await, None);
}

async fn delete_is_compare_and_swap(store: DynStore) {
    let key = "/registry/pods/ns/a";
    let r1 = store.create(key, b("v1")).await.unwrap();
    let r2 = store.update(key, b("v2"), r1).await.unwrap();
    match store.delete(key, r1).await {
        Err(StoreError::Conflict {
            current: Some(current),
        }) => assert_eq!(current.mod_revision, r2),
        other => panic!("expected Conflict, got {other:?}"),
    }
    let r3 = store.delete(key, r2).await.unwrap();
    assert!(r3 > r2);
    let (kv, rev) = store.get(key).await.unwrap();
    assert_eq!(kv, None);
    assert_eq!(rev, r3);
    assert_eq!(store.delete(key, r2).await, Err(StoreError::NotFound));
    assert_eq!(store.delete(key, 0).await, Err(StoreError::NotFound));

    // Re-creating starts a new life for the key.
    let r4 = store.create(key, b("again")).await.unwrap();
    let kv = get(&store, key).await.unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision), (r4, r4));
}

async fn revisions_are_global_and_increasing(store: DynStore) {
    let mut last = store.current_revision().await.unwrap();
    let keys = [
        "/registry/pods/ns/a",
        "/registry/services/ns/a",
        "/registry/pods/ns/b",
        "/other/x",
    ];
    for key in keys {
        let rev = store.create(key, b("1")).await.unwrap();
        assert_eq!(
            rev,
            last + 1,
            "every write bumps the global revision by one"
        );
        last = rev;
    }
    let kv = get(&store, keys[0]).await.unwrap();
    last = store
        .update(keys[0], b("2"), kv.mod_revision)
        .await
        .unwrap();
    let deleted = store.delete(keys[1], kv.mod_revision + 1).await.unwrap();
    assert_eq!(deleted, last + 1);
    assert_eq!(store.current_revision().await.unwrap(), deleted);
    // Reads report the store's revision, whatever the prefix.
    assert_eq!(store.get(keys[3]).await.unwrap().1, deleted);
    let r = store.range("/registry/pods/", None, 0, 0).await.unwrap();
    assert_eq!(r.revision, deleted);
}

async fn range_isolates_prefixes_and_pages(store: DynStore) {
    for key in [
        "/registry/pods/a",
        "/registry/pods/b",
        "/registry/pods/c",
        "/registry/podsx/d",
        "/registry/pod",
        "/registry/pods",
    ] {
        store.create(key, b(key)).await.unwrap();
    }
    let current = store.current_revision().await.unwrap();

    let all = store.range("/registry/pods/", None, 0, 0).await.unwrap();
    assert_eq!(
        keys(&all.kvs),
        ["/registry/pods/a", "/registry/pods/b", "/registry/pods/c"]
    );
    assert_eq!((all.count, all.more, all.revision), (3, false, current));
    assert_eq!(all.kvs[1].value, b("/registry/pods/b"));

    let page = store.range("/registry/pods/", None, 2, 0).await.unwrap();
    assert_eq!(keys(&page.kvs), ["/registry/pods/a", "/registry/pods/b"]);
    assert_eq!((page.count, page.more), (3, true));

    // Continue after the last key returned (key + "\0"), pinned at the first page's revision.
    let next = format!("{}\0", page.kvs[1].key);
    let page2 = store
        .range("/registry/pods/", Some(&next), 2, page.revision)
        .await
        .unwrap();
    assert_eq!(keys(&page2.kvs), ["/registry/pods/c"]);
    assert_eq!(
        (page2.count, page2.more, page2.revision),
        (1, false, page.revision)
    );

    // `start` is inclusive.
    let from_b = store
        .range("/registry/pods/", Some("/registry/pods/b"), 0, 0)
        .await
        .unwrap();
    assert_eq!(keys(&from_b.kvs), ["/registry/pods/b", "/registry/pods/c"]);
    assert_eq!(from_b.count, 2);

    let other = store.range("/registry/podsx/", None, 0, 0).await.unwrap();
    assert_eq!(keys(&other.kvs), ["/registry/podsx/d"]);
    let none = store.range("/registry/nothing/", None, 0, 0).await.unwrap();
    assert_eq!((none.kvs.len(), none.count, none.more), (0, 0, false));

    // A start past the end of the prefix yields nothing.
    let past = store
        .range("/registry/pods/", Some("/registry/pods0"), 0, 0)
        .await
        .unwrap();
    assert_eq!((past.kvs.len(), past.count), (0, 0));

    assert_eq!(
        store.range("/registry/pods/", None, 0, current + 100).await,
        Err(StoreError::FutureRevision)
    );
}

async fn range_at_past_revision(store: DynStore) {
    let p = "/registry/pods/";
    let ra = store.create("/registry/pods/a", b("a1")).await.unwrap();
    let rb = store.create("/registry/pods/b", b("b1")).await.unwrap();
    let ra2 = store.update("/registry/pods/a", b("a2"), ra).await.unwrap();
    let rdel = store.delete("/registry/pods/b", rb).await.unwrap();
    let rc = store.create("/registry/pods/c", b("c1")).await.unwrap();
    store.create("/registry/podsx/z", b("z")).await.unwrap();

    let at_rb = store.range(p, None, 0, rb).await.unwrap();
    assert_eq!(keys(&at_rb.kvs), ["/registry/pods/a", "/registry/pods/b"]);
    assert_eq!(at_rb.kvs[0].value, b("a1"));
    assert_eq!(
        (at_rb.kvs[0].create_revision, at_rb.kvs[0].mod_revision),
        (ra, ra)
    );
    assert_eq!(at_rb.revision, rb);

    let at_ra2 = store.range(p, None, 0, ra2).await.unwrap();
    assert_eq!(keys(&at_ra2.kvs), ["/registry/pods/a", "/registry/pods/b"]);
    assert_eq!(at_ra2.kvs[0].value, b("a2"));
    assert_eq!(at_ra2.kvs[0].mod_revision, ra2);

    let at_del = store.range(p, None, 0, rdel).await.unwrap();
    assert_eq!(keys(&at_del.kvs), ["/registry/pods/a"]);

    let now = store.range(p, None, 0, 0).await.unwrap();
    assert_eq!(keys(&now.kvs), ["/registry/pods/a", "/registry/pods/c"]);
    assert_eq!(now.kvs[1].mod_revision, rc);

    // Paging works at a past revision too.
    let page = store.range(p, None, 1, rb).await.unwrap();
    assert_eq!(keys(&page.kvs), ["/registry/pods/a"]);
    assert_eq!((page.count, page.more), (2, true));
    let page2 = store
        .range(p, Some("/registry/pods/a\0"), 1, rb)
        .await
        .unwrap();
    assert_eq!(keys(&page2.kvs), ["/registry/pods/b"]);
    assert_eq!(page2.kvs[0].value, b("b1"));
    assert_eq!((page2.count, page2.more), (1, false));

    // Before the first write, the prefix was empty.
    let before = store.range(p, None, 0, ra - 1).await.unwrap();
    assert_eq!((before.kvs.len(), before.count), (0, 0));
}

async fn compaction(store: DynStore) {
    let p = "/registry/pods/";
    let r1 = store.create("/registry/pods/a", b("1")).await.unwrap();
    let r2 = store.update("/registry/pods/a", b("2"), r1).await.unwrap();
    let r3 = store.update("/registry/pods/a", b("3"), r2).await.unwrap();
    let r4 = store.create("/registry/pods/b", b("1")).await.unwrap();

    store.compact(r3).await.unwrap();
    assert_eq!(
        store.range(p, None, 0, r2).await,
        Err(StoreError::Compacted { compacted: r3 })
    );
    assert_eq!(
        store.count(p, r2, 0).await,
        Err(StoreError::Compacted { compacted: r3 })
    );
    // The compacted revision itself and later ones stay readable.
    let at_r3 = store.range(p, None, 0, r3).await.unwrap();
    assert_eq!(keys(&at_r3.kvs), ["/registry/pods/a"]);
    assert_eq!(at_r3.kvs[0].value, b("3"));
    assert_eq!(store.range(p, None, 0, r4).await.unwrap().count, 2);
    assert_eq!(
        get(&store, "/registry/pods/a").await.unwrap().mod_revision,
        r3
    );

    // Compacting again at (or below) the compacted revision is an error; so is the future.
    assert!(matches!(
        store.compact(r3).await,
        Err(StoreError::Compacted { .. })
    ));
    assert_eq!(
        store.compact(r4 + 100).await,
        Err(StoreError::FutureRevision)
    );

    // A watch from the compacted revision still replays from there.
    let mut watch = store.watch(p, r3).await.unwrap();
    let events = next_events(&mut watch, 2).await;
    assert_eq!(
        events.iter().map(StoreEvent::revision).collect::<Vec<_>>(),
        [r3, r4]
    );
}

async fn count_with_min_mod_revision(store: DynStore) {
    let p = "/registry/pods/";
    let ra = store.create("/registry/pods/a", b("1")).await.unwrap();
    let rb = store.create("/registry/pods/b", b("1")).await.unwrap();
    let rc = store.create("/registry/pods/c", b("1")).await.unwrap();
    store.create("/registry/podsx/x", b("1")).await.unwrap();

    assert_eq!(store.count(p, 0, 0).await.unwrap(), 3);
    assert_eq!(store.count(p, 0, rb).await.unwrap(), 2);
    assert_eq!(store.count(p, 0, rc + 1).await.unwrap(), 0);

    let ra2 = store.update("/registry/pods/a", b("2"), ra).await.unwrap();
    assert_eq!(store.count(p, 0, rb).await.unwrap(), 3);
    assert_eq!(store.count(p, 0, ra2).await.unwrap(), 1);
    // At a past revision the old mod revisions count.
    assert_eq!(store.count(p, rc, rb).await.unwrap(), 2);
    assert_eq!(store.count(p, rb, 0).await.unwrap(), 2);

    store.delete("/registry/pods/b", rb).await.unwrap();
    assert_eq!(store.count(p, 0, 0).await.unwrap(), 2);
    assert_eq!(store.count(p, 0, ra2).await.unwrap(), 1);
    assert_eq!(store.count("/registry/nothing/", 0, 0).await.unwrap(), 0);
}

async fn watch_replays_then_continues_live(store: DynStore) {
    let p = "/registry/pods/";
    let r1 = store.create("/registry/pods/a", b("v1")).await.unwrap();
    store.create("/registry/podsx/noise", b("n")).await.unwrap();
    let r2 = store.update("/registry/pods/a", b("v2"), r1).await.unwrap();
    let r3 = store.delete("/registry/pods/a", r2).await.unwrap();

    let mut watch = store.watch(p, r1).await.unwrap();
    let events = next_events(&mut watch, 3).await;

    let (kv, prev) = put_of(&events[0]);
    assert_eq!(
        (kv.key.as_str(), kv.value.clone()),
        ("/registry/pods/a", b("v1"))
    );
    assert_eq!((kv.create_revision, kv.mod_revision), (r1, r1));
    assert_eq!(*prev, None);

    let (kv, prev) = put_of(&events[1]);
    assert_eq!(
        (kv.value.clone(), kv.create_revision, kv.mod_revision),
        (b("v2"), r1, r2)
    );
    let prev = prev.as_ref().expect("update carries prev");
    assert_eq!((prev.value.clone(), prev.mod_revision), (b("v1"), r1));

    match &events[2] {
        StoreEvent::Delete {
            key,
            revision,
            prev,
        } => {
            assert_eq!((key.as_str(), *revision), ("/registry/pods/a", r3));
            let prev = prev.as_ref().expect("delete carries prev");
            assert_eq!((prev.value.clone(), prev.mod_revision), (b("v2"), r2));
        }
        other => panic!("expected a delete, got {other:?}"),
    }
    assert_eq!(events[2].revision(), r3);
    assert_eq!(events[2].key(), "/registry/pods/a");

    // Live events follow without gaps or duplicates.
    store
        .create("/registry/podsx/more-noise", b("n"))
        .await
        .unwrap();
    let r5 = store.create("/registry/pods/b", b("b1")).await.unwrap();
    let r6 = store.update("/registry/pods/b", b("b2"), r5).await.unwrap();
    let live = next_events(&mut watch, 2).await;
    assert_eq!(
        live.iter().map(StoreEvent::revision).collect::<Vec<_>>(),
        [r5, r6]
    );
    assert_eq!(put_of(&live[1]).1.as_ref().unwrap().value, b("b1"));
    assert_no_events(&mut watch, Duration::from_millis(300)).await;

    // A second watch from the middle of history starts exactly there.
    let mut watch2 = store.watch(p, r3).await.unwrap();
    let events = next_events(&mut watch2, 3).await;
    assert_eq!(
        events.iter().map(StoreEvent::revision).collect::<Vec<_>>(),
        [r3, r5, r6]
    );
}

async fn watch_from_now_sees_only_new_events(store: DynStore) {
    let p = "/registry/pods/";
    store.create("/registry/pods/old", b("old")).await.unwrap();
    let mut watch = store.watch(p, 0).await.unwrap();
    let r = store.create("/registry/pods/new", b("new")).await.unwrap();
    let events = next_events(&mut watch, 1).await;
    assert_eq!(events[0].key(), "/registry/pods/new");
    assert_eq!(events[0].revision(), r);
    assert_no_events(&mut watch, Duration::from_millis(300)).await;
}

async fn watch_progress_on_quiet_prefix(store: DynStore) {
    let mut watch = store.watch("/registry/quiet/", 0).await.unwrap();
    // Another prefix stays busy; the quiet watch must still learn the store's progress.
    let mut last = 0;
    for i in 0..5 {
        last = store
            .create(&format!("/registry/busy/{i}"), b("x"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let msg = tokio::time::timeout_at(deadline, watch.next())
            .await
            .unwrap_or_else(|_| panic!("no progress notification reaching revision {last}"))
            .expect("watch stream ended")
            .expect("watch error");
        match msg {
            WatchMessage::Progress(rev) if rev >= last => break,
            WatchMessage::Progress(_) => {}
            WatchMessage::Events(evs) => panic!("events on a quiet prefix: {evs:?}"),
        }
    }
    // Progress keeps coming while nothing happens at all.
    let msg = timeout(STEP, watch.next())
        .await
        .expect("no further progress notification")
        .expect("watch stream ended")
        .expect("watch error");
    assert!(matches!(msg, WatchMessage::Progress(rev) if rev >= last));
}

async fn watch_from_compacted_revision_fails(store: DynStore) {
    let p = "/registry/pods/";
    let r1 = store.create("/registry/pods/a", b("1")).await.unwrap();
    let r2 = store.update("/registry/pods/a", b("2"), r1).await.unwrap();
    let r3 = store.update("/registry/pods/a", b("3"), r2).await.unwrap();
    store.compact(r3).await.unwrap();
    assert_eq!(expect_compacted_watch(&store, p, r1).await, r3);
    assert_eq!(expect_compacted_watch(&store, "/other/", r2).await, r3);
}

/// Lists and watch catch-up bigger than gRPC's default 4 MiB message limit.
async fn large_range_and_watch(store: DynStore) {
    let value = Bytes::from(vec![b'x'; 1 << 20]);
    let mut revs = Vec::new();
    for i in 0..5 {
        let key = format!("/registry/configmaps/ns/big-{i}");
        revs.push(store.create(&key, value.clone()).await.unwrap());
    }
    let list = store
        .range("/registry/configmaps/", None, 0, 0)
        .await
        .unwrap();
    assert_eq!(list.kvs.len(), 5);
    assert!(list.kvs.iter().all(|kv| kv.value == value));
    let mut watch = store.watch("/registry/configmaps/", revs[0]).await.unwrap();
    let events = next_events(&mut watch, 5).await;
    assert_eq!(
        events.iter().map(StoreEvent::revision).collect::<Vec<_>>(),
        revs
    );
}

// ---- embedded only ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_persists_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data").join("kapi.redb");
    let (r1, r2, r3) = {
        let store: DynStore = Arc::new(EmbeddedStore::open(&path).unwrap());
        let r1 = store.create("/registry/pods/a", b("a1")).await.unwrap();
        let r2 = store.update("/registry/pods/a", b("a2"), r1).await.unwrap();
        let r3 = store.create("/registry/pods/b", b("b1")).await.unwrap();
        store.delete("/registry/pods/b", r3).await.unwrap();
        (r1, r2, r3)
    };
    let store: DynStore = Arc::new(EmbeddedStore::open(&path).unwrap());
    let r4 = r3 + 1;
    assert_eq!(store.current_revision().await.unwrap(), r4);
    let (kv, rev) = store.get("/registry/pods/a").await.unwrap();
    let kv = kv.unwrap();
    assert_eq!(
        (kv.value, kv.create_revision, kv.mod_revision, rev),
        (b("a2"), r1, r2, r4)
    );
    assert_eq!(get(&store, "/registry/pods/b").await, None);
    // History survives too.
    let past = store.range("/registry/pods/", None, 0, r3).await.unwrap();
    assert_eq!(keys(&past.kvs), ["/registry/pods/a", "/registry/pods/b"]);
    let mut watch = store.watch("/registry/pods/", r1).await.unwrap();
    let events = timeout(TEST_BUDGET, next_events(&mut watch, 4))
        .await
        .unwrap();
    assert_eq!(
        events.iter().map(StoreEvent::revision).collect::<Vec<_>>(),
        [r1, r2, r3, r4]
    );
    // Revisions continue where they stopped.
    assert_eq!(
        store.create("/registry/pods/c", b("c")).await.unwrap(),
        r4 + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_compaction_persists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kapi.redb");
    let r2 = {
        let store = EmbeddedStore::open(&path).unwrap();
        let r1 = store.create("/k", b("1")).await.unwrap();
        let r2 = store.update("/k", b("2"), r1).await.unwrap();
        store.compact(r2).await.unwrap();
        r2
    };
    let store = EmbeddedStore::open(&path).unwrap();
    assert_eq!(
        store.range("/", None, 0, r2 - 1).await,
        Err(StoreError::Compacted { compacted: r2 })
    );
    assert_eq!(store.range("/", None, 0, r2).await.unwrap().count, 1);
}
