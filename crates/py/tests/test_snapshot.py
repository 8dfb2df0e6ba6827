"""Snapshots: a session as bytes, and back."""

from __future__ import annotations

import datetime as dt

import pytest

import nudge

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def pending_session(shop):
    s = shop.session(lateness="1m")
    s.advance_to(T0)
    s.insert("profile", {"user_id": "u1", "name": "Ann", "tags": []}, ref="ann")
    for i in range(3):
        s.insert("order_created", {"user_id": "u1", "order_id": f"o{i}", "amount": 50.0, "created_at": T0})
    s.fire()
    s.advance_by("5m")
    return s


def test_a_restored_session_goes_on_as_the_original(shop):
    s = pending_session(shop)
    data = s.snapshot()
    assert isinstance(data, bytes) and data.startswith(b"NUDGESNP")
    r = nudge.Session.restore(shop, data)
    assert r.fact_count == s.fact_count
    assert r.now == s.now
    assert r.watermark == s.watermark, "settings are part of the snapshot"
    assert r.facts() == s.facts()
    paid = {"user_id": "u1", "order_id": "o1", "paid_at": T0 + dt.timedelta(minutes=6)}
    for x in (s, r):
        x.insert("order_paid", paid)
        x.fire()
    a, b = s.advance_by("1h"), r.advance_by("1h")
    assert len(a) == 2
    assert [d.to_dict() for d in a] == [d.to_dict() for d in b]
    assert r.counters["firings"] == s.counters["firings"]


def test_refs_and_callables_are_not_in_a_snapshot(shop):
    s = pending_session(shop)
    r = nudge.Session.restore(shop, s.snapshot())
    assert s.fact("ann") is not None
    assert r.fact("ann") is None
    assert r.fact(0) == s.fact(0), "ids are kept"


def test_bad_snapshots(shop):
    with pytest.raises(nudge.SnapshotError, match="not a nudge snapshot"):
        nudge.Session.restore(shop, b"hello")
    data = pending_session(shop).snapshot()
    with pytest.raises(nudge.SnapshotError, match="damaged"):
        nudge.Session.restore(shop, data[:-5])
    other = nudge.compile("event e { key u: string }")
    with pytest.raises(nudge.SnapshotError, match="other rules"):
        nudge.Session.restore(other, data)
    with pytest.raises(TypeError):
        nudge.Session.restore(shop, "NUDGESNP")
    with pytest.raises(TypeError):
        nudge.Session.restore("shop", data)


CARTS = """
event cart { key user_id: string  time at: timestamp }
event order_paid { key user_id: string  time at: timestamp }

audience vip
function churn(user_id: string) -> float

rule vip_reminder {
    when
        c: cart(user_id in audience vip)
        not order_paid(user_id == c.user_id) after c within 1h
    then
        message(channel: "push", template: "vip_cart", user: c.user_id)
}

rule churn_reminder {
    when
        c: cart(churn(user_id) > 0.5)
        not order_paid(user_id == c.user_id) after c within 1h
    then
        message(channel: "push", template: "churn_cart", user: c.user_id)
}
"""


@pytest.fixture(scope="module")
def carts():
    return nudge.compile(CARTS, filename="carts.nudge")


def set_up(s):
    """The host of the carts' sessions: their audience and churn model."""
    s.set_audience("vip", ["u1"])
    s.register_function("churn", lambda user_id: 0.9 if user_id == "u2" else 0.1)
    return s


def mid_window(carts):
    """A session with three carts, half-way through their hour."""
    s = set_up(carts.session())
    s.run([("cart", {"user_id": u, "at": T0}) for u in ("u1", "u2", "u3")])
    s.advance_by("30m")
    return s


def test_a_session_set_up_first_loads_a_snapshot_with_its_host(carts):
    s = mid_window(carts)
    data = s.snapshot()
    r = set_up(carts.session())
    old = r.insert("cart", {"user_id": "u9", "at": T0}, ref="old")
    r.load_snapshot(data)
    assert r.now == s.now and r.facts() == s.facts()
    assert r.fact("old") is None, "refs named the facts the snapshot replaced"
    assert r.fact(old) == s.fact(old)
    assert r.audiences == s.audiences, "the host stays"
    a, b = s.advance_by("2h"), r.advance_by("2h")
    due = T0 + dt.timedelta(hours=1, milliseconds=1)
    assert sorted((d.rule, d.args["user"], d.time) for d in b) == [
        ("churn_reminder", "u2", due),
        ("vip_reminder", "u1", due),
    ]
    assert [d.to_dict() for d in b] == [d.to_dict() for d in a]
    assert r.counters == s.counters


def test_bad_bytes_leave_a_session_unchanged(carts):
    data = mid_window(carts).snapshot()
    r = set_up(carts.session())
    r.advance_to(T0)
    r.insert("cart", {"user_id": "u1", "at": T0}, ref="mine")
    before = (r.now, r.facts(), r.counters)
    other = nudge.compile("event e { key u: string }").session().snapshot()
    for bad in (b"hello", data[:-5], other):
        with pytest.raises(nudge.SnapshotError):
            r.load_snapshot(bad)
        assert (r.now, r.facts(), r.counters) == before
    with pytest.raises(TypeError):
        r.load_snapshot("NUDGESNP")
    assert r.fact("mine") is not None
    # The host stayed: the vip's reminder still comes.
    assert [(d.rule, d.args["user"]) for d in r.advance_by("2h")] == [("vip_reminder", "u1")]


def test_a_callable_failing_while_a_snapshot_loads(carts):
    s = mid_window(carts)
    r = carts.session()
    r.set_audience("vip", ["u1"])
    r.register_function("churn", lambda user_id: 1 / 0)
    with pytest.raises(nudge.CallbackError) as info:
        r.load_snapshot(s.snapshot())
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert info.value.callback == "churn"
    # The snapshot is in, rebuilt as if the churn model answered None.
    assert r.facts() == s.facts()
    assert [d.rule for d in r.advance_by("2h")] == ["vip_reminder"]
