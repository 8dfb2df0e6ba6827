"""The exceptions nudge raises.

Every error of nudge's own is a :class:`NudgeError`. Mistakes in rule text
are :class:`RuleError` (also a ``ValueError``), split by stage:

* :class:`RuleSyntaxError`: the text cannot be read: ``E001`` (syntax),
  ``E002`` (a literal out of range or malformed) and ``E003`` (an included
  file cannot be read).
* :class:`RuleTypeError`: the text reads, but does not check: every other
  code, ``E004`` to ``E015`` (names declared twice, unknown types, fields,
  names, actions or states, types that do not fit, bad settings, time
  constructs out of place, audience cycles).

When a ruleset has mistakes of both kinds, the syntax error is raised: the
checker saw only the parts it could read. Either way ``diagnostics`` holds
every mistake found.

Values of the wrong Python type raise the built-in ``TypeError``, values that
do not fit raise ``ValueError``; neither is a :class:`NudgeError`.
"""

from __future__ import annotations

from typing import Any, FrozenSet, List, Optional, Sequence

__all__ = [
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
    "SYNTAX_CODES",
]

#: Diagnostic codes that make a :class:`RuleSyntaxError`; every other code
#: makes a :class:`RuleTypeError`.
SYNTAX_CODES = frozenset({"E001", "E002", "E003"})


class NudgeError(Exception):
    """Base class of every error nudge raises.

    An error raised by a call that runs rules (``fire``, ``advance_to``,
    ``run``, ``replay``...) carries in ``decisions`` the decisions made by
    that call before it failed; they are no longer held by the session. An
    error raised by a batch call carries in ``index`` the position of the
    item that failed (items before it were applied).
    """

    decisions: List[Any]
    index: Optional[int]

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.decisions = []
        self.index = None


class RuleError(NudgeError, ValueError):
    """Rule text with mistakes.

    The message is every mistake rendered with its position, the line and a
    caret. ``diagnostics`` holds each mistake as a :class:`nudge.Diagnostic`;
    ``file``, ``line``, ``column`` and ``code`` are those of the first mistake
    of this error's kind.
    """

    _codes: FrozenSet[str] = frozenset()

    def __init__(self, message: str, diagnostics: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.diagnostics = list(diagnostics)

    @property
    def _primary(self) -> Optional[Any]:
        for d in self.diagnostics:
            if d.code in self._codes:
                return d
        return self.diagnostics[0] if self.diagnostics else None

    @property
    def file(self) -> Optional[str]:
        """The file of the first mistake."""
        d = self._primary
        return d.file if d is not None else None

    @property
    def line(self) -> Optional[int]:
        """The line of the first mistake, from 1."""
        d = self._primary
        return d.line if d is not None else None

    @property
    def column(self) -> Optional[int]:
        """The column of the first mistake, from 1 (in characters)."""
        d = self._primary
        return d.column if d is not None else None

    @property
    def code(self) -> Optional[str]:
        """The code of the first mistake (``E001``...)."""
        d = self._primary
        return d.code if d is not None else None


class RuleSyntaxError(RuleError):
    """Rule text that cannot be read: codes ``E001``, ``E002``, ``E003``."""

    _codes = SYNTAX_CODES


class RuleTypeError(RuleError):
    """Rule text that reads but does not check: codes ``E004`` to ``E015``."""

    _codes = frozenset(f"E{n:03}" for n in range(4, 100))


class CompileError(NudgeError):
    """Rules that check but use a construct the engine does not run."""


class FactError(NudgeError, ValueError):
    """The engine refused a fact; the session is unchanged."""


class LateEventError(FactError):
    """An event older than the session's watermark (its clock less the
    lateness). Raise the session's ``lateness`` to accept such events."""


class NoSuchFactError(FactError, LookupError):
    """The fact id or ref names no live fact (it was retracted, expired, or
    never inserted)."""


class SessionError(NudgeError):
    """A session call failed."""


class RunLimitError(SessionError):
    """``fire`` reached the session's ``max_firings`` with activations still
    pending: rules may be activating each other for ever."""


class ActionError(SessionError):
    """An action of a firing rule failed (a rule's ``insert`` made an
    invalid fact...). ``rule`` names the rule; its earlier actions took
    effect."""

    rule: Optional[str] = None


class ClockError(SessionError, ValueError):
    """The clock was asked to go back; nothing changed."""


class SnapshotError(NudgeError, ValueError):
    """Bytes that are not a snapshot of a session over the same rules."""


class AudienceError(NudgeError, ValueError):
    """An audience that cannot be set or read: a name the rules do not
    declare (or one defined from other audiences, given members), bytes
    that are not a bitmap in the format given, or a bitmap holding a user
    index that the session's id dictionary has not given. The message names
    the audience; the audience is unchanged."""


class CallbackError(NudgeError):
    """A Python callable registered on a session raised (or returned a value
    of the wrong type) while the engine ran.

    The original exception is the ``__cause__``. ``callback`` names the host
    function or the context whose provider failed, ``kind`` is
    ``"function"`` or ``"provider"``, and ``rules`` names the rules
    concerned. For the rest of the call that failed, every registered
    callable answered ``None`` (no value, no field) without being called;
    what the call did stands, and the session stays usable.

    ``fact_id`` is set when the fact given to ``insert`` (or by the batch
    item at ``index`` of ``insert_many``, ``run`` or ``replay``) went in:
    a host function failed while it was matched or its rules fired, and
    the item took effect. A provider's failure refuses the fact it was
    asked about: a fact given to ``insert`` or by a batch item is not
    inserted (``fact_id`` is ``None``, the session unchanged by it), and a
    rule's ``insert`` fails that rule's action, which ``rules`` then names.

    A ``KeyboardInterrupt`` or ``SystemExit`` (any exception that is not an
    ``Exception``) raised by a callable is not wrapped: once the engine call
    has finished as for any failure, it is raised as itself.
    """

    callback: Optional[str] = None
    kind: Optional[str] = None
    fact_id: Optional[int] = None
    rules: List[str]

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.rules = []
