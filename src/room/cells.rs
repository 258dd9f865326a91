//! What a room does for the cellular overlay (the payload a cell frame carries for an app
//! message), and the frames of meshrtc's binary internal actions.

use bytes::Bytes;
use serde_json::Value;

use super::{
    ACTION_CELL, ACTION_HISTORY, ACTION_INVENTORY, ACTION_ROSTER, Room, SendError, valid_channel,
};
use crate::drops::DropReason;
use crate::wire::chunk::Payload;
use crate::wire::e2e;

/// meshrtc's binary internal actions (Trystero peers never send them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MrAction {
    /// A signed cell frame (`@_mrcell`).
    Frame,
    /// Roster reconciliation (`@_mrroster`).
    Roster,
    /// Which recent frames a member holds or wants (`@_mrhave`).
    Inventory,
    /// Durable channels: keepers, origin signatures, catch-up (`@_mrhist`).
    History,
}

impl MrAction {
    fn name(self) -> &'static str {
        match self {
            MrAction::Frame => ACTION_CELL,
            MrAction::Roster => ACTION_ROSTER,
            MrAction::Inventory => ACTION_INVENTORY,
            MrAction::History => ACTION_HISTORY,
        }
    }
}

impl Room {
    /// The payload a cell frame carries for an app message: sealed end to end in a password
    /// room (forwarders cannot read it), plain otherwise. Size and channel checked as for sends.
    pub fn cell_payload(
        &mut self,
        channel: &str,
        payload: &Payload,
        meta: Option<&Value>,
    ) -> Result<Vec<u8>, SendError> {
        // The checks of a direct send, without keeping its frames.
        self.encode_app(channel, payload, meta)?;
        Ok(match &self.e2e {
            Some(key) => {
                let mut out = vec![1];
                out.extend_from_slice(&e2e::seal(key, channel, payload, meta));
                out
            }
            None => {
                let mut out = vec![0];
                out.extend_from_slice(&e2e::encode_message(channel, payload, meta));
                out
            }
        })
    }

    /// Opens what [`Room::cell_payload`] made; the error says why it was dropped.
    pub fn open_cell_payload(
        &self,
        bytes: &[u8],
    ) -> Result<(String, Payload, Option<Value>), DropReason> {
        let opened = match (bytes.split_first(), &self.e2e) {
            (Some((1, sealed)), Some(key)) => e2e::open(key, sealed),
            (Some((0, plain)), None) => e2e::decode_message(plain),
            _ => return Err(DropReason::CellPayloadRefused),
        };
        match opened {
            Ok((channel, payload, meta)) if valid_channel(&channel) => Ok((channel, payload, meta)),
            Ok(_) | Err(e2e::E2eError::Malformed) => Err(DropReason::CellPayloadMalformed),
            Err(e2e::E2eError::Decrypt) => Err(DropReason::E2eDecryptFailed),
        }
    }

    /// Outer frames carrying one of meshrtc's internal messages (history sealed with the room
    /// key in a password room, like live messages: it carries them).
    pub fn mr_frames(&mut self, action: MrAction, bytes: Vec<u8>) -> Vec<Bytes> {
        let bytes = match (action, &self.e2e) {
            (MrAction::History, Some(key)) => {
                e2e::seal(key, ACTION_HISTORY, &Payload::Binary(bytes.into()), None)
            }
            _ => bytes,
        };
        self.encode(action.name(), &Payload::Binary(bytes.into()), None)
            .unwrap_or_default()
    }

    /// Opens a history message as [`Room::mr_frames`] sealed it; a password room takes nothing
    /// unsealed.
    pub(super) fn open_history(&self, bytes: Bytes) -> Result<Bytes, DropReason> {
        let Some(key) = &self.e2e else {
            return Ok(bytes);
        };
        match e2e::open(key, &bytes) {
            Ok((channel, Payload::Binary(plain), None)) if channel == ACTION_HISTORY => Ok(plain),
            _ => Err(DropReason::HistoryUnsealed),
        }
    }
}
