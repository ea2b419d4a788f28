//! A watch response body. It sends the initial state or the replayed ring first, then frames
//! from the watcher's queue. hyper polls it for as many frames as it can buffer, so ready frames
//! leave in one vectored write. A stalled watcher (its queue overflowed) resumes from the ring
//! once it has drained its queue, or ends if the ring has moved past it.

use crate::cache::event::{encode_frame, frame, Encoding, StreamPosition};
use crate::cache::watchers::{Delivery, WatcherShared};
use crate::cache::{bookmark_frame_as, Snapshot, WatchCache, WatchStart};
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::ops::Bound;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, Sleep};

/// How often an idle watcher that allows bookmarks gets one (kube-apiserver: ~1 min).
pub const BOOKMARK_INTERVAL: Duration = Duration::from_secs(60);

pub struct WatchOptions {
    pub timeout: Duration,
    pub bookmarks: bool,
    /// Send the `k8s.io/initial-events-end` bookmark after the initial events.
    pub initial_events_end: bool,
}

struct Initial {
    snapshot: Snapshot,
    /// Range of keys to walk, and the last key sent.
    start: String,
    end: Option<Vec<u8>>,
    last: Option<String>,
}

pub struct WatchBody {
    cache: Arc<WatchCache>,
    shared: Arc<WatcherShared>,
    rx: mpsc::Receiver<Delivery>,
    /// What was sent: one revision can carry several events (a multi-key transaction).
    pos: StreamPosition,
    pending: VecDeque<Delivery>,
    initial: Option<Initial>,
    initial_end: Option<i64>,
    deadline: Pin<Box<Sleep>>,
    bookmarks: bool,
    bookmark_at: Pin<Box<Sleep>>,
    revisions: watch::Receiver<i64>,
    last_bookmark: i64,
    done: bool,
    /// Frames sent but not yet added to apiserver_watch_events_total.
    unflushed: u64,
    busy_polls: u32,
    /// The waker both timers were last polled with: while it is the task's waker and neither
    /// timer is near, polling them again would only re-register the same waker (two timer
    /// entries touched per event per watcher, on the hottest path).
    timers_waker: Option<std::task::Waker>,
}

/// Timers due within this margin are polled, whatever the waker: a timer that fires wakes the
/// task, and the next poll is then within the margin of its deadline.
const TIMER_MARGIN: Duration = Duration::from_millis(5);

impl WatchBody {
    pub fn new(
        cache: Arc<WatchCache>,
        start: WatchStart,
        key_range: (String, Option<Vec<u8>>),
        opts: WatchOptions,
    ) -> Self {
        let revisions = cache.subscribe_revision();
        let now = Instant::now();
        let initial_end =
            (opts.initial_events_end && opts.bookmarks).then_some(start.start_revision);
        WatchBody {
            shared: start.shared,
            rx: start.rx,
            pos: StreamPosition::new(start.start_revision),
            pending: start.replay.into(),
            initial: start.initial.map(|snapshot| Initial {
                snapshot,
                start: key_range.0,
                end: key_range.1,
                last: None,
            }),
            initial_end,
            deadline: Box::pin(tokio::time::sleep_until(now + opts.timeout)),
            bookmarks: opts.bookmarks,
            bookmark_at: Box::pin(tokio::time::sleep_until(
                now + BOOKMARK_INTERVAL.min(opts.timeout),
            )),
            revisions,
            last_bookmark: 0,
            done: false,
            unflushed: 0,
            busy_polls: 0,
            timers_waker: None,
            cache,
        }
    }

    /// An already-failed watch: a single ERROR event, then the end.
    pub fn error(status_json: &[u8]) -> ErrorBody {
        ErrorBody(Some(frame("ERROR", status_json)))
    }

    /// An already-failed watch in `encoding`.
    pub fn error_as(status_json: &[u8], encoding: Encoding) -> ErrorBody {
        ErrorBody(Some(encode_frame("ERROR", status_json, encoding)))
    }

    fn next_initial(&mut self) -> Option<Bytes> {
        let init = self.initial.as_mut()?;
        let lower = match &init.last {
            Some(k) => Bound::Excluded(k.as_str()),
            None => Bound::Included(init.start.as_str()),
        };
        let mut found = None;
        for (k, obj) in init.snapshot.objects.range((lower, Bound::Unbounded)) {
            if let Some(end) = &init.end {
                if k.as_bytes() >= end.as_slice() {
                    break;
                }
            }
            init.last = Some(k.to_string());
            if self.shared.filter.matches(obj) {
                found = Some(encode_frame("ADDED", obj.json(), self.shared.encoding));
                break;
            }
        }
        if found.is_none() {
            self.initial = None;
            if let Some(rev) = self.initial_end.take() {
                self.last_bookmark = rev;
                return Some(bookmark_frame_as(
                    self.cache.res,
                    rev,
                    true,
                    self.shared.encoding,
                ));
            }
        }
        found
    }
}

/// One in this many deliveries records its latency and queue depth.
const SAMPLE_EVERY: u64 = 64;

impl WatchBody {
    /// Drops duplicates (events already sent or older) and accounts for the frame.
    fn deliver(&mut self, d: Delivery) -> Option<Bytes> {
        if !self.pos.advance(d.revision, &d.frame) {
            return None;
        }
        self.unflushed += 1;
        if self.unflushed == SAMPLE_EVERY {
            let m = &self.cache.metrics;
            m.watch_events.increment(self.unflushed);
            m.delivery_latency.record(d.at.elapsed().as_secs_f64());
            m.queue_depth.set(self.rx.len() as f64);
            self.unflushed = 0;
        }
        Some(d.frame)
    }
}

impl WatchBody {
    /// Whether both timers are registered with `cx`'s waker and neither is near, so that they
    /// need no poll now.
    fn timers_armed(&self, cx: &Context<'_>) -> bool {
        let Some(w) = &self.timers_waker else {
            return false;
        };
        if !w.will_wake(cx.waker()) {
            return false;
        }
        let mut due = self.deadline.deadline();
        if self.bookmarks {
            due = due.min(self.bookmark_at.deadline());
        }
        Instant::now() + TIMER_MARGIN < due
    }
}

impl Drop for WatchBody {
    fn drop(&mut self) {
        self.cache.metrics.watch_events.increment(self.unflushed);
        // Frames still queued will never reach the connection: stop counting them.
        self.rx.close();
        let mut left = 0;
        while self.rx.try_recv().is_ok() {
            left += 1;
        }
        if let Some(b) = &self.shared.backlog {
            b.take(left);
        }
        self.cache.watchers.remove(&self.shared);
    }
}

impl Body for WatchBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if this.initial.is_some() {
                if let Some(b) = this.next_initial() {
                    return Poll::Ready(Some(Ok(Frame::data(b))));
                }
                continue;
            }
            if let Some(d) = this.pending.pop_front() {
                match this.deliver(d) {
                    Some(f) => return Poll::Ready(Some(Ok(Frame::data(f)))),
                    None => continue,
                }
            }
            // Read the published revision before polling the queue: every event up to it has
            // been queued already, so if the queue is empty a bookmark at it is safe.
            let published = *this.revisions.borrow();
            match this.rx.poll_recv(cx) {
                Poll::Ready(Some(d)) => {
                    if let Some(b) = &this.shared.backlog {
                        b.take(1);
                    }
                    // A busy stream checks its deadline now and then; an idle one below.
                    this.busy_polls += 1;
                    if this.busy_polls.is_multiple_of(64)
                        && this.deadline.deadline() <= Instant::now()
                    {
                        this.done = true;
                        return Poll::Ready(None);
                    }
                    match this.deliver(d) {
                        Some(f) => return Poll::Ready(Some(Ok(Frame::data(f)))),
                        None => continue,
                    }
                }
                Poll::Ready(None) => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => {}
            }
            if this.timers_armed(cx) && !this.shared.stalled.load(Ordering::SeqCst) {
                return Poll::Pending;
            }
            if this.deadline.as_mut().poll(cx).is_ready() {
                this.done = true;
                return Poll::Ready(None);
            }
            if this.shared.stalled.load(Ordering::SeqCst) {
                // Drained: resume from the ring, or end if it has moved past us.
                this.shared.stalled.store(false, Ordering::SeqCst);
                match this.cache.events_since(
                    this.pos.resume_after(),
                    &this.shared.filter,
                    this.shared.encoding,
                ) {
                    Some(frames) => {
                        this.pending.extend(frames);
                        continue;
                    }
                    None => {
                        tracing::info!(
                            resource = this.cache.res.plural,
                            "watcher fell out of the history ring; closing it"
                        );
                        this.cache.metrics.terminated_watchers.increment(1);
                        this.done = true;
                        return Poll::Ready(None);
                    }
                }
            }
            if this.bookmarks && this.bookmark_at.as_mut().poll(cx).is_ready() {
                let next = Instant::now() + BOOKMARK_INTERVAL;
                this.bookmark_at.as_mut().reset(next);
                // The reset timer has not been polled yet.
                this.timers_waker = None;
                let rev = published.max(this.pos.revision());
                if rev > this.last_bookmark {
                    this.last_bookmark = rev;
                    let f = bookmark_frame_as(this.cache.res, rev, false, this.shared.encoding);
                    return Poll::Ready(Some(Ok(Frame::data(f))));
                }
                continue;
            }
            this.timers_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// The body of a watch that failed after its response started: one ERROR event.
pub struct ErrorBody(Option<Bytes>);

impl Body for ErrorBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.take().map(|b| Ok(Frame::data(b))))
    }
}
