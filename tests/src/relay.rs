//! Reaching the API server from inside a test network namespace.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Makes the API server reachable from inside a network namespace: a listener opened in
/// the namespace at `127.0.0.1:<port>` whose connections are relayed, by threads in the
/// root namespace, to the API server's 127.0.0.1 port. Only these TCP byte streams cross;
/// there is no link or route between the namespaces. The serving certificate is for
/// 127.0.0.1, so TLS verifies unchanged. Stops accepting when dropped.
pub struct ApiRelay {
    /// Address inside the namespace.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl ApiRelay {
    /// Starts relaying from `netns` (127.0.0.1, a free port there) to `api_url`'s port.
    pub fn start(netns: &crate::Netns, api_url: &str) -> Result<ApiRelay, String> {
        let target: SocketAddr = api_url
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .parse()
            .map_err(|e| format!("API server URL {api_url:?} is not https://IP:PORT: {e}"))?;
        let listener = netns
            .run_in(|| TcpListener::bind("127.0.0.1:0"))
            .map_err(|e| format!("entering {}: {e}", netns.name()))?
            .map_err(|e| format!("listening in {}: {e}", netns.name()))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((inside, _)) => relay(inside, target),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Ok(ApiRelay { addr, stop })
    }

    /// `https://127.0.0.1:<port>` as seen from inside the namespace.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

impl Drop for ApiRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn relay(inside: TcpStream, target: SocketAddr) {
    let _ = inside.set_nonblocking(false);
    let Ok(outside) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else { return };
    let pipe = |mut from: TcpStream, mut to: TcpStream| {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(std::net::Shutdown::Both);
        })
    };
    if let (Ok(i2), Ok(o2)) = (inside.try_clone(), outside.try_clone()) {
        pipe(inside, outside);
        pipe(o2, i2);
    }
}
