#!/usr/bin/env bash
# Media soak, outside the test command (BENCHMARKS.md, "Media soak"): N runs (default 100) of
# 16 tracks added at once on a link that just came up (tests/media.rs), and N runs of the demo
# page's camera test in headless Chromium (tests/browser/bridge-media.mjs). Prints each miss and
# the totals. Needs what scripts/test.sh installs; builds the tests once.
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-100}
test_bin=$(cargo test --profile dev --test media --no-run --message-format=json 2>/dev/null |
  grep '"kind":\["test"\]' | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
cargo build --profile dev --bins -q
target=${CARGO_TARGET_DIR:-target}
export MESHRTCD="$target/debug/meshrtcd" MESHRTC="$target/debug/meshrtc"
[ -x "$test_bin" ] || { echo "no media test binary"; exit 1; }

tracks_missed=0
start=$(date +%s)
for i in $(seq 1 "$runs"); do
  if ! out=$("$test_bin" --exact sixteen_tracks_added_at_once_on_a_link_that_just_came_up_all_surface 2>&1); then
    tracks_missed=$((tracks_missed + 1))
    echo "16 tracks, run $i: MISSED"
    echo "$out" | grep -m3 "never surfaced\|panicked"
  fi
done
tracks_secs=$(( $(date +%s) - start ))

camera_missed=0
start=$(date +%s)
for i in $(seq 1 "$runs"); do
  if ! out=$(node tests/browser/bridge-media.mjs "the demo page" 2>&1); then
    camera_missed=$((camera_missed + 1))
    echo "demo camera, run $i: MISSED"
    echo "$out" | grep -m5 "not ok\|leg\|Error"
  fi
done
camera_secs=$(( $(date +%s) - start ))

echo "16 tracks at once on a fresh link: $((runs - tracks_missed))/$runs all surfaced (${tracks_secs} s)"
echo "demo page camera: $((runs - camera_missed))/$runs played audio and video in the tile (${camera_secs} s)"
[ "$tracks_missed" = 0 ] && [ "$camera_missed" = 0 ]
