"""Time: the pseudo clock, absences, lateness, and replays of the
examples, checked against the same expected decisions as the Rust tests."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

import nudge
from conftest import ROOT, rules_of

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def order(order_id, user="u1", amount=50.0, at=T0):
    return {"user_id": user, "order_id": order_id, "amount": amount, "created_at": at}


def test_an_absence_is_decided_when_its_window_has_passed(shop):
    s = shop.session()
    assert s.now == dt.datetime(1970, 1, 1, tzinfo=UTC)
    assert s.advance_to(T0) == []
    s.insert("profile", {"user_id": "u1", "name": "Ann", "tags": []})
    s.insert("order_created", order("o1"))
    s.insert("order_created", order("o2"))
    assert s.fire() == []
    s.advance_by("5m")
    s.insert("order_paid", {"user_id": "u1", "order_id": "o1", "paid_at": T0 + dt.timedelta(minutes=5)})
    assert s.fire() == []
    [d] = s.advance_by(dt.timedelta(hours=1))
    assert (d.rule, d.args["name"]) == ("unpaid_order_sms", "Ann")
    # The window [10:00, 10:10] includes both ends: decided just after it.
    assert d.time == T0 + dt.timedelta(minutes=10, milliseconds=1)
    assert s.now == T0 + dt.timedelta(hours=1, minutes=5)
    assert s.counters["timers"] >= 1


def test_a_payment_in_time_cancels_the_sms(shop):
    s = shop.session()
    s.advance_to(T0)
    s.insert("profile", {"user_id": "u1", "name": "Ann", "tags": []})
    s.insert("order_created", order("o1"))
    s.advance_by("10m")
    s.insert("order_paid", {"user_id": "u1", "order_id": "o1", "paid_at": s.now})
    assert s.advance_by("1h") == []


def test_times_in_every_form(session):
    ms = int(T0.timestamp() * 1000)
    session.advance_to(ms)
    assert session.now == T0
    session.advance_to("2026-11-22T11:00:00Z")
    assert session.now == T0 + dt.timedelta(hours=1)
    # A naive datetime is read as UTC.
    session.advance_to(dt.datetime(2026, 11, 22, 12, 0))
    assert session.now == T0 + dt.timedelta(hours=2)
    # An aware one is converted.
    shanghai = dt.timezone(dt.timedelta(hours=8))
    session.advance_to(dt.datetime(2026, 11, 22, 21, 0, tzinfo=shanghai))
    assert session.now == T0 + dt.timedelta(hours=3)
    session.advance_by(1500)
    session.advance_by(dt.timedelta(microseconds=2999))
    assert session.now == T0 + dt.timedelta(hours=3, milliseconds=1502)
    assert session.now.tzinfo == UTC


def test_times_are_kept_to_the_millisecond(shop):
    s = shop.session(lateness="1h")
    fid = s.insert("order_created", order("o1", at=dt.datetime(2026, 11, 22, 10, 0, 0, 123999)))
    assert s.fact(fid)[1]["created_at"] == T0 + dt.timedelta(milliseconds=123)
    before_epoch = dt.datetime(1969, 12, 31, 23, 59, 59, 999500, tzinfo=UTC)
    fid = s.insert("order_created", order("o2", at=before_epoch))
    assert s.fact(fid)[1]["created_at"] == dt.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)


def test_the_clock_never_goes_back(session):
    session.advance_to(T0)
    with pytest.raises(nudge.ClockError) as info:
        session.advance_to(T0 - dt.timedelta(seconds=1))
    assert isinstance(info.value, ValueError)
    with pytest.raises(nudge.ClockError):
        session.advance_by(dt.timedelta(seconds=-1))
    with pytest.raises(nudge.ClockError):
        session.advance_by(-1)
    assert session.now == T0


SPANS = nudge.compile("fact e { key u: string  d: duration?  t: timestamp? }")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
LAST = dt.datetime.max.replace(tzinfo=UTC)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"t": 10**17}, "field `t` of `e` is timestamp: 100000000000000000 ms since the epoch is outside"),
        ({"t": -(10**17)}, "field `t` of `e` is timestamp"),
        ({"t": "-0001-01-01T00:00:00Z"}, "field `t` of `e` is timestamp"),
        ({"t": dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5)))}, "field `t` of `e` is timestamp"),
        ({"d": 2**63 - 1}, "field `d` of `e` is duration: 9223372036854775807 ms is longer"),
        ({"d": "100000000000d"}, "field `d` of `e` is duration"),
    ],
)
def test_times_python_cannot_hold_are_refused(fields, message):
    s = SPANS.session()
    with pytest.raises(ValueError, match=re.escape(message)):
        s.insert("e", {"u": "x", **fields})
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        s.run([("e", {"u": "y"}), ("e", {"u": "x", **fields})])
    assert info.value.index == 1
    assert [f[2]["u"] for f in s.facts()] == ["y"]


def test_the_clock_stays_where_python_can_read_it():
    s = SPANS.session()
    with pytest.raises(ValueError, match="the time to advance to is timestamp"):
        s.advance_to(2**63 - 1)
    with pytest.raises(ValueError, match="the time to advance by is duration"):
        s.advance_by(2**63 - 1)
    # A span Python holds, but a time past year 9999.
    with pytest.raises(ValueError, match="the time to advance by: .* goes past 9999-12-31T23:59:59.999Z"):
        s.advance_by(dt.timedelta(days=999_999_999))
    with pytest.raises(ValueError, match="`lateness` is duration"):
        SPANS.session(lateness=2**63 - 1)
    with pytest.raises(ValueError, match="`advance`: .* goes past") as info:
        s.replay([{"advance": "1m"}, {"advance": "999999999d"}])
    assert info.value.index == 1
    with pytest.raises(ValueError, match="`at` is timestamp"):
        s.replay([{"at": 10**17, "advance": "1m"}])
    assert s.now == EPOCH + dt.timedelta(minutes=1)
    # The edges Python holds are kept, and read back.
    fid = s.insert("e", {"u": "x", "d": dt.timedelta.max, "t": dt.datetime.min})
    low = s.insert("e", {"u": "y", "d": dt.timedelta(days=-999_999_999)})
    s.advance_to(LAST)
    assert s.now == LAST.replace(microsecond=999000)
    assert s.fact(fid)[1]["t"] == dt.datetime.min.replace(tzinfo=UTC)
    assert s.fact(fid)[1]["d"] == dt.timedelta.max - dt.timedelta(microseconds=999)
    assert s.fact(low)[1]["d"] == dt.timedelta(days=-999_999_999)
    assert len(s.facts()) == 2
    # At the end of time, any step forward is refused, not a ClockError.
    with pytest.raises(ValueError, match="goes past") as info:
        s.advance_by("1ms")
    assert not isinstance(info.value, nudge.ClockError)
    assert s.advance_by(0) == []


def test_a_lateness_reaching_before_year_1_reads_as_the_first_datetime():
    s = SPANS.session(lateness=dt.timedelta(days=999_999_999))
    assert s.watermark == dt.datetime.min.replace(tzinfo=UTC)
    assert s.now == EPOCH


def test_late_events(shop):
    s = shop.session(lateness="5m")
    s.advance_to(T0)
    s.insert("order_paid", {"user_id": "u1", "order_id": "o1", "paid_at": T0 - dt.timedelta(minutes=4)})
    with pytest.raises(nudge.LateEventError) as info:
        s.insert("order_paid", {"user_id": "u1", "order_id": "o2", "paid_at": T0 - dt.timedelta(minutes=6)})
    assert isinstance(info.value, nudge.FactError)
    assert "late" in str(info.value)
    assert s.fact_count == 1
    assert s.counters["late_events"] == 1
    lenient = shop.session(lateness="5m", late="at_watermark")
    lenient.advance_to(T0)
    fid = lenient.insert("order_paid", {"user_id": "u1", "order_id": "o2", "paid_at": T0 - dt.timedelta(hours=1)})
    assert lenient.fact(fid) is not None


def test_replay_moves_the_clock_with_the_events(shop):
    s = shop.session()
    ds = s.replay(
        [
            {"insert": "profile", "fields": {"user_id": "u1", "name": "Ann", "tags": []}, "ref": "ann"},
            {"insert": "order_created", "fields": order("o1", amount=500.0), "ref": "o1"},
            {"insert": "order_created", "fields": order("o2", at=T0 + dt.timedelta(minutes=1))},
            {"insert": "order_paid", "fields": {"user_id": "u1", "order_id": "o1", "paid_at": "2026-11-22T10:03:00Z"}},
            {"modify": "ann", "fields": {"name": "Anna"}},
            {"advance": "1h"},
            {"retract": "ann"},
            {"at": "2026-11-22T12:00:00Z", "advance": "2026-11-22T11:30:00Z"},
        ]
    )
    assert [(d.rule, d.time) for d in ds] == [
        ("big_order", T0),
        ("unpaid_order_sms", T0 + dt.timedelta(minutes=11, milliseconds=1)),
    ]
    assert ds[1].args["name"] == "Anna"
    assert s.now == T0 + dt.timedelta(hours=2), "`advance` never moves the clock back"
    assert s.fact("ann") is None
    assert s.fact("o1") is None, "the order left working memory once no window needed it"


def test_replay_errors_carry_the_position_and_the_decisions(shop):
    s = shop.session()
    ops = [
        {"insert": "order_created", "fields": order("o1", amount=500.0)},
        {"retract": "nobody"},
        {"insert": "order_created", "fields": order("o3", amount=500.0)},
    ]
    with pytest.raises(nudge.NoSuchFactError) as info:
        s.replay(ops)
    assert info.value.index == 1
    assert rules_of(info.value.decisions) == ["big_order"]
    with pytest.raises(ValueError) as info:
        s.replay([{"launch": "x"}])
    assert info.value.index == 0
    with pytest.raises(ValueError):
        s.replay([{"advance": "soon"}])
    with pytest.raises(TypeError):
        s.replay(["insert order_created"])


def _expected_time(text):
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _replayed(d):
    """A decision as `nudge replay` prints it, less `seq`, `line` and
    `facts`: what the rule asked, then the branch and what became of it."""
    rec = d.to_dict()
    out = {k: rec[k] for k in ("time", "rule", "action", "args")}
    if rec["branch"] is not None:
        out["branch"] = rec["branch"]
    for k in ("status", "reason", "until", "details"):
        if k in rec:
            out[k] = rec[k]
    return out


def _like(expected, actual):
    """Expected JSON as the Python values `actual` holds: times parsed."""
    if isinstance(actual, dt.datetime) and isinstance(expected, str):
        return _expected_time(expected)
    if isinstance(expected, dict) and isinstance(actual, dict):
        return {k: _like(v, actual.get(k)) for k, v in expected.items()}
    if isinstance(expected, list) and isinstance(actual, list):
        return [_like(v, a) for v, a in zip(expected, actual)] + expected[len(actual) :]
    return expected


def _examples():
    cases = []
    for rules in sorted((ROOT / "examples" / "time").glob("*.nudge")):
        header = rules.read_text()
        m = re.search(r"--lateness (\S+)", header)
        cases.append(
            pytest.param(
                rules,
                rules.with_suffix(".events.jsonl"),
                rules.with_suffix(".expected.jsonl"),
                m.group(1) if m else None,
                id=f"time/{rules.stem}",
            )
        )
    data = ROOT / "examples" / "scenarios" / "data"
    for expected in sorted(data.glob("s*.expected.jsonl")):
        sid = expected.name.split(".")[0]
        own = data / f"{sid}.nudge"
        rules = own if own.exists() else next((ROOT / "examples" / "scenarios").glob(f"{sid}_*.nudge"))
        cases.append(pytest.param(rules, data / f"{sid}.events.jsonl", expected, None, id=f"scenario/{sid}"))
    # The example campaign: every primitive, with audience, context, reach
    # and address lines.
    campaign = ROOT / "examples" / "campaign"
    if (campaign / "expected.jsonl").exists():
        cases.append(
            pytest.param(
                campaign / "main.nudge", campaign / "events.jsonl", campaign / "expected.jsonl", None, id="campaign"
            )
        )
    return cases


@pytest.mark.parametrize("rules, events, expected, lateness", _examples())
def test_replays_match_the_expected_decisions(rules, events, expected, lateness):
    s = nudge.compile_files([rules]).session(lateness=lateness)
    got = []
    for line in events.read_text().splitlines():
        if not line.strip():
            continue
        try:
            got.extend(s.replay([json.loads(line)]))
        except nudge.LateEventError:
            pass  # the examples' refused lines are late events
    want = [json.loads(line) for line in expected.read_text().splitlines() if line.strip()]
    # Every key the replay prints, what became of each decision included.
    got = [_replayed(d) for d in got]
    assert got == [_like(w, d) for w, d in zip(want, got)] and len(got) == len(want)
