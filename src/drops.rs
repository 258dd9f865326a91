//! Why something was dropped: one variant per named counter.
//!
//! Every piece of input the node refuses (a malformed frame, a forged signature, a request it
//! cannot serve) and every piece of work it gives up on is counted under one of these. The names
//! are a stable interface: `meshrtc status --json` shows them under `"drops"` and scripts and
//! dashboards key on them, so a variant may be added but its name never changes.

macro_rules! drop_reasons {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// A named drop counter.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum DropReason {
            $($(#[$doc])* $variant,)*
        }

        impl DropReason {
            /// Every counter, in declaration order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];

            /// The counter's stable name.
            pub fn name(self) -> &'static str {
                match self {
                    $(DropReason::$variant => $name,)*
                }
            }
        }
    };
}

drop_reasons! {
    // ---- local API
    /// A malformed or unserviceable gRPC/WebSocket request.
    ApiBadRequest => "api_bad_request",
    /// A client running as another user: on the Unix socket, or without the token on the
    /// bridge or TCP gRPC.
    ApiForeignUid => "api_foreign_uid",
    /// A TCP gRPC call with a wrong token, or without one from a connection of unknown owner.
    ApiTokenRefused => "api_token_refused",
    /// An app's request refused at one of its per-app limits (`max_app_*`).
    AppLimit => "app_limit",
    /// A WebSocket message that is not a client message.
    WsBadRequest => "ws_bad_request",
    /// A page whose Origin is not allowed.
    WsOriginRefused => "ws_origin_refused",
    /// A script WebSocket client without the right token.
    WsTokenRefused => "ws_token_refused",
    /// A `/metrics` scrape without the right token.
    MetricsTokenRefused => "metrics_token_refused",
    // ---- signaling
    /// A relay event whose signature does not verify.
    EventBadSignature => "event_bad_signature",
    /// Frames that arrived on a connection before its channel opened, beyond what it keeps
    /// for then (64 frames, 256 KiB).
    FrameEarlyOverflow => "frame_early_overflow",
    /// Relay events beyond one connection's budget for their topic (500/s, 1,000 at once),
    /// dropped before their signature is checked.
    EventRateLimited => "event_rate_limited",
    /// A relay event whose content does not parse.
    EventBadContent => "event_bad_content",
    /// An event no relay accepted.
    PublishFailed => "publish_failed",
    /// An event not sent to a relay because it exceeds the relay's `max_message_length`
    /// (NIP-11); `meshrtc relays` shows the count per relay.
    EventTooLarge => "event_too_large",
    /// A relay retired for the session (proof of work, refusals, closed subscriptions).
    RelayRetired => "relay_retired",
    /// A failed refresh of the extended relay list.
    RelayListFailed => "relay_list_failed",
    /// A relay event for a topic no room listens on.
    EventUnknownTopic => "event_unknown_topic",
    /// A signal that arrived on a topic it does not belong to.
    SignalWrongTopic => "signal_wrong_topic",
    /// Announces from one peer faster than the rate limit.
    PokeRateLimited => "poke_rate_limited",
    /// A dial refused because too many are pending.
    DialsFull => "dials_full",
    /// A dial that failed to start.
    DialFailed => "dial_failed",
    /// A dial that never completed.
    DialTimeout => "dial_timeout",
    /// A cells frame replayed to us that was sent before we joined.
    CellBeforeJoin => "cell_before_join",
    /// A cells broadcast sent while no link was up: it waits for the first link.
    CellSendWaiting => "cell_send_waiting",
    /// A cells broadcast that waited for a link longer than the replay window: never sent.
    CellSendExpired => "cell_send_expired",
    /// A cells room's roster is at its size limit: a new member's record was not kept.
    RosterFull => "roster_full",
    /// A peer asked for roster records faster than it is served.
    RosterRateLimited => "roster_rate_limited",
    /// A roster sync message that does not parse.
    RosterMalformed => "roster_malformed",
    /// A roster sync message from a peer that is not a member of the cells room (a page).
    RosterNotMember => "roster_not_member",
    /// A roster record whose signature does not verify (forged, altered, or another room's).
    RosterBadRecord => "roster_bad_record",
    /// Roster records from a peer we did not ask (a flood, or a page after its request expired).
    RosterUnrequested => "roster_unrequested",
    /// A roster record dated too far in the future.
    RosterFutureRecord => "roster_future_record",
    /// In a password room, a roster record (or hello) without a valid MAC of the room key: its
    /// maker does not know the password.
    RosterBadMac => "roster_bad_mac",
    /// A new cells-room member beyond its source's per-second budget (records and hellos passed
    /// on by one link, or announces from the relays): not added now.
    MemberRateLimited => "member_rate_limited",
    /// A direct attempt that did not connect in time was given up for a relay-only one.
    DirectPathTimeout => "direct_path_timeout",
    /// A stale dial tried again.
    DialRetried => "dial_retried",
    /// An offer seen before.
    OfferReplayed => "offer_replayed",
    /// An offer that does not decrypt with the room key.
    OfferUndecryptable => "offer_undecryptable",
    /// An offer that collided with ours and lost.
    OfferCollision => "offer_collision",
    /// An answer to no offer of ours.
    AnswerUnknownOffer => "answer_unknown_offer",
    /// An answer that does not decrypt with the room key.
    AnswerUndecryptable => "answer_undecryptable",
    /// An answer the WebRTC engine refused.
    AnswerRejected => "answer_rejected",
    /// A candidate for no offer of ours.
    CandidateUnknownOffer => "candidate_unknown_offer",
    /// A candidate that does not decrypt with the room key.
    CandidateUndecryptable => "candidate_undecryptable",
    /// A candidate dropped because too many wait for the remote description.
    CandidateOverflow => "candidate_overflow",
    /// A candidate the WebRTC engine refused.
    CandidateRejected => "candidate_rejected",
    /// A peer whose offer shows another password.
    PasswordMismatch => "password_mismatch",
    // ---- links
    /// A second link to a peer that lost the tie-break.
    LinkDuplicate => "link_duplicate",
    /// A link replaced by a newer one from the same peer (a restart).
    LinkReplaced => "link_replaced",
    /// A connection attempt still unopened well after another attempt linked the same peer.
    DialSuperseded => "dial_superseded",
    /// A link silent for too long.
    LinkTimeout => "link_timeout",
    /// A frame that did not fit the link's queue.
    LinkQueueFull => "link_queue_full",
    /// A send to a peer without a link.
    SendNoLink => "send_no_link",
    // ---- delivery between daemons
    /// A message to a daemon sent without being kept for resending: the peer already had
    /// 64 MiB unacknowledged.
    OutboxFull => "outbox_full",
    /// A kept message whose peer did not come back within 30 s (its sender got `undelivered`).
    MessageUndelivered => "message_undelivered",
    /// An acknowledgement for numbers this node never sent.
    AckUnexpected => "ack_unexpected",
    /// A tracked frame of a message already received (sent again after a link was rebuilt).
    FrameDuplicate => "frame_duplicate",
    /// A tracked frame numbered implausibly far ahead of what arrived.
    FrameTrackedAhead => "frame_tracked_ahead",
    /// Frames a link to a Trystero page still held when it closed: they may not have arrived,
    /// and a page cannot say.
    FramesLostOnClose => "frames_lost_on_close",
    // ---- request actions
    /// A `@_response` that answers no pending request of that peer (late, repeated or forged).
    ResponseUnmatched => "response_unmatched",
    /// A request refused because its session already owed too many answers (answered with an
    /// error).
    RequestBusy => "request_busy",
    // ---- frames and chunks
    /// A data-channel frame that does not decode.
    FrameMalformed => "frame_malformed",
    /// A frame on a connection that is not the peer's current link.
    FrameStaleLink => "frame_stale_link",
    /// A frame for a room not shared with the peer.
    FrameUnknownRoom => "frame_unknown_room",
    /// An action chunk that does not decode.
    ChunkMalformed => "chunk_malformed",
    /// A chunk from a peer not attached to the room.
    ChunkUnattached => "chunk_unattached",
    /// An app chunk before the handshake completed.
    ChunkBeforeHandshake => "chunk_before_handshake",
    /// A message whose metadata is not valid JSON.
    ChunkBadMeta => "chunk_bad_meta",
    /// A message whose body does not match its type.
    ChunkBadPayload => "chunk_bad_payload",
    /// A received message over the size limit.
    MessageTooLarge => "message_too_large",
    /// Reassembly buffers full.
    ReassemblyFull => "reassembly_full",
    /// A partial message over the node-wide reassembly budget (`reassembly_budget_mib`).
    ReassemblyNodeFull => "reassembly_node_full",
    /// Too many unfinished messages from one peer.
    ReassemblyTooMany => "reassembly_too_many",
    /// An unfinished message that timed out.
    ReassemblyExpired => "reassembly_expired",
    /// A message with an empty action name.
    ActionEmpty => "action_empty",
    /// An internal (`@_`) action this node does not know.
    ActionUnknownInternal => "action_unknown_internal",
    // ---- handshake
    /// A handshake that never completed.
    HandshakeTimeout => "handshake_timeout",
    /// A pending handshake sent again.
    HandshakeNudged => "handshake_nudged",
    /// A malformed `@_hsdata`.
    HsdataMalformed => "hsdata_malformed",
    /// An `@_hsdata` nobody asked for.
    HsdataUnexpected => "hsdata_unexpected",
    // ---- end-to-end sealing
    /// A peer refused because the room requires end-to-end sealing.
    E2eRequired => "e2e_required",
    /// Plaintext from a peer that seals (a downgrade).
    E2ePlaintextRefused => "e2e_plaintext_refused",
    /// A sealed message from a peer that does not seal.
    E2eUnexpected => "e2e_unexpected",
    /// A sealed message that is not an envelope.
    E2eMalformed => "e2e_malformed",
    /// An envelope that does not authenticate.
    E2eDecryptFailed => "e2e_decrypt_failed",
    // ---- cells rooms
    /// A cell frame in a room that is not a cells room.
    CellNotCellsRoom => "cell_not_cells_room",
    /// A cell frame from a peer not joined to the room.
    CellUnexpected => "cell_unexpected",
    /// A cell frame that does not decode.
    CellMalformed => "cell_malformed",
    /// A cell frame whose signature does not verify for the room.
    CellBadSignature => "cell_bad_signature",
    /// A cell frame seen before.
    CellDuplicate => "cell_duplicate",
    /// A cell frame below its origin's replay floor.
    CellReplay => "cell_replay",
    /// One of our own cell frames coming back.
    CellOwnEcho => "cell_own_echo",
    /// A cell frame whose origin key is not a valid public key.
    CellBadOrigin => "cell_bad_origin",
    /// A cell frame of another format version (1: an older meshrtc, whose hop limit was not
    /// signed).
    CellVersionRefused => "cell_version_refused",
    /// A cell frame over a link that is not an overlay link of the room (a page, or a peer not
    /// known as a member within a few seconds): neither delivered nor passed on.
    CellNotFromMember => "cell_not_from_member",
    /// A cell frame whose origin is not a member of the room (a key that never joined), still
    /// unknown a few seconds later: neither delivered nor passed on.
    CellUnknownOrigin => "cell_unknown_origin",
    /// A cell frame from an unknown origin or sender that found no room to wait (a few per
    /// link, and a bounded number and size per room).
    CellHoldFull => "cell_hold_full",
    /// A "gone" or "alive" notice from a key that is not a member.
    CellNoticeNotMember => "cell_notice_not_member",
    /// A "gone" or "alive" notice beyond its origin's rate: neither acted upon nor passed on.
    CellNoticeRateLimited => "cell_notice_rate_limited",
    /// A cell payload of the wrong kind for the room (sealed in an open room or the reverse).
    CellPayloadRefused => "cell_payload_refused",
    /// A cell payload that does not decode.
    CellPayloadMalformed => "cell_payload_malformed",
    // ---- media
    /// A `@_signal`, `@_stream` or `@_track` message that does not parse.
    MediaMalformed => "media_malformed",
    /// A renegotiation step the WebRTC engine refused.
    MediaNegotiationFailed => "media_negotiation_failed",
    /// A colliding renegotiation offer this side ignores (it made the link's first offer).
    MediaOfferIgnored => "media_offer_ignored",
    /// A track refused because a per-peer or per-room limit is reached.
    MediaTrackLimit => "media_track_limit",
    /// A remote track in a codec meshrtc does not forward.
    MediaCodecUnsupported => "media_codec_unsupported",
    /// An RTP packet an app wrote that does not parse, or to a track it does not own.
    MediaBadPacket => "media_bad_packet",
    /// Packets a slow media subscriber did not take in time.
    MediaSubscriberLagged => "media_subscriber_lagged",
    /// Packets an app wrote beyond its track's bitrate limit.
    MediaBitrateLimit => "media_bitrate_limit",
    /// A durable-channel message (`@_mrhist`) that does not parse.
    HistoryMalformed => "history_malformed",
    /// A history entry whose origin signature does not verify (forged or altered by a keeper).
    HistoryBadSignature => "history_bad_signature",
    /// A durable-channel message in a password room not sealed with the room key.
    HistoryUnsealed => "history_unsealed",
    /// A history entry dated further in the future than clocks differ (a keeper moving a
    /// catch-up's resume point past what others hold).
    HistoryFromTheFuture => "history_from_the_future",
    /// A keeper that stopped answering a catch-up (given up after three asks; another is
    /// asked).
    HistoryKeeperSilent => "history_keeper_silent",
    /// A history entry already delivered (a replay, or a message also received live).
    HistoryDuplicate => "history_duplicate",
    /// A page of history this node did not ask that peer for (dropped whole, unchecked).
    HistoryUnsolicited => "history_unsolicited",
    /// Catch-up requests from a peer while this node keeps nothing.
    HistoryRequestRefused => "history_request_refused",
    /// A catch-up request waiting for its peer's read budget, replaced by a newer one.
    HistoryRequestReplaced => "history_request_replaced",
    /// An origin signature that came with no message, or whose message never came.
    HistorySigUnmatched => "history_sig_unmatched",
    /// A kept message the history store could not write (disk full, store failed).
    HistoryWriteFailed => "history_write_failed",
    /// A kept message that could not be read back for a replay (damaged, or sealed with
    /// another key).
    HistoryUnreadable => "history_unreadable",
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_snake_case() {
        let names: HashSet<&str> = DropReason::ALL.iter().map(|d| d.name()).collect();
        assert_eq!(names.len(), DropReason::ALL.len());
        for n in names {
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
            );
        }
    }
}
