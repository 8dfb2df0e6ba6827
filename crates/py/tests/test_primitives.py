"""Checked decisions: coupons, messages, caps, quiet hours, transitions and
splits decided by the ruleset's primitives, with a status, a reason and
details; context providers; reachability; a coupon stock shared by the
sessions of one ruleset on several threads."""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import nudge

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 22, 10, 0, tzinfo=UTC)

RULES = """
fact profile {
    key user_id: string
    name: string
    wechat_openid: string?
}

event order_paid { key user_id: string  order_id: string  amount: float  time at: timestamp }
event grab { key user_id: string }
event visit { key user_id: string  time at: timestamp }
event signup { key user_id: string }
event upgrade { key user_id: string }
event add_to_cart { key user_id: string  sku: string }

context features for add_to_cart {
    uplift_segment: string?
    member_level: int
}

coupon welcome10 { value: 10.0  stock: 100  per_user: 1 }
coupon flash50 { value: 50.0  stock: 2 }

cap push_daily {
    limit: 1 per calendar day
    channel: "push"
    zone: "UTC"
}

campaign nightly {
    quiet_hours: "21:00-09:00" defer
    zone: "UTC"
}

machine lifecycle {
    initial: prospect
    prospect -> new
    new -> active
}

experiment push_copy {
    arms: { a: 50%, b: 50% }
    seed: "push_copy_2026"
}

rule first_order_coupon {
    when
        o: order_paid(amount > 100)
    then
        coupon(template: welcome10, user: o.user_id) {
            issued => message(channel: ["wechat", "sms"], template: "coupon_ready", user: o.user_id)
            refused => {}
        }
}

rule flash_grab {
    when g: grab()
    then coupon(template: flash50, user: g.user_id)
}

rule visit_push {
    campaign nightly
    when v: visit()
    then message(channel: "push", template: "hello", user: v.user_id)
}

rule welcome {
    when s: signup()
    then transition(machine: lifecycle, user: s.user_id, to: new)
}

rule upgrade_to_active {
    when u: upgrade()
    then transition(machine: lifecycle, user: u.user_id, to: active)
}

rule newcomer_copy {
    when
        m: lifecycle(state == "new")
    then
        split(experiment: push_copy, user: m.user_id) {
            a => message(channel: "sms", template: "copy_a", user: m.user_id)
            b => message(channel: "sms", template: "copy_b", user: m.user_id)
        }
}

rule persuadable_cart {
    when
        c: add_to_cart(uplift_segment == "persuadable", member_level >= 3)
    then
        message(channel: "app", template: "cart_nudge", user: c.user_id)
}
"""


@pytest.fixture
def rules():
    """Fresh rules for each test: the primitives' state (coupon stock,
    issued coupons, caps) belongs to the ruleset and its sessions share it."""
    return nudge.compile(RULES, filename="primitives.nudge")


def paid(user, order_id, amount=150.0, at=T0):
    return ("order_paid", {"user_id": user, "order_id": order_id, "amount": amount, "at": at})


def visit(user, at):
    return ("visit", {"user_id": user, "at": at})


def outcome(d):
    """What became of a decision, in one tuple."""
    return (d.rule, d.action, d.status, d.reason, d.branch, d.details)


def test_a_coupon_is_issued_then_a_retry_gets_the_first_one(rules):
    s = rules.session()
    [coupon, message] = s.run([paid("u1", "o1")])
    assert outcome(coupon) == (
        "first_order_coupon",
        "coupon",
        "done",
        None,
        "issued",
        {"coupon_id": "welcome10-0-1"},
    )
    # The `issued` branch ran: the message went out on the first channel.
    assert (message.action, message.args["template"], message.details) == (
        "message",
        "coupon_ready",
        {"channel": "wechat"},
    )
    # The host delivers u1's payment again: one coupon per user, so the
    # claim is the first one again, and no branch runs.
    [retry] = s.run([paid("u1", "o1")])
    assert outcome(retry) == (
        "first_order_coupon",
        "coupon",
        "suppressed",
        "already_issued",
        None,
        {"coupon_id": "welcome10-0-1"},
    )
    assert retry.to_dict()["status"] == "suppressed"
    assert retry.to_dict()["reason"] == "already_issued"
    assert "until" not in retry.to_dict()
    # The claim is the ruleset's: another session of it sees it too.
    [other] = rules.session().run([paid("u1", "o2")])
    assert (other.reason, other.details["coupon_id"]) == ("already_issued", "welcome10-0-1")


def test_out_of_stock_stops_the_campaign(rules):
    s = rules.session()
    ds = s.run([("grab", {"user_id": u}) for u in ("u1", "u2", "u3", "u4")])
    assert [(d.args["user"], d.status, d.reason, d.branch) for d in ds] == [
        ("u1", "done", None, "issued"),
        ("u2", "done", None, "issued"),
        ("u3", "suppressed", "out_of_stock", "refused"),
        ("u4", "suppressed", "out_of_stock", "refused"),
    ]
    assert [d.details.get("coupon_id") for d in ds[:2]] == ["flash50-0-1", "flash50-0-2"]
    assert ds[2].details == {"template": "flash50", "campaign_stopped": True}
    assert ds[2].detail("campaign_stopped") is True
    assert ds[2].detail("coupon_id", "none") == "none"


def test_a_message_over_its_cap_is_suppressed_naming_the_cap(rules):
    s = rules.session()
    first, second = s.run([visit("u5", T0), visit("u5", T0 + dt.timedelta(hours=1))])
    assert (first.status, first.details) == ("done", {"channel": "push"})
    assert outcome(second) == (
        "visit_push",
        "message",
        "suppressed",
        "capped",
        None,
        {"cap": "push_daily", "skipped": ["push: capped by push_daily"]},
    )
    assert "capped" in repr(second) and "suppressed" in repr(second)
    # A calendar day later the cap has room again.
    [next_day] = s.run([visit("u5", T0 + dt.timedelta(days=1))])
    assert next_day.status == "done"


def test_unreachable_channels_fall_back_along_the_chain(rules):
    s = rules.session()
    s.set_reachable("u2", "wechat", False)
    s.set_reachable(3, "wechat", False)
    s.set_opted_out(3, "sms", True)
    ds = s.run([paid("u2", "o1"), paid("3", "o2"), paid("u4", "o3")])
    sent = {d.args["user"]: d for d in ds if d.action == "message"}
    assert (sent["u2"].status, sent["u2"].details) == (
        "done",
        {"channel": "sms", "skipped": ["wechat: unreachable"]},
    )
    assert (sent["3"].status, sent["3"].reason, sent["3"].details) == (
        "suppressed",
        "unreachable",
        {"skipped": ["wechat: unreachable", "sms: opted_out"]},
    )
    assert sent["u4"].details == {"channel": "wechat"}
    # Reachable again, opted in again.
    s.set_reachable("u2", "wechat", True)
    s.set_opted_out("3", "sms", False)
    s.set_reachable("3", "wechat", True)
    ds = s.run([paid("u2", "o4", amount=50.0)])
    assert ds == []


def test_a_channel_address_read_from_a_fact(rules):
    s = rules.session()
    s.set_channel_address("wechat", "profile", "wechat_openid")
    s.insert_many(
        "profile",
        [
            {"user_id": "u1", "name": "Ann", "wechat_openid": "oA1"},
            {"user_id": "u2", "name": "Bo"},
        ],
    )
    ds = s.run([paid("u1", "o1"), paid("u2", "o2"), paid("u3", "o3")])
    assert {d.args["user"]: d.details["channel"] for d in ds if d.action == "message"} == {
        "u1": "wechat",
        "u2": "sms",
        "u3": "sms",
    }
    with pytest.raises(ValueError, match="no field `openid`"):
        s.set_channel_address("wechat", "profile", "openid")
    with pytest.raises(ValueError, match="not a fact type with a key field"):
        s.set_channel_address("wechat", "visit", "user_id")


def test_quiet_hours_defer_a_message_until_they_end(rules):
    s = rules.session()
    night = T0.replace(hour=22)
    morning = (T0 + dt.timedelta(days=1)).replace(hour=9)
    [deferred] = s.run([visit("u6", night)])
    assert (deferred.status, deferred.reason, deferred.until) == ("deferred", None, morning)
    assert deferred.details == {"reason": "quiet_hours"}
    assert deferred.to_dict()["until"] == morning and "reason" not in deferred.to_dict()
    assert "until=2026-11-23T09:00:00Z" in repr(deferred)
    assert s.advance_to(morning - dt.timedelta(minutes=1)) == []
    # Decided again when quiet hours end: the same decision, now sent.
    [sent] = s.advance_to(morning)
    assert (sent.rule, sent.args, sent.facts) == (deferred.rule, deferred.args, deferred.facts)
    assert (sent.time, sent.status, sent.until, sent.details) == (morning, "done", None, {"channel": "push"})


def test_a_transition_moves_the_machine_fact(rules):
    s = rules.session()
    s.advance_to(T0)
    ds = s.run([("signup", {"user_id": "u1"})])
    moved = ds[0]
    assert outcome(moved) == ("welcome", "transition", "done", None, None, {"from": "prospect", "to": "new"})
    # The machine's fact holds the user's state, and rules see it at once.
    [(fid, _, state)] = s.facts("lifecycle")
    assert state == {"user_id": "u1", "state": "new", "since": T0}
    assert [d.rule for d in ds[1:]] == ["newcomer_copy", "newcomer_copy"]
    # A legal move modifies the same fact.
    s.advance_by("1h")
    [active] = s.run([("upgrade", {"user_id": "u1"})])
    assert (active.status, active.details) == ("done", {"from": "new", "to": "active"})
    assert s.facts("lifecycle") == [
        (fid, "lifecycle", {"user_id": "u1", "state": "active", "since": T0 + dt.timedelta(hours=1)})
    ]


def test_an_illegal_transition_fails_and_changes_nothing(rules):
    s = rules.session()
    [jump] = s.run([("upgrade", {"user_id": "u9"})])
    assert outcome(jump) == (
        "upgrade_to_active",
        "transition",
        "failed",
        "illegal_transition",
        None,
        {"from": "prospect", "to": "active"},
    )
    assert jump.to_dict()["status"] == "failed"
    assert s.facts("lifecycle") == []


def fnv1a32(text: str) -> int:
    """FNV-1a, 32 bits, over UTF-16 code units (as GrowthBook's SDKs)."""
    h = 0x811C9DC5
    data = text.encode("utf-16-le")
    for i in range(0, len(data), 2):
        h = ((h ^ (data[i] | data[i + 1] << 8)) * 0x01000193) & 0xFFFFFFFF
    return h


def growthbook_bucket(seed: str, user_id: str) -> float:
    """GrowthBook's hash, version 2."""
    return fnv1a32(str(fnv1a32(seed + user_id))) % 10000 / 10000


def test_a_split_arm_is_growthbooks(rules):
    # A published GrowthBook test vector checks the helper itself.
    assert growthbook_bucket("seed", "a") == 0.0505
    s = rules.session()
    users = [f"user-{i}" for i in range(40)] + ["用户42"]
    ds = s.run([("signup", {"user_id": u}) for u in users])
    splits = {d.args["user"]: d for d in ds if d.action == "split"}
    sent = {d.args["user"]: d.args["template"] for d in ds if d.action == "message"}
    assert sorted(splits) == sorted(users)
    for user, d in splits.items():
        bucket = growthbook_bucket("push_copy_2026", user)
        arm = "a" if bucket < 0.5 else "b"
        assert (d.status, d.branch) == ("done", arm), user
        assert d.details == {"experiment": "push_copy", "arm": arm, "bucket": bucket}
        assert sent[user] == f"copy_{arm}"
    assert {d.branch for d in splits.values()} == {"a", "b"}


def test_a_context_provider_fills_fields_that_rules_match(rules):
    s = rules.session()
    seen = []

    def features(fact):
        seen.append(dict(fact))
        scores = {"u1": ("persuadable", 3), "u2": ("sure_thing", 5), "u3": ("persuadable", 1)}
        segment, level = scores.get(fact["user_id"], (None, 0))
        out = {"member_level": level}
        if segment is not None:
            out["uplift_segment"] = segment
        return out

    s.register_provider("features", features)
    ids = [s.insert("add_to_cart", {"user_id": u, "sku": "tv"}) for u in ("u1", "u2", "u3", "u4")]
    # The provider saw the fact, its own fields not yet filled.
    assert seen[0] == {"user_id": "u1", "sku": "tv", "uplift_segment": None, "member_level": None}
    assert s.fact(ids[0]) == (
        "add_to_cart",
        {"user_id": "u1", "sku": "tv", "uplift_segment": "persuadable", "member_level": 3},
    )
    assert s.fact(ids[3])[1]["uplift_segment"] is None
    [d] = s.fire()
    assert (d.rule, d.args["user"], d.facts) == ("persuadable_cart", "u1", [ids[0]])
    # Values the caller gives for the provider's fields are replaced.
    fid = s.insert("add_to_cart", {"user_id": "u4", "sku": "tv", "uplift_segment": "persuadable", "member_level": 9})
    assert s.fact(fid)[1]["member_level"] == 0
    # Batches go through the provider too.
    assert [d.args["user"] for d in s.run([("add_to_cart", {"user_id": "u1", "sku": "mug"})])] == ["u1"]
    assert rules.contexts == ["features"]


def test_a_context_without_a_provider_refuses_the_insert(rules):
    s = rules.session()
    with pytest.raises(nudge.FactError, match="context `features` of `add_to_cart`: no provider"):
        s.insert("add_to_cart", {"user_id": "u1", "sku": "tv"})
    assert s.fact_count == 0
    with pytest.raises(ValueError, match="no context `feature` \\(it declares `features`\\)"):
        s.register_provider("feature", lambda fact: {})
    with pytest.raises(TypeError, match="must be callable"):
        s.register_provider("features", {"member_level": 3})


def test_a_provider_that_raises_refuses_the_insert(rules):
    s = rules.session()
    s.register_provider("features", lambda fact: {"member_level": 3})
    s.insert("add_to_cart", {"user_id": "u0", "sku": "tv"})
    before = s.facts()

    def down(fact):
        raise ConnectionError(f"feature store down for {fact['user_id']}")

    s.register_provider("features", down)
    with pytest.raises(nudge.CallbackError) as info:
        s.insert("add_to_cart", {"user_id": "u1", "sku": "tv"}, ref="cart")
    e = info.value
    assert isinstance(e.__cause__, ConnectionError)
    assert str(e.__cause__) == "feature store down for u1"
    assert (e.kind, e.callback, e.rules, e.fact_id) == ("provider", "features", [], None)
    assert str(e) == (
        "the provider of context `features` of `add_to_cart` raised ConnectionError: "
        "feature store down for u1; the fact was not inserted"
    )
    # The session is unchanged: no fact, no ref, nothing to fire.
    assert s.facts() == before
    assert s.fact("cart") is None
    assert s.fire() == []
    # In a batch, the items before the failing one took effect.
    s.register_provider("features", lambda fact: down(fact) if fact["user_id"] == "u3" else {"member_level": 1})
    with pytest.raises(nudge.CallbackError) as info:
        s.run([("add_to_cart", {"user_id": u, "sku": "tv"}) for u in ("u2", "u3", "u4")])
    assert info.value.index == 1
    assert [f["user_id"] for _, _, f in s.facts("add_to_cart")] == ["u0", "u2"]
    # A working provider again: the session goes on.
    s.register_provider("features", lambda fact: {"member_level": 3, "uplift_segment": "persuadable"})
    s.insert("add_to_cart", {"user_id": "u5", "sku": "tv"})
    assert [d.args["user"] for d in s.fire()] == ["u5"]


@pytest.mark.parametrize(
    "answer, cause, message",
    [
        ({"member_level": "gold"}, TypeError, "field `member_level` of `add_to_cart` (context `features`) is int"),
        ({"member_level": 1, "level": 3}, TypeError, "context `features` fills no field `level` of `add_to_cart`"),
        ({"uplift_segment": "x"}, TypeError, "field `member_level` of `add_to_cart` (context `features`) is int and required"),
        (None, TypeError, "`member_level`"),
        (["member_level", 3], TypeError, "answers with a dict of its fields"),
        ({"member_level": 2**70}, ValueError, "does not fit in 64 bits"),
    ],
)
def test_a_provider_that_answers_the_wrong_fields(rules, answer, cause, message):
    s = rules.session()
    s.register_provider("features", lambda fact: answer)
    with pytest.raises(nudge.CallbackError) as info:
        s.insert("add_to_cart", {"user_id": "u1", "sku": "tv"})
    assert isinstance(info.value.__cause__, cause)
    assert message in str(info.value.__cause__)
    assert s.fact_count == 0


def test_a_provider_failing_for_a_rules_insert_names_the_rule():
    rules = nudge.compile(
        """
        event grab { key user_id: string }
        event cart { key user_id: string }
        context features for cart { level: int }
        rule grab_to_cart { when g: grab() then insert cart(user_id: g.user_id) }
        """
    )
    s = rules.session()
    s.register_provider("features", lambda fact: 1 / 0)
    with pytest.raises(nudge.CallbackError) as info:
        s.run([("grab", {"user_id": "u1"})])
    e = info.value
    assert isinstance(e.__cause__, ZeroDivisionError)
    assert (e.kind, e.callback, e.rules) == ("provider", "features", ["grab_to_cart"])
    assert "(for rule `grab_to_cart`)" in str(e)
    assert s.facts("cart") == []


def test_replayed_host_lines(rules):
    s = rules.session()
    ds = s.replay(
        [
            {"context": "features", "key": "u1", "values": {"uplift_segment": "persuadable", "member_level": 4}},
            {"reach": {"user": "u2", "channel": "wechat", "reachable": False}},
            {"address": "sms", "field": "profile.name"},
            {"insert": "profile", "fields": {"user_id": "u2", "name": "Bo"}},
            {"insert": "add_to_cart", "fields": {"user_id": "u1", "sku": "tv"}},
            {"insert": "order_paid", "fields": {"user_id": "u2", "order_id": "o1", "amount": 150.0, "at": T0}},
        ]
    )
    assert [(d.action, d.args["user"], d.details.get("channel")) for d in ds] == [
        ("message", "u1", "app"),
        ("coupon", "u2", None),
        ("message", "u2", "sms"),
    ]
    # A key with no row gets nulls: the required member level is missing.
    with pytest.raises(nudge.FactError, match="context `features` of `add_to_cart`: .*member_level"):
        s.replay([{"insert": "add_to_cart", "fields": {"user_id": "u2", "sku": "tv"}}])
    with pytest.raises(ValueError, match="context `features` fills no field `level`"):
        s.replay([{"context": "features", "key": "u1", "values": {"level": 1}}])
    with pytest.raises(nudge.AudienceError):
        s.replay([{"audience": "vip", "members": ["u1"]}])


def test_sessions_on_threads_share_one_coupon_stock():
    stock = 100
    rules = nudge.compile(
        f"""
        event grab {{ key user_id: string }}
        coupon flash {{ value: 50.0  stock: {stock}  shards: 4 }}
        rule grab_coupon {{ when g: grab() then coupon(template: flash, user: g.user_id) }}
        """
    )
    threads, per_thread = 8, 60
    barrier = threading.Barrier(threads)

    def work(k):
        s = rules.session()
        grabs = [("grab", {"user_id": f"t{k}-u{i}"}) for i in range(per_thread)]
        barrier.wait()
        out = []
        for i in range(0, per_thread, 10):
            out += s.run(grabs[i : i + 10])
        return out

    with ThreadPoolExecutor(threads) as pool:
        decisions = [d for ds in pool.map(work, range(threads)) for d in ds]
    assert len(decisions) == threads * per_thread
    issued = [d for d in decisions if d.status == "done"]
    assert len(issued) == stock
    assert len({d.details["coupon_id"] for d in issued}) == stock
    assert len({d.args["user"] for d in issued}) == stock
    refused = [d for d in decisions if d.status != "done"]
    assert {(d.status, d.reason, d.branch) for d in refused} == {("suppressed", "out_of_stock", "refused")}
