//! `status`, `peers`, `ping`, `token` and `relays`: what the node and its rooms look like.

use serde_json::{Value, json};

use super::{RoomArgs, client, print_line};
use meshrtc::proto;

pub fn relay_json(r: &proto::RelayInfo) -> Value {
    json!({
        "url": r.url,
        "state": r.state,
        "latency_ms": (r.latency_ms > 0).then_some(r.latency_ms),
        "score": r.score,
        "events_in": r.events_in,
        "events_out": r.events_out,
        "last_error": (!r.last_error.is_empty()).then_some(&r.last_error),
        "last_error_at_ms": (r.last_error_at_ms > 0).then_some(r.last_error_at_ms),
        "access": r.access,
        "events_too_large": r.events_too_large,
        "topics_left_out": r.topics_left_out,
        "limits": {
            "max_subscriptions": (r.max_subscriptions > 0).then_some(r.max_subscriptions),
            "max_filters": (r.max_filters > 0).then_some(r.max_filters),
            "max_message_length": (r.max_message_length > 0).then_some(r.max_message_length),
            "auth_required": r.auth_required,
        },
    })
}

pub async fn status(daemon: &str, as_json: bool) -> anyhow::Result<()> {
    let mut c = client(daemon).await?;
    let s = c.status(proto::StatusRequest {}).await?.into_inner();
    if as_json {
        let v = json!({
            "peer_id": s.peer_id,
            "version": s.version,
            "uptime_ms": s.uptime_ms,
            "sessions": s.sessions,
            "links": s.links,
            "relays": s.relays.iter().map(relay_json).collect::<Vec<_>>(),
            "relays_healthy": s.relays.iter().filter(|r| r.state == "connected").count(),
            "rooms": s.rooms.iter().map(|r| json!({"app": r.app, "room": r.room, "peers": r.peers, "sessions": r.sessions, "password": r.password, "e2e_peers": r.e2e_peers, "require_e2e": r.require_e2e, "cells": r.cells.as_ref().map(|c| json!({"members": c.members, "cell": c.cell, "cell_count": c.cell_count, "links_wanted": c.links_wanted, "bridges": c.bridges, "ttl": c.ttl, "records": c.records, "epoch": c.epoch, "bridge": c.bridge, "cell_size": c.cell_size}))})).collect::<Vec<_>>(),
            "drops": s.drops,
            "turn": s.turn.iter().map(|t| json!({"url": t.url, "state": t.state, "relay_address": t.relay_address, "error": t.error, "checked_ms_ago": t.checked_ms_ago})).collect::<Vec<_>>(),
            "links_relayed": s.links_relayed,
        });
        return print_line(&v);
    }
    let healthy = s.relays.iter().filter(|r| r.state == "connected").count();
    println!("peer id   {}", s.peer_id);
    println!("version   {}  uptime {} s", s.version, s.uptime_ms / 1000);
    println!("relays    {healthy}/{} connected", s.relays.len());
    println!(
        "sessions  {}  links {} ({} through TURN)",
        s.sessions, s.links, s.links_relayed
    );
    for t in &s.turn {
        let detail = match t.state.as_str() {
            "ok" => format!("relay {}", t.relay_address),
            "unknown" => "not asked yet".to_owned(),
            _ => t.error.clone(),
        };
        println!("turn      {}  {}  {detail}", t.url, t.state);
    }
    for r in &s.rooms {
        println!(
            "room      {}/{}{}  {} peer(s)  {} session(s)",
            r.app,
            r.room,
            if r.password { " (password)" } else { "" },
            r.peers.len(),
            r.sessions
        );
        if let Some(c) = &r.cells {
            println!(
                "  cells   epoch {}  cell {}/{} (size {})  {} members ({} records)  {} links wanted ({} bridges{})  ttl {}",
                c.epoch,
                c.cell,
                c.cell_count,
                c.cell_size,
                c.members,
                c.records,
                c.links_wanted,
                c.bridges,
                if c.bridge { ", a bridge" } else { "" },
                c.ttl
            );
        }
    }
    if !s.drops.is_empty() {
        let mut drops: Vec<_> = s.drops.iter().collect();
        drops.sort();
        println!(
            "drops     {}",
            drops
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    Ok(())
}

pub async fn peers(daemon: &str, room: RoomArgs, as_json: bool) -> anyhow::Result<()> {
    let mut c = client(daemon).await?;
    let peers = c
        .peers(proto::PeersRequest {
            app: room.app,
            room: room.room,
        })
        .await?
        .into_inner()
        .peers;
    if as_json {
        return print_line(&json!(peers.iter().map(peer_json).collect::<Vec<_>>()));
    }
    for p in peers {
        let via = match &p.path {
            Some(proto::LinkPath {
                local: Some(l),
                remote: Some(r),
                ..
            }) => format!("{}/{} ↔ {}/{}", l.r#type, l.protocol, r.r#type, r.protocol),
            _ => "no path yet".to_owned(),
        };
        println!(
            "{}  rtt {:.2} ms  up {} s  {} {}",
            p.id,
            p.rtt_ms,
            p.connected_ms / 1000,
            p.security,
            via
        );
        if let Some(h) = &p.health {
            println!("    {h}");
        }
    }
    Ok(())
}

/// A peer as `peers --json` prints it: its link's path (selected candidate pair) included.
pub fn peer_json(p: &proto::PeerInfo) -> serde_json::Value {
    let end = |c: &Option<proto::Candidate>| {
        c.as_ref()
            .map(|c| json!({"type": c.r#type, "protocol": c.protocol, "address": c.address}))
    };
    json!({
        "id": p.id,
        "rtt_ms": p.rtt_ms,
        "connected_ms": p.connected_ms,
        "security": p.security,
        "keeps": p.keeps,
        "path": p.path.as_ref().map(|path| json!({
            "local": end(&path.local),
            "remote": end(&path.remote),
            "rtt_ms": path.rtt_ms,
            "bytes_sent": path.bytes_sent,
            "bytes_received": path.bytes_received,
        })),
        "health": p.health.as_ref().map(|h| json!({
            "ice": proto::LayerState::word_of(h.ice),
            "dtls": proto::LayerState::word_of(h.dtls),
            "sctp": proto::LayerState::word_of(h.sctp),
            "channel": proto::LayerState::word_of(h.channel),
            "buffered_bytes": h.buffered_bytes,
            "window_bytes": h.window_bytes,
            "queued_frames": h.queued_frames,
            "messages_sent": h.messages_sent,
            "messages_received": h.messages_received,
            "bytes_sent": h.bytes_sent,
            "bytes_received": h.bytes_received,
        })),
    })
}

pub async fn ping(daemon: &str, room: RoomArgs, peer: String) -> anyhow::Result<()> {
    let mut c = client(daemon).await?;
    let request = proto::PingRequest {
        app: room.app,
        room: room.room,
        peer,
    };
    let r = c.ping(request).await?.into_inner();
    println!("{:.3}", r.rtt_ms);
    Ok(())
}

pub async fn token(daemon: &str) -> anyhow::Result<()> {
    let mut c = client(daemon).await?;
    println!(
        "{}",
        c.token(proto::TokenRequest {}).await?.into_inner().token
    );
    Ok(())
}

/// What a relay's NIP-11 rules do to the node, in one line (empty when nothing).
fn relay_rules_line(r: &proto::RelayInfo) -> String {
    let mut parts = Vec::new();
    if r.access != "read-write" && !r.access.is_empty() {
        parts.push(r.access.clone());
    }
    for (name, v) in [
        ("max_subscriptions", r.max_subscriptions),
        ("max_filters", r.max_filters),
        ("max_message_length", r.max_message_length),
    ] {
        if v > 0 {
            parts.push(format!("{name} {v}"));
        }
    }
    if r.auth_required {
        parts.push("auth required".into());
    }
    if r.events_too_large > 0 {
        parts.push(format!("{} events too large", r.events_too_large));
    }
    if r.topics_left_out > 0 {
        parts.push(format!("{} topics not subscribed", r.topics_left_out));
    }
    parts.join(", ")
}

pub async fn relays(daemon: &str, as_json: bool) -> anyhow::Result<()> {
    let mut c = client(daemon).await?;
    let relays = c.relays(proto::RelaysRequest {}).await?.into_inner().relays;
    if as_json {
        return print_line(&json!(relays.iter().map(relay_json).collect::<Vec<_>>()));
    }
    println!(
        "{:<36} {:<13} {:>8} {:>6} {:>7} {:>7}  LAST ERROR",
        "URL", "STATE", "LATENCY", "SCORE", "IN", "OUT"
    );
    for r in relays {
        let latency = if r.latency_ms > 0 {
            format!("{} ms", r.latency_ms)
        } else {
            "-".into()
        };
        println!(
            "{:<36} {:<13} {:>8} {:>6.2} {:>7} {:>7}  {}",
            r.url, r.state, latency, r.score, r.events_in, r.events_out, r.last_error
        );
        let rules = relay_rules_line(&r);
        if !rules.is_empty() {
            println!("{:<36} {}", "", rules);
        }
    }
    Ok(())
}
