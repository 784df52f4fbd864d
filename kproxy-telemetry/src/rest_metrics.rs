//! client-go's API request metrics, `rest_client_requests_total{code,host,method}` and
//! `rest_client_request_duration_seconds{verb,host}`, for every request kube's client makes,
//! as a tower layer on its HTTP stack (see `source::kube::build_client`).
//!
//! As client-go: the duration runs from the request's start to its response head (a watch
//! counts until the API server starts streaming), `code` is the HTTP status or `<error>` when
//! no response arrived, `host` is the API server's `host:port`. The layer sits inside the
//! client-side rate limiter, so time spent waiting for a token is not request latency
//! (client-go reports that separately).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tower::{Layer, Service};

/// Labels of a labelled metric: `(name, value)` pairs, in client-go's order.
type Labels = Vec<(String, String)>;

/// client-go's request latency buckets (component-base `restclient` metrics).
const DURATION_BUCKETS: [f64; 12] = [0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0];

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The `rest_client_*` metric families. Shared (`Arc`) between the registry that serves them
/// and the client layer that updates them.
#[derive(Debug)]
pub struct RestClientMetrics {
    requests: Family<Labels, Counter>,
    duration: Family<Labels, Histogram, fn() -> Histogram>,
}

impl Default for RestClientMetrics {
    fn default() -> Self {
        RestClientMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
        }
    }
}

/// Two handles are the same metrics only if they are the same object: options holding them
/// compare equal exactly when they feed the same registry.
impl PartialEq for RestClientMetrics {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl RestClientMetrics {
    /// Register both families (unprefixed, as client-go's) in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        // prometheus-client appends `_total` to counters itself.
        registry.register(
            "rest_client_requests",
            "Number of HTTP requests, partitioned by status code, method, and host.",
            self.requests.clone(),
        );
        registry.register(
            "rest_client_request_duration_seconds",
            "Request latency in seconds. Broken down by verb, and host.",
            self.duration.clone(),
        );
    }

    /// One request to `host` with HTTP `method` ended with `code` after `seconds`.
    pub fn observe(&self, method: &str, host: &str, code: &str, seconds: f64) {
        let requests = vec![
            ("code".to_string(), code.to_string()),
            ("host".to_string(), host.to_string()),
            ("method".to_string(), method.to_string()),
        ];
        self.requests.get_or_create(&requests).inc();
        let duration = vec![("verb".to_string(), method.to_string()), ("host".to_string(), host.to_string())];
        self.duration.get_or_create(&duration).observe(seconds);
    }
}

/// Tower layer recording every request of the wrapped HTTP service into `metrics`.
#[derive(Debug, Clone)]
pub struct RestMetricsLayer {
    metrics: Arc<RestClientMetrics>,
    host: Arc<str>,
}

impl RestMetricsLayer {
    /// Record into `metrics`, labelling requests with the API server's `host` (`host:port`):
    /// below kube's base-URI layer a request carries only its path.
    pub fn new(metrics: Arc<RestClientMetrics>, host: &str) -> Self {
        RestMetricsLayer { metrics, host: Arc::from(host) }
    }
}

impl<S> Layer<S> for RestMetricsLayer {
    type Service = RestMetrics<S>;

    fn layer(&self, inner: S) -> RestMetrics<S> {
        RestMetrics { inner, metrics: Arc::clone(&self.metrics), host: Arc::clone(&self.host) }
    }
}

/// Service that times each request and counts its outcome.
#[derive(Debug, Clone)]
pub struct RestMetrics<S> {
    inner: S,
    metrics: Arc<RestClientMetrics>,
    host: Arc<str>,
}

impl<S, B, RB> Service<http::Request<B>> for RestMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    RB: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = req.method().as_str().to_string();
        let (metrics, host) = (Arc::clone(&self.metrics), Arc::clone(&self.host));
        let start = Instant::now();
        let response = self.inner.call(req);
        Box::pin(async move {
            let result = response.await;
            let code = match &result {
                Ok(response) => response.status().as_u16().to_string(),
                Err(_) => "<error>".to_string(),
            };
            metrics.observe(&method, &host, &code, start.elapsed().as_secs_f64());
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use tower::ServiceExt;

    fn encoded(metrics: &RestClientMetrics) -> String {
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut out = String::new();
        encode(&mut out, &registry).expect("encoding into a String");
        out
    }

    #[tokio::test]
    async fn counts_answers_and_failures_with_client_go_labels() {
        let metrics = Arc::new(RestClientMetrics::default());
        let layer = RestMetricsLayer::new(metrics.clone(), "198.18.0.1:6443");
        let answering = layer.layer(tower::service_fn(|_req: http::Request<()>| async {
            Ok::<_, std::io::Error>(http::Response::builder().status(404).body(()).unwrap())
        }));
        let failing = layer.layer(tower::service_fn(|_req: http::Request<()>| async {
            Err::<http::Response<()>, _>(std::io::Error::other("connection refused"))
        }));
        let get = || http::Request::get("/api/v1/services").body(()).unwrap();
        answering.clone().oneshot(get()).await.expect("answered");
        answering.oneshot(get()).await.expect("answered");
        failing.oneshot(http::Request::post("/api/v1/x").body(()).unwrap()).await.expect_err("fails");
        let text = encoded(&metrics);
        for line in [
            "rest_client_requests_total{code=\"404\",host=\"198.18.0.1:6443\",method=\"GET\"} 2",
            "rest_client_requests_total{code=\"<error>\",host=\"198.18.0.1:6443\",method=\"POST\"} 1",
            "rest_client_request_duration_seconds_count{verb=\"GET\",host=\"198.18.0.1:6443\"} 2",
            "rest_client_request_duration_seconds_bucket{le=\"60.0\",verb=\"POST\",host=\"198.18.0.1:6443\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
        }
    }
}
