//! With no relay configured, an app's rooms use exactly the relays a default Trystero 0.25.4
//! page of that app uses: `meshrtcd relays-for APP` is compared with the pinned npm package's
//! own `getRelays` (run by `node` on `tests/browser/node_modules`, which `scripts/test.sh`
//! installs) for a few hundred app ids, Unicode ones included. Nothing connects anywhere.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

/// App ids people use, and ones that stress the seed: accents, CJK, right-to-left, combining
/// marks, astral characters (two UTF-16 code units each), a ZWJ sequence, spaces, the longest
/// id the daemon accepts.
const NAMED: &[&str] = &[
    "san_narciso_3d",
    "trystero",
    "my-app",
    "chat",
    "whiteboard",
    "game",
    "demo",
    "test",
    "com.example.chat",
    "https://example.org/app",
    "a",
    "A",
    "zz",
    "0",
    "app id with spaces",
    "héllo wörld",
    "café",
    "naïve-résumé",
    "Ελληνικά",
    "кириллица",
    "日本語アプリ",
    "中文应用",
    "한국어 앱",
    "עברית",
    "العربية",
    "हिन्दी",
    "e\u{301}\u{302}\u{303}",
    "😀 emoji",
    "🦀🦀🦀",
    "👩‍👩‍👧‍👦 family",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "\u{10FFFF}",
    "\u{FFFF}\u{FFFE}",
    "\u{E000} private use",
    "tab\tand\nnewline",
    "\u{7f}\u{1}",
];

/// Ids drawn from a fixed generator over ASCII, Latin-1, the BMP and astral planes.
fn generated(n: usize) -> Vec<String> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|_| {
            let len = 1 + next() % 24;
            (0..len)
                .map(|_| {
                    let r = next();
                    let c = match r % 4 {
                        0 => 0x21 + (r >> 8) % 0x5e,
                        1 => 0xa0 + (r >> 8) % 0x160,
                        2 => 0x3000 + (r >> 8) % 0xa000,
                        _ => 0x1_0000 + (r >> 8) % 0x2_0000,
                    };
                    char::from_u32(c as u32).unwrap_or('?')
                })
                .collect()
        })
        .collect()
}

/// The longest app id the daemon accepts (256 bytes), of characters with large code units.
fn longest() -> Vec<String> {
    vec!["\u{FFFD}".repeat(85), "🦀".repeat(64), "x".repeat(256)]
}

/// Trystero's own picks, per (app id, redundancy or None for a page that sets none).
fn trystero_picks(cases: &[(String, Option<usize>)]) -> Vec<Vec<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        root.join("tests/browser/node_modules/trystero/package.json")
            .exists(),
        "tests/browser/node_modules is missing: run scripts/test.sh (it runs npm ci there)"
    );
    let pinned =
        std::fs::read_to_string(root.join("tests/browser/node_modules/trystero/package.json"))
            .expect("trystero's package.json");
    assert!(
        pinned.contains("\"version\": \"0.25.4\""),
        "the installed trystero is not 0.25.4"
    );
    let mut node = Command::new("node")
        .arg("tests/browser/trystero-relays.mjs")
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs (scripts/test.sh installs Node.js)");
    let input: Vec<(&str, Option<usize>)> = cases.iter().map(|(a, n)| (a.as_str(), *n)).collect();
    node.stdin
        .take()
        .expect("stdin")
        .write_all(&serde_json::to_vec(&input).expect("json"))
        .expect("write to node");
    let out = node.wait_with_output().expect("node output");
    assert!(
        out.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("node prints a JSON array")
}

fn relays_for(app: &str, redundancy: Option<usize>) -> Vec<String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshrtcd"));
    if let Some(n) = redundancy {
        cmd.arg("--relay-redundancy").arg(n.to_string());
    }
    let out = cmd
        .arg("relays-for")
        .arg(app)
        .output()
        .expect("meshrtcd runs");
    assert!(
        out.status.success(),
        "relays-for {app:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn relays_for_an_app_are_the_ones_trystero_picks() {
    let mut cases: Vec<(String, Option<usize>)> = NAMED
        .iter()
        .map(|a| a.to_string())
        .chain(longest())
        .chain(generated(200))
        .map(|a| (a, None))
        .collect();
    // `relayConfig.redundancy` against --relay-redundancy, up to past the list's length.
    for (i, n) in [1, 2, 3, 7, 28, 40].into_iter().enumerate() {
        cases.push((NAMED[i].to_string(), Some(n)));
        cases.push((generated(6)[i].clone(), Some(n)));
    }
    let unicode = cases.iter().filter(|(a, _)| !a.is_ascii()).count();
    let astral = cases
        .iter()
        .filter(|(a, _)| a.chars().any(|c| c.len_utf16() == 2))
        .count();
    assert!(cases.len() >= 200 && unicode >= 100 && astral >= 50);
    let want = trystero_picks(&cases);
    assert_eq!(want.len(), cases.len());
    let mut distinct = std::collections::BTreeSet::new();
    for ((app, n), want) in cases.iter().zip(&want) {
        assert_eq!(
            want.len(),
            n.unwrap_or(5).min(28),
            "trystero's list for {app:?}"
        );
        assert_eq!(&relays_for(app, *n), want, "app {app:?}, redundancy {n:?}");
        distinct.insert(want.clone());
    }
    assert!(
        distinct.len() > 100,
        "the ids should pick many different sets"
    );
    eprintln!(
        "{} app ids ({unicode} non-ASCII, {astral} with astral characters) pick what Trystero 0.25.4 picks",
        cases.len()
    );
}

#[test]
fn configured_relays_are_every_apps() {
    let out = Command::new(env!("CARGO_BIN_EXE_meshrtcd"))
        .args(["--relay", "ws://127.0.0.1:1", "--relay", "ws://127.0.0.1:2"])
        .args(["relays-for", "san_narciso_3d"])
        .output()
        .expect("meshrtcd runs");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ws://127.0.0.1:1\nws://127.0.0.1:2\n"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_meshrtcd"))
        .args(["--relay-redundancy", "0", "relays-for", "x"])
        .output()
        .expect("meshrtcd runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("relay_redundancy"));
}
