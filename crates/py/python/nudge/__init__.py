"""nudge: an embeddable rules-and-decisioning engine for marketing automation.

Rules written in nudge's rule language are checked and compiled once into a
:class:`Ruleset`; each :class:`Session` over it holds facts and events,
a clock and the host's answers (audiences, host functions, context
providers, reachability), and turns what happens into :class:`Decision`
objects, each checked by the ruleset's primitives (coupon stock, caps,
quiet hours, state machines, experiments) and saying what became of it::

    import nudge

    rules = nudge.compile('''
        event order_paid { key user_id: string  amount: float }
        rule big_order {
            when o: order_paid(amount > 100)
            then message(channel: "push", template: "thanks", user: o.user_id)
        }
    ''')
    session = rules.session()
    session.insert("order_paid", {"user_id": "u1", "amount": 120.0})
    for d in session.fire():
        print(d.rule, d.action, d.args, d.status, d.details)

See ``docs/python.md`` for the guide.
"""

from ._errors import (
    ActionError,
    AudienceError,
    CallbackError,
    ClockError,
    CompileError,
    FactError,
    LateEventError,
    NoSuchFactError,
    NudgeError,
    RuleError,
    RuleSyntaxError,
    RuleTypeError,
    RunLimitError,
    SessionError,
    SnapshotError,
)
from ._native import (
    Decision,
    Diagnostic,
    IdDictionary,
    Ruleset,
    Session,
    __version__,
    compile,
    compile_files,
)

__all__ = [
    "compile",
    "compile_files",
    "Ruleset",
    "Session",
    "Decision",
    "Diagnostic",
    "IdDictionary",
    "NudgeError",
    "RuleError",
    "RuleSyntaxError",
    "RuleTypeError",
    "CompileError",
    "FactError",
    "LateEventError",
    "NoSuchFactError",
    "SessionError",
    "RunLimitError",
    "ActionError",
    "ClockError",
    "SnapshotError",
    "AudienceError",
    "CallbackError",
    "__version__",
]
