use proptest::prelude::*;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn login(addr: &str, number: &str) -> Login {
    Login {
        addr: ip(addr),
        number: number.into(),
        device: None,
    }
}

fn known(addr: &str, number: &str, device: u8) -> Login {
    Login {
        device: Some([device; 16]),
        ..login(addr, number)
    }
}

/// One attempt after another, each failing at once.
fn fail(t: &mut Throttle, l: &Login, now: u64) -> Result<(), u64> {
    let r = t.begin(l.clone(), now)?;
    t.finish(r, false, now);
    Ok(())
}

#[test]
fn back_off_starts_after_free_failures_and_doubles() {
    let mut t = Throttle::new();
    let l = login("10.0.0.1", "1042");
    for _ in 0..FREE_FAILURES {
        fail(&mut t, &l, 0).unwrap();
    }
    fail(&mut t, &l, 0).unwrap();
    assert_eq!(t.begin(l.clone(), 0).unwrap_err(), 1_000);
    fail(&mut t, &l, 1_000).unwrap();
    assert_eq!(t.begin(l.clone(), 1_000).unwrap_err(), 2_000);
    for i in 0..40 {
        let _ = fail(&mut t, &l, 3_000 + i * MAX_DELAY_MS);
    }
    // The last failure, at the cap.
    let now = 3_000 + 39 * MAX_DELAY_MS;
    let wait = t.begin(l.clone(), now).unwrap_err();
    assert_eq!(wait, MAX_DELAY_MS);
    // The right password, once the wait is over, clears the number's record.
    let r = t.begin(l.clone(), now + wait).unwrap();
    t.finish(r, true, now + wait);
    assert!(t.check(&Key::Number("1042".into()), now + wait).is_ok());
}

#[test]
fn parallel_attempts_get_no_more_checks_than_one_after_another() {
    let mut t = Throttle::new();
    let l = login("10.0.0.1", "1042");
    // 64 connections ask at once: the free failures and the first blocked one.
    let admitted: Vec<Reservation> = (0..64).filter_map(|_| t.begin(l.clone(), 0).ok()).collect();
    assert_eq!(admitted.len() as u32, FREE_FAILURES + 1);
    assert_eq!(t.begin(l.clone(), 0).unwrap_err(), IN_FLIGHT_WAIT_MS);
    for r in admitted {
        t.finish(r, false, 10);
    }
    // Now blocked like one client after six failures; then one attempt at a time.
    assert_eq!(t.begin(l.clone(), 10).unwrap_err(), 1_000);
    let r = t.begin(l.clone(), 1_010).unwrap();
    assert!(t.begin(l.clone(), 1_010).is_err());
    t.finish(r, false, 1_020);
    assert_eq!(t.begin(l.clone(), 1_020).unwrap_err(), 2_000);
}

#[test]
fn a_success_gives_its_reservation_back() {
    let mut t = Throttle::new();
    let l = login("10.0.0.1", "1042");
    for _ in 0..100 {
        let r = t.begin(l.clone(), 0).unwrap();
        t.finish(r, true, 0);
    }
    assert!(t.is_empty());
}

#[test]
fn a_released_attempt_records_nothing() {
    let mut t = Throttle::new();
    let l = login("10.0.0.1", "1042");
    for _ in 0..100 {
        let r = t.begin(l.clone(), 0).unwrap();
        t.release(r);
    }
    assert!(t.is_empty());
}

#[test]
fn a_strangers_failures_do_not_lock_out_a_known_device() {
    let mut t = Throttle::new();
    let attacker = login("10.0.0.2", "1042");
    let mut now = 0;
    for _ in 0..1_000 {
        let _ = fail(&mut t, &attacker, now);
        now += 997;
    }
    // The number is blocked for anyone without a token, the owner's new device included…
    assert!(t.begin(login("10.0.0.1", "1042"), now).is_err());
    // …but not for the owner's device that logged in before, from anywhere.
    let owner = known("10.0.0.1", "1042", 7);
    let r = t.begin(owner.clone(), now).unwrap();
    t.finish(r, true, now);
    assert!(t.begin(known("10.0.0.2", "1042", 7), now).is_ok());
    // Its success does not lift the strangers' block, which would give them a new budget.
    assert!(t.begin(login("10.0.0.3", "1042"), now).is_err());
}

#[test]
fn a_known_device_with_a_wrong_password_backs_off_too() {
    let mut t = Throttle::new();
    let owner = known("10.0.0.1", "1042", 7);
    for _ in 0..=FREE_FAILURES {
        fail(&mut t, &owner, 0).unwrap();
    }
    assert_eq!(t.begin(owner, 0).unwrap_err(), 1_000);
}

#[test]
fn an_address_keeps_its_back_off_across_numbers_and_successes() {
    let mut t = Throttle::new();
    for n in 0..FREE_FAILURES_ADDRESS + 1 {
        fail(&mut t, &login("10.0.0.1", &format!("{}", 1000 + n)), 0).unwrap();
    }
    let r = t.begin(login("10.0.0.1", "2000"), 0);
    assert_eq!(r.unwrap_err(), 1_000);
    // Another address is not affected.
    let r = t.begin(login("10.0.0.2", "2000"), 0).unwrap();
    t.finish(r, true, 0);
    assert!(t.check(&Key::ip(ip("10.0.0.1")), 0).is_err());
}

#[test]
fn old_failures_are_forgotten() {
    let mut t = Throttle::new();
    let l = login("10.0.0.1", "1042");
    for _ in 0..=FREE_FAILURES {
        fail(&mut t, &l, 0).unwrap();
    }
    let later = FORGET_AFTER_MS + 1;
    fail(&mut t, &l, later).unwrap();
    assert!(t.begin(l, later).is_ok());
}

#[test]
fn ipv6_is_keyed_by_prefix() {
    assert_eq!(
        Key::ip(ip("2001:db8:1:2:3:4:5:6")),
        Key::ip(ip("2001:db8:1:2:ffff::1"))
    );
    assert_eq!(Key::ip(ip("::ffff:10.0.0.1")), Key::ip(ip("10.0.0.1")));
}

#[test]
fn the_table_stays_bounded() {
    let mut t = Throttle::new();
    for i in 0..(MAX_ENTRIES as u64 / 3 + 10) {
        let l = Login {
            addr: IpAddr::from((i as u32).to_be_bytes()),
            number: i.to_string(),
            device: None,
        };
        fail(&mut t, &l, i).unwrap();
    }
    assert!(t.len() <= MAX_ENTRIES);
}

/// How many attempts one client gets on a key with `free` free failures by `elapsed`
/// ms after its first, trying again the moment each back-off ends and failing at once.
fn sequential_budget(free: u32, elapsed: u64) -> u32 {
    let (mut at, mut attempts) = (0u64, 0u32);
    while at <= elapsed {
        attempts += 1;
        if attempts > free {
            let doublings = (attempts - free - 1).min(20);
            at += (BASE_DELAY_MS << doublings).min(MAX_DELAY_MS);
        }
    }
    attempts
}

#[derive(Debug, Clone)]
enum Op {
    /// A connection from address `.0` tries number `.1`.
    Begin(u8, u8),
    /// The `.0`-th oldest attempt in flight fails.
    Fail(usize),
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, 0u8..3).prop_map(|(a, n)| Op::Begin(a, n)),
        3 => (0usize..8).prop_map(Op::Fail),
        2 => (0u64..4_000).prop_map(Op::Wait),
    ]
}

proptest! {
    /// However attempts from many connections interleave, no key lets more passwords be
    /// checked than one client trying as fast as the back-off allows.
    #[test]
    fn no_interleaving_beats_one_client_in_turn(ops in proptest::collection::vec(op(), 1..300)) {
        let mut t = Throttle::new();
        let mut now = 0u64;
        let mut in_flight: Vec<Reservation> = Vec::new();
        let mut admitted: HashMap<Key, (u64, u32)> = HashMap::new();
        for op in ops {
            match op {
                Op::Begin(a, n) => {
                    let l = login(&format!("10.0.0.{a}"), &format!("{}", 1000 + u32::from(n)));
                    if let Ok(r) = t.begin(l.clone(), now) {
                        for key in l.checked() {
                            admitted.entry(key).or_insert((now, 0)).1 += 1;
                        }
                        in_flight.push(r);
                    }
                }
                Op::Fail(i) if !in_flight.is_empty() => {
                    let r = in_flight.remove(i % in_flight.len());
                    t.finish(r, false, now);
                }
                Op::Fail(_) => {}
                Op::Wait(ms) => now += ms,
            }
            for (key, (first, count)) in &admitted {
                let budget = sequential_budget(key.free_failures(), now - first);
                prop_assert!(*count <= budget, "{key:?}: {count} > {budget} at {now}");
            }
        }
    }

    /// Whatever others try, on the same number from any address, with or without tokens
    /// of their own, a device that knows its password and holds a token gets in.
    #[test]
    fn a_known_device_always_gets_its_turn(
        ops in proptest::collection::vec((0u8..4, 0u8..3, any::<bool>(), 0u64..2_000), 1..200)
    ) {
        let mut t = Throttle::new();
        let mut now = 0;
        for (a, device, success, wait) in ops {
            let mut l = login(&format!("10.0.0.{a}"), "1042");
            // Device 0 is the owner's: it never fails here.
            l.device = (device > 0).then_some([device; 16]);
            if let Ok(r) = t.begin(l, now) {
                t.finish(r, success, now);
            }
            now += wait;
            let owner = t.begin(known("10.0.0.1", "1042", 0), now);
            prop_assert!(owner.is_ok());
            t.finish(owner.unwrap(), true, now);
        }
    }
}
