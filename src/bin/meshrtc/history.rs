//! `meshrtc history` and the `--keep` / `--since` options of `listen`.

use serde_json::{Value, json};

use super::{client, print_line};
use meshrtc::proto;

/// Parses `--keep CHANNEL=COUNT|AGE[,…]`.
pub fn parse_keep(text: &str) -> Result<proto::Keep, String> {
    let (channel, rule) = meshrtc::history::parse_keep(text).map_err(|e| e.to_string())?;
    Ok(proto::Keep {
        channel,
        max_messages: rule.max_messages.unwrap_or(0),
        max_age_seconds: rule.max_age.map_or(0, |d| d.as_secs()),
    })
}

/// Parses `--since CURSOR|all|AGE`.
pub fn parse_since(text: &str) -> Result<proto::Since, String> {
    use proto::since::From;
    let from = if text == "all" {
        From::All(true)
    } else if let Ok(cursor) = text.parse::<u64>() {
        From::Cursor(cursor)
    } else if let Some(age) = meshrtc::history::parse_age(text) {
        From::AgeSeconds(age.as_secs())
    } else {
        return Err(format!(
            "{text:?}: expected a cursor (a number printed with a message), `all`, or an age such as 10m, 2h, 7d"
        ));
    };
    Ok(proto::Since { from: Some(from) })
}

/// Cursors are microseconds since the Unix epoch: shown as RFC 3339 times.
fn when(cursor: u64) -> String {
    if cursor == 0 {
        return "-".into();
    }
    let secs = (cursor / 1_000_000) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Shows (and with `clear`, first clears a channel of) what the node keeps of a room.
pub async fn show(
    daemon: &str,
    app: &str,
    room: &str,
    password: &str,
    clear: Option<String>,
    as_json: bool,
) -> anyhow::Result<()> {
    let mut c = client(daemon).await?;
    let h = c
        .history(proto::HistoryRequest {
            app: app.to_owned(),
            room: room.to_owned(),
            password: password.to_owned(),
            clear_channel: clear.clone().unwrap_or_default(),
        })
        .await?
        .into_inner();
    if as_json {
        let channels: Vec<Value> = h
            .channels
            .iter()
            .map(|ch| {
                json!({"channel": ch.channel, "messages": ch.messages, "bytes": ch.bytes,
                       "oldest": ch.oldest, "newest": ch.newest})
            })
            .collect();
        return print_line(&json!({
            "channels": channels, "messages": h.messages, "bytes": h.bytes,
            "oldest": h.oldest, "newest": h.newest, "cleared": h.cleared,
        }));
    }
    if let Some(ch) = clear {
        println!("cleared {} messages of {ch}", h.cleared);
    }
    println!(
        "{room}: {} messages, {} bytes, oldest {}, newest {}",
        h.messages,
        h.bytes,
        when(h.oldest),
        when(h.newest)
    );
    for ch in &h.channels {
        let name = if ch.channel.is_empty() {
            "(sealed: give --password)"
        } else {
            &ch.channel
        };
        println!(
            "  {name:<24} {:>9} messages {:>12} bytes  {} … {}",
            ch.messages,
            ch.bytes,
            when(ch.oldest),
            when(ch.newest)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_show_as_utc_times() {
        assert_eq!(when(0), "-");
        assert_eq!(when(1_000_000), "1970-01-01T00:00:01Z");
        assert_eq!(when(1_796_000_000_000_000), "2026-11-30T00:53:20Z");
    }

    #[test]
    fn since_and_keep_options_parse() {
        assert!(parse_since("all").is_ok());
        assert_eq!(
            parse_since("42").map(|s| s.from),
            Ok(Some(proto::since::From::Cursor(42)))
        );
        assert_eq!(
            parse_since("10m").map(|s| s.from),
            Ok(Some(proto::since::From::AgeSeconds(600)))
        );
        assert!(parse_since("yesterday").is_err());
        assert_eq!(parse_keep("chat=5").map(|k| k.max_messages), Ok(5));
        assert!(parse_keep("chat").is_err());
    }
}
