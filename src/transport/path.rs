//! Which network path a link took: the selected ICE candidate pair, read from the engine's
//! statistics, with the round trip and bytes each way.

use std::time::Instant;

use webrtc::peer_connection::{RTCStatsReport, RTCStatsReportEntry, StatsSelector};

use super::Connection;

pub use crate::link::{CandidateKind, LinkPath, PathEnd};

/// The selected candidate pair of a connection, once ICE has one.
pub async fn selected_path(pc: &Connection) -> Option<LinkPath> {
    selected_path_in(&pc.get_stats(Instant::now(), StatsSelector::None).await)
}

/// The selected candidate pair in a connection's statistics, once ICE has one.
pub fn selected_path_in(report: &RTCStatsReport) -> Option<LinkPath> {
    let pair_id = report.transport()?.selected_candidate_pair_id.clone();
    let pair = report.iter().find_map(|e| match e {
        RTCStatsReportEntry::IceCandidatePair(p) if p.stats.id == pair_id => Some(p),
        _ => None,
    });
    // Without a selected id, the nominated pair is the one in use.
    let pair = pair.or_else(|| {
        report.iter().find_map(|e| match e {
            RTCStatsReportEntry::IceCandidatePair(p) if p.nominated => Some(p),
            _ => None,
        })
    })?;
    // A candidate's statistics id is its kind's prefix and the id the pair names.
    let named = |stats_id: &str, id: &str| {
        stats_id == id || stats_id.strip_suffix(id).is_some_and(|p| p.ends_with('_'))
    };
    let end = |id: &str, local: bool| {
        report
            .iter()
            .find_map(|e| match e {
                RTCStatsReportEntry::LocalCandidate(c) if local && named(&c.stats.id, id) => {
                    Some(c)
                }
                RTCStatsReportEntry::RemoteCandidate(c) if !local && named(&c.stats.id, id) => {
                    Some(c)
                }
                _ => None,
            })
            .and_then(|c| {
                {
                    Some(PathEnd {
                        kind: CandidateKind::from_name(&c.candidate_type.to_string())?,
                        protocol: c.protocol.to_lowercase(),
                        address: format!("{}:{}", c.address.clone().unwrap_or_default(), c.port),
                    })
                }
            })
    };
    // The engine keeps no statistics for a peer-reflexive remote candidate (one learnt from
    // the peer's checks, e.g. its NAT's address as a TURN server saw it).
    let remote = end(&pair.remote_candidate_id, false).unwrap_or(PathEnd {
        kind: CandidateKind::Prflx,
        protocol: "udp".into(),
        address: String::new(),
    });
    Some(LinkPath {
        local: end(&pair.local_candidate_id, true)?,
        remote,
        rtt_ms: pair.current_round_trip_time * 1000.0,
        bytes_sent: pair.bytes_sent,
        bytes_received: pair.bytes_received,
    })
}
