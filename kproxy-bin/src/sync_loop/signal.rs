//! The daemon's shutdown future.

/// Completes on SIGTERM or SIGINT (the shutdown future for [`super::SyncLoop::run`]). If a
/// handler cannot be installed, the error is logged and only the other signal is awaited.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("Received SIGTERM"),
                _ = int.recv() => tracing::info!("Received SIGINT"),
            }
        }
        (Ok(mut one), Err(err)) | (Err(err), Ok(mut one)) => {
            tracing::error!(error = %err, "cannot install a signal handler");
            one.recv().await;
        }
        (Err(err), Err(_)) => {
            tracing::error!(error = %err, "cannot install signal handlers; stop kproxy with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}
