//! Relay rules (*pure*): what a relay's NIP-11 document says it allows, and what that means for
//! the pool — how the node's topics are packed into subscriptions, which events fit, and whether
//! the relay is written to at all.
//!
//! One daemon serves every app and room on the machine, so it meets a relay's limits long before
//! a single page would: hundreds of topics in one `REQ` exceed `max_message_length`; more
//! subscriptions than `max_subscriptions` are closed. The driver fetches the document
//! ([`info_url`], bounded by [`INFO_TIMEOUT`] and [`INFO_MAX_BYTES`]) and hands the body to
//! [`RelayRules::parse`]; the pool keeps the result with the relay's health (persisted) and plans
//! with [`plan_subscriptions`] and [`RelayRules::takes`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How long a NIP-11 fetch may take.
pub const INFO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Largest NIP-11 document read.
pub const INFO_MAX_BYTES: usize = 64 * 1024;
/// A cached document older than this is fetched again when the relay is added.
pub const INFO_MAX_AGE_MS: u64 = 24 * 60 * 60 * 1000;
/// Base of the node's subscription ids: `meshrtc`, then `meshrtc-1`, `meshrtc-2`, …
pub const SUB_ID: &str = "meshrtc";

/// A relay's published rules (NIP-11 `limitation`), as far as the node uses them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RelayRules {
    /// Most subscriptions one connection may hold.
    pub max_subscriptions: Option<u32>,
    /// Most filters in one subscription.
    pub max_filters: Option<u32>,
    /// Longest message (bytes of the JSON text) the relay takes.
    pub max_message_length: Option<u32>,
    /// NIP-42 authentication demanded before anything else.
    pub auth_required: bool,
    /// Only some accounts may write (`restricted_writes`).
    pub restricted_writes: bool,
    /// Writing costs money (`payment_required`).
    pub payment_required: bool,
    /// When the document was read (ms since the epoch); `None`: never read.
    pub fetched_at: Option<u64>,
    /// Why the document could not be read, if it could not (the relay then has no known limits).
    pub fetch_error: Option<String>,
}

/// Why the node does not write to a relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOnly {
    /// `restricted_writes`: only some accounts may publish.
    RestrictedWrites,
    /// `payment_required`: publishing is paid.
    PaymentRequired,
}

impl ReadOnly {
    /// The reason's stable name (`meshrtc relays` shows it).
    pub fn name(self) -> &'static str {
        match self {
            ReadOnly::RestrictedWrites => "restricted-writes",
            ReadOnly::PaymentRequired => "payment-required",
        }
    }
}

/// A positive count from a NIP-11 field (relays write numbers, strings, -1 or 0 for "none").
fn limit(v: Option<&Value>) -> Option<u32> {
    let n = match v? {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().map(|f| f.max(0.0) as u64))?,
        Value::String(s) => s.trim().parse::<u64>().ok()?,
        _ => return None,
    };
    (n > 0).then(|| n.min(u32::MAX as u64) as u32)
}

fn flag(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::Bool(true)))
}

impl RelayRules {
    /// Reads a NIP-11 document fetched at `wall`.
    pub fn parse(body: &[u8], wall: u64) -> Result<RelayRules, String> {
        if body.len() > INFO_MAX_BYTES {
            return Err(format!("relay information over {INFO_MAX_BYTES} bytes"));
        }
        let doc: Value =
            serde_json::from_slice(body).map_err(|e| format!("relay information: {e}"))?;
        let Value::Object(doc) = doc else {
            return Err("relay information is not a JSON object".into());
        };
        let empty = serde_json::Map::new();
        let lim = match doc.get("limitation") {
            Some(Value::Object(l)) => l,
            _ => &empty,
        };
        Ok(RelayRules {
            max_subscriptions: limit(lim.get("max_subscriptions")),
            max_filters: limit(lim.get("max_filters")),
            max_message_length: limit(lim.get("max_message_length")),
            auth_required: flag(lim.get("auth_required")),
            restricted_writes: flag(lim.get("restricted_writes")),
            payment_required: flag(lim.get("payment_required")),
            fetched_at: Some(wall),
            fetch_error: None,
        })
    }

    /// Rules of a relay whose document could not be read at `wall`: no known limits.
    pub fn unreadable(why: &str, wall: u64) -> RelayRules {
        RelayRules {
            fetched_at: Some(wall),
            fetch_error: Some(why.chars().take(200).collect()),
            ..Default::default()
        }
    }

    /// Whether the document should be read (again) at `wall`.
    pub fn stale(&self, wall: u64) -> bool {
        self.fetched_at
            .is_none_or(|t| wall.saturating_sub(t) >= INFO_MAX_AGE_MS)
    }

    /// Why the node does not publish here, if it does not.
    pub fn read_only(&self) -> Option<ReadOnly> {
        if self.payment_required {
            Some(ReadOnly::PaymentRequired)
        } else if self.restricted_writes {
            Some(ReadOnly::RestrictedWrites)
        } else {
            None
        }
    }

    /// Whether a message of `len` bytes is within the relay's length limit.
    pub fn takes(&self, len: usize) -> bool {
        self.max_message_length.is_none_or(|m| len <= m as usize)
    }
}

/// The NIP-11 address of a relay: its URL with `ws` → `http`, `wss` → `https`.
pub fn info_url(relay: &str) -> Option<String> {
    if let Some(rest) = relay.strip_prefix("wss://") {
        Some(format!("https://{rest}"))
    } else {
        relay
            .strip_prefix("ws://")
            .map(|rest| format!("http://{rest}"))
    }
}

/// The id of the node's `i`-th subscription on a relay.
pub fn sub_id(i: usize) -> String {
    if i == 0 {
        SUB_ID.to_owned()
    } else {
        format!("{SUB_ID}-{i}")
    }
}

/// Whether a subscription id is one of the node's.
pub fn is_our_sub(id: &str) -> bool {
    id == SUB_ID
        || id
            .strip_prefix(SUB_ID)
            .and_then(|r| r.strip_prefix('-'))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Bytes of a `REQ` with every fixed part of the node's one filter: `["REQ","<id>",{"kinds":[],
/// "#x":[],"since":<10 digits>}]`, with room to spare.
const REQ_BASE: usize = 64;
/// Bytes one topic adds at most: `"<topic>",` in `#x` and `<kind>,` in `kinds` (kinds are 5
/// digits at most).
fn topic_cost(topic: &str) -> usize {
    topic.len() + 3 + 6
}

/// An upper bound of the `REQ` text of subscription `i` over `topics` (one filter).
pub fn req_len(i: usize, topics: &[String]) -> usize {
    REQ_BASE + sub_id(i).len() + topics.iter().map(|t| topic_cost(t)).sum::<usize>()
}

/// How a relay's topics are subscribed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubPlan {
    /// The subscriptions, in id order ([`sub_id`]): each one `REQ` with one filter over these
    /// topics.
    pub reqs: Vec<Vec<String>>,
    /// Topics that fit in no subscription the relay allows: not heard through it.
    pub left_out: Vec<String>,
}

impl SubPlan {
    /// Every subscribed topic.
    pub fn topics(&self) -> Vec<String> {
        self.reqs.iter().flatten().cloned().collect()
    }
}

/// Packs `topics` into as few subscriptions as `rules` allow: one filter per `REQ` (a filter
/// holds any number of `#x` values, so `max_filters` is never the constraint), a new `REQ` only
/// when the message would exceed `max_message_length`, at most `max_subscriptions` of them;
/// what fits nowhere is left out.
pub fn plan_subscriptions(topics: &[String], rules: &RelayRules) -> SubPlan {
    let max_len = rules.max_message_length.map_or(usize::MAX, |m| m as usize);
    let max_subs = rules.max_subscriptions.map_or(usize::MAX, |m| m as usize);
    let mut plan = SubPlan::default();
    let mut current: Vec<String> = Vec::new();
    for topic in topics {
        let i = plan.reqs.len();
        if i >= max_subs {
            plan.left_out.push(topic.clone());
            continue;
        }
        let mut with = current.clone();
        with.push(topic.clone());
        if req_len(i, &with) <= max_len {
            current = with;
            continue;
        }
        if current.is_empty() {
            // Not even alone: this topic cannot be subscribed here.
            plan.left_out.push(topic.clone());
            continue;
        }
        plan.reqs.push(std::mem::take(&mut current));
        let i = plan.reqs.len();
        let alone = std::slice::from_ref(topic);
        if i < max_subs && req_len(i, alone) <= max_len {
            current.push(topic.clone());
        } else {
            plan.left_out.push(topic.clone());
        }
    }
    if !current.is_empty() {
        plan.reqs.push(current);
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{i:040x}")).collect()
    }

    #[test]
    fn nip11_limits_are_read_leniently() {
        let doc = br#"{"name":"r","limitation":{"max_subscriptions":20,"max_filters":"10",
            "max_message_length":16384.0,"auth_required":true,"payment_required":false,
            "restricted_writes":true,"max_limit":-1}}"#;
        let r = RelayRules::parse(doc, 7).expect("parses");
        assert_eq!(r.max_subscriptions, Some(20));
        assert_eq!(r.max_filters, Some(10));
        assert_eq!(r.max_message_length, Some(16384));
        assert!(r.auth_required && r.restricted_writes && !r.payment_required);
        assert_eq!(r.read_only(), Some(ReadOnly::RestrictedWrites));
        assert_eq!(r.fetched_at, Some(7));
        // Zero, negative and junk mean "no limit"; a document without limitation is fine.
        let r = RelayRules::parse(
            br#"{"limitation":{"max_subscriptions":0,"max_filters":-3,"max_message_length":"x"}}"#,
            0,
        )
        .expect("parses");
        assert_eq!(
            (r.max_subscriptions, r.max_filters, r.max_message_length),
            (None, None, None)
        );
        assert_eq!(
            RelayRules::parse(b"{}", 0).expect("parses").read_only(),
            None
        );
        assert!(RelayRules::parse(b"[1]", 0).is_err());
        assert!(RelayRules::parse(b"<html>", 0).is_err());
        assert!(RelayRules::parse(&vec![b' '; INFO_MAX_BYTES + 1], 0).is_err());
        let paid = RelayRules::parse(br#"{"limitation":{"payment_required":true}}"#, 0);
        assert_eq!(
            paid.expect("parses").read_only(),
            Some(ReadOnly::PaymentRequired)
        );
    }

    #[test]
    fn info_urls_and_staleness() {
        assert_eq!(
            info_url("wss://relay.example/x").as_deref(),
            Some("https://relay.example/x")
        );
        assert_eq!(
            info_url("ws://127.0.0.1:7777").as_deref(),
            Some("http://127.0.0.1:7777")
        );
        assert_eq!(info_url("http://x"), None);
        assert!(RelayRules::default().stale(0));
        let r = RelayRules::unreadable("timed out", 1_000);
        assert!(!r.stale(1_000 + INFO_MAX_AGE_MS - 1) && r.stale(1_000 + INFO_MAX_AGE_MS));
        assert!(is_our_sub("meshrtc") && is_our_sub("meshrtc-12"));
        assert!(!is_our_sub("meshrtc-") && !is_our_sub("other") && !is_our_sub("meshrtcx"));
    }

    #[test]
    fn without_limits_every_topic_is_one_filter_in_one_req() {
        let t = topics(500);
        let plan = plan_subscriptions(&t, &RelayRules::default());
        assert_eq!(plan.reqs, vec![t]);
        assert!(plan.left_out.is_empty());
    }

    #[test]
    fn long_reqs_are_split_within_the_message_length_and_subscription_count() {
        let t = topics(100);
        let rules = RelayRules {
            max_message_length: Some(1024),
            max_subscriptions: Some(20),
            max_filters: Some(1),
            ..Default::default()
        };
        let plan = plan_subscriptions(&t, &rules);
        assert!(plan.left_out.is_empty());
        assert_eq!(plan.topics(), t, "every topic once, in order");
        // As few as the length allows: every REQ but the last is full.
        let per = plan.reqs[0].len();
        assert!(per > 1);
        assert_eq!(plan.reqs.len(), t.len().div_ceil(per));
        for (i, req) in plan.reqs.iter().enumerate() {
            assert!(req_len(i, req) <= 1024);
        }
        // Too few subscriptions allowed: the rest is left out, not sent.
        let plan = plan_subscriptions(
            &t,
            &RelayRules {
                max_subscriptions: Some(2),
                ..rules.clone()
            },
        );
        assert_eq!(plan.reqs.len(), 2);
        assert_eq!(plan.topics().len() + plan.left_out.len(), t.len());
        assert_eq!(plan.left_out, t[plan.topics().len()..].to_vec());
        // A length nothing fits in: nothing is subscribed.
        let plan = plan_subscriptions(
            &t[..3],
            &RelayRules {
                max_message_length: Some(40),
                ..Default::default()
            },
        );
        assert!(plan.reqs.is_empty());
        assert_eq!(plan.left_out.len(), 3);
    }

    #[test]
    fn the_estimate_bounds_the_real_req() {
        use nostr_sdk::{Alphabet, ClientMessage, Filter, JsonUtil, Kind, SingleLetterTag};
        use nostr_sdk::{SubscriptionId, Timestamp};
        let t = topics(50);
        let filter = Filter::new()
            .kinds(
                t.iter()
                    .enumerate()
                    .map(|(i, _)| Kind::Custom(20_000 + i as u16)),
            )
            .since(Timestamp::now())
            .custom_tags(SingleLetterTag::lowercase(Alphabet::X), t.iter().cloned());
        let req = ClientMessage::req(SubscriptionId::new(sub_id(3)), vec![filter]);
        assert!(req.as_json().len() <= req_len(3, &t), "{}", req.as_json());
    }

    #[test]
    fn message_length_decides_what_a_relay_takes() {
        let r = RelayRules {
            max_message_length: Some(1000),
            ..Default::default()
        };
        assert!(r.takes(1000) && !r.takes(1001));
        assert!(RelayRules::default().takes(usize::MAX));
    }
}
