//! Write coalescing for served connections.
//!
//! One event reaches many watch streams at once. Over HTTP/2 each stream is its own task that
//! hands a frame to the connection task, and tokio runs a freshly woken task next (its LIFO slot),
//! so without this layer the connection flushes — one `write()` and one TLS record — per stream
//! per event. Here writes are copied into a buffer, and a flush is held for one trip through the
//! scheduler's run queue, then for as long as the connection's watch streams still have frames
//! queued for them (the connection's `Backlog`, which wakes the writer when it empties; at most
//! `MAX_WAIT`), so the burst leaves in one TLS write. A held flush reports success with the bytes
//! still buffered; the wake-up it arranged makes the connection flush again, and shutdown drains.

use crate::cache::watchers::Backlog;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Above this many buffered bytes, writes go through before more are taken.
const MAX_BUFFERED: usize = 64 * 1024;
/// A burst's first write reserves at least this much (or the previous burst's size, if larger),
/// so that a burst of small frames does not regrow the buffer from nothing; the capacity is given
/// back when the burst has been written.
const MIN_CAPACITY: usize = 4 * 1024;
/// Longest a flush waits for queued frames. Bounded, because a stream may be held back by HTTP/2
/// flow control until the peer reads what is buffered here.
const MAX_WAIT: Duration = Duration::from_millis(2);

pub struct Coalesce<S> {
    inner: S,
    buf: Vec<u8>,
    /// About the size of the last burst written out: what the next one reserves.
    last_burst: usize,
    /// The pending flush took its trip through the run queue.
    deferred: bool,
    /// When the pending flush stops waiting for the backlog (armed while waiting).
    wait: Option<Pin<Box<Sleep>>>,
    waiting: bool,
    backlog: Arc<Backlog>,
}

impl<S> Coalesce<S> {
    pub fn new(inner: S, backlog: Arc<Backlog>) -> Self {
        Coalesce {
            inner,
            buf: Vec::new(),
            last_burst: 0,
            deferred: false,
            wait: None,
            waiting: false,
            backlog,
        }
    }
}

impl<S: AsyncWrite + Unpin> Coalesce<S> {
    /// Writes everything buffered to the inner stream.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut written = 0;
        while written < self.buf.len() {
            match Pin::new(&mut self.inner).poll_write(cx, &self.buf[written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    self.buf.drain(..written);
                    return Poll::Pending;
                }
            }
        }
        // Everything is written: give the capacity back. An idle connection (a watch waiting for
        // events) then holds no buffer, and the next burst allocates one for its own size.
        if self.buf.capacity() > 0 {
            self.last_burst = self.buf.len();
            self.buf = Vec::new();
        }
        Poll::Ready(Ok(()))
    }

    /// Makes room for `incoming` more bytes; `Ready(false)` when they should bypass the buffer.
    fn poll_room(&mut self, cx: &mut Context<'_>, incoming: usize) -> Poll<io::Result<bool>> {
        if self.buf.len() + incoming > MAX_BUFFERED {
            ready!(self.poll_drain(cx))?;
        }
        if incoming >= MAX_BUFFERED {
            return Poll::Ready(Ok(false));
        }
        if self.buf.capacity() == 0 {
            let hint = self.last_burst.clamp(MIN_CAPACITY, MAX_BUFFERED);
            self.buf.reserve(incoming.max(hint));
        }
        Poll::Ready(Ok(true))
    }
}

impl<S> Coalesce<S> {
    /// Whether to hold the buffered bytes a little longer (and arrange to be woken).
    fn hold(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.deferred {
            // A task that wakes itself goes to the back of the run queue (not the LIFO slot),
            // behind the streams the same event woke.
            self.deferred = true;
            cx.waker().wake_by_ref();
            return true;
        }
        if self.backlog.queued() == 0 {
            return false;
        }
        self.backlog.register(cx.waker());
        if self.backlog.queued() == 0 {
            return false;
        }
        let deadline = Instant::now() + MAX_WAIT;
        let wait = self
            .wait
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(MAX_WAIT)));
        if !self.waiting {
            self.waiting = true;
            wait.as_mut().reset(deadline);
        }
        wait.as_mut().poll(cx).is_pending()
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesce<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if !ready!(this.poll_room(cx, data.len()))? {
            return Pin::new(&mut this.inner).poll_write(cx, data);
        }
        this.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if !ready!(this.poll_room(cx, total))? {
            return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        }
        for b in bufs {
            this.buf.extend_from_slice(b);
        }
        Poll::Ready(Ok(total))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.buf.is_empty() && this.hold(cx) {
            // The bytes stay buffered and a wake-up is arranged: the connection calls flush
            // again when it is next polled. (HTTP/2 flushes after every large DATA frame, so a
            // pending flush would stop it after one frame per poll.)
            return Poll::Ready(Ok(()));
        }
        ready!(this.poll_drain(cx))?;
        this.deferred = false;
        this.waiting = false;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Coalesce<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn writes_leave_together_on_flush() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let mut w = Coalesce::new(a, Arc::default());
        w.write_all(b"one ").await.unwrap();
        w.write_all(b"two").await.unwrap();
        // Nothing reached the peer before the flush.
        let mut probe = [0u8; 8];
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), b.read(&mut probe))
                .await
                .is_err()
        );
        // The first flush of a burst is held for one trip through the run queue (the task is
        // woken to flush again); the next one writes.
        w.flush().await.unwrap();
        w.flush().await.unwrap();
        let mut got = vec![0u8; 7];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"one two");
        // Written out, the buffer is given back: an idle connection holds none.
        assert_eq!(w.buf.capacity(), 0);
        w.write_all(b"three").await.unwrap();
        assert!(w.buf.capacity() >= MIN_CAPACITY);
        w.flush().await.unwrap();
        w.flush().await.unwrap();
        let mut got = vec![0u8; 5];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"three");
        assert_eq!(w.buf.capacity(), 0);
    }

    #[tokio::test]
    async fn a_burst_reserves_the_size_of_the_last_one() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let mut w = Coalesce::new(a, Arc::default());
        let frame = [1u8; 1000];
        for _ in 0..20 {
            w.write_all(&frame).await.unwrap();
        }
        w.flush().await.unwrap();
        w.flush().await.unwrap();
        let mut got = vec![0u8; 20_000];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(w.buf.capacity(), 0);
        // The next burst starts with room for as much, rather than regrowing from 4 KiB.
        w.write_all(&frame).await.unwrap();
        assert!(w.buf.capacity() >= 20_000, "{}", w.buf.capacity());
    }

    #[tokio::test]
    async fn large_writes_go_through_and_keep_order() {
        let (a, mut b) = tokio::io::duplex(1 << 22);
        let mut w = Coalesce::new(a, Arc::default());
        let big = vec![7u8; MAX_BUFFERED * 2];
        w.write_all(b"head").await.unwrap();
        w.write_all(&big).await.unwrap();
        w.write_all(b"tail").await.unwrap();
        w.shutdown().await.unwrap();
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), 8 + big.len());
        assert_eq!(&got[..4], b"head");
        assert_eq!(&got[got.len() - 4..], b"tail");
        assert_eq!(w.buf.capacity(), 0, "a drained buffer keeps no capacity");
    }
}
