//! Real-browser tests (headless Debian Chromium via playwright-core), run by `node`.
//!
//! `scripts/test.sh` installs Chromium and the npm packages; set MESHRTC_SKIP_BROWSER=1 to skip
//! on a machine without them.

use std::process::Command;

fn run_browser_suite(script: &str) {
    if std::env::var_os("MESHRTC_SKIP_BROWSER").is_some() {
        eprintln!("MESHRTC_SKIP_BROWSER set: skipping {script}");
        return;
    }
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
fn browser_bridge_pages_share_the_node() {
    run_browser_suite("bridge.mjs");
}

#[test]
fn trystero_pages_share_rooms_with_daemons() {
    run_browser_suite("interop.mjs");
}

#[test]
fn hostile_page_garbage_is_dropped_and_counted() {
    run_browser_suite("hostile.mjs");
}
