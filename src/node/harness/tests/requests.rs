//! Request actions between cores: a request answered, rejected, unanswered, or cut short by
//! its peer leaving; an answer sealed in a password room.

use super::*;
use crate::node::core::requests::{ERR_NO_HANDLER, Outcome};
use crate::wire::Payload;

const ROOM: &str = "rpc";

fn serving(channel: &str) -> JoinOptions {
    JoinOptions {
        serve: vec![channel.to_owned()],
        ..JoinOptions::default()
    }
}

fn pair(seed: u64, server: JoinOptions, client: JoinOptions) -> Net {
    let mut net = Net::new(seed, 2);
    net.join(0, ROOM, server);
    net.join(1, ROOM, client);
    let ok = net.run_until(30 * SEC, |net| converged(net, ROOM, &[0, 1]));
    assert!(ok, "seed {seed}: no mesh");
    net
}

/// Requests node `i` was handed: (id, channel, from, text, meta).
fn requests(sim: &Sim) -> Vec<(u64, String, String, String, Option<serde_json::Value>)> {
    sim.events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Request {
                id,
                channel,
                from,
                payload: Payload::Text(t),
                meta,
            } => Some((
                *id,
                channel.clone(),
                from.to_string(),
                t.clone(),
                meta.clone(),
            )),
            _ => None,
        })
        .collect()
}

fn outcomes(sim: &Sim, request: u64) -> Vec<(String, Outcome)> {
    sim.events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Response {
                request: r,
                peer,
                outcome,
            } if *r == request => Some((peer.to_string(), outcome.clone())),
            _ => None,
        })
        .collect()
}

fn answered(net: &mut Net, i: usize, request: u64) -> Vec<(String, Outcome)> {
    net.run_until(15 * SEC, |net| !outcomes(&net.nodes[i], request).is_empty());
    outcomes(&net.nodes[i], request)
}

fn request_reply_reject(password: &str) {
    let opts = |serve: bool| JoinOptions {
        password: password.to_owned(),
        serve: if serve { vec!["ask".into()] } else { vec![] },
        ..JoinOptions::default()
    };
    let mut net = pair(11, opts(true), opts(false));
    let server = net.nodes[0].id();
    let client = net.nodes[1].id();
    assert_eq!(
        net.request(1, ROOM, 7, "ask", "2+2?", &[0], 5_000),
        vec![server.clone()]
    );
    net.run_until(5 * SEC, |net| !requests(&net.nodes[0]).is_empty());
    let got = requests(&net.nodes[0]);
    assert_eq!(got.len(), 1, "{:?}", net.nodes[0].events);
    let (id, channel, from, text, meta) = got[0].clone();
    assert_eq!(
        (channel.as_str(), from.as_str(), text.as_str()),
        ("ask", client.as_str(), "2+2?")
    );
    // The app sees its own metadata (Trystero's `m`), not the wire's `{r, m}`.
    assert_eq!(meta, Some(serde_json::json!({"tag": 7})));
    // Not a plain message.
    assert!(net.nodes[0].messages("ask").is_empty());
    net.respond(0, ROOM, id, Ok(Payload::Text("4".into())))
        .expect("respond");
    assert_eq!(
        answered(&mut net, 1, 7),
        vec![(
            server.clone(),
            Outcome::Fulfilled(Payload::Text("4".into()))
        )]
    );
    // Answered once.
    assert!(
        net.respond(0, ROOM, id, Ok(Payload::Text("5".into())))
            .is_err()
    );

    net.request(1, ROOM, 8, "ask", "fail please", &[0], 5_000);
    net.run_until(5 * SEC, |net| requests(&net.nodes[0]).len() == 2);
    let id = requests(&net.nodes[0])[1].0;
    net.respond(0, ROOM, id, Err("no such thing".into()))
        .expect("respond");
    assert_eq!(
        answered(&mut net, 1, 8),
        vec![(server, Outcome::Rejected("no such thing".into()))]
    );
}

#[test]
fn a_request_resolves_with_the_reply_and_a_rejection_with_its_message() {
    request_reply_reject("");
}

#[test]
fn requests_and_replies_are_sealed_between_daemons_in_a_password_room() {
    request_reply_reject("hunter2");
    // The drop counters stay clean of plaintext refusals: the reply was sealed.
    let mut net = pair(
        12,
        JoinOptions {
            password: "pw".into(),
            serve: vec!["ask".into()],
            ..JoinOptions::default()
        },
        JoinOptions {
            password: "pw".into(),
            ..JoinOptions::default()
        },
    );
    net.request(1, ROOM, 1, "ask", "x", &[0], 5_000);
    net.run_until(5 * SEC, |net| !requests(&net.nodes[0]).is_empty());
    let id = requests(&net.nodes[0])[0].0;
    net.respond(0, ROOM, id, Ok(Payload::Text("y".into())))
        .expect("respond");
    assert_eq!(answered(&mut net, 1, 1).len(), 1);
    for sim in &net.nodes {
        assert_eq!(sim.core.drops(DropReason::E2ePlaintextRefused), 0);
        assert_eq!(sim.core.drops(DropReason::E2eMalformed), 0);
        assert_eq!(sim.core.drops(DropReason::ResponseUnmatched), 0);
    }
}

#[test]
fn an_unanswered_request_times_out_at_its_deadline() {
    let mut net = pair(13, serving("ask"), plain());
    let start = net.now;
    net.request(1, ROOM, 3, "ask", "anyone?", &[0], 1_500);
    let got = answered(&mut net, 1, 3);
    assert_eq!(got, vec![(net.nodes[0].id(), Outcome::Timeout)]);
    let took = net.now - start;
    assert!(
        took >= Duration::from_millis(1_500) && took < Duration::from_millis(2_100),
        "{took:?}"
    );
}

#[test]
fn a_target_not_in_the_room_and_a_peer_that_leaves_are_disconnected() {
    let mut net = Net::new(14, 3);
    net.join(0, ROOM, serving("ask"));
    net.join(1, ROOM, plain());
    assert!(net.run_until(30 * SEC, |net| converged(net, ROOM, &[0, 1])));
    // Node 2 never joined: disconnected at once, nothing sent.
    assert!(net.request(1, ROOM, 4, "ask", "?", &[2], 5_000).is_empty());
    assert_eq!(
        outcomes(&net.nodes[1], 4),
        vec![(net.nodes[2].id(), Outcome::Disconnected)]
    );
    // Node 0 is handed the request, then leaves without answering.
    net.request(1, ROOM, 5, "ask", "?", &[0], 60_000);
    net.run_until(5 * SEC, |net| !requests(&net.nodes[0]).is_empty());
    net.leave(0, ROOM);
    let got = answered(&mut net, 1, 5);
    assert_eq!(got.len(), 1);
    // Leaving answers what the session owed ("no handler") before the `@_leave`, as a page
    // would have it; either outcome ends the request well before its 60 s deadline.
    assert!(
        got[0].1 == Outcome::Rejected(ERR_NO_HANDLER.into()) || got[0].1 == Outcome::Disconnected,
        "{got:?}"
    );
}

#[test]
fn a_channel_nobody_serves_stays_a_plain_message() {
    let mut net = pair(15, plain(), plain());
    net.request(1, ROOM, 6, "chat", "hello", &[0], 1_000);
    net.run_until(3 * SEC, |net| !net.nodes[0].messages("chat").is_empty());
    assert_eq!(net.nodes[0].messages("chat").len(), 1);
    assert!(requests(&net.nodes[0]).is_empty());
}
