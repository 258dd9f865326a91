//! `meshrtc request` and `listen --respond`: Trystero request actions from the command line.

use std::collections::HashSet;
use std::io::Write as _;
use std::time::Duration;

use anyhow::{Context as _, bail};
use meshrtc::proto::{self, client_message::Body, event::Kind, server_message};
use serde_json::{Value, json};

use super::{JoinedPeers, RoomArgs, data_value, print_line};

/// One target's outcome of a request, as a JSON line.
pub(super) fn response_json(r: &proto::Response) -> Value {
    let mut line = serde_json::Map::new();
    line.insert("peer".into(), json!(r.peer));
    let status = match r.status() {
        proto::ResponseStatus::Fulfilled => "fulfilled",
        proto::ResponseStatus::Rejected => "rejected",
        proto::ResponseStatus::Timeout => "timeout",
        proto::ResponseStatus::Disconnected => "disconnected",
        proto::ResponseStatus::Unspecified => "unknown",
    };
    line.insert("status".into(), json!(status));
    if let Some(p) = &r.payload {
        data_value(p, &mut line);
    }
    if !r.error.is_empty() {
        line.insert("error".into(), json!(r.error));
    }
    Value::Object(line)
}

/// Text as a payload: JSON if it parses, else text.
fn text_payload(d: &str, meta_json: String) -> proto::Payload {
    let kind = match serde_json::from_str::<Value>(d) {
        Ok(_) => proto::payload::Kind::Json(d.to_owned()),
        Err(_) => proto::payload::Kind::Text(d.to_owned()),
    };
    proto::Payload {
        kind: Some(kind),
        meta_json,
    }
}

/// Runs the --respond command for one request; returns the answer.
pub(super) async fn run_responder(
    cmd: &str,
    r: &proto::IncomingRequest,
) -> proto::respond_request::Result {
    use proto::respond_request::Result as R;
    use tokio::io::AsyncWriteExt as _;
    let (input, meta) = match &r.payload {
        Some(p) => {
            let input: Vec<u8> = match &p.kind {
                Some(proto::payload::Kind::Text(t)) => t.clone().into_bytes(),
                Some(proto::payload::Kind::Json(j)) => j.clone().into_bytes(),
                Some(proto::payload::Kind::Binary(b)) => b.to_vec(),
                None => Vec::new(),
            };
            (input, p.meta_json.clone())
        }
        None => (Vec::new(), String::new()),
    };
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("MESHRTC_PEER", &r.from)
        .env("MESHRTC_CHANNEL", &r.channel)
        .env("MESHRTC_META", meta)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return R::Error(format!("could not run the responder: {e}")),
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A command that ignores its input closes the pipe early: not an error.
        let _ = stdin.write_all(&input).await;
    }
    match child.wait_with_output().await {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let text = text.strip_suffix('\n').unwrap_or(&text);
            R::Reply(text_payload(text, String::new()))
        }
        Ok(out) => {
            let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            R::Error(if err.is_empty() {
                format!("responder failed ({})", out.status)
            } else {
                err
            })
        }
        Err(e) => R::Error(format!("responder failed: {e}")),
    }
}

/// `meshrtc request`: waits for the targets to join, asks them, prints their outcomes.
#[allow(clippy::too_many_arguments)]
pub(super) async fn request(
    daemon: &str,
    room: RoomArgs,
    channel: String,
    data: String,
    to: Vec<String>,
    timeout: u64,
    meta: Option<String>,
    as_json: bool,
) -> anyhow::Result<()> {
    if let Some(m) = &meta {
        serde_json::from_str::<Value>(m).context("--meta is not JSON")?;
    }
    let mut s = super::session::open(daemon).await?;
    let (reply, early) = super::session::join_plain(&mut s, &room).await?;
    let mut joined = JoinedPeers::from_events(&early);
    let wait = async {
        while !joined.has(0, &to) {
            if let Some(server_message::Body::Event(e)) = s.next().await?.body {
                joined.track(&e);
            }
        }
        anyhow::Ok(())
    };
    if tokio::time::timeout(Duration::from_secs(timeout), wait)
        .await
        .is_err()
    {
        bail!(
            "timed out after {timeout} s waiting for peer(s) {} to join room {}",
            to.join(", "),
            room.room
        );
    }
    let mut wanted: HashSet<String> = to.iter().cloned().collect();
    let id = s
        .request(Body::Request(proto::PeerRequest {
            room: reply.room,
            channel,
            payload: Some(text_payload(&data, meta.unwrap_or_default())),
            targets: to.clone(),
            timeout_ms: timeout.saturating_mul(1000),
        }))
        .await?;
    let mut outcomes = Vec::new();
    let on_event = |e: proto::Event, outcomes: &mut Vec<proto::Response>| {
        if let Some(Kind::Response(r)) = e.kind
            && r.request_id == id
        {
            outcomes.push(r);
        }
    };
    let mut early_outcomes = Vec::new();
    s.reply(id, |e| on_event(e, &mut early_outcomes)).await?;
    outcomes.extend(early_outcomes);
    // The daemon answers every target by the deadline; the margin covers a slow daemon.
    let rest = async {
        while outcomes.len() < wanted.len() {
            if let Some(server_message::Body::Event(e)) = s.next().await?.body {
                on_event(e, &mut outcomes);
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(timeout + 5), rest)
        .await
        .context("the daemon gave no outcome in time")??;
    let mut failed = 0;
    for r in &outcomes {
        wanted.remove(&r.peer);
        if r.status() != proto::ResponseStatus::Fulfilled {
            failed += 1;
        }
        if as_json || to.len() > 1 {
            print_line(&response_json(r))?;
        }
    }
    if !(as_json || to.len() > 1)
        && let Some(r) = outcomes.first()
    {
        match r.status() {
            proto::ResponseStatus::Fulfilled => {
                match r.payload.as_ref().and_then(|p| p.kind.as_ref()) {
                    Some(proto::payload::Kind::Text(t)) => println!("{t}"),
                    Some(proto::payload::Kind::Json(j)) => println!("{j}"),
                    Some(proto::payload::Kind::Binary(b)) => std::io::stdout().write_all(b)?,
                    None => {}
                }
            }
            proto::ResponseStatus::Rejected => {
                bail!("{} rejected the request: {}", r.peer, r.error)
            }
            proto::ResponseStatus::Timeout => {
                bail!("{} did not answer within {timeout} s", r.peer)
            }
            _ => bail!("{} left before answering", r.peer),
        }
    }
    if failed > 0 {
        bail!(
            "{failed} of {} peer(s) did not fulfil the request",
            outcomes.len()
        );
    }
    Ok(())
}
