//! Cells rooms: bridge kills, late census entries, newcomers, bounded links.

use super::*;
use crate::wire::cell::CellFrame;

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
fn a_peer_whose_announces_never_arrive_is_learnt_from_its_record_and_routed_to() {
    // Two nodes already linked through a plain room join a cells room over that link; `b`
    // never hears `a`'s announces. `a` knows `b`, so the link is an overlay link on its side:
    // the roster swap over it brings `a`'s signed record to `b`, which then routes over the
    // link it already has, without waiting for an announce.
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
    net.send(b, "c", "chat", "routed");
    net.run_for(3 * SEC);
    let from = net.nodes[b].id();
    assert_eq!(count_from(&net.nodes[a], "chat", &from, "routed"), 1);
    assert_eq!(
        net.links_of(b),
        vec![a],
        "the link was replaced, not reused"
    );
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
fn a_quarter_or_a_third_of_a_32_node_cells_room_killed_at_once_loses_no_later_broadcast() {
    // Killing 8 of 32 can take both bridge pairs of a cell edge: until the census drops the
    // dead and the topology heals, frames cannot cross it. They must arrive late, not never.
    use rand::seq::SliceRandom;
    let n = 32;
    for (seed, kills) in (0..6u64).map(|s| (s, 8)).chain((6..12u64).map(|s| (s, 10))) {
        let mut net = Net::new(100 + seed, n);
        for i in 0..n {
            net.join(i, "big", auto_cells());
        }
        net.run_for(30 * SEC);
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed));
        let (victims, survivors) = order.split_at(kills);
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
            "seed {seed}, {kills} killed: (survivor, broadcast) missing: {missing:?}"
        );
    }
}

/// Members of the topology node `i` has in force in `room`.
fn members(net: &Net, i: usize, room: &str) -> u32 {
    net.nodes[i]
        .core
        .status()
        .rooms
        .iter()
        .find(|r| r.room == room)
        .and_then(|r| r.cells.as_ref())
        .map_or(0, |c| c.members)
}

#[test]
fn a_newcomer_to_a_settled_100_node_room_has_the_roster_from_its_first_links() {
    let n = 100;
    let mut net = Net::new(40, n + 1);
    for i in 0..n {
        net.join(i, "big", auto_cells());
    }
    assert!(
        net.run_until(60 * SEC, |net| (0..n)
            .all(|i| members(net, i, "big") == n as u32)),
        "the room never settled"
    );
    net.run_for(70 * SEC);
    let newcomer = n;
    let joined_at = net.elapsed();
    net.join(newcomer, "big", auto_cells());
    assert!(net.run_until(30 * SEC, |net| !net.links_of(newcomer).is_empty()));
    let first_link = net.elapsed();
    let full = net.run_until(10 * SEC, |net| {
        (0..=n).all(|i| members(net, i, "big") == n as u32 + 1)
    });
    let roster_at = net.elapsed();
    println!(
        "newcomer: first link {:?} after join, every roster complete {:?} after it",
        first_link - joined_at,
        roster_at - first_link
    );
    assert!(full, "not every node knew all {} members", n + 1);
    assert!(roster_at - first_link <= 5 * SEC);
    net.send(7, "big", "chat", "welcome");
    net.run_for(3 * SEC);
    let from = net.nodes[7].id();
    assert_eq!(
        count_from(&net.nodes[newcomer], "chat", &from, "welcome"),
        1
    );
}

#[test]
fn nodes_joining_one_after_another_all_know_the_whole_room_soon_after_the_last() {
    // Early joiners hear later ones' announces; later ones would hear early ones only at their
    // next announce (a minute) without the roster swap over links.
    let n = 96;
    let mut net = Net::new(41, n);
    for i in 0..n {
        net.join(i, "big", auto_cells());
        net.run_for(SEC / 4);
    }
    let last = net.elapsed();
    let full = net.run_until(30 * SEC, |net| {
        (0..n).all(|i| members(net, i, "big") == n as u32)
    });
    println!(
        "every roster complete {:?} after the last join",
        net.elapsed() - last
    );
    assert!(full && net.elapsed() - last <= 10 * SEC);
}

/// Node `from` puts a raw roster message on its link to node `to`.
fn inject_roster(net: &mut Net, from: usize, to: usize, bytes: Vec<u8>) {
    let peer = net.nodes[to].id();
    let (_, frames) = net.nodes[from]
        .core
        .hook_frames(
            crate::node::harness::APP,
            "big",
            &peer,
            crate::room::ACTION_ROSTER,
            &crate::wire::Payload::Binary(bytes::Bytes::from(bytes)),
        )
        .expect("a link");
    for f in frames {
        assert!(net.inject_frame(from, to, f));
    }
}

/// Node `from` claims to hold far more records than node `to`, so `to` asks it for them, and
/// sends `records` as the answer.
fn solicited(
    net: &mut Net,
    from: usize,
    to: usize,
    records: Vec<crate::wire::roster::RosterRecord>,
) {
    use crate::wire::roster::{BUCKETS, Bucket, RosterMsg};
    let lure = RosterMsg::Digest {
        reply: true,
        buckets: Box::new(
            [Bucket {
                count: 10_000,
                fingerprint: 1,
            }; BUCKETS],
        ),
    };
    // Both ride the same link in order: the page arrives right after the request it answers
    // went out, before the peer's own answer can.
    inject_roster(net, from, to, lure.encode());
    let page = RosterMsg::Records { done: 0, records };
    inject_roster(net, from, to, page.encode());
}

#[test]
fn forged_replayed_foreign_and_unasked_roster_records_are_counted_and_change_nothing() {
    use crate::wire::roster::{RosterMsg, RosterRecord};
    let n = 3;
    let mut net = Net::new(42, n);
    for i in 0..n {
        net.join(i, "big", auto_cells());
    }
    assert!(net.run_until(30 * SEC, |net| converged(net, "big", &[0, 1, 2])));
    // Let the members' own roster rounds finish: records inside one would be asked for.
    net.run_for(5 * SEC);
    let salt = net.nodes[1]
        .core
        .cell_salt(crate::node::harness::APP, "big")
        .expect("cells room");
    let stranger = nostr_sdk::Keys::generate();
    let good = RosterRecord::sign(&stranger, &salt, 1_700_000_000);
    let mut altered = good;
    altered.issued += 1;
    let foreign = RosterRecord::sign(&nostr_sdk::Keys::generate(), b"another room", 1_700_000_000);
    let future = RosterRecord::sign(&nostr_sdk::Keys::generate(), &salt, u64::MAX / 2);
    // Records nobody asked for: a flood is refused before any signature is checked.
    for _ in 0..3 {
        let flood = RosterMsg::Records {
            done: 0,
            records: vec![good; 100],
        };
        inject_roster(&mut net, 0, 1, flood.encode());
    }
    net.run_for(SEC);
    assert_eq!(net.nodes[1].core.drops(DropReason::RosterUnrequested), 3);
    assert_eq!(
        members(&net, 1, "big"),
        3,
        "unasked records changed the roster"
    );
    // Asked for, but forged, foreign or dated in the future.
    solicited(&mut net, 0, 1, vec![altered, foreign, future]);
    inject_roster(&mut net, 0, 1, vec![3, 1, 2]);
    // A hello that speaks for another key: a member cannot inject someone else's record.
    let mut body = vec![crate::node::cells::NOTICE_RECORD];
    good.encode(&mut body);
    let wall = 1_700_000_000_000_000 + net.elapsed().as_micros() as u64;
    let hello = crate::wire::cell::CellFrame::sign(
        &net.nodes[0].keys,
        &salt,
        wall,
        4,
        Vec::new(),
        bytes::Bytes::from(body),
    );
    let to = net.nodes[1].id();
    let (_, frames) = net.nodes[0]
        .core
        .hook_frames(
            crate::node::harness::APP,
            "big",
            &to,
            crate::room::ACTION_CELL,
            &crate::wire::Payload::Binary(bytes::Bytes::from(hello.encode())),
        )
        .expect("a link");
    for f in frames {
        assert!(net.inject_frame(0, 1, f));
    }
    net.run_for(2 * SEC);
    let core = &net.nodes[1].core;
    assert_eq!(core.drops(DropReason::RosterBadRecord), 3);
    assert_eq!(core.drops(DropReason::RosterFutureRecord), 1);
    assert_eq!(core.drops(DropReason::RosterMalformed), 1);
    assert_eq!(
        members(&net, 1, "big"),
        3,
        "a forged record changed the roster"
    );
    // The room goes on.
    net.send(0, "big", "chat", "still here");
    net.run_for(2 * SEC);
    let from = net.nodes[0].id();
    assert_eq!(count_from(&net.nodes[1], "chat", &from, "still here"), 1);
    // A genuine record of a member that never announced is accepted: records are enough.
    solicited(&mut net, 0, 1, vec![good]);
    net.run_for(3 * SEC);
    assert_eq!(members(&net, 1, "big"), 4);
    // That member is never heard from: it leaves the census, and its record replayed later
    // does not bring it back.
    net.run_for(160 * SEC);
    assert_eq!(members(&net, 1, "big"), 3, "a silent member stayed");
    solicited(&mut net, 0, 1, vec![good]);
    net.run_for(3 * SEC);
    assert_eq!(
        members(&net, 1, "big"),
        3,
        "a replayed record brought a departed member back"
    );
}

/// Node `from` puts a raw cell frame on its link to node `to` in `room`, as a hostile peer would.
fn inject_cell(net: &mut Net, from: usize, to: usize, room: &str, frame: &CellFrame) {
    let peer = net.nodes[to].id();
    let (_, frames) = net.nodes[from]
        .core
        .hook_frames(
            crate::node::harness::APP,
            room,
            &peer,
            crate::room::ACTION_CELL,
            &crate::wire::Payload::Binary(bytes::Bytes::from(frame.encode())),
        )
        .expect("a link");
    for f in frames {
        assert!(net.inject_frame(from, to, f));
    }
}

/// The cell frames node `from` put on its links since recording began, with the node each
/// went to.
fn cell_frames_sent(net: &Net, from: usize) -> Vec<(usize, CellFrame)> {
    net.recorded
        .iter()
        .flatten()
        .filter(|(f, _, _)| *f == from)
        .filter_map(|(_, to, bytes)| {
            let Ok(OuterFrame::Data { chunk, .. }) = OuterFrame::decode(bytes) else {
                return None;
            };
            let c = crate::wire::chunk::ActionChunk::decode(chunk).ok()?;
            if c.action != crate::room::ACTION_CELL || !c.is_last() || c.is_meta() {
                return None;
            }
            Some((*to, CellFrame::decode(c.payload).ok()?))
        })
        .collect()
}

/// A plain room's cell payload for a text message on `chat`.
fn chat_body(text: &str) -> bytes::Bytes {
    let mut body = vec![0];
    body.extend(crate::wire::e2e::encode_message(
        "chat",
        &crate::wire::Payload::Text(text.into()),
        None,
    ));
    bytes::Bytes::from(body)
}

/// The origin clock of harness nodes (their wall clock starts at this, in µs).
fn wall_us(net: &Net) -> u64 {
    1_700_000_000_000_000 + net.elapsed().as_micros() as u64
}

/// The attack, replayed: a peer whose id does not derive from its key (as a Trystero
/// page's) links to members of a cells room and sends through the overlay, and a member passes
/// on a frame signed by a throwaway key that never joined. Before admission, members delivered
/// both to their apps (as from a made-up peer id) and passed them on; now neither is delivered
/// nor passed on, and both are counted.
#[test]
fn frames_from_a_page_link_or_a_key_that_never_joined_are_not_delivered_or_passed_on() {
    let n = 4;
    let page = 3;
    let mut net = Net::new(50, n);
    net.make_stranger(page);
    for i in 0..n {
        net.join(i, "big", auto_cells());
    }
    assert!(
        net.run_until(30 * SEC, |net| converged(net, "big", &all(n))),
        "the room never formed: page links {:?}, joined {:?}, members {:?}",
        net.links_of(page),
        (0..n)
            .map(|i| net.nodes[i].joined("big").len())
            .collect::<Vec<_>>(),
        (0..n).map(|i| members(&net, i, "big")).collect::<Vec<_>>()
    );
    net.run_for(5 * SEC);
    net.record_frames();
    // What the page's own overlay makes of a broadcast: frames signed by its key.
    net.send(page, "big", "chat", "from a page");
    // A member passes on a frame signed by a key that never joined.
    let salt = net.nodes[1]
        .core
        .cell_salt(crate::node::harness::APP, "big")
        .expect("cells room");
    let throwaway = nostr_sdk::Keys::generate();
    let mut forged = CellFrame::sign(
        &throwaway,
        &salt,
        wall_us(&net),
        4,
        Vec::new(),
        chat_body("never joined"),
    );
    forged.fanout = false;
    inject_cell(&mut net, 0, 1, "big", &forged);
    net.run_for(5 * SEC);
    let made_up = crate::node::identity::peer_id_for(&net.nodes[page].keys.public_key());
    for i in 0..3 {
        let got: Vec<(String, String)> = net.nodes[i]
            .messages("chat")
            .into_iter()
            .filter(|(from, text)| {
                *from == made_up || text == "from a page" || text == "never joined"
            })
            .collect();
        assert!(got.is_empty(), "node {i} delivered {got:?}");
    }
    let not_from_member: u64 = (0..3)
        .map(|i| net.nodes[i].core.drops(DropReason::CellNotFromMember))
        .sum();
    assert!(not_from_member >= 1, "the page's frames were not counted");
    assert_eq!(
        net.nodes[1].core.drops(DropReason::CellUnknownOrigin),
        1,
        "the throwaway key's frame was not counted"
    );
    for i in 0..3 {
        let passed: Vec<usize> = cell_frames_sent(&net, i)
            .into_iter()
            .filter(|(_, f)| f.origin == forged.origin)
            .map(|(to, _)| to)
            .collect();
        assert!(passed.is_empty(), "node {i} passed it on to {passed:?}");
    }
    // The room goes on.
    net.send(0, "big", "chat", "still here");
    net.run_for(2 * SEC);
    let from = net.nodes[0].id();
    for i in [1, 2] {
        assert_eq!(count_from(&net.nodes[i], "chat", &from, "still here"), 1);
    }
}

/// A member's frame re-sent with its hop limit raised no longer verifies, so it is refused and
/// not passed on a second time; a flood of "gone" notices naming a member, from a key that
/// never joined and from a member, makes it answer "alive" once or twice, not once per notice.
#[test]
fn a_raised_hop_limit_is_refused_and_a_notice_flood_raises_no_alive_storm() {
    let n = 3;
    let mut net = Net::new(51, n);
    for i in 0..n {
        net.join(i, "big", auto_cells());
    }
    assert!(net.run_until(30 * SEC, |net| converged(net, "big", &[0, 1, 2])));
    net.run_for(5 * SEC);
    net.record_frames();
    let salt = net.nodes[1]
        .core
        .cell_salt(crate::node::harness::APP, "big")
        .expect("cells room");
    let bad_sigs = net.nodes[1].core.drops(DropReason::CellBadSignature);
    // One hop allowed: node 1 passes it on to node 2, which may not pass it further.
    let mut genuine = CellFrame::sign(
        &net.nodes[0].keys,
        &salt,
        wall_us(&net),
        1,
        Vec::new(),
        chat_body("one hop"),
    );
    genuine.fanout = false;
    inject_cell(&mut net, 0, 1, "big", &genuine);
    net.run_for(SEC);
    let mut raised = genuine.clone();
    raised.max_hops = 5;
    inject_cell(&mut net, 0, 1, "big", &raised);
    net.run_for(2 * SEC);
    assert_eq!(
        net.nodes[1].core.drops(DropReason::CellBadSignature),
        bad_sigs + 1,
        "the raised copy was not refused"
    );
    let copies = cell_frames_sent(&net, 1)
        .into_iter()
        .filter(|(to, f)| *to == 2 && f.origin == genuine.origin && f.seq == genuine.seq)
        .count();
    assert_eq!(copies, 1, "node 1 passed the frame on {copies} times");
    let from = net.nodes[0].id();
    assert_eq!(count_from(&net.nodes[2], "chat", &from, "one hop"), 1);

    // "Gone" notices naming node 1: thirty from a key that never joined, thirty from a member.
    let named = net.nodes[1].id();
    let throwaway = nostr_sdk::Keys::generate();
    let start = wall_us(&net);
    for (k, keys) in [&throwaway, &net.nodes[0].keys.clone()]
        .into_iter()
        .enumerate()
    {
        for i in 0..30u64 {
            let body = crate::node::cells::gone_notice(std::slice::from_ref(&named));
            let mut f = CellFrame::sign(
                keys,
                &salt,
                start + k as u64 * 1_000 + i,
                4,
                Vec::new(),
                bytes::Bytes::from(body),
            );
            f.fanout = false;
            inject_cell(&mut net, 0, 1, "big", &f);
        }
    }
    net.run_for(3 * SEC);
    let core = &net.nodes[1].core;
    assert_eq!(core.drops(DropReason::CellNoticeNotMember), 30);
    assert!(core.drops(DropReason::CellNoticeRateLimited) >= 30 - 16);
    let me = net.nodes[1].keys.public_key().to_bytes();
    let alive: BTreeSet<u64> = cell_frames_sent(&net, 1)
        .into_iter()
        .filter(|(_, f)| {
            f.origin == me && f.payload.first() == Some(&crate::node::cells::NOTICE_ALIVE)
        })
        .map(|(_, f)| f.seq)
        .collect();
    assert!(
        (1..=2).contains(&alive.len()),
        "{} alive broadcasts for 60 notices",
        alive.len()
    );
    // Node 1 stays in everyone's census.
    net.run_for(10 * SEC);
    for i in 0..n {
        assert_eq!(members(&net, i, "big"), 3, "node {i}");
    }
}

/// In a password room, roster records prove the room key (a MAC): the room forms as usual,
/// and records without a valid MAC, however well signed, are dropped and counted.
#[test]
fn in_a_password_cells_room_records_must_prove_the_room_key() {
    use crate::wire::roster::{RosterRecord, mac_key};
    let n = 4;
    let room_key = [7u8; 32];
    let mut net = Net::new(52, n);
    let opts = || JoinOptions {
        password: "pw".into(),
        cells: Some(CellSize::default()),
        ..JoinOptions::default()
    };
    for i in 0..n {
        net.join_keyed(i, "big", opts(), room_key);
    }
    assert!(net.run_until(30 * SEC, |net| converged(net, "big", &all(n))));
    net.run_for(5 * SEC);
    for i in 0..n {
        assert_eq!(members(&net, i, "big"), n as u32, "node {i}");
        assert_eq!(net.nodes[i].core.drops(DropReason::RosterBadMac), 0);
    }
    let salt = net.nodes[1]
        .core
        .cell_salt(crate::node::harness::APP, "big")
        .expect("cells room");
    let outsider = nostr_sdk::Keys::generate();
    let record = RosterRecord::sign(&outsider, &salt, 1_700_000_000);
    let wrong = record.with_mac(&mac_key(&[8; 32]));
    solicited(&mut net, 0, 1, vec![record, wrong]);
    net.run_for(2 * SEC);
    assert_eq!(net.nodes[1].core.drops(DropReason::RosterBadMac), 2);
    assert_eq!(members(&net, 1, "big"), n as u32);
    // With the room key's MAC the same record is taken.
    solicited(&mut net, 0, 1, vec![record.with_mac(&mac_key(&room_key))]);
    net.run_for(3 * SEC);
    assert_eq!(members(&net, 1, "big"), n as u32 + 1);
}
