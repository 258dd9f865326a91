//! The driver's TURN monitor: each configured TURN server is asked for an allocation at start
//! and again later (soon while it fails), its state is kept for `status`, and a node whose TURN
//! servers all fail tells its apps (through the core) why their peers may never connect.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::Node;
use super::core::Input;
use super::core::types::IceProblem;
use crate::transport::ice::IcePolicy;
use crate::transport::turn_probe::{self, TurnState};

/// How often a TURN server that works is asked again.
const RECHECK_OK: Duration = Duration::from_secs(600);
/// How often a TURN server that fails is asked again.
const RECHECK_FAILING: Duration = Duration::from_secs(30);

/// A TURN server as `status` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnServerStatus {
    /// The URL as configured (never its credentials).
    pub url: String,
    /// What it last said.
    pub state: TurnState,
    /// When it was last asked.
    pub checked: Option<Instant>,
}

/// The problem apps are told of: only when no TURN server works.
fn problem(states: &[TurnServerStatus], policy: IcePolicy) -> Option<IceProblem> {
    if states.is_empty()
        || states
            .iter()
            .any(|s| s.state.is_ok() || s.checked.is_none())
    {
        return None;
    }
    let s = &states[0];
    let (code, what) = match &s.state {
        TurnState::AuthFailed(e) => ("turn_auth_failed", format!("refused the credentials ({e})")),
        TurnState::Unreachable => ("turn_unreachable", "did not answer".to_owned()),
        TurnState::Failed(e) => ("turn_failed", format!("refused an allocation ({e})")),
        TurnState::Unknown | TurnState::Allocated(_) => return None,
    };
    let consequence = match policy {
        IcePolicy::Relay => "with ice_transport_policy = relay no peer can connect",
        IcePolicy::All => "peers behind restrictive NATs cannot connect",
    };
    Some(IceProblem {
        code: code.to_owned(),
        message: format!("TURN server {} {what}; {consequence}", s.url),
    })
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Starts the monitor; it ends with the node.
pub(super) fn spawn(node: &Arc<Node>) {
    let targets = node.transport.ice().turn_targets(now_unix());
    if targets.is_empty() {
        return;
    }
    *node.turn_lock() = targets
        .iter()
        .map(|t| TurnServerStatus {
            url: t.url.clone(),
            state: TurnState::Unknown,
            checked: None,
        })
        .collect();
    let me: Weak<Node> = Arc::downgrade(node);
    let bind = node.config.ice_addr;
    let policy = node.transport.ice().policy;
    tokio::spawn(async move {
        loop {
            let Some(node) = me.upgrade() else { return };
            // Fresh REST credentials for every round, as connections get.
            let targets = node.transport.ice().turn_targets(now_unix());
            drop(node);
            let mut states = Vec::new();
            for t in &targets {
                let state = match tokio::net::lookup_host(&t.addr).await.map(|mut a| a.next()) {
                    Ok(Some(addr)) => {
                        turn_probe::probe(addr, &t.username, t.credential.expose(), bind).await
                    }
                    _ => TurnState::Failed(format!("cannot resolve {}", t.addr)),
                };
                tracing::info!(url = %t.url, state = state.name(), "TURN server checked");
                states.push(TurnServerStatus {
                    url: t.url.clone(),
                    state,
                    checked: Some(Instant::now()),
                });
            }
            let all_ok = states.iter().all(|s| s.state.is_ok());
            let problem = problem(&states, policy);
            let Some(node) = me.upgrade() else { return };
            *node.turn_lock() = states;
            node.feed(|core, now| core.handle(Input::IceProblem(problem), now));
            drop(node);
            tokio::time::sleep(if all_ok { RECHECK_OK } else { RECHECK_FAILING }).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: TurnState) -> TurnServerStatus {
        TurnServerStatus {
            url: "turn:t:3478".into(),
            state,
            checked: Some(Instant::now()),
        }
    }

    #[test]
    fn apps_hear_of_turn_only_when_no_server_works() {
        let bad = status(TurnState::AuthFailed("error 401".into()));
        let good = status(TurnState::Allocated("127.0.0.1:4000".parse().unwrap()));
        assert_eq!(
            problem(&[good.clone(), bad.clone()], IcePolicy::Relay),
            None
        );
        let IceProblem { code, message } = problem(&[bad], IcePolicy::Relay).expect("a problem");
        assert_eq!(code, "turn_auth_failed");
        assert!(
            message.contains("turn:t:3478") && message.contains("relay"),
            "{message}"
        );
        let IceProblem { code, .. } =
            problem(&[status(TurnState::Unreachable)], IcePolicy::All).expect("a problem");
        assert_eq!(code, "turn_unreachable");
        assert_eq!(problem(&[], IcePolicy::Relay), None);
    }
}
