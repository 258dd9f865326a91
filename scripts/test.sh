#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine with Rust:
# installs what the tests need, builds once, then runs every test with loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."

# Variables that narrow the suite (one fault schedule instead of 200, some fuzz targets, no
# sanitizer, pytest options) are for a developer's own runs: a leftover one must not quietly
# shrink this one. A cross-compiling CARGO_BUILD_TARGET would put the binaries elsewhere.
unset MESHRTC_HARNESS_SEED FUZZ_TARGETS FUZZ_SANITIZER FUZZ_SECONDS MESHRTC_SKIP_BROWSER PYTEST_ADDOPTS \
  CARGO_BUILD_TARGET

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# System packages the suite uses: iproute2 (network namespaces), nftables (the mDNS test's
# stateful filter, the NAT test's routers), Chromium (browser tests), Node.js and npm
# (playwright-core, Trystero), ffmpeg (media made for the media tests and checked with
# ffprobe), coturn (the TURN server of the TURN and NAT tests), openssl (the TURN-over-TLS
# test's certificates), Python with venv (the Python client's tests).
missing=()
command -v ip >/dev/null || missing+=(iproute2)
command -v nft >/dev/null || missing+=(nftables)
command -v unshare >/dev/null || missing+=(util-linux)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
{ command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null; } || missing+=(ffmpeg)
command -v turnserver >/dev/null || missing+=(coturn)
command -v openssl >/dev/null || missing+=(openssl)
# Python ≥ 3.10 with venv (the Python client's tests run in a virtual environment).
python3 -c 'import sys, venv, ensurepip; assert sys.version_info >= (3, 10)' 2>/dev/null \
  || missing+=(python3 python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  # The tests start their own turnserver; the package's service is not wanted running.
  if [[ " ${missing[*]} " == *" coturn "* ]] && command -v systemctl >/dev/null \
    && systemctl is-active --quiet coturn 2>/dev/null; then
    as_root systemctl disable --now coturn || true
  fi
fi

# npm packages of the browser tests, exactly as locked. (Run inside the folder: npm 11's `ci`
# does not find the lockfile through --prefix.)
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

# The Python client and what its tests use, exactly as pinned, in a local virtual environment.
python3 -m venv clients/python/.venv
clients/python/.venv/bin/pip install -q --disable-pip-version-check \
  -r clients/python/requirements-test.txt ./clients/python

# Build everything the tests run while the network is still there.
cargo build --all-targets --locked
cargo test --no-run --locked
# The engine's SCTP and ICE as patched here (vendor/*/PATCH.md), with the crates' own tests.
cargo test --manifest-path vendor/rtc-sctp/Cargo.toml --lib --no-run --locked
cargo test --manifest-path vendor/rtc-ice/Cargo.toml --lib --no-run --locked

# Fuzz targets (cargo-fuzz on the stable toolchain via RUSTC_BOOTSTRAP): install, fetch and
# build now; the suite below replays every committed corpus once and fuzzes each target 20 s.
# (Only for cargo-fuzz: RUSTC_BOOTSTRAP in the main build's environment would rebuild it all.)
cargo fuzz --version >/dev/null 2>&1 || CARGO_TARGET_DIR="${TMPDIR:-/tmp}/cargo-fuzz-build" cargo install cargo-fuzz --locked
cargo fetch --manifest-path fuzz/Cargo.toml
RUSTC_BOOTSTRAP=1 cargo fuzz build -s address

# Run the suite in four parts; a failing part does not hide the others, and the script fails
# at the end if any did.
failed=()
part() {
  local name=$1; shift
  local start=$SECONDS
  echo "=== $name"
  if "$@"; then
    echo "=== $name: ok ($((SECONDS - start)) s)"
  else
    echo "=== $name: FAILED ($((SECONDS - start)) s)"
    failed+=("$name")
  fi
}

# 1. Rust tests, as root inside a private network namespace: only loopback exists there, so
#    nothing can reach the internet (public relays or STUN would fail fast, not leak). The
#    real-browser tests are #[ignore]d here (reported as ignored) and run in part 3.
rust_tests='export CARGO_NET_OFFLINE=true; status=0
  cargo test --offline --locked --no-fail-fast -- --test-threads=2 || status=1
  cargo test --manifest-path vendor/rtc-sctp/Cargo.toml --offline --locked --lib -q || status=1
  cargo test --manifest-path vendor/rtc-ice/Cargo.toml --offline --locked --lib -q || status=1
  exit $status'
if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
  part "rust tests (private network namespace)" unshare -n -- bash -c "ip link set lo up && $rust_tests"
else
  echo "note: not root; running without a private network namespace (tests still use loopback only)" >&2
  part "rust tests" bash -c "$rust_tests"
fi

# 2. Every committed fuzz corpus replayed once under AddressSanitizer, then each target fuzzed
#    for 20 s.
part "fuzz corpus replay" scripts/fuzz-smoke.sh

# 3. The real-browser tests run outside the namespace: Chromium gathers no ICE candidates of its
#    own when loopback is the only interface, so two pages could not reach each other there.
#    They still stay on 127.0.0.1 (pages, relay, ICE), with Chromium's background networking
#    off. `--ignored` runs exactly the browser tests; no variable can skip them.
part "real-browser tests" env -u MESHRTC_SKIP_BROWSER cargo test --offline --locked --test browser -- --ignored --test-threads=1 --nocapture

# 4. The Python client against real daemons (and its stubs against proto/), loopback only. The
#    daemon is the one just built, wherever cargo put it ($CARGO_TARGET_DIR or target/).
target_dir=$(cargo metadata --format-version 1 --no-deps --offline \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
export MESHRTCD="$target_dir/debug/meshrtcd"
py_tests='cd clients/python && .venv/bin/python -m pytest -q -p no:cacheprovider'
if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
  part "python client tests (private network namespace)" unshare -n -- bash -c "ip link set lo up && $py_tests"
else
  part "python client tests" bash -c "$py_tests"
fi

passed=$((4 - ${#failed[@]}))
if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}"
  echo "parts: $passed passed, ${#failed[@]} failed"
  exit 1
fi
echo "parts: $passed passed, 0 failed"
