//! The node's `history` call: what a room keeps, per channel, and clearing one channel.

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
        let id = history::room_id(app, room);
        let joined = self.lock().core.history_of(app, room);
        let (key, mut names) = match joined {
            Some((key, names)) => (key, names),
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
        let mut inner = self.lock();
        let Some(store) = inner.io.history.as_mut() else {
            return Err(NodeError::Store("no history store".into()));
        };
        let mut cleared = 0;
        if !clear.is_empty() {
            cleared = store
                .clear(&id, key.tag(clear))
                .map_err(|e| NodeError::Store(e.to_string()))? as u64;
        }
        // Names of channels held but no longer kept: read from their newest entry.
        for tag in store.tags(&id) {
            if names.iter().any(|n| key.tag(n) == tag) {
                continue;
            }
            let newest = store.totals(&id, Some(tag)).newest.unwrap_or_default();
            let name = store
                .after(&id, newest.minus_micros(1))
                .next()
                .and_then(|(_, v)| history::decode(&v, &key).ok())
                .map(|e| e.channel)
                .unwrap_or_default();
            names.push(name);
        }
        let mut channels: Vec<proto::ChannelHistory> = Vec::new();
        let mut seen_tags = Vec::new();
        for name in names {
            let tag = if name.is_empty() {
                None
            } else {
                Some(key.tag(&name))
            };
            let t = match tag {
                Some(tag) => {
                    seen_tags.push(tag);
                    store.totals(&id, Some(tag))
                }
                None => Totals::default(),
            };
            if t.messages > 0 || tag.is_some() {
                channels.push(channel_to_proto(name, t));
            }
        }
        // Sealed channels whose names this key cannot give.
        for tag in store.tags(&id) {
            if !seen_tags.contains(&tag) {
                channels.push(channel_to_proto(
                    String::new(),
                    store.totals(&id, Some(tag)),
                ));
            }
        }
        channels.retain(|c| !(c.channel.is_empty() && c.messages == 0));
        channels.sort_by(|a, b| a.channel.cmp(&b.channel));
        let all = store.totals(&id, None);
        Ok(proto::HistoryReply {
            channels,
            messages: all.messages,
            bytes: all.bytes,
            oldest: all.oldest.unwrap_or_default().micros(),
            newest: all.newest.unwrap_or_default().micros(),
            cleared,
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
