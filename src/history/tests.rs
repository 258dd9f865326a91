//! History codec, keep rules and pruning.

use super::*;
use std::collections::BTreeMap;

fn entry(channel: &str, text: &str) -> Entry {
    Entry {
        channel: channel.into(),
        origin: "peer-a".into(),
        origin_seq: 7,
        origin_ms: 1_700_000_000_000,
        payload: Payload::Text(text.into()),
        meta: Some(serde_json::json!({"k": 1})),
        verified: true,
        signed: None,
        framed: None,
    }
}

#[test]
fn entries_round_trip_open_and_sealed() {
    let open = HistoryKey::open_room("app", "room");
    let e = entry("chat", "hello");
    assert_eq!(decode(&encode(&e, &open, [0; 24]), &open), Ok(e.clone()));
    let key = HistoryKey::password_room(&[9; 32]);
    let sealed = encode(&e, &key, [3; 24]);
    assert_eq!(decode(&sealed, &key), Ok(e.clone()));
    assert!(
        !sealed.windows(5).any(|w| w == b"hello") && !sealed.windows(4).any(|w| w == b"chat"),
        "plaintext at rest"
    );
    let other = HistoryKey::password_room(&[8; 32]);
    assert_eq!(decode(&sealed, &other), Err(EntryError::Sealed));
    assert_eq!(decode(&sealed, &open), Err(EntryError::Sealed));
    let mut bin = e;
    bin.payload = Payload::Binary(bytes::Bytes::from(vec![0, 255, 1]));
    bin.meta = None;
    bin.verified = false;
    assert_eq!(decode(&encode(&bin, &key, [1; 24]), &key), Ok(bin.clone()));
    let sig = OriginSig {
        key: [5; 32],
        seq: 7,
        sig: [6; 64],
    };
    bin.signed = Some(sig);
    assert_eq!(decode(&encode(&bin, &key, [1; 24]), &key), Ok(bin.clone()));
    bin.framed = Some(vec![1, 2, 3]);
    assert_eq!(decode(&encode(&bin, &open, [1; 24]), &open), Ok(bin));
}

/// An entry kept from a version 1 cell frame (kind 2: its signature left the hop limit out)
/// reads back unsigned, so it is served without a signature peers would refuse.
#[test]
fn entries_kept_from_version_1_frames_read_back_unsigned() {
    let open = HistoryKey::open_room("app", "room");
    let mut e = entry("chat", "hello");
    e.signed = Some(OriginSig {
        key: [5; 32],
        seq: 7,
        sig: [6; 64],
    });
    e.framed = Some(vec![0, b'x']);
    let mut value = encode(&e, &open, [0; 24]);
    // origin length, origin, seq, ms: then the signature kind.
    let at = HEADER + 1 + e.origin.len() + 16;
    assert_eq!(value[at], KIND_FRAMED);
    value[at] = KIND_FRAMED_V1;
    let n = value.len() - CHECKSUM;
    let sum = checksum(&value[..n]);
    value[n..].copy_from_slice(&sum);
    let back = decode(&value, &open).expect("reads");
    assert_eq!(
        (back.signed, back.framed, back.verified),
        (None, None, true)
    );
    assert_eq!(back.payload, e.payload);
}

#[test]
fn damaged_values_are_detected_without_the_key() {
    let key = HistoryKey::password_room(&[9; 32]);
    let value = encode(&entry("chat", "hello"), &key, [3; 24]);
    assert_eq!(check(&value), Ok(key.tag("chat")));
    for cut in [0, 5, value.len() - 1] {
        assert_eq!(check(&value[..cut]), Err(EntryError::Damaged));
    }
    let mut flipped = value.clone();
    flipped[20] ^= 1;
    assert_eq!(check(&flipped), Err(EntryError::Damaged));
    assert_eq!(decode(&flipped, &key), Err(EntryError::Damaged));
}

#[test]
fn keep_options_parse_counts_ages_and_both() {
    assert_eq!(
        parse_keep("chat=10000"),
        Ok((
            "chat".into(),
            KeepRule {
                max_messages: Some(10_000),
                max_age: None
            }
        ))
    );
    let (_, files) = parse_keep("files=7d").expect("age");
    assert_eq!(files.max_age, Some(Duration::from_secs(7 * 86_400)));
    let (_, both) = parse_keep("log=500,12h").expect("both");
    assert_eq!(both.max_messages, Some(500));
    assert_eq!(both.max_age, Some(Duration::from_secs(12 * 3_600)));
    for bad in ["chat", "=5", "chat=", "chat=7x", "chat=0d", "chat=5,"] {
        assert!(parse_keep(bad).is_err(), "{bad}");
    }
    let a = KeepRule {
        max_messages: Some(10),
        max_age: None,
    };
    let b = KeepRule {
        max_messages: Some(20),
        max_age: Some(Duration::from_secs(60)),
    };
    assert_eq!(a.union(b).max_messages, Some(20));
    assert_eq!(a.union(b).max_age, None, "no age limit is the looser");
}

#[test]
fn limits_prune_the_oldest_per_channel_then_per_room() {
    let (chat, files) = ([1; 8], [2; 8]);
    let mut ix = RoomIndex::default();
    let rule = KeepRule {
        max_messages: Some(3),
        max_age: Some(Duration::from_secs(10)),
    };
    for c in 1..=5u64 {
        ix.insert(chat, Cursor(c * 1_000_000), 100);
    }
    // Count: 5 held, 3 kept.
    assert_eq!(
        ix.enforce(chat, Some(rule), u64::MAX, Cursor(6_000_000)),
        cursors(&[1_000_000, 2_000_000])
    );
    // Age: at t = 14 s, entries before 4 s go.
    assert_eq!(
        ix.enforce(chat, Some(rule), u64::MAX, Cursor(14_000_000)),
        cursors(&[3_000_000])
    );
    // Budget: the room's oldest go first, whatever their channel.
    ix.insert(files, Cursor(4_500_000), 1_000);
    assert_eq!(ix.totals(None).bytes, 1_200);
    assert_eq!(
        ix.enforce(files, None, 1_000, Cursor(14_000_000)),
        cursors(&[4_000_000, 4_500_000])
    );
    assert_eq!(ix.totals(None).messages, 1);
    let rules = BTreeMap::from([(chat, rule)]);
    assert_eq!(ix.expire(&rules, Cursor(16_000_000)), cursors(&[5_000_000]));
    assert_eq!(ix.totals(None), Totals::default());
}

fn cursors(micros: &[u64]) -> Vec<Cursor> {
    micros.iter().map(|&m| Cursor(m)).collect()
}

/// Stored values of one room: `n` entries of about `size` bytes on `channel`, kept at
/// cursors 1000, 2000, … (entry `i` kept at ms `i + 1`).
fn stored(key: &HistoryKey, channel: &str, n: u64, size: usize) -> Vec<(Cursor, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let mut e = entry(channel, &"x".repeat(size));
            e.origin_ms = i + 1;
            (Cursor((i + 1) * 1_000), encode(&e, key, [i as u8; 24]))
        })
        .collect()
}

fn page_of(
    values: &[(Cursor, Vec<u8>)],
    key: &HistoryKey,
    after_cursor: Cursor,
    after_ms: u64,
    channel: &str,
) -> ServedPage {
    let from = scan_from(after_cursor, after_ms);
    let after = values.iter().filter(|(c, _)| *c > from).cloned();
    page(after, key, from, after_ms, &[channel.to_owned()].into())
}

#[test]
fn a_catch_up_page_costs_bounded_work_whatever_it_asks() {
    use crate::wire::history::HistMsg;
    let key = HistoryKey::password_room(&[5; 32]);
    // 12 MiB of one channel.
    let values = stored(&key, "log", 3_000, 4 << 10);
    // A request for the future: a seek, nothing read.
    let p = page_of(&values, &key, Cursor(0), u64::MAX, "log");
    assert_eq!(p.cost, 0);
    assert!(
        matches!(p.msg, HistMsg::Entries { done: true, ref entries, .. } if entries.is_empty())
    );
    // Asking from a time seeks there: only what was kept after it is read.
    let p = page_of(&values, &key, Cursor(0), 2_990, "log");
    let HistMsg::Entries { done, entries, .. } = p.msg else {
        panic!("a page")
    };
    assert!(done && entries.len() == 10, "{} entries", entries.len());
    assert!(p.cost < 20 * (5 << 10));
    // A channel the history holds little of: each page reads at most SCAN_BYTES (plus one
    // value), yet paging on reaches the end and finds it.
    let mut values = values;
    let mut last = entry("chat", "the one");
    last.origin_ms = 3_001;
    values.push((Cursor(3_001_000), encode(&last, &key, [1; 24])));
    let (mut cursor, mut pages, mut found) = (0, 0, Vec::new());
    loop {
        let p = page_of(&values, &key, Cursor(cursor), 0, "chat");
        assert!(
            p.cost <= SCAN_BYTES + (5 << 10),
            "one page read {} bytes",
            p.cost
        );
        pages += 1;
        let HistMsg::Entries {
            done,
            next_cursor,
            entries,
        } = p.msg
        else {
            panic!("a page")
        };
        found.extend(entries);
        assert!(next_cursor > cursor || done, "paging goes on");
        cursor = next_cursor;
        if done {
            break;
        }
    }
    assert!(pages >= 6, "{pages} pages for 12 MiB");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].origin_ms, 3_001);
}
