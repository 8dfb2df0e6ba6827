"""The type stubs of the native module match it (mypy's stubtest)."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_stubs_match_the_native_module(tmp_path):
    pytest.importorskip("mypy")
    done = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "nudge._native"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_package_is_typed():
    pytest.importorskip("mypy")
    import nudge

    pkg = __import__("pathlib").Path(nudge.__file__).parent
    assert (pkg / "py.typed").exists()
    assert (pkg / "_native.pyi").exists()


def test_everything_public_has_a_docstring():
    import nudge

    assert nudge.__doc__
    for name in nudge.__all__:
        obj = getattr(nudge, name)
        if name == "__version__":
            continue
        assert (obj.__doc__ or "").strip(), name
        if isinstance(obj, type) and obj.__module__ == "nudge._native":
            for attr, value in vars(obj).items():
                if not attr.startswith("_"):
                    assert (getattr(value, "__doc__", None) or "").strip(), f"{name}.{attr}"
