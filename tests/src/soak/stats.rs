//! Summaries of the soak's samples: latency percentiles per time window, and the slope of
//! the memory series.

use std::time::Duration;

/// Latencies of the changes written in one window of the run.
#[derive(Debug, Clone)]
pub struct Window {
    /// Start of the window, from the first change.
    pub from: Duration,
    /// Changes written in the window and seen in the kernel.
    pub count: usize,
    /// Median write -> kernel.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Slowest.
    pub max: Duration,
}

/// Groups `(written since start, latency)` samples into windows of `width`.
pub fn windows(samples: &[(Duration, Duration)], width: Duration) -> Vec<Window> {
    let width_ms = width.as_millis().max(1);
    let mut buckets: Vec<Vec<Duration>> = Vec::new();
    for (at, latency) in samples {
        let k = (at.as_millis() / width_ms) as usize;
        if buckets.len() <= k {
            buckets.resize(k + 1, Vec::new());
        }
        buckets[k].push(*latency);
    }
    buckets
        .into_iter()
        .enumerate()
        .filter(|(_, b)| !b.is_empty())
        .map(|(k, mut b)| {
            b.sort();
            Window {
                from: width * k as u32,
                count: b.len(),
                p50: percentile(&b, 50.0),
                p99: percentile(&b, 99.0),
                max: *b.last().expect("non-empty"),
            }
        })
        .collect()
}

/// Nearest-rank percentile of sorted, non-empty `sorted`.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Least-squares slope of `(x, y)` points, in y units per x unit; 0 with fewer than two.
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let sxy: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = points.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_windows_and_slope() {
        let ms = Duration::from_millis;
        let sorted: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!((percentile(&sorted, 50.0), percentile(&sorted, 99.0)), (ms(50), ms(99)));
        let w = windows(&[(ms(100), ms(5)), (ms(1500), ms(7)), (ms(1600), ms(9))], Duration::from_secs(1));
        assert_eq!(w.len(), 2);
        assert_eq!((w[1].count, w[1].p50, w[1].max), (2, ms(7), ms(9)));
        assert!((slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]) - 2.0).abs() < 1e-9);
    }
}
