//! The node core's side of cells-room admission: what reaches the app, what is counted, and
//! how many "alive" answers a flood of reports costs.

use std::time::{Duration, Instant};

use bytes::Bytes;
use nostr_sdk::Keys;

use crate::drops::DropReason;
use crate::ids::{Identity, peer_id_for};
use crate::mesh::CellSize;
use crate::mesh::admission::{HOLD_FOR, Source};
use crate::node::core::cells::gone_notice;
use crate::node::core::events::EventKind;
use crate::node::core::types::JoinOptions;
use crate::node::core::{Core, Effect, RoomKey};
use crate::wire::cell::CellFrame;

const WALL: u64 = 1_700_000_000_000_000;

/// A core in a cells room with one member linked (an overlay link with no connection behind
/// it: what the core sends it is counted `send_no_link`).
fn core_with_member() -> (Core, RoomKey, Keys, Instant) {
    let keys = Keys::generate();
    let identity = Identity {
        peer_id: peer_id_for(&keys.public_key()),
        keys,
    };
    let config = crate::node::core_config(&crate::config::Config::default());
    let t0 = Instant::now();
    let mut core = Core::new(identity, config, t0, WALL, 7);
    let session = core.open_session();
    let opts = JoinOptions {
        cells: Some(CellSize::default()),
        ..JoinOptions::default()
    };
    core.join(session, "app", "room", &opts, None, t0)
        .expect("join");
    let key = RoomKey::new("app", "room");
    let member = Keys::generate();
    let id = peer_id_for(&member.public_key());
    let author = member.public_key().to_bytes();
    let cells = core
        .st
        .rooms
        .get_mut(&key)
        .and_then(|e| e.cells.as_mut())
        .expect("cells room");
    cells.heard(&id, &author, Source::Own, t0);
    core.at(t0);
    core.cells_link_up(&key, &id, t0);
    core.drain();
    core.tick(t0 + Duration::from_secs(1));
    let _ = core.take_effects();
    (core, key, member, t0 + Duration::from_secs(1))
}

fn chat(text: &str) -> Bytes {
    let mut body = vec![0];
    body.extend(crate::wire::e2e::encode_message(
        "chat",
        &crate::wire::Payload::Text(text.into()),
        None,
    ));
    Bytes::from(body)
}

fn salt(core: &Core, key: &RoomKey) -> Vec<u8> {
    core.cell_salt(&key.app, &key.room).expect("cells room")
}

/// Feeds a cell frame from `peer` at `now`, as the room hands it over.
fn feed(core: &mut Core, key: &RoomKey, peer: &str, frame: &CellFrame, now: Instant) {
    core.at(now);
    core.on_cell_frame(key, peer, &frame.encode());
    core.drain();
}

fn messages(effects: &[Effect]) -> Vec<(String, String)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Deliver { event, .. } => match &event.kind {
                EventKind::Message {
                    from,
                    payload: crate::wire::Payload::Text(t),
                    ..
                } => Some((from.to_string(), t.clone())),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[test]
fn only_members_frames_over_overlay_links_reach_the_app() {
    let (mut core, key, member, t) = core_with_member();
    let salt = salt(&core, &key);
    let mid = peer_id_for(&member.public_key());
    let mine = CellFrame::sign(&member, &salt, WALL + 10, 3, Vec::new(), chat("member"));
    feed(&mut core, &key, &mid, &mine, t);
    // A frame signed by a key that never joined, over the member's link.
    let throwaway = Keys::generate();
    let stray = CellFrame::sign(&throwaway, &salt, WALL + 11, 3, Vec::new(), chat("stray"));
    feed(&mut core, &key, &mid, &stray, t);
    // The member's own frame, over a link that is no overlay link (a page).
    let relayed = CellFrame::sign(&member, &salt, WALL + 12, 3, Vec::new(), chat("via page"));
    feed(&mut core, &key, "PAGEPAGEPAGEPAGEPAGE", &relayed, t);
    let later = t + HOLD_FOR + Duration::from_secs(1);
    core.tick(later);
    let got = messages(&core.take_effects());
    assert_eq!(got, vec![(mid, "member".to_owned())]);
    assert_eq!(core.drops(DropReason::CellUnknownOrigin), 1);
    assert_eq!(core.drops(DropReason::CellNotFromMember), 1);
}

#[test]
fn a_version_1_frame_is_refused_and_counted() {
    let (mut core, key, member, t) = core_with_member();
    let salt = salt(&core, &key);
    let mid = peer_id_for(&member.public_key());
    let mut bytes = CellFrame::sign(&member, &salt, WALL + 10, 3, Vec::new(), chat("v1")).encode();
    bytes[0] = 1;
    core.at(t);
    core.on_cell_frame(&key, &mid, &bytes);
    core.drain();
    assert_eq!(core.drops(DropReason::CellVersionRefused), 1);
    assert!(messages(&core.take_effects()).is_empty());
}

#[test]
fn a_flood_of_gone_notices_costs_one_alive_answer_per_interval() {
    let (mut core, key, member, t) = core_with_member();
    let salt = salt(&core, &key);
    let mid = peer_id_for(&member.public_key());
    let me = core.peer_id().to_owned();
    let throwaway = Keys::generate();
    let sent_before = core.drops(DropReason::SendNoLink);
    for i in 0..50u64 {
        for (k, keys) in [&member, &throwaway].into_iter().enumerate() {
            let body = Bytes::from(gone_notice(std::slice::from_ref(&me)));
            let seq = WALL + 100 + i * 2 + k as u64;
            let f = CellFrame::sign(keys, &salt, seq, 3, Vec::new(), body);
            feed(&mut core, &key, &mid, &f, t + Duration::from_millis(i * 10));
        }
    }
    // Every answer goes to the one linked member, which has no connection: one count each.
    let alive_now = core.drops(DropReason::SendNoLink) - sent_before;
    assert_eq!(
        alive_now, 1,
        "alive answers to 100 reports in half a second"
    );
    assert_eq!(core.drops(DropReason::CellNoticeNotMember), 50);
    assert!(core.drops(DropReason::CellNoticeRateLimited) >= 50 - 16);
    // The owed answer goes once the interval is over, and only once.
    for s in 1..=6u64 {
        core.tick(t + Duration::from_secs(s));
    }
    let alive = core.drops(DropReason::SendNoLink) - sent_before;
    assert_eq!(alive, 2);
}
