//! Durable channels on the harness: cursors, resume after a crash, the room held meanwhile.

use super::*;
use crate::history::KeepRule;
use crate::node::Since;

fn keeping(channel: &str) -> JoinOptions {
    JoinOptions {
        keep: vec![(
            channel.to_owned(),
            KeepRule {
                max_messages: Some(1_000),
                max_age: None,
            },
        )],
        ..JoinOptions::default()
    }
}

/// (cursor, history flag, text) of the chat messages a node's sessions received.
fn chat(net: &Net, i: usize) -> Vec<(u64, bool, String)> {
    net.nodes[i]
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Message {
                channel,
                payload: crate::wire::Payload::Text(t),
                cursor,
                history,
                ..
            } if channel == "chat" => Some((*cursor, *history, t.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn an_app_that_crashed_resumes_from_its_last_cursor_without_gap_or_duplicate() {
    let mut net = Net::new(91, 2);
    net.join(0, "r", keeping("chat"));
    net.join(1, "r", plain());
    assert!(net.run_until(10 * SEC, |n| converged(n, "r", &[0, 1])));
    for i in 0..5 {
        net.send(1, "r", "chat", &format!("before {i}"));
        net.send(1, "r", "other", "not kept");
    }
    net.run_for(SEC);
    let seen = chat(&net, 0);
    assert_eq!(seen.len(), 5);
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "cursors increase");
    assert!(seen.iter().all(|(c, h, _)| *c > 0 && !h));
    let last = seen[2].0;
    // The app crashes: its session ends without leaving; the node stays in the room.
    let old = net.nodes[0].session;
    net.nodes[0].core.close_session(old, net.now);
    net.run_for(SEC);
    assert!(net.nodes[1].joined("r").contains(&net.nodes[0].id()));
    for i in 0..3 {
        net.send(1, "r", "chat", &format!("while away {i}"));
    }
    net.run_for(SEC);
    // It restarts with the cursor of the third message it saw.
    net.nodes[0].events.clear();
    net.nodes[0].session = net.nodes[0].core.open_session();
    let resume = JoinOptions {
        since: Some(Since::Cursor(last)),
        ..keeping("chat")
    };
    net.join(0, "r", resume);
    net.send(1, "r", "chat", "live");
    net.run_for(SEC);
    let texts: Vec<(bool, String)> = chat(&net, 0).into_iter().map(|(_, h, t)| (h, t)).collect();
    let expect: Vec<(bool, String)> = ["before 3", "before 4"]
        .iter()
        .chain(["while away 0", "while away 1", "while away 2"].iter())
        .map(|t| (true, t.to_string()))
        .chain([(false, "live".to_string())])
        .collect();
    assert_eq!(texts, expect);
    // An explicit leave does end the room.
    net.leave(0, "r");
    net.run_for(5 * SEC);
    assert!(!net.nodes[1].joined("r").contains(&net.nodes[0].id()));
}
