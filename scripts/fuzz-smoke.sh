#!/usr/bin/env bash
# Fuzz smoke test: builds the cargo-fuzz targets in fuzz/, replays each committed corpus
# (fuzz/corpus/<target>/) once, then fuzzes each target for a bounded time (FUZZ_SECONDS,
# default 20) from that corpus, keeping what it finds outside the committed corpus. Exits
# non-zero if any input crashes, panics, leaks, times out or trips AddressSanitizer.
#
# Offline: the test script runs `cargo fetch --manifest-path fuzz/Cargo.toml` first (while a
# registry is reachable); after that, with cargo-fuzz installed, this script needs no network.
# fuzz/ is its own cargo workspace; its target directory is whatever cargo says it is
# (fuzz/target, or $CARGO_TARGET_DIR when that is set), and the replay logs go there.
#
# Env: FUZZ_SANITIZER=address|none (default address), FUZZ_TARGETS="a b" (default: all),
# FUZZ_SECONDS=N (default 20; 0: replay only).
set -euo pipefail
cd "$(dirname "$0")/.."

# cargo-fuzz passes nightly-only flags (-Zsanitizer, -Cpasses=sancov-module, ...); the
# toolchain is stable, so let it accept them.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz"
    CARGO_TARGET_DIR="${TMPDIR:-/tmp}/cargo-fuzz-build" cargo install cargo-fuzz --locked
fi

sanitizer="${FUZZ_SANITIZER:-address}"
seconds="${FUZZ_SECONDS:-20}"
target_dir=$(cargo metadata --manifest-path fuzz/Cargo.toml --format-version 1 --no-deps --offline \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
logs="$target_dir/fuzz-smoke"
mkdir -p "$logs"
targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"

echo "fuzz-smoke: building fuzz targets (sanitizer: $sanitizer)"
cargo fuzz build -s "$sanitizer"

passed=0
failed=0
failures=""
for t in $targets; do
    corpus="fuzz/corpus/$t"
    if [ ! -d "$corpus" ]; then
        echo "fuzz-smoke: $t: no corpus at $corpus"
        failed=$((failed + 1))
        failures="$failures $t"
        continue
    fi
    start=$(date +%s)
    # -runs=0: execute every corpus input once, then stop. -timeout: one input may not hang.
    # Then fuzz for a bounded time; new inputs go to a scratch corpus listed first (libFuzzer
    # writes there), so the committed one stays as it is. A crash lands in fuzz/artifacts/<t>/.
    found="$logs/$t-found"
    rm -rf "$found" && mkdir -p "$found"
    if cargo fuzz run -s "$sanitizer" "$t" "$corpus" -- -runs=0 -timeout=60 >"$logs/$t.log" 2>&1 \
        && { [ "$seconds" = 0 ] || cargo fuzz run -s "$sanitizer" "$t" "$found" "$corpus" -- \
            -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 >>"$logs/$t.log" 2>&1; }; then
        echo "fuzz-smoke: $t ok ($(find "$corpus" -type f | wc -l) inputs replayed, fuzzed ${seconds}s: $(find "$found" -type f | wc -l) new, $(( $(date +%s) - start ))s)"
        passed=$((passed + 1))
    else
        echo "fuzz-smoke: $t FAILED; log tail:"
        tail -n 40 "$logs/$t.log" | sed 's/^/    /'
        failed=$((failed + 1))
        failures="$failures $t"
    fi
done

echo "fuzz-smoke: $passed passed, $failed failed"
if [ "$failed" -ne 0 ]; then
    echo "fuzz-smoke: failing targets:$failures (crash inputs are in fuzz/artifacts/<target>/)"
    exit 1
fi
