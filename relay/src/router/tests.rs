//! The router task on a virtual clock: it must sleep until exactly the router's next
//! deadline, wake for a command that moves it, and end the calls that are due then.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::task::Poll;

use phoned_proto::Event;
use phoned_proto::call::CallPhase;

use super::*;

/// Time that moves only when the test says so. Its sleeps register no waker: the test
/// script yields after moving the clock, which makes the executor poll the driver again.
#[derive(Clone, Default)]
struct Virtual {
    now: Rc<Cell<u64>>,
    /// Every deadline the driver went to sleep until, in order.
    sleeps: Rc<RefCell<Vec<u64>>>,
}

impl Clock for Virtual {
    fn now_ms(&self) -> u64 {
        self.now.get()
    }

    fn sleep_until(&self, ms: u64) -> impl Future<Output = ()> {
        self.sleeps.borrow_mut().push(ms);
        let now = self.now.clone();
        std::future::poll_fn(move |_| {
            if now.get() >= ms {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

const A: SessionId = 1;
const B: SessionId = 2;

fn caller() -> Caller {
    Caller {
        session: A,
        account: 10,
        number: "1000".into(),
        name: "A".into(),
    }
}

fn callee() -> Callee {
    Callee::Account {
        id: 20,
        sessions: vec![B],
        number: String::new(),
        name: String::new(),
    }
}

fn ended(actions: &[CallAction], call: CallId) -> Vec<(SessionId, EndReason)> {
    actions
        .iter()
        .filter_map(|a| match a {
            CallAction::Send(
                sid,
                Event::CallState {
                    call: c,
                    phase: CallPhase::Ended(r),
                },
            ) if *c == call => Some((*sid, *r)),
            _ => None,
        })
        .collect()
}

#[test]
fn the_driver_sleeps_exactly_until_the_routers_next_deadline() {
    let clock = Virtual::default();
    let (router, commands) = Router::new();
    let applied = RefCell::new(Vec::new());
    let driver = drive(
        Calls::new(10_000, crate::calls::CallIds::new([1; 32])),
        commands,
        clock.clone(),
        |a| applied.borrow_mut().extend(a),
        |_, _| {},
    );
    let script = async {
        let settle = || smol::future::yield_now();
        settle().await;
        assert!(clock.sleeps.borrow().is_empty(), "nothing rings: no timer");

        let (first, _) = router.dial(caller(), callee()).await.unwrap();
        settle().await;
        assert_eq!(*clock.sleeps.borrow(), [10_000]);

        // A reload shortens the ring timeout; the next call's deadline comes first and
        // the driver, woken by the command, sleeps until it instead.
        router.set_ring_timeout(1_000);
        clock.now.set(500);
        let (second, _) = router.dial(caller(), callee()).await.unwrap();
        settle().await;
        assert_eq!(*clock.sleeps.borrow(), [10_000, 1_500]);

        clock.now.set(1_499);
        settle().await;
        assert!(applied.borrow().is_empty(), "not due a millisecond early");
        clock.now.set(1_500);
        settle().await;
        assert_eq!(
            ended(&applied.borrow(), second),
            [(A, EndReason::NoAnswer), (B, EndReason::NoAnswer)]
        );
        assert!(ended(&applied.borrow(), first).is_empty());
        assert_eq!(clock.sleeps.borrow().last(), Some(&10_000));

        clock.now.set(10_000);
        settle().await;
        assert_eq!(
            ended(&applied.borrow(), first),
            [(A, EndReason::NoAnswer), (B, EndReason::NoAnswer)]
        );
        let sleeps = clock.sleeps.borrow().len();
        settle().await;
        assert_eq!(
            clock.sleeps.borrow().len(),
            sleeps,
            "nothing rings: no timer"
        );
    };
    smol::block_on(smol::future::or(driver, script));
}

#[test]
fn an_answered_call_has_no_deadline_and_departures_are_applied_by_the_driver() {
    let clock = Virtual::default();
    let (router, commands) = Router::new();
    let applied = RefCell::new(Vec::new());
    let calls = Cell::new(0);
    let driver = drive(
        Calls::new(10_000, crate::calls::CallIds::new([1; 32])),
        commands,
        clock.clone(),
        |a| applied.borrow_mut().extend(a),
        |n, _| calls.set(n),
    );
    let script = async {
        let (call, _) = router.dial(caller(), callee()).await.unwrap();
        assert_eq!(calls.get(), 1, "the driver counts the call it placed");
        let answered = router.op(B, Op::Answer(call)).await.unwrap().unwrap();
        assert!(answered.contains(&CallAction::Route {
            call,
            from: A,
            to: B
        }));
        // The answer wakes the driver, which now has nothing to wait for.
        smol::future::yield_now().await;
        assert_eq!(*clock.sleeps.borrow(), [10_000]);
        router.left(A).await;
        assert_eq!(ended(&applied.borrow(), call), [(B, EndReason::Network)]);
        smol::future::yield_now().await;
        assert_eq!(calls.get(), 0, "and sees it end");
        assert_eq!(
            router.op(B, Op::Hangup(call)).await.unwrap(),
            Err(CallError::NoSuchCall)
        );
    };
    smol::block_on(smol::future::or(driver, script));
}
