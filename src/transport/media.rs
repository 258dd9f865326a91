//! Media on a link: the codecs every connection offers, local tracks the node writes RTP to,
//! remote tracks it reads, and the SDP steps of renegotiation.
//!
//! The daemon never transcodes: a local track is fed encoded RTP (or samples the node has
//! packetized) and a remote track's RTP is handed on as it arrives. Which step of perfect
//! negotiation to take is the node core's decision; these functions only carry it out.

use std::sync::Arc;

use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_rtcp_reports, configure_simulcast_extension_headers, configure_twcc_receiver_only,
    register_default_interceptors,
};
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::peer_connection::RTCSessionDescription;
use webrtc::rtp_transceiver::{
    RTCRtpTransceiverDirection, RTCRtpTransceiverInit, RtpSender, RtpTransceiver,
};

use super::{Connection, TransportError, err};

pub use crate::codec::{Codec, MediaKind, TrackSpec};

/// The engine's name for a media kind.
fn codec_kind(kind: MediaKind) -> RtpCodecKind {
    match kind {
        MediaKind::Audio => RtpCodecKind::Audio,
        MediaKind::Video => RtpCodecKind::Video,
    }
}

/// The engine's description of a codec.
fn rtp_codec(codec: Codec) -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: codec.mime().to_owned(),
        clock_rate: codec.clock_rate(),
        channels: if codec == Codec::Opus { 2 } else { 0 },
        sdp_fmtp_line: String::new(),
        rtcp_feedback: Vec::new(),
    }
}

/// A media engine with the default codecs and interceptors (NACK repair unless `repair` is off,
/// RTCP reports, TWCC), and keyframe requests handed to the application.
pub(super) fn media_engine(
    repair: bool,
) -> Result<(MediaEngine, rtc::interceptor::Registry), TransportError> {
    let mut engine = MediaEngine::default();
    engine.register_default_codecs().map_err(err)?;
    let registry = if repair {
        register_default_interceptors(rtc::interceptor::Registry::new(), &mut engine)
            .map_err(err)?
    } else {
        let registry = configure_twcc_receiver_only(rtc::interceptor::Registry::new(), &mut engine)
            .map_err(err)?;
        configure_simulcast_extension_headers(&mut engine).map_err(err)?;
        configure_rtcp_reports(registry)
    };
    Ok((
        engine,
        super::keyframe_requests::KeyframeRequests::register(registry),
    ))
}

/// A local track on one link.
#[derive(Clone)]
pub struct LocalTrack {
    track: Arc<TrackLocalStaticRTP>,
    sender: Arc<dyn RtpSender>,
    ssrc: u32,
    codec: Codec,
    /// The negotiated payload type once known (`NO_PT` before): asked of the sender once, not
    /// for every packet.
    payload_type: Arc<std::sync::atomic::AtomicU16>,
}

/// `LocalTrack::payload_type` before negotiation.
const NO_PT: u16 = u16::MAX;

impl std::fmt::Debug for LocalTrack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalTrack")
            .field("ssrc", &self.ssrc)
            .field("codec", &self.codec)
            .finish()
    }
}

impl LocalTrack {
    /// Sends one RTP packet, rewritten to this link's SSRC and negotiated payload type, without
    /// the header extensions of the hop it came from. Fails until negotiation has bound the track.
    pub async fn write_rtp(&self, mut packet: rtc::rtp::Packet) -> Result<(), TransportError> {
        packet.header.ssrc = self.ssrc;
        // Extension ids are negotiated per connection: a forwarded packet's ids mean something
        // else here (a page's `sdes:mid` naming another section made Chromium drop a forwarded
        // video whenever the two legs numbered their sections differently), and the engine
        // refuses a packet whose id this connection never negotiated.
        packet.header.extension = false;
        packet.header.extension_profile = 0;
        packet.header.extensions.clear();
        packet.header.extensions_padding = 0;
        if let Some(pt) = self.payload_type().await {
            packet.header.payload_type = pt;
        }
        self.track.write_rtp(packet).await.map_err(err)
    }

    /// Waits for the receiver to ask for a keyframe (RTCP PLI or FIR); `None` once the track is
    /// no longer sent. One reader at a time.
    pub async fn keyframe_requested(&self) -> Option<()> {
        use webrtc::media_stream::track_local::TrackLocalEvent;
        loop {
            match self.track.poll().await? {
                TrackLocalEvent::OnRtcpPacket(packets)
                    if packets
                        .iter()
                        .any(|p| super::keyframe_requests::is_keyframe_request(p.as_ref())) =>
                {
                    return Some(());
                }
                _ => {}
            }
        }
    }

    /// The payload type the link negotiated for the track's codec.
    async fn payload_type(&self) -> Option<u8> {
        use std::sync::atomic::Ordering;
        let known = self.payload_type.load(Ordering::Relaxed);
        if known != NO_PT {
            return Some(known as u8);
        }
        let params = self.sender.get_parameters().await.ok()?;
        let mime = self.codec.mime();
        let pt = params
            .rtp_parameters
            .codecs
            .iter()
            .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime))
            .map(|c| c.payload_type)?;
        self.payload_type.store(u16::from(pt), Ordering::Relaxed);
        Some(pt)
    }
}

/// A track to write RTP to, with a fresh SSRC.
fn static_track(spec: &TrackSpec) -> (Arc<TrackLocalStaticRTP>, u32) {
    let ssrc: u32 = rand::random();
    let coding = RTCRtpEncodingParameters {
        rtp_coding_parameters: RTCRtpCodingParameters {
            ssrc: Some(ssrc),
            ..Default::default()
        },
        codec: rtp_codec(spec.codec),
        ..Default::default()
    };
    let track = MediaStreamTrack::new(
        spec.stream_id.clone(),
        spec.track_id.clone(),
        spec.track_id.clone(),
        codec_kind(spec.codec.kind()),
        vec![coding],
    );
    (Arc::new(TrackLocalStaticRTP::new(track)), ssrc)
}

impl LocalTrack {
    fn new(
        track: Arc<TrackLocalStaticRTP>,
        sender: Arc<dyn RtpSender>,
        ssrc: u32,
        codec: Codec,
    ) -> Self {
        LocalTrack {
            track,
            sender,
            ssrc,
            codec,
            payload_type: Arc::new(std::sync::atomic::AtomicU16::new(NO_PT)),
        }
    }
}

/// Adds a local track to a connection (a renegotiation follows).
pub async fn add_track(pc: &Connection, spec: &TrackSpec) -> Result<LocalTrack, TransportError> {
    let (track, ssrc) = static_track(spec);
    let sender = pc
        .add_track(track.clone() as Arc<dyn TrackLocal>)
        .await
        .map_err(err)?;
    Ok(LocalTrack::new(track, sender, ssrc, spec.codec))
}

/// Adds a local track in a media section of its own, send-only (a renegotiation follows).
/// Unlike `add_track` it never takes over a section the other side sends on.
pub async fn add_send_slot(
    pc: &Connection,
    spec: &TrackSpec,
) -> Result<LocalTrack, TransportError> {
    let (track, ssrc) = static_track(spec);
    let init = RTCRtpTransceiverInit {
        direction: RTCRtpTransceiverDirection::Sendonly,
        ..Default::default()
    };
    let transceiver = pc
        .add_transceiver_from_track(track.clone() as Arc<dyn TrackLocal>, Some(init))
        .await
        .map_err(err)?;
    let sender = transceiver
        .sender()
        .await
        .map_err(err)?
        .ok_or_else(|| TransportError("a send-only section without a sender".into()))?;
    Ok(LocalTrack::new(track, sender, ssrc, spec.codec))
}

/// Removes a local track from its connection (a renegotiation follows).
pub async fn remove_track(pc: &Connection, track: &LocalTrack) -> Result<(), TransportError> {
    pc.remove_track(&track.sender).await.map_err(err)
}

/// Makes a renegotiation offer and sets it as the local description; returns its SDP.
pub async fn renegotiation_offer(pc: &Connection) -> Result<String, TransportError> {
    let offer = pc.create_offer(None).await.map_err(err)?;
    let sdp = offer.sdp.clone();
    pc.set_local_description(offer).await.map_err(err)?;
    Ok(sdp)
}

/// Answers a remote renegotiation offer (rolling a colliding local offer back first when
/// `rollback`); returns the answer's SDP.
pub async fn answer_renegotiation(
    pc: &Connection,
    offer_sdp: String,
    rollback: bool,
) -> Result<String, TransportError> {
    // Only an offer still pending can be rolled back (ours may have failed to be set).
    if rollback && pc.pending_local_description().await.is_some() {
        let rb = RTCSessionDescription::rollback(None).map_err(err)?;
        pc.set_local_description(rb).await.map_err(err)?;
    }
    let offer = RTCSessionDescription::offer(offer_sdp).map_err(err)?;
    pc.set_remote_description(offer).await.map_err(err)?;
    let answer = pc.create_answer(None).await.map_err(err)?;
    let sdp = answer.sdp.clone();
    pc.set_local_description(answer).await.map_err(err)?;
    Ok(sdp)
}

/// A receiving media section this side offers (a page's leg: the page fills it with a track).
#[derive(Clone)]
pub struct ReceiveSlot(Arc<dyn RtpTransceiver>);

impl std::fmt::Debug for ReceiveSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReceiveSlot")
    }
}

impl ReceiveSlot {
    /// Its media id, once an offer has named it.
    pub async fn mid(&self) -> Option<String> {
        self.0.mid().await.ok().flatten()
    }
}

/// Adds a receive-only media section of `kind` (a renegotiation follows).
pub async fn add_receive_slot(
    pc: &Connection,
    kind: MediaKind,
) -> Result<ReceiveSlot, TransportError> {
    let init = RTCRtpTransceiverInit {
        direction: RTCRtpTransceiverDirection::Recvonly,
        ..Default::default()
    };
    pc.add_transceiver_from_kind(codec_kind(kind), Some(init))
        .await
        .map(ReceiveSlot)
        .map_err(err)
}

/// The media id of the section a remote track arrived on.
pub async fn remote_track_mid(pc: &Connection, track: &RemoteTrack) -> Option<String> {
    // Compared as addresses: a raw pointer may not be held across an await.
    let wanted = Arc::as_ptr(&track.0) as *const () as usize;
    for t in pc.get_transceivers().await {
        if let Ok(Some(r)) = t.receiver().await
            && Arc::as_ptr(r.track()) as *const () as usize == wanted
        {
            return t.mid().await.ok().flatten();
        }
    }
    None
}

/// The media id of the section a local track is sent on.
pub async fn local_track_mid(pc: &Connection, track: &LocalTrack) -> Option<String> {
    let wanted = track.sender.id();
    for t in pc.get_transceivers().await {
        if let Ok(Some(s)) = t.sender().await
            && s.id() == wanted
        {
            return t.mid().await.ok().flatten();
        }
    }
    None
}

/// A track a peer sends us.
#[derive(Clone)]
pub struct RemoteTrack(pub(super) Arc<dyn webrtc::media_stream::track_remote::TrackRemote>);

impl std::fmt::Debug for RemoteTrack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RemoteTrack")
    }
}

/// What a remote track reports.
#[derive(Debug)]
pub enum RemoteEvent {
    /// An RTP packet.
    Rtp(rtc::rtp::Packet),
    /// The track ended.
    Ended,
}

impl RemoteTrack {
    /// Its media stream id, track id, and codec (None for a codec meshrtc does not forward).
    pub async fn describe(&self) -> (String, String, Option<Codec>) {
        let stream = self.0.stream_id().await;
        let track = self.0.track_id().await;
        let mut codec = None;
        for ssrc in self.0.ssrcs().await {
            if let Some(c) = self.0.codec(ssrc).await {
                codec = Codec::from_mime(&c.mime_type);
                break;
            }
        }
        (stream, track, codec)
    }

    /// The next packet, or `Ended` once the track is gone.
    pub async fn next(&self) -> RemoteEvent {
        use webrtc::media_stream::track_remote::TrackRemoteEvent;
        loop {
            match self.0.poll().await {
                Some(TrackRemoteEvent::OnRtpPacket(p)) => return RemoteEvent::Rtp(p),
                Some(TrackRemoteEvent::OnEnded) | None => return RemoteEvent::Ended,
                Some(_) => {}
            }
        }
    }

    /// Asks the sender for a keyframe (RTCP PLI).
    pub async fn request_keyframe(&self) -> Result<(), TransportError> {
        let Some(ssrc) = self.0.ssrcs().await.first().copied() else {
            return Ok(());
        };
        let pli = rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: ssrc,
        };
        self.0.write_rtcp(vec![Box::new(pli)]).await.map_err(err)
    }
}

/// Turns encoded frames into RTP packets for one local track (SSRC and payload type are set
/// per link when the packets are written).
pub struct SamplePacketizer {
    inner: Box<dyn rtc::rtp::packetizer::Packetizer>,
    clock_rate: u32,
}

impl std::fmt::Debug for SamplePacketizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SamplePacketizer")
    }
}

/// RTP packets stay under this size (the usual path MTU, minus SRTP and headers).
const RTP_MTU: usize = 1_200;

impl SamplePacketizer {
    /// A packetizer for `codec`.
    pub fn new(codec: Codec) -> Result<Self, TransportError> {
        let payloader = rtp_codec(codec).payloader().map_err(err)?;
        let sequencer = Box::new(rtc::rtp::sequence::new_random_sequencer());
        let inner = rtc::rtp::packetizer::new_packetizer(
            std::time::Instant::now(),
            RTP_MTU,
            0,
            0,
            payloader,
            sequencer,
            codec.clock_rate(),
        );
        Ok(SamplePacketizer {
            inner: Box::new(inner),
            clock_rate: codec.clock_rate(),
        })
    }

    /// The packets of one frame lasting `duration`.
    pub fn packetize(
        &mut self,
        frame: &bytes::Bytes,
        duration: std::time::Duration,
    ) -> Result<Vec<rtc::rtp::Packet>, TransportError> {
        let samples = (duration.as_secs_f64() * f64::from(self.clock_rate)).round() as u32;
        self.inner
            .packetize(std::time::Instant::now(), frame, samples)
            .map_err(err)
    }
}

/// Parses an RTP packet (None when it is not one).
pub fn parse_rtp(bytes: &[u8]) -> Option<rtc::rtp::Packet> {
    use rtc::shared::marshal::Unmarshal as _;
    let mut buf = bytes;
    rtc::rtp::Packet::unmarshal(&mut buf).ok()
}

/// The wire bytes of an RTP packet.
pub fn encode_rtp(packet: &rtc::rtp::Packet) -> Option<bytes::Bytes> {
    use rtc::shared::marshal::Marshal as _;
    packet.marshal().ok().map(|b| b.freeze())
}

/// Whether an RTP payload starts a VP8 keyframe (RFC 7741: the first packet of a partition 0,
/// with the frame header's P bit clear).
pub fn vp8_keyframe_start(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    let (start, partition) = (first & 0x10 != 0, first & 0x07);
    if !start || partition != 0 {
        return false;
    }
    let mut i = 1;
    if first & 0x80 != 0 {
        let Some(&ext) = payload.get(1) else {
            return false;
        };
        i = 2;
        if ext & 0x80 != 0 {
            // Picture id: 7 bits, or 15 with the M bit.
            i += if payload.get(i).is_some_and(|b| b & 0x80 != 0) {
                2
            } else {
                1
            };
        }
        if ext & 0x40 != 0 {
            i += 1;
        }
        if ext & 0x30 != 0 {
            i += 1;
        }
    }
    payload.get(i).is_some_and(|b| b & 0x01 == 0)
}

/// Whether an RTP payload of `codec` starts a keyframe: VP8 (above), VP9 (RFC 9628: the
/// descriptor's B bit set and P bit clear) and AV1 (the aggregation header's N bit: a new coded
/// video sequence, which only a keyframe begins). Never for other codecs.
pub fn keyframe_start(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::Vp8 => vp8_keyframe_start(payload),
        Codec::Vp9 => payload
            .first()
            .is_some_and(|b| b & 0x08 != 0 && b & 0x40 == 0),
        Codec::Av1 => payload
            .first()
            .is_some_and(|b| b & 0x08 != 0 && b & 0x80 == 0),
        Codec::H264 | Codec::Opus => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp9_and_av1_keyframe_starts_are_told_apart() {
        // VP9: B=1, P=0 starts a keyframe; P=1 is predicted; B=0 continues a frame.
        assert!(keyframe_start(Codec::Vp9, &[0x08]));
        assert!(!keyframe_start(Codec::Vp9, &[0x48]));
        assert!(!keyframe_start(Codec::Vp9, &[0x00]));
        // AV1: N=1 with Z=0 starts a sequence; Z=1 continues an OBU.
        assert!(keyframe_start(Codec::Av1, &[0x18]));
        assert!(!keyframe_start(Codec::Av1, &[0x98]));
        assert!(!keyframe_start(Codec::Av1, &[0x10]));
        assert!(!keyframe_start(Codec::Opus, &[0x08]));
    }

    #[test]
    fn vp8_keyframes_are_told_from_inter_frames() {
        // S=1, PID=0, no extensions; frame header P bit 0 (key) or 1 (inter).
        assert!(vp8_keyframe_start(&[0x10, 0x00, 0x9d, 0x01]));
        assert!(!vp8_keyframe_start(&[0x10, 0x01, 0x9d]));
        // Not the start of a partition, or partition 1.
        assert!(!vp8_keyframe_start(&[0x00, 0x00]));
        assert!(!vp8_keyframe_start(&[0x11, 0x00]));
        // X with a 15-bit picture id (I, M), then a key frame header.
        assert!(vp8_keyframe_start(&[0x90, 0x80, 0x81, 0x23, 0x00]));
        assert!(!vp8_keyframe_start(&[0x90, 0x80, 0x81, 0x23, 0x01]));
        // X with a 7-bit picture id, TL0PICIDX and TID.
        assert!(vp8_keyframe_start(&[0x90, 0xe0, 0x05, 0x07, 0x20, 0x10]));
        assert!(!vp8_keyframe_start(&[]));
        assert!(!vp8_keyframe_start(&[0x90]));
    }
}
