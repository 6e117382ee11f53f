//! Where the bridge in force is kept, so that the connection can be replaced (back office)
//! while parley runs: the long-running users (the event stream, the presence poll, the
//! callback check) watch it and let go of the old bridge.

use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use super::Bridge;

/// Where the bridge in force is kept: swapped as a whole when the connection changes, with a
/// counter that tells the long-running users (the event stream, the presence poll) to let go of
/// the old one. Cheap to clone; clones share the slot.
#[derive(Clone, Debug)]
pub struct BridgeSlot {
    inner: Arc<SlotInner>,
}

#[derive(Debug)]
struct SlotInner {
    current: RwLock<Option<Arc<Bridge>>>,
    /// Counts replacements.
    generation: watch::Sender<u64>,
}

impl BridgeSlot {
    pub fn new(bridge: Option<Arc<Bridge>>) -> Self {
        Self {
            inner: Arc::new(SlotInner {
                current: RwLock::new(bridge),
                generation: watch::Sender::new(0),
            }),
        }
    }

    /// The bridge in force.
    pub fn get(&self) -> Option<Arc<Bridge>> {
        self.inner
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Puts `bridge` in force and tells the watchers. The old bridge stays usable by whoever
    /// still holds it (a request half-way), and is marked offline.
    pub fn replace(&self, bridge: Option<Arc<Bridge>>) {
        let old = std::mem::replace(
            &mut *self
                .inner
                .current
                .write()
                .unwrap_or_else(|e| e.into_inner()),
            bridge,
        );
        if let Some(old) = old {
            old.set_stream_connected(false);
        }
        self.inner.generation.send_modify(|g| *g += 1);
    }

    /// A receiver that sees every later replacement (`changed()`).
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.inner.generation.subscribe()
    }
}

/// Resolves when the connection is replaced (never, if the slot is gone).
pub async fn replaced(watcher: &mut watch::Receiver<u64>) {
    if watcher.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}
