//! The API surface (health, reflection, permissions) and forged signaling against a real relay.

mod common;

use std::time::{Duration, Instant};

use common::*;
use nostr_relay_builder::prelude::{LocalRelay, RateLimit, RelayBuilder};
use nostr_sdk::{EventBuilder, Keys, Kind, Tag, TagKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_answer_like_grpcurl_needs() {
    let a = Daemon::with_embedded_relay().await;
    let path = a.socket();
    assert_eq!(mode_of(&path), 0o600);
    let channel = {
        let p = path.clone();
        tonic::transport::Endpoint::try_from("http://[::]:50051")
            .expect("endpoint")
            .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                let p = p.clone();
                async move {
                    tokio::net::UnixStream::connect(p)
                        .await
                        .map(hyper_util::rt::TokioIo::new)
                }
            }))
            .await
            .expect("connect")
    };
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let r = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "meshrtc.v1.Node".into(),
        })
        .await
        .expect("health check")
        .into_inner();
    assert_eq!(
        r.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut refl = ServerReflectionClient::new(channel);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = refl
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .expect("reflection")
        .into_inner();
    let msg = stream.message().await.expect("reply").expect("one reply");
    let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else {
        panic!("unexpected reflection reply")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"meshrtc.v1.Node".to_string()), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_garbage_signaling_is_dropped_and_counted() {
    let port = free_port();
    let relay = LocalRelay::new(RelayBuilder::default().port(port).rate_limit(RateLimit {
        max_reqs: 64,
        notes_per_minute: 100_000,
    }));
    relay.run().await.expect("relay runs");
    let url = format!("ws://127.0.0.1:{port}");
    let a = Daemon::with_relays(std::slice::from_ref(&url)).await;
    let mut s = a.session().await;
    s.join("forge", "room", "").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let topic = meshrtc::wire::topic::root_topic("forge", "room");
    let kind = Kind::Custom(meshrtc::wire::topic::topic_kind(&topic));
    let keys = Keys::generate();
    let sign = |content: &str| {
        EventBuilder::new(kind, content)
            .tag(Tag::custom(TagKind::x(), [topic.clone()]))
            .sign_with_keys(&keys)
            .expect("sign")
    };
    // A valid announce, then the same with its content swapped (bad id and signature).
    let good = sign(r#"{"peerId":"zzzzzzzzzzzzzzzzzzzz"}"#);
    let mut forged = sign(r#"{"peerId":"zzzzzzzzzzzzzzzzzzzy"}"#);
    forged.content = r#"{"peerId":"zzzzzzzzzzzzzzzzzzzx"}"#.into();
    relay.notify_event(forged);
    relay.notify_event(sign("not json at all"));
    relay.notify_event(sign(r#"{"peerId":"short"}"#));
    relay.notify_event(good);
    let seen = s
        .wait_for(JOIN, |e| matches!(&e.kind, Some(meshrtc::proto::event::Kind::PeerSeen(p)) if p.peer == "zzzzzzzzzzzzzzzzzzzz"))
        .await;
    assert!(seen.is_some(), "the valid announce was lost");
    // Every bad event was handled once both counters moved; then nothing forged was seen.
    let deadline = Instant::now() + JOIN;
    let status = loop {
        let status = a.status().await;
        let counted = |name: &str| status.drops.get(name).copied().unwrap_or(0);
        if counted("event_bad_signature") >= 1 && counted("event_bad_content") >= 2 {
            break status;
        }
        assert!(Instant::now() < deadline, "{:?}", status.drops);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!s.events.iter().any(|e| matches!(&e.kind, Some(meshrtc::proto::event::Kind::PeerSeen(p)) if p.peer.ends_with('x'))));
    assert_eq!(
        status.drops.get("event_bad_signature"),
        Some(&1),
        "{:?}",
        status.drops
    );
    assert_eq!(
        status.drops.get("event_bad_content"),
        Some(&2),
        "{:?}",
        status.drops
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_api_requests_get_clear_errors_and_are_counted() {
    use meshrtc::proto::{self, client_message::Body};
    let a = Daemon::with_embedded_relay().await;
    // Clients that simply finish are not bad input: CLI calls that exit, and a session whose
    // client goes away without a word.
    for args in [
        &["status"][..],
        &["send", "quiet", "chat", "hello"][..],
        &["relays"][..],
    ] {
        let out = cli(&[&["--daemon", a.endpoint().as_str()][..], args].concat());
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    {
        let mut gone = a.session().await;
        gone.join("app", "quiet", "").await;
    }
    // Once the daemon has closed that session, its end has been handled.
    let deadline = Instant::now() + JOIN;
    let drops = loop {
        let status = a.status().await;
        if status.sessions == 0 {
            break status.drops;
        }
        assert!(
            Instant::now() < deadline,
            "the gone session was never closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        drops.get("api_bad_request"),
        None,
        "closing counted as bad input: {drops:?}"
    );
    let mut s = a.session().await;
    let r = s
        .call(Body::Join(proto::JoinRequest {
            room: "r".into(),
            ..Default::default()
        }))
        .await;
    assert_eq!(r.error.map(|e| e.code), Some("invalid_argument".into()));
    let room = s.join("app", "room", "").await;
    let bad_json = proto::Payload {
        kind: Some(proto::payload::Kind::Json("{oops".into())),
        meta_json: String::new(),
    };
    let r = s.send(room, "chat", bad_json, &[]).await;
    let e = r.error.expect("refused");
    assert_eq!(e.code, "invalid_argument");
    assert!(e.message.contains("not JSON"), "{}", e.message);
    let r = s.send(room, "@_hsready", text("x"), &[]).await;
    assert_eq!(r.error.map(|e| e.code), Some("invalid_channel".into()));
    let r = s.send(99, "chat", text("x"), &[]).await;
    assert_eq!(r.error.map(|e| e.code), Some("not_found".into()));
    let status = a.status().await;
    // Exactly the two invalid arguments above (the missing app id and the bad JSON).
    assert_eq!(
        status.drops.get("api_bad_request").copied(),
        Some(2),
        "{:?}",
        status.drops
    );
}
