//! A total deadline for reading a request body. `server::serve_connection` wraps every
//! request's body once (one place for every route): a body that has not fully arrived
//! `limit` after its request head fails with [`BodyTimeout`], which the body extractor
//! ([`crate::shard_http::JsonBody`]) answers with 408 `REQUEST_TIMEOUT`, and the
//! connection is closed (`Connection: close`, set by the JSON-shape middleware).
//!
//! Without it a client that sends `Content-Length: 100` and then 10 bytes holds a task,
//! a buffer and a file descriptor for as long as it likes. The timer is armed only when
//! a read would wait: a body that arrived with its head (the common case) costs no timer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The request body was not received within the deadline.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("request body not received within {} s", .0.as_secs())]
pub struct BodyTimeout(pub Duration);

/// A body that fails with [`BodyTimeout`] once `limit` has passed since it was wrapped.
#[derive(Debug)]
pub struct TimedBody<B> {
    inner: B,
    limit: Duration,
    deadline: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    expired: bool,
}

impl<B> TimedBody<B> {
    /// Wraps `inner`; its deadline is `limit` from now.
    pub fn new(inner: B, limit: Duration) -> Self {
        Self { inner, limit, deadline: Instant::now() + limit, timer: None, expired: false }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.as_mut().poll(cx).is_ready() {
            this.expired = true;
            return Poll::Ready(Some(Err(Box::new(BodyTimeout(this.limit)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.expired || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether `error` or anything in its `source` chain is a [`BodyTimeout`].
#[must_use]
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    timeout_of(error).is_some()
}

/// The deadline of the [`BodyTimeout`] in `error`'s `source` chain, if there is one.
#[must_use]
pub fn timeout_of(error: &(dyn std::error::Error + 'static)) -> Option<Duration> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(BodyTimeout(limit)) = e.downcast_ref::<BodyTimeout>() {
            return Some(*limit);
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use axum::extract::FromRequest;

    /// A body that never finishes.
    struct Stalled;

    impl Body for Stalled {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Pending
        }
    }

    /// A stalled body fails at its deadline, not before and not much after, and the
    /// failure is recognisable through axum's body rejection.
    #[tokio::test]
    async fn stalled_body_fails_at_its_deadline() {
        let started = std::time::Instant::now();
        let limit = Duration::from_millis(200);
        let body = axum::body::Body::new(TimedBody::new(Stalled, limit));
        let request = axum::http::Request::new(body);
        let rejection = Bytes::from_request(request, &()).await.unwrap_err();
        let took = started.elapsed();
        assert!(took >= limit && took < Duration::from_secs(2), "{took:?}");
        assert!(is_body_timeout(&rejection), "{rejection}");
    }

    /// A body that is already there is read without error.
    #[tokio::test]
    async fn complete_body_is_untouched() {
        let body = axum::body::Body::new(TimedBody::new(
            http_body_util_full(b"{\"a\":1}"),
            Duration::from_secs(1),
        ));
        let bytes = Bytes::from_request(axum::http::Request::new(body), &()).await.unwrap();
        assert_eq!(&bytes[..], b"{\"a\":1}");
    }

    fn http_body_util_full(bytes: &'static [u8]) -> axum::body::Body {
        axum::body::Body::from(bytes)
    }
}
