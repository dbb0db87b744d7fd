//! A shutdown signal every task on every core can await.

use std::sync::atomic::{AtomicBool, Ordering};

use event_listener::Event;

#[derive(Default)]
pub struct Shutdown {
    flag: AtomicBool,
    event: Event,
}

impl Shutdown {
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.event.notify(usize::MAX);
    }

    pub fn is_triggered(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Resolves once [`Shutdown::trigger`] has been called, on any thread.
    pub async fn wait(&self) {
        loop {
            if self.is_triggered() {
                return;
            }
            let listener = self.event.listen();
            if self.is_triggered() {
                return;
            }
            listener.await;
        }
    }
}
