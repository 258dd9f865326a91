//! Effects: the work decided under the state lock and run after it is released — the only
//! code here that awaits the transport or the relays.

use super::*;

impl Node {
    pub(super) fn run_effects(&self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Relay(command) => self.signal.send(command),
                Effect::Close { pc, delay } => {
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let _ = pc.close().await;
                    });
                }
                Effect::AddCandidate { pc, json } => {
                    let me = self.me.clone();
                    tokio::spawn(async move {
                        if transport::add_candidate(&pc, &json).await.is_err()
                            && let Some(node) = me.upgrade()
                        {
                            count(&mut node.lock(), DropReason::CandidateRejected);
                        }
                    });
                }
                Effect::Offer { conn } => {
                    let me = self.me.clone();
                    let transport = self.transport.clone();
                    tokio::spawn(async move {
                        let result = transport.offer(conn).await;
                        if let Some(node) = me.upgrade() {
                            node.dial_ready(conn, result, false);
                        }
                    });
                }
                Effect::Answer { conn, sdp } => {
                    let me = self.me.clone();
                    let transport = self.transport.clone();
                    tokio::spawn(async move {
                        let result = transport.answer(conn, sdp).await;
                        if let Some(node) = me.upgrade() {
                            node.dial_ready(conn, result, true);
                        }
                    });
                }
                Effect::ApplyAnswer { conn, pc, sdp } => {
                    let me = self.me.clone();
                    tokio::spawn(async move {
                        let ok = transport::apply_answer(&pc, sdp).await.is_ok();
                        if let Some(node) = me.upgrade() {
                            node.remote_set(conn, ok);
                        }
                    });
                }
            }
        }
    }
}
