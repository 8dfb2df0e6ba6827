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
