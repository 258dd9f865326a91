//! The harness's media: tracks a node adds, replaces and removes, and the fake engine's side of
//! renegotiation (offers that list tracks, answers that surface or end them).

use std::time::Duration;

use super::*;
use crate::ids::TrackId;
use crate::node::core::{Effect, Input};

impl Net {
    /// Node `i` adds a VP8 track `track` (stream `stream`) with `meta` to `room`; returns its id.
    pub fn add_track(
        &mut self,
        i: usize,
        room: &str,
        stream: &str,
        track: &str,
        meta: serde_json::Value,
        targets: Vec<String>,
    ) -> TrackId {
        let now = self.now;
        let sim = &mut self.nodes[i];
        let spec = crate::transport::media::TrackSpec {
            codec: crate::transport::media::Codec::Vp8,
            stream_id: stream.to_owned(),
            track_id: track.to_owned(),
        };
        let id = sim
            .core
            .add_track(
                sim.session,
                sim.handles[room],
                crate::node::core::media::TrackRequest {
                    spec,
                    meta: Some(meta),
                    targets,
                    max_kbps: 0,
                },
                now,
            )
            .expect("add track");
        self.run_effects(i);
        id
    }

    /// Node `i` swaps the source of its track `id`, with new metadata.
    pub fn replace_track(&mut self, i: usize, id: TrackId, meta: serde_json::Value) {
        let now = self.now;
        let sim = &mut self.nodes[i];
        sim.core
            .replace_track(sim.session, id, Some(meta), now)
            .expect("replace track");
        self.run_effects(i);
    }

    /// The peers on the links of node `i` that its track `id` is on ask for a keyframe, as
    /// their engines would on an RTCP PLI.
    pub fn keyframe_asked(&mut self, i: usize, id: TrackId) {
        let now = self.now;
        let core = &mut self.nodes[i].core;
        for conn in core.local_track_links(id) {
            core.handle(Input::KeyframeWanted { conn, track: id }, now);
        }
        self.run_effects(i);
    }

    /// Node `i` removes its track `id`.
    pub fn remove_track(&mut self, i: usize, id: TrackId) {
        let now = self.now;
        let sim = &mut self.nodes[i];
        sim.core
            .remove_track(sim.session, id, now)
            .expect("remove track");
        self.run_effects(i);
    }

    /// The media effects: local tracks per connection end, offers that list them, and the
    /// answerer's engine surfacing (or ending) the offerer's tracks.
    pub(super) fn run_media_effect(&mut self, i: usize, effect: Effect) {
        let step = Duration::from_millis(2);
        match effect {
            Effect::AddTrack { conn, track, spec } => {
                let end = self.end(i, conn);
                self.fakes.add_local_track(end, track, spec);
                self.schedule(step, end, Ev::Media(MediaEv::NegotiationNeeded));
            }
            Effect::RemoveTrack { conn, track } => {
                let end = self.end(i, conn);
                self.fakes.remove_local_track(end, track);
                self.schedule(step, end, Ev::Media(MediaEv::NegotiationNeeded));
            }
            Effect::MediaOffer { conn } => {
                let end = self.end(i, conn);
                let sdp = self.fakes.media_offer(end);
                self.schedule(step, end, Ev::Media(MediaEv::OfferMade(sdp)));
            }
            Effect::MediaAnswer { conn, sdp, .. } => {
                let end = self.end(i, conn);
                if let Some(n) = self.refuse_media_answers.get_mut(&i).filter(|n| **n > 0) {
                    *n -= 1;
                    self.schedule(step, end, Ev::Media(MediaEv::AnswerRefused));
                    return;
                }
                let (up, down) = self.fakes.apply_media_offer(end, &sdp);
                for (stream, track, codec) in up {
                    self.schedule(step, end, Ev::Media(MediaEv::TrackUp(stream, track, codec)));
                }
                for track in down {
                    self.schedule(step, end, Ev::Media(MediaEv::TrackDown(track)));
                }
                self.schedule(
                    step * 2,
                    end,
                    Ev::Media(MediaEv::AnswerMade("harness-media-answer".into())),
                );
            }
            Effect::MediaApplyAnswer { conn, .. } => {
                let end = self.end(i, conn);
                self.schedule(step, end, Ev::Media(MediaEv::AnswerApplied));
            }
            _ => {}
        }
    }
}
