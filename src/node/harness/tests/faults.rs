//! Faults: lossy and reordering relays, failing ICE, black holes, bad input, and the seeded fault schedules.

use super::*;

#[test]
fn the_same_seed_gives_the_same_run() {
    let run = |seed| {
        let mut net = Net::new(seed, 4);
        net.faults.relay_loss = 0.2;
        net.faults.relay_delay = (Duration::ZERO, SEC);
        for i in 0..4 {
            net.join(i, "r", plain());
        }
        assert!(net.run_until(300 * SEC, |n| converged(n, "r", &all(4))));
        everyone_hears_everyone(&mut net, "r", &all(4), "d");
        (net.trace(), net.relay_lost, net.elapsed())
    };
    assert_eq!(run(21), run(21));
    assert_ne!(
        run(21).0,
        run(22).0,
        "two seeds, one schedule: the seed is not used"
    );
}

#[test]
fn lost_relay_events_delay_joins_but_never_strand_them() {
    for seed in 0..10 {
        let mut net = Net::new(seed, 4);
        net.faults.relay_loss = 0.2;
        for i in 0..4 {
            net.join(i, "r", plain());
        }
        let ok = net.run_until(600 * SEC, |n| converged(n, "r", &all(4)));
        eprintln!("seed {seed}: {:?}", net.elapsed());
        assert!(
            ok,
            "seed {seed}: stuck with a fifth of the relay events lost ({} lost)",
            net.relay_lost
        );
        everyone_hears_everyone(&mut net, "r", &all(4), "lossy");
    }
}

#[test]
fn reordered_and_late_relay_events_still_join() {
    for seed in 0..10 {
        let mut net = Net::new(seed, 4);
        net.faults.relay_delay = (Duration::ZERO, 3 * SEC);
        for i in 0..4 {
            net.join(i, "r", plain());
        }
        let ok = net.run_until(120 * SEC, |n| converged(n, "r", &all(4)));
        assert!(ok, "seed {seed}: no convergence with reordered signaling");
    }
}

#[test]
fn failed_ice_is_retried_until_the_link_comes_up() {
    let mut failed = 0;
    for seed in 0..10 {
        let mut net = Net::new(seed, 3);
        net.faults.ice_fail = 0.6;
        for i in 0..3 {
            net.join(i, "r", plain());
        }
        let ok = net.run_until(240 * SEC, |n| converged(n, "r", &all(3)));
        assert!(ok, "seed {seed}: a failed connection was never retried");
        failed += (0..3)
            .map(|i| net.nodes[i].core.drops(DropReason::DialFailed))
            .sum::<u64>();
    }
    assert!(failed > 0, "the fault never fired");
}

#[test]
fn a_black_holed_link_times_out_and_comes_back_when_the_path_heals() {
    let mut net = mesh(31, 2, "r");
    net.blackhole(0, 1);
    let ok = net.run_until(60 * SEC, |n| {
        n.nodes[0].joined("r").is_empty() && n.nodes[1].joined("r").is_empty()
    });
    assert!(ok, "a silent link was never declared dead");
    assert!(net.nodes[0].core.drops(DropReason::LinkTimeout) >= 1);
    net.heal(0, 1);
    let ok = net.run_until(120 * SEC, |n| converged(n, "r", &[0, 1]));
    assert!(ok, "no new link once the path healed");
    everyone_hears_everyone(&mut net, "r", &[0, 1], "healed");
}

#[test]
fn malformed_frames_are_counted_and_lose_nothing_else() {
    let mut net = mesh(43, 2, "r");
    for junk in [&b""[..], b"\xff\xff\xff", b"not a frame at all, just text"] {
        assert!(net.inject_frame(1, 0, bytes::Bytes::copy_from_slice(junk)));
    }
    net.run_for(SEC);
    let c = &net.nodes[0].core;
    assert!(c.drops(DropReason::FrameMalformed) + c.drops(DropReason::FrameUnknownRoom) >= 3);
    assert!(converged(&net, "r", &[0, 1]));
    everyone_hears_everyone(&mut net, "r", &[0, 1], "after junk");
}

#[test]
fn bad_relay_events_are_counted_and_lose_nothing_else() {
    let mut net = mesh(44, 2, "r");
    let topic = net.nodes[0].topics.iter().next().cloned().expect("a topic");
    let pubkey = [7u8; 32];
    let junk = |topic: &str, content: &str| crate::signal::driver::Incoming {
        relay: "ws://harness".into(),
        topic: topic.into(),
        content: content.into(),
        pubkey,
    };
    net.inject_relay(0, junk("no-such-topic", "{}"));
    net.inject_relay(0, junk(&topic, "not json"));
    net.inject_relay(0, junk(&topic, r#"{"peerId":"bad id"}"#));
    let c = &net.nodes[0].core;
    assert_eq!(c.drops(DropReason::EventUnknownTopic), 1);
    assert_eq!(c.drops(DropReason::EventBadContent), 2);
    everyone_hears_everyone(&mut net, "r", &[0, 1], "after junk");
}

/// One random fault schedule: staggered joins, lossy and reordering relays, failing ICE, a
/// restart, a leave and rejoin, a black-holed pair; then the faults stop.
fn chaos(seed: u64) -> Net {
    use rand::{Rng as _, SeedableRng as _};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed);
    let n = 3 + (seed % 3) as usize;
    let mut net = Net::new(seed, n);
    net.faults.relay_loss = rng.gen_range(0.0..0.3);
    net.faults.relay_delay = (
        Duration::ZERO,
        Duration::from_millis(rng.gen_range(10..1500)),
    );
    net.faults.ice_fail = rng.gen_range(0.0..0.3);
    for i in 0..n {
        net.join(i, "r", plain());
        net.run_for(Duration::from_millis(rng.gen_range(0..2000)));
    }
    for _ in 0..4 {
        net.run_for(Duration::from_millis(rng.gen_range(0..5000)));
        let i = rng.gen_range(0..n);
        match rng.gen_range(0..4) {
            0 => {
                net.restart(i);
                net.join(i, "r", plain());
            }
            1 => {
                net.leave(i, "r");
                net.run_for(Duration::from_millis(rng.gen_range(0..3000)));
                net.join(i, "r", plain());
            }
            2 => {
                let j = (i + 1 + rng.gen_range(0..n - 1)) % n;
                net.blackhole(i, j);
                net.run_for(Duration::from_millis(rng.gen_range(0..20_000)));
                net.heal(i, j);
            }
            _ => net.relay_up(i),
        }
    }
    net.faults = crate::node::harness::Faults::default();
    net
}

#[test]
fn two_hundred_fault_schedules_lose_no_message_and_strand_no_join() {
    let seeds: Vec<u64> = match std::env::var("MESHRTC_HARNESS_SEED") {
        Ok(s) => vec![s.parse().expect("MESHRTC_HARNESS_SEED is a number")],
        Err(_) => (0..200).collect(),
    };
    for seed in seeds {
        let mut net = chaos(seed);
        let n = net.nodes.len();
        let ok = net.run_until(240 * SEC, |net| converged(net, "r", &all(n)));
        assert!(
            ok,
            "seed {seed} (replay: MESHRTC_HARNESS_SEED={seed}): stuck join; joined: {:?}",
            (0..n)
                .map(|i| net.nodes[i].joined("r").len())
                .collect::<Vec<_>>()
        );
        everyone_hears_everyone(&mut net, "r", &all(n), &format!("seed {seed}"));
        // Everything settles: one link per pair, no attempt left hanging.
        net.run_for(40 * SEC);
        for i in 0..n {
            assert_eq!(net.links_of(i).len(), n - 1, "seed {seed} node {i}: links");
            assert_eq!(
                net.nodes[i].core.pending_conns(),
                0,
                "seed {seed} node {i}: {:?}",
                net.nodes[i].core.describe_pending()
            );
        }
    }
}

#[test]
fn behind_a_symmetric_nat_the_next_attempt_goes_through_turn_only() {
    // Only relayed paths work: the first attempt fails, then both ends retry relay-only.
    let mut net = Net::with_turn(90, 2);
    net.direct_blocked = true;
    for i in 0..2 {
        net.join(i, "r", plain());
    }
    assert!(
        net.run_until(60 * SEC, |n| converged(n, "r", &[0, 1])),
        "never connected through TURN"
    );
    assert!(
        net.nodes
            .iter()
            .all(|n| n.core.drops(DropReason::DialFailed) >= 1)
    );

    // When the direct attempt neither opens nor fails (the engine would say so after 15 s),
    // both ends give it up after a few seconds of ICE checks.
    let mut net = Net::with_turn(92, 2);
    net.direct_blocked = true;
    net.direct_hangs = true;
    for i in 0..2 {
        net.join(i, "r", plain());
    }
    assert!(
        net.run_until(12 * SEC, |n| converged(n, "r", &[0, 1])),
        "a hanging direct attempt held the link back"
    );
    println!(
        "through TURN after a hanging direct attempt: {:?}",
        net.elapsed()
    );
    assert!(
        net.nodes
            .iter()
            .all(|n| n.core.drops(DropReason::DirectPathTimeout) >= 1)
    );

    // Without TURN servers there is nothing to fall back to.
    let mut net = Net::new(91, 2);
    net.direct_blocked = true;
    for i in 0..2 {
        net.join(i, "r", plain());
    }
    assert!(!net.run_until(60 * SEC, |n| converged(n, "r", &[0, 1])));
}

/// The node's rooms share one reassembly budget: a peer's partial messages in one room fill it,
/// the next room's message over it is dropped and counted, the first room's message still
/// completes, and the second room goes on.
#[test]
fn partial_messages_share_one_budget_across_the_rooms() {
    let mut net = Net::with_config(48, 2, |c| c.reassembly_budget = 100_000);
    for room in ["a", "b"] {
        for i in 0..2 {
            net.join(i, room, plain());
        }
    }
    assert!(net.run_until(30 * SEC, |n| converged(n, "a", &[0, 1])
        && converged(n, "b", &[0, 1])));
    let to = net.nodes[0].id();
    let big = crate::wire::Payload::Binary(bytes::Bytes::from(vec![9u8; 60_000]));
    let mut frames = |room: &str| {
        net.nodes[1]
            .core
            .hook_frames(crate::node::harness::APP, room, &to, "file", &big)
            .expect("a link")
            .1
    };
    let (mut a, b) = (frames("a"), frames("b"));
    let last = a.pop().expect("chunks");
    for f in a.into_iter().chain(b) {
        assert!(net.inject_frame(1, 0, f));
    }
    net.run_for(SEC);
    assert!(
        net.nodes[0].core.drops(DropReason::ReassemblyNodeFull) >= 1,
        "room b's message fit beside room a's in 100 kB"
    );
    assert!(net.inject_frame(1, 0, last));
    net.run_for(SEC);
    let files: Vec<usize> = net.nodes[0]
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Message {
                channel,
                payload: crate::wire::Payload::Binary(b),
                ..
            } if channel == "file" => Some(b.len()),
            _ => None,
        })
        .collect();
    assert_eq!(
        files,
        vec![60_000],
        "room a's message, and only it, arrived"
    );
    everyone_hears_everyone(&mut net, "b", &[0, 1], "after the budget");
}
