//! A request body that must keep arriving: at least `rate` bytes a second over each window, from
//! the first time a handler reads it. A body slower than that ends in [`TooSlow`], which
//! handlers answer 408; a large body over a slow but steady link still passes.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// Bodies cut for arriving too slowly.
pub const BODIES_TOO_SLOW: &str = "sigstage_http_bodies_too_slow_total";

pub fn describe_metrics() {
    metrics::describe_counter!(
        BODIES_TOO_SLOW,
        "request bodies cut for arriving slower than SIGSTAGE_HTTP_BODY_MIN_RATE"
    );
}

/// The error a body slower than its least rate ends with.
#[derive(Debug, thiserror::Error)]
#[error("the request body arrived at fewer than {rate} bytes a second (SIGSTAGE_HTTP_BODY_MIN_RATE); send it faster")]
pub struct TooSlow {
    pub rate: u64,
}

/// Whether `error`, or an error it wraps, is [`TooSlow`].
pub fn is_too_slow(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.is::<TooSlow>() {
            return true;
        }
        next = error.source();
    }
    false
}

pub struct MinRate<B> {
    inner: B,
    rate: u64,
    window: Duration,
    /// Bytes received in the current window.
    got: u64,
    /// The current window's end, set at the first read.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<B> MinRate<B> {
    /// `rate` 0 checks nothing.
    pub fn new(inner: B, rate: u64, window: Duration) -> Self {
        MinRate { inner, rate, window, got: 0, deadline: None }
    }
}

impl<B> Body for MinRate<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.got += frame.data_ref().map_or(0, |data| data.len() as u64);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => Poll::Ready(other.map(|frame| frame.map_err(Into::into))),
            Poll::Pending if this.rate == 0 => Poll::Pending,
            Poll::Pending => {
                let window = this.window;
                let deadline = this.deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(window)));
                while deadline.as_mut().poll(cx).is_ready() {
                    if this.got < this.rate * window.as_secs_f64().ceil() as u64 {
                        metrics::counter!(BODIES_TOO_SLOW).increment(1);
                        return Poll::Ready(Some(Err(Box::new(TooSlow { rate: this.rate }))));
                    }
                    this.got = 0;
                    deadline.as_mut().reset(Instant::now() + window);
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    /// A body of `chunks` chunks of `size` bytes, one every `every`.
    fn trickle(chunks: usize, size: usize, every: Duration) -> impl Body<Data = Bytes, Error = std::io::Error> + Unpin {
        let stream = futures::stream::unfold(0, move |sent| async move {
            if sent == chunks {
                return None;
            }
            tokio::time::sleep(every).await;
            Some((Ok(Frame::data(Bytes::from(vec![b'x'; size]))), sent + 1))
        });
        StreamBody::new(Box::pin(stream))
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_body_passes_and_a_trickle_is_cut() {
        let window = Duration::from_secs(10);
        // 2 KiB every second, for a minute: above 1 KiB/s.
        let steady = MinRate::new(trickle(60, 2048, Duration::from_secs(1)), 1024, window);
        assert_eq!(steady.collect().await.expect("a steady body is read").to_bytes().len(), 60 * 2048);

        let trickle_body = MinRate::new(trickle(1000, 1, Duration::from_secs(1)), 1024, window);
        let started = Instant::now();
        let error = trickle_body.collect().await.expect_err("a byte a second is cut");
        assert!(is_too_slow(&*error), "{error}");
        assert_eq!(started.elapsed(), window, "cut at the end of the first window");
        assert!(error.to_string().contains("SIGSTAGE_HTTP_BODY_MIN_RATE"));

        let unchecked = MinRate::new(trickle(30, 1, Duration::from_secs(1)), 0, window);
        assert_eq!(unchecked.collect().await.expect("rate 0 checks nothing").to_bytes().len(), 30);
    }
}
