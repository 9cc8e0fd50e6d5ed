//! Where media datagrams from the relay go: straight from the link's readers (the UDP
//! media thread, the QUIC datagram task) to the media thread of the call each belongs to.
//! The driver keeps the table ([`MediaRoutes::set`] when a call's media starts,
//! [`MediaRoutes::remove`] when it stops); a datagram takes no hop through the driver's
//! task, so a received packet wakes one thread, the call's, not two or three.

use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::Thread;

use bytes::Bytes;
use phoned_proto::call::CallId;
use smol::channel::Sender;

/// A call's media thread as seen from outside: its inbox and the thread to wake.
#[derive(Clone)]
pub struct Inlet {
    pub(super) inbox: Sender<Bytes>,
    pub(super) thread: Thread,
}

impl Inlet {
    /// Queues `datagram` (dropped if the thread is behind: stale audio is worthless) and
    /// wakes the thread, so the datagram meets the jitter buffer at the time it came.
    pub fn deliver(&self, datagram: Bytes) {
        if self.inbox.try_send(datagram).is_ok() {
            self.thread.unpark();
        }
    }
}

/// The table of running calls' media threads, shared by the driver and the link.
#[derive(Clone, Default)]
pub struct MediaRoutes(Arc<Mutex<Vec<Route>>>);

struct Route {
    /// The driver's key for the call (a call's relay id can change, e.g. into a
    /// conference, while its local id stays).
    local: u32,
    call: CallId,
    inlet: Inlet,
}

impl MediaRoutes {
    fn table(&self) -> MutexGuard<'_, Vec<Route>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Media of relay call `call` goes to `inlet` from now on (replacing what local call
    /// `local` had).
    pub fn set(&self, local: u32, call: CallId, inlet: Inlet) {
        let mut table = self.table();
        table.retain(|r| r.local != local);
        table.push(Route { local, call, inlet });
    }

    /// Local call `local` has no media thread any more.
    pub fn remove(&self, local: u32) {
        self.table().retain(|r| r.local != local);
    }

    /// A datagram from the relay: to its call's media thread, or dropped when no call of
    /// ours has that id (a call that just ended, or garbage).
    pub fn deliver(&self, datagram: Bytes) {
        let Some(call) = phoned_proto::media::peek_call(&datagram) else {
            return;
        };
        let table = self.table();
        if let Some(route) = table.iter().find(|r| r.call == call) {
            route.inlet.deliver(datagram);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inlet() -> (Inlet, smol::channel::Receiver<Bytes>) {
        let (inbox, rx) = smol::channel::bounded(4);
        let thread = std::thread::current();
        (Inlet { inbox, thread }, rx)
    }

    /// A datagram of relay call `call` (below 128: one varint byte), as far as routing
    /// reads it.
    fn datagram(call: CallId) -> Bytes {
        Bytes::from(vec![call as u8, 0x01, 0x07, 0x42])
    }

    #[test]
    fn a_datagram_goes_to_its_calls_thread_only() {
        let routes = MediaRoutes::default();
        let (a, a_rx) = inlet();
        let (b, b_rx) = inlet();
        routes.set(1, 10, a);
        routes.set(2, 20, b);
        routes.deliver(datagram(20));
        assert!(a_rx.try_recv().is_err());
        assert_eq!(b_rx.try_recv().ok(), Some(datagram(20)));
    }

    #[test]
    fn a_removed_or_replaced_call_gets_nothing_and_garbage_is_dropped() {
        let routes = MediaRoutes::default();
        let (old, old_rx) = inlet();
        let (new, new_rx) = inlet();
        routes.set(1, 10, old);
        // The local call moved into a conference: a new relay id, a new thread.
        routes.set(1, 11, new);
        routes.deliver(datagram(10));
        routes.deliver(datagram(11));
        assert!(old_rx.try_recv().is_err());
        assert_eq!(new_rx.try_recv().ok(), Some(datagram(11)));
        routes.remove(1);
        routes.deliver(datagram(11));
        routes.deliver(Bytes::new());
        assert!(new_rx.try_recv().is_err());
    }
}
