#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine with Rust:
# installs what the tests need, builds once, then runs every test with loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# System packages the suite uses: iproute2 (the private network namespace), Chromium (browser
# tests), Node.js and npm (playwright-core, Trystero).
missing=()
command -v ip >/dev/null || missing+=(iproute2)
command -v unshare >/dev/null || missing+=(util-linux)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# npm packages of the browser tests, exactly as locked. (Run inside the folder: npm 11's `ci`
# does not find the lockfile through --prefix.)
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

# Build everything the tests run while the network is still there.
cargo build --all-targets --locked
cargo test --no-run --locked

# Fuzz targets (cargo-fuzz on the stable toolchain via RUSTC_BOOTSTRAP): install, fetch and
# build now; the suite below replays every committed corpus once.
# (Only for cargo-fuzz: RUSTC_BOOTSTRAP in the main build's environment would rebuild it all.)
cargo fuzz --version >/dev/null 2>&1 || CARGO_TARGET_DIR="${TMPDIR:-/tmp}/cargo-fuzz-build" cargo install cargo-fuzz --locked
cargo fetch --manifest-path fuzz/Cargo.toml
RUSTC_BOOTSTRAP=1 cargo fuzz build -s address

# Run the suite. As root, inside a private network namespace: only loopback exists there,
# so nothing can reach the internet (public relays or STUN would fail fast, not leak).
run_tests='export CARGO_NET_OFFLINE=true; MESHRTC_SKIP_BROWSER=1 cargo test --offline --locked -- --test-threads=2 && scripts/fuzz-smoke.sh'
if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
  unshare -n -- bash -c "ip link set lo up && $run_tests"
else
  echo "note: not root; running without a private network namespace (tests still use loopback only)" >&2
  bash -c "$run_tests"
fi

# The real-browser tests run outside the namespace: Chromium gathers no ICE candidates of its own
# when loopback is the only interface, so two pages could not reach each other there. They
# still stay on 127.0.0.1 (pages, relay, ICE), with Chromium's background networking off.
cargo test --offline --locked --test browser -- --test-threads=1
