//! The embedded Nostr relay (nostr-relay-builder), for single machines and LANs with no internet.

use std::net::SocketAddr;

use nostr_relay_builder::prelude::{LocalRelay, RateLimit, RelayBuilder};

/// Starts a relay on `addr` in the current runtime; it stops when the handle is dropped.
pub async fn start(addr: SocketAddr, events_per_minute: u32) -> anyhow::Result<LocalRelay> {
    let builder = RelayBuilder::default()
        .addr(addr.ip())
        .port(addr.port())
        .rate_limit(RateLimit {
            max_reqs: 256,
            notes_per_minute: events_per_minute,
        });
    let relay = LocalRelay::new(builder);
    relay
        .run()
        .await
        .map_err(|e| anyhow::anyhow!("embedded relay on {addr}: {e}"))?;
    Ok(relay)
}
