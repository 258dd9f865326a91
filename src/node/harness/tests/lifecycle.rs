//! The lifecycle dispatcher's order as an app sees it: a peer's join before its tracks, and
//! everything the peer held (tracks, pending requests) let go of before its leave.

use super::*;
use crate::node::core::requests::Outcome;
use serde_json::json;

fn serving(channel: &str) -> JoinOptions {
    JoinOptions {
        serve: vec![channel.to_owned()],
        ..JoinOptions::default()
    }
}

/// Where the first event of node `i` matching `pick` sits in its event list.
fn first(net: &Net, i: usize, pick: impl Fn(&EventKind) -> bool) -> Option<usize> {
    net.nodes[i].events.iter().position(|e| pick(&e.kind))
}

#[test]
fn an_app_hears_a_peer_join_before_the_peers_tracks() {
    let mut net = Net::new(81, 2);
    net.join(0, "r", plain());
    // Node 0's track exists before node 1 is there: it is offered as part of the join.
    net.add_track(0, "r", "cam", "video", json!({"label": "early"}), vec![]);
    net.join(1, "r", plain());
    let from = net.nodes[0].id();
    let ok = net.run_until(30 * SEC, |n| {
        n.nodes[1]
            .events
            .iter()
            .any(|e| matches!(&e.kind, EventKind::TrackAdd { peer, .. } if *peer == from))
    });
    assert!(ok, "the track never reached node 1");
    let join = first(
        &net,
        1,
        |k| matches!(k, EventKind::PeerJoin(p, ..) if *p == from),
    );
    let track = first(
        &net,
        1,
        |k| matches!(k, EventKind::TrackAdd { peer, .. } if *peer == from),
    );
    assert!(
        join.is_some() && join < track,
        "join {join:?}, track {track:?}"
    );
}

#[test]
fn a_leaving_peers_tracks_end_and_requests_fail_before_the_app_hears_it_left() {
    let mut net = Net::new(82, 2);
    net.join(0, "r", serving("ask"));
    net.join(1, "r", plain());
    assert!(net.run_until(30 * SEC, |n| converged(n, "r", &[0, 1])));
    net.add_track(0, "r", "cam", "video", json!({}), vec![]);
    let from = net.nodes[0].id();
    let has_track = |n: &Net| {
        n.nodes[1]
            .events
            .iter()
            .any(|e| matches!(&e.kind, EventKind::TrackAdd { peer, .. } if *peer == from))
    };
    assert!(net.run_until(10 * SEC, has_track), "no track");
    // Node 1 asks node 0, which is handed the request and leaves without answering.
    net.request(1, "r", 7, "ask", "?", &[0], 60_000);
    let handed = |n: &Net| {
        n.nodes[0]
            .events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Request { .. }))
    };
    assert!(net.run_until(5 * SEC, handed), "request not handed over");
    net.leave(0, "r");
    let left = |n: &Net| {
        n.nodes[1]
            .events
            .iter()
            .any(|e| matches!(&e.kind, EventKind::PeerLeave(p, _) if *p == from))
    };
    assert!(
        net.run_until(10 * SEC, left),
        "node 1 never heard node 0 leave"
    );
    let leave = first(
        &net,
        1,
        |k| matches!(k, EventKind::PeerLeave(p, _) if *p == from),
    );
    let ended = first(
        &net,
        1,
        |k| matches!(k, EventKind::TrackRemove { peer, .. } if *peer == from),
    );
    // Cut short either way: refused by the leaving server's session, or disconnected.
    let failed = first(
        &net,
        1,
        |k| matches!(k, EventKind::Response { request: 7, outcome, .. } if *outcome != Outcome::Timeout),
    );
    let kinds: Vec<String> = net.nodes[1]
        .events
        .iter()
        .map(|e| format!("{:?}", e.kind))
        .collect();
    assert!(
        ended.is_some() && ended < leave,
        "track end {ended:?}, leave {leave:?}"
    );
    assert!(
        failed.is_some() && failed < leave,
        "request {failed:?}, leave {leave:?}: {kinds:#?}"
    );
}
