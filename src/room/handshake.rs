//! The room's handshake with each peer: presence, the password challenge (`@_hsdata`), ready
//! (`@_hsready`), and when a peer counts as joined.

use super::*;

impl Room {
    /// A link to `peer` carries this room: start the handshake.
    pub fn attach(&mut self, peer: &str, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        if self.peers.contains_key(peer) || peer == self.self_id {
            return out;
        }
        self.peers.insert(
            peer.to_owned(),
            PeerSlot {
                attached_at: now,
                nudges: 0,
                local_passed: false,
                remote_ready: false,
                joined: false,
                challenge: None,
                caps_e2e: false,
                caps: false,
                caps_version: 0,
                security: Security::Transport,
            },
        );
        if !self.has_password() {
            self.pass_local(peer, &mut out);
        } else if self.self_id.as_str() < peer {
            let c = random_id_from(&mut self.rng, 36);
            if let Some(slot) = self.peers.get_mut(peer) {
                slot.challenge = Some(c.clone());
            }
            self.send_challenge(peer, &c, &mut out);
        }
        out
    }

    /// Presence from a peer: attaches it, or, if its handshake is pending, sends our side of the
    /// handshake again — a browser drops handshake messages that arrive before it has tied the
    /// connection to the room, and its presence says it now has. Both ends ignore repeats.
    pub fn on_presence(&mut self, peer: &str, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        match self.peers.get(peer) {
            None => out.extend(self.attach(peer, now)),
            Some(slot) if !slot.joined => self.resend_handshake(peer, &mut out),
            Some(_) => {}
        }
        out
    }

    pub(super) fn resend_handshake(&mut self, peer: &str, out: &mut Vec<Output>) {
        let Some(slot) = self.peers.get(peer) else {
            return;
        };
        if let Some(c) = slot.challenge.clone() {
            self.send_challenge(peer, &c, out);
        } else if slot.local_passed {
            self.send_ready(peer, out);
        }
    }

    pub(super) fn send_challenge(&mut self, peer: &str, challenge: &str, out: &mut Vec<Output>) {
        self.send_internal(
            peer,
            ACTION_HSDATA,
            Payload::Json(json!({"__trystero_pw": "challenge", "c": challenge})),
            out,
        );
    }

    /// Our capabilities and `@_hsready`.
    pub(super) fn send_ready(&mut self, peer: &str, out: &mut Vec<Output>) {
        // Capabilities go before @_hsready, so a meshrtc peer knows them when it joins us. A
        // Trystero peer keeps the unknown action aside, unread (one small message per peer).
        let e2e = self.e2e.is_some();
        self.send_internal(
            peer,
            ACTION_CAPS,
            Payload::Json(json!({"v": super::CAPS_VERSION, "e2e": e2e})),
            out,
        );
        self.send_internal(peer, ACTION_READY, Payload::Text(String::new()), out);
    }

    pub(super) fn pass_local(&mut self, peer: &str, out: &mut Vec<Output>) {
        if let Some(slot) = self.peers.get_mut(peer) {
            slot.local_passed = true;
        }
        self.send_ready(peer, out);
        self.maybe_join(peer, out);
    }

    pub(super) fn maybe_join(&mut self, peer: &str, out: &mut Vec<Output>) {
        if let Some(slot) = self.peers.get_mut(peer)
            && slot.local_passed
            && slot.remote_ready
            && !slot.joined
        {
            let e2e = slot.caps_e2e && self.e2e.is_some();
            if self.require_e2e && !e2e {
                self.peers.remove(peer);
                let mut leave = Vec::new();
                self.send_internal(peer, ACTION_LEAVE, Payload::Text(String::new()), &mut leave);
                out.extend(leave);
                out.push(Output::Drop(DropReason::E2eRequired));
                out.push(Output::Event(RoomEvent::Error {
                    code: "e2e_required",
                    message: format!("peer {peer} cannot encrypt end to end (require_e2e is set)"),
                    peer: peer.to_owned(),
                }));
                return;
            }
            slot.joined = true;
            slot.security = if e2e {
                Security::E2e
            } else {
                Security::Transport
            };
            out.push(Output::Event(RoomEvent::PeerJoin(
                peer.to_owned(),
                slot.security,
            )));
            if slot.caps {
                out.push(Output::Capable(peer.to_owned(), slot.caps_version));
            }
        }
    }

    /// A peer's `@_hsdata`: the password proof, checked before it may join.
    pub(super) fn on_hsdata(&mut self, peer: &str, payload: &Payload, out: &mut Vec<Output>) {
        let Payload::Json(v) = payload else {
            out.push(Output::Drop(DropReason::HsdataMalformed));
            return;
        };
        let kind = v.get("__trystero_pw").and_then(Value::as_str);
        let Some(slot) = self.peers.get(peer) else {
            return;
        };
        if slot.joined || slot.local_passed && slot.challenge.is_none() {
            // A second answer to a challenge we sent twice (see `resend_handshake`) is expected.
            if kind != Some("response") {
                out.push(Output::Drop(DropReason::HsdataUnexpected));
            }
            return;
        }
        match (kind, slot.challenge.clone()) {
            (Some("challenge"), None) if self.has_password() => {
                let Some(c) = v.get("c").and_then(Value::as_str) else {
                    out.push(Output::Drop(DropReason::HsdataMalformed));
                    return;
                };
                let h = password_proof(c, &self.password, &self.app_id, &self.room_id);
                self.send_internal(
                    peer,
                    ACTION_HSDATA,
                    Payload::Json(json!({"__trystero_pw": "response", "h": h})),
                    out,
                );
                self.pass_local(peer, out);
            }
            (Some("response"), Some(c)) => {
                let expected = password_proof(&c, &self.password, &self.app_id, &self.room_id);
                if v.get("h").and_then(Value::as_str) == Some(expected.as_str()) {
                    if let Some(slot) = self.peers.get_mut(peer) {
                        slot.challenge = None;
                    }
                    self.pass_local(peer, out);
                } else {
                    self.peers.remove(peer);
                    out.push(Output::Drop(DropReason::PasswordMismatch));
                    out.push(Output::Event(RoomEvent::Error {
                        code: "password_mismatch",
                        message: format!(
                            "peer {peer} failed the password check (different password)"
                        ),
                        peer: peer.to_owned(),
                    }));
                }
            }
            _ => out.push(Output::Drop(DropReason::HsdataUnexpected)),
        }
    }
}
