//! Write coalescing for served connections.
//!
//! One event reaches many watch streams at once. Over HTTP/2 each stream is its own task that
//! hands a frame to the connection task, and tokio runs a freshly woken task next (its LIFO slot),
//! so without this layer the connection flushes — one `write()` and one TLS record — per stream
//! per event. Here writes are copied into a buffer and a flush is deferred by a trip through the
//! scheduler's run queue for as long as the other streams woken by the same event keep adding
//! frames (a few trips at most), so the burst leaves in one TLS write. HTTP/1.1 watchers benefit
//! the same way when several events are ready at once.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Above this many buffered bytes, writes go through before more are taken.
const MAX_BUFFERED: usize = 64 * 1024;
/// A buffer larger than this is released when a flush uses less than a quarter of it, so a
/// connection keeps its capacity while bursts continue and gives it back when they stop.
const KEEP_CAPACITY: usize = 16 * 1024;
/// Trips through the run queue one flush may wait for more frames.
const MAX_DEFERS: u8 = 4;

pub struct Coalesce<S> {
    inner: S,
    buf: Vec<u8>,
    /// Times the pending flush was deferred, and the buffered length at the last deferral.
    defers: u8,
    len_at_defer: usize,
}

impl<S> Coalesce<S> {
    pub fn new(inner: S) -> Self {
        Coalesce {
            inner,
            buf: Vec::new(),
            defers: 0,
            len_at_defer: 0,
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
        if self.buf.capacity() > KEEP_CAPACITY && written < self.buf.capacity() / 4 {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
        Poll::Ready(Ok(()))
    }

    /// Makes room for `incoming` more bytes; `Ready(false)` when they should bypass the buffer.
    fn poll_room(&mut self, cx: &mut Context<'_>, incoming: usize) -> Poll<io::Result<bool>> {
        if self.buf.len() + incoming > MAX_BUFFERED {
            ready!(self.poll_drain(cx))?;
        }
        Poll::Ready(Ok(incoming < MAX_BUFFERED))
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
        let growing = this.defers == 0 || this.buf.len() > this.len_at_defer;
        if !this.buf.is_empty() && growing && this.defers < MAX_DEFERS {
            // A task that wakes itself goes to the back of the run queue (not the LIFO slot),
            // behind the other streams this event woke.
            this.defers += 1;
            this.len_at_defer = this.buf.len();
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        ready!(this.poll_drain(cx))?;
        this.defers = 0;
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
        let mut w = Coalesce::new(a);
        w.write_all(b"one ").await.unwrap();
        w.write_all(b"two").await.unwrap();
        // Nothing reached the peer before the flush.
        let mut probe = [0u8; 8];
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), b.read(&mut probe))
                .await
                .is_err()
        );
        w.flush().await.unwrap();
        let mut got = vec![0u8; 7];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"one two");
    }

    #[tokio::test]
    async fn large_writes_go_through_and_keep_order() {
        let (a, mut b) = tokio::io::duplex(1 << 22);
        let mut w = Coalesce::new(a);
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
        assert!(w.buf.capacity() <= KEEP_CAPACITY);
    }
}
