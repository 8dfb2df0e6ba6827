"""Threads: a ruleset shared by threads, a session shared by threads, and
the GIL released while the engine works."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import nudge
from conftest import SHOP


def events(n, user="u1"):
    return [
        ("order_created", {"user_id": user, "order_id": f"o{i}", "amount": float(i % 250), "created_at": i})
        for i in range(n)
    ]


def test_one_ruleset_used_from_four_threads(shop):
    def work(k):
        s = shop.session()
        s.insert("profile", {"user_id": f"u{k}", "name": "Ann", "tier": 3, "tags": ["gold"]})
        ds = s.fire() + s.run(events(3000, user=f"u{k}"), retract=True)
        return [(d.rule, d.args.get("amount")) for d in ds]

    baseline = work(0)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, range(4)))
    assert all(r == baseline for r in results)
    assert len(baseline) == 1 + sum(1 for i in range(3000) if i % 250 > 100)


def test_compiling_from_four_threads():
    with ThreadPoolExecutor(4) as pool:
        rulesets = list(pool.map(lambda _: nudge.compile(SHOP), range(8)))
    assert all(r.rule_names == rulesets[0].rule_names for r in rulesets)


def test_one_session_shared_by_four_threads(shop):
    s = shop.session()
    barrier = threading.Barrier(4)

    def work(k):
        barrier.wait()
        made = []
        for i in range(500):
            s.insert("order_created", {"user_id": f"u{k}", "order_id": f"{k}-{i}", "amount": 150.0, "created_at": 0})
            made += s.fire()
        return made

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, range(4)))
    decisions = [d for r in results for d in r]
    assert s.fact_count == 2000
    assert len(decisions) == 2000
    assert sorted(d.seq for d in decisions) == list(range(1, 2001))
    assert len({d.facts[0] for d in decisions}) == 2000


def test_batches_release_the_gil(shop):
    s = shop.session()
    batch = events(200_000)
    ticks = 0
    stop = threading.Event()
    started = threading.Event()

    def spin():
        nonlocal ticks
        started.set()
        while not stop.is_set():
            ticks += 1

    t = threading.Thread(target=spin)
    t.start()
    started.wait()
    try:
        before = ticks
        s.run(batch, retract=True)
        during = ticks - before
    finally:
        stop.set()
        t.join()
    assert during > 0, "another thread ran while the batch did"
