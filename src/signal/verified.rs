//! Event ids whose signatures have been checked.
//!
//! A room's events reach the daemon once from every relay the room uses (five by default), and
//! each copy's Schnorr check was the largest single cost of signaling (about a seventh of a
//! daemon's CPU while a cells room starts). A copy whose id was already checked only has its id
//! recomputed from its content, a hash: an id that matches is the same pubkey, time, kind, tags
//! and content as the event checked before, so the copy says nothing new whatever its signature.

use std::collections::{HashSet, VecDeque};

use nostr_sdk::{Event, EventId};

/// How many ids are remembered: more than the events of a busy room's last minutes.
pub const REMEMBERED: usize = 4_096;

/// What checking an event found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// Its id and signature were checked now.
    Verified,
    /// A copy of an event checked before: only its id was recomputed.
    Known,
    /// Its id does not match its content, or its signature does not match its id.
    Bad,
}

impl Checked {
    /// Whether the event may be passed on.
    pub fn is_good(self) -> bool {
        self != Checked::Bad
    }
}

/// The last [`REMEMBERED`] ids whose events passed a full check, oldest forgotten first.
#[derive(Debug, Default)]
pub struct VerifiedIds {
    known: HashSet<EventId>,
    order: VecDeque<EventId>,
}

impl VerifiedIds {
    /// Checks `event`: in full unless its id is remembered, and remembers it if it passes.
    pub fn check(&mut self, event: &Event) -> Checked {
        if self.known.contains(&event.id) {
            return if event.verify_id() {
                Checked::Known
            } else {
                Checked::Bad
            };
        }
        if event.verify().is_err() {
            return Checked::Bad;
        }
        if self.order.len() >= REMEMBERED
            && let Some(oldest) = self.order.pop_front()
        {
            self.known.remove(&oldest);
        }
        self.known.insert(event.id);
        self.order.push_back(event.id);
        Checked::Verified
    }
}

#[cfg(test)]
mod tests {
    use nostr_sdk::{EventBuilder, JsonUtil, Keys, Kind};

    use super::*;

    fn signed(keys: &Keys, content: &str) -> Event {
        EventBuilder::new(Kind::Custom(29_333), content)
            .sign_with_keys(keys)
            .expect("sign")
    }

    #[test]
    fn a_copy_costs_a_hash_and_a_forged_copy_is_still_refused() {
        let keys = Keys::generate();
        let event = signed(&keys, "offer");
        let mut ids = VerifiedIds::default();
        assert_eq!(ids.check(&event), Checked::Verified);
        assert_eq!(ids.check(&event), Checked::Known);
        // The same id on other content: the id no longer matches what it claims to name.
        let json = event.as_json().replace("\"offer\"", "\"evil!\"");
        let forged = Event::from_json(json).expect("parse");
        assert_eq!(forged.id, event.id);
        assert_eq!(ids.check(&forged), Checked::Bad);
        // Another key's signature on new content is checked in full, and refused if wrong.
        let other = signed(&Keys::generate(), "answer");
        let mut wrong_sig =
            serde_json::from_str::<serde_json::Value>(&other.as_json()).expect("json");
        wrong_sig["sig"] = serde_json::Value::String(event.sig.to_string());
        let wrong_sig = Event::from_json(wrong_sig.to_string()).expect("parse");
        assert_eq!(ids.check(&wrong_sig), Checked::Bad);
        assert_eq!(ids.check(&other), Checked::Verified);
    }

    #[test]
    fn the_oldest_ids_are_forgotten_first() {
        let keys = Keys::generate();
        let mut ids = VerifiedIds::default();
        let first = signed(&keys, "0");
        assert_eq!(ids.check(&first), Checked::Verified);
        for i in 1..=REMEMBERED {
            let e = signed(&keys, &i.to_string());
            assert_eq!(ids.check(&e), Checked::Verified);
        }
        assert_eq!(ids.known.len(), REMEMBERED);
        assert_eq!(
            ids.check(&first),
            Checked::Verified,
            "forgotten, so checked in full"
        );
    }
}
