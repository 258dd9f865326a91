//! Links and joins: the duplicate-link race, restarts, probes, leaves, shared links.

use super::*;

#[test]
fn two_nodes_join_and_talk() {
    let mut net = mesh(1, 2, "r");
    everyone_hears_everyone(&mut net, "r", &[0, 1], "hello");
    assert!(net.elapsed() < 10 * SEC);
}

#[test]
fn five_nodes_form_a_full_mesh() {
    let mut net = mesh(2, 5, "r");
    for i in 0..5 {
        assert_eq!(net.links_of(i).len(), 4, "node {i}");
    }
    everyone_hears_everyone(&mut net, "r", &all(5), "m");
}

#[test]
fn a_late_joiner_is_found_and_joined() {
    let mut net = Net::new(3, 4);
    for i in 0..3 {
        net.join(i, "r", plain());
    }
    assert!(net.run_until(30 * SEC, |n| converged(n, "r", &[0, 1, 2])));
    // Well past the join burst: the newcomer's own announces must bring the room to it.
    net.run_for(90 * SEC);
    let t = net.elapsed();
    net.join(3, "r", plain());
    assert!(net.run_until(30 * SEC, |n| converged(n, "r", &all(4))));
    assert!(
        net.elapsed() - t < 5 * SEC,
        "late join took {:?}",
        net.elapsed() - t
    );
    everyone_hears_everyone(&mut net, "r", &all(4), "late");
}

#[test]
fn both_sides_dialing_in_two_rooms_converge_on_one_link() {
    for seed in 0..20 {
        let mut net = Net::new(seed, 2);
        // Two rooms of one app share a link: each room's signaling dials, and both connect.
        net.join(0, "a", plain());
        net.join(0, "b", plain());
        net.join(1, "a", plain());
        net.join(1, "b", plain());
        let ok = net.run_until(30 * SEC, |n| {
            converged(n, "a", &[0, 1]) && converged(n, "b", &[0, 1])
        });
        assert!(ok, "seed {seed}: rooms did not converge");
        net.run_for(40 * SEC);
        assert_eq!(net.links_of(0), vec![1], "seed {seed}");
        assert_eq!(net.links_of(1), vec![0], "seed {seed}");
        for i in 0..2 {
            let c = &net.nodes[i].core;
            assert_eq!(
                c.pending_conns(),
                0,
                "seed {seed} node {i}: {:?} drops {:?}",
                c.describe_pending(),
                c.status().drops
            );
        }
        assert!(converged(&net, "a", &[0, 1]) && converged(&net, "b", &[0, 1]));
        everyone_hears_everyone(&mut net, "a", &[0, 1], "in a");
        everyone_hears_everyone(&mut net, "b", &[0, 1], "in b");
    }
}

#[test]
fn attempts_left_over_from_a_join_burst_close_soon_after_the_link() {
    // Four rooms of one app on each side: every room's signaling dials, the first link wins, and
    // each side closes the other's unopened attempts as new offers come in. The attempts that
    // side never heard back about must not linger (a real engine would retry ICE for 20 s).
    for seed in 0..20 {
        let mut net = Net::new(seed, 2);
        for room in ["a", "b", "c", "d"] {
            net.join(0, room, plain());
            net.join(1, room, plain());
        }
        let ok = net.run_until(30 * SEC, |n| {
            ["a", "b", "c", "d"]
                .iter()
                .all(|r| converged(n, r, &[0, 1]))
        });
        assert!(ok, "seed {seed}: rooms did not converge");
        net.run_for(8 * SEC);
        for i in 0..2 {
            let c = &net.nodes[i].core;
            assert_eq!(
                c.pending_conns(),
                0,
                "seed {seed} node {i}: {:?}",
                c.describe_pending()
            );
        }
        assert_eq!(net.links_of(0), vec![1], "seed {seed}");
        everyone_hears_everyone(&mut net, "d", &[0, 1], "after");
    }
}

#[test]
fn a_restarted_peer_is_detected_and_replaced() {
    for seed in 0..10 {
        let mut net = mesh(seed, 3, "r");
        net.restart(2);
        net.join(2, "r", plain());
        let ok = net.run_until(30 * SEC, |n| converged(n, "r", &all(3)));
        assert!(ok, "seed {seed}: the restarted node was not joined again");
        everyone_hears_everyone(&mut net, "r", &all(3), "after restart");
        let replaced: u64 = (0..2)
            .map(|i| {
                let c = &net.nodes[i].core;
                c.drops(DropReason::LinkReplaced) + c.drops(DropReason::LinkTimeout)
            })
            .sum();
        assert!(
            replaced >= 1,
            "seed {seed}: the old links were never replaced"
        );
    }
}

fn is_presence(frame: &[u8]) -> bool {
    matches!(OuterFrame::decode(frame), Ok(OuterFrame::Presence { .. }))
}

#[test]
fn a_peer_whose_presence_never_arrives_still_joins_on_its_handshake() {
    // A browser may tie the connection to the room late: its presence frame is lost to us and
    // its handshake data comes first.
    for seed in 0..10 {
        let mut net = Net::new(seed, 2);
        net.filter_frames(1, 0, is_presence);
        net.join(0, "r", plain());
        net.join(1, "r", plain());
        let ok = net.run_until(30 * SEC, |n| converged(n, "r", &[0, 1]));
        assert!(ok, "seed {seed}: no join without presence");
        everyone_hears_everyone(&mut net, "r", &[0, 1], "x");
    }
}

#[test]
fn a_killed_peer_leaves_by_timeout_and_the_rest_keep_talking() {
    let mut net = mesh(7, 4, "r");
    let dead = net.nodes[3].id();
    net.kill(3);
    let ok = net.run_until(60 * SEC, |n| {
        (0..3).all(|i| !n.nodes[i].joined("r").contains(&dead))
    });
    assert!(ok, "the dead peer was never dropped");
    for i in 0..3 {
        let left = net.nodes[i].events.iter().any(
            |e| matches!(&e.kind, EventKind::PeerLeave(p, LeaveReason::Timeout) if *p == dead),
        );
        assert!(left, "node {i} saw no timeout leave");
    }
    everyone_hears_everyone(&mut net, "r", &[0, 1, 2], "after kill");
}

#[test]
fn a_leave_is_seen_at_once_and_the_idle_link_closes() {
    let mut net = mesh(8, 2, "r");
    net.leave(1, "r");
    net.run_for(SEC);
    assert!(net.nodes[0].joined("r").is_empty());
    let left = net.nodes[0]
        .events
        .iter()
        .any(|e| matches!(&e.kind, EventKind::PeerLeave(_, LeaveReason::Leave)));
    assert!(left);
    net.run_for(10 * SEC);
    assert!(net.links_of(0).is_empty(), "idle link kept");
    assert!(net.links_of(1).is_empty(), "idle link kept");
}

#[test]
fn a_re_announce_from_a_live_peer_is_probed_and_the_link_kept() {
    let mut net = mesh(32, 2, "r");
    net.run_for(5 * SEC);
    let links_before = net.nodes[0].core.status().links;
    // Node 1's relay reconnects: it announces again, and node 0 must check, not tear down.
    net.relay_up(1);
    net.run_for(10 * SEC);
    assert_eq!(net.nodes[0].core.status().links, links_before);
    let left = net.nodes[0]
        .events
        .iter()
        .any(|e| matches!(e.kind, EventKind::PeerLeave(..)));
    assert!(!left, "a live peer was dropped after re-announcing");
    assert_eq!(net.nodes[0].core.drops(DropReason::LinkTimeout), 0);
}

#[test]
fn a_restart_is_noticed_by_the_probe_long_before_the_watchdog() {
    let mut net = mesh(33, 2, "r");
    let t = net.elapsed();
    net.restart(1);
    net.join(1, "r", plain());
    let id1 = net.nodes[1].id();
    let ok = net.run_until(60 * SEC, |n| {
        n.nodes[0]
            .events
            .iter()
            .any(|e| matches!(&e.kind, EventKind::PeerLeave(p, _) if *p == id1))
    });
    assert!(ok);
    let took = net.elapsed() - t;
    let dead_after = crate::node::harness::core_config().dead_after;
    assert!(
        took < dead_after,
        "restart noticed after {took:?}, the watchdog alone takes {dead_after:?}"
    );
}

#[test]
fn overlapping_rooms_share_one_link_per_pair() {
    let mut net = Net::new(37, 4);
    for (i, rooms) in [
        vec!["a", "b"],
        vec!["a", "c"],
        vec!["b", "c"],
        vec!["a", "b", "c"],
    ]
    .iter()
    .enumerate()
    {
        for r in rooms {
            net.join(i, r, plain());
        }
    }
    let ok = net.run_until(60 * SEC, |n| {
        converged(n, "a", &[0, 1, 3])
            && converged(n, "b", &[0, 2, 3])
            && converged(n, "c", &[1, 2, 3])
    });
    assert!(ok);
    net.run_for(40 * SEC);
    for i in 0..4 {
        assert_eq!(
            net.links_of(i).len(),
            3,
            "node {i}: one link per peer it shares a room with"
        );
        assert_eq!(net.nodes[i].core.pending_conns(), 0);
    }
    everyone_hears_everyone(&mut net, "a", &[0, 1, 3], "a");
    everyone_hears_everyone(&mut net, "c", &[1, 2, 3], "c");
}

#[test]
fn leaving_one_room_keeps_the_link_another_room_uses() {
    let mut net = Net::new(38, 2);
    for r in ["a", "b"] {
        net.join(0, r, plain());
        net.join(1, r, plain());
    }
    assert!(net.run_until(30 * SEC, |n| converged(n, "a", &[0, 1])
        && converged(n, "b", &[0, 1])));
    net.leave(1, "a");
    net.run_for(20 * SEC);
    assert!(net.nodes[0].joined("a").is_empty());
    assert!(converged(&net, "b", &[0, 1]));
    assert_eq!(net.links_of(0), vec![1]);
    everyone_hears_everyone(&mut net, "b", &[0, 1], "still");
}

#[test]
fn leave_and_rejoin_is_seen_as_leave_then_join() {
    let mut net = mesh(39, 2, "r");
    net.leave(1, "r");
    net.run_for(SEC);
    net.join(1, "r", plain());
    assert!(net.run_until(30 * SEC, |n| converged(n, "r", &[0, 1])));
    let id1 = net.nodes[1].id();
    let kinds: Vec<&str> = net.nodes[0]
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::PeerJoin(p, ..) if *p == id1 => Some("join"),
            EventKind::PeerLeave(p, _) if *p == id1 => Some("leave"),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, ["join", "leave", "join"]);
    everyone_hears_everyone(&mut net, "r", &[0, 1], "back");
}

#[test]
fn leaving_while_dials_are_in_flight_leaves_nothing_pending() {
    for seed in 0..10 {
        let mut net = Net::new(seed, 3);
        for i in 0..3 {
            net.join(i, "r", plain());
        }
        net.run_for(Duration::from_millis(20 + seed * 7));
        net.leave(0, "r");
        net.run_for(60 * SEC);
        assert_eq!(net.nodes[0].core.pending_conns(), 0, "seed {seed}");
        assert!(
            net.links_of(0).is_empty(),
            "seed {seed}: node 0 kept {:?}",
            net.links_of(0)
        );
        assert!(converged(&net, "r", &[1, 2]), "seed {seed}");
        for i in 1..3 {
            assert_eq!(net.nodes[i].core.pending_conns(), 0, "seed {seed} node {i}");
        }
    }
}

#[test]
fn the_last_leave_unsubscribes_and_idle_links_close() {
    let mut net = mesh(50, 2, "r");
    net.leave(0, "r");
    assert!(
        net.nodes[0].topics.is_empty(),
        "still subscribed after the last leave"
    );
    net.run_for(10 * SEC);
    assert!(net.links_of(0).is_empty() && net.links_of(1).is_empty());
    assert_eq!(net.nodes[0].core.status().rooms.len(), 0);
}

/// Peers whose link from node `i` has its send window open wide.
fn wide_peers(net: &Net, i: usize) -> BTreeSet<String> {
    let core = &net.nodes[i].core;
    net.nodes[i]
        .wide
        .iter()
        .filter_map(|c| core.conn_peer(*c).map(str::to_owned))
        .collect()
}

/// A frame carrying meshrtc capabilities (`@_mrcaps`).
fn is_caps(frame: &[u8]) -> bool {
    let Ok(OuterFrame::Data { chunk, .. }) = OuterFrame::decode(frame) else {
        return false;
    };
    crate::wire::chunk::ActionChunk::decode(chunk)
        .is_ok_and(|c| c.action == crate::room::ACTION_CAPS)
}

#[test]
fn links_between_daemons_open_their_send_windows_once() {
    let mut net = mesh(31, 3, "r");
    net.join(0, "r2", plain());
    net.join(1, "r2", plain());
    net.run_for(2 * SEC);
    for i in 0..3 {
        let linked: BTreeSet<String> = (0..3)
            .filter(|&j| j != i)
            .map(|j| net.nodes[j].id())
            .collect();
        assert_eq!(wide_peers(&net, i), linked, "node {i}");
        assert_eq!(
            net.nodes[i].wide.len(),
            2,
            "node {i}: a window opened twice"
        );
    }
}

#[test]
fn a_peer_that_sends_no_capabilities_keeps_the_narrow_window() {
    // Node 1 plays a Trystero page: nothing it sends carries @_mrcaps.
    let mut net = Net::new(32, 2);
    net.filter_frames(1, 0, is_caps);
    net.join(0, "r", plain());
    net.join(1, "r", plain());
    assert!(net.run_until(30 * SEC, |n| converged(n, "r", &[0, 1])));
    net.run_for(SEC);
    assert!(wide_peers(&net, 0).is_empty());
    assert_eq!(wide_peers(&net, 1), BTreeSet::from([net.nodes[0].id()]));
    everyone_hears_everyone(&mut net, "r", &[0, 1], "narrow");
}

/// The engine can hand over the peer's first frames (presence, handshake) before it reports the
/// channel open. They wait for the open instead of being dropped, and the join completes as soon
/// as the channel is open, with nothing counted as stale.
#[test]
fn frames_that_come_before_the_open_wait_for_it_and_the_join_completes() {
    for late in [0, 1] {
        let mut net = Net::new(61 + late as u64, 2);
        net.open_reported_late.insert(late);
        net.join(0, "r", plain());
        net.join(1, "r", plain());
        assert!(
            net.run_until(10 * SEC, |n| converged(n, "r", &[0, 1])),
            "no join with node {late}'s open reported late"
        );
        let core = &net.nodes[late].core;
        assert_eq!(
            core.drops(DropReason::FrameStaleLink),
            0,
            "early frames dropped"
        );
        assert_eq!(core.drops(DropReason::FrameEarlyOverflow), 0);
        everyone_hears_everyone(&mut net, "r", &[0, 1], "after a late open");
    }
}
