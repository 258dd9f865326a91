use super::*;

const A: &str = "AAAAAAAAAAAAAAAAAAAA";
const B: &str = "BBBBBBBBBBBBBBBBBBBB";

fn room(id: &str, pw: &str) -> Room {
    let limits = RoomLimits {
        max_message: 1 << 20,
        handshake_timeout: Duration::from_secs(10),
        reassembly_timeout: Duration::from_secs(30),
    };
    Room::new(id, "app", "room", pw, limits, None)
}

/// Delivers frames between two rooms until quiet; returns each side's events.
fn pump(
    a: &mut Room,
    b: &mut Room,
    to_b: Vec<Output>,
    to_a: Vec<Output>,
) -> (Vec<RoomEvent>, Vec<RoomEvent>) {
    let (ev_a, ev_b, _) = pump_all(a, b, to_b, to_a);
    (ev_a, ev_b)
}

/// Each side's events, and the peers each side reported capable.
type Pumped = (Vec<RoomEvent>, Vec<RoomEvent>, (Vec<String>, Vec<String>));

/// `pump`, also returning the peers each side reported capable: (by a, by b).
fn pump_all(a: &mut Room, b: &mut Room, mut to_b: Vec<Output>, mut to_a: Vec<Output>) -> Pumped {
    let now = Instant::now();
    let (mut ev_a, mut ev_b) = (Vec::new(), Vec::new());
    let (mut cap_a, mut cap_b) = (Vec::new(), Vec::new());
    while !to_a.is_empty() || !to_b.is_empty() {
        for o in std::mem::take(&mut to_b) {
            match o {
                Output::Send(_, f) | Output::SendFirst(_, f) => {
                    to_a.extend(b.on_chunk(A, &f[3 + 64..], now))
                }
                Output::Event(e) => ev_a.push(e),
                Output::Capable(p, _) => cap_a.push(p),
                Output::Drop(_)
                | Output::Cell(..)
                | Output::Roster(..)
                | Output::Inventory(..)
                | Output::History(..) => {}
            }
        }
        for o in std::mem::take(&mut to_a) {
            match o {
                Output::Send(_, f) | Output::SendFirst(_, f) => {
                    to_b.extend(a.on_chunk(B, &f[3 + 64..], now))
                }
                Output::Event(e) => ev_b.push(e),
                Output::Capable(p, _) => cap_b.push(p),
                Output::Drop(_)
                | Output::Cell(..)
                | Output::Roster(..)
                | Output::Inventory(..)
                | Output::History(..) => {}
            }
        }
    }
    (ev_a, ev_b, (cap_a, cap_b))
}

#[test]
fn a_peer_is_reported_capable_once_when_it_joins_and_never_without_the_password() {
    let now = Instant::now();
    let (mut a, mut b) = (room(A, ""), room(B, ""));
    let (oa, ob) = (a.attach(B, now), b.attach(A, now));
    let (_, _, (by_a, by_b)) = pump_all(&mut a, &mut b, oa, ob);
    assert_eq!(by_a, vec![B.to_string()]);
    assert_eq!(by_b, vec![A.to_string()]);
    let (mut a, mut b) = (room(A, "pw"), room(B, "other"));
    let (oa, ob) = (a.attach(B, now), b.attach(A, now));
    let (_, _, (by_a, by_b)) = pump_all(&mut a, &mut b, oa, ob);
    assert!(by_a.is_empty() && by_b.is_empty(), "{by_a:?} {by_b:?}");
}

#[test]
fn a_pending_handshake_is_sent_again_on_presence_and_on_ticks() {
    let t0 = Instant::now();
    let mut a = room(A, "pw");
    let first = a.attach(B, t0);
    let challenge = |outs: &[Output]| {
        outs.iter()
            .filter(|o| matches!(o, Output::Send(_, f) if f.windows(9).any(|w| w == b"challenge")))
            .count()
    };
    assert_eq!(challenge(&first), 1);
    // B's presence arrives while the handshake is pending: the challenge goes again.
    assert_eq!(challenge(&a.on_presence(B, t0)), 1);
    assert!(a.tick(t0 + Duration::from_millis(1_000)).is_empty());
    let nudge = a.tick(t0 + Duration::from_millis(1_600));
    assert_eq!(challenge(&nudge), 1);
    assert!(
        nudge
            .iter()
            .any(|o| matches!(o, Output::Drop(DropReason::HandshakeNudged)))
    );
    // Three nudges at most.
    let later: usize = [3_100, 4_600, 6_100, 7_600]
        .iter()
        .map(|ms| challenge(&a.tick(t0 + Duration::from_millis(*ms))))
        .sum();
    assert_eq!(later, 2);
}

#[test]
fn cell_payloads_are_sealed_in_password_rooms_only() {
    let mut open_room = room(A, "");
    let plain = open_room
        .cell_payload("chat", &Payload::Text("hi".into()), None)
        .expect("payload");
    assert_eq!(plain[0], 0);
    let (ch, p, _) = open_room.open_cell_payload(&plain).expect("opens");
    assert_eq!((ch.as_str(), p), ("chat", Payload::Text("hi".into())));
    assert!(
        open_room
            .cell_payload("@_x", &Payload::Text("hi".into()), None)
            .is_err()
    );
    let limits = RoomLimits {
        max_message: 1 << 20,
        handshake_timeout: Duration::from_secs(10),
        reassembly_timeout: Duration::from_secs(30),
    };
    let key = || Some(crate::wire::e2e::derive_key("pw", "app", "room"));
    let mut sealed_room = Room::new(A, "app", "room", "pw", limits, key());
    let sealed = sealed_room
        .cell_payload("chat", &Payload::Text("secret".into()), None)
        .expect("payload");
    assert_eq!(sealed[0], 1);
    assert!(!sealed.windows(6).any(|w| w == b"secret"));
    let other = Room::new(B, "app", "room", "pw", limits, key());
    assert!(other.open_cell_payload(&sealed).is_ok());
    // A plain payload is refused in a password room, and the reverse.
    assert_eq!(
        other.open_cell_payload(&plain),
        Err(DropReason::CellPayloadRefused)
    );
    assert_eq!(
        open_room.open_cell_payload(&sealed),
        Err(DropReason::CellPayloadRefused)
    );
}

#[test]
fn handshake_without_password() {
    let (mut a, mut b) = (room(A, ""), room(B, ""));
    let now = Instant::now();
    let oa = a.attach(B, now);
    let ob = b.attach(A, now);
    let (ea, eb) = pump(&mut a, &mut b, oa, ob);
    assert!(ea.contains(&RoomEvent::PeerJoin(B.into(), Security::Transport)));
    assert!(eb.contains(&RoomEvent::PeerJoin(A.into(), Security::Transport)));
}

#[test]
fn handshake_with_password() {
    let (mut a, mut b) = (room(A, "pw"), room(B, "pw"));
    let now = Instant::now();
    let oa = a.attach(B, now);
    let ob = b.attach(A, now);
    let (ea, eb) = pump(&mut a, &mut b, oa, ob);
    assert!(
        ea.contains(&RoomEvent::PeerJoin(B.into(), Security::Transport)),
        "{ea:?}"
    );
    assert!(
        eb.contains(&RoomEvent::PeerJoin(A.into(), Security::Transport)),
        "{eb:?}"
    );
}

#[test]
fn wrong_password_never_joins() {
    let (mut a, mut b) = (room(A, "pw"), room(B, "other"));
    let now = Instant::now();
    let oa = a.attach(B, now);
    let ob = b.attach(A, now);
    let (ea, eb) = pump(&mut a, &mut b, oa, ob);
    assert!(
        !ea.iter()
            .chain(&eb)
            .any(|e| matches!(e, RoomEvent::PeerJoin(..)))
    );
    assert!(
        ea.iter().any(|e| matches!(
            e,
            RoomEvent::Error {
                code: "password_mismatch",
                ..
            }
        )),
        "{ea:?}"
    );
    // B never hears back and times out.
    let later = now + Duration::from_secs(11);
    assert!(b.tick(later).iter().any(|o| matches!(
        o,
        Output::Event(RoomEvent::Error {
            code: "handshake_timeout",
            ..
        })
    )));
}

#[test]
fn messages_only_after_join_and_size_limit() {
    let (mut a, mut b) = (room(A, ""), room(B, ""));
    let now = Instant::now();
    b.attach(A, now);
    let frames = a
        .encode_app("chat", &Payload::Text("hi".into()), None)
        .expect("encodes");
    let out = b.on_chunk(A, &frames[0][3 + 64..], now);
    assert_eq!(out, vec![Output::Drop(DropReason::ChunkBeforeHandshake)]);
    assert!(matches!(
        a.encode_app(
            "chat",
            &Payload::Binary(bytes::Bytes::from(vec![0; (1 << 20) + 1])),
            None
        ),
        Err(SendError::TooLarge { .. })
    ));
    assert!(matches!(
        a.encode_app("@_x", &Payload::Text(String::new()), None),
        Err(SendError::BadChannel(_))
    ));
}

#[test]
fn a_seeded_room_draws_the_same_password_challenges() {
    // A has the smaller id, so it challenges B when B attaches.
    let frames = |seed: u64| -> Vec<Bytes> {
        let mut a = room(A, "pw").with_seed(seed);
        a.attach(B, Instant::now())
            .into_iter()
            .filter_map(|o| match o {
                Output::Send(_, f) => Some(f),
                _ => None,
            })
            .collect()
    };
    assert!(!frames(3).is_empty());
    assert_eq!(frames(3), frames(3));
    assert_ne!(frames(3), frames(4));
}
