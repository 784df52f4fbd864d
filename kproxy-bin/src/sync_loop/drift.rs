//! Reports that the kernel state kproxy programmed was changed by someone else.

use tokio::sync::mpsc::Receiver;

/// Something outside kproxy changed (or may have changed) what it programmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// Someone else changed kproxy's rules; the text says who and what, for the warning.
    Tampered(String),
    /// Changes may have been missed (notifications were lost); the text says why. Ignored
    /// within 2 s of the end of one of kproxy's own syncs, whose notifications are what
    /// usually overflows the watch.
    Unknown(String),
}

/// The next report, or never without a receiver.
pub(super) async fn recv(drift: Option<&mut Receiver<Drift>>) -> Option<Drift> {
    match drift {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
