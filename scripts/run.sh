#!/usr/bin/env bash
# Builds nudge and runs its main job on the example campaign.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo is not installed; install a Rust toolchain (1.90 or newer) first" >&2
    exit 1
fi

cargo build --release --quiet --locked --bin nudge
exec target/release/nudge check examples/campaign/main.nudge "$@"
