//! Delivery between daemons: what a dying link held arrives on the next one, once, and what
//! cannot arrive is reported to its sender.

use super::*;

fn texts(sim: &Sim, channel: &str) -> Vec<String> {
    sim.messages(channel).into_iter().map(|(_, t)| t).collect()
}

fn numbered(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("m{i}")).collect()
}

fn undelivered(sim: &Sim) -> Vec<(String, String, u64)> {
    sim.events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Undelivered {
                peer,
                channel,
                messages,
                ..
            } => Some((peer.to_string(), channel.clone(), *messages)),
            _ => None,
        })
        .collect()
}

/// Sends m0..m4 on a healthy link, then m5..m14 into a black hole, and waits until both
/// sides have declared the link dead.
fn send_into_a_dying_link(net: &mut Net) {
    for i in 0..5 {
        net.send(0, "r", "c", &format!("m{i}"));
    }
    net.run_for(SEC);
    assert_eq!(texts(&net.nodes[1], "c"), numbered(0..5));
    net.blackhole(0, 1);
    for i in 5..15 {
        let to = net.send(0, "r", "c", &format!("m{i}"));
        assert_eq!(to, vec![net.nodes[1].id()], "the send was accepted");
    }
    let dead = net.run_until(60 * SEC, |n| {
        n.nodes[0].joined("r").is_empty() && n.nodes[1].joined("r").is_empty()
    });
    assert!(dead, "the black-holed link was never declared dead");
}

#[test]
fn messages_a_dying_link_held_arrive_once_on_the_next_link() {
    let mut net = mesh(61, 2, "r");
    send_into_a_dying_link(&mut net);
    net.heal(0, 1);
    let ok = net.run_until(60 * SEC, |n| texts(&n.nodes[1], "c").len() >= 15);
    assert!(ok, "got only {:?}", texts(&net.nodes[1], "c"));
    net.run_for(5 * SEC);
    assert_eq!(texts(&net.nodes[1], "c"), numbered(0..15));
    assert!(undelivered(&net.nodes[0]).is_empty());
    assert_eq!(
        net.nodes[0].core.undelivered_kept(),
        (0, 0),
        "all acknowledged"
    );
    everyone_hears_everyone(&mut net, "r", &[0, 1], "after");
}

fn is_ack(frame: &[u8]) -> bool {
    matches!(OuterFrame::decode(frame), Ok(OuterFrame::Ack { .. }))
}

#[test]
fn messages_sent_again_that_had_arrived_are_dropped_by_the_receiver() {
    let mut net = mesh(62, 2, "r");
    // Node 0 never hears an acknowledgement: everything it sent is sent again.
    net.filter_frames(1, 0, is_ack);
    send_into_a_dying_link(&mut net);
    net.heal(0, 1);
    let ok = net.run_until(60 * SEC, |n| texts(&n.nodes[1], "c").len() >= 15);
    assert!(ok, "got only {:?}", texts(&net.nodes[1], "c"));
    net.run_for(5 * SEC);
    assert_eq!(
        texts(&net.nodes[1], "c"),
        numbered(0..15),
        "each exactly once"
    );
    assert!(net.nodes[1].core.drops(DropReason::FrameDuplicate) >= 5);
}

#[test]
fn a_peer_that_never_comes_back_is_reported_undelivered_to_the_sender() {
    let mut net = mesh(63, 2, "r");
    send_into_a_dying_link(&mut net);
    net.run_for(60 * SEC);
    assert_eq!(
        undelivered(&net.nodes[0]),
        vec![(net.nodes[1].id(), "c".to_owned(), 10)]
    );
    assert_eq!(net.nodes[0].core.drops(DropReason::MessageUndelivered), 10);
    assert_eq!(net.nodes[0].core.undelivered_kept(), (0, 0));
}

#[test]
fn a_restarted_sender_is_not_taken_for_a_duplicate() {
    let mut net = mesh(64, 2, "r");
    for i in 0..5 {
        net.send(0, "r", "c", &format!("m{i}"));
    }
    net.run_for(SEC);
    net.restart(0);
    net.join(0, "r", plain());
    let ok = net.run_until(60 * SEC, |n| converged(n, "r", &[0, 1]));
    assert!(ok, "no link after the restart");
    net.run_for(SEC);
    for i in 5..10 {
        net.send(0, "r", "c", &format!("m{i}"));
    }
    net.run_for(2 * SEC);
    assert_eq!(texts(&net.nodes[1], "c"), numbered(0..10));
}

#[test]
fn after_the_sender_gave_up_new_messages_are_acknowledged_again() {
    let mut net = mesh(65, 2, "r");
    send_into_a_dying_link(&mut net);
    net.run_for(60 * SEC);
    assert_eq!(undelivered(&net.nodes[0]).len(), 1);
    net.heal(0, 1);
    let ok = net.run_until(60 * SEC, |n| converged(n, "r", &[0, 1]));
    assert!(ok, "no new link after the path healed");
    net.run_for(SEC);
    for i in 15..20 {
        net.send(0, "r", "c", &format!("m{i}"));
    }
    net.run_for(2 * SEC);
    let got = texts(&net.nodes[1], "c");
    assert_eq!(got[got.len() - 5..], numbered(15..20));
    // The receiver stopped waiting for the ten given up: the new ones were acknowledged.
    assert_eq!(net.nodes[0].core.undelivered_kept(), (0, 0));
}

#[test]
fn a_restarted_receiver_takes_a_long_lived_senders_numbering() {
    let mut net = mesh(66, 2, "r");
    for i in 0..5_000 {
        net.send(0, "r", "c", &format!("m{i}"));
    }
    net.run_for(5 * SEC);
    assert_eq!(texts(&net.nodes[1], "c").len(), 5_000);
    net.restart(1);
    net.join(1, "r", plain());
    let ok = net.run_until(60 * SEC, |n| converged(n, "r", &[0, 1]));
    assert!(ok, "no link after the restart");
    net.run_for(SEC);
    for i in 0..5 {
        net.send(0, "r", "c", &format!("after {i}"));
    }
    net.run_for(2 * SEC);
    let got = texts(&net.nodes[1], "c");
    assert_eq!(
        got,
        (0..5).map(|i| format!("after {i}")).collect::<Vec<_>>(),
        "a restarted node starts with no messages"
    );
    assert_eq!(net.nodes[0].core.undelivered_kept(), (0, 0));
}
