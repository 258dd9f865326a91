//! A flooding peer on real links: webrtc-rs connections on loopback, this module's pumps, and a
//! stand-in for the node that handles messages slowly or not at all.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::*;

/// The largest message a link takes: what lets a flooder make the receiver hold the most.
const FLOOD_MESSAGE: usize = MAX_MESSAGE_BYTES;
/// What one flooding link may make both ends hold at most: the flooder's send buffer (2 MiB),
/// SCTP's receive buffer (4 MiB), webrtc-rs's queues (3 × 256 messages) and the link's budget.
const HELD_BOUND: usize = (2 << 20) + (4 << 20) + 3 * 256 * FLOOD_MESSAGE + INBOUND_LINK_BYTES;

fn loopback() -> TransportConfig {
    TransportConfig {
        ice_addr: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        ice: Default::default(),
        resolve_mdns: false,
        media_repair: true,
    }
}

/// A peer transport with its events.
struct Peer {
    transport: Transport,
    events: mpsc::UnboundedReceiver<TransportEvent>,
}

impl Peer {
    fn new() -> Self {
        let (tx, events) = mpsc::unbounded_channel();
        Peer {
            transport: Transport::new(loopback(), tx),
            events,
        }
    }
}

/// Links `node` (its connection `id`, offering) to `peer`; returns both connections (kept alive
/// by the caller) and the peer's end of the data channel.
async fn link(node: &mut Peer, id: ConnId, peer: &mut Peer) -> (Connection, Connection, Channel) {
    let (ours, offer) = node.transport.offer(id).await.expect("offer");
    let (theirs, answer) = peer.transport.answer(id, offer).await.expect("answer");
    apply_answer(&ours, answer).await.expect("apply answer");
    let (mut ours_open, mut theirs_open) = (false, None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !ours_open || theirs_open.is_none() {
        tokio::select! {
            Some(ev) = node.events.recv() => match ev {
                TransportEvent::Candidate(c, json) if c == id => {
                    let _ = add_candidate(&theirs, &json).await;
                }
                TransportEvent::Open(c, _, _) if c == id => ours_open = true,
                _ => {}
            },
            Some(ev) = peer.events.recv() => match ev {
                TransportEvent::Candidate(_, json) => {
                    let _ = add_candidate(&ours, &json).await;
                }
                TransportEvent::Open(_, channel, _) => theirs_open = Some(channel),
                _ => {}
            },
            _ = tokio::time::sleep_until(deadline) => panic!("link {id} did not open in 10 s"),
        }
    }
    (ours, theirs, theirs_open.expect("open"))
}

/// A peer that sends as fast as its link takes full chunks holds, on the receiving side, at
/// most [`INBOUND_LINK_BYTES`] waiting for a slow node, and once the node stops handling
/// messages altogether its sends stop: what it has in flight stays bounded instead of growing. An
/// honest peer's messages keep arriving meanwhile, and everything flows again afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_peer_is_slowed_not_buffered_and_an_honest_one_still_gets_through() {
    let (mut node, mut flooder, mut honest) = (Peer::new(), Peer::new(), Peer::new());
    let (_a, _b, flood) = link(&mut node, ConnId(1), &mut flooder).await;
    let (_c, _d, polite) = link(&mut node, ConnId(2), &mut honest).await;

    // The flooder: full chunks, back to back, as fast as its channel accepts them.
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = accepted.clone();
    let flooding = tokio::spawn(async move {
        let chunk = BytesMut::from(&[7u8; FLOOD_MESSAGE][..]);
        while flood.send(chunk.clone()).await.is_ok() {
            counted.fetch_add(FLOOD_MESSAGE, Ordering::Relaxed);
        }
    });
    let say = move |text: String| {
        let polite = polite.clone();
        async move { polite.send_text(&text).await.is_ok() }
    };

    // 1. A slow node (1 ms per flood message, about 16 MB/s): the honest peer's 20 messages all
    //    arrive, and the flood never has more than its budget waiting.
    let honest_sends = tokio::spawn({
        let say = say.clone();
        async move {
            for i in 0..20 {
                assert!(say(format!("honest {i}")).await);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let (mut heard, mut most_waiting, mut flood_handled) = (0, 0usize, 0usize);
    let deadline = Instant::now() + Duration::from_secs(8);
    while heard < 20 {
        assert!(
            Instant::now() < deadline,
            "only {heard} of 20 honest messages arrived in 8 s"
        );
        let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(1), node.events.recv()).await
        else {
            continue;
        };
        match ev {
            TransportEvent::Message(ConnId(1), m) => {
                // Events still queued (the honest ones are a handful), at the flood's size.
                most_waiting = most_waiting.max(node.events.len() * FLOOD_MESSAGE + m.len());
                flood_handled += m.len();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            TransportEvent::Message(ConnId(2), _) => heard += 1,
            _ => {}
        }
    }
    honest_sends.await.expect("honest sender");
    eprintln!(
        "slow node: {flood_handled} flood bytes handled, at most {most_waiting} waiting \
         (budget {INBOUND_LINK_BYTES})"
    );
    assert!(
        most_waiting <= INBOUND_LINK_BYTES + 4 * FLOOD_MESSAGE,
        "{most_waiting} bytes of one link waited for the node (budget {INBOUND_LINK_BYTES})"
    );

    // 2. A node that handles nothing for 4 s: the flooder's sends stop once the pipeline is
    //    full. What it has sent and the node has not handled (in the flooder's send buffer, on
    //    the wire, in SCTP and webrtc-rs's queues, and within the link's budget) stays bounded
    //    instead of growing with time; webrtc-rs's queues count messages, so this is measured
    //    with the largest message a link takes.
    let (mut held, stall_start) = (0usize, accepted.load(Ordering::Relaxed));
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        held = held.max(
            accepted
                .load(Ordering::Relaxed)
                .saturating_sub(flood_handled),
        );
    }
    eprintln!(
        "stalled node: the flooder got {} bytes accepted in 4 s; at most {held} bytes sent and \
         not handled",
        accepted.load(Ordering::Relaxed) - stall_start
    );
    assert!(
        held <= HELD_BOUND,
        "{held} bytes of one link are held for a node that handles nothing (bound {HELD_BOUND})"
    );

    // 3. The node resumes at full speed: a new honest message arrives, and the flood drains and
    //    flows again (more arrives than was held: nothing stayed stuck).
    assert!(say("after the stall".into()).await);
    let (mut after, mut resumed) = (false, 0usize);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !after || resumed <= held + (1 << 20) {
        assert!(
            Instant::now() < deadline,
            "after the stall: honest message arrived {after}, {resumed} flood bytes handled"
        );
        match tokio::time::timeout(Duration::from_secs(1), node.events.recv()).await {
            Ok(Some(TransportEvent::Message(ConnId(2), m))) => {
                after |= &m[..] == b"after the stall"
            }
            Ok(Some(TransportEvent::Message(ConnId(1), m))) => resumed += m.len(),
            _ => {}
        }
    }
    flooding.abort();
}

/// A frame given to a writer's first lane (a watchdog ping, a pong) goes out ahead of the data
/// already waiting in its queue: a link busy with a long message still answers for its health.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_lane_frame_overtakes_queued_data() {
    const QUEUED: usize = 300;
    let (mut node, mut peer) = (Peer::new(), Peer::new());
    let (_a, _b, channel) = link(&mut node, ConnId(1), &mut peer).await;
    let (frames_tx, frames_rx) = mpsc::channel(QUEUED + 1);
    let (first_tx, first_rx) = mpsc::channel(4);
    for i in 0..QUEUED {
        let mut frame = vec![0u8; 16 << 10];
        frame[..4].copy_from_slice(&(i as u32).to_be_bytes());
        frames_tx.try_send(Bytes::from(frame)).expect("queued");
    }
    spawn_writer(channel, SendWindow::new(64 << 10), frames_rx, first_rx);
    first_tx
        .try_send(Bytes::from_static(b"liveness"))
        .expect("first lane");
    let (mut data_before, mut seen) = (0, false);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen {
        assert!(
            Instant::now() < deadline,
            "the first-lane frame never arrived"
        );
        let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(1), node.events.recv()).await
        else {
            continue;
        };
        if let TransportEvent::Message(ConnId(1), m) = ev {
            if &m.bytes()[..] == b"liveness" {
                seen = true;
            } else {
                data_before += 1;
            }
        }
    }
    assert!(
        data_before < QUEUED / 2,
        "{data_before} of {QUEUED} queued frames went before the first-lane frame"
    );
}
