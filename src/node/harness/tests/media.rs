//! Media: metadata before tracks, perfect negotiation under glare, newcomers, removal.

use super::*;
use serde_json::json;
use std::time::Instant;

/// Tracks node `i` was shown: (from, stream, track, meta), in order.
fn tracks_seen(sim: &Sim) -> Vec<(String, String, String, Option<serde_json::Value>)> {
    sim.events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::TrackAdd {
                peer,
                stream_id,
                track_id,
                meta,
                ..
            } => Some((
                peer.to_string(),
                stream_id.clone(),
                track_id.clone(),
                meta.clone(),
            )),
            _ => None,
        })
        .collect()
}

fn removed(sim: &Sim, track: &str) -> bool {
    sim.events
        .iter()
        .any(|e| matches!(&e.kind, EventKind::TrackRemove { track_id, .. } if track_id == track))
}

#[test]
fn a_track_reaches_every_peer_with_its_metadata_stream_first() {
    let mut net = mesh(60, 3, "r");
    net.add_track(0, "r", "cam", "video", json!({"label": "front"}), vec![]);
    net.run_for(2 * SEC);
    let from = net.nodes[0].id();
    for i in 1..3 {
        let seen = tracks_seen(&net.nodes[i]);
        assert_eq!(
            seen,
            vec![(
                from.clone(),
                "cam".into(),
                "video".into(),
                Some(json!({"label": "front"}))
            )],
            "node {i}"
        );
        let first = net.nodes[i]
            .events
            .iter()
            .position(|e| matches!(e.kind, EventKind::StreamAdd { .. }))
            .expect("stream:add");
        let track = net.nodes[i]
            .events
            .iter()
            .position(|e| matches!(e.kind, EventKind::TrackAdd { .. }))
            .expect("track:add");
        assert!(first < track, "node {i}: stream:add came after track:add");
    }
    assert!(
        tracks_seen(&net.nodes[0]).is_empty(),
        "the sender saw its own track"
    );
}

#[test]
fn both_sides_adding_tracks_at_once_both_end_up_receiving() {
    for seed in 0..20 {
        let mut net = mesh(seed, 2, "r");
        net.add_track(0, "r", "s0", "t0", json!(0), vec![]);
        net.add_track(1, "r", "s1", "t1", json!(1), vec![]);
        net.run_for(3 * SEC);
        let (id0, id1) = (net.nodes[0].id(), net.nodes[1].id());
        assert_eq!(
            tracks_seen(&net.nodes[1])
                .iter()
                .map(|t| (t.0.clone(), t.2.clone()))
                .collect::<Vec<_>>(),
            vec![(id0, "t0".into())],
            "seed {seed}"
        );
        assert_eq!(
            tracks_seen(&net.nodes[0])
                .iter()
                .map(|t| (t.0.clone(), t.2.clone()))
                .collect::<Vec<_>>(),
            vec![(id1, "t1".into())],
            "seed {seed}"
        );
        let ignored: u64 = (0..2)
            .map(|i| net.nodes[i].core.drops(DropReason::MediaOfferIgnored))
            .sum();
        assert!(ignored <= 1, "seed {seed}: {ignored} offers ignored");
        everyone_hears_everyone(&mut net, "r", &[0, 1], "data during media");
    }
}

#[test]
fn a_newcomer_gets_tracks_sent_to_everyone_but_not_targeted_ones() {
    let mut net = Net::new(61, 3);
    for i in 0..2 {
        net.join(i, "r", plain());
    }
    assert!(net.run_until(30 * SEC, |n| converged(n, "r", &[0, 1])));
    let one = net.nodes[1].id();
    net.add_track(0, "r", "s", "everyone", json!(null), vec![]);
    net.add_track(0, "r", "s", "only-one", json!(null), vec![one]);
    net.join(2, "r", plain());
    assert!(net.run_until(30 * SEC, |n| converged(n, "r", &all(3))));
    net.run_for(3 * SEC);
    let names = |i: usize| {
        tracks_seen(&net.nodes[i])
            .into_iter()
            .map(|t| t.2)
            .collect::<Vec<_>>()
    };
    assert_eq!(names(1), ["everyone", "only-one"]);
    assert_eq!(names(2), ["everyone"]);
}

#[test]
fn a_removed_track_is_seen_removed_and_a_leaving_peer_ends_its_tracks() {
    let mut net = mesh(62, 3, "r");
    let a = net.add_track(0, "r", "s", "a", json!(null), vec![]);
    net.add_track(1, "r", "s", "b", json!(null), vec![]);
    net.run_for(3 * SEC);
    net.remove_track(0, a);
    net.run_for(3 * SEC);
    assert!(removed(&net.nodes[1], "a") && removed(&net.nodes[2], "a"));
    assert!(!removed(&net.nodes[2], "b"));
    net.leave(1, "r");
    net.run_for(3 * SEC);
    assert!(
        removed(&net.nodes[2], "b"),
        "a leaving peer's track did not end"
    );
}

#[test]
fn a_replaced_track_is_shown_again_with_its_new_metadata() {
    let mut net = mesh(64, 2, "r");
    let id = net.add_track(0, "r", "cam", "video", json!({"src": "front"}), vec![]);
    net.run_for(2 * SEC);
    net.replace_track(0, id, json!({"src": "back"}));
    net.run_for(SEC);
    let from = net.nodes[0].id();
    let metas: Vec<_> = tracks_seen(&net.nodes[1])
        .into_iter()
        .map(|(peer, _, track, meta)| (peer, track, meta))
        .collect();
    assert_eq!(
        metas,
        vec![
            (from.clone(), "video".into(), Some(json!({"src": "front"}))),
            (from, "video".into(), Some(json!({"src": "back"}))),
        ]
    );
    assert!(!removed(&net.nodes[1], "video"));
}

#[test]
fn a_track_over_its_bitrate_limit_is_refused_and_counted() {
    use crate::node::core::limits::ByteBudget;
    let t0 = Instant::now();
    // 800 kbit/s: 100 kB a second, and at most one second of it at once.
    let mut budget = ByteBudget::new(800);
    assert!(budget.take(60_000, t0));
    assert!(budget.take(40_000, t0));
    assert!(!budget.take(1_000, t0), "the second's budget is spent");
    assert!(budget.take(10_000, t0 + Duration::from_millis(100)));
    assert!(
        !budget.take(200_000, t0 + Duration::from_secs(10)),
        "never more than one second's burst"
    );

    let mut net = mesh(65, 2, "r");
    let id = net.add_track(0, "r", "cam", "video", json!(null), vec![]);
    net.run_for(SEC);
    let now = net.now;
    let core = &mut net.nodes[0].core;
    let mut refused = 0;
    for _ in 0..2_000 {
        if core.admit_media(id, 1_200, now).is_err() {
            refused += 1;
        }
    }
    // The default 10 Mbit/s lets 1.25 MB through at once: 1,041 packets of 1,200 bytes.
    assert_eq!(refused, 2_000 - 1_041);
    assert_eq!(core.drops(DropReason::MediaBitrateLimit), refused);
}

#[test]
fn an_offer_the_peer_could_not_answer_is_made_again() {
    let mut net = mesh(66, 2, "r");
    net.refuse_media_answers.insert(1, 2);
    net.add_track(0, "r", "cam", "video", json!(null), vec![]);
    net.run_for(40 * SEC);
    assert_eq!(
        tracks_seen(&net.nodes[1]).len(),
        1,
        "the track never arrived"
    );
    assert_eq!(
        net.nodes[1].core.drops(DropReason::MediaNegotiationFailed),
        2
    );
    let ready = net.nodes[0]
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::TrackReady { .. }))
        .count();
    assert_eq!(ready, 1, "the sender was told once its track flows");
}

#[test]
fn a_receivers_keyframe_requests_reach_the_sender_at_most_four_times_a_second() {
    let mut net = mesh(67, 3, "r");
    let id = net.add_track(0, "r", "cam", "video", json!(null), vec![]);
    net.run_for(SEC);
    let wanted = |net: &Net| {
        net.nodes[0]
            .events
            .iter()
            .filter(|e| matches!(&e.kind, EventKind::KeyframeWanted { track, .. } if *track == id))
            .count()
    };
    assert_eq!(wanted(&net), 0);
    // Both receivers ask at once, and again 100 ms later: one request reaches the app.
    net.keyframe_asked(0, id);
    net.run_for(Duration::from_millis(100));
    net.keyframe_asked(0, id);
    assert_eq!(wanted(&net), 1, "repeated requests within 250 ms are one");
    net.run_for(Duration::from_millis(200));
    net.keyframe_asked(0, id);
    assert_eq!(wanted(&net), 2, "a request after the gap gets through");
    let peers: BTreeSet<String> = net.nodes[0]
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::KeyframeWanted { peer, .. } => Some(peer.to_string()),
            _ => None,
        })
        .collect();
    assert!(
        peers
            .iter()
            .all(|p| *p == net.nodes[1].id() || *p == net.nodes[2].id())
    );
    // A track that is gone is asked about no more.
    net.remove_track(0, id);
    net.run_for(SEC);
    net.keyframe_asked(0, id);
    assert_eq!(wanted(&net), 2);
}

#[test]
fn sixteen_tracks_added_as_a_link_comes_up_are_all_negotiated() {
    for seed in 0..30 {
        let mut net = Net::new(seed, 2);
        net.join(0, "r", plain());
        net.join(1, "r", plain());
        let peer = net.nodes[1].id();
        assert!(
            net.run_until(30 * SEC, |net| net.nodes[0].joined("r").contains(&peer)),
            "seed {seed}: no join"
        );
        // As an app does: one add per reply, right after its peer:join.
        for t in 0..16 {
            net.add_track(0, "r", "s", &format!("t{t}"), json!(t), vec![]);
            net.run_for(Duration::from_millis(1));
        }
        net.run_for(30 * SEC);
        let ready: Vec<crate::ids::TrackId> = net.nodes[0]
            .events
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::TrackReady { track, .. } => Some(track),
                _ => None,
            })
            .collect();
        let distinct: BTreeSet<crate::ids::TrackId> = ready.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            16,
            "seed {seed}: tracks ready\n{}",
            net.trace()
        );
        assert_eq!(
            ready.len(),
            16,
            "seed {seed}: each track is ready once\n{}",
            net.trace()
        );
        assert_eq!(tracks_seen(&net.nodes[1]).len(), 16, "seed {seed}");
    }
}

#[test]
fn a_track_back_on_a_link_after_its_peer_rejoined_is_ready_again() {
    // A second room keeps the link up while the peer leaves and rejoins the first.
    let mut net = mesh(70, 2, "r");
    net.join(0, "r2", plain());
    net.join(1, "r2", plain());
    assert!(net.run_until(10 * SEC, |n| converged(n, "r2", &[0, 1])));
    let id = net.add_track(0, "r", "s", "t", json!(null), vec![]);
    net.run_for(2 * SEC);
    let ready = |net: &Net| {
        net.nodes[0]
            .events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::TrackReady { track, .. } if track == id))
            .count()
    };
    assert_eq!(ready(&net), 1);
    net.leave(1, "r");
    net.run_for(2 * SEC);
    net.join(1, "r", plain());
    assert!(net.run_until(10 * SEC, |n| converged(n, "r", &[0, 1])));
    net.run_for(2 * SEC);
    assert_eq!(
        ready(&net),
        2,
        "the track went back to the peer unannounced"
    );
    assert_eq!(net.links_of(0).len(), 1, "the link was not kept");
}

#[test]
fn a_second_track_under_the_same_id_is_refused_and_the_first_still_arrives() {
    let mut net = mesh(61, 2, "r");
    net.add_track(0, "r", "cam", "t", json!({"n": 1}), vec![]);
    // The engine tells a link's tracks apart by id: a second "t" would merge into the first at
    // the receiver (an audio track's packets forwarded as the video's).
    let sim = &mut net.nodes[0];
    let again = sim.core.add_track(
        sim.session,
        sim.handles["r"],
        crate::node::core::media::TrackRequest {
            spec: crate::transport::media::TrackSpec {
                codec: crate::transport::media::Codec::Opus,
                stream_id: "cam".into(),
                track_id: "t".into(),
            },
            meta: None,
            targets: vec![],
            max_kbps: 0,
        },
        net.now,
    );
    assert!(
        matches!(&again, Err(crate::node::NodeError::InvalidArgument(m)) if m.contains("already published")),
        "{again:?}"
    );
    net.run_for(2 * SEC);
    let from = net.nodes[0].id();
    let seen = tracks_seen(&net.nodes[1]);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0, from);
    assert_eq!(seen[0].2, "t");
}
