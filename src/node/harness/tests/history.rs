//! Durable channels on the harness: cursors, resume after a crash, the room held meanwhile.

use super::*;
use crate::history::KeepRule;
use crate::node::Since;

fn keeping(channel: &str) -> JoinOptions {
    JoinOptions {
        keep: vec![(
            channel.to_owned(),
            KeepRule {
                max_messages: Some(1_000),
                max_age: None,
            },
        )],
        ..JoinOptions::default()
    }
}

/// One chat message a node's sessions received.
struct Chat {
    from: String,
    cursor: crate::history::Cursor,
    history: bool,
    verified: bool,
    text: String,
}

/// The text messages on `chat` node `i`'s sessions received, in order.
fn chats(net: &Net, i: usize) -> Vec<Chat> {
    net.nodes[i]
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Message {
                channel,
                payload: crate::wire::Payload::Text(t),
                from,
                cursor,
                history,
                verified,
                ..
            } if channel == "chat" => Some(Chat {
                from: from.to_string(),
                cursor: *cursor,
                history: *history,
                verified: *verified,
                text: t.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// Node `i` joins room `r` asking for everything kept.
fn join_catching_up(net: &mut Net, i: usize) {
    net.join(
        i,
        "r",
        JoinOptions {
            since: Some(Since::All),
            ..plain()
        },
    );
}

/// (cursor, history flag, text) of the chat messages a node's sessions received.
fn chat(net: &Net, i: usize) -> Vec<(crate::history::Cursor, bool, String)> {
    chats(net, i)
        .into_iter()
        .map(|c| (c.cursor, c.history, c.text))
        .collect()
}

#[test]
fn an_app_that_crashed_resumes_from_its_last_cursor_without_gap_or_duplicate() {
    let mut net = Net::new(91, 2);
    net.join(0, "r", keeping("chat"));
    net.join(1, "r", plain());
    assert!(net.run_until(10 * SEC, |n| converged(n, "r", &[0, 1])));
    for i in 0..5 {
        net.send(1, "r", "chat", &format!("before {i}"));
        net.send(1, "r", "other", "not kept");
    }
    net.run_for(SEC);
    let seen = chat(&net, 0);
    assert_eq!(seen.len(), 5);
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "cursors increase");
    assert!(seen.iter().all(|(c, h, _)| c.micros() > 0 && !h));
    let last = seen[2].0;
    // The app crashes: its session ends without leaving; the node stays in the room.
    let old = net.nodes[0].session;
    net.nodes[0].core.close_session(old, net.now);
    net.run_for(SEC);
    assert!(net.nodes[1].joined("r").contains(&net.nodes[0].id()));
    for i in 0..3 {
        net.send(1, "r", "chat", &format!("while away {i}"));
    }
    net.run_for(SEC);
    // It restarts with the cursor of the third message it saw.
    net.nodes[0].events.clear();
    net.nodes[0].session = net.nodes[0].core.open_session();
    let resume = JoinOptions {
        since: Some(Since::Cursor(last)),
        ..keeping("chat")
    };
    net.join(0, "r", resume);
    net.send(1, "r", "chat", "live");
    net.run_for(SEC);
    let texts: Vec<(bool, String)> = chat(&net, 0).into_iter().map(|(_, h, t)| (h, t)).collect();
    let expect: Vec<(bool, String)> = ["before 3", "before 4"]
        .iter()
        .chain(["while away 0", "while away 1", "while away 2"].iter())
        .map(|t| (true, t.to_string()))
        .chain([(false, "live".to_string())])
        .collect();
    assert_eq!(texts, expect);
    // An explicit leave does end the room.
    net.leave(0, "r");
    net.run_for(5 * SEC);
    assert!(!net.nodes[1].joined("r").contains(&net.nodes[0].id()));
}

/// Sends a durable-channel message from node `from` to node `to` as it would go on the wire.
fn inject_hist(net: &mut Net, from: usize, to: usize, msg: &crate::wire::history::HistMsg) {
    let peer = net.nodes[to].id();
    let (_, frames) = net.nodes[from]
        .core
        .hook_frames(
            crate::node::harness::APP,
            "r",
            &peer,
            crate::room::ACTION_HISTORY,
            &crate::wire::Payload::Binary(bytes::Bytes::from(msg.encode())),
        )
        .expect("a link");
    for f in frames {
        assert!(net.inject_frame(from, to, f));
    }
}

/// (history, verified, text) of what node `i` received on chat.
fn received(net: &Net, i: usize) -> Vec<(bool, bool, String)> {
    chats(net, i)
        .into_iter()
        .map(|c| (c.history, c.verified, c.text))
        .collect()
}

#[test]
fn a_newcomer_catches_up_from_a_keeper_with_every_signature_checked() {
    let mut net = Net::new(92, 3);
    net.join(0, "r", keeping("chat"));
    net.join(1, "r", plain());
    assert!(net.run_until(10 * SEC, |n| converged(n, "r", &[0, 1])));
    net.run_for(SEC);
    for i in 0..600 {
        net.send(1, "r", "chat", &format!("m{i}"));
    }
    net.run_for(2 * SEC);
    assert_eq!(net.nodes[0].kept.len(), 600);
    assert!(net.nodes[0].kept.iter().all(|(_, _, e)| e.signed.is_some()));
    // Node 2 was not there; it joins asking for everything and gets it from the keeper, in
    // order, verified, across pages; then live messages are not repeated.
    let since_all = JoinOptions {
        since: Some(Since::All),
        ..plain()
    };
    net.join(2, "r", since_all);
    assert!(net.run_until(10 * SEC, |n| converged(n, "r", &[0, 1, 2])));
    net.run_for(3 * SEC);
    net.send(1, "r", "chat", "live");
    net.run_for(SEC);
    let got = received(&net, 2);
    let want: Vec<(bool, bool, String)> = (0..600)
        .map(|i| (true, true, format!("m{i}")))
        .chain([(false, false, "live".to_string())])
        .collect();
    assert_eq!(got, want);
}

/// A catch-up page (the first chunk of an `@_mrhist` message of kind 4).
fn is_history_page(frame: &[u8]) -> bool {
    let Ok(OuterFrame::Data { chunk, .. }) = OuterFrame::decode(frame) else {
        return false;
    };
    crate::wire::chunk::ActionChunk::decode(chunk)
        .is_ok_and(|c| c.action == crate::room::ACTION_HISTORY && c.payload.first() == Some(&4))
}

#[test]
fn forged_altered_and_replayed_history_is_dropped_and_counted() {
    use crate::wire::history::{HistMsg, WireEntry};
    let mut net = Net::new(93, 3);
    net.join(0, "r", keeping("chat"));
    net.join(1, "r", plain());
    assert!(net.run_until(10 * SEC, |n| converged(n, "r", &[0, 1])));
    net.run_for(SEC);
    net.send(1, "r", "chat", "genuine");
    net.run_for(SEC);
    let (_, _, kept) = net.nodes[0].kept[0].clone();
    let genuine = WireEntry {
        origin: kept.origin.clone(),
        origin_ms: kept.origin_ms,
        signed: kept.signed,
        framed: false,
        message: crate::wire::e2e::encode_message("chat", &kept.payload, None),
    };
    // Node 2 asks; the keeper (node 0) is made hostile: its pages are replaced by ours.
    net.filter_frames(0, 2, is_history_page);
    join_catching_up(&mut net, 2);
    assert!(net.run_until(10 * SEC, |n| converged(n, "r", &[0, 1, 2])));
    let mut altered = genuine.clone();
    altered.message = crate::wire::e2e::encode_message(
        "chat",
        &crate::wire::Payload::Text("forged".into()),
        None,
    );
    let salt = net.nodes[0]
        .core
        .history_salt(crate::node::harness::APP, "r");
    let (_, other_sig) = crate::wire::history::sign(&net.nodes[0].keys, &salt, 1, &altered.message);
    let mut impersonated = altered.clone();
    impersonated.signed = Some(other_sig);
    let page = HistMsg::Entries {
        done: true,
        next_cursor: 1,
        entries: vec![genuine.clone(), altered, impersonated, genuine],
    };
    inject_hist(&mut net, 0, 2, &page);
    net.run_for(SEC);
    let core = &net.nodes[2].core;
    assert_eq!(core.drops(DropReason::HistoryBadSignature), 2);
    assert!(core.drops(DropReason::HistoryDuplicate) >= 1);
    let texts: Vec<String> = received(&net, 2)
        .into_iter()
        .filter(|(h, _, _)| *h)
        .map(|(_, _, t)| t)
        .collect();
    assert_eq!(texts, ["genuine"], "only the genuine entry, once");
}

/// Pages nobody asked for (here: to a node that never caught up, from a peer it never asked) are
/// dropped whole before any signature is checked, and nothing from them is delivered.
#[test]
fn unsolicited_history_pages_are_dropped_unchecked() {
    use crate::wire::history::{HistMsg, WireEntry};
    let mut net = Net::new(94, 2);
    net.join(0, "r", plain());
    net.join(1, "r", plain());
    assert!(net.run_until(10 * SEC, |n| converged(n, "r", &[0, 1])));
    let salt = net.nodes[0]
        .core
        .history_salt(crate::node::harness::APP, "r");
    let message = crate::wire::e2e::encode_message(
        "chat",
        &crate::wire::Payload::Text("pushed".into()),
        None,
    );
    let (_, sig) = crate::wire::history::sign(&net.nodes[0].keys, &salt, 1, &message);
    let entry = WireEntry {
        origin: "someone-else-entirely".into(),
        origin_ms: 1,
        signed: Some(sig),
        framed: false,
        message,
    };
    let page = HistMsg::Entries {
        done: true,
        next_cursor: 1,
        entries: vec![entry; 64],
    };
    inject_hist(&mut net, 0, 1, &page);
    net.run_for(SEC);
    let core = &net.nodes[1].core;
    assert_eq!(core.drops(DropReason::HistoryUnsolicited), 1);
    assert_eq!(
        core.drops(DropReason::HistoryBadSignature),
        0,
        "signatures were checked"
    );
    assert!(received(&net, 1).is_empty());
}

#[test]
fn in_a_cells_room_history_carries_the_cell_frame_signatures() {
    let mut net = Net::new(94, 4);
    let keeper = JoinOptions { ..cells(8) };
    let keeper = JoinOptions {
        keep: keeping("chat").keep,
        ..keeper
    };
    net.join(0, "r", keeper);
    net.join(1, "r", cells(8));
    assert!(net.run_until(15 * SEC, |n| converged(n, "r", &[0, 1])));
    net.run_for(2 * SEC);
    for i in 0..30 {
        net.send(1, "r", "chat", &format!("c{i}"));
    }
    net.run_for(2 * SEC);
    assert_eq!(net.nodes[0].kept.len(), 30);
    assert!(
        net.nodes[0]
            .kept
            .iter()
            .all(|(_, _, e)| e.signed.is_some() && e.framed.is_some()),
        "kept without the frame signature"
    );
    net.join(
        2,
        "r",
        JoinOptions {
            since: Some(Since::All),
            verified_only: true,
            ..cells(8)
        },
    );
    assert!(net.run_until(15 * SEC, |n| converged(n, "r", &[0, 1, 2])));
    net.run_for(3 * SEC);
    let got = received(&net, 2);
    let want: Vec<(bool, bool, String)> = (0..30).map(|i| (true, true, format!("c{i}"))).collect();
    assert_eq!(got, want);
}

static PAGES_SEEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn count_history_page(frame: &[u8]) -> bool {
    if is_history_page(frame) {
        PAGES_SEEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    false
}

/// A peer flooding a keeper with catch-up requests that make it read much and send little gets
/// pages at the rate its read budget allows (the rest are replaced, counted), and an honest
/// newcomer still catches up in full.
#[test]
fn a_catch_up_request_flood_is_served_within_the_peers_read_budget() {
    use crate::wire::history::HistMsg;
    let mut net = Net::new(95, 3);
    let keep = |ch: &str| {
        (
            ch.to_owned(),
            KeepRule {
                max_messages: Some(10_000),
                max_age: None,
            },
        )
    };
    net.join(
        0,
        "r",
        JoinOptions {
            keep: vec![keep("chat"), keep("log")],
            ..JoinOptions::default()
        },
    );
    net.join(1, "r", plain());
    assert!(net.run_until(10 * SEC, |n| converged(n, "r", &[0, 1])));
    for i in 0..3 {
        net.send(1, "r", "chat", &format!("chat {i}"));
    }
    // 2.5 MiB of another kept channel: every request for chat reads a full scan's worth.
    let filler = "x".repeat(64 << 10);
    for _ in 0..40 {
        net.send(1, "r", "log", &filler);
        net.run_for(Duration::from_millis(20));
    }
    net.run_for(SEC);
    assert_eq!(net.nodes[0].kept.len(), 43);
    net.filter_frames(0, 1, count_history_page);
    let ask = HistMsg::Request {
        after_ms: 0,
        after_cursor: 0,
        channels: vec!["chat".into()],
    };
    // 400 requests in 2 s.
    for _ in 0..400 {
        inject_hist(&mut net, 1, 0, &ask);
        net.run_for(Duration::from_millis(5));
    }
    net.run_for(SEC);
    let pages = PAGES_SEEN.load(std::sync::atomic::Ordering::Relaxed);
    // 8 MiB at once and 8 MiB/s, about 2 MiB a page: some 15 pages in 3 s (the old
    // request-count limit served 8 at once and then 50/s, each reading everything).
    eprintln!("{pages} pages served");
    assert!((5..=40).contains(&pages), "{pages} pages served");
    let replaced = net.nodes[0].core.drops(DropReason::HistoryRequestReplaced);
    assert!(replaced >= 300, "{replaced} requests replaced");
    // An honest newcomer still gets everything.
    join_catching_up(&mut net, 2);
    assert!(net.run_until(10 * SEC, |n| converged(n, "r", &[0, 1, 2])));
    net.run_for(5 * SEC);
    let texts: Vec<String> = received(&net, 2)
        .into_iter()
        .filter(|(h, _, t)| *h && t.starts_with("chat"))
        .map(|(_, _, t)| t)
        .collect();
    assert_eq!(texts, ["chat 0", "chat 1", "chat 2"]);
}

/// (from, verified, text) of the chat messages node `i` received from history.
fn from_history(net: &Net, i: usize) -> Vec<(String, bool, String)> {
    chats(net, i)
        .into_iter()
        .filter(|c| c.history)
        .map(|c| (c.from, c.verified, c.text))
        .collect()
}

/// A hostile keeper dates an entry a day ahead (to make the next keeper skip everything) and
/// passes an unsigned one off as another peer's: the first is refused and counted, the second
/// is delivered as the keeper's own word, unverified; the honest signed entry arrives as its
/// signer's.
#[test]
fn a_keeper_can_neither_date_entries_ahead_nor_lend_unsigned_ones_a_name() {
    use crate::wire::history::{HistMsg, WireEntry};
    let mut net = Net::new(96, 3);
    net.join(0, "r", keeping("chat"));
    net.join(1, "r", plain());
    assert!(net.run_until(10 * SEC, |n| converged(n, "r", &[0, 1])));
    net.filter_frames(0, 2, is_history_page);
    join_catching_up(&mut net, 2);
    assert!(net.run_until(10 * SEC, |n| converged(n, "r", &[0, 1, 2])));
    net.run_for(SEC);
    let salt = net.nodes[0]
        .core
        .history_salt(crate::node::harness::APP, "r");
    let text = |t: &str| {
        crate::wire::e2e::encode_message("chat", &crate::wire::Payload::Text(t.into()), None)
    };
    let now_us = net.nodes[1].core.wall_us();
    let signed_by_1 = |seq: u64, t: &str| {
        let message = text(t);
        let (_, sig) = crate::wire::history::sign(&net.nodes[1].keys, &salt, seq, &message);
        WireEntry {
            origin: net.nodes[1].id(),
            origin_ms: 1,
            signed: Some(sig),
            framed: false,
            message,
        }
    };
    let honest = signed_by_1(now_us - 1_000_000, "honest");
    let ahead = signed_by_1(now_us + 86_400_000_000, "a day ahead");
    let lent = WireEntry {
        origin: net.nodes[1].id(),
        origin_ms: 2,
        signed: None,
        framed: false,
        message: text("said by 1, says 0"),
    };
    let page = HistMsg::Entries {
        done: true,
        next_cursor: 9,
        entries: vec![lent, ahead, honest],
    };
    inject_hist(&mut net, 0, 2, &page);
    net.run_for(SEC);
    assert_eq!(net.nodes[2].core.drops(DropReason::HistoryFromTheFuture), 1);
    let (id0, id1) = (net.nodes[0].id(), net.nodes[1].id());
    assert_eq!(
        from_history(&net, 2),
        [
            (id0, false, "said by 1, says 0".to_string()),
            (id1, true, "honest".to_string())
        ]
    );
}

/// Two keepers hold the same messages; the one a newcomer would ask first answers "nothing".
/// The newcomer asks both and merges: it gets every message, once, in order.
#[test]
fn a_catch_up_merges_two_keepers_so_one_cannot_hide_messages() {
    use crate::wire::history::HistMsg;
    let mut net = Net::new(97, 4);
    net.join(0, "r", keeping("chat"));
    net.join(1, "r", keeping("chat"));
    net.join(2, "r", plain());
    assert!(net.run_until(10 * SEC, |n| converged(n, "r", &[0, 1, 2])));
    net.run_for(SEC);
    for i in 0..20 {
        net.send(2, "r", "chat", &format!("m{i}"));
        net.run_for(Duration::from_millis(10));
    }
    net.run_for(SEC);
    assert_eq!(net.nodes[0].kept.len(), 20);
    assert_eq!(net.nodes[1].kept.len(), 20);
    // The keeper a single-keeper catch-up would pick (the first by peer id) hides everything.
    let hostile = if net.nodes[0].id() < net.nodes[1].id() {
        0
    } else {
        1
    };
    net.filter_frames(hostile, 3, is_history_page);
    join_catching_up(&mut net, 3);
    assert!(net.run_until(10 * SEC, |n| converged(n, "r", &[0, 1, 2, 3])));
    net.run_for(SEC);
    let nothing = HistMsg::Entries {
        done: true,
        next_cursor: 1,
        entries: Vec::new(),
    };
    inject_hist(&mut net, hostile, 3, &nothing);
    net.run_for(3 * SEC);
    let texts: Vec<String> = from_history(&net, 3)
        .into_iter()
        .map(|(_, _, t)| t)
        .collect();
    let want: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, want);
}

/// In a password room, history crosses links sealed: a keeper's channel list is not readable
/// on the wire, and an unsealed history message is refused and counted.
#[test]
fn password_room_history_is_sealed_on_the_wire() {
    use crate::wire::history::HistMsg;
    let pw = |keep: bool| JoinOptions {
        password: "pw".into(),
        ..if keep {
            keeping("secret-channel")
        } else {
            plain()
        }
    };
    let mut net = Net::new(98, 2);
    net.join(0, "r", pw(true));
    net.join(1, "r", pw(false));
    assert!(net.run_until(10 * SEC, |n| converged(n, "r", &[0, 1])));
    net.run_for(SEC);
    // Node 1 learned node 0 keeps the channel (it opened the sealed Keeps)…
    let keeper = net.nodes[0].id();
    assert!(
        net.nodes[1].events.iter().any(|e| matches!(
            &e.kind,
            EventKind::PeerSeen(p, crate::node::session::PeerType::Keeper) if *p == keeper
        )),
        "the keeper was not seen"
    );
    // …and the same message unsealed, as an old or hostile peer would send it, is refused.
    inject_hist(
        &mut net,
        1,
        0,
        &HistMsg::Keeps(vec!["secret-channel".into()]),
    );
    net.run_for(SEC);
    assert_eq!(net.nodes[0].core.drops(DropReason::HistoryUnsealed), 1);
}
