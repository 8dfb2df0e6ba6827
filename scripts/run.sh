#!/usr/bin/env bash
# Builds nudge and runs its main job: replays the example campaign (every
# marketing primitive, with the suppressed decisions and their reasons), then
# a day of generated shop events through the storefront campaign.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo is not installed; install a Rust toolchain (1.90 or newer) first" >&2
    exit 1
fi

cargo build --release --quiet --locked --bin nudge --example generate_events
nudge=target/release/nudge

echo "== the example campaign (examples/campaign), decision by decision"
"$nudge" check examples/campaign/main.nudge
"$nudge" replay examples/campaign/main.nudge --events examples/campaign/events.jsonl > target/campaign-decisions.jsonl
if command -v python3 >/dev/null 2>&1; then
    python3 scripts/show_decisions.py < target/campaign-decisions.jsonl
else
    cat target/campaign-decisions.jsonl
fi
echo
"$nudge" replay examples/campaign/main.nudge --events examples/campaign/events.jsonl --summary
echo
echo "== a day of generated events through the storefront campaign (examples/storefront)"
out=target/storefront
target/release/examples/generate_events --users 2000 --events 20000 --out "$out"
"$nudge" check examples/storefront/main.nudge
"$nudge" replay examples/storefront/main.nudge --facts "$out/profiles.jsonl" --events "$out/events.jsonl" > "$out/decisions.jsonl"
echo
echo "first decisions (all of them are in $out/decisions.jsonl):"
head -n 8 "$out/decisions.jsonl"
echo
"$nudge" replay examples/storefront/main.nudge --facts "$out/profiles.jsonl" --events "$out/events.jsonl" --summary
