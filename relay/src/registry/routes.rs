//! One session's media routes: call → where its datagrams go. A session has one route
//! nearly always (its call, or its conference room), a few at most (a held call beside an
//! active one), and the forwarders read them for every datagram. So the first route is
//! kept inline, in the cache lines of the lock around it, which the media plane fetches
//! ahead for a whole batch (`crate::plane::cache`); more go to a small list, searched in
//! order.

use phoned_proto::call::CallId;

use super::Route;

#[derive(Default)]
pub(crate) struct RouteMap {
    first: Option<(CallId, Route)>,
    more: Vec<(CallId, Route)>,
}

impl RouteMap {
    pub fn get(&self, call: &CallId) -> Option<&Route> {
        match &self.first {
            Some((c, r)) if c == call => Some(r),
            _ => self.more.iter().find(|(c, _)| c == call).map(|(_, r)| r),
        }
    }

    /// Sets `call`'s route; returns the one it replaced.
    pub fn insert(&mut self, call: CallId, route: Route) -> Option<Route> {
        if let Some((c, r)) = &mut self.first
            && *c == call
        {
            return Some(std::mem::replace(r, route));
        }
        if let Some((_, r)) = self.more.iter_mut().find(|(c, _)| *c == call) {
            return Some(std::mem::replace(r, route));
        }
        if self.first.is_none() {
            self.first = Some((call, route));
        } else {
            self.more.push((call, route));
        }
        None
    }

    pub fn remove(&mut self, call: &CallId) -> Option<Route> {
        if self.first.as_ref().is_some_and(|(c, _)| c == call) {
            let (_, r) = self.first.take()?;
            self.first = self.more.pop();
            return Some(r);
        }
        let i = self.more.iter().position(|(c, _)| c == call)?;
        Some(self.more.swap_remove(i).1)
    }

    pub fn clear(&mut self) {
        self.first = None;
        self.more.clear();
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.more.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    /// The first route, if any (the one kept inline).
    pub fn first(&self) -> Option<&Route> {
        self.first.as_ref().map(|(_, r)| r)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::plane::peer::{Peer, QuicOut};

    struct Nowhere;

    impl QuicOut for Nowhere {
        fn send_datagram(&self, _: bytes::Bytes) -> bool {
            false
        }
    }

    fn peer(sid: u64) -> Arc<Peer> {
        Arc::new(Peer::new(sid, Arc::default(), Box::new(Nowhere)))
    }

    fn target(r: Option<&Route>) -> Option<u64> {
        match r? {
            Route::Peer(p) => Some(p.sid),
            Route::Room(_) => None,
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(CallId, u64),
        Remove(CallId),
        Clear,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..5u64, 0..100u64).prop_map(|(c, s)| Op::Insert(c, s)),
            4 => (0..5u64).prop_map(Op::Remove),
            1 => Just(Op::Clear),
        ]
    }

    proptest! {
        /// Whatever is inserted, replaced and removed, it answers as a hash map would.
        #[test]
        fn behaves_as_a_map(ops in proptest::collection::vec(op(), 0..60)) {
            let mut map = RouteMap::default();
            let mut model: HashMap<CallId, u64> = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(c, s) => prop_assert_eq!(
                        target(map.insert(c, Route::Peer(peer(s))).as_ref()),
                        model.insert(c, s)
                    ),
                    Op::Remove(c) => {
                        prop_assert_eq!(target(map.remove(&c).as_ref()), model.remove(&c))
                    }
                    Op::Clear => {
                        map.clear();
                        model.clear();
                    }
                }
                prop_assert_eq!(map.len(), model.len());
                prop_assert_eq!(map.is_empty(), model.is_empty());
                for c in 0..5 {
                    prop_assert_eq!(target(map.get(&c)), model.get(&c).copied());
                }
                // The inline slot is used whenever there is a route.
                prop_assert_eq!(map.first().is_some(), !model.is_empty());
            }
        }
    }
}
