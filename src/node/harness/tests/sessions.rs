//! Sessions: pings, passwords, channel filters, local echo, refused sends.

use super::*;

#[test]
fn a_ping_is_answered_with_the_round_trip() {
    let mut net = mesh(40, 2, "r");
    let waiter = net.ping(0, "r", 1).expect("ping");
    net.run_for(SEC);
    let (w, rtt) = net.nodes[0].pongs.last().copied().expect("pong");
    assert_eq!(w, waiter);
    assert!(
        rtt >= Duration::from_millis(2) && rtt <= Duration::from_millis(20),
        "{rtt:?}"
    );
    let peers = net.nodes[0]
        .core
        .peers(crate::node::harness::APP, "r", net.now)
        .expect("peers");
    assert!(peers[0].rtt_ms > 0.0);
}

#[test]
fn a_ping_to_a_peer_that_leaves_is_reported_lost() {
    let mut net = mesh(41, 2, "r");
    net.blackhole(0, 1);
    let waiter = net.ping(0, "r", 1).expect("ping");
    net.run_for(60 * SEC);
    assert!(net.nodes[0].pongs.is_empty());
    assert_eq!(net.nodes[0].pings_lost, vec![waiter]);
}

#[test]
fn a_ping_to_a_stranger_is_refused() {
    let mut net = mesh(42, 2, "r");
    let err = net.ping(0, "nope", 1).expect_err("unknown room");
    assert_eq!(err.code(), "not_found");
    net.leave(1, "r");
    net.run_for(SEC);
    let err = net.ping(0, "r", 1).expect_err("peer gone");
    assert!(
        matches!(err.code(), "not_found" | "link_closed"),
        "{}",
        err.code()
    );
}

#[test]
fn different_passwords_never_join_and_say_why() {
    let mut net = Net::new(45, 2);
    let pw = |p: &str| JoinOptions {
        password: p.into(),
        ..JoinOptions::default()
    };
    net.join(0, "r", pw("one"));
    net.join(1, "r", pw("two"));
    net.run_for(30 * SEC);
    assert!(net.nodes[0].joined("r").is_empty() && net.nodes[1].joined("r").is_empty());
    let told = (0..2).any(|i| {
        net.nodes[i].events.iter().any(
            |e| matches!(&e.kind, EventKind::Error { code, .. } if code == "password_mismatch"),
        )
    });
    assert!(told, "nobody was told the passwords differ");
}

#[test]
fn one_password_joins() {
    let mut net = Net::new(46, 3);
    let pw = JoinOptions {
        password: "same".into(),
        ..JoinOptions::default()
    };
    for i in 0..3 {
        net.join(i, "r", pw.clone());
    }
    assert!(net.run_until(30 * SEC, |n| converged(n, "r", &all(3))));
    everyone_hears_everyone(&mut net, "r", &all(3), "secret");
}

#[test]
fn a_session_hears_only_the_channels_it_subscribed() {
    let mut net = Net::new(47, 2);
    net.join(
        0,
        "r",
        JoinOptions {
            channels: vec!["a".into()],
            ..JoinOptions::default()
        },
    );
    net.join(1, "r", plain());
    assert!(net.run_until(30 * SEC, |n| converged(n, "r", &[0, 1])));
    net.send(1, "r", "a", "wanted");
    net.send(1, "r", "b", "unwanted");
    net.run_for(SEC);
    assert_eq!(net.nodes[0].messages("a").len(), 1);
    assert!(net.nodes[0].messages("b").is_empty());
}

#[test]
fn sessions_on_one_node_share_a_room_and_hear_each_other() {
    let mut net = mesh(48, 2, "r");
    let now = net.now;
    let core = &mut net.nodes[0].core;
    let other = core.open_session();
    let h = core
        .join(other, crate::node::harness::APP, "r", &plain(), None, now)
        .expect("join");
    let joins = core
        .take_effects()
        .into_iter()
        .filter(|e| matches!(e, crate::node::harness::Effect::Deliver { session, event } if *session == other && matches!(event.kind, EventKind::PeerJoin(..))))
        .count();
    assert_eq!(
        joins, 1,
        "a second session learns of the peers already joined"
    );
    let plan = core
        .send(
            other,
            h,
            "chat",
            crate::wire::Payload::Text("local".into()),
            None,
            &[],
            now,
        )
        .expect("send");
    assert_eq!(plan.links.len(), 1, "one link, shared");
    let echoed = core.take_effects().into_iter().any(|e| {
        matches!(e, crate::node::harness::Effect::Deliver { session, event } if session == crate::ids::SessionId(1) && matches!(&event.kind, EventKind::Message { local: true, .. }))
    });
    assert!(echoed, "the first session hears the second one's send");
    let again = core
        .join(other, crate::node::harness::APP, "r", &plain(), None, now)
        .expect("re-join");
    assert_eq!(
        again, h,
        "a session re-joining its room gets its handle back"
    );
    let third = core.open_session();
    let err = core
        .join(
            third,
            crate::node::harness::APP,
            "r",
            &JoinOptions {
                password: "x".into(),
                ..JoinOptions::default()
            },
            None,
            now,
        )
        .expect_err("password conflict");
    assert_eq!(err.code(), "password_conflict");
}

#[test]
fn a_send_to_a_peer_not_in_the_room_is_refused() {
    let mut net = mesh(49, 2, "r");
    let now = net.now;
    let sim = &mut net.nodes[0];
    let err = sim
        .core
        .send(
            sim.session,
            sim.handles["r"],
            "chat",
            crate::wire::Payload::Text("x".into()),
            None,
            &["AAAAAAAAAAAAAAAAAAAA".into()],
            now,
        )
        .expect_err("stranger");
    assert_eq!(err.code(), "not_found");
}

/// One app's sessions, rooms, local tracks and kept channels are capped: each refusal is
/// `resource_exhausted` naming its limit and counted, changes nothing, and other apps go on.
#[test]
fn an_app_is_refused_past_its_limits_and_the_others_go_on() {
    use crate::node::core::AppLimits;
    use crate::node::core::media::TrackRequest;
    let mut net = Net::with_config(49, 1, |c| {
        c.app_limits = AppLimits {
            sessions: 2,
            rooms: 2,
            tracks: 1,
            keep_rules: 2,
        }
    });
    let now = net.now;
    let core = &mut net.nodes[0].core;
    let keep = |channels: &[&str]| JoinOptions {
        keep: channels
            .iter()
            .map(|c| {
                let rule = crate::history::KeepRule {
                    max_messages: Some(10),
                    max_age: None,
                };
                (c.to_string(), rule)
            })
            .collect(),
        ..JoinOptions::default()
    };
    let refused = |r: Result<u32, crate::node::NodeError>, limit: &str| match r {
        Err(e) => {
            assert_eq!(e.code(), "resource_exhausted");
            assert!(e.to_string().contains(limit), "{e}");
        }
        Ok(h) => panic!("joined past {limit}: handle {h}"),
    };
    let (one, two, three) = (
        core.open_session(),
        core.open_session(),
        core.open_session(),
    );
    // Rooms: two per app; a third is refused, in the same app only.
    core.join(one, "app", "r1", &keep(&["a"]), None, now)
        .expect("r1");
    core.join(one, "app", "r2", &plain(), None, now)
        .expect("r2");
    refused(
        core.join(one, "app", "r3", &plain(), None, now),
        "max_app_rooms",
    );
    core.join(one, "other", "r3", &plain(), None, now)
        .expect("another app's room");
    // Sessions: two sessions in the app's rooms; a third is refused, but a session already in
    // them joins another of its rooms.
    core.join(two, "app", "r1", &plain(), None, now)
        .expect("second session");
    refused(
        core.join(three, "app", "r1", &plain(), None, now),
        "max_app_sessions",
    );
    core.join(two, "app", "r2", &plain(), None, now)
        .expect("a session already in the app");
    core.join(three, "other", "r3", &plain(), None, now)
        .expect("another app's session");
    // Kept channels: r1 keeps "a"; one more may be kept across the app's rooms.
    refused(
        core.join(three, "app", "r2", &keep(&["b", "c"]), None, now),
        "max_app_sessions",
    );
    let r2 = core
        .join(one, "app", "r2", &plain(), None, now)
        .expect("rejoin");
    core.leave(one, r2, now).expect("leave r2");
    refused(
        core.join(one, "app", "r2", &keep(&["b", "c"]), None, now),
        "max_app_keep_rules",
    );
    core.join(one, "app", "r2", &keep(&["b"]), None, now)
        .expect("one more kept channel");
    // Tracks: one per app.
    let handle = core
        .join(one, "app", "r1", &plain(), None, now)
        .expect("r1");
    let track = |id: &str| TrackRequest {
        spec: crate::transport::media::TrackSpec {
            codec: crate::transport::media::Codec::Vp8,
            stream_id: "s".into(),
            track_id: id.into(),
        },
        meta: None,
        targets: Vec::new(),
        max_kbps: 0,
    };
    core.add_track(one, handle, track("t1"), now)
        .expect("a track");
    match core.add_track(one, handle, track("t2"), now) {
        Err(e) => assert!(
            e.code() == "resource_exhausted" && e.to_string().contains("max_app_tracks"),
            "{e}"
        ),
        Ok(_) => panic!("a second track past max_app_tracks"),
    }
    let other = core
        .join(three, "other", "r3", &plain(), None, now)
        .expect("r3");
    core.add_track(three, other, track("t1"), now)
        .expect("another app's track");
    assert_eq!(core.drops(DropReason::AppLimit), 5);
}
