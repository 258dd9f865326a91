//! The harness's driver: a core's effects carried out on the fake engine and the in-memory
//! relay, as `node/effects.rs` carries them out on real ones.

use super::*;

impl Net {
    pub(super) fn run_effects(&mut self, i: usize) {
        let effects = self.nodes[i].core.take_effects();
        for effect in effects {
            self.run_effect(i, effect);
        }
    }

    fn run_effect(&mut self, i: usize, effect: Effect) {
        match effect {
            Effect::Relay(RelayCommand::Subscribe(topics)) => {
                self.nodes[i].topics = topics.into_iter().map(|t| t.topic).collect();
            }
            Effect::Relay(RelayCommand::Publish { topic, content, .. }) => {
                self.publish(i, topic, content)
            }
            Effect::Offer { conn, relay_only } => {
                let end = self.end(i, conn);
                if relay_only {
                    self.relay_only_ends.insert(end);
                }
                self.fakes.created(end);
                let after = self.draw(self.faults.link_latency);
                self.schedule(after, end, Ev::OfferMade(fake::offer_sdp(end)));
                self.schedule(after * 2, end, Ev::Candidate);
            }
            Effect::Answer {
                conn,
                sdp,
                relay_only,
            } => {
                let end = self.end(i, conn);
                if relay_only {
                    self.relay_only_ends.insert(end);
                }
                self.fakes.created(end);
                let Some(offerer) = fake::parse_sdp(&sdp) else {
                    return;
                };
                self.fakes.pair_answer(end, offerer);
                let after = self.draw(self.faults.link_latency);
                self.schedule(after, end, Ev::AnswerMade(fake::answer_sdp(end)));
            }
            Effect::ApplyAnswer { conn, sdp } => {
                let end = self.end(i, conn);
                let Some(answerer) = fake::parse_sdp(&sdp) else {
                    return;
                };
                self.schedule(Duration::from_millis(1), end, Ev::RemoteSet);
                if !self.fakes.pair_offer(end, answerer) {
                    return;
                }
                // ICE and DTLS: both ends open together, or both see the attempt fail.
                let after = self.draw(self.faults.link_latency) * 4;
                let relayed =
                    self.relay_only_ends.contains(&end) && self.relay_only_ends.contains(&answerer);
                if self.direct_blocked && !relayed && self.direct_hangs {
                    return;
                }
                if (self.direct_blocked && !relayed) || self.chance(self.faults.ice_fail) {
                    self.schedule(after, end, Ev::Closed);
                    self.schedule(after, answerer, Ev::Closed);
                } else {
                    for e in [end, answerer] {
                        if self.open_reported_late.contains(&e.node) {
                            self.schedule(after, e, Ev::Up);
                            self.schedule(after + Duration::from_millis(500), e, Ev::Open);
                        } else {
                            self.schedule(after, e, Ev::Open);
                        }
                    }
                }
            }
            Effect::AddCandidate { .. } | Effect::StartLink { .. } => {}
            Effect::OpenWindow { conn } => {
                self.nodes[i].wide.insert(conn);
            }
            Effect::Frames { conn, frames } | Effect::FramesKept { conn, frames } => {
                self.send_frames(i, conn, frames)
            }
            Effect::FrameFirst { conn, frame } => self.send_frames(i, conn, vec![frame]),
            // The harness's links have no queue to count.
            Effect::CountUnsent { .. } => {}
            Effect::Close { conn, .. } => {
                let end = self.end(i, conn);
                if let Some(peer) = self.fakes.closed_by(end) {
                    let after = self.draw(self.faults.link_latency);
                    self.schedule(after, peer, Ev::Closed);
                }
            }
            Effect::Deliver { event, .. } => self.nodes[i].events.push(event),
            media @ (Effect::AddTrack { .. }
            | Effect::RemoveTrack { .. }
            | Effect::MediaOffer { .. }
            | Effect::MediaAnswer { .. }
            | Effect::MediaApplyAnswer { .. }) => self.run_media_effect(i, media),
            Effect::Pong { waiter, rtt } => self.nodes[i].pongs.push((waiter, rtt)),
            Effect::PingLost { waiter } => self.nodes[i].pings_lost.push(waiter),
            Effect::ServeHistory {
                app,
                room_id,
                peer,
                room,
                key,
                from,
                after_ms,
                channels,
            } => {
                // Stored as the daemon stores them, so the page reads real values.
                let values = self.nodes[i]
                    .kept
                    .iter()
                    .filter(|(r, c, _)| *r == room && *c > from)
                    .map(|(_, c, e)| (*c, crate::history::encode(e, &key, [7; 24])))
                    .collect::<Vec<_>>();
                let page =
                    crate::history::page(values.into_iter(), &key, from, after_ms, &channels);
                let now = self.now;
                self.nodes[i]
                    .core
                    .history_page(&app, &room_id, &peer, page, now);
                self.run_effects(i);
            }
            Effect::Keep(kept) => self.nodes[i]
                .kept
                .push((kept.room, kept.cursor, *kept.entry)),
            Effect::Replay {
                room, after, to, ..
            } => {
                let replayed: Vec<SessionEvent> = self.nodes[i]
                    .kept
                    .iter()
                    .filter(|(r, c, _)| *r == room && *c > after)
                    .filter_map(|(_, c, e)| to.event(*c, e.clone()))
                    .collect();
                self.nodes[i].events.extend(replayed);
            }
            Effect::CloseSession { .. } => {}
        }
    }

    pub(super) fn publish(&mut self, from: usize, topic: String, content: String) {
        let pubkey = self.nodes[from].keys.public_key().to_bytes();
        for j in 0..self.nodes.len() {
            if !self.nodes[j].alive || !self.nodes[j].topics.contains(&topic) {
                continue;
            }
            let blocked = self.announce_blocks.contains(&(from, j))
                && matches!(Signal::parse(&content), Ok(Signal::Announce { .. }));
            if blocked || self.chance(self.faults.relay_loss) {
                self.relay_lost += 1;
                continue;
            }
            let after = self.draw(self.faults.relay_delay);
            let to = self.end(j, ConnId(0));
            let incoming = Incoming {
                relay: "ws://harness".into(),
                topic: topic.clone(),
                content: content.clone(),
                pubkey,
            };
            self.schedule(after, to, Ev::Relay(incoming));
        }
    }

    pub(super) fn send_frames(&mut self, i: usize, conn: ConnId, frames: Vec<Bytes>) {
        let end = self.end(i, conn);
        let Some(peer) = self.fakes.carries(end) else {
            return;
        };
        let latency = self.draw(self.faults.link_latency);
        // A link is an ordered channel: no frame overtakes the one before it.
        let at = self.fakes.next_delivery(end, self.now + latency);
        for frame in frames {
            if self.fakes.filtered(end, peer, &frame) {
                continue;
            }
            if let Some(log) = self.recorded.as_mut() {
                log.push((i, peer.node, frame.clone()));
            }
            self.seq += 1;
            self.queue.push(Reverse(Scheduled {
                at,
                seq: self.seq,
                to: peer,
                ev: Ev::Frame(frame),
            }));
        }
    }
}
