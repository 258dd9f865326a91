//! `meshrtc`: command-line client of the meshrtc daemon.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use clap::{Parser, Subcommand};
use meshrtc::proto::{self, client_message::Body, event::Kind, server_message};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// The version, with the wire it speaks.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (wire: Trystero 0.25.4)");

/// Command-line client of meshrtcd: join rooms, send and receive channel messages, inspect the node.
#[derive(Debug, Parser)]
#[command(version = VERSION, about, long_about = None)]
struct Cli {
    /// Daemon endpoint: unix:PATH or HOST:PORT (default unix:DATA_DIR/meshrtcd.sock).
    #[arg(long, env = "MESHRTC_DAEMON", global = true)]
    daemon: Option<String>,
    /// API token, required over TCP from another account or host (`meshrtc token` prints it; or
    /// env MESHRTC_TOKEN).
    #[arg(long, env = "MESHRTC_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, clap::Args)]
struct RoomArgs {
    /// Room id.
    room: String,
    /// App id.
    #[arg(long, default_value = "meshrtc")]
    app: String,
    /// Room password.
    #[arg(long, default_value = "")]
    password: String,
    /// Refuse peers that cannot encrypt end to end (needs --password).
    #[arg(long)]
    require_e2e: bool,
    /// Use the cellular overlay (large rooms of meshrtc peers); the first session to join a
    /// room decides its overlay.
    #[arg(long)]
    cells: bool,
    /// With --cells: about this many peers per cell (default: picked from the roster).
    #[arg(long, requires = "cells")]
    cell_size: Option<u32>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Join a room and print its events as JSON lines until interrupted.
    Listen {
        #[command(flatten)]
        room: RoomArgs,
        /// Only print messages of these channels (repeatable; default all).
        #[arg(long = "channel", value_name = "NAME")]
        channels: Vec<String>,
        /// Also print receive progress of chunked messages.
        #[arg(long)]
        progress: bool,
        /// Keep this channel's messages on the node: CHANNEL=COUNT, CHANNEL=AGE (7d, 12h, 30m)
        /// or CHANNEL=COUNT,AGE (repeatable).
        #[arg(long = "keep", value_name = "RULE", value_parser = parse_keep)]
        keep: Vec<proto::Keep>,
        /// First replay what the node kept after this point: a cursor (the last one printed),
        /// `all`, or an age (10m, 2h, 7d); then go on live.
        #[arg(long, value_name = "CURSOR|all|AGE", value_parser = parse_since)]
        since: Option<proto::Since>,
        /// With --since: skip replayed messages whose origin's signature could not be checked.
        #[arg(long, requires = "since")]
        verified_only: bool,
        /// Answer requests (Trystero request actions) on this channel (repeatable; needs
        /// --respond): they print as `request` lines instead of messages.
        #[arg(long = "serve", value_name = "CHANNEL", requires = "respond")]
        serve: Vec<String>,
        /// Answer each request with this shell command: the request's data on its stdin (text,
        /// or JSON text), MESHRTC_PEER, MESHRTC_CHANNEL and MESHRTC_META in its environment; its
        /// stdout is the reply (JSON if it parses, else text); a failing exit rejects the
        /// request with its stderr as the message.
        #[arg(long, value_name = "CMD", requires = "serve")]
        respond: Option<String>,
    },
    /// Ask peers on a channel as a Trystero page's `action.request` does; prints the reply
    /// (with several --to or --json: one JSON line per peer). Fails on a rejection, a timeout
    /// or a departed peer.
    Request {
        #[command(flatten)]
        room: RoomArgs,
        /// Channel (the page's request action).
        channel: String,
        /// The data (JSON if it parses as JSON, else text).
        data: String,
        /// Ask this peer (repeatable, at least one).
        #[arg(long = "to", value_name = "PEER", required = true)]
        to: Vec<String>,
        /// Wait this many seconds for the peers to join, then as long for their replies.
        #[arg(long, value_name = "SECS", default_value_t = 30)]
        timeout: u64,
        /// The request's own metadata (JSON), as Trystero's `metadata` option.
        #[arg(long, value_name = "JSON")]
        meta: Option<String>,
        /// Print each peer's outcome as a JSON line.
        #[arg(long)]
        json: bool,
    },
    /// Send one message on a channel (JSON if DATA parses as JSON, else text).
    Send {
        #[command(flatten)]
        room: RoomArgs,
        /// Channel name.
        channel: String,
        /// The message; with --file, optional JSON metadata for the file.
        data: Option<String>,
        /// Send only to this peer (repeatable).
        #[arg(long = "to", value_name = "PEER")]
        to: Vec<String>,
        /// Wait until this many peers have joined before sending.
        #[arg(long, value_name = "N")]
        wait_peers: Option<usize>,
        /// Give up after this many seconds.
        #[arg(long, value_name = "SECS", default_value_t = 30)]
        timeout: u64,
        /// Send this file's bytes as binary.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
    },
    /// Show the node's peer id, relays, rooms and counters.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Show it again every second until interrupted.
        #[arg(long)]
        watch: bool,
    },
    /// Print a shell completion script (e.g. `meshrtc completions bash > ~/.local/share/bash-completion/completions/meshrtc`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// List the joined peers of a room the node holds.
    Peers {
        #[command(flatten)]
        room: RoomArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure the round trip to a peer of a room (prints milliseconds).
    Ping {
        #[command(flatten)]
        room: RoomArgs,
        /// Peer id.
        peer: String,
    },
    /// Print the API token that scripts present to the WebSocket bridge.
    Token,
    /// Show what the node keeps of a room (channels, messages, bytes, oldest, newest).
    History {
        /// Room id.
        room: String,
        /// App id.
        #[arg(long, default_value = "meshrtc")]
        app: String,
        /// Room password (names a password room's channels when the node has not joined it).
        #[arg(long, default_value = "")]
        password: String,
        /// Remove this channel's history first.
        #[arg(long, value_name = "CHANNEL")]
        clear: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List relays and their states.
    Relays {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send media files into a room (IVF: VP8, VP9, AV1; Ogg: Opus), paced in real time.
    Publish {
        #[command(flatten)]
        room: RoomArgs,
        /// An IVF video file.
        #[arg(long, value_name = "FILE.ivf")]
        video: Option<PathBuf>,
        /// An Ogg Opus audio file.
        #[arg(long, value_name = "FILE.ogg")]
        audio: Option<PathBuf>,
        /// A WebM or Matroska file: its VP8, VP9 or AV1 video and Opus audio, as one stream.
        #[arg(long, value_name = "FILE.webm", conflicts_with_all = ["video", "audio"])]
        file: Option<PathBuf>,
        /// Start over at the end, until interrupted.
        #[arg(long = "loop")]
        looping: bool,
        /// Send only to this peer (repeatable).
        #[arg(long = "to", value_name = "PEER")]
        to: Vec<String>,
        /// Wait until this many peers have joined (default 1).
        #[arg(long, value_name = "N")]
        wait_peers: Option<usize>,
        /// Give up waiting for peers and negotiation after this many seconds.
        #[arg(long, value_name = "SECS", default_value_t = 30)]
        timeout: u64,
    },
    /// Write every remote track of a room to DIR/<peer>-<track>.ivf or .ogg (or, with
    /// `--format webm`, every stream to DIR/<peer>-<stream>.webm), one JSON line per finished
    /// file, until interrupted.
    Record {
        #[command(flatten)]
        room: RoomArgs,
        /// Where the files go.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// `tracks`: one IVF or Ogg per track; `webm`: one WebM per stream (VP8/VP9 and Opus).
        #[arg(long, value_enum, default_value_t = media::RecordFormat::Tracks)]
        format: media::RecordFormat,
    },
}

#[path = "meshrtc/history.rs"]
mod history;
#[path = "meshrtc/info.rs"]
mod info;
#[path = "meshrtc/matroska.rs"]
mod matroska;
#[path = "meshrtc/media.rs"]
mod media;
#[path = "meshrtc/ogg_opus.rs"]
mod ogg_opus;
#[path = "meshrtc/record_webm.rs"]
mod record_webm;
#[path = "meshrtc/request.rs"]
mod request;
#[path = "meshrtc/session.rs"]
mod session;
#[path = "meshrtc/webm.rs"]
mod webm;

use history::{parse_keep, parse_since};
use info::{peers, ping, relays, status, token};
use meshrtc::client::JoinedPeers;
use request::{request, response_json, run_responder};

static TOKEN: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// How to start the daemon, for errors that find it not running.
const START_HINT: &str = "start it with `meshrtcd` (or `systemctl --user start meshrtcd`), or point --daemon at a running one";

/// A client for the daemon, carrying the token if one was given.
async fn client(daemon: &str) -> anyhow::Result<meshrtc::client::AuthedClient> {
    if let Some(path) = daemon.strip_prefix("unix:") {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("the daemon is not running (no socket at {path});\n{START_HINT}")
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => bail!(
                "connecting to {daemon}: permission denied;\nthe daemon's socket is owner-only: \
                 run as the user who started it"
            ),
            _ => {}
        }
    }
    let token = TOKEN.get().and_then(|t| t.as_deref());
    meshrtc::client::connect_with_token(daemon, token)
        .await
        .map_err(|e| {
            anyhow::anyhow!("the daemon at {daemon} does not answer ({e:#});\n{START_HINT}")
        })
}

fn default_daemon() -> String {
    meshrtc::client::default_endpoint()
}

fn data_value(p: &proto::Payload, line: &mut serde_json::Map<String, Value>) {
    match &p.kind {
        Some(proto::payload::Kind::Text(t)) => {
            line.insert("data".into(), Value::String(t.clone()));
        }
        Some(proto::payload::Kind::Json(j)) => {
            line.insert(
                "data".into(),
                serde_json::from_str(j).unwrap_or(Value::String(j.clone())),
            );
        }
        Some(proto::payload::Kind::Binary(b)) => {
            line.insert(
                "binary".into(),
                Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
            );
        }
        None => {}
    }
    if !p.meta_json.is_empty() {
        line.insert(
            "meta".into(),
            serde_json::from_str(&p.meta_json).unwrap_or(Value::String(p.meta_json.clone())),
        );
    }
}

/// One event as the JSON line `listen` prints, or None if it is not printed.
fn event_line(e: &proto::Event, progress: bool, with_security: bool) -> Option<Value> {
    let mut line = serde_json::Map::new();
    let (name, rest): (&str, Value) = match e.kind.as_ref()? {
        // Security matters only in password rooms; elsewhere the line stays minimal.
        Kind::PeerJoin(p) => {
            let mut v = json!({"peer": p.peer});
            if p.security == "e2e" || with_security {
                v["security"] = json!(p.security);
            }
            if p.r#type() == proto::PeerType::Keeper {
                v["type"] = json!("keeper");
            }
            ("peer:join", v)
        }
        Kind::PeerLeave(p) => ("peer:leave", json!({"peer": p.peer, "reason": p.reason})),
        Kind::PeerSeen(p) if p.r#type() == proto::PeerType::Keeper => {
            ("peer:seen", json!({"peer": p.peer, "type": "keeper"}))
        }
        Kind::PeerSeen(p) => ("peer:seen", json!({"peer": p.peer})),
        Kind::MeshPeerState(m) => (
            "mesh:peer-state",
            json!({"peer": m.peer, "linked": m.linked, "cell": m.cell, "bridge": m.bridge}),
        ),
        Kind::Message(m) => {
            line.insert("channel".into(), json!(m.channel));
            line.insert("from".into(), json!(m.from));
            line.insert("local".into(), json!(m.local));
            if m.cursor != 0 {
                line.insert("cursor".into(), json!(m.cursor));
            }
            if m.history {
                line.insert("history".into(), json!(true));
                line.insert("verified".into(), json!(m.verified));
            }
            if let Some(p) = &m.payload {
                data_value(p, &mut line);
            }
            ("message", json!({}))
        }
        Kind::Progress(p) if progress => (
            "progress",
            json!({"channel": p.channel, "from": p.from, "fraction": p.fraction}),
        ),
        Kind::Progress(_) => return None,
        Kind::Request(r) => {
            line.insert("id".into(), json!(r.id));
            line.insert("channel".into(), json!(r.channel));
            line.insert("from".into(), json!(r.from));
            if let Some(p) = &r.payload {
                data_value(p, &mut line);
            }
            ("request", json!({}))
        }
        Kind::Response(r) => ("response", response_json(r)),
        Kind::RoomError(err) => (
            "error",
            json!({"code": err.code, "message": err.message, "peer": err.peer}),
        ),
        Kind::Lagged(l) => ("lagged", json!({"dropped": l.dropped})),
        Kind::Undelivered(u) => (
            "undelivered",
            json!({"peer": u.peer, "channel": u.channel, "messages": u.messages, "bytes": u.bytes}),
        ),
        Kind::MeshState(c) => (
            "mesh:state",
            json!({"epoch": c.epoch, "cell": c.cell, "cell_count": c.cell_count, "cell_size": c.cell_size,
                   "members": c.members, "bridge": c.bridge, "links_wanted": c.links_wanted,
                   "bridges": c.bridges, "ttl": c.ttl, "records": c.records}),
        ),
        Kind::StreamAdd(m) => ("stream:add", media_json(m)),
        Kind::TrackAdd(m) => ("track:add", media_json(m)),
        Kind::TrackRemove(m) => ("track:remove", json!({"peer": m.peer, "track": m.track_id})),
        Kind::TrackReady(m) => (
            "track:ready",
            json!({"peer": m.peer, "local_track": m.local_track}),
        ),
        Kind::KeyframeWanted(m) => (
            "keyframe:wanted",
            json!({"peer": m.peer, "local_track": m.local_track}),
        ),
    };
    let mut out = serde_json::Map::new();
    out.insert("event".into(), json!(name));
    out.insert("room".into(), json!(e.room_id));
    if let Value::Object(m) = rest {
        out.extend(m);
    }
    out.extend(line);
    Some(Value::Object(out))
}

fn media_json(m: &proto::MediaEvent) -> Value {
    let mut v = json!({"peer": m.peer, "stream": m.stream_id});
    if !m.track_id.is_empty() {
        v["track"] = json!(m.track_id);
        v["kind"] = json!(m.kind);
        v["codec"] = json!(m.codec);
    }
    if !m.meta_json.is_empty() {
        v["meta"] =
            serde_json::from_str(&m.meta_json).unwrap_or(Value::String(m.meta_json.clone()));
    }
    v
}

fn print_line(v: &Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{v}")?;
    out.flush()?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn listen(
    daemon: &str,
    room: RoomArgs,
    channels: Vec<String>,
    progress: bool,
    keep: Vec<proto::Keep>,
    since: Option<proto::Since>,
    verified_only: bool,
    serve: Vec<String>,
    respond: Option<String>,
) -> anyhow::Result<()> {
    let mut s = session::open(daemon).await?;
    let request = session::join_request(&room, channels, keep, since, verified_only, serve);
    let (joined, early) = s.join(request).await?;
    // Answers come back from the responder tasks; they go out on the session with ids of
    // their own (their replies are only errors worth a line on stderr).
    let (answers_tx, mut answers) = mpsc::channel::<(u64, proto::respond_request::Result)>(64);
    let tx = s.sender();
    let mut answer_ids = 1u64 << 40;
    let handle = |e: &proto::Event| -> anyhow::Result<()> {
        if let Some(v) = event_line(e, progress, !room.password.is_empty()) {
            print_line(&v)?;
        }
        if let (Some(Kind::Request(r)), Some(cmd)) = (&e.kind, &respond) {
            let (r, cmd, answers_tx) = (r.clone(), cmd.clone(), answers_tx.clone());
            tokio::spawn(async move {
                let result = run_responder(&cmd, &r).await;
                let _ = answers_tx.send((r.id, result)).await;
            });
        }
        Ok(())
    };
    for e in early {
        handle(&e)?;
    }
    // One listener for the whole loop: a Ctrl-C that arrives while an event is printed would be
    // lost with a fresh listener per iteration, and tokio has already replaced the default
    // handler that would have ended the process.
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            m = s.next() => match m?.body {
                Some(server_message::Body::Event(e)) => handle(&e)?,
                Some(server_message::Body::Reply(r)) if r.request_id >= 1 << 40 => {
                    if let Some(e) = r.error {
                        eprintln!("meshrtc: answering a request: {}: {}", e.code, e.message);
                    }
                }
                _ => {}
            },
            Some((id, result)) = answers.recv() => {
                answer_ids += 1;
                let msg = proto::ClientMessage {
                    request_id: answer_ids,
                    body: Some(Body::Respond(proto::RespondRequest {
                        room: joined.room,
                        id,
                        result: Some(result),
                    })),
                };
                tx.send(msg).await.context("daemon closed the session")?;
            }
            _ = &mut interrupted => return Ok(()),
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn send(
    daemon: &str,
    room: RoomArgs,
    channel: String,
    data: Option<String>,
    to: Vec<String>,
    wait_peers: Option<usize>,
    timeout: u64,
    file: Option<PathBuf>,
) -> anyhow::Result<()> {
    let payload = match (&file, &data) {
        (Some(path), meta) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            proto::Payload {
                kind: Some(proto::payload::Kind::Binary(bytes.into())),
                meta_json: meta.clone().unwrap_or_default(),
            }
        }
        (None, Some(d)) => {
            let kind = match serde_json::from_str::<Value>(d) {
                Ok(_) => proto::payload::Kind::Json(d.clone()),
                Err(_) => proto::payload::Kind::Text(d.clone()),
            };
            proto::Payload {
                kind: Some(kind),
                meta_json: String::new(),
            }
        }
        (None, None) => bail!("give DATA or --file"),
    };
    let work = async {
        let mut s = session::open(daemon).await?;
        let (reply, early) = session::join_plain(&mut s, &room).await?;
        let mut joined = JoinedPeers::from_events(&early);
        let need = wait_peers.unwrap_or(0);
        while !joined.has(need, &to) {
            if let Some(server_message::Body::Event(e)) = s.next().await?.body {
                joined.track(&e);
            }
        }
        let id = s
            .request(Body::Send(proto::SendRequest {
                room: reply.room,
                channel: channel.clone(),
                payload: Some(payload),
                targets: to.clone(),
            }))
            .await?;
        s.reply(id, |_| {}).await?;
        anyhow::Ok(())
    };
    match tokio::time::timeout(Duration::from_secs(timeout), work).await {
        Ok(r) => r,
        Err(_) => {
            let what = match (wait_peers, to.is_empty()) {
                (Some(n), _) => format!("{n} peer(s) to join"),
                (None, false) => format!("peer(s) {} to join", to.join(", ")),
                (None, true) => "the message to be handed over".to_owned(),
            };
            bail!(
                "timed out after {timeout} s waiting for {what} in room {}",
                room.room
            )
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One or two lines of plain text: the error and its causes, no backtrace.
            eprintln!("meshrtc: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let daemon = cli.daemon.unwrap_or_else(default_daemon);
    let _ = TOKEN.set(cli.token);
    match cli.command {
        Cmd::Listen {
            room,
            channels,
            progress,
            keep,
            since,
            verified_only,
            serve,
            respond,
        } => {
            listen(
                &daemon,
                room,
                channels,
                progress,
                keep,
                since,
                verified_only,
                serve,
                respond,
            )
            .await
        }
        Cmd::Request {
            room,
            channel,
            data,
            to,
            timeout,
            meta,
            json,
        } => request(&daemon, room, channel, data, to, timeout, meta, json).await,
        Cmd::Send {
            room,
            channel,
            data,
            to,
            wait_peers,
            timeout,
            file,
        } => send(&daemon, room, channel, data, to, wait_peers, timeout, file).await,
        Cmd::Status { json, watch } => {
            if !watch {
                return status(&daemon, json).await;
            }
            loop {
                if !json {
                    // Clear the terminal and home the cursor, as `watch` does.
                    print!("\x1b[2J\x1b[H");
                }
                status(&daemon, json).await?;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                }
            }
        }
        Cmd::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "meshrtc",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Cmd::Peers {
            room,
            json: as_json,
        } => peers(&daemon, room, as_json).await,
        Cmd::Ping { room, peer } => ping(&daemon, room, peer).await,
        Cmd::Token => token(&daemon).await,
        Cmd::Relays { json: as_json } => relays(&daemon, as_json).await,
        Cmd::History {
            room,
            app,
            password,
            clear,
            json: as_json,
        } => history::show(&daemon, &app, &room, &password, clear, as_json).await,
        Cmd::Publish {
            room,
            video,
            audio,
            file,
            looping,
            to,
            wait_peers,
            timeout,
        } => {
            media::publish(
                &daemon, room, video, audio, file, looping, to, wait_peers, timeout,
            )
            .await
        }
        Cmd::Record { room, dir, format } => media::record(&daemon, room, dir, format).await,
    }
}
