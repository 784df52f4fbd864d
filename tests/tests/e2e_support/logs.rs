//! Capturing this process's tracing output to assert on grep-able log lines.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The test process's tracing output (installed once per test binary; also echoed to
/// stderr so `--nocapture` shows it).
pub struct LogCapture {
    buf: Arc<Mutex<Vec<u8>>>,
}

struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CaptureWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(data);
        std::io::stderr().write_all(data)?;
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    /// Installs (once) an INFO-level subscriber writing into the capture.
    pub fn install() -> &'static LogCapture {
        static CAPTURE: OnceLock<LogCapture> = OnceLock::new();
        CAPTURE.get_or_init(|| {
            let buf = Arc::new(Mutex::new(Vec::new()));
            let writer_buf = Arc::clone(&buf);
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("info,kube_client=warn,kube_runtime=warn"))
                .with_ansi(false)
                .with_writer(move || CaptureWriter(Arc::clone(&writer_buf)))
                .init();
            LogCapture { buf }
        })
    }

    /// Current length (a mark to search from).
    pub fn mark(&self) -> usize {
        self.buf.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Lines after `mark` containing `needle`.
    pub fn lines_since(&self, mark: usize, needle: &str) -> Vec<String> {
        let buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&buf[mark.min(buf.len())..]).lines().filter(|l| l.contains(needle)).map(String::from).collect()
    }

    /// Waits (polling every 100 ms, bounded by `timeout`) for a line after `mark` with `needle`.
    pub async fn wait_line(&self, mark: usize, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.lines_since(mark, needle).into_iter().next() {
                return l;
            }
            assert!(Instant::now() < deadline, "no log line containing {needle:?} within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
