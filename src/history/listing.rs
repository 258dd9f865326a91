//! What a room's history holds, channel by channel (the answer to the `history` call), decided
//! from what the store reports. Pure: the store's thread gathers the facts off the node's lock,
//! and this decides what they mean.

use super::{HistoryKey, Totals};

/// A channel tag the store holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldTag {
    /// The tag (a keyed hash of the channel name).
    pub tag: [u8; 8],
    /// What the store holds under it.
    pub totals: Totals,
    /// The channel name its newest entry gives, if the room's key opens it.
    pub newest_name: Option<String>,
}

/// One channel of the listing; an empty name is a sealed channel this key cannot name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelListing {
    /// The channel's name (empty: sealed).
    pub channel: String,
    /// What is held of it.
    pub totals: Totals,
}

/// The channels of a room's history: those the room keeps now (even when empty), those held
/// but no longer kept (named by their newest entry), and sealed ones (unnamed), by name.
pub fn listing(key: &HistoryKey, kept: &[String], held: &[HeldTag]) -> Vec<ChannelListing> {
    let mut names: Vec<String> = kept.to_vec();
    for h in held {
        if !kept.iter().any(|n| key.tag(n) == h.tag) {
            names.push(h.newest_name.clone().unwrap_or_default());
        }
    }
    let totals_of = |tag: [u8; 8]| {
        held.iter()
            .find(|h| h.tag == tag)
            .map(|h| h.totals)
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    let mut named = Vec::new();
    for name in names {
        if name.is_empty() {
            continue;
        }
        let tag = key.tag(&name);
        named.push(tag);
        out.push(ChannelListing {
            channel: name,
            totals: totals_of(tag),
        });
    }
    for h in held.iter().filter(|h| !named.contains(&h.tag)) {
        if h.totals.messages > 0 {
            out.push(ChannelListing {
                channel: String::new(),
                totals: h.totals,
            });
        }
    }
    out.sort_by(|a, b| a.channel.cmp(&b.channel));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Cursor;

    fn held(key: &HistoryKey, name: &str, messages: u64, opens: bool) -> HeldTag {
        HeldTag {
            tag: key.tag(name),
            totals: Totals {
                messages,
                bytes: messages * 10,
                oldest: Some(Cursor(1)),
                newest: Some(Cursor(messages)),
            },
            newest_name: opens.then(|| name.to_owned()),
        }
    }

    #[test]
    fn kept_held_and_sealed_channels_are_listed_by_name() {
        let key = HistoryKey::open_room("app", "r");
        let other = HistoryKey::open_room("app", "elsewhere");
        let kept = vec!["chat".to_owned(), "empty".to_owned()];
        let store = vec![
            held(&key, "chat", 3, true),
            held(&key, "old", 2, true),
            held(&other, "secret", 4, false),
        ];
        let got: Vec<(String, u64)> = listing(&key, &kept, &store)
            .into_iter()
            .map(|c| (c.channel, c.totals.messages))
            .collect();
        assert_eq!(
            got,
            vec![
                (String::new(), 4),
                ("chat".into(), 3),
                ("empty".into(), 0),
                ("old".into(), 2),
            ]
        );
    }
}
