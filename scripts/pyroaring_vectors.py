#!/usr/bin/env python3
"""Writes the Roaring interop vectors of nudge-core's audience tests.

Each vector is a bitmap built by pyroaring (CRoaring inside) and saved in the
portable serialization format, so the Rust tests can check that nudge reads
what another implementation wrote, and writes the same bytes for the same set.

Usage (the tests skip the interop check when the files are absent):

    python3 -m venv /tmp/pyroaring-venv
    /tmp/pyroaring-venv/bin/pip install pyroaring
    /tmp/pyroaring-venv/bin/python scripts/pyroaring_vectors.py

The sets are defined by formulas, repeated in
crates/core/tests/primitives_audience.rs (`pyroaring_sets`): change both
together.
"""

from pathlib import Path

import pyroaring
from pyroaring import BitMap

OUT = Path(__file__).resolve().parent.parent / "crates" / "core" / "tests" / "data"


def sets():
    """Name, members, and whether to run-compress before saving."""
    return [
        # No containers at all.
        ("empty", [], False),
        # Array containers in several high halves, up to the largest u32.
        ("sparse", [0, 1, 2, 3, 1000, 65535, 65536, 1 << 20, 4_000_000_000, (1 << 32) - 1], False),
        # A bitmap container (more than 4096 members under one high half).
        ("dense", list(range(0, 100_000, 2)), False),
        # Run containers, after run compression.
        ("runs", list(range(10, 5_000)) + list(range(70_000, 140_000)), True),
        # All three kinds of container in one bitmap.
        (
            "mixed",
            list(range(0, 65_536, 3)) + list(range(65_536, 65_536 + 20_000)) + [200_000, 300_000, 400_000],
            True,
        ),
    ]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    manifest = [
        "# Roaring portable bitmaps written by pyroaring " + pyroaring.__version__ + ".",
        "# Made by scripts/pyroaring_vectors.py; columns: file, members, run-compressed.",
    ]
    for name, members, runs in sets():
        bitmap = BitMap(members)
        if runs:
            bitmap.run_optimize()
        path = OUT / f"pyroaring_{name}.bin"
        path.write_bytes(bitmap.serialize())
        manifest.append(f"{path.name}\t{len(bitmap)}\t{'yes' if runs else 'no'}")
    (OUT / "pyroaring_vectors.tsv").write_text("\n".join(manifest) + "\n")


if __name__ == "__main__":
    main()
