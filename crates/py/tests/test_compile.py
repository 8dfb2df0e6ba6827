"""Compiling rules, and the errors of rule text."""

from __future__ import annotations

import pickle
import textwrap

import pytest

import nudge
from conftest import ROOT, SHOP


def test_compile_gives_a_ruleset(shop):
    assert shop.rule_names == ["big_order", "unpaid_order_sms", "gold_member"]
    assert shop.types["order_created"] == {
        "user_id": "string",
        "order_id": "string",
        "amount": "float",
        "created_at": "timestamp",
    }
    assert shop.types["profile"]["tier"] == "int?"
    assert shop.types["profile"]["tags"] == "list<string>"
    assert sorted(shop.event_types) == ["order_created", "order_paid"]
    assert repr(shop) == "<nudge.Ruleset: 3 rules, 3 types>"


def test_compile_files_reads_includes(tmp_path):
    (tmp_path / "types.nudge").write_text("event ping { key user_id: string }\n")
    (tmp_path / "main.nudge").write_text(
        'include "types.nudge"\n'
        "rule pong { when p: ping() then message(channel: \"push\", template: \"t\", user: p.user_id) }\n"
    )
    rules = nudge.compile_files([tmp_path / "main.nudge"])
    assert rules.rule_names == ["pong"]
    # Paths as str work too.
    assert nudge.compile_files([str(tmp_path / "main.nudge")]).rule_names == ["pong"]


def test_compile_files_of_the_examples():
    rules = nudge.compile_files([ROOT / "examples" / "campaign" / "main.nudge"])
    assert len(rules.rule_names) > 5


def test_compile_files_needs_a_path():
    with pytest.raises(ValueError):
        nudge.compile_files([])


def test_a_syntax_error_is_a_rule_syntax_error():
    text = "event order_paid { key user_id: string }\nrule r {\n    when o: order_paid(\n}\n"
    with pytest.raises(nudge.RuleSyntaxError) as info:
        nudge.compile(text, filename="broken.nudge")
    e = info.value
    assert isinstance(e, nudge.RuleError)
    assert isinstance(e, nudge.NudgeError)
    assert isinstance(e, ValueError)
    assert e.code == "E001"
    assert e.file == "broken.nudge"
    assert (e.line, e.column) == (4, 1)
    assert "broken.nudge:4:1" in str(e)
    assert "^" in str(e), "the message renders the line with a caret"
    [d] = e.diagnostics
    assert isinstance(d, nudge.Diagnostic)
    assert d.kind == "syntax"
    assert d.code == "E001"
    assert "broken.nudge:4:1" in str(d)
    assert repr(d).startswith("Diagnostic(E001 at broken.nudge:4:1")


def test_a_bad_literal_is_a_syntax_error():
    text = "event e { key user_id: string  n: int }\nrule r { when x: e(n > 99999999999999999999) then message(channel: \"a\", template: \"b\", user: x.user_id) }\n"
    with pytest.raises(nudge.RuleSyntaxError) as info:
        nudge.compile(text)
    assert info.value.code == "E002"


def test_an_unreadable_include_is_a_syntax_error(tmp_path):
    main = tmp_path / "main.nudge"
    main.write_text('include "missing.nudge"\n')
    with pytest.raises(nudge.RuleSyntaxError) as info:
        nudge.compile_files([main])
    assert info.value.code == "E003"
    with pytest.raises(nudge.RuleSyntaxError) as info:
        nudge.compile_files([tmp_path / "nowhere.nudge"])
    assert info.value.code == "E003"


def test_a_type_error_carries_every_diagnostic():
    text = SHOP.replace("amount > 100", "amout > 100").replace(
        "p: profile(user_id == o.user_id)", "p: profle(user_id == o.user_id)"
    )
    with pytest.raises(nudge.RuleTypeError) as info:
        nudge.compile(text, filename="shop.nudge")
    e = info.value
    assert not isinstance(e, nudge.RuleSyntaxError)
    codes = [d.code for d in e.diagnostics]
    assert "E006" in codes and "E005" in codes
    first = e.diagnostics[0]
    assert (e.file, e.line, e.column, e.code) == (first.file, first.line, first.column, first.code)
    unknown_field = next(d for d in e.diagnostics if d.code == "E006")
    assert unknown_field.kind == "unknown_field"
    assert unknown_field.help == "did you mean `amount`?"
    assert unknown_field.message == "`order_created` has no field `amout`"
    line = SHOP.splitlines().index("        o: order_created(amount > 100)") + 1
    assert (unknown_field.line, unknown_field.column) == (line, 26)
    assert unknown_field.end_column == 31
    # The message is every diagnostic rendered.
    for d in e.diagnostics:
        assert d.message in str(e)


@pytest.mark.parametrize(
    "code, text",
    [
        ("E004", "event a { key u: string }\nevent a { key u: string }"),
        ("E007", "event a { key u: string }\nrule r { when x: a(u in audience nobody) then message(channel: \"c\", template: \"t\", user: x.u) }"),
        ("E009", "event a { key u: string  n: int }\nrule r { when x: a(n == \"one\") then message(channel: \"c\", template: \"t\", user: x.u) }"),
        ("E010", "event a { key u: string }\nrule r { when x: a() then launch(user: x.u) }"),
        ("E011", "event a { key u: string }\nrule r { when x: a() then message(channel: \"c\", user: x.u) }"),
        ("E015", "audience a = b\naudience b = a"),
    ],
)
def test_every_checking_code_is_a_type_error(code, text):
    with pytest.raises(nudge.RuleTypeError) as info:
        nudge.compile(text)
    assert info.value.code == code, [str(d) for d in info.value.diagnostics]


def test_syntax_wins_when_both_kinds_are_present(tmp_path):
    (tmp_path / "bad_types.nudge").write_text("event a { key u: strng }\n")
    (tmp_path / "bad_syntax.nudge").write_text("rule {\n")
    with pytest.raises(nudge.RuleSyntaxError) as info:
        nudge.compile_files([tmp_path / "bad_types.nudge", tmp_path / "bad_syntax.nudge"])
    e = info.value
    assert e.code == "E001"
    assert e.file.endswith("bad_syntax.nudge")


def test_error_classes():
    assert issubclass(nudge.CompileError, nudge.NudgeError)
    assert issubclass(nudge.LateEventError, nudge.FactError)
    assert issubclass(nudge.NoSuchFactError, LookupError)
    assert issubclass(nudge.ClockError, nudge.SessionError)
    assert issubclass(nudge.SnapshotError, ValueError)
    e = nudge.CompileError("x")
    assert e.decisions == [] and e.index is None


def test_a_ruleset_is_shareable_and_not_mutable(shop):
    with pytest.raises(AttributeError):
        shop.rule_names = []  # type: ignore[misc]
    with pytest.raises((TypeError, pickle.PicklingError)):
        pickle.dumps(shop)


def test_the_quick_start_of_the_package_docstring():
    doc = nudge.__doc__
    code = textwrap.dedent(doc.split("::", 1)[1].split("See ``docs", 1)[0])
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 - the example of the docstring


def test_version():
    assert nudge.__version__.count(".") == 2
