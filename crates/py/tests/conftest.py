"""Shared rule texts and fixtures of the nudge Python tests."""

from __future__ import annotations

import pathlib

import pytest

import nudge

#: The repository root (the tests read its example rule files).
ROOT = pathlib.Path(__file__).resolve().parents[3]

SHOP = """
event order_created {
    key user_id: string
    order_id: string
    amount: float
    time created_at: timestamp
}

event order_paid {
    key user_id: string
    order_id: string
    time paid_at: timestamp
}

fact profile {
    key user_id: string
    name: string
    tier: int?
    tags: list<string>
    vip: bool?
}

rule big_order {
    salience 5
    when
        o: order_created(amount > 100)
    then
        message(channel: "push", template: "thanks", user: o.user_id, amount: o.amount)
}

rule unpaid_order_sms {
    when
        o: order_created()
        p: profile(user_id == o.user_id)
        not order_paid(order_id == o.order_id) after o within 10m
    then
        message(channel: "sms", template: "order_waiting", user: o.user_id, name: p.name)
}

rule gold_member {
    when
        p: profile(tier >= 3, "gold" in tags)
    then
        tag_user(user: p.user_id, tag: "gold")
}

action tag_user(user: string, tag: string)
"""


@pytest.fixture(scope="session")
def shop() -> nudge.Ruleset:
    """The shop rules, compiled once and shared (a ruleset is immutable)."""
    return nudge.compile(SHOP, filename="shop.nudge")


@pytest.fixture
def session(shop: nudge.Ruleset) -> nudge.Session:
    """A fresh session over the shop rules."""
    return shop.session()


def rules_of(decisions):
    """The rule names of decisions, in order."""
    return [d.rule for d in decisions]
