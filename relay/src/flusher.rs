//! The task that sends presence batches when they are due: it sleeps until the hub's next
//! deadline ([`crate::hub::Hub::next_deadline`]), or until a change wakes it, and flushes.
//! The decisions are the hub's; this only keeps time.

use std::sync::Arc;

use smol::channel::Receiver;

use crate::router::Clock;
use crate::shared::Shared;

/// Runs until the relay's [`Shared`] wake-up channel closes.
pub(crate) async fn run(shared: Arc<Shared>, wake: Receiver<()>, clock: impl Clock) {
    let mut next = None;
    loop {
        let woken = async { wake.recv().await.is_ok() };
        let open = match next {
            None => woken.await,
            Some(at) => {
                smol::future::or(woken, async {
                    clock.sleep_until(at).await;
                    true
                })
                .await
            }
        };
        if !open {
            return;
        }
        next = shared.flush_presence();
    }
}
