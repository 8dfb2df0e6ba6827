#!/usr/bin/env bash
# Builds nudge and runs its main job: replays a day of example shop events
# through the storefront campaign and shows the decisions it makes.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo is not installed; install a Rust toolchain (1.90 or newer) first" >&2
    exit 1
fi

out=target/storefront
cargo build --release --quiet --locked --bin nudge --example generate_events
target/release/examples/generate_events --users 2000 --events 20000 --out "$out"
nudge=target/release/nudge
"$nudge" check examples/storefront/main.nudge
"$nudge" replay examples/storefront/main.nudge --facts "$out/profiles.jsonl" --events "$out/events.jsonl" > "$out/decisions.jsonl"
echo
echo "first decisions (all of them are in $out/decisions.jsonl):"
head -n 8 "$out/decisions.jsonl"
echo
"$nudge" replay examples/storefront/main.nudge --facts "$out/profiles.jsonl" --events "$out/events.jsonl" --summary
