//! `GET /metrics`: the API token as a bearer header, the Prometheus text format, figures that
//! move with traffic, and no room, app or peer ids in it.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use meshrtc::proto;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// One HTTP/1.1 GET on the bridge: (status code, body).
async fn get(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the bridge");
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_owned());
    (code, body)
}

/// Samples of a scrape, by series (name and labels) — chunked transfer framing skipped.
fn samples(body: &str) -> BTreeMap<String, f64> {
    body.lines()
        .filter(|l| l.starts_with("meshrtc_"))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn token(d: &Daemon) -> String {
    let out = cli(&["--daemon", &d.endpoint(), "token"]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_token_and_move_with_traffic_without_naming_anyone() {
    let a = Daemon::with_embedded_relay().await;
    let b = Daemon::with_relays(&[a.relay_url()]).await;
    let tok = token(&a);

    let (code, _) = get(a.ws_port, "/metrics", None).await;
    assert_eq!(code, 401, "a scrape without the token was served");
    let (code, _) = get(a.ws_port, "/metrics", Some("wrong")).await;
    assert_eq!(code, 401);

    let (code, before) = get(a.ws_port, "/metrics", Some(&tok)).await;
    assert_eq!(code, 200, "{before}");
    let before = samples(&before);
    assert_eq!(
        before.get("meshrtc_relays{state=\"connected\"}"),
        Some(&1.0)
    );
    assert_eq!(before.get("meshrtc_links"), Some(&0.0));
    assert_eq!(
        before.get("meshrtc_drops_total{reason=\"metrics_token_refused\"}"),
        Some(&2.0),
        "refused scrapes are counted"
    );
    assert!(before.contains_key("meshrtc_build_info{version=\"0.1.0\",wire=\"trystero-0.25.4\"}"));

    let (app, room) = ("metrics-app", "metrics-secret-room");
    let mut sa = a.session().await;
    let mut sb = b.session().await;
    let ha = sa.join(app, room, "").await;
    let hb = sb.join(app, room, "").await;
    let (ida, idb) = (a.peer_id().await, b.peer_id().await);
    assert!(sa.wait_join(&idb, Duration::from_secs(30)).await, "no join");
    assert!(sb.wait_join(&ida, Duration::from_secs(30)).await, "no join");
    for i in 0..5 {
        sb.send(hb, "chat", text(&format!("to a {i}")), &[]).await;
    }
    sa.send(ha, "chat", binary(vec![7; 1000], "{}"), &[]).await;
    for _ in 0..5 {
        assert!(sa.wait_message(Duration::from_secs(20)).await.is_some());
    }
    let mut c = meshrtc::client::connect(&a.endpoint())
        .await
        .expect("client");
    let ping = proto::PingRequest {
        app: app.into(),
        room: room.into(),
        peer: idb.clone(),
    };
    c.ping(ping).await.expect("ping");

    let (code, body) = get(a.ws_port, "/metrics", Some(&tok)).await;
    assert_eq!(code, 200);
    for secret in [app, room, ida.as_str(), idb.as_str()] {
        assert!(!body.contains(secret), "{secret} appears in the scrape");
    }
    let after = samples(&body);
    let v = |k: &str| {
        after
            .get(k)
            .copied()
            .unwrap_or_else(|| panic!("{k} missing:\n{body}"))
    };
    assert_eq!(v("meshrtc_links"), 1.0);
    assert_eq!(v("meshrtc_rooms"), 1.0);
    assert_eq!(v("meshrtc_sessions"), 1.0);
    assert!(v("meshrtc_messages_total{direction=\"in\"}") >= 5.0);
    assert!(v("meshrtc_message_bytes_total{direction=\"in\"}") >= 5.0 * 6.0);
    assert_eq!(v("meshrtc_messages_total{direction=\"out\"}"), 1.0);
    assert_eq!(v("meshrtc_message_bytes_total{direction=\"out\"}"), 1000.0);
    assert!(v("meshrtc_announces_published_total") >= 1.0);
    assert!(
        v("meshrtc_relay_events_received_total") > before["meshrtc_relay_events_received_total"]
    );
    assert!(v("meshrtc_relay_events_sent_total") > before["meshrtc_relay_events_sent_total"]);
    assert!(v("meshrtc_rtt_seconds_count") >= 1.0);
    assert!(v("meshrtc_join_latency_seconds_count") >= 1.0);
    assert!(v("meshrtc_join_latency_seconds_sum") > 0.0);
    assert!(v("meshrtc_uptime_seconds") >= 0.0);
    let drop_series = after
        .keys()
        .filter(|k| k.starts_with("meshrtc_drops_total{"))
        .count();
    assert_eq!(
        drop_series,
        meshrtc::drops::DropReason::ALL.len(),
        "every drop counter by name"
    );
    assert!(
        body.trim_end().ends_with("# EOF"),
        "not a complete exposition"
    );
}
