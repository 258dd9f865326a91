//! A chat in a room, through the daemon: lines typed go to every peer of the room, messages from
//! peers are printed. `cargo run --example chat -- [DAEMON [ROOM]]` (the daemon's endpoint,
//! by default this user's socket; the room, by default `lobby`; the app id is `chat`;
//! `MESHRTC_TOKEN` for a TCP endpoint).

use meshrtc::client::{self, Session};
use meshrtc::proto::{self, client_message::Body, event::Kind, payload, server_message};
use tokio::io::{AsyncBufReadExt as _, BufReader};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let daemon = args.next().unwrap_or_else(client::default_endpoint);
    let room = args.next().unwrap_or_else(|| "lobby".into());
    let token = std::env::var("MESHRTC_TOKEN").ok();

    let mut session =
        Session::open(client::connect_with_token(&daemon, token.as_deref()).await?).await?;
    let (joined, early) = session
        .join(proto::JoinRequest {
            app: "chat".into(),
            room: room.clone(),
            channels: vec!["chat".into()],
            ..Default::default()
        })
        .await?;
    println!("in {room} as {}; type a line to send it", joined.self_id);
    // Peers already there came with the join's reply.
    for e in early {
        show(e);
    }

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else { return Ok(()) };
                session
                    .request(Body::Send(proto::SendRequest {
                        room: joined.room,
                        channel: "chat".into(),
                        payload: Some(proto::Payload {
                            kind: Some(payload::Kind::Text(line)),
                            ..Default::default()
                        }),
                        targets: Vec::new(),
                    }))
                    .await?;
            }
            message = session.next() => match message?.body {
                Some(server_message::Body::Event(e)) => show(e),
                Some(server_message::Body::Reply(r)) if r.error.is_some() => {
                    let e = r.error.unwrap_or_default();
                    eprintln!("send failed: {}: {}", e.code, e.message);
                }
                _ => {}
            },
        }
    }
}

/// Prints a room event worth a line: a text message, a peer coming or going.
fn show(e: proto::Event) {
    match e.kind {
        Some(Kind::Message(m)) => {
            if let Some(payload::Kind::Text(text)) = m.payload.and_then(|p| p.kind) {
                println!("{}: {text}", m.from);
            }
        }
        Some(Kind::PeerJoin(p)) => println!("* {} joined", p.peer),
        Some(Kind::PeerLeave(p)) => println!("* {} left", p.peer),
        _ => {}
    }
}
