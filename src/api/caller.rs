//! Who is on the other end of a loopback TCP connection, and what that lets it do.
//!
//! Any local program can send the daemon's own `Origin` header, and any local account's browser
//! can open the daemon's page, so neither says whose it is. The kernel does: its socket table
//! names the account that owns the client's end of a loopback connection. The bridge and gRPC
//! over TCP trust the daemon's own account (its pages and programs need no token) and ask every
//! other account for the token, as dockerd's and tailscaled's local APIs decide by the caller's
//! account.

use std::net::SocketAddr;

use axum::http::StatusCode;

use crate::drops::DropReason;

/// Whose connection it is, as the kernel says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// The daemon's own account.
    Owner,
    /// Another local account.
    OtherAccount(u32),
    /// Not found in the socket table (gone already, or not a loopback connection).
    Unknown,
}

impl Caller {
    /// Looks up the account owning the client end (`peer`) of a connection accepted on `local`.
    pub fn of_connection(local: SocketAddr, peer: SocketAddr) -> Caller {
        let own = unsafe { libc::geteuid() };
        match loopback_peer_uid(local, peer) {
            Some(uid) if uid == own => Caller::Owner,
            Some(uid) => Caller::OtherAccount(uid),
            None => Caller::Unknown,
        }
    }
}

/// What a bridge connection may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Everything the node offers (the token was shown).
    Node,
    /// Only the rooms it joins: a page of the owner's, from an allowed origin.
    OwnRooms,
    /// Refused, counted under the reason, with this status and text.
    Refused(DropReason, StatusCode, &'static str),
}

/// Decides what a WebSocket upgrade may do: the token opens everything (to any account: it is
/// the owner's to give); without it, only the owner's pages of an allowed origin get in.
pub fn admit(token_ok: bool, origin: Option<bool>, caller: Caller) -> Admission {
    match (origin, token_ok) {
        (Some(false), _) => Admission::Refused(
            DropReason::WsOriginRefused,
            StatusCode::FORBIDDEN,
            "origin not allowed\n",
        ),
        (_, true) => Admission::Node,
        (None, false) => Admission::Refused(
            DropReason::WsTokenRefused,
            StatusCode::UNAUTHORIZED,
            "a token is required (meshrtc token)\n",
        ),
        (Some(true), false) if caller == Caller::Owner => Admission::OwnRooms,
        (Some(true), false) => Admission::Refused(
            DropReason::ApiForeignUid,
            StatusCode::FORBIDDEN,
            "this daemon belongs to another account: a token is required (meshrtc token)\n",
        ),
    }
}

/// The bearer token a gRPC call over TCP presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented {
    /// None.
    Absent,
    /// The API token.
    Right,
    /// Something else.
    Wrong,
}

/// Decides a gRPC call over TCP: the token opens it to anyone; without one, only the daemon's
/// own account gets in; a wrong token is refused whoever shows it. Refusals are counted under the
/// reason and answered `unauthenticated` with the text.
pub fn admit_tcp_call(token: Presented, caller: Caller) -> Result<(), (DropReason, &'static str)> {
    match (token, caller) {
        (Presented::Right, _) | (Presented::Absent, Caller::Owner) => Ok(()),
        (Presented::Wrong, _) => Err((
            DropReason::ApiTokenRefused,
            "the bearer token is not this daemon's (meshrtc token)",
        )),
        (Presented::Absent, Caller::OtherAccount(_)) => Err((
            DropReason::ApiForeignUid,
            "this daemon belongs to another account: a bearer token is required (meshrtc token)",
        )),
        (Presented::Absent, Caller::Unknown) => Err((
            DropReason::ApiTokenRefused,
            "a bearer token is required (meshrtc token)",
        )),
    }
}

/// The uid owning the socket whose local end is `peer` and remote end `local`, from the
/// kernel's TCP tables (this network namespace's). Only loopback peers are looked up.
fn loopback_peer_uid(local: SocketAddr, peer: SocketAddr) -> Option<u32> {
    let (local, peer) = (canonical(local), canonical(peer));
    if !peer.ip().is_loopback() {
        return None;
    }
    // A v4 client of a dual-stack listener shows as v4-mapped here and as v4 in the v4 table.
    let table = match peer {
        SocketAddr::V4(_) => procfs::net::tcp(),
        SocketAddr::V6(_) => procfs::net::tcp6(),
    }
    .ok()?;
    owner_in(
        table
            .iter()
            .map(|e| (e.local_address, e.remote_address, e.uid)),
        local,
        peer,
    )
}

/// The pure part: among `(local, remote, uid)` rows, the one that is the client's end.
fn owner_in(
    rows: impl IntoIterator<Item = (SocketAddr, SocketAddr, u32)>,
    local: SocketAddr,
    peer: SocketAddr,
) -> Option<u32> {
    rows.into_iter()
        .find(|&(l, r, _)| canonical(l) == peer && canonical(r) == local)
        .map(|(_, _, uid)| uid)
}

fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    #[test]
    fn the_client_end_of_the_connection_names_its_owner() {
        let (server, client) = (addr("127.0.0.1:7701"), addr("127.0.0.1:50000"));
        let rows = [
            // Our own end of the same connection, owned by the daemon.
            (server, client, 0),
            // Another connection to the same port.
            (addr("127.0.0.1:50001"), server, 1001),
            (client, server, 1000),
        ];
        assert_eq!(owner_in(rows, server, client), Some(1000));
        assert_eq!(owner_in(rows, server, addr("127.0.0.1:50002")), None);
        let mapped = addr("[::ffff:127.0.0.1]:50000");
        assert_eq!(owner_in(rows, server, canonical(mapped)), Some(1000));
    }

    #[test]
    fn only_the_owners_programs_call_over_tcp_without_the_token() {
        use Presented::*;
        let other = Caller::OtherAccount(1000);
        assert_eq!(admit_tcp_call(Absent, Caller::Owner), Ok(()));
        for caller in [Caller::Owner, other, Caller::Unknown] {
            assert_eq!(admit_tcp_call(Right, caller), Ok(()));
            assert!(matches!(
                admit_tcp_call(Wrong, caller),
                Err((DropReason::ApiTokenRefused, _))
            ));
        }
        assert!(matches!(
            admit_tcp_call(Absent, other),
            Err((DropReason::ApiForeignUid, _))
        ));
        assert!(matches!(
            admit_tcp_call(Absent, Caller::Unknown),
            Err((DropReason::ApiTokenRefused, _))
        ));
    }

    #[test]
    fn only_the_owners_pages_get_in_without_the_token() {
        let other = Caller::OtherAccount(1000);
        assert_eq!(admit(false, Some(true), Caller::Owner), Admission::OwnRooms);
        for caller in [other, Caller::Unknown] {
            assert!(matches!(
                admit(false, Some(true), caller),
                Admission::Refused(DropReason::ApiForeignUid, StatusCode::FORBIDDEN, _)
            ));
        }
        // The token opens the node to whoever holds it; a foreign origin never gets in.
        assert_eq!(admit(true, Some(true), other), Admission::Node);
        assert_eq!(admit(true, None, other), Admission::Node);
        assert!(matches!(
            admit(true, Some(false), Caller::Owner),
            Admission::Refused(DropReason::WsOriginRefused, ..)
        ));
        assert!(matches!(
            admit(false, None, Caller::Owner),
            Admission::Refused(DropReason::WsTokenRefused, ..)
        ));
    }
}
