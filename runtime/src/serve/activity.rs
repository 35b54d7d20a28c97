//! When a connection last moved a byte, when its current head began, and whether it has a
//! request in hand: what decides that a client is too slow. hyper's own head timeout also runs
//! between requests, so it would cap the keep-alive idle time at the head timeout; both are
//! kept here instead.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

pub(super) struct Activity {
    start: Instant,
    /// Milliseconds from `start` to the last byte read or written.
    last_ms: AtomicU64,
    /// Requests being handled now.
    busy: AtomicUsize,
    /// Whether a request has come: before it, the head timeout is the idle limit.
    served: AtomicBool,
    /// Milliseconds from `start` to the first byte of a head not yet dispatched, plus one; 0: none.
    head_from_ms: AtomicU64,
}

/// Why a connection was closed for slowness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slow {
    /// A head not finished within the head timeout, or nothing sent at all within it.
    Head,
    /// No request within the idle timeout after the last.
    Idle,
}

impl Slow {
    pub(super) fn reason(self) -> &'static str {
        match self {
            Slow::Head => "head_timeout",
            Slow::Idle => "idle",
        }
    }
}

impl Activity {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            head_from_ms: AtomicU64::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn touch(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Bytes came in: between requests, they begin a head.
    fn read(&self) {
        let now = self.now_ms();
        self.last_ms.store(now, Ordering::Relaxed);
        if self.busy.load(Ordering::Relaxed) == 0 {
            let _ = self.head_from_ms.compare_exchange(0, now + 1, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// Counts a request in hand until the guard drops.
    pub(super) fn busy(self: &Arc<Self>) -> Busy {
        self.served.store(true, Ordering::Relaxed);
        self.head_from_ms.store(0, Ordering::Relaxed);
        self.busy.fetch_add(1, Ordering::Relaxed);
        Busy(Arc::clone(self))
    }

    /// Resolves once the connection, with no request in hand, has taken longer than `head` to
    /// send a head it began (or anything at all since it connected), or has sent nothing for
    /// `idle` since its last request.
    pub(super) async fn slow(&self, head: Duration, idle: Duration) -> Slow {
        let (head_ms, idle_ms) = (head.as_millis() as u64, idle.as_millis() as u64);
        loop {
            let now = self.now_ms();
            let wait = if self.busy.load(Ordering::Relaxed) > 0 {
                head_ms.min(idle_ms)
            } else {
                let (deadline, why) = match self.head_from_ms.load(Ordering::Relaxed) {
                    0 if self.served.load(Ordering::Relaxed) => {
                        (self.last_ms.load(Ordering::Relaxed) + idle_ms, Slow::Idle)
                    }
                    0 => (head_ms, Slow::Head),
                    from => (from - 1 + head_ms, Slow::Head),
                };
                if now >= deadline {
                    return why;
                }
                deadline - now
            };
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }
}

pub(super) struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A socket that records its progress in an [`Activity`].
pub(super) struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Watched<S> {
    pub(super) fn new(inner: S, activity: Arc<Activity>) -> Self {
        Watched { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn silence_a_slow_head_and_idleness_each_have_their_limit() {
        let (head, idle) = (Duration::from_secs(10), Duration::from_secs(60));
        let activity = Activity::new();
        let started = Instant::now();
        assert_eq!(activity.slow(head, idle).await, Slow::Head);
        assert_eq!(started.elapsed().as_secs(), 10, "nothing sent since connecting: the head timeout");

        let activity = Activity::new();
        tokio::time::sleep(Duration::from_secs(4)).await;
        activity.read();
        let started = Instant::now();
        let trickling = async {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                activity.read();
            }
        };
        tokio::select! {
            why = activity.slow(head, idle) => assert_eq!(why, Slow::Head),
            () = trickling => unreachable!(),
        }
        assert_eq!(started.elapsed().as_secs(), 10, "a head trickled byte by byte: the head timeout from its first");

        let busy = activity.busy();
        let waiting = tokio::time::timeout(Duration::from_secs(300), activity.slow(head, idle)).await;
        assert!(waiting.is_err(), "a request in hand is never too slow");
        drop(busy);
        let started = Instant::now();
        assert_eq!(activity.slow(head, idle).await, Slow::Idle);
        assert_eq!(started.elapsed().as_secs(), 60, "between requests: the idle timeout");
    }
}
