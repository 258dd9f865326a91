//! The node's `history` call: what a room keeps, per channel, and clearing one channel. The
//! store's thread reads and decides (`history::listing`); this asks it and converts.

use tokio::sync::oneshot;

use super::history_io::HistoryJob;
use super::{Node, NodeError};
use crate::history::{self, HistoryKey, Totals};
use crate::proto;

impl Node {
    /// What the node keeps of a room (channel names need the room key: the room is joined
    /// here, or its password is given), after clearing `clear` if named.
    pub async fn history(
        &self,
        app: &str,
        room: &str,
        password: &str,
        clear: &str,
    ) -> Result<proto::HistoryReply, NodeError> {
        let joined = self.lock().core.history_of(app, room);
        let (key, kept) = match joined {
            Some((key, kept)) => (key, kept),
            None if password.is_empty() => (HistoryKey::open_room(app, room), Vec::new()),
            None => {
                let (a, r, p) = (app.to_owned(), room.to_owned(), password.to_owned());
                let bytes = tokio::task::spawn_blocking(move || {
                    crate::wire::e2e::derive_key_bytes(&p, &a, &r)
                })
                .await
                .map_err(|e| NodeError::Store(e.to_string()))?;
                (HistoryKey::password_room(&bytes), Vec::new())
            }
        };
        let (reply, listed) = oneshot::channel();
        {
            let inner = self.lock();
            let Some(store) = &inner.io.history else {
                return Err(NodeError::Store("no history store".into()));
            };
            store.send(HistoryJob::List {
                room: history::room_id(app, room),
                key,
                kept,
                clear: (!clear.is_empty()).then(|| clear.to_owned()),
                reply,
            });
        }
        let listing = listed
            .await
            .map_err(|_| NodeError::Store("the history store stopped".into()))?
            .map_err(NodeError::Store)?;
        Ok(proto::HistoryReply {
            channels: listing
                .channels
                .into_iter()
                .map(|c| channel_to_proto(c.channel, c.totals))
                .collect(),
            messages: listing.all.messages,
            bytes: listing.all.bytes,
            oldest: listing.all.oldest.unwrap_or_default().micros(),
            newest: listing.all.newest.unwrap_or_default().micros(),
            cleared: listing.cleared,
        })
    }
}

fn channel_to_proto(channel: String, t: Totals) -> proto::ChannelHistory {
    proto::ChannelHistory {
        channel,
        messages: t.messages,
        bytes: t.bytes,
        oldest: t.oldest.unwrap_or_default().micros(),
        newest: t.newest.unwrap_or_default().micros(),
    }
}
