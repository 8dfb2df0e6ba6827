"""Wrong types everywhere: every call refuses them with TypeError,
ValueError or a NudgeError naming what is wrong, and nothing crashes."""

from __future__ import annotations

import datetime as dt
import decimal
import fractions
import itertools
import math

import pytest

import nudge

RULES = """
event e {
    key user_id: string
    s: string
    i: int
    f: float
    b: bool
    t: timestamp
    d: duration
    l: list<string>
    o: string?
}
function fn(x: string) -> int
audience vip
event c { key user_id: string }
context feats for c { level: int? }
fact p { key user_id: string  phone: string? }
rule r {
    when x: e(i > 1, x.user_id in audience vip, fn(x.s) > 0)
    then message(channel: "c", template: "t", user: x.user_id)
}
"""

VALID = {
    "user_id": "u1",
    "s": "x",
    "i": 2,
    "f": 1.5,
    "b": True,
    "t": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    "d": dt.timedelta(minutes=5),
    "l": ["a"],
    "o": None,
}


class Boom(Exception):
    """Raised by the test's own objects: passes through unchanged."""


class Weird:
    def __repr__(self):
        raise Boom("no repr for you")


class BadIter:
    def __iter__(self):
        raise Boom("cannot iterate")


def bad_gen():
    yield VALID
    raise KeyError("generator failed")


WEIRD = [
    None,
    True,
    0,
    -1,
    2**64,
    -(2**70),
    1.5,
    math.nan,
    math.inf,
    "",
    "x",
    "10m",
    "2026-11-22T10:00:00Z",
    "\ud800",
    b"bytes",
    bytearray(b"x"),
    [],
    [1],
    ["a", 2],
    ("a",),
    {},
    {"a": 1},
    {1: 2},
    {"a", "b"},
    object(),
    Weird(),
    BadIter(),
    dt.date(2026, 1, 1),
    dt.datetime(1, 1, 1),
    dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc),
    dt.timedelta(days=999_999_999),
    dt.timedelta(days=-999_999_999),
    dt.time(10, 0),
    decimal.Decimal("1.5"),
    fractions.Fraction(1, 3),
    1 + 2j,
    print,
    type,
    Exception("x"),
    "x" * 100_000,
]

ALLOWED = (TypeError, ValueError, nudge.NudgeError, LookupError, OverflowError, Boom)


def attempt(f, *args, **kwargs):
    """Calls f; an exception must be one of ALLOWED. Returns it, or None."""
    try:
        f(*args, **kwargs)
    except ALLOWED as e:
        return e
    return None


@pytest.fixture(scope="module")
def rules():
    return nudge.compile(RULES)


def test_every_field_with_every_value(rules):
    s = rules.session(lateness="1000000d")
    s.register_function("fn", lambda x: 1)
    for field, value in itertools.product(VALID, WEIRD):
        e = attempt(s.insert, "e", {**VALID, field: value})
        if isinstance(e, (TypeError, ValueError)) and not isinstance(e, nudge.NudgeError):
            assert f"`{field}`" in str(e), (field, value, e)
            assert "`e`" in str(e), (field, value, e)
    assert s.fact_count > 0
    s.fire()


def test_every_argument_of_every_call(rules):
    s = rules.session()
    s.register_function("fn", lambda x: 1)
    fid = s.insert("e", VALID, ref="ok")
    for w in WEIRD:
        attempt(s.insert, w, VALID)
        attempt(s.insert, "e", w)
        attempt(s.insert, "e", VALID, w)
        attempt(s.insert_many, w, [VALID])
        attempt(s.insert_many, "e", w)
        attempt(s.insert_many, "e", [w])
        attempt(s.modify, w, s="y")
        attempt(s.modify, fid, w)
        attempt(s.modify, fid, i=w)
        attempt(s.modify, "ok", {"nope": w})
        attempt(s.retract, w)
        attempt(s.fact, w)
        attempt(s.facts, w)
        attempt(s.advance_to, w)
        attempt(s.advance_by, w)
        attempt(s.run, w)
        attempt(s.run, [w])
        attempt(s.run, [(w, w)])
        attempt(s.run, [("e", w)])
        attempt(s.replay, w)
        attempt(s.replay, [w])
        attempt(s.replay, [{"insert": w}])
        attempt(s.replay, [{"insert": "e", "fields": w}])
        attempt(s.replay, [{"modify": w, "fields": {"s": "z"}}])
        attempt(s.replay, [{"modify": "ok", "fields": w}])
        attempt(s.replay, [{"retract": w}])
        attempt(s.replay, [{"advance": w}])
        attempt(s.replay, [{"at": w, "advance": "1s"}])
        attempt(s.replay, [{"insert": "e", "fields": VALID, "ref": w}])
        attempt(s.set_audience, w, ["u1"])
        attempt(s.set_audience, "vip", w)
        attempt(s.set_audience_bytes, w, b"")
        attempt(s.set_audience_bytes, "vip", w)
        attempt(s.set_audience_bytes, "vip", b"", format=w)
        attempt(s.audience_bytes, w)
        attempt(s.audience_bytes, "vip", format=w)
        attempt(s.ids.index, w)
        attempt(s.ids.id, w)
        attempt(s.ids.intern, w)
        attempt(s.ids.intern_many, w)
        attempt(s.ids.intern_many, [w])
        attempt(lambda: w in s.ids)
        attempt(s.register_function, w, lambda x: 1)
        attempt(s.register_function, "fn", w)
        attempt(s.register_provider, w, lambda f: {})
        attempt(s.register_provider, "feats", w)
        attempt(s.set_reachable, w, "c", True)
        attempt(s.set_reachable, "u2", w, True)
        attempt(s.set_reachable, "u2", "c", w)
        attempt(s.set_opted_out, w, "c", True)
        attempt(s.set_opted_out, "u2", w, True)
        attempt(s.set_opted_out, "u2", "c", w)
        attempt(s.set_channel_address, w, "p", "phone")
        attempt(s.set_channel_address, "sms", w, "phone")
        attempt(s.set_channel_address, "sms", "p", w)
        attempt(s.replay, [{"audience": w, "members": ["u1"]}])
        attempt(s.replay, [{"audience": "vip", "members": w}])
        attempt(s.replay, [{"context": w, "key": "u1", "values": {}}])
        attempt(s.replay, [{"context": "feats", "key": w, "values": {}}])
        attempt(s.replay, [{"context": "feats", "key": "u1", "values": w}])
        attempt(s.replay, [{"context": "feats", "key": "u1", "values": {"level": w}}])
        attempt(s.replay, [{"reach": w}])
        attempt(s.replay, [{"reach": {"user": w, "channel": "c", "reachable": True}}])
        attempt(s.replay, [{"reach": {"user": "u2", "channel": w, "opted_out": True}}])
        attempt(s.replay, [{"reach": {"user": "u2", "channel": "c", "reachable": w}}])
        attempt(s.replay, [{"address": w, "field": "p.phone"}])
        attempt(s.replay, [{"address": "sms", "field": w}])
        attempt(nudge.Session.restore, rules, w)
        attempt(s.load_snapshot, w)
        attempt(nudge.Session.restore, w, b"")
        attempt(rules.session, lateness=w)
        attempt(rules.session, clock=w)
        attempt(rules.session, late=w)
        attempt(rules.session, max_firings=w)
        attempt(nudge.Session, w)
        attempt(nudge.compile, w)
        attempt(nudge.compile, "", filename=w)
        attempt(nudge.compile_files, w)
        attempt(nudge.compile_files, [w])
    # Everything refused left the session working.
    s.register_function("fn", lambda x: 1)
    s.set_audience("vip", ["u1"])
    s.insert("e", VALID)
    assert [d.rule for d in s.fire()][-1:] == ["r"]


def test_batches_that_fail_while_iterating(rules):
    s = rules.session()
    e = attempt(s.insert_many, "e", bad_gen())
    assert isinstance(e, LookupError)
    assert e.index == 1
    assert attempt(s.run, BadIter()) is not None
    assert attempt(s.replay, BadIter()) is not None


def test_callables_that_answer_anything(rules):
    for w in WEIRD + [lambda: 1, 10**30]:
        s = rules.session()
        s.set_audience("vip", ["u1"])
        s.register_function("fn", lambda x, w=w: w)
        s.register_provider("feats", lambda f, w=w: w)
        e = attempt(s.run, [("e", VALID)])
        assert e is None or isinstance(e, nudge.CallbackError), (w, e)
        e = attempt(s.run, [("c", {"user_id": "u1"})])
        assert e is None or isinstance(e, nudge.CallbackError), (w, e)
        e = attempt(s.insert, "c", {"user_id": "u1"})
        assert e is None or isinstance(e, nudge.CallbackError), (w, e)


def test_rule_text_of_any_shape():
    texts = [
        "",
        "rule",
        "(" * 10_000,
        "rule r { when " + "(" * 5_000 + " then }",
        "event e { key u: string }\nrule r { when x: e(" + " and ".join(["u == \"a\""] * 3000) + ") then message(channel: \"c\", template: \"t\", user: x.u) }",
        "\x00\x01\x02",
        "event 🎉 { }",
        "include \"/dev/null\"",
        "include \"/nonexistent/file.nudge\"",
        "\ufeffevent e { key u: string }",
    ]
    for t in texts:
        e = attempt(nudge.compile, t)
        assert e is None or isinstance(e, nudge.RuleError), (t[:40], e)
