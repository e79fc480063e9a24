#!/usr/bin/env bash
# Times the first `cargo run --release -- demo` on a fresh clone, then a second (warm)
# `cde demo`, as the README's two commands would run on a new machine.
#
# Usage: scripts/time-cold-demo.sh
# It removes the images cde made as caches (labels cde.sample, cde.base, cde.empty) so
# that the demo starts from an engine without them, clones HEAD into a temporary folder
# with an empty target directory, and prints the wall times; the demo itself prints the
# time of each of its phases. Crates come from cargo's download cache when they are in it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/cde-cold.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# Newest first, so that images built on a base go before it.
for label in cde.sample=true cde.empty=true cde.base=true; do
    for id in $(docker images -q --filter "label=$label"); do
        docker image rm -f "$id" >/dev/null
    done
done
left="$(docker images -q --filter label=cde.base=true --filter label=cde.sample=true)"
[ -z "$left" ] || { echo "images still there: $left" >&2; exit 1; }
git clone --quiet "$ROOT" "$WORK/cde"
cd "$WORK/cde"
export CDE_DATA_DIR="$WORK/data" CARGO_TARGET_DIR="$WORK/cde/target"
unset CDE_SERVER

since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

start=$EPOCHREALTIME
cargo run --release -- demo
cold=$(since "$start")

start=$EPOCHREALTIME
"$(ls target/*/release/cde)" demo
warm=$(since "$start")

echo "COLD-DEMO cold_secs=$cold warm_secs=$warm"
