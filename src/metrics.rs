//! Prometheus metrics for `GET /metrics`: traffic counters and latency histograms the core
//! updates as things happen, plus the node's status read at scrape time.
//!
//! Labels never carry room names, app ids or peer ids (a scrape must not leak who talks to
//! whom, and their number is unbounded): only fixed sets such as a direction, a relay state or a
//! drop counter's name.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::drops::DropReason;
use crate::node::Observer;
use crate::node::StatusInfo;
use crate::signal::pool::RelayPhase;

/// Every relay state, so a scrape shows zeros rather than missing series.
const RELAY_PHASES: [RelayPhase; 5] = [
    RelayPhase::Connected,
    RelayPhase::Connecting,
    RelayPhase::RateLimited,
    RelayPhase::Disconnected,
    RelayPhase::Retired,
];

/// Which way traffic went.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Direction {
    direction: &'static str,
}

const IN: Direction = Direction { direction: "in" };
const OUT: Direction = Direction { direction: "out" };

/// What the core reports as it works (cheap atomic handles; clones share the values): the
/// node's [`Observer`].
#[derive(Clone, Debug)]
pub struct Traffic {
    messages: Family<Direction, Counter>,
    bytes: Family<Direction, Counter>,
    announces: Counter,
    rtt: Histogram,
    join: Histogram,
}

impl Default for Traffic {
    fn default() -> Self {
        let t = Traffic {
            messages: Family::default(),
            bytes: Family::default(),
            announces: Counter::default(),
            // 0.25 ms .. 4 s: loopback round trips up to intercontinental ones.
            rtt: Histogram::new(exponential_buckets(0.000_25, 2.0, 15)),
            // 10 ms .. 40 s: a loopback join up to a TURN fallback after a failed attempt.
            join: Histogram::new(exponential_buckets(0.01, 2.0, 13)),
        };
        // Both directions from the start, so a scrape shows zeros rather than no series.
        for d in [IN, OUT] {
            let _ = t.messages.get_or_create(&d);
            let _ = t.bytes.get_or_create(&d);
        }
        t
    }
}

impl Observer for Traffic {
    fn message_in(&self, bytes: usize) {
        self.messages.get_or_create(&IN).inc();
        self.bytes.get_or_create(&IN).inc_by(bytes as u64);
    }

    fn message_out(&self, bytes: usize, peers: usize) {
        self.messages.get_or_create(&OUT).inc_by(peers as u64);
        self.bytes
            .get_or_create(&OUT)
            .inc_by((bytes * peers) as u64);
    }

    fn announce(&self) {
        self.announces.inc();
    }

    fn rtt(&self, rtt: std::time::Duration) {
        self.rtt.observe(rtt.as_secs_f64());
    }

    fn join(&self, latency: std::time::Duration) {
        self.join.observe(latency.as_secs_f64());
    }
}

/// The Prometheus text exposition of the node: `traffic` plus what `status` says now.
pub fn render(traffic: &Traffic, status: &StatusInfo) -> String {
    let mut r = Registry::with_prefix("meshrtc");
    let info = Info::new(vec![
        ("version", env!("CARGO_PKG_VERSION")),
        ("wire", "trystero-0.25.4"),
    ]);
    r.register("build", "The daemon's version and wire", info);
    gauge(
        &mut r,
        "uptime_seconds",
        "Seconds since the daemon started",
        (status.uptime_ms / 1000) as i64,
    );

    let relays = Family::<Vec<(&'static str, &'static str)>, Gauge>::default();
    for phase in RELAY_PHASES {
        let n = status.relays.iter().filter(|s| s.state == phase).count();
        relays
            .get_or_create(&vec![("state", phase.name())])
            .set(n as i64);
    }
    r.register("relays", "Relays by state", relays);
    let sum = |f: fn(&crate::signal::pool::RelayState) -> u64| status.relays.iter().map(f).sum();
    // Since this process started: a relay's lifetime counts persist across restarts, and a
    // counter may only go up within one process.
    counter(
        &mut r,
        "relay_events_received",
        "Nostr events received from relays",
        sum(|s| s.this_process.events_in),
    );
    counter(
        &mut r,
        "relay_events_sent",
        "Nostr events relays accepted from this node",
        sum(|s| s.this_process.published_ok),
    );
    counter(
        &mut r,
        "relay_events_rejected",
        "Nostr events relays refused",
        sum(|s| s.this_process.published_rejected),
    );
    r.register(
        "announces_published",
        "Room announces published",
        traffic.announces.clone(),
    );

    gauge(&mut r, "links", "Live links to peers", status.links as i64);
    gauge(
        &mut r,
        "links_relayed",
        "Links through a TURN allocation of this node",
        status.links_relayed as i64,
    );
    gauge(
        &mut r,
        "pending_dials",
        "Connection attempts in progress",
        status.pending_dials as i64,
    );
    gauge(
        &mut r,
        "rooms",
        "Rooms the node holds",
        status.rooms.len() as i64,
    );
    gauge(
        &mut r,
        "sessions",
        "Local app sessions (gRPC and WebSocket)",
        status.sessions as i64,
    );

    r.register(
        "messages",
        "Channel messages (in: from peers; out: per peer handed to)",
        traffic.messages.clone(),
    );
    r.register_with_unit(
        "message",
        "Channel message payload bytes",
        Unit::Bytes,
        traffic.bytes.clone(),
    );
    r.register_with_unit(
        "rtt",
        "Round trips of pings to peers",
        Unit::Seconds,
        traffic.rtt.clone(),
    );
    r.register_with_unit(
        "join_latency",
        "From a connection attempt's start to the peer's join",
        Unit::Seconds,
        traffic.join.clone(),
    );

    let drops = Family::<Vec<(&'static str, &'static str)>, Counter>::default();
    for reason in DropReason::ALL {
        let n = status.drops.get(reason).copied().unwrap_or(0);
        drops
            .get_or_create(&vec![("reason", reason.name())])
            .inc_by(n);
    }
    r.register(
        "drops",
        "Inputs dropped, by counter name (see `meshrtc status`)",
        drops,
    );

    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &r);
    out
}

fn gauge(r: &mut Registry, name: &str, help: &str, value: i64) {
    let g = Gauge::<i64>::default();
    g.set(value);
    r.register(name, help, g);
}

fn counter(r: &mut Registry, name: &str, help: &str, value: u64) {
    let c = Counter::<u64>::default();
    c.inc_by(value);
    r.register(name, help, c);
}
