//! The harness's stand-in for the transport: connection ends, their pairing through fake
//! SDP, and the link faults (black holes, frame filters).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use crate::ids::TrackId;
use crate::transport::ConnId;
use crate::transport::media::{Codec, TrackSpec};

/// One end of a connection: a node's incarnation and its connection id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct End {
    /// Node index.
    pub node: usize,
    /// The node's incarnation.
    pub life: u32,
    /// The core's connection id.
    pub conn: ConnId,
}

/// The SDP of an offer made by `end` (only the harness reads it).
pub fn offer_sdp(end: End) -> String {
    format!("harness-offer {} {} {}", end.node, end.life, end.conn)
}

/// The SDP of an answer made by `end`.
pub fn answer_sdp(end: End) -> String {
    format!("harness-answer {} {} {}", end.node, end.life, end.conn)
}

/// A local candidate of `end`, as Trystero's JSON.
pub fn candidate(end: End) -> String {
    format!(
        r#"{{"candidate":"candidate:1 1 udp 1 10.0.0.{} 9 typ host","sdpMid":"0"}}"#,
        end.node % 250
    )
}

/// The end an SDP came from.
pub fn parse_sdp(sdp: &str) -> Option<End> {
    let mut parts = sdp.split(' ').skip(1);
    let node = parts.next()?.parse().ok()?;
    let life = parts.next()?.parse().ok()?;
    let conn = ConnId(parts.next()?.parse().ok()?);
    Some(End { node, life, conn })
}

#[derive(Debug, Default)]
struct FakeConn {
    peer: Option<End>,
    open: bool,
    closed: bool,
    last_delivery: Option<Instant>,
}

/// A test's choice of frames to lose.
pub type FrameFilter = fn(&[u8]) -> bool;

/// Connection ends and link faults.
#[derive(Default)]
pub struct Fakes {
    conns: BTreeMap<End, FakeConn>,
    /// Local tracks per end: core track id → (stream id, track id, codec).
    tracks: BTreeMap<End, BTreeMap<TrackId, (String, String, Codec)>>,
    /// Remote tracks an end's engine has surfaced.
    received: BTreeMap<End, BTreeSet<String>>,
    blackholes: BTreeSet<(usize, usize)>,
    filters: BTreeMap<(usize, usize), FrameFilter>,
}

impl Fakes {
    /// The driver made a peer connection for `end`.
    pub fn created(&mut self, end: End) {
        self.conns.entry(end).or_default();
    }

    /// `end` answered an offer from `offerer`.
    pub fn pair_answer(&mut self, end: End, offerer: End) {
        self.conns.entry(end).or_default().peer = Some(offerer);
    }

    /// `end` applied an answer from `answerer`; true when both ends agree and neither closed.
    pub fn pair_offer(&mut self, end: End, answerer: End) -> bool {
        let mine = self.conns.entry(end).or_default();
        mine.peer = Some(answerer);
        let mine_closed = mine.closed;
        let theirs = self.conns.get(&answerer);
        !mine_closed && theirs.is_some_and(|t| t.peer == Some(end) && !t.closed)
    }

    /// The data channel of `end` opens (false if it closed meanwhile).
    pub fn open(&mut self, end: End) -> bool {
        match self.conns.get_mut(&end) {
            Some(c) if !c.closed => {
                c.open = true;
                true
            }
            _ => false,
        }
    }

    /// Whether `end` still takes frames.
    pub fn receives(&self, end: End) -> bool {
        self.conns.get(&end).is_some_and(|c| c.open && !c.closed)
    }

    /// The transport reports `end` closed; false if it already was.
    pub fn close(&mut self, end: End) -> bool {
        match self.conns.get_mut(&end) {
            Some(c) if !c.closed => {
                c.closed = true;
                true
            }
            _ => false,
        }
    }

    /// The core closed `end`; returns the other end if it should hear of it.
    pub fn closed_by(&mut self, end: End) -> Option<End> {
        let c = self.conns.entry(end).or_default();
        if c.closed {
            return None;
        }
        c.closed = true;
        let peer = c.peer?;
        let theirs = self.conns.get(&peer)?;
        (theirs.peer == Some(end) && !theirs.closed && !self.is_blackholed(end, peer))
            .then_some(peer)
    }

    /// Where frames sent on `end` go, if they go anywhere.
    pub fn carries(&self, end: End) -> Option<End> {
        let c = self.conns.get(&end)?;
        let peer = c.peer.filter(|_| c.open && !c.closed)?;
        (!self.is_blackholed(end, peer)).then_some(peer)
    }

    /// The delivery time of a frame sent on `end` now, kept in order behind the last one.
    pub fn next_delivery(&mut self, end: End, at: Instant) -> Instant {
        let c = self.conns.entry(end).or_default();
        let at = c.last_delivery.map_or(at, |last| at.max(last));
        c.last_delivery = Some(at);
        at
    }

    /// Whether a frame from `from` to `to` is dropped by a filter.
    pub fn filtered(&self, from: End, to: End, frame: &[u8]) -> bool {
        self.filters
            .get(&(from.node, to.node))
            .is_some_and(|f| f(frame))
    }

    fn is_blackholed(&self, a: End, b: End) -> bool {
        let key = (a.node.min(b.node), a.node.max(b.node));
        self.blackholes.contains(&key)
    }

    /// From now on nothing passes between nodes `a` and `b`.
    pub fn blackhole(&mut self, a: usize, b: usize) {
        self.blackholes.insert((a.min(b), a.max(b)));
    }

    /// Traffic between nodes `a` and `b` flows again (on new connections).
    pub fn heal(&mut self, a: usize, b: usize) {
        self.blackholes.remove(&(a.min(b), a.max(b)));
    }

    /// The live connection from node `a` to node `b`, if any.
    pub fn open_between(&self, a: usize, b: usize) -> Option<(End, End)> {
        self.conns.iter().find_map(|(end, c)| {
            let peer = c.peer?;
            (end.node == a && peer.node == b && c.open && !c.closed).then_some((*end, peer))
        })
    }

    /// A local track was added on `end`.
    pub fn add_local_track(&mut self, end: End, id: TrackId, spec: TrackSpec) {
        let tracks = self.tracks.entry(end).or_default();
        tracks.insert(id, (spec.stream_id, spec.track_id, spec.codec));
    }

    /// A local track left `end`.
    pub fn remove_local_track(&mut self, end: End, id: TrackId) {
        if let Some(tracks) = self.tracks.get_mut(&end) {
            tracks.remove(&id);
        }
    }

    /// A description from `end` sending its local tracks (one media section each, with an
    /// `a=msid` as real SDP has, and the codec for the harness).
    pub fn media_offer(&self, end: End) -> String {
        let mut sdp = String::from("v=0\r\n");
        for (stream, track, codec) in self.tracks.get(&end).into_iter().flat_map(|t| t.values()) {
            sdp.push_str(&format!(
                "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendrecv\r\na=msid:{stream} {track}\r\na=x-codec:{}\r\n",
                codec.mime()
            ));
        }
        sdp
    }

    /// `end` applies a remote offer: the tracks its engine surfaces and those that ended.
    pub fn apply_media_offer(
        &mut self,
        end: End,
        sdp: &str,
    ) -> (Vec<(String, String, Codec)>, Vec<String>) {
        let offered: Vec<(String, String, Codec)> = sdp
            .split("m=")
            .skip(1)
            .filter_map(|section| {
                let msid = section
                    .lines()
                    .find_map(|l| l.trim_end().strip_prefix("a=msid:"))?;
                let codec = section
                    .lines()
                    .find_map(|l| l.trim_end().strip_prefix("a=x-codec:"))?;
                let (s, t) = msid.split_once(' ')?;
                Some((s.to_owned(), t.to_owned(), Codec::from_mime(codec)?))
            })
            .collect();
        let received = self.received.entry(end).or_default();
        let ids: BTreeSet<String> = offered.iter().map(|(_, t, _)| t.clone()).collect();
        let down: Vec<String> = received.difference(&ids).cloned().collect();
        let up: Vec<(String, String, Codec)> = offered
            .into_iter()
            .filter(|(_, t, _)| !received.contains(t))
            .collect();
        *received = ids;
        (up, down)
    }

    /// Frames from `a` to `b` matching `filter` are lost.
    pub fn filter(&mut self, a: usize, b: usize, filter: FrameFilter) {
        self.filters.insert((a, b), filter);
    }
}
