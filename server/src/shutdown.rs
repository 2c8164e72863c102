//! A shutdown signal that long-lived handlers can watch.

use std::sync::Arc;

use tokio::sync::watch;

/// Fires once when the server starts shutting down. Cheap to clone.
///
/// `axum::serve(..).with_graceful_shutdown` stops accepting connections and
/// waits for open ones, but a WebSocket never ends on its own: the sync
/// endpoint should `select!` on [`ShutdownSignal::triggered`] and close its
/// socket (after finishing the write in progress) when it fires.
#[derive(Debug, Clone)]
pub struct ShutdownSignal {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for ShutdownSignal {
    fn default() -> Self {
        ShutdownSignal::new()
    }
}

impl ShutdownSignal {
    /// A signal that has not fired.
    pub fn new() -> Self {
        let (tx, _rx) = watch::channel(false);
        ShutdownSignal { tx: Arc::new(tx) }
    }

    /// Fires the signal (idempotent).
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Whether the signal has fired.
    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// Completes when the signal fires (at once if it already has).
    pub async fn triggered(&self) {
        let mut rx = self.tx.subscribe();
        // `wait_for` fails only if the sender is gone, which cannot happen
        // while `self` holds it.
        let _ = rx.wait_for(|fired| *fired).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fires_once_for_every_waiter() {
        let signal = ShutdownSignal::new();
        assert!(!signal.is_triggered());
        let waiter = {
            let signal = signal.clone();
            tokio::spawn(async move { signal.triggered().await })
        };
        signal.trigger();
        waiter.await.expect("waiter");
        assert!(signal.is_triggered());
        signal.triggered().await; // already fired: returns at once
    }
}
