//! Cells rooms: bridge kills, late census entries, newcomers, bounded links.

use super::*;

#[test]
fn a_bridge_kill_in_a_16_node_cells_room_loses_no_broadcast() {
    let n = 16;
    let mut net = Net::new(11, n);
    for i in 0..n {
        net.join(i, "big", cells(4));
    }
    net.run_for(30 * SEC);
    for round in 0..3 {
        let from = round;
        net.send(from, "big", "chat", &format!("before {round}"));
    }
    net.run_for(3 * SEC);
    let victim = 5;
    net.kill(victim);
    net.run_for(SEC / 10);
    for round in 0..5 {
        let from = (round * 3 + 1) % n;
        if from == victim {
            continue;
        }
        net.send(from, "big", "chat", &format!("after {round}"));
    }
    net.run_for(20 * SEC);
    for i in (0..n).filter(|&i| i != victim) {
        for round in 0..3 {
            let from = net.nodes[round].id();
            if i == round {
                continue;
            }
            assert_eq!(
                count_from(&net.nodes[i], "chat", &from, &format!("before {round}")),
                1,
                "node {i}, before {round}"
            );
        }
        for round in 0..5 {
            let j = (round * 3 + 1) % n;
            if j == victim || j == i {
                continue;
            }
            let from = net.nodes[j].id();
            assert_eq!(
                count_from(&net.nodes[i], "chat", &from, &format!("after {round}")),
                1,
                "node {i}, after {round}"
            );
        }
    }
}

#[test]
fn a_peer_joined_before_the_census_heard_it_is_routed_to_once_heard() {
    // Two nodes already linked through a plain room join a cells room over that link; `b`
    // does not hear `a`'s announces yet, so `a` is joined in the cells room but missing from
    // b's census. When `a` is heard, b's overlay must route over the link it already has.
    let mut net = Net::new(34, 2);
    let (a, b) = (0, 1);
    net.join(a, "p", plain());
    net.join(b, "p", plain());
    assert!(
        net.run_until(30 * SEC, |n| converged(n, "p", &[0, 1])),
        "no link"
    );
    net.block_announces(a, b, true);
    net.join(a, "c", cells(8));
    net.join(b, "c", cells(8));
    assert!(
        net.run_until(30 * SEC, |n| converged(n, "c", &[0, 1])),
        "no join over the link"
    );
    net.run_for(5 * SEC);
    net.send(b, "c", "chat", "unrouted");
    net.run_for(3 * SEC);
    let from = net.nodes[b].id();
    assert_eq!(
        count_from(&net.nodes[a], "chat", &from, "unrouted"),
        0,
        "the precondition failed: b knew a"
    );
    net.block_announces(a, b, false);
    // The next announce of `a` (at most a minute away) puts it in b's census.
    net.run_for(70 * SEC);
    assert_eq!(
        net.links_of(b),
        vec![a],
        "the link was replaced, not reused"
    );
    net.send(b, "c", "chat", "routed");
    net.run_for(3 * SEC);
    assert_eq!(count_from(&net.nodes[a], "chat", &from, "routed"), 1);
}

#[test]
fn a_newcomer_to_a_settled_cells_room_hears_broadcasts() {
    let n = 12;
    let mut net = Net::new(35, n);
    for i in 0..n - 1 {
        net.join(i, "c", cells(4));
    }
    net.run_for(30 * SEC);
    net.join(n - 1, "c", cells(4));
    net.run_for(15 * SEC);
    net.send(0, "c", "chat", "welcome");
    net.run_for(5 * SEC);
    let from = net.nodes[0].id();
    for i in 1..n {
        assert_eq!(
            count_from(&net.nodes[i], "chat", &from, "welcome"),
            1,
            "node {i}"
        );
    }
}

#[test]
fn a_cells_room_keeps_links_per_node_bounded() {
    let n = 24;
    let mut net = Net::new(36, n);
    for i in 0..n {
        net.join(i, "c", cells(4));
    }
    net.run_for(60 * SEC);
    for i in 0..n {
        let links = net.links_of(i).len();
        assert!(
            links < n - 1,
            "node {i} links to {links} of {} peers: not a cellular mesh",
            n - 1
        );
        assert!((1..=12).contains(&links), "node {i}: {links} links");
    }
    net.send(3, "c", "chat", "all");
    net.run_for(5 * SEC);
    let from = net.nodes[3].id();
    for i in (0..n).filter(|&i| i != 3) {
        assert_eq!(
            count_from(&net.nodes[i], "chat", &from, "all"),
            1,
            "node {i}"
        );
    }
}

fn auto_cells() -> JoinOptions {
    JoinOptions {
        cells: Some(CellSize::default()),
        ..JoinOptions::default()
    }
}

#[test]
fn a_quarter_of_a_32_node_cells_room_killed_at_once_loses_no_later_broadcast() {
    // Killing 8 of 32 can take both bridge pairs of a cell edge: until the census drops the
    // dead and the topology heals, frames cannot cross it. They must arrive late, not never.
    use rand::seq::SliceRandom;
    let n = 32;
    for seed in 0..8u64 {
        let mut net = Net::new(100 + seed, n);
        for i in 0..n {
            net.join(i, "big", auto_cells());
        }
        net.run_for(30 * SEC);
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed));
        let (victims, survivors) = order.split_at(8);
        for &v in victims {
            net.kill(v);
        }
        net.run_for(2 * SEC);
        let senders: Vec<usize> = survivors[..5].to_vec();
        for (round, &from) in senders.iter().enumerate() {
            net.send(from, "big", "chat", &format!("after {round}"));
        }
        net.run_for(30 * SEC);
        let mut missing = Vec::new();
        for &i in survivors {
            for (round, &j) in senders.iter().enumerate() {
                if i == j {
                    continue;
                }
                let from = net.nodes[j].id();
                if count_from(&net.nodes[i], "chat", &from, &format!("after {round}")) != 1 {
                    missing.push((i, round));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "seed {seed}: (survivor, broadcast) missing: {missing:?}"
        );
    }
}
