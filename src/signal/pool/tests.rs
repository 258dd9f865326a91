use super::*;
use crate::signal::health::RETIRE_COOLDOWN_MS;

const WALL: u64 = 1_700_000_000_000;
const A: &str = "ws://127.0.0.1:7001";
const B: &str = "ws://127.0.0.1:7002";

fn pool(min_relays: usize, extended: Vec<String>) -> RelayPool {
    let policy = PoolPolicy {
        min_relays,
        extended: !extended.is_empty(),
    };
    RelayPool::new(policy, Vec::new(), extended)
}

fn phase(pool: &RelayPool, url: &str) -> RelayPhase {
    let state = pool.states(WALL).into_iter().find(|s| s.url == url);
    state.expect("relay in the pool").state
}

#[test]
fn backoff_grows_with_jitter_to_the_cap() {
    for failures in 0..10 {
        let nominal = RECONNECT_FIRST
            .saturating_mul(1 << failures.min(6))
            .min(RECONNECT_CAP);
        for jitter in [0.0, 0.3, 0.999] {
            let d = backoff(failures, jitter);
            assert!(d >= nominal / 2 && d <= nominal, "{failures}: {d:?}");
        }
        assert_eq!(backoff(failures, 0.0), nominal / 2);
    }
    assert!(backoff(20, 1.0) <= RECONNECT_CAP);
}

#[test]
fn urls_are_normalized() {
    assert_eq!(
        normalize("ws://127.0.0.1:7777"),
        normalize("ws://127.0.0.1:7777/")
    );
    assert!(normalize("not a url").is_none());
}

#[test]
fn only_a_relays_own_refusal_counts_against_it() {
    for why in [
        "blocked: not allowed",
        "rate-limited: slow down",
        "pow: 20 bits needed",
    ] {
        assert!(refused_by_relay(why), "{why}");
    }
    for why in [
        "timeout",
        "relay not connected",
        "Error: socket closed",
        ": odd",
        "x y: z",
    ] {
        assert!(!refused_by_relay(why), "{why}");
    }
}

#[test]
fn a_relay_connects_drops_and_reconnects_with_growing_backoff() {
    let t0 = Instant::now();
    let mut p = pool(0, Vec::new());
    assert_eq!(p.add(A, t0, WALL), Added::Connect);
    assert_eq!(phase(&p, A), RelayPhase::Connecting);
    assert!(p.on_connected(A, t0 + Duration::from_millis(40)));
    assert_eq!(phase(&p, A), RelayPhase::Connected);
    assert_eq!(p.states(WALL)[0].latency_ms, Some(40));

    let first = p.on_disconnected(A, t0, WALL, 0.0).expect("a delay");
    assert_eq!(first, RECONNECT_FIRST / 2);
    assert_eq!(phase(&p, A), RelayPhase::Disconnected);
    assert!(
        p.tick(t0 + first / 2, WALL).reconnect.is_empty(),
        "reconnected early"
    );
    assert_eq!(p.tick(t0 + first, WALL).reconnect, vec![A.to_owned()]);
    assert_eq!(phase(&p, A), RelayPhase::Connecting);
    // The reconnect failed too: the next wait is longer.
    let second = p
        .on_disconnected(A, t0 + first, WALL, 0.0)
        .expect("a delay");
    assert!(second > first, "{second:?} after {first:?}");
    // A connect nobody reported is checked after a while.
    let t1 = t0 + first + second;
    assert_eq!(p.tick(t1, WALL).reconnect, vec![A.to_owned()]);
    assert_eq!(
        p.tick(t1 + Duration::from_secs(3), WALL).check,
        vec![A.to_owned()]
    );
}

#[test]
fn a_retired_relay_stays_out_for_its_cooldown_even_across_restarts() {
    let t0 = Instant::now();
    let mut p = pool(0, Vec::new());
    p.add(A, t0, WALL);
    p.on_connected(A, t0);
    assert_eq!(
        p.on_note(A, RelayNote::Notice("pow: 28 bits needed"), WALL),
        Decision::Retire
    );
    assert_eq!(phase(&p, A), RelayPhase::Retired);
    assert!(!p.on_connected(A, t0), "a retired relay came back");
    assert_eq!(
        p.on_disconnected(A, t0, WALL, 0.5),
        None,
        "a retired relay is not reconnected"
    );
    assert!(p.publish_targets(None, WALL).is_empty());

    let records: Vec<RelayHealth> = p.records().map(|(_, h)| h.clone()).collect();
    let policy = PoolPolicy {
        min_relays: 0,
        extended: false,
    };
    let mut restarted = RelayPool::new(policy, records.clone(), Vec::new());
    assert_eq!(restarted.add(A, t0, WALL + 1_000), Added::Cooldown);
    let mut later = RelayPool::new(policy, records, Vec::new());
    assert_eq!(
        later.add(A, t0, WALL + RETIRE_COOLDOWN_MS + 1),
        Added::Connect
    );
}

#[test]
fn publishes_go_to_usable_relays_and_a_named_one_when_usable() {
    let t0 = Instant::now();
    let mut p = pool(0, Vec::new());
    p.add(A, t0, WALL);
    p.add(B, t0, WALL);
    assert!(
        p.publish_targets(None, WALL).is_empty(),
        "published to relays still connecting"
    );
    p.on_connected(A, t0);
    p.on_connected(B, t0);
    assert_eq!(p.publish_targets(None, WALL).len(), 2);
    assert_eq!(
        p.publish_targets(Some("ws://127.0.0.1:7002/"), WALL),
        vec![B.to_owned()]
    );
    assert_eq!(
        p.publish_targets(Some("ws://127.0.0.1:9999"), WALL).len(),
        2
    );
    // A rate limit takes a relay out of publishing, not out of the pool.
    let failed = vec![(A.to_owned(), "rate-limited: slow down".to_owned())];
    assert!(
        p.on_publish_result("e1", &[B.to_owned()], &failed, true, WALL)
            .is_empty()
    );
    assert_eq!(phase(&p, A), RelayPhase::RateLimited);
    assert_eq!(p.publish_targets(None, WALL), vec![B.to_owned()]);
}

#[test]
fn a_refusal_retires_and_a_timeout_only_records_the_error() {
    let t0 = Instant::now();
    let mut p = pool(0, Vec::new());
    for url in [A, B] {
        p.add(url, t0, WALL);
        p.on_connected(url, t0);
    }
    let failed = vec![
        (A.to_owned(), "blocked: go away".to_owned()),
        (B.to_owned(), "timeout".to_owned()),
    ];
    assert_eq!(
        p.on_publish_result("e1", &[], &failed, false, WALL),
        vec![A.to_owned()]
    );
    assert_eq!(phase(&p, A), RelayPhase::Retired);
    assert_eq!(phase(&p, B), RelayPhase::Connected);
    let b = p.states(WALL).into_iter().find(|s| s.url == B).expect("B");
    assert_eq!(b.last_error.as_deref(), Some("timeout"));
}

#[test]
fn the_extended_list_tops_the_pool_up_best_first() {
    let t0 = Instant::now();
    let ext: Vec<String> = (1..=4).map(|i| format!("ws://127.0.0.1:810{i}")).collect();
    let mut records = vec![RelayHealth::new(&ext[3])];
    records[0].on_publish("x", false, false, "blocked: no", WALL);
    let policy = PoolPolicy {
        min_relays: 3,
        extended: true,
    };
    let mut p = RelayPool::new(policy, records, ext.clone());
    p.add(A, t0, WALL);
    p.on_connected(A, t0);
    let add = p.tick(t0, WALL).add;
    assert_eq!(add.len(), 2, "two short of three");
    assert!(!add.contains(&ext[3]), "a retired relay was picked");
    for url in &add {
        p.add(url, t0, WALL);
    }
    assert!(p.tick(t0, WALL).add.is_empty(), "topped up twice");
    // Without the extended list, nothing is added.
    let mut q = pool(3, Vec::new());
    q.add(A, t0, WALL);
    assert!(q.tick(t0, WALL).add.is_empty());
}

#[test]
fn startup_tries_the_relays_that_served_best_first() {
    let mut good = RelayHealth::new(B);
    good.on_connected(10);
    good.on_publish("e", true, false, "", WALL);
    let policy = PoolPolicy {
        min_relays: 0,
        extended: false,
    };
    let p = RelayPool::new(policy, vec![good], Vec::new());
    let order = p.startup_order(
        &[
            A.into(),
            "ws://127.0.0.1:7002/".into(),
            B.into(),
            "junk".into(),
        ],
        WALL,
    );
    assert_eq!(order, vec![B.to_owned(), A.to_owned()]);
}
