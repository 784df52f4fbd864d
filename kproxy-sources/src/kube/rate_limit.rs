//! A client-side token bucket for API requests (`clientConnection.qps` / `burst`).
//!
//! client-go throttles every request a client starts (lists, watch starts, writes) with a
//! token bucket that refills at `qps` tokens per second up to `burst` tokens and starts full.
//! This is the same, as a tower layer placed in front of kube's HTTP stack. kube's `Client`
//! drives its service through a `Buffer`, which calls `poll_ready` before each `call`: waiting
//! in `poll_ready` therefore delays the start of the request, exactly like client-go's
//! limiter. Long-running watch streams hold no token once started.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

/// client-go's defaults when `qps` is 0 (kube-proxy's own defaults are the same numbers).
const DEFAULT_QPS: f32 = 5.0;
const DEFAULT_BURST: i32 = 10;

/// A token bucket: `qps` tokens per second, at most `burst` stored, starts full.
#[derive(Debug)]
pub struct TokenBucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket as of `now`. `burst` below 1 is raised to 1 (a bucket that can never
    /// hold a whole token would block forever).
    pub fn new(qps: f64, burst: f64, now: Instant) -> Self {
        let burst = burst.max(1.0);
        TokenBucket { qps, burst, tokens: burst, last: now }
    }

    /// Takes one token if one is available at `now`; otherwise returns how long until one is.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.qps).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let missing = 1.0 - self.tokens;
            Err(Duration::from_secs_f64(missing / self.qps))
        }
    }
}

/// The rate limit derived from `clientConnection`: `None` means unlimited.
///
/// As client-go: `qps == 0` selects the defaults (5 qps, burst 10), a negative `qps` disables
/// the limit, `burst <= 0` with a positive `qps` means a burst of 1.
pub fn bucket_for(qps: f32, burst: i32) -> Option<TokenBucket> {
    let (qps, burst) = if qps == 0.0 { (DEFAULT_QPS, DEFAULT_BURST) } else { (qps, burst) };
    if qps < 0.0 || !qps.is_finite() {
        return None;
    }
    Some(TokenBucket::new(f64::from(qps), f64::from(burst), Instant::now()))
}

/// Tower layer sharing one [`TokenBucket`] between every service it wraps.
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    bucket: Arc<Mutex<TokenBucket>>,
}

impl RateLimitLayer {
    /// A layer drawing from `bucket`.
    pub fn new(bucket: TokenBucket) -> Self {
        RateLimitLayer { bucket: Arc::new(Mutex::new(bucket)) }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit { inner, bucket: Arc::clone(&self.bucket), sleep: None, has_token: false }
    }
}

/// Service that holds each request back until the shared bucket yields a token.
#[derive(Debug)]
pub struct RateLimit<S> {
    inner: S,
    bucket: Arc<Mutex<TokenBucket>>,
    sleep: Option<Pin<Box<Sleep>>>,
    has_token: bool,
}

impl<S, Req> Service<Req> for RateLimit<S>
where
    S: Service<Req>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        while !self.has_token {
            if let Some(sleep) = self.sleep.as_mut() {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.sleep = None;
            }
            // A poisoned lock only means another request panicked mid-update of two floats;
            // the bucket is still usable, so take it over rather than failing every request.
            let taken = self.bucket.lock().unwrap_or_else(|p| p.into_inner()).try_take(Instant::now());
            match taken {
                Ok(()) => self.has_token = true,
                Err(wait) => self.sleep = Some(Box::pin(tokio::time::sleep(wait))),
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        self.has_token = false;
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_starts_full_then_refills_at_qps() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2.0, 3.0, t0);
        for _ in 0..3 {
            assert_eq!(b.try_take(t0), Ok(()));
        }
        let wait = b.try_take(t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "wait {wait:?}");
        assert_eq!(b.try_take(t0 + Duration::from_millis(500)), Ok(()));
        assert!(b.try_take(t0 + Duration::from_millis(500)).is_err());
        // Refill never exceeds burst.
        let later = t0 + Duration::from_secs(100);
        for _ in 0..3 {
            assert_eq!(b.try_take(later), Ok(()));
        }
        assert!(b.try_take(later).is_err());
    }

    #[test]
    fn client_go_defaults_and_unlimited() {
        assert!(bucket_for(-1.0, 10).is_none());
        let b = bucket_for(0.0, 0).expect("qps 0 means defaults");
        assert_eq!((b.qps, b.burst), (5.0, 10.0));
        let b = bucket_for(50.0, 0).expect("limited");
        assert_eq!(b.burst, 1.0);
    }

    #[tokio::test]
    async fn layer_throttles_requests_to_qps_after_burst() {
        use tower::ServiceExt;
        let layer = RateLimitLayer::new(TokenBucket::new(100.0, 5.0, Instant::now()));
        let mut svc = layer.layer(tower::service_fn(|()| async { Ok::<_, std::convert::Infallible>(()) }));
        let start = Instant::now();
        for _ in 0..25 {
            svc.ready().await.expect("ready").call(()).await.expect("call");
        }
        // 5 immediately, then 20 at 100/s: 200 ms (real time; timers only round up).
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(190) && took < Duration::from_millis(1000), "took {took:?}");
    }
}
