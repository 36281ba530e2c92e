#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (FUZZ_SECONDS each, default 20) on a
# scratch copy of its committed seed corpus, and prints how many inputs each ran.
# Installs cargo-fuzz when missing. A crash fails the run and leaves the input in
# fuzz/artifacts/<target>/; turn it into a regular regression test.
set -euo pipefail
cd "$(dirname "$0")"
. ../scripts/deps.sh
peerbox_need_rust
peerbox_need_cargo_tool cargo-fuzz 0.13.2
secs="${FUZZ_SECONDS:-20}"
# cargo fuzz asks for nightly-only compiler flags (sanitizer coverage); the stable
# compiler accepts them with this set. No other toolchain is needed.
export RUSTC_BOOTSTRAP=1
target_dir="${CARGO_TARGET_DIR:-$(pwd)/../target}/fuzz"
total=0
# `seeds` writes the corpora; it is not a target.
for t in $(cargo fuzz list | grep -vx seeds); do
  work="$(mktemp -d)"
  log="$work.log"
  if ! cargo fuzz run --target-dir "$target_dir" "$t" "$work" "corpus/$t" -- \
    -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=2048 >"$log" 2>&1; then
    tail -60 "$log"
    echo "fuzz: target $t failed (the input is in fuzz/artifacts/$t/)" >&2
    exit 1
  fi
  execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)"
  echo "fuzz $t: ${execs:-0} inputs in ${secs} s, no crash"
  total=$((total + ${execs:-0}))
  rm -rf "$work" "$log"
done
echo "fuzz: $total inputs in all, no crash"
