//! The CLI's side of a session: opening one with the CLI's connection checks, and a join
//! request from the room flags. The session itself is the library's (`meshrtc::client`).

use meshrtc::client::Session;
use meshrtc::proto;

use super::{RoomArgs, client};

/// Opens a session with the daemon at `daemon`.
pub async fn open(daemon: &str) -> anyhow::Result<Session> {
    Session::open(client(daemon).await?).await
}

/// What joining `room` with these options asks the daemon for.
pub fn join_request(
    room: &RoomArgs,
    channels: Vec<String>,
    keep: Vec<proto::Keep>,
    since: Option<proto::Since>,
    verified_only: bool,
    serve: Vec<String>,
) -> proto::JoinRequest {
    proto::JoinRequest {
        app: room.app.clone(),
        room: room.room.clone(),
        password: room.password.clone(),
        channels,
        require_e2e: room.require_e2e,
        cells: room.cells.then(|| proto::Cells {
            enabled: true,
            cell_size: room.cell_size.unwrap_or(0),
            link_budget: 0,
        }),
        keep,
        since,
        verified_only,
        serve,
    }
}

/// Joins `room` on every channel with nothing else asked.
pub async fn join_plain(
    s: &mut Session,
    room: &RoomArgs,
) -> anyhow::Result<(proto::Reply, Vec<proto::Event>)> {
    s.join(join_request(
        room,
        vec![String::new()],
        Vec::new(),
        None,
        false,
        Vec::new(),
    ))
    .await
}
