"""Replay operations are read as strictly as `nudge replay` reads its lines,
and a replay that fails before running an operation changes nothing."""

from __future__ import annotations

import datetime as dt

import pytest

import nudge

RULES = """
event visit { key user_id: string }
fact profile { key user_id: string  phone: string? }
context features for visit { level: int  segment: string? }
audience vip
rule vip_visit {
    when v: visit(user_id in audience vip, level >= 1)
    then message(channel: "push", template: "hi", user: v.user_id)
}
"""

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def rules():
    return nudge.compile(RULES)


VISIT = {"user_id": "u1"}


@pytest.mark.parametrize(
    "op, message",
    [
        ({"insert": "visit", "fields": VISIT, "advance": "1h"}, "`insert` and `advance` are 2 operations"),
        ({"advance": "1h", "fields": {}}, "`advance` takes no key `fields` (it takes `at`)"),
        ({"insert": "visit", "fieldz": VISIT}, "`insert` takes no key `fieldz` (it takes `at`, `fields` and `ref`)"),
        ({"retract": "v", "ref": "v"}, "`retract` takes no key `ref`"),
        ({"modify": "p"}, "`modify` needs `fields`"),
        ({"audience": "vip"}, "`audience` needs `members`"),
        ({"context": "features", "key": "u1"}, "`context` needs `values`"),
        ({"context": "features", "values": {"level": 1}}, "`context` needs `key`"),
        ({"address": "sms"}, "`address` needs `field`"),
        ({"reach": {"user": "u1", "channel": "sms"}}, "`reach` needs `reachable` or `opted_out`"),
        ({"reach": {"user": "u1", "channel": "sms", "reachable": False, "opt_out": True}}, "`reach` takes no key"),
        ({"reach": {"user": "u1", "reachable": False}}, "`reach` needs `user` and `channel`"),
    ],
)
def test_loose_operations_are_refused(rules, op, message):
    s = rules.session()
    s.insert("profile", {"user_id": "u1"}, ref="p")
    with pytest.raises(ValueError, match="replay operation 1") as info:
        s.replay([{"advance": "1m"}, op, {"advance": "1h"}])
    assert message in str(info.value)
    assert info.value.index == 1
    assert s.now == EPOCH + dt.timedelta(minutes=1), "the operation before it took effect, no more"
    assert s.fact_count == 1


def test_a_context_row_gives_required_fields_a_value(rules):
    s = rules.session()
    with pytest.raises(TypeError, match="field `level` of context `features` is int and required: got None"):
        s.replay([{"context": "features", "key": "u1", "values": {"level": None}}])
    s.set_audience("vip", ["u1"])
    ds = s.replay(
        [
            {"context": "features", "key": "u1", "values": {"level": 2, "segment": None}},
            {"insert": "visit", "fields": VISIT},
        ]
    )
    assert [d.args["user"] for d in ds] == ["u1"]


@pytest.mark.parametrize(
    "ops",
    [
        None,
        42,
        [None],
        [{"insert": "visit", "fields": 42}],
        [{"launch": "x"}],
        [{"insert": "visit", "fields": VISIT, "advance": "1h"}],
        [],
    ],
)
def test_a_replay_that_runs_no_operation_changes_nothing(rules, ops):
    s = rules.session()
    try:
        s.replay(ops)
    except (TypeError, ValueError):
        pass
    # Contexts are still served by nothing: a visit is refused as before.
    with pytest.raises(nudge.FactError, match="no provider is registered for context `features`"):
        s.insert("visit", VISIT)
    # A replay that runs an operation serves them with empty tables.
    s.replay([{"advance": "1m"}])
    with pytest.raises(nudge.FactError, match="level"):
        s.insert("visit", VISIT)
    s.replay([{"context": "features", "key": "u1", "values": {"level": 1}}])
    s.insert("visit", VISIT)
