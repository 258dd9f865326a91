//! Real-browser tests (headless Debian Chromium via playwright-core), run by `node`.
//!
//! They are `#[ignore]`d so a plain `cargo test` (which runs inside a network namespace with
//! only loopback, where Chromium cannot gather candidates) reports them as ignored rather than
//! passing them silently; `scripts/test.sh` installs Chromium and the npm packages and runs
//! them with `cargo test --test browser -- --ignored`. Nothing can turn that run green without
//! running them.

use std::process::Command;

fn run_browser_suite(script: &str) {
    let root = env!("CARGO_MANIFEST_DIR");
    assert!(
        std::path::Path::new(root)
            .join("tests/browser/node_modules/playwright-core")
            .exists(),
        "tests/browser/node_modules is missing: run scripts/test.sh (it runs npm ci there)"
    );
    let out = Command::new("node")
        .arg(format!("tests/browser/{script}"))
        .current_dir(root)
        .env("MESHRTCD", env!("CARGO_BIN_EXE_meshrtcd"))
        .env("MESHRTC", env!("CARGO_BIN_EXE_meshrtc"))
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{script} failed:\n{stdout}");
}

#[test]
#[ignore = "real Chromium; scripts/test.sh runs it with --ignored"]
fn browser_bridge_pages_share_the_node() {
    run_browser_suite("bridge.mjs");
}

#[test]
#[ignore = "real Chromium; scripts/test.sh runs it with --ignored"]
fn trystero_pages_share_rooms_with_daemons() {
    run_browser_suite("interop.mjs");
}

#[test]
#[ignore = "real Chromium; scripts/test.sh runs it with --ignored"]
fn hostile_page_garbage_is_dropped_and_counted() {
    run_browser_suite("hostile.mjs");
}

#[test]
#[ignore = "real Chromium; scripts/test.sh runs it with --ignored"]
fn pages_behind_mdns_host_names_join_a_daemon_that_resolves_them() {
    run_browser_suite("mdns.mjs");
}

#[test]
#[ignore = "real Chromium; scripts/test.sh runs it with --ignored"]
fn trystero_pages_exchange_media_with_daemons() {
    run_browser_suite("media.mjs");
}

#[test]
#[ignore = "real Chromium; scripts/test.sh runs it with --ignored"]
fn pages_send_media_to_each_other_through_their_daemons() {
    run_browser_suite("bridge-media.mjs");
}

#[test]
#[ignore = "real Chromium; scripts/test.sh runs it with --ignored"]
fn a_relay_only_trystero_page_joins_through_coturn() {
    run_browser_suite("turn.mjs");
}

#[test]
#[ignore = "real Chromium; scripts/test.sh runs it with --ignored"]
fn a_recorded_webm_plays_in_chromium() {
    run_browser_suite("webm-playback.mjs");
}
