//! systemd's side of the daemon (`Type=notify`): `READY=1` once the API listens and the relay
//! pool is up, `STATUS=` lines with relays, rooms and links, the watchdog fed only while the
//! node's core answers (a hung core misses its pings and systemd restarts the daemon), and
//! `STOPPING=1` at shutdown. Without `NOTIFY_SOCKET` none of this runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use meshrtc::node::{Node, StatusInfo};
use meshrtc::signal::pool::RelayPhase;
use sd_notify::NotifyState;

/// How long readiness waits for a relay before saying ready anyway (signaling retries on).
const RELAY_WAIT: Duration = Duration::from_secs(10);
/// How often the status line is refreshed without a watchdog.
const STATUS_EVERY: Duration = Duration::from_secs(10);

fn under_systemd() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

fn status_line(s: &StatusInfo) -> String {
    let up = s
        .relays
        .iter()
        .filter(|r| r.state == RelayPhase::Connected)
        .count();
    format!(
        "relays {up}/{} connected, {} rooms, {} links, {} sessions",
        s.relays.len(),
        s.rooms.len(),
        s.links,
        s.sessions
    )
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "systemd notification failed");
    }
}

/// Says ready once the relay pool is up, then keeps the status line and the watchdog going.
pub fn spawn(node: Arc<Node>, relays_configured: bool) {
    if !under_systemd() {
        return;
    }
    let watchdog = sd_notify::watchdog_enabled();
    tokio::spawn(async move {
        let start = Instant::now();
        let mut status = node.status().await;
        while relays_configured
            && start.elapsed() < RELAY_WAIT
            && !status
                .relays
                .iter()
                .any(|r| r.state == RelayPhase::Connected)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
            status = node.status().await;
        }
        notify(&[
            NotifyState::Ready,
            NotifyState::Status(&status_line(&status)),
        ]);
        let every = watchdog.map_or(STATUS_EVERY, |w| (w / 2).min(STATUS_EVERY));
        loop {
            tokio::time::sleep(every).await;
            // The status call takes the core's lock: no answer in time, no ping.
            match tokio::time::timeout(every, node.status()).await {
                Ok(s) => {
                    let line = status_line(&s);
                    if watchdog.is_some() {
                        notify(&[NotifyState::Watchdog, NotifyState::Status(&line)]);
                    } else {
                        notify(&[NotifyState::Status(&line)]);
                    }
                }
                Err(_) => tracing::error!("the node did not answer in time: watchdog not fed"),
            }
        }
    });
}

/// The daemon is shutting down.
pub fn stopping() {
    if under_systemd() {
        notify(&[NotifyState::Stopping]);
    }
}
