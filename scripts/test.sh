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

step "services the tests start"
# The state store's Redis scripts are checked against a private redis-server
# that the test starts on a loopback port.
if ! command -v redis-server >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    else
        echo "error: redis-server is not installed (apt-get install redis-server)" >&2
        exit 1
    fi
fi
redis-server --version

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

step "python bindings"
# A virtual environment under target/, the package built from crates/py and
# installed into it (release mode), then its test suite.
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; then
    echo "error: the Python bindings need python3, version 3.9 or newer" >&2
    exit 1
fi
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    else
        echo "error: python3 cannot make virtual environments; install python3-venv" >&2
        exit 1
    fi
fi
pyenv=target/pyenv
"$pyenv/bin/python" -c '' 2>/dev/null || python3 -m venv --clear "$pyenv"
pip=("$pyenv/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install -r scripts/test-requirements.txt
# The build backend runs the venv's maturin: put it first on the PATH.
PATH="$PWD/$pyenv/bin:$PATH" "${pip[@]}" install --no-build-isolation --force-reinstall --no-deps ./crates/py
"$pyenv/bin/python" -m pytest -q -p no:cacheprovider crates/py/tests

echo
echo "all checks passed"
