//! How many events one relay connection may hand us per topic: a relay (or anyone who can
//! publish to it) flooding a room's topic costs a JSON parse per event beyond the budget, not a
//! signature check and a turn of the node's core. Pure: time is passed in.

use std::collections::HashMap;
use std::time::Instant;

/// Events per second one connection may bring for one topic, and at once. A room of about
/// 2,500 Trystero peers announcing every 5 s stays within it; a flood is cut to it.
pub const EVENTS_PER_SEC: f64 = 500.0;
/// Burst allowance per topic.
pub const EVENTS_BURST: f64 = 1_000.0;
/// Topics tracked per connection (a relay inventing topics cannot grow the table; past it the
/// table starts over).
const TOPICS: usize = 1_024;

/// Token buckets per topic for one relay connection.
#[derive(Debug, Default)]
pub struct EventBudget {
    topics: HashMap<String, (f64, Instant)>,
}

impl EventBudget {
    /// Whether an event on `topic` arriving at `now` is within the budget (and takes from it).
    pub fn admit(&mut self, topic: &str, now: Instant) -> bool {
        if !self.topics.contains_key(topic) && self.topics.len() >= TOPICS {
            self.topics.clear();
        }
        let (tokens, at) = self
            .topics
            .entry(topic.to_owned())
            .or_insert((EVENTS_BURST, now));
        let refill = now.saturating_duration_since(*at).as_secs_f64() * EVENTS_PER_SEC;
        *tokens = (*tokens + refill).min(EVENTS_BURST);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
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
        assert!((1_400..=1_600).contains(&passed), "{passed} passed");
        // Another topic on the same connection is untouched.
        assert!(b.admit("quiet", t0 + Duration::from_secs(1)));
        // After a quiet spell the flooded topic is back.
        assert!(b.admit("flooded", t0 + Duration::from_secs(3)));
    }

    #[test]
    fn invented_topics_cannot_grow_the_table() {
        let mut b = EventBudget::default();
        let t0 = Instant::now();
        for i in 0..10_000 {
            b.admit(&format!("t{i}"), t0);
        }
        assert!(b.topics.len() <= TOPICS);
    }
}
