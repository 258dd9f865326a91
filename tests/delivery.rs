//! Delivery between real daemons across a link that dies: the messages it held arrive on the
//! next link, each once and in order, and `send` never said "sent" for something lost.
//!
//! The link is killed the way a network kills it: an nftables rule (a table this test creates
//! in the root namespace and removes, matching only the link's two loopback UDP ports) drops
//! its packets until both daemons declare it dead.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use meshrtc::proto;
use meshrtc::proto::event::Kind;

const APP: &str = "delivery-test";
/// Messages sent before the link dies, and while it dies.
const BEFORE: usize = 10;
const DURING: usize = 20;

fn nft(script: &str) {
    nft_in(None, script);
}

/// Drops UDP between two loopback ports while it lives.
struct Cut {
    table: String,
}

impl Cut {
    fn new(a: u16, b: u16) -> Cut {
        let table = format!("meshrtc_cut_{}", std::process::id());
        nft(&format!(
            "table inet {table} {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n    \
             udp sport {a} udp dport {b} drop\n    udp sport {b} udp dport {a} drop\n  }}\n}}\n"
        ));
        Cut { table }
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &self.table])
            .status();
    }
}

fn body(i: usize) -> String {
    format!("m{i}:{}", "x".repeat(32 << 10))
}

fn label(m: &proto::Message) -> String {
    match m.payload.as_ref().and_then(|p| p.kind.as_ref()) {
        Some(proto::payload::Kind::Text(t)) => t.split(':').next().unwrap_or("").to_owned(),
        other => format!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_a_dying_link_held_arrive_once_on_the_next_link() {
    let a = Daemon::with_embedded_relay().await;
    let b = Daemon::with_relays(&[a.relay_url()]).await;
    let (ida, idb) = (a.peer_id().await, b.peer_id().await);
    let (mut sa, mut sb) = (a.session().await, b.session().await);
    let ra = sa.join(APP, "r", "").await;
    sb.join(APP, "r", "").await;
    assert!(sa.wait_join(&idb, JOIN).await, "no join");
    assert!(sb.wait_join(&ida, JOIN).await, "no join");
    // Capabilities (and so tracking) are exchanged with the handshake; a round trip settles it.
    tokio::time::sleep(Duration::from_millis(300)).await;

    for i in 0..BEFORE {
        let r = sa.send(ra, "c", text(&body(i)), &[]).await;
        assert!(r.error.is_none(), "{:?}", r.error);
    }
    let (local, remote) = (
        local_link_port(&a, APP, "r").await,
        local_link_port(&b, APP, "r").await,
    );
    let cut = Cut::new(local, remote);
    for i in BEFORE..BEFORE + DURING {
        let r = sa.send(ra, "c", text(&body(i)), &[]).await;
        assert!(r.error.is_none(), "{:?}", r.error);
        assert_eq!(r.delivered_to, vec![idb.clone()], "accepted for the peer");
    }
    assert!(
        sa.wait_leave(&idb, Duration::from_secs(40)).await,
        "the cut link was never declared dead"
    );
    drop(cut);
    assert!(
        sa.wait_join(&idb, Duration::from_secs(30)).await,
        "no new link after the cut healed"
    );

    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < BEFORE + DURING && Instant::now() < deadline {
        if let Some(m) = sb.wait_message(Duration::from_secs(1)).await {
            got.push(label(&m));
        }
    }
    // Anything sent twice would show up now.
    while let Some(m) = sb.wait_message(Duration::from_secs(2)).await {
        got.push(label(&m));
    }
    let want: Vec<String> = (0..BEFORE + DURING).map(|i| format!("m{i}")).collect();
    assert_eq!(got, want, "each message once, in order");
    let undelivered = sa
        .wait_for(Duration::from_millis(100), |e| {
            matches!(e.kind, Some(Kind::Undelivered(_)))
        })
        .await;
    assert!(undelivered.is_none(), "{undelivered:?}");
}
