"""Sessions: facts in, decisions out."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import enum
import types
from typing import List, Optional

import pytest

import nudge
from conftest import rules_of

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def order(user="u1", order_id="o1", amount=150.0, at=T0):
    return {"user_id": user, "order_id": order_id, "amount": amount, "created_at": at}


def profile(user="u1", name="Ann", tier=None, tags=(), vip=None):
    return {"user_id": user, "name": name, "tier": tier, "tags": list(tags), "vip": vip}


def test_insert_and_fire(session):
    fid = session.insert("order_created", order())
    assert isinstance(fid, int)
    assert session.fact_count == 1
    [d] = session.fire()
    assert d.rule == "big_order"
    assert d.action == "message"
    assert d.args == {"channel": "push", "template": "thanks", "user": "u1", "amount": 150.0}
    assert d.facts == [fid]
    assert d.seq == 1
    assert d.branch is None
    assert d.time == dt.datetime(1970, 1, 1, tzinfo=UTC)
    assert d.time_ms == 0
    assert d.arg("user") == "u1"
    assert d.arg("nothing", 7) == 7
    assert session.fire() == [], "decisions are taken once"


def test_decision_value_semantics(session):
    session.insert("order_created", order())
    [d] = session.fire()
    assert d.to_dict() == {
        "seq": 1,
        "rule": "big_order",
        "action": "message",
        "args": {"channel": "push", "template": "thanks", "user": "u1", "amount": 150.0},
        "facts": d.facts,
        "time": dt.datetime(1970, 1, 1, tzinfo=UTC),
        "branch": None,
        # Checked by the primitives: sent on push (no status: it is done).
        "details": {"channel": "push"},
    }
    assert (d.status, d.reason, d.until, d.details) == ("done", None, None, {"channel": "push"})
    assert repr(d) == (
        "Decision(rule='big_order', action='message', args={'channel': 'push', "
        "'template': 'thanks', 'user': 'u1', 'amount': 150.0}, time=1970-01-01T00:00:00Z)"
    )
    d.args["user"] = "someone else"
    assert d.args["user"] == "u1", "args is a fresh dict each time"
    with pytest.raises(AttributeError):
        d.rule = "x"  # type: ignore[misc]
    assert d == d and d != 1


def test_joins_and_list_fields(session):
    session.insert("profile", profile(tier=3, tags=["gold", "new"]))
    session.insert("profile", profile(user="u2", tier=5, tags=("silver",)))
    [d] = session.fire()
    assert (d.rule, d.action, d.args) == ("gold_member", "tag_user", {"user": "u1", "tag": "gold"})


def test_salience_orders_firing(session):
    session.insert("profile", profile(tier=3, tags=["gold"]))
    session.insert("order_created", order())
    assert rules_of(session.fire()) == ["big_order", "gold_member"]


def test_refs_modify_and_retract(session):
    pid = session.insert("profile", profile(tier=1, tags=["gold"]), ref="ann")
    assert session.fire() == []
    session.modify("ann", tier=4)
    assert rules_of(session.fire()) == ["gold_member"]
    assert session.fact("ann") == ("profile", profile(tier=4, tags=["gold"]))
    assert session.fact(pid) == session.fact("ann")
    session.modify(pid, {"name": "Anna"}, tier=5)
    assert session.fact(pid)[1]["name"] == "Anna"
    assert rules_of(session.fire()) == ["gold_member"], "a modified fact fires again"
    session.retract("ann")
    assert session.fact(pid) is None
    assert session.fact("ann") is None
    with pytest.raises(nudge.NoSuchFactError):
        session.retract(pid)
    with pytest.raises(nudge.NoSuchFactError):
        session.retract("ann")
    with pytest.raises(nudge.NoSuchFactError):
        session.modify(pid, tier=1)


def test_optional_fields_may_be_left_out_or_none(session):
    session.insert("profile", {"user_id": "u1", "name": "Ann", "tags": []})
    [(fid, ty, fields)] = session.facts()
    assert ty == "profile"
    assert fields == {"user_id": "u1", "name": "Ann", "tier": None, "tags": [], "vip": None}
    session.modify(fid, tier=None, vip=True)
    assert session.fact(fid)[1]["vip"] is True


def test_facts_by_type(session):
    a = session.insert("profile", profile())
    b = session.insert("order_created", order())
    assert [f[0] for f in session.facts()] == [a, b]
    assert [f[0] for f in session.facts("order_created")] == [b]


def test_counters_and_repr(session):
    session.insert("order_created", order())
    session.fire()
    c = session.counters
    assert list(c) == ["alpha_tests", "firings", "late_events", "expired_events", "timers"]
    assert c["firings"] == 1
    assert repr(session) == "<nudge.Session: 1 fact, clock at 1970-01-01T00:00:00Z>"
    assert session.ruleset.rule_names[0] == "big_order"


@dataclasses.dataclass
class Profile:
    user_id: str
    name: str
    tags: List[str]
    tier: Optional[int] = None
    vip: Optional[bool] = None


class Tier(enum.Enum):
    GOLD = "gold"


class Name(str, enum.Enum):
    ANN = "Ann"


Order = collections.namedtuple("Order", "user_id order_id amount created_at")


class Model:
    """Quacks like a pydantic model."""

    def model_dump(self):
        return profile(tier=3, tags=["gold"])


def test_facts_from_dataclasses_named_tuples_models_and_mappings(session):
    session.insert("profile", Profile("u1", Name.ANN, ["gold"], tier=3))
    assert session.fact(0)[1]["name"] == "Ann"
    session.insert("order_created", Order("u1", "o1", 120, T0))
    session.insert("profile", Model())
    session.insert("profile", types.MappingProxyType(profile(user="u9")))
    assert session.fact_count == 4
    assert sorted(rules_of(session.fire())) == ["big_order", "gold_member", "gold_member"]


def test_pydantic_models():
    pydantic = pytest.importorskip("pydantic")

    class P(pydantic.BaseModel):
        user_id: str
        name: str
        tags: List[str]
        tier: Optional[int] = None

    rules = nudge.compile("fact profile { key user_id: string  name: string  tags: list<string>  tier: int? }")
    s = rules.session()
    fid = s.insert("profile", P(user_id="u1", name="Ann", tags=["a"], tier=2))
    assert s.fact(fid)[1] == {"user_id": "u1", "name": "Ann", "tags": ["a"], "tier": 2}


def test_insert_many(session):
    ids = session.insert_many("profile", (profile(user=f"u{i}", tier=3, tags=["gold"]) for i in range(10_000)))
    assert len(ids) == len(set(ids)) == 10_000
    assert len(session.fire()) == 10_000


def test_insert_many_stops_at_a_bad_item(session):
    items = [profile(user="a"), profile(user="b"), {"user_id": "c"}, profile(user="d")]
    with pytest.raises(TypeError) as info:
        session.insert_many("profile", items)
    assert info.value.index == 2
    assert session.fact_count == 2, "the items before the bad one are in"


def test_run_fires_per_event_and_can_retract(shop):
    s = shop.session()
    events = [("order_created", order(order_id=f"o{i}", amount=50.0 + i * 100)) for i in range(4)]
    ds = s.run(events)
    assert [d.args["amount"] for d in ds] == [150.0, 250.0, 350.0]
    assert s.fact_count == 4
    s2 = shop.session()
    again = s2.run(iter(events), retract=True)
    assert [(d.rule, d.args, d.time) for d in again] == [(d.rule, d.args, d.time) for d in ds]
    assert s2.fact_count == 0


def test_run_stops_at_a_bad_item_with_the_decisions_so_far(session):
    events = [("order_created", order(order_id="o1")), ("order_created", {"user_id": 1}), ("order_created", order(order_id="o3"))]
    with pytest.raises(TypeError) as info:
        session.run(events)
    assert info.value.index == 1
    assert rules_of(info.value.decisions) == ["big_order"]
    assert session.fact_count == 1


def test_run_of_many_events_in_chunks(session):
    events = [("order_created", order(order_id=f"o{i}", amount=float(i % 300))) for i in range(20_000)]
    ds = session.run(events, retract=True)
    assert len(ds) == sum(1 for i in range(20_000) if i % 300 > 100)
    assert [d.seq for d in ds] == list(range(1, len(ds) + 1))


def test_run_limit(tmp_path):
    rules = nudge.compile(
        "fact counter { key id: string  n: int }\n"
        "rule bump { when c: counter() then modify c(n: c.n + 1) }\n"
    )
    s = rules.session(max_firings=50)
    s.insert("counter", {"id": "c", "n": 0})
    with pytest.raises(nudge.RunLimitError) as info:
        s.fire()
    assert isinstance(info.value, nudge.SessionError)
    assert s.fact(0)[1]["n"] == 50
    s2 = rules.session(max_firings=10)
    s2.insert("counter", {"id": "c", "n": 0})
    with pytest.raises(nudge.RunLimitError):
        s2.run([("counter", {"id": "d", "n": 0})])


def test_an_action_that_fails_names_its_rule():
    rules = nudge.compile(
        "event e { key id: string  a: float  b: float }\n"
        "fact ratio { key id: string  value: float }\n"
        "rule r { when x: e() then insert ratio(id: x.id, value: x.a / x.b) }\n"
    )
    s = rules.session()
    s.insert("e", {"id": "x", "a": 1.0, "b": 0.0})
    with pytest.raises(nudge.ActionError) as info:
        s.fire()
    assert info.value.rule == "r"
    assert "rule `r`" in str(info.value)
    assert s.fact_count == 1


def test_session_constructor_and_options(shop):
    s = nudge.Session(shop, lateness="5m", clock="pseudo", late="at_watermark", max_firings=10)
    assert s.watermark == dt.datetime(1970, 1, 1, tzinfo=UTC) - dt.timedelta(minutes=5)
    with pytest.raises(ValueError):
        shop.session(clock="wall")
    with pytest.raises(ValueError):
        shop.session(late="drop")
    with pytest.raises(ValueError):
        shop.session(lateness=dt.timedelta(minutes=-1))
    with pytest.raises(TypeError):
        shop.session(lateness=1.5)
    with pytest.raises(TypeError):
        shop.session("5m")  # keyword-only


def test_system_clock(shop):
    s = shop.session(clock="system")
    s.fire()
    assert abs(s.now - dt.datetime.now(UTC)) < dt.timedelta(minutes=1)
