"""W2 (marketing triggers) from Python, through the batch API.

The rules and events are those of ``benches/workload.rs``, generated here
with the same SplitMix64 generator and seeds, so the firings match the Rust
bench event for event. Rules are written as rule text and compiled with
``nudge.compile``; events are pre-built ``(type, fields)`` pairs fed in batches
with ``Session.run(batch, retract=True)``: each event is inserted, every
matching rule fires once, and the event is retracted.

Before timing, the firings and their checksum (the sum of the fired rule
indexes) over the first 2,000 events are checked against a naive loop that
evaluates every rule of the event's type.

Run: ``python crates/py/bench/w2.py [--rules 100 1000 10000] [--events N]``
"""

from __future__ import annotations

import argparse
import operator
import time
from typing import List

import nudge

MASK = (1 << 64) - 1
EVENT_TYPES = ["page_view", "add_to_cart", "order_paid", "app_open", "coupon_redeemed"]
WEIGHTS = [40, 20, 12, 20, 8]
CHANNELS = ["app", "web", "mini_program", "store"]
FIELDS = ["category", "amount", "channel", "city", "level"]


class Rng:
    """SplitMix64, as in ``benches/workload.rs``."""

    def __init__(self, seed: int) -> None:
        self.state = seed & MASK

    def next_u64(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        return self.next_u64() % n


def pool(field):
    """The shared pool of 31 conditions, for one field: (text, field, op, value)."""
    if field == "category":
        return [("==", f"cat{k}") for k in range(10)]
    if field == "amount":
        return [(">", v) for v in (100, 200, 500, 1000, 1500)] + [("<", v) for v in (50, 200)]
    if field == "channel":
        return [("==", c) for c in CHANNELS]
    if field == "city":
        return [("==", f"city{k}") for k in range(10)]
    return [(">=", v) for v in (3, 5, 7, 9)] + [("<=", 2)]


def w2_rules(r: int, seed: int = 7):
    """R rules: rule text, and per rule its type and tests (for the check)."""
    rng = Rng(seed)
    lines = [f"event {t} {{ user: int  category: string  amount: int  channel: string  city: string  level: int }}" for t in EVENT_TYPES]
    lines.append("action fire(user: int)")
    tests_of = []
    for i in range(r):
        ty = EVENT_TYPES[rng.below(5)]
        n = 2 + rng.below(3)
        chosen: List[str] = []
        while len(chosen) < n:
            f = FIELDS[rng.below(5)]
            if f not in chosen:
                chosen.append(f)
        tests = []
        for f in chosen:
            p = pool(f)
            op, value = p[rng.below(len(p))]
            tests.append((f, op, value))
        text = ", ".join(f'{f} {op} "{v}"' if isinstance(v, str) else f"{f} {op} {v}" for f, op, v in tests)
        lines.append(f"rule w2_{i} {{ when e: {ty}({text}) then fire(user: e.user) }}")
        tests_of.append((ty, tests))
    return "\n".join(lines) + "\n", tests_of


def w2_events(n: int, seed: int = 11):
    """n events, types by weight, fields uniform, as (type, fields) pairs."""
    rng = Rng(seed ^ 0x5EED)
    categories = [f"cat{k}" for k in range(50)]
    cities = [f"city{k}" for k in range(100)]
    out = []
    for _ in range(n):
        roll = rng.below(100)
        ty = 0
        while roll >= WEIGHTS[ty]:
            roll -= WEIGHTS[ty]
            ty += 1
        fields = {
            "user": 1 + rng.below(100_000),
            "category": categories[rng.below(50)],
            "amount": rng.below(2_001),
            "channel": CHANNELS[rng.below(4)],
            "city": cities[rng.below(100)],
            "level": 1 + rng.below(10),
        }
        out.append((EVENT_TYPES[ty], fields))
    return out


OPS = {"==": operator.eq, ">": operator.gt, "<": operator.lt, ">=": operator.ge, "<=": operator.le}


def naive(tests_of, events):
    """Every rule of the event's type, every test: (firings, checksum)."""
    firings = checksum = 0
    for ty, fields in events:
        for i, (rty, tests) in enumerate(tests_of):
            if rty == ty and all(OPS[op](fields[f], v) for f, op, v in tests):
                firings += 1
                checksum += i
    return firings, checksum


def engine(decisions):
    return len(decisions), sum(int(d.rule[3:]) for d in decisions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, nargs="+", default=[100, 1_000, 10_000])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=10_000, help="events per call to Session.run")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per size (the best is reported)")
    args = parser.parse_args()

    print(f"generating {args.events:,} W2 events...", flush=True)
    events = w2_events(args.events)
    print(f"{'rules':>7}  {'compile':>9}  {'firings':>10}  {'per event':>9}  {'events/s':>10}")
    for r in args.rules:
        text, tests_of = w2_rules(r)
        t0 = time.perf_counter()
        rules = nudge.compile(text, filename=f"w2_{r}.nudge")
        compiled = time.perf_counter() - t0

        sample = events[:2_000]
        got = engine(rules.session().run(sample, retract=True))
        want = naive(tests_of, sample)
        assert got == want, f"R = {r}: engine {got} and naive loop {want} disagree"

        best = float("inf")
        for _ in range(args.repeat):
            session = rules.session()
            made = 0
            t0 = time.perf_counter()
            # A service takes decisions batch by batch and acts on them.
            for k in range(0, len(events), args.batch):
                made += len(session.run(events[k : k + args.batch], retract=True))
            best = min(best, time.perf_counter() - t0)
            assert session.fact_count == 0
        per_event = made / len(events)
        print(
            f"{r:>7,}  {compiled * 1000:>7.0f}ms  {made:>10,}  {per_event:>9.1f}  {len(events) / best:>10,.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
