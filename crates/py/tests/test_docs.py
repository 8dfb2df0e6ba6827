"""The Python of docs/python.md and of the README's quick start runs as
written, and prints what the page shows after it."""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import types

import pytest

from conftest import ROOT

FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)


def blocks(text):
    """(language, code, the text block right after it or None)."""
    found = [(m.group(1), m.group(2), m.start(), m.end()) for m in FENCE.finditer(text)]
    out = []
    for i, (lang, code, _, end) in enumerate(found):
        if lang != "python":
            continue
        expected = None
        if i + 1 < len(found):
            nlang, ncode, nstart, _ = found[i + 1]
            if nlang == "text" and text[end:nstart].strip() == "":
                expected = ncode
        out.append((code, expected))
    return out


def run_page(text, name):
    # A module of its own, as a script would have (dataclasses need one).
    module = types.ModuleType("docs_page")
    sys.modules[module.__name__] = module
    namespace = module.__dict__
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        for n, (code, expected) in enumerate(blocks(text)):
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(code, f"{name} block {n + 1}", "exec"), namespace)  # noqa: S102
            if expected is not None:
                assert out.getvalue() == expected, f"{name} block {n + 1} printed:\n{out.getvalue()}"
    finally:
        os.chdir(cwd)
        del sys.modules[module.__name__]


def test_the_python_guide():
    text = (ROOT / "docs" / "python.md").read_text()
    assert len(blocks(text)) >= 8
    run_page(text, "docs/python.md")


def test_the_readme_quick_start():
    readme = (ROOT / "README.md").read_text()
    if "## Python quick start" not in readme:
        pytest.skip("the README has no Python quick start")
    section = readme.split("## Python quick start", 1)[1].split("\n## ", 1)[0]
    [(code, expected)] = blocks(section)
    assert len(code.strip().splitlines()) <= 10
    assert expected is not None
    run_page(section, "README.md")
