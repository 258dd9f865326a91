use super::*;

const LOW: &str = "0000000000000000000A";
const HIGH: &str = "zzzzzzzzzzzzzzzzzzzz";

fn publishes(actions: &[Action]) -> Vec<(String, Signal)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Relay(RelayCommand::Publish { topic, content, .. })
            | Action::Announce(RelayCommand::Publish { topic, content, .. }) => {
                Signal::parse(content).ok().map(|s| (topic.clone(), s))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn announce_schedule() {
    let t0 = Instant::now();
    let mut s = RoomSignal::new(LOW, "app", "room", "", 8, t0);
    let mut count = 0;
    let mut at = Vec::new();
    for ms in (0..=125_000).step_by(1) {
        let n = s.tick(t0 + Duration::from_millis(ms)).len();
        if n > 0 {
            at.push(ms);
        }
        count += n;
    }
    assert_eq!(count, 6);
    assert_eq!(at, vec![0, 233, 533, 1_333, 61_333, 121_333]);
    s.restart_burst(t0 + Duration::from_millis(130_000));
    assert_eq!(s.tick(t0 + Duration::from_millis(130_000)).len(), 1);
}

#[test]
fn smaller_id_offers_larger_id_pokes() {
    let now = Instant::now();
    let mut low = RoomSignal::new(LOW, "app", "room", "pw", 8, now);
    let mut high = RoomSignal::new(HIGH, "app", "room", "pw", 8, now);
    let root = low.root_topic().to_owned();
    // High hears low's announce: pokes low's self topic.
    let a = high.on_signal(
        &root,
        Signal::Announce {
            peer: LOW.into(),
            passive: false,
        },
        None,
        now,
    );
    assert_eq!(a[0], Action::Seen { peer: LOW.into() });
    let pubs = publishes(&a);
    assert_eq!(pubs[0].0, self_topic("app", "room", LOW));
    // Low treats the poke as an announce and starts an offer.
    let a = low.on_signal(&pubs[0].0, pubs[0].1.clone(), None, now);
    let Some(Action::StartOffer { offer_id, .. }) = a
        .iter()
        .find(|x| matches!(x, Action::StartOffer { .. }))
        .cloned()
    else {
        panic!("expected an offer: {a:?}")
    };
    // Candidates are held until the offer went out.
    assert!(
        low.local_candidate(HIGH, &offer_id, "{\"candidate\":\"c1\"}")
            .is_empty()
    );
    let a = low.offer_ready(HIGH, &offer_id, "v=0 offer");
    let pubs = publishes(&a);
    assert_eq!(pubs.len(), 2);
    // High accepts and answers via the relay the offer came from.
    let a = high.on_signal(&pubs[0].0, pubs[0].1.clone(), Some("ws://r1".into()), now);
    assert!(a.contains(&Action::AcceptOffer {
        peer: LOW.into(),
        offer_id: offer_id.clone(),
        sdp: "v=0 offer".into()
    }));
    let a = high.on_signal(&pubs[1].0, pubs[1].1.clone(), Some("ws://r2".into()), now);
    assert_eq!(
        a,
        vec![Action::AddCandidate {
            peer: LOW.into(),
            offer_id: offer_id.clone(),
            candidate: "{\"candidate\":\"c1\"}".into()
        }]
    );
    let a = high.answer_ready(LOW, &offer_id, "v=0 answer");
    let Some(Action::Relay(RelayCommand::Publish { relay, .. })) = a.first() else {
        panic!("expected publish")
    };
    assert_eq!(relay.as_deref(), Some("ws://r1"));
    let pubs = publishes(&a);
    let a = low.on_signal(&pubs[0].0, pubs[0].1.clone(), None, now);
    assert_eq!(
        a,
        vec![Action::ApplyAnswer {
            peer: HIGH.into(),
            offer_id: offer_id.clone(),
            sdp: "v=0 answer".into()
        }]
    );
    // Replaying the offer is dropped.
    let replay = Signal::Offer {
        peer: LOW.into(),
        offer_id: offer_id.clone(),
        sdp: "x".into(),
    };
    let topic = self_topic("app", "room", HIGH);
    assert_eq!(
        high.on_signal(&topic, replay, None, now),
        vec![Action::Drop(DropReason::OfferReplayed)]
    );
}

#[test]
fn stale_dials_are_retried_on_a_new_announce() {
    let now = Instant::now();
    let mut s = RoomSignal::new(LOW, "app", "room", "", 8, now);
    let root = s.root_topic().to_owned();
    let announce = || Signal::Announce {
        peer: HIGH.into(),
        passive: false,
    };
    let a = s.on_signal(&root, announce(), None, now);
    assert!(a.iter().any(|x| matches!(x, Action::StartOffer { .. })));
    // Soon after: still pending, nothing new.
    assert!(
        s.on_signal(&root, announce(), None, now + Duration::from_secs(1))
            .is_empty()
    );
    // Much later: the old attempt is cancelled and a new one starts.
    let a = s.on_signal(&root, announce(), None, now + DIAL_RETRY_AFTER);
    assert!(
        a.iter().any(|x| matches!(x, Action::CancelDial { .. })),
        "{a:?}"
    );
    assert!(
        a.iter().any(|x| matches!(x, Action::StartOffer { .. })),
        "{a:?}"
    );
    assert_eq!(s.pending_dials(), 1);
}

#[test]
fn announce_floods_are_bounded() {
    let now = Instant::now();
    let mut s = RoomSignal::new(HIGH, "app", "room", "", 8, now);
    let root = s.root_topic().to_owned();
    let mut pokes = 0;
    let mut limited = 0;
    for i in 0..10_000u32 {
        let peer = format!("0{:019}", i);
        for a in s.on_signal(
            &root,
            Signal::Announce {
                peer,
                passive: false,
            },
            None,
            now,
        ) {
            match a {
                Action::Relay(RelayCommand::Publish { .. }) => pokes += 1,
                Action::Drop(DropReason::PokeRateLimited) => limited += 1,
                _ => {}
            }
        }
    }
    assert_eq!(pokes, 40, "only the burst goes out at once");
    assert_eq!(limited, 10_000 - 40);
    assert!(s.seen.len() <= SEEN_PEERS_CAP && s.seen_order.len() <= SEEN_PEERS_CAP);
    // The bucket refills with time.
    let later = now + Duration::from_secs(1);
    let a = s.on_signal(
        &root,
        Signal::Announce {
            peer: "0zzzzzzzzzzzzzzzzzzz".into(),
            passive: false,
        },
        None,
        later,
    );
    assert!(
        a.iter()
            .any(|x| matches!(x, Action::Relay(RelayCommand::Publish { .. })))
    );
    // Larger fake ids: dials stay capped.
    let mut low = RoomSignal::new(LOW, "app", "room", "", 8, now);
    for i in 0..1_000u32 {
        low.on_signal(
            &root,
            Signal::Announce {
                peer: format!("z{:019}", i),
                passive: false,
            },
            None,
            now,
        );
    }
    assert_eq!(low.pending_dials(), 8);
}

#[test]
fn unknown_and_wrong_key_are_dropped() {
    let now = Instant::now();
    let mut s = RoomSignal::new(LOW, "app", "room", "pw", 8, now);
    let own = self_topic("app", "room", LOW);
    let a = s.on_signal(
        &own,
        Signal::Answer {
            peer: HIGH.into(),
            offer_id: "nope".into(),
            sdp: "x".into(),
        },
        None,
        now,
    );
    assert_eq!(a, vec![Action::Drop(DropReason::AnswerUnknownOffer)]);
    let a = s.on_signal(
        &own,
        Signal::Candidate {
            peer: HIGH.into(),
            offer_id: "nope".into(),
            candidate: "x".into(),
        },
        None,
        now,
    );
    assert_eq!(a, vec![Action::Drop(DropReason::CandidateUnknownOffer)]);
    let wrong = sdp_crypto::encrypt(&sdp_crypto::room_key("other", "app", "room"), "v=0");
    let a = s.on_signal(
        &own,
        Signal::Offer {
            peer: HIGH.into(),
            offer_id: "o".into(),
            sdp: wrong,
        },
        None,
        now,
    );
    assert_eq!(a, vec![Action::Drop(DropReason::OfferUndecryptable)]);
    let root = s.root_topic().to_owned();
    let a = s.on_signal(
        &root,
        Signal::Offer {
            peer: HIGH.into(),
            offer_id: "o2".into(),
            sdp: "x".into(),
        },
        None,
        now,
    );
    assert_eq!(a, vec![Action::Drop(DropReason::SignalWrongTopic)]);
}

#[test]
fn collision_and_caps_and_timeouts() {
    let now = Instant::now();
    let mut s = RoomSignal::new(LOW, "app", "room", "", 1, now);
    let root = s.root_topic().to_owned();
    let a = s.on_signal(
        &root,
        Signal::Announce {
            peer: HIGH.into(),
            passive: false,
        },
        None,
        now,
    );
    assert!(a.iter().any(|x| matches!(x, Action::StartOffer { .. })));
    // Colliding offer from the larger id is ignored by the smaller id.
    let sdp = sdp_crypto::encrypt(&sdp_crypto::room_key("", "app", "room"), "v=0");
    let own = self_topic("app", "room", LOW);
    let a = s.on_signal(
        &own,
        Signal::Offer {
            peer: HIGH.into(),
            offer_id: "c".into(),
            sdp,
        },
        None,
        now,
    );
    assert_eq!(a, vec![Action::Drop(DropReason::OfferCollision)]);
    // Cap of one pending dial.
    let other = "zzzzzzzzzzzzzzzzzzzy";
    let a = s.on_signal(
        &root,
        Signal::Announce {
            peer: other.into(),
            passive: false,
        },
        None,
        now,
    );
    assert!(a.contains(&Action::Drop(DropReason::DialsFull)));
    // The dial expires.
    let a = s.tick(now + OFFER_TTL + Duration::from_millis(1));
    assert!(a.iter().any(|x| matches!(x, Action::CancelDial { .. })));
    assert_eq!(s.pending_dials(), 0);
    // A linked peer's valid offer is accepted (it restarted); replays are not.
    s.set_linked(HIGH, true);
    let sdp = sdp_crypto::encrypt(&sdp_crypto::room_key("", "app", "room"), "v=0 again");
    let a = s.on_signal(
        &own,
        Signal::Offer {
            peer: HIGH.into(),
            offer_id: "again".into(),
            sdp,
        },
        None,
        now,
    );
    assert!(
        a.iter().any(|x| matches!(x, Action::AcceptOffer { .. })),
        "{a:?}"
    );
    s.set_linked(HIGH, false);
    // Linked peers are not dialled again; passive peers never.
    s.set_linked(HIGH, true);
    let a = s.on_signal(
        &root,
        Signal::Announce {
            peer: HIGH.into(),
            passive: false,
        },
        None,
        now,
    );
    assert!(a.is_empty());
    let a = s.on_signal(
        &root,
        Signal::Announce {
            peer: "zzzzzzzzzzzzzzzzzzzx".into(),
            passive: true,
        },
        None,
        now,
    );
    assert_eq!(a.len(), 1);
}

#[test]
fn a_seeded_state_machine_draws_the_same_offer_ids() {
    let now = Instant::now();
    let offer_ids = |seed: u64| -> Vec<String> {
        let mut s = RoomSignal::new(LOW, "app", "room", "pw", 8, now).with_seed(seed);
        ["B0000000000000000000", "C0000000000000000000"]
            .iter()
            .flat_map(|peer| s.dial(peer, now))
            .filter_map(|a| match a {
                Action::StartOffer { offer_id, .. } => Some(offer_id),
                _ => None,
            })
            .collect()
    };
    assert_eq!(offer_ids(7).len(), 2);
    assert_eq!(offer_ids(7), offer_ids(7));
    assert_ne!(offer_ids(7), offer_ids(8));
}

#[test]
fn an_overlay_dial_whose_offer_went_unanswered_is_made_again_but_an_answered_one_is_not() {
    let t0 = Instant::now();
    let mut s = RoomSignal::new(LOW, "app", "room", "", 8, t0);
    let first = s.dial(HIGH, t0);
    let Some(Action::StartOffer { offer_id, .. }) = first.first() else {
        panic!("no offer: {first:?}");
    };
    let offer_id = offer_id.clone();
    assert!(s.dial(HIGH, t0 + Duration::from_secs(1)).is_empty());
    let again = s.dial(HIGH, t0 + DIAL_RETRY_AFTER);
    assert!(again.contains(&Action::CancelDial {
        peer: HIGH.into(),
        offer_id: offer_id.clone(),
    }));
    let Some(Action::StartOffer {
        offer_id: new_id, ..
    }) = again
        .iter()
        .find(|a| matches!(a, Action::StartOffer { .. }))
    else {
        panic!("no new offer: {again:?}");
    };
    // Answered: ICE is under way, the overlay's next ask changes nothing.
    let mut high = RoomSignal::new(HIGH, "app", "room", "", 8, t0);
    let offer = publishes(&s.offer_ready(HIGH, new_id, "v=0 offer"));
    high.on_signal(&offer[0].0, offer[0].1.clone(), None, t0);
    let answer = publishes(&high.answer_ready(LOW, new_id, "v=0 answer"));
    let applied = s.on_signal(
        &answer[0].0,
        answer[0].1.clone(),
        None,
        t0 + DIAL_RETRY_AFTER,
    );
    assert!(
        applied
            .iter()
            .any(|a| matches!(a, Action::ApplyAnswer { .. })),
        "{applied:?}"
    );
    assert!(s.dial(HIGH, t0 + DIAL_RETRY_AFTER * 3).is_empty());
}
