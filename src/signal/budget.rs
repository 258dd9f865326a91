//! How many events one relay connection may hand us per topic: a relay (or anyone who can
//! publish to it) flooding a room's topic costs a JSON parse per event beyond the budget, not a
//! signature check and a turn of the node's core. Pure: time is passed in.

use std::collections::HashMap;
use std::time::Instant;

/// Events per second one connection may bring for one topic, and at once. A room of about
/// 2,500 Trystero peers announcing every 5 s stays within it; a flood is cut to it.
pub const EVENTS_PER_SEC: f64 = 500.0;
/// Burst allowance per topic. Trystero's kinds are ephemeral (20000–29999): a relay keeps no
/// backlog to replay on (re)subscribing, so a burst only absorbs jitter, and every admitted
/// event is a turn of the node's core that peers' frames wait behind.
pub const EVENTS_BURST: f64 = 200.0;
/// Events per second one connection may bring across all topics (a relay could put a decoy
/// topic first in each event to spread a flood over invented topics).
pub const CONNECTION_EVENTS_PER_SEC: f64 = 4.0 * EVENTS_PER_SEC;
/// Topics tracked per connection (a relay inventing topics cannot grow the table; past it the
/// table starts over).
const TOPICS: usize = 1_024;

/// Token buckets per topic for one relay connection.
#[derive(Debug, Default)]
pub struct EventBudget {
    topics: HashMap<String, (f64, Instant)>,
    /// The whole connection's bucket.
    all: Option<(f64, Instant)>,
}

impl EventBudget {
    /// Whether an event on `topic` arriving at `now` is within the budget (and takes from it).
    pub fn admit(&mut self, topic: &str, now: Instant) -> bool {
        if !self.topics.contains_key(topic) {
            if self.topics.len() >= TOPICS {
                self.topics.clear();
            }
            // Allocated once per topic, not per event of a flood.
            self.topics.insert(topic.to_owned(), (EVENTS_BURST, now));
        }
        let Some((tokens, at)) = self.topics.get_mut(topic) else {
            return false;
        };
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * EVENTS_PER_SEC)
            .min(EVENTS_BURST);
        *at = now;
        if *tokens < 1.0 {
            return false;
        }
        // Only what its topic lets through counts against the connection: one flooded topic
        // cannot starve the others.
        let burst = 2.0 * CONNECTION_EVENTS_PER_SEC;
        let (all, all_at) = self.all.get_or_insert((burst, now));
        *all = (*all
            + now.saturating_duration_since(*all_at).as_secs_f64() * CONNECTION_EVENTS_PER_SEC)
            .min(burst);
        *all_at = now;
        if *all < 1.0 {
            return false;
        }
        *all -= 1.0;
        *tokens -= 1.0;
        true
    }
}

/// Whether a relay's message is an `EVENT` (it starts `["EVENT"`, spaces allowed).
pub fn looks_like_event(text: &str) -> bool {
    let t = text.trim_start();
    t.strip_prefix('[')
        .map(str::trim_start)
        .is_some_and(|t| t.starts_with("\"EVENT\""))
}

/// The first `x` tag's value of an event as a relay sent it, found without parsing the JSON
/// (`["x","<topic>"]`, spaces allowed); `None` when not found that way.
pub fn scan_topic(text: &str) -> Option<&str> {
    let mut rest = text;
    while let Some(at) = rest.find("\"x\"") {
        let before = rest[..at].trim_end();
        let after = rest[at + 3..].trim_start();
        rest = &rest[at + 3..];
        if !before.ends_with('[') {
            continue;
        }
        let Some(value) = after.strip_prefix(',').map(str::trim_start) else {
            continue;
        };
        let Some(value) = value.strip_prefix('"') else {
            continue;
        };
        let end = value.find('"')?;
        return Some(&value[..end]);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_flooded_topic_is_cut_to_the_budget_and_others_are_untouched() {
        let mut b = EventBudget::default();
        let t0 = Instant::now();
        // 10,000 events in one second on one topic: the burst and a second's worth pass.
        let passed = (0..10_000)
            .filter(|i| b.admit("flooded", t0 + Duration::from_micros(i * 100)))
            .count();
        let expected = EVENTS_BURST + EVENTS_PER_SEC;
        assert!(
            (passed as f64 - expected).abs() <= 0.1 * expected,
            "{passed} passed"
        );
        // Another topic on the same connection is untouched.
        assert!(b.admit("quiet", t0 + Duration::from_secs(1)));
        // After a quiet spell the flooded topic is back.
        assert!(b.admit("flooded", t0 + Duration::from_secs(3)));
    }

    #[test]
    fn invented_topics_cannot_grow_the_table_or_escape_the_connections_budget() {
        let mut b = EventBudget::default();
        let t0 = Instant::now();
        let passed = (0..10_000)
            .filter(|i| b.admit(&format!("t{i}"), t0 + Duration::from_micros(i * 100)))
            .count();
        assert!(b.topics.len() <= TOPICS);
        // 4,000 at once and 2,000 a second.
        assert!((5_500..=6_500).contains(&passed), "{passed} passed");
    }

    #[test]
    fn the_topic_is_found_without_parsing_and_odd_text_is_not_mistaken() {
        let e = r#"["EVENT","sub",{"id":"1","kind":20000,"tags":[["p","x"],["x","abc123"]],"content":"{\"x\":1}"}]"#;
        assert!(looks_like_event(e));
        assert_eq!(scan_topic(e), Some("abc123"));
        assert_eq!(
            scan_topic(r#"[ "EVENT", "s", {"tags": [ [ "x" , "t 1" ] ]}]"#),
            Some("t 1")
        );
        assert_eq!(
            scan_topic(r#"["EVENT","s",{"content":"\"x\"","tags":[]}]"#),
            None
        );
        assert!(!looks_like_event(r#"["EOSE","sub"]"#));
        assert!(!looks_like_event("garbage"));
    }
}
