use super::*;
use crate::signal::defaults::AppRelays;
use crate::signal::health::RETIRE_COOLDOWN_MS;

const WALL: u64 = 1_700_000_000_000;
const A: &str = "ws://127.0.0.1:7001";
const B: &str = "ws://127.0.0.1:7002";

fn pool(min_relays: usize, extended: Vec<String>) -> RelayPool {
    let policy = PoolPolicy {
        min_relays,
        extended: !extended.is_empty(),
        app_relays: None,
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
    p.startup_order(&[A.into(), B.into()], WALL);
    assert_eq!(p.add(A, t0, WALL), Added::Connect);
    assert_eq!(phase(&p, A), RelayPhase::Connecting);
    assert!(p.on_connected(A, t0 + Duration::from_millis(40)).is_some());
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
    p.startup_order(&[A.into(), B.into()], WALL);
    p.add(A, t0, WALL);
    p.on_connected(A, t0);
    assert_eq!(
        p.on_note(A, RelayNote::Notice("pow: 28 bits needed"), WALL),
        Decision::Retire
    );
    assert_eq!(phase(&p, A), RelayPhase::Retired);
    assert!(p.on_connected(A, t0).is_none(), "a retired relay came back");
    assert_eq!(
        p.on_disconnected(A, t0, WALL, 0.5),
        None,
        "a retired relay is not reconnected"
    );
    assert!(p.publish_targets("app", None, WALL).is_empty());

    let records: Vec<RelayHealth> = p.records().map(|(_, h)| h.clone()).collect();
    let policy = PoolPolicy {
        min_relays: 0,
        extended: false,
        app_relays: None,
    };
    let mut restarted = RelayPool::new(policy.clone(), records.clone(), Vec::new());
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
    p.startup_order(&[A.into(), B.into()], WALL);
    p.add(A, t0, WALL);
    p.add(B, t0, WALL);
    assert!(
        p.publish_targets("app", None, WALL).is_empty(),
        "published to relays still connecting"
    );
    p.on_connected(A, t0);
    p.on_connected(B, t0);
    assert_eq!(p.publish_targets("app", None, WALL).len(), 2);
    assert_eq!(
        p.publish_targets("app", Some("ws://127.0.0.1:7002/"), WALL),
        vec![B.to_owned()]
    );
    assert_eq!(
        p.publish_targets("app", Some("ws://127.0.0.1:9999"), WALL)
            .len(),
        2
    );
    // A rate limit takes a relay out of publishing, not out of the pool.
    let failed = vec![(A.to_owned(), "rate-limited: slow down".to_owned())];
    assert!(
        p.on_publish_result("e1", &[B.to_owned()], &failed, true, WALL)
            .is_empty()
    );
    assert_eq!(phase(&p, A), RelayPhase::RateLimited);
    assert_eq!(p.publish_targets("app", None, WALL), vec![B.to_owned()]);
}

#[test]
fn a_refusal_retires_and_a_timeout_only_records_the_error() {
    let t0 = Instant::now();
    let mut p = pool(0, Vec::new());
    p.startup_order(&[A.into(), B.into()], WALL);
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
        app_relays: None,
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
        app_relays: None,
    };
    let mut p = RelayPool::new(policy, vec![good], Vec::new());
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

fn per_app(min_relays: usize, extended: Vec<String>) -> RelayPool {
    let policy = PoolPolicy {
        min_relays,
        extended: !extended.is_empty(),
        app_relays: Some(AppRelays::trystero(5)),
    };
    RelayPool::new(policy, Vec::new(), extended)
}

fn topic(app: &str, topic: &str) -> AppTopic {
    AppTopic {
        app: app.into(),
        topic: topic.into(),
    }
}

fn trystero(app: &str) -> Vec<String> {
    crate::signal::defaults::trystero_relays(app, 5)
        .into_iter()
        .filter_map(normalize)
        .collect()
}

#[test]
fn each_apps_rooms_use_its_trystero_relays_and_the_pool_is_their_union() {
    let t0 = Instant::now();
    let mut p = per_app(0, Vec::new());
    assert!(p.states(WALL).is_empty(), "relays before any room");
    let (ra, rb) = (trystero("san_narciso_3d"), trystero("trystero"));
    // Two apps; "staging.yabu.me" is one of both.
    let shared_by_both: Vec<&String> = ra.iter().filter(|u| rb.contains(u)).collect();
    assert_eq!(shared_by_both, vec!["wss://staging.yabu.me"]);
    let routing = p.set_topics(
        vec![
            topic("san_narciso_3d", "ta"),
            topic("san_narciso_3d", "ta2"),
            topic("trystero", "tb"),
        ],
        t0,
    );
    let mut union: Vec<String> = ra.iter().chain(&rb).cloned().collect();
    union.sort();
    union.dedup();
    assert_eq!(routing.add, union, "the union of the apps' relays");
    assert!(routing.subscribe.is_empty(), "nothing is connected yet");
    for url in &union {
        assert_eq!(p.add(url, t0, WALL), Added::Connect);
    }
    // A relay of one app carries only that app's topics; one of both carries both.
    let only_a = ra
        .iter()
        .find(|u| !rb.contains(u))
        .expect("a relay of A only");
    let up = p.on_connected(only_a, t0).expect("up");
    assert_eq!(up.topics, vec!["ta".to_owned(), "ta2".to_owned()]);
    assert_eq!(up.apps, Some(vec!["san_narciso_3d".to_owned()]));
    let both = p.on_connected("wss://staging.yabu.me", t0).expect("up");
    assert_eq!(both.topics.len(), 3);
    assert_eq!(both.apps.map(|a| a.len()), Some(2));
    assert!(p.carries(only_a, "ta") && !p.carries(only_a, "tb"));
    assert!(!p.carries(only_a, "unknown"));
    // A room publishes on its app's usable relays only; a reply through a relay of another
    // app goes to the app's own instead.
    assert_eq!(
        p.publish_targets("san_narciso_3d", None, WALL),
        vec!["wss://staging.yabu.me".to_owned(), only_a.clone()]
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
    assert_eq!(
        p.publish_targets("trystero", None, WALL),
        vec!["wss://staging.yabu.me".to_owned()]
    );
    assert_eq!(
        p.publish_targets("trystero", Some(only_a), WALL),
        vec!["wss://staging.yabu.me".to_owned()]
    );
    // The first app's rooms close: its relays lose their subscriptions at once and leave
    // the pool after a while (a quick rejoin finds them still there).
    let routing = p.set_topics(vec![topic("trystero", "tb")], t0);
    assert!(routing.add.is_empty());
    assert_eq!(
        routing.subscribe,
        vec![
            (
                only_a.clone(),
                SubChange {
                    reqs: Vec::new(),
                    close: vec!["meshrtc".to_owned()],
                }
            ),
            (
                "wss://staging.yabu.me".to_owned(),
                SubChange {
                    reqs: vec![("meshrtc".to_owned(), vec!["tb".to_owned()])],
                    close: Vec::new(),
                }
            ),
        ]
    );
    assert!(p.tick(t0 + RELEASE_AFTER / 2, WALL).release.is_empty());
    let release = p.tick(t0 + RELEASE_AFTER, WALL).release;
    let mut only_a_relays: Vec<String> = ra.iter().filter(|u| !rb.contains(u)).cloned().collect();
    only_a_relays.sort();
    assert_eq!(release, only_a_relays);
    assert_eq!(p.states(WALL).len(), rb.len());
    assert!(
        p.on_connected(only_a, t0).is_none(),
        "a released relay came back"
    );
    // The app comes back: its relays are added again.
    let routing = p.set_topics(
        vec![topic("trystero", "tb"), topic("san_narciso_3d", "ta")],
        t0 + RELEASE_AFTER,
    );
    assert_eq!(routing.add, only_a_relays);
}

#[test]
fn a_rejoin_before_the_release_keeps_the_relay() {
    let t0 = Instant::now();
    let mut p = per_app(0, Vec::new());
    let ra = trystero("a");
    p.set_topics(vec![topic("a", "t")], t0);
    for url in &ra {
        p.add(url, t0, WALL);
    }
    p.set_topics(Vec::new(), t0);
    let later = t0 + RELEASE_AFTER / 2;
    assert!(p.set_topics(vec![topic("a", "t")], later).add.is_empty());
    assert!(p.tick(t0 + RELEASE_AFTER * 2, WALL).release.is_empty());
}

#[test]
fn configured_relays_carry_every_room() {
    let t0 = Instant::now();
    let mut p = pool(0, Vec::new());
    p.startup_order(&[A.into(), B.into()], WALL);
    for url in [A, B] {
        p.add(url, t0, WALL);
    }
    assert_eq!(p.on_connected(A, t0).expect("up").apps, None);
    let routing = p.set_topics(vec![topic("x", "t1"), topic("y", "t2")], t0);
    assert!(routing.add.is_empty(), "no per-app relays without them");
    let both = vec!["t1".to_owned(), "t2".to_owned()];
    let topics: Vec<(&String, Vec<String>)> = routing
        .subscribe
        .iter()
        .map(|(u, c)| (u, c.topics()))
        .collect();
    assert_eq!(topics, vec![(&A.to_owned(), both.clone())]);
    assert_eq!(p.on_connected(B, t0).expect("up").topics, both);
    assert_eq!(p.publish_targets("y", None, WALL).len(), 2);
    assert!(p.carries(A, "t2"));
    // The same topics again change nothing.
    let again = p.set_topics(vec![topic("x", "t1"), topic("y", "t2")], t0);
    assert_eq!(again, Routing::default());
    p.set_topics(Vec::new(), t0);
    assert!(
        p.tick(t0 + RELEASE_AFTER * 2, WALL).release.is_empty(),
        "configured relays are never released"
    );
}

#[test]
fn per_app_the_extended_list_tops_up_the_app_worst_off_only_when_a_room_needs_it() {
    let t0 = Instant::now();
    let ext: Vec<String> = (1..=4).map(|i| format!("ws://127.0.0.1:810{i}")).collect();
    let mut p = per_app(3, ext.clone());
    assert!(p.tick(t0, WALL).add.is_empty(), "no room, no relay needed");
    let ra = trystero("a");
    let routing = p.set_topics(vec![topic("a", "t")], t0);
    for url in &routing.add {
        p.add(url, t0, WALL);
    }
    assert!(p.tick(t0, WALL).add.is_empty(), "five relays connecting");
    // Three of the app's five fail: one short of three.
    for url in &ra[..3] {
        p.on_disconnected(url, t0, WALL, 0.0);
    }
    let add = p.tick(t0, WALL).add;
    assert_eq!(add, vec![ext[0].clone()]);
    p.add(&ext[0], t0, WALL);
    // An extended relay carries every room.
    let up = p.on_connected(&ext[0], t0).expect("up");
    assert_eq!((up.apps, up.topics), (None, vec!["t".to_owned()]));
    assert!(p.tick(t0, WALL).add.is_empty(), "topped up twice");
}

fn limited(max_subscriptions: u32, max_message_length: u32) -> RelayRules {
    RelayRules {
        max_subscriptions: Some(max_subscriptions),
        max_filters: Some(1),
        max_message_length: Some(max_message_length),
        fetched_at: Some(WALL),
        ..Default::default()
    }
}

fn many(n: usize) -> Vec<AppTopic> {
    (0..n).map(|i| topic("app", &format!("{i:040x}"))).collect()
}

#[test]
fn a_relay_is_subscribed_only_once_its_rules_are_read_and_within_them() {
    let t0 = Instant::now();
    let mut p = pool(0, Vec::new());
    p.startup_order(&[A.into()], WALL);
    p.add(A, t0, WALL);
    assert!(p.wants_rules(A, WALL), "never read");
    p.set_topics(many(60), t0);
    // Connected before the document came: nothing is sent yet, not even on a topic change.
    assert_eq!(p.on_connected(A, t0), None);
    assert!(
        p.publish_targets("app", None, WALL).is_empty(),
        "not written to before its rules are known"
    );
    assert!(p.set_topics(many(61), t0).subscribe.is_empty());
    let Some(RulesApplied::Up(up)) = p.on_rules(A, limited(3, 2048)) else {
        panic!("the relay is up once its rules are read");
    };
    assert_eq!(up.apps, None);
    assert!(up.subs.reqs.len() > 1 && up.subs.reqs.len() <= 3, "{up:?}");
    assert_eq!(up.topics.len(), 61, "every topic fits in three REQs");
    assert_eq!(up.subs.reqs[0].0, "meshrtc");
    assert_eq!(up.subs.reqs[1].0, "meshrtc-1");
    for (i, (_, t)) in up.subs.reqs.iter().enumerate() {
        assert!(super::super::rules::req_len(i, t) <= 2048);
    }
    // Fewer topics: the REQs no longer needed are closed.
    let routing = p.set_topics(many(5), t0);
    let (url, change) = &routing.subscribe[0];
    assert_eq!(url, A);
    assert_eq!(change.reqs.len(), 1);
    assert_eq!(change.close.len(), up.subs.reqs.len() - 1);
    // More than three REQs hold: the rest is left out, and shown.
    p.set_topics(many(400), t0);
    let s = &p.states(WALL)[0];
    assert!(s.topics_left_out > 0, "{s:?}");
    assert_eq!(s.rules.as_ref().and_then(|r| r.max_subscriptions), Some(3));
    // The rules are kept with the health record: the next add does not wait for them.
    let records: Vec<RelayHealth> = p.records().map(|(_, h)| h.clone()).collect();
    let mut q = RelayPool::new(
        PoolPolicy {
            min_relays: 0,
            extended: false,
            app_relays: None,
        },
        records,
        Vec::new(),
    );
    q.startup_order(&[A.into()], WALL);
    q.add(A, t0, WALL);
    assert!(!q.wants_rules(A, WALL + 1), "fresh");
    assert!(
        q.wants_rules(A, WALL + super::super::rules::INFO_MAX_AGE_MS),
        "stale"
    );
    q.set_topics(many(5), t0);
    assert_eq!(q.on_connected(A, t0).expect("up at once").topics.len(), 5);
}

#[test]
fn rules_read_after_the_subscription_replan_it() {
    let t0 = Instant::now();
    let mut p = pool(0, Vec::new());
    p.startup_order(&[A.into()], WALL);
    p.add(A, t0, WALL);
    p.set_topics(many(60), t0);
    let up = p.on_connected(A, t0).expect("no rules read: up at once");
    assert_eq!(up.subs.reqs.len(), 1);
    let Some(RulesApplied::Resubscribe(change)) = p.on_rules(A, limited(10, 1024)) else {
        panic!("the subscription must be split");
    };
    assert!(change.reqs.len() > 1 && change.close.is_empty());
    assert_eq!(
        p.on_rules(A, limited(10, 1024)),
        None,
        "nothing changes twice"
    );
}

#[test]
fn oversized_events_and_read_only_relays_are_not_published_to() {
    let t0 = Instant::now();
    let c = "ws://127.0.0.1:7003";
    let mut p = pool(0, Vec::new());
    p.startup_order(&[A.into(), B.into(), c.into()], WALL);
    for url in [A, B, c] {
        p.add(url, t0, WALL);
        p.on_connected(url, t0);
    }
    p.on_rules(A, limited(10, 1000));
    p.on_rules(
        c,
        RelayRules {
            payment_required: true,
            ..Default::default()
        },
    );
    // A paid relay is read from, never written to.
    assert_eq!(p.publish_targets("app", None, WALL), vec![A, B]);
    let small = p.publish_plan("app", None, 1000, WALL);
    assert_eq!(
        (small.targets, small.too_large),
        (vec![A.into(), B.into()], vec![])
    );
    // Too long for A: it goes to B only, even when A was the relay asked for.
    let big = p.publish_plan("app", Some(A), 1001, WALL);
    assert_eq!(big.targets, vec![B.to_owned()]);
    assert_eq!(big.too_large, vec![A.to_owned()]);
    let states = p.states(WALL);
    let state = |u: &str| states.iter().find(|s| s.url == u).expect("listed").clone();
    assert_eq!(state(A).events_too_large, 1);
    assert_eq!(state(A).read_only, None);
    assert_eq!(
        state(c).read_only,
        Some(super::super::rules::ReadOnly::PaymentRequired)
    );
    assert_eq!(state(c).state, RelayPhase::Connected, "kept for reading");
}
