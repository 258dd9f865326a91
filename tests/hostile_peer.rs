//! A hostile meshrtc peer on a real link: an in-process node (the library's `Node`, with its
//! test hooks) joins a real daemon's room over the embedded relay and WebRTC, then records what
//! the wire carries and writes what no honest peer would.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;

use meshrtc::mesh::CellSize;

use meshrtc::node::JoinOptions;
use meshrtc::node::identity::peer_id_for;
use meshrtc::node::session::EventKind;
use meshrtc::proto::{self, event::Kind};
use meshrtc::room::Security;
use meshrtc::wire::Payload;
use meshrtc::wire::cell::CellFrame;
use meshrtc::wire::chunk::ActionChunk;
use meshrtc::wire::e2e;
use meshrtc::wire::frame::OuterFrame;
use nostr_sdk::Keys;

fn drops(status: &proto::StatusReply, name: &str) -> u64 {
    status.drops.get(name).copied().unwrap_or(0)
}

/// Waits until the daemon has counted `name` at least `min` times.
async fn wait_drop(d: &Daemon, name: &str, min: u64) -> proto::StatusReply {
    let deadline = Instant::now() + JOIN;
    loop {
        let s = d.status().await;
        if drops(&s, name) >= min {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never reached {min}: {:?}",
            s.drops
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn has_subslice(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The one-chunk messages of `action` among recorded frames from `from`.
fn action_payloads(frames: &[(String, Vec<u8>)], from: &str, action: &str) -> Vec<Vec<u8>> {
    frames
        .iter()
        .filter(|(peer, _)| peer == from)
        .filter_map(|(_, bytes)| {
            // Between daemons, app messages travel in tracked frames (see `wire::frame`).
            let frame = match OuterFrame::decode(bytes) {
                Ok(OuterFrame::Tracked { inner, .. }) => OuterFrame::decode(inner),
                other => other,
            };
            match frame {
                Ok(OuterFrame::Data { chunk, .. }) => {
                    ActionChunk::decode(chunk).ok().and_then(|c| {
                        (c.action == action && c.is_last() && !c.is_meta())
                            .then(|| c.payload.to_vec())
                    })
                }
                _ => None,
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_room_frames_carry_no_plaintext_and_open_only_with_the_room_key() {
    let a = Daemon::with_embedded_relay().await;
    let ida = a.peer_id().await;
    let mut sa = a.session().await;
    let ra = sa.join("e2e-wire", "vault", "correct horse").await;
    let b = InProcess::start(&a.relay_url()).await;
    b.node.hook_record_frames();
    b.join(
        "e2e-wire",
        "vault",
        JoinOptions {
            password: "correct horse".into(),
            ..Default::default()
        },
    )
    .await;
    let joined = b
        .wait(
            JOIN,
            |k| matches!(k, EventKind::PeerJoin(p, ..) if *p == ida),
        )
        .await;
    assert!(
        matches!(joined, Some(EventKind::PeerJoin(_, Security::E2e, _))),
        "{joined:?}"
    );
    // Both ends must have finished the handshake before A's sends have B to go to.
    assert!(
        sa.wait_join(&b.id, JOIN).await,
        "the daemon never saw the in-process peer join"
    );
    let secret = "the eagle lands at midnight";
    for payload in [
        text(secret),
        json(&format!(r#"{{"secret":"{secret}"}}"#)),
        binary(secret.as_bytes().to_vec(), r#"{"name":"midnight.txt"}"#),
    ] {
        assert!(
            sa.send(ra, "vault-chat", payload, &[])
                .await
                .error
                .is_none()
        );
        let got = b
            .wait(
                JOIN,
                |k| matches!(k, EventKind::Message { from, .. } if *from == ida),
            )
            .await;
        assert!(got.is_some(), "sealed message never arrived");
    }
    let frames = b.node.hook_recorded_frames();
    let from_a: Vec<&Vec<u8>> = frames
        .iter()
        .filter(|(p, _)| *p == ida)
        .map(|(_, f)| f)
        .collect();
    assert!(!from_a.is_empty(), "no frames recorded from the daemon");
    for f in &from_a {
        assert!(!has_subslice(f, secret.as_bytes()), "plaintext on the wire");
        assert!(
            !has_subslice(f, b"midnight.txt"),
            "metadata in plaintext on the wire"
        );
        assert!(
            !has_subslice(f, b"vault-chat"),
            "channel name in plaintext on the wire"
        );
    }
    let envelopes = action_payloads(&frames, &ida, meshrtc::room::ACTION_E2E);
    assert!(envelopes.len() >= 3, "{} sealed frames", envelopes.len());
    let right = e2e::derive_key("correct horse", "e2e-wire", "vault");
    let wrong = e2e::derive_key("battery staple", "e2e-wire", "vault");
    let other_room = e2e::derive_key("correct horse", "e2e-wire", "other");
    let mut opened = Vec::new();
    for env in &envelopes {
        assert_eq!(e2e::open(&wrong, env), Err(e2e::E2eError::Decrypt));
        assert_eq!(e2e::open(&other_room, env), Err(e2e::E2eError::Decrypt));
        opened.push(e2e::open(&right, env).expect("the room key opens it"));
    }
    assert!(
        opened
            .iter()
            .any(|(c, p, _)| c == "vault-chat" && *p == Payload::Text(secret.into())),
        "the recorded envelopes are not the messages sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downgrades_and_tampered_envelopes_are_dropped_counted_and_lose_nothing() {
    let a = Daemon::with_embedded_relay().await;
    let ida = a.peer_id().await;
    let mut sa = a.session().await;
    sa.join("e2e-hostile", "vault", "pw").await;
    let b = InProcess::start(&a.relay_url()).await;
    let rb = b
        .join(
            "e2e-hostile",
            "vault",
            JoinOptions {
                password: "pw".into(),
                ..Default::default()
            },
        )
        .await;
    assert!(sa.wait_join(&b.id, JOIN).await);
    assert!(
        b.wait(
            JOIN,
            |k| matches!(k, EventKind::PeerJoin(p, Security::E2e, _) if *p == ida)
        )
        .await
        .is_some()
    );
    let send = |action: &str, payload: Payload| {
        assert!(
            b.node
                .hook_send_action("e2e-hostile", "vault", &ida, action, payload),
            "raw send failed"
        );
    };
    // Downgrade: an e2e peer sending a plaintext channel message.
    send("chat", Payload::Text("downgraded".into()));
    wait_drop(&a, "e2e_plaintext_refused", 1).await;
    // An envelope that is not binary.
    send(
        meshrtc::room::ACTION_E2E,
        Payload::Text("not an envelope".into()),
    );
    wait_drop(&a, "e2e_malformed", 1).await;
    // A genuine envelope with one bit flipped, and one sealed with another room's key.
    let key = e2e::derive_key("pw", "e2e-hostile", "vault");
    let mut env = e2e::seal(&key, "chat", &Payload::Text("tampered".into()), None);
    let last = env.len() - 1;
    env[last] ^= 1;
    send(meshrtc::room::ACTION_E2E, Payload::Binary(env.into()));
    let other = e2e::derive_key("pw", "e2e-hostile", "elsewhere");
    send(
        meshrtc::room::ACTION_E2E,
        Payload::Binary(e2e::seal(&other, "chat", &Payload::Text("misrouted".into()), None).into()),
    );
    wait_drop(&a, "e2e_decrypt_failed", 2).await;
    // Nothing above reached the app, and a genuine message still does.
    b.node
        .send(
            b.session,
            rb,
            "chat",
            Payload::Text("genuine".into()),
            None,
            &[],
        )
        .await
        .expect("genuine send");
    let m = sa
        .wait_message(JOIN)
        .await
        .expect("genuine message arrives");
    assert_eq!(
        m.payload,
        Some(text("genuine")),
        "a hostile frame was delivered"
    );
}

/// A frame from `keys` for a cells room, allowed `max_hops` (signed), carrying `payload`.
fn cell_frame(keys: &Keys, salt: &[u8], seq: u64, max_hops: u8, payload: Vec<u8>) -> CellFrame {
    let mut f = CellFrame::sign(keys, salt, seq, max_hops, Vec::new(), Bytes::from(payload));
    // Not yet sent to the cell: the receiver, as the first member to get it, passes it on.
    f.fanout = false;
    f
}

fn micros_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_micros() as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_cell_frames_are_dropped_and_counted_and_ttl_is_clamped() {
    const APP: &str = "cells-hostile";
    let a = Daemon::with_embedded_relay().await;
    let ida = a.peer_id().await;
    let mut sa = a.session().await;
    sa.join_cells(APP, "hive", "", 0).await;
    let cells = || JoinOptions {
        cells: Some(CellSize::default()),
        ..Default::default()
    };
    let b = InProcess::start(&a.relay_url()).await;
    let watcher = InProcess::start(&a.relay_url()).await;
    watcher.node.hook_record_frames();
    b.join(APP, "hive", cells()).await;
    watcher.join(APP, "hive", cells()).await;
    // The daemon's census holds all three before any frame is judged.
    let full = sa
        .wait_for(
            JOIN,
            |e| matches!(&e.kind, Some(Kind::MeshState(m)) if m.members == 3),
        )
        .await;
    assert!(full.is_some(), "the daemon never saw a roster of 3");
    assert!(sa.wait_join(&b.id, JOIN).await && sa.wait_join(&watcher.id, JOIN).await);
    let salt = b.node.hook_cell_salt(APP, "hive").expect("cells room");
    let send = |frame: &CellFrame| {
        assert!(
            b.node.hook_send_action(
                APP,
                "hive",
                &ida,
                meshrtc::room::ACTION_CELL,
                Payload::Binary(frame.encode().into())
            ),
            "raw send failed"
        );
    };
    let body = |t: &str| {
        b.node
            .hook_cell_payload(APP, "hive", "chat", &Payload::Text(t.into()))
            .expect("cell payload")
    };
    // Forged: a genuine frame whose signature no longer matches.
    let mut forged = cell_frame(&b.keys, &salt, micros_now(), 2, body("forged"));
    forged.sig[10] ^= 0x40;
    send(&forged);
    // Wrong room: correctly signed, but over another room's salt.
    send(&cell_frame(
        &b.keys,
        b"another room",
        micros_now() + 1,
        2,
        body("elsewhere"),
    ));
    wait_drop(&a, "cell_bad_signature", 2).await;
    // Inflated TTL: a genuine frame asking for 255 hops.
    let inflated = cell_frame(&b.keys, &salt, micros_now() + 2, 255, body("inflated"));
    send(&inflated);
    let m = sa
        .wait_message(JOIN)
        .await
        .expect("the genuine frame is delivered");
    assert_eq!(
        (m.from.as_str(), m.payload),
        (b.id.as_str(), Some(text("inflated")))
    );
    // Replay: the same frame again is dropped, not delivered twice.
    send(&inflated);
    wait_drop(&a, "cell_duplicate", 1).await;
    // The daemon passed the frame on to the third member with its TTL clamped to the topology.
    assert!(
        watcher
            .wait(
                JOIN,
                |k| matches!(k, EventKind::Message { from, .. } if *from == b.id)
            )
            .await
            .is_some(),
        "the frame never reached the third member"
    );
    let relayed: Vec<CellFrame> = action_payloads(
        &watcher.node.hook_recorded_frames(),
        &ida,
        meshrtc::room::ACTION_CELL,
    )
    .iter()
    .filter_map(|p| CellFrame::decode(p).ok())
    .filter(|f| f.origin == inflated.origin && f.seq == inflated.seq)
    .collect();
    assert_eq!(relayed.len(), 1, "forwarded {} times", relayed.len());
    let limit = watcher
        .node
        .status()
        .await
        .rooms
        .iter()
        .find_map(|r| r.cells.as_ref().map(|c| c.ttl))
        .expect("cells status");
    // Its signed limit is untouched (it still verifies) and one hop is counted: the next
    // peer has fewer than its topology's limit left.
    assert_eq!(relayed[0].verify(&salt), Ok(()));
    assert_eq!((relayed[0].max_hops, relayed[0].hops), (255, 1));
    let left = limit
        .min(u32::from(relayed[0].max_hops))
        .saturating_sub(u32::from(relayed[0].hops));
    assert!(
        left < limit.max(1),
        "{left} hops left, not clamped to the topology's {limit}"
    );
    // Nothing hostile reached the app; the app is alive and a genuine frame still arrives.
    send(&cell_frame(
        &b.keys,
        &salt,
        micros_now() + 3,
        2,
        body("after"),
    ));
    let m = sa.wait_message(JOIN).await.expect("still delivering");
    assert_eq!(m.payload, Some(text("after")));

    // A frame signed by a throwaway key that never joined, passed on by a member: it waits a
    // few seconds for a roster record that never comes, then is dropped and counted; the app
    // never sees it (before admission it was delivered as from a made-up peer id).
    let throwaway = Keys::generate();
    send(&cell_frame(
        &throwaway,
        &salt,
        micros_now() + 4,
        2,
        body("never joined"),
    ));
    wait_drop(&a, "cell_unknown_origin", 1).await;
    // A re-sent copy with its hop limit raised no longer verifies: refused, counted, and not
    // passed on a second time (before, an unsigned TTL raised bought a second flood).
    let bad_sigs = drops(&a.status().await, "cell_bad_signature");
    let one_hop = cell_frame(&b.keys, &salt, micros_now() + 5, 1, body("one hop"));
    send(&one_hop);
    let m = sa.wait_message(JOIN).await.expect("the genuine copy");
    assert_eq!(m.payload, Some(text("one hop")));
    let mut raised = one_hop.clone();
    raised.max_hops = 9;
    send(&raised);
    wait_drop(&a, "cell_bad_signature", bad_sigs + 1).await;
    // The marker: a genuine frame sent after it, so the watcher has seen whatever came before.
    let marker = cell_frame(&b.keys, &salt, micros_now() + 6, 2, body("marker"));
    send(&marker);
    let m = sa.wait_message(JOIN).await.expect("the marker");
    assert_eq!(m.payload, Some(text("marker")));
    assert!(
        watcher
            .wait(JOIN, |k| matches!(k, EventKind::Message { payload: Payload::Text(p), .. } if p == "marker"))
            .await
            .is_some(),
        "the marker never reached the third member"
    );
    let copies = |origin: [u8; 32], seq: u64| -> usize {
        action_payloads(
            &watcher.node.hook_recorded_frames(),
            &ida,
            meshrtc::room::ACTION_CELL,
        )
        .iter()
        .filter_map(|p| CellFrame::decode(p).ok())
        .filter(|f| f.origin == origin && f.seq == seq)
        .count()
    };
    assert_eq!(copies(one_hop.origin, one_hop.seq), 1, "passed on twice");
    let stray = action_payloads(
        &watcher.node.hook_recorded_frames(),
        &ida,
        meshrtc::room::ACTION_CELL,
    )
    .iter()
    .filter_map(|p| CellFrame::decode(p).ok())
    .filter(|f| f.origin == throwaway.public_key().to_bytes())
    .count();
    assert_eq!(stray, 0, "the throwaway key's frame was passed on");

    // A flood of "gone" notices naming the daemon: forty from a key that never joined (dropped
    // and counted), forty from a member (rate-limited): the daemon answers "alive" once or
    // twice, not once per notice.
    let gone = {
        let mut g = vec![meshrtc::node::cells::NOTICE_GONE];
        g.extend_from_slice(ida.as_bytes());
        g
    };
    let base = micros_now() + 10;
    for i in 0..40 {
        send(&cell_frame(&throwaway, &salt, base + i, 2, gone.clone()));
        send(&cell_frame(&b.keys, &salt, base + 100 + i, 2, gone.clone()));
    }
    wait_drop(&a, "cell_notice_not_member", 40).await;
    wait_drop(&a, "cell_notice_rate_limited", 40 - 16).await;
    // Any owed answer goes within two seconds.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let alive: std::collections::BTreeSet<u64> = action_payloads(
        &watcher.node.hook_recorded_frames(),
        &ida,
        meshrtc::room::ACTION_CELL,
    )
    .iter()
    .filter_map(|p| CellFrame::decode(p).ok())
    .filter(|f| f.payload[..] == [meshrtc::node::cells::NOTICE_ALIVE])
    .filter(|f| nostr_sdk::PublicKey::from_slice(&f.origin).is_ok_and(|k| peer_id_for(&k) == ida))
    .map(|f| f.seq)
    .collect();
    assert!(
        (1..=2).contains(&alive.len()),
        "{} alive broadcasts for 80 notices",
        alive.len()
    );
    // Nothing hostile reached the app.
    send(&cell_frame(
        &b.keys,
        &salt,
        micros_now() + 7,
        2,
        body("last"),
    ));
    let m = sa.wait_message(JOIN).await.expect("still delivering");
    assert_eq!(
        m.payload,
        Some(text("last")),
        "something else arrived first"
    );
}

/// A hostile keeper: it tells peers it keeps `chat`, collects a genuine origin signature, then
/// serves a peer catching up a page with that entry, the entry altered, an entry it signed itself
/// under the origin's name, and the genuine entry again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_keepers_altered_and_impersonated_entries_are_refused_and_counted() {
    use meshrtc::wire::history::{HistMsg, WireEntry};
    const APP: &str = "keeper-hostile";
    let a = Daemon::with_embedded_relay().await;
    let ida = a.peer_id().await;
    let h = InProcess::start(&a.relay_url()).await;
    h.join(APP, "log", JoinOptions::default()).await;
    let mut sa = a.session().await;
    let ra = sa.join(APP, "log", "").await;
    assert!(sa.wait_join(&h.id, JOIN).await);
    h.node.hook_record_frames();
    let hist = |to: &str, msg: &HistMsg| {
        assert!(
            h.node.hook_send_action(
                APP,
                "log",
                to,
                meshrtc::room::ACTION_HISTORY,
                Payload::Binary(msg.encode().into())
            ),
            "raw send failed"
        );
    };
    hist(&ida, &HistMsg::Keeps(vec!["chat".into()]));
    sa.wait_keeper(ra, &h.id, "chat", JOIN).await;
    sa.send(ra, "chat", text("genuine"), &[]).await;
    let deadline = Instant::now() + JOIN;
    let sig = loop {
        let sigs: Vec<_> = action_payloads(
            &h.node.hook_recorded_frames(),
            &ida,
            meshrtc::room::ACTION_HISTORY,
        )
        .iter()
        .filter_map(|p| match HistMsg::decode(p) {
            Some(HistMsg::Sig { sig, .. }) => Some(sig),
            _ => None,
        })
        .collect();
        if let Some(s) = sigs.first() {
            break *s;
        }
        assert!(Instant::now() < deadline, "A never signed for its keeper");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let message = |t: &str| e2e::encode_message("chat", &Payload::Text(t.into()), None);
    let genuine = WireEntry {
        origin: ida.clone(),
        origin_ms: 1,
        signed: Some(sig),
        framed: false,
        message: message("genuine"),
    };
    let altered = WireEntry {
        message: message("altered"),
        ..genuine.clone()
    };
    let salt = meshrtc::wire::topic::root_topic(APP, "log");
    let (_, own) = meshrtc::wire::history::sign(&h.keys, salt.as_bytes(), 9, &message("forged"));
    let impersonated = WireEntry {
        signed: Some(own),
        message: message("forged"),
        ..genuine.clone()
    };
    // B was away; it joins asking for everything, and H is the keeper it asks.
    let b = Daemon::with_relays(&[a.relay_url()]).await;
    let idb = b.peer_id().await;
    let mut sb = b.session().await;
    sb.join_request(proto::JoinRequest {
        app: APP.into(),
        room: "log".into(),
        since: since_all(),
        ..Default::default()
    })
    .await;
    assert!(
        h.wait(
            JOIN,
            |k| matches!(k, EventKind::PeerJoin(p, ..) if *p == idb)
        )
        .await
        .is_some()
    );
    hist(&idb, &HistMsg::Keeps(vec!["chat".into()]));
    // H answers only once B has asked it (B's catch-up request is on the wire).
    let deadline = Instant::now() + JOIN;
    while !action_payloads(
        &h.node.hook_recorded_frames(),
        &idb,
        meshrtc::room::ACTION_HISTORY,
    )
    .iter()
    .any(|p| matches!(HistMsg::decode(p), Some(HistMsg::Request { .. })))
    {
        assert!(Instant::now() < deadline, "B never asked H to catch up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    hist(
        &idb,
        &HistMsg::Entries {
            done: true,
            next_cursor: 1,
            entries: vec![genuine.clone(), altered, impersonated, genuine],
        },
    );
    let s = wait_drop(&b, "history_bad_signature", 2).await;
    assert!(drops(&s, "history_duplicate") >= 1, "{:?}", s.drops);
    let m = sb.wait_message(JOIN).await.expect("the genuine entry");
    assert!(m.history && m.verified && m.from == ida, "{m:?}");
    assert_eq!(
        m.payload.and_then(|p| p.kind),
        Some(proto::payload::Kind::Text("genuine".into()))
    );
    // Nothing refused was delivered: the whole page was handled before the counters above moved,
    // so a live marker from A sent now is B's next message.
    sa.send(ra, "chat", text("marker"), &[]).await;
    let m = sb.wait_message(JOIN).await.expect("the marker");
    assert_eq!(
        m.payload.and_then(|p| p.kind),
        Some(proto::payload::Kind::Text("marker".into())),
        "a refused entry was delivered"
    );
}
