//! The engine's media path, without the node: two webrtc 0.21 connections on loopback that
//! already carry the data channel add a track, renegotiate, and move RTP — the steps the node
//! takes over `@_signal`.

mod common;

use std::time::Duration;

use bytes::Bytes;
use meshrtc::transport::media::{self, Codec, RemoteEvent, TrackSpec};
use meshrtc::transport::{self, TransportEvent};

fn vp8_packet(seq: u16, marker: bool) -> rtc::rtp::Packet {
    let mut p = rtc::rtp::Packet::default();
    p.header.version = 2;
    p.header.sequence_number = seq;
    p.header.timestamp = u32::from(seq) * 3_000;
    p.header.marker = marker;
    // A VP8 payload descriptor (start of partition) and a few bytes of "frame".
    p.payload = Bytes::from(vec![0x10, 0x00, 0x9d, 0x01, 0x2a, seq as u8]);
    p
}

/// One renegotiation: `pa` offers the tracks it added, `pb` answers.
async fn renegotiate(pa: &transport::Connection, pb: &transport::Connection) {
    let offer = media::renegotiation_offer(pa).await.expect("offer");
    assert!(offer.contains("VP8"), "the offer has no VP8: {offer}");
    let answer = media::answer_renegotiation(pb, offer, false)
        .await
        .expect("answer");
    transport::apply_answer(pa, answer)
        .await
        .expect("apply answer");
}

/// The next remote track at `b` (it surfaces with its first packet), within 10 s.
async fn next_remote_track(
    b_rx: &mut tokio::sync::mpsc::UnboundedReceiver<TransportEvent>,
) -> Option<media::RemoteTrack> {
    let wait = async {
        loop {
            if let Some(TransportEvent::Track(_, t)) = b_rx.recv().await {
                return t;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .ok()
}

fn video_spec() -> TrackSpec {
    TrackSpec {
        codec: Codec::Vp8,
        stream_id: "stream-a".into(),
        track_id: "video-a".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_track_added_after_the_data_channel_renegotiates_and_carries_rtp() {
    let (pa, pb, _a_rx, mut b_rx) = common::engine_pair().await;
    let local = media::add_track(&pa, &video_spec())
        .await
        .expect("add track");
    renegotiate(&pa, &pb).await;
    // The remote track surfaces with the first packet: keep sending until it does.
    let writer = {
        let local = local.clone();
        tokio::spawn(async move {
            for seq in 0..400u16 {
                let _ = local.write_rtp(vp8_packet(seq, true)).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let remote = next_remote_track(&mut b_rx)
        .await
        .expect("no remote track within 10 s");
    let (stream, track, codec) = remote.describe().await;
    assert_eq!(
        (stream.as_str(), track.as_str(), codec),
        ("stream-a", "video-a", Some(Codec::Vp8))
    );
    let mut got = 0;
    while got < 50 {
        match tokio::time::timeout(Duration::from_secs(5), remote.next()).await {
            Ok(RemoteEvent::Rtp(p)) => {
                assert_eq!(p.payload.len(), 6);
                got += 1;
            }
            Ok(RemoteEvent::Ended) => panic!("the track ended after {got} packets"),
            Err(_) => panic!("RTP stopped after {got} packets"),
        }
    }
    writer.abort();
    let _ = pa.close().await;
    let _ = pb.close().await;
}

/// A forwarded packet still carries the header extensions of the hop it came from (a page's
/// `sdes:mid` naming its own section, ids this connection never negotiated): they must not
/// reach the next hop, where the same ids mean something else. And the receiver's keyframe
/// request must reach the sending application, which alone can pass it to the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_packet_leaves_the_previous_hops_extensions_behind_and_its_receivers_pli_reaches_the_sender()
 {
    let (pa, pb, _a_rx, mut b_rx) = common::engine_pair().await;
    let local = media::add_send_slot(&pa, &video_spec())
        .await
        .expect("send slot");
    renegotiate(&pa, &pb).await;
    let writer = {
        let local = local.clone();
        tokio::spawn(async move {
            for seq in 0..400u16 {
                let mut p = vp8_packet(seq, true);
                // Id 1 is `sdes:mid` here too, naming a section that does not exist; id 9 was
                // never negotiated on this connection.
                p.header.extension = true;
                p.header.extension_profile = 0xBEDE;
                let _ = p.header.set_extension(1, Bytes::from_static(b"7"));
                let _ = p.header.set_extension(9, Bytes::from_static(b"xy"));
                let _ = local.write_rtp(p).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let remote = next_remote_track(&mut b_rx)
        .await
        .expect("no remote track within 10 s: packets with foreign extensions were refused");
    let mut got = 0;
    while got < 20 {
        match tokio::time::timeout(Duration::from_secs(5), remote.next()).await {
            Ok(RemoteEvent::Rtp(p)) => {
                let ids: Vec<u8> = p.header.extensions.iter().map(|e| e.id).collect();
                assert!(
                    !ids.contains(&1) && !ids.contains(&9),
                    "the previous hop's extensions arrived: {ids:?}"
                );
                got += 1;
            }
            Ok(RemoteEvent::Ended) => panic!("the track ended after {got} packets"),
            Err(_) => panic!("RTP stopped after {got} packets"),
        }
    }
    // The receiver asks for a keyframe: the sender's application hears it (a relaying daemon
    // passes it on to the track's source).
    remote.request_keyframe().await.expect("send PLI");
    let heard = tokio::time::timeout(Duration::from_secs(5), local.keyframe_requested()).await;
    assert_eq!(heard, Ok(Some(())), "the sender never heard the PLI");
    writer.abort();
    let _ = pa.close().await;
    let _ = pb.close().await;
}
