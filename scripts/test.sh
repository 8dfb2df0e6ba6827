#!/usr/bin/env bash
# Sets up and runs every check of nudge: formatting, lints, unit, property,
# snapshot and doc tests, docs, and the example rule files.
# Needs a Rust toolchain (cargo, rustfmt, clippy); everything else it installs.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo is not installed; install a Rust toolchain (1.90 or newer) first" >&2
    exit 1
fi

step() { printf '\n==> %s\n' "$*"; }

step "format"
cargo fmt --all -- --check

step "lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
cargo test --workspace --locked

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

step "example rule files are checked and formatted"
cargo build --quiet --locked --bin nudge
nudge=target/debug/nudge
"$nudge" check examples/campaign/main.nudge
for f in examples/scenarios/s*.nudge; do
    "$nudge" check "$f" >/dev/null || { echo "error: $f does not check" >&2; exit 1; }
done
echo "ok: $(ls examples/scenarios/s*.nudge | wc -l) scenario files check"
"$nudge" fmt --check examples/campaign/*.nudge examples/scenarios/*.nudge

echo
echo "all checks passed"
