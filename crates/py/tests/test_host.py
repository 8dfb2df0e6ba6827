"""The host: host functions, context providers and audiences as Python
callables and sets; callables that raise; experiments' arms by hash."""

from __future__ import annotations

import gc

import pytest

import nudge
from conftest import rules_of

RULES = """
event add_to_cart { key user_id: string  amount: float }
event visit { key user_id: string }

context features for visit { segment: string? }

function uplift_segment(user_id: string) -> string
function score(user_id: string, amount: float) -> float

audience vip
audience blocked
audience loyal
audience reachable = (vip or loyal) and not blocked

experiment push_copy { arms: { a: 50%, b: 50% } }

coupon c10 { value: 10.0 }

rule persuadable {
    when
        c: add_to_cart()
        uplift_segment(c.user_id) == "persuadable"
    then
        coupon(template: c10, user: c.user_id)
}

rule ab {
    when
        c: add_to_cart(amount > 100)
    then
        split(experiment: push_copy, user: c.user_id) {
            a => message(channel: "push", template: "copy_a", user: c.user_id)
            b => message(channel: "push", template: "copy_b", user: c.user_id)
        }
}

rule reachable_only {
    when
        c: add_to_cart(user_id in audience reachable)
    then
        message(channel: "sms", template: "vip", user: c.user_id)
}

rule high_score {
    when
        c: add_to_cart()
        score(c.user_id, c.amount) > 0.5
    then
        message(channel: "push", template: "score", user: c.user_id, score: score(c.user_id, c.amount))
}
"""


@pytest.fixture(scope="module")
def rules():
    return nudge.compile(RULES, filename="host.nudge")


def cart(user="u1", amount=50.0):
    return {"user_id": user, "amount": amount}


def test_the_ruleset_lists_what_a_host_provides(rules):
    assert rules.functions == ["uplift_segment", "score"]
    assert rules.audiences == ["vip", "blocked", "loyal"]
    assert rules.contexts == ["features"]


def test_host_functions(rules):
    s = rules.session()
    calls = []

    def uplift(user_id):
        calls.append(user_id)
        return "persuadable" if user_id == "u1" else "sure_thing"

    s.register_function("uplift_segment", uplift)
    s.register_function("score", lambda user, amount: amount / 100)
    s.insert("add_to_cart", cart("u1", 80.0))
    s.insert("add_to_cart", cart("u2", 20.0))
    ds = s.fire()
    assert sorted(rules_of(ds)) == ["high_score", "persuadable"]
    [scored] = [d for d in ds if d.rule == "high_score"]
    assert scored.args["score"] == 0.8
    assert set(calls) == {"u1", "u2"}


def test_an_unregistered_function_answers_none(rules):
    s = rules.session()
    s.insert("add_to_cart", cart())
    assert s.fire() == []


def test_register_checks_names_and_callables(rules):
    s = rules.session()
    with pytest.raises(ValueError, match="declares `uplift_segment`, `score`"):
        s.register_function("uplift", lambda u: "x")
    with pytest.raises(TypeError):
        s.register_function("score", 42)
    with pytest.raises(TypeError):
        s.register_provider("features", "a")
    with pytest.raises(ValueError, match="no context `feature` \\(it declares `features`\\)"):
        s.register_provider("feature", lambda fact: {})


def test_a_function_that_raises(rules):
    s = rules.session()

    def uplift(user_id):
        raise RuntimeError(f"model unavailable for {user_id}")

    s.register_function("uplift_segment", uplift)
    s.register_function("score", lambda user, amount: 0.9)
    with pytest.raises(nudge.CallbackError) as info:
        s.insert("add_to_cart", cart("u1"))
    e = info.value
    assert isinstance(e.__cause__, RuntimeError)
    assert str(e.__cause__) == "model unavailable for u1"
    assert e.callback == "uplift_segment" and e.kind == "function"
    assert e.rules == ["persuadable"]
    assert "host function `uplift_segment` (for rule `persuadable`) raised RuntimeError" in str(e)
    # The fact went in, matched as if every callable answered None for the
    # rest of the insert (`score` too).
    assert s.fact(e.fact_id) == ("add_to_cart", cart("u1"))
    assert s.fire() == []
    # The session goes on, and a fixed function is used from then on.
    s.register_function("uplift_segment", lambda u: "persuadable")
    s.insert("add_to_cart", cart("u2"))
    assert sorted(rules_of(s.fire())) == ["high_score", "persuadable"]


def test_a_function_that_raises_while_firing(rules):
    s = rules.session()
    s.register_function("uplift_segment", lambda u: "no")
    answers = iter([0.9, ValueError("boom")])

    def score(user, amount):
        a = next(answers)
        if isinstance(a, Exception):
            raise a
        return a

    s.register_function("score", score)
    s.insert("add_to_cart", cart("u1"))
    with pytest.raises(nudge.CallbackError) as info:
        s.fire()
    e = info.value
    assert isinstance(e.__cause__, ValueError)
    assert e.rules == ["high_score"]
    # The decision was made, with the failed argument as None.
    assert [(d.rule, d.args["score"]) for d in e.decisions] == [("high_score", None)]
    assert s.fire() == []


def test_a_function_that_answers_the_wrong_type(rules):
    s = rules.session()
    s.register_function("uplift_segment", lambda u: 42)
    with pytest.raises(nudge.CallbackError) as info:
        s.run([("add_to_cart", cart()), ("add_to_cart", cart("u2"))])
    e = info.value
    assert isinstance(e.__cause__, TypeError)
    assert "the result of host function `uplift_segment` is string: got int 42" in str(e.__cause__)
    assert e.index == 0
    assert s.fact_count == 1, "the run stopped after the item whose callable failed"


def test_the_experiment_picks_the_arm(rules):
    # Built-in actions are decided by the ruleset's primitives: a split's
    # arm comes from the experiment's hash (see test_primitives.py), and
    # the arm's branch runs. There are no branch choosers any more.
    s = rules.session()
    assert not hasattr(s, "register_chooser")
    ds = s.run([("add_to_cart", cart(u, 200.0)) for u in ("u1", "u2", "u3", "u4")])
    splits = [d for d in ds if d.action == "split"]
    assert len(splits) == 4
    for d in splits:
        assert d.status == "done"
        assert d.branch == d.details["arm"] and d.branch in ("a", "b")
        assert d.details["experiment"] == "push_copy"
        [sent] = [m for m in ds if m.rule == "ab" and m.action == "message" and m.args["user"] == d.args["user"]]
        assert sent.args["template"] == f"copy_{d.branch}"
    # The same user always lands in the same arm, in any session.
    again = rules.session().run([("add_to_cart", cart("u1", 300.0))])
    assert [d.branch for d in again if d.action == "split"] == [splits[0].branch]


def test_a_callback_cannot_reenter_its_session(rules):
    s = rules.session()
    s.register_function("uplift_segment", lambda u: s.fact_count)
    with pytest.raises(nudge.CallbackError) as info:
        s.insert("add_to_cart", cart())
    assert isinstance(info.value.__cause__, nudge.SessionError)
    assert "cannot use the session that is calling it" in str(info.value.__cause__)
    # Another session may be used from a callback.
    other = rules.session()
    s.register_function("uplift_segment", lambda u: "x" * other.fact_count)
    s.insert("add_to_cart", cart())


def test_audiences(rules):
    s = rules.session()
    s.set_audience("vip", ["u1", "u2"])
    s.set_audience("loyal", iter(["u3", 4]))
    s.set_audience("blocked", {"u2"})
    # reachable = (vip or loyal) and not blocked
    assert s.audiences == {"vip": 2, "blocked": 1, "loyal": 2, "reachable": 3}
    ds = s.run([("add_to_cart", cart(u)) for u in ["u1", "u2", "u3", "u4", "4"]])
    assert [d.args["user"] for d in ds if d.rule == "reachable_only"] == ["u1", "u3", "4"]
    # Replacing an audience affects facts matched from then on.
    s.set_audience("blocked", [])
    assert s.audiences["reachable"] == 4
    ds = s.run([("add_to_cart", cart("u2"))])
    assert rules_of(ds) == ["reachable_only"]


def test_audiences_hold_ids_as_text():
    rules = nudge.compile(
        "event visit { key user: int }\n"
        "audience vip\n"
        "rule r { when v: visit(user in audience vip) then message(channel: \"c\", template: \"t\", user: \"x\") }\n"
    )
    s = rules.session()
    s.set_audience("vip", ["42", 7])
    ds = s.run([("visit", {"user": u}) for u in (42, 7, 8, -42)])
    assert [s.fact(d.facts[0])[1]["user"] for d in ds] == [42, 7]


def test_audience_mistakes(rules):
    s = rules.session()
    with pytest.raises(ValueError, match="defined from other audiences"):
        s.set_audience("reachable", ["u1"])
    with pytest.raises(ValueError, match="no audience `vips`"):
        s.set_audience("vips", ["u1"])
    with pytest.raises(TypeError, match="user id"):
        s.set_audience("vip", ["u1", 1.5])
    with pytest.raises(TypeError, match="user id"):
        s.set_audience("vip", [True])
    with pytest.raises(TypeError):
        s.set_audience("vip", 42)
    assert s.audiences["vip"] == 0, "a refused audience leaves the old one"


def test_a_cycle_through_a_callable_is_collected(rules):
    freed = []

    class Model:
        def __init__(self, session):
            self.session = session

        def __call__(self, user_id):
            return "persuadable"

        def __del__(self):
            freed.append(True)

    s = rules.session()
    s.register_function("uplift_segment", Model(s))
    s.register_provider("features", Model(s))
    del s
    gc.collect()
    assert freed == [True, True]


def failing_for(user, answer="no"):
    """An `uplift_segment` that raises for `user`."""

    def uplift(user_id):
        if user_id == user:
            raise RuntimeError(f"model unavailable for {user_id}")
        return answer

    return uplift


def test_a_function_failing_on_a_batch_item_leaves_that_item_in(rules):
    carts = [cart("u1"), cart("u2", 200.0), cart("u3")]
    # insert_many: the item's fact is in, its id in the error.
    s = rules.session()
    s.register_function("uplift_segment", failing_for("u2"))
    with pytest.raises(nudge.CallbackError) as info:
        s.insert_many("add_to_cart", carts)
    e = info.value
    assert (e.index, e.kind) == (1, "function")
    assert s.fact(e.fact_id) == ("add_to_cart", carts[1])
    assert [f[2] for f in s.facts()] == carts[:2]
    assert len(s.insert_many("add_to_cart", carts[e.index + 1 :])) == 1
    # run: the item is in and its rules fired.
    for retract in (False, True):
        s = rules.session()
        s.register_function("uplift_segment", failing_for("u2"))
        with pytest.raises(nudge.CallbackError) as info:
            s.run([("add_to_cart", c) for c in carts], retract=retract)
        e = info.value
        assert e.index == 1 and e.fact_id is not None
        assert [d.args["user"] for d in e.decisions if d.action == "split"] == ["u2"]
        assert s.fact(e.fact_id) == (None if retract else ("add_to_cart", carts[1]))
        assert s.fact_count == (0 if retract else 2)
    # replay: the same, for an insert.
    s = rules.session()
    s.register_function("uplift_segment", failing_for("u2"))
    with pytest.raises(nudge.CallbackError) as info:
        s.replay([{"insert": "add_to_cart", "fields": c, "ref": c["user_id"]} for c in carts])
    e = info.value
    assert e.index == 1 and e.fact_id is not None
    assert s.fact("u2") == s.fact(e.fact_id) == ("add_to_cart", carts[1])
    assert [d.args["user"] for d in e.decisions if d.action == "split"] == ["u2"]


def test_a_provider_failing_on_a_batch_item_refuses_that_item(rules):
    visits = [{"user_id": u} for u in ("u1", "u2", "u3")]

    def features(fact):
        if fact["user_id"] == "u2":
            raise ConnectionError("feature store down")
        return {"segment": "a"}

    for call in (
        lambda s: s.insert_many("visit", visits),
        lambda s: s.run([("visit", v) for v in visits]),
        lambda s: s.replay([{"insert": "visit", "fields": v} for v in visits]),
    ):
        s = rules.session()
        s.register_provider("features", features)
        with pytest.raises(nudge.CallbackError) as info:
            call(s)
        e = info.value
        assert (e.index, e.kind, e.fact_id) == (1, "provider", None)
        assert [f[2]["user_id"] for f in s.facts()] == ["u1"]


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
def test_an_interrupt_in_a_callable_is_raised_as_itself(rules, interrupt):
    def stop(*args):
        raise interrupt("stop")

    s = rules.session()
    s.register_function("uplift_segment", stop)
    s.register_function("score", lambda user, amount: 0.9)
    caught = None
    try:
        s.insert("add_to_cart", cart("u1"))
    except nudge.NudgeError as e:  # must not catch it
        caught = e
    except interrupt:
        pass
    assert caught is None
    # The insert finished as if the callable answered None.
    assert s.fact_count == 1
    with pytest.raises(interrupt) as info:
        s.run([("add_to_cart", cart("u2")), ("add_to_cart", cart("u3"))])
    assert info.value.index == 0
    assert s.fact_count == 2
    s.register_provider("features", stop)
    with pytest.raises(interrupt):
        s.insert("visit", {"user_id": "u1"})
    assert s.fact_count == 2, "the provider's fact was refused"
    # The session goes on.
    s.register_function("uplift_segment", lambda u: "persuadable")
    s.insert("add_to_cart", cart("u4"))
    assert sorted(rules_of(s.fire())) == ["high_score", "persuadable"]


def test_a_single_str_is_not_a_list_of_ids(rules):
    s = rules.session()
    for ids in ("ann", b"ann", bytearray(b"ann")):
        with pytest.raises(TypeError, match="audience `vip` are an iterable of user ids"):
            s.set_audience("vip", ids)
        with pytest.raises(TypeError, match="intern_many"):
            s.ids.intern_many(ids)
    with pytest.raises(TypeError, match="a single id goes in a list") as info:
        s.replay([{"advance": "1m"}, {"audience": "vip", "members": "u9"}])
    assert info.value.index == 1
    assert s.audiences["vip"] == 0 and len(s.ids) == 0
    s.set_audience("vip", ["ann"])
    assert s.ids.to_list() == ["ann"]


def test_user_ids_beyond_128_bits_are_refused(rules):
    s = rules.session()
    big = 2**200
    with pytest.raises(ValueError, match="argument `user` of `set_reachable` is a user id .* does not fit in 128 bits"):
        s.set_reachable(big, "sms", False)
    with pytest.raises(ValueError, match="argument `user` of `set_opted_out`"):
        s.set_opted_out(big, "sms", True)
    with pytest.raises(ValueError, match="a member of audience `vip`"):
        s.set_audience("vip", ["u1", big])
    with pytest.raises(ValueError, match="`user` of a `reach` operation") as info:
        s.replay([{"reach": {"user": big, "channel": "sms", "reachable": False}}])
    assert info.value.index == 0
    with pytest.raises(ValueError, match="argument `id` of `IdDictionary.intern`"):
        s.ids.intern(-big)
    with pytest.raises(ValueError, match="IdDictionary.index"):
        s.ids.index(big)
    assert s.audiences["vip"] == 0 and len(s.ids) == 0
    # Up to 128 bits, an int id is its text.
    s.set_audience("vip", [2**100])
    assert s.ids.to_list() == [str(2**100)]
