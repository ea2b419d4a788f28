//! Matching deliveries to acknowledged writes: the ack table (revision → object, ack time), the
//! per-watcher record (seen set, latency histogram, counters) and the final tally.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

static ORIGIN: OnceLock<Instant> = OnceLock::new();

/// Starts the clock every timestamp is measured on.
pub fn start_clock() -> Instant {
    *ORIGIN.get_or_init(Instant::now)
}

/// Nanoseconds since `start_clock` (at least 1, so 0 can mean "unset").
pub fn now_ns() -> u64 {
    ORIGIN.get_or_init(Instant::now).elapsed().as_nanos() as u64 + 1
}

/// An acknowledged write: the object, when it was sent and when its answer arrived.
#[derive(Clone, Copy, Debug)]
pub struct Ack {
    pub name: u32,
    pub sent: u64,
    pub ack: u64,
}

/// Every acknowledged write, indexed by its revision relative to a base revision. Writers insert,
/// watchers look up; revisions outside the preallocated window go to a locked map.
pub struct AckTable {
    base: i64,
    ack_ns: Box<[AtomicU64]>,
    sent_ns: Box<[AtomicU64]>,
    name: Box<[AtomicU32]>,
    overflow: Mutex<HashMap<i64, Ack>>,
    count: AtomicU64,
}

impl AckTable {
    pub fn new(base: i64, capacity: usize) -> Self {
        AckTable {
            base,
            ack_ns: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            sent_ns: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            name: (0..capacity).map(|_| AtomicU32::new(0)).collect(),
            overflow: Mutex::new(HashMap::new()),
            count: AtomicU64::new(0),
        }
    }

    pub fn base(&self) -> i64 {
        self.base
    }

    fn slot(&self, rv: i64) -> Option<usize> {
        let off = rv - self.base;
        (off >= 0 && (off as usize) < self.ack_ns.len()).then_some(off as usize)
    }

    /// Records that the write of object `name_idx` sent at `sent_ns` was acknowledged at
    /// `ack_ns` with revision `rv`.
    pub fn insert(&self, rv: i64, name_idx: u32, sent_ns: u64, ack_ns: u64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        match self.slot(rv) {
            Some(i) => {
                self.name[i].store(name_idx, Ordering::Relaxed);
                self.sent_ns[i].store(sent_ns, Ordering::Relaxed);
                self.ack_ns[i].store(ack_ns, Ordering::Release);
            }
            None => {
                self.overflow.lock().expect("ack overflow lock").insert(
                    rv,
                    Ack {
                        name: name_idx,
                        sent: sent_ns,
                        ack: ack_ns,
                    },
                );
            }
        }
    }

    /// The write at `rv`, if it has been acknowledged.
    pub fn get(&self, rv: i64) -> Option<Ack> {
        match self.slot(rv) {
            Some(i) => {
                let t = self.ack_ns[i].load(Ordering::Acquire);
                (t != 0).then(|| Ack {
                    name: self.name[i].load(Ordering::Relaxed),
                    sent: self.sent_ns[i].load(Ordering::Relaxed),
                    ack: t,
                })
            }
            None => self
                .overflow
                .lock()
                .expect("ack overflow lock")
                .get(&rv)
                .copied(),
        }
    }

    pub fn len(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Every acknowledged write as (revision, object index).
    pub fn entries(&self) -> Vec<(i64, u32)> {
        let mut out: Vec<(i64, u32)> = self
            .ack_ns
            .iter()
            .enumerate()
            .filter(|(_, t)| t.load(Ordering::Acquire) != 0)
            .map(|(i, _)| (self.base + i as i64, self.name[i].load(Ordering::Relaxed)))
            .collect();
        out.extend(
            self.overflow
                .lock()
                .expect("ack overflow lock")
                .iter()
                .map(|(rv, a)| (*rv, a.name)),
        );
        out.sort_unstable();
        out
    }
}

/// A log-linear histogram of microseconds: exact below 64 µs, then 32 sub-buckets per power of
/// two (≈3 % resolution). Grows to the largest bucket used.
#[derive(Default, Clone)]
pub struct Hist {
    counts: Vec<u32>,
    pub n: u64,
    pub max_us: u64,
}

const SUB: u32 = 32;

fn bucket(v: u64) -> usize {
    if v < 64 {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // >= 6
    let sub = (v >> (exp - 5)) & (SUB as u64 - 1);
    64 + ((exp - 6) * SUB) as usize + sub as usize
}

/// The lower bound of a bucket (what percentiles report).
fn bucket_value(b: usize) -> u64 {
    if b < 64 {
        return b as u64;
    }
    let k = b - 64;
    let exp = (k / SUB as usize) as u32 + 6;
    let sub = (k % SUB as usize) as u64;
    (1u64 << exp) | (sub << (exp - 5))
}

impl Hist {
    pub fn record(&mut self, us: u64) {
        let b = bucket(us);
        if self.counts.len() <= b {
            self.counts.resize(b + 1, 0);
        }
        self.counts[b] += 1;
        self.n += 1;
        self.max_us = self.max_us.max(us);
    }

    pub fn merge(&mut self, o: &Hist) {
        if self.counts.len() < o.counts.len() {
            self.counts.resize(o.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += *b;
        }
        self.n += o.n;
        self.max_us = self.max_us.max(o.max_us);
    }

    /// The non-empty buckets as `[lower bound µs, count]`, so that reports of several runs can
    /// be pooled (percentiles of percentiles are not percentiles).
    pub fn sparse(&self) -> Vec<[u64; 2]> {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(b, c)| [bucket_value(b), *c as u64])
            .collect()
    }

    /// The value at quantile `q` (0..=1), in µs.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0u64;
        for (b, c) in self.counts.iter().enumerate() {
            seen += *c as u64;
            if seen >= rank {
                return bucket_value(b).min(self.max_us);
            }
        }
        self.max_us
    }
}

/// A growable bit set over revision offsets.
#[derive(Default)]
struct Bits(Vec<u64>);

impl Bits {
    /// Sets bit `i`; returns whether it was already set.
    fn test_and_set(&mut self, i: usize) -> bool {
        let (w, b) = (i / 64, i % 64);
        if self.0.len() <= w {
            self.0.resize(w + 1, 0);
        }
        let was = self.0[w] & (1 << b) != 0;
        self.0[w] |= 1 << b;
        was
    }
}

/// What one watcher saw.
#[derive(Default)]
pub struct WatchRec {
    /// The node this watcher selects (node mode), else None.
    pub node: Option<u32>,
    seen: Bits,
    /// Deliveries whose revision was not acknowledged yet: (rv, object, receive time).
    pending: Vec<(i64, u32, u64)>,
    /// Write acknowledged → delivered (0 when the event overtook the answer).
    pub hist: Hist,
    /// Write sent → delivered.
    pub hist_sent: Hist,
    /// Distinct deliveries matched to an acknowledged write for this watcher.
    pub matched: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// Events of objects this run did not write, or whose revision/name never matched an ack.
    pub foreign: u64,
    /// Matched writes of another node (node mode: the field selector let a wrong event through).
    pub misrouted: u64,
    pub last_rv: i64,
    pub last_recv_ns: u64,
    pub bytes: u64,
    /// The watch was established (answer headers, or etcd's `created`).
    pub connected: bool,
    /// The stream ended or failed before the run did.
    pub ended_early: bool,
    pub error: Option<String>,
}

impl WatchRec {
    pub fn new(node: Option<u32>) -> Self {
        WatchRec {
            node,
            ..Default::default()
        }
    }

    /// One delivered event of object `name_idx` (None: not one of ours) at revision `rv`.
    pub fn on_event(&mut self, acks: &AckTable, nodes: u32, name_idx: Option<u32>, rv: i64) {
        let recv = now_ns();
        let Some(name_idx) = name_idx else {
            self.foreign += 1;
            return;
        };
        let off = rv - acks.base();
        if off < 0 {
            self.foreign += 1;
            return;
        }
        if self.seen.test_and_set(off as usize) {
            self.duplicated += 1;
            return;
        }
        if rv <= self.last_rv {
            self.out_of_order += 1;
        }
        self.last_rv = self.last_rv.max(rv);
        self.last_recv_ns = recv;
        match acks.get(rv) {
            Some(ack) => self.matched_one(nodes, name_idx, ack, recv),
            None => self.pending.push((rv, name_idx, recv)),
        }
        if self.pending.len() > 1 && self.pending.len().is_multiple_of(64) {
            self.resolve(acks, nodes);
        }
    }

    fn matched_one(&mut self, nodes: u32, got: u32, ack: Ack, recv: u64) {
        let acked = ack.name;
        if got != acked {
            self.foreign += 1;
            return;
        }
        if let Some(node) = self.node {
            if acked % nodes != node {
                self.misrouted += 1;
                return;
            }
        }
        self.matched += 1;
        self.hist.record(recv.saturating_sub(ack.ack) / 1000);
        self.hist_sent.record(recv.saturating_sub(ack.sent) / 1000);
    }

    /// Matches pending deliveries whose ack has arrived since (they arrived before it: their
    /// latency is 0).
    pub fn resolve(&mut self, acks: &AckTable, nodes: u32) {
        let pending = std::mem::take(&mut self.pending);
        for (rv, name_idx, recv) in pending {
            match acks.get(rv) {
                Some(ack) => self.matched_one(nodes, name_idx, ack, recv),
                None => self.pending.push((rv, name_idx, recv)),
            }
        }
    }

    /// At the end: whatever never matched an ack is foreign.
    pub fn finish(&mut self, acks: &AckTable, nodes: u32) {
        self.resolve(acks, nodes);
        self.foreign += self.pending.len() as u64;
        self.pending.clear();
    }
}

/// The tally over every watcher.
#[derive(Default)]
pub struct Tally {
    pub expected: u64,
    pub matched: u64,
    pub missed: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub foreign: u64,
    pub misrouted: u64,
    pub ended_early: u64,
    /// Watchers that never got established (not counted in `expected`).
    pub failed: u64,
    pub bytes: u64,
    pub last_recv_ns: u64,
    pub hist: Hist,
    pub hist_sent: Hist,
    pub first_error: Option<String>,
}

/// Adds up `recs`. Every watcher expects every acknowledged write, or in node mode those of
/// objects on its node (object i lives on node i % nodes).
pub fn tally(recs: &mut [WatchRec], acks: &AckTable, nodes: u32) -> Tally {
    let entries = acks.entries();
    let mut per_node: HashMap<u32, u64> = HashMap::new();
    if nodes > 0 {
        for (_, n) in &entries {
            *per_node.entry(n % nodes).or_default() += 1;
        }
    }
    let mut t = Tally::default();
    for r in recs.iter_mut() {
        r.finish(acks, nodes);
        if !r.connected {
            t.failed += 1;
            if t.first_error.is_none() {
                t.first_error = r.error.clone();
            }
            continue;
        }
        let expected = match r.node {
            Some(node) => per_node.get(&node).copied().unwrap_or(0),
            None => entries.len() as u64,
        };
        t.expected += expected;
        t.matched += r.matched;
        t.missed += expected.saturating_sub(r.matched);
        t.duplicated += r.duplicated;
        t.out_of_order += r.out_of_order;
        t.foreign += r.foreign;
        t.misrouted += r.misrouted;
        t.ended_early += r.ended_early as u64;
        t.bytes += r.bytes;
        t.last_recv_ns = t.last_recv_ns.max(r.last_recv_ns);
        t.hist.merge(&r.hist);
        t.hist_sent.merge(&r.hist_sent);
        if t.first_error.is_none() {
            t.first_error = r.error.clone();
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_round_trip() {
        for v in [0u64, 1, 63, 64, 65, 100, 1000, 12_345, 1_000_000, 7_777_777] {
            let b = bucket(v);
            let lo = bucket_value(b);
            assert!(lo <= v, "{v}: {lo}");
            assert!(v - lo <= v / 32 + 1, "{v}: {lo}");
        }
        let mut h = Hist::default();
        for v in 1..=1000 {
            h.record(v);
        }
        let p50 = h.quantile(0.5);
        assert!((480..=500).contains(&p50), "{p50}");
        assert_eq!(h.max_us, 1000);
        let sparse = h.sparse();
        assert_eq!(sparse.iter().map(|[_, c]| c).sum::<u64>(), 1000);
        assert_eq!(sparse[0], [1, 1]);
        assert!(sparse.windows(2).all(|w| w[0][0] < w[1][0]));
    }

    #[test]
    fn matches_misses_and_duplicates() {
        start_clock();
        let acks = AckTable::new(100, 16);
        let mut w = WatchRec::new(None);
        w.connected = true;
        acks.insert(101, 1, now_ns(), now_ns());
        w.on_event(&acks, 0, Some(1), 101);
        w.on_event(&acks, 0, Some(1), 101); // duplicate
        w.on_event(&acks, 0, Some(2), 103); // before its ack
        acks.insert(103, 2, now_ns(), now_ns());
        acks.insert(104, 3, now_ns(), now_ns()); // never delivered
        w.on_event(&acks, 0, None, 105); // foreign
        let t = tally(&mut [w], &acks, 0);
        assert_eq!(t.expected, 3);
        assert_eq!(t.matched, 2);
        assert_eq!(t.missed, 1);
        assert_eq!(t.duplicated, 1);
        assert_eq!(t.foreign, 1);
    }
}
