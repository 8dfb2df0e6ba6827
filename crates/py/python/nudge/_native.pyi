"""Type stubs of the native module ``nudge._native``.

Every name here is re-exported by the ``nudge`` package; import from there.
"""

from __future__ import annotations

import datetime
import os
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Literal,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
    final,
)

__all__ = [
    "Ruleset",
    "Diagnostic",
    "Session",
    "Decision",
    "IdDictionary",
    "compile",
    "compile_files",
    "__version__",
]
__version__: str

#: A fact's id, stable for the fact's life.
_FactId = int
#: A fact named by its id or by the ``ref`` it was inserted with.
_FactRef = Union[int, str]
#: A point in time: an aware ``datetime`` (a naive one is read as UTC),
#: milliseconds since the epoch, or RFC 3339 text.
_TimeLike = Union[datetime.datetime, int, str]
#: A span of time: a ``timedelta``, milliseconds, or a literal such as ``"10m"``.
_DurationLike = Union[datetime.timedelta, int, str]
#: A field value: ``str``, ``int``, ``float``, ``bool``, ``None``, a time,
#: a span, or a list of ``str``.
_FieldValue = Union[
    str,
    int,
    float,
    bool,
    None,
    datetime.datetime,
    datetime.timedelta,
    Sequence[str],
]
#: A fact's fields: a dict, a dataclass instance, a pydantic model, a named
#: tuple or any mapping.
_Fields = Union[Mapping[str, _FieldValue], Any]

def compile(text: str, *, filename: str = "rules.nudge") -> Ruleset:
    """Checks and compiles rule text held in a string.

    ``filename`` names the text in diagnostics; ``include`` lines are read
    from disk relative to it. The work runs without the GIL.

    Raises ``RuleSyntaxError`` or ``RuleTypeError`` (both ``RuleError``, a
    ``ValueError``) listing every mistake, or ``CompileError``.
    """

def compile_files(paths: Sequence[Union[str, os.PathLike[str]]]) -> Ruleset:
    """Checks and compiles rule files, with the files they include, as one
    ruleset. The work runs without the GIL.

    Raises ``RuleSyntaxError``, ``RuleTypeError`` or ``CompileError``; a file
    that cannot be read is a ``RuleSyntaxError`` with code ``E003``.
    """

@final
class Diagnostic:
    """One mistake in rule text, with its position.

    ``str(d)`` renders it as ``nudge check`` does: the position, the line, a
    caret under the culprit, and a suggestion where one is obvious.
    """

    @property
    def code(self) -> str:
        """The code: ``E001`` to ``E015`` (see the language reference)."""
    @property
    def kind(self) -> str:
        """The kind, in words: ``"syntax"``, ``"unknown_field"``..."""
    @property
    def message(self) -> str:
        """What is wrong, in one line."""
    @property
    def file(self) -> str:
        """The file."""
    @property
    def line(self) -> int:
        """The line of the culprit's start, from 1."""
    @property
    def column(self) -> int:
        """The column of the culprit's start, from 1, in characters."""
    @property
    def end_line(self) -> int:
        """The line of the culprit's end."""
    @property
    def end_column(self) -> int:
        """The column just past the culprit's end."""
    @property
    def label(self) -> str:
        """What the caret says."""
    @property
    def help(self) -> Optional[str]:
        """A suggested fix, if any."""

@final
class Ruleset:
    """A checked and compiled ruleset.

    Immutable: share one between any number of sessions and threads. Make
    one with :func:`compile` or :func:`compile_files`. Its sessions share
    the state its primitives count in: coupon stock, issued coupons, caps,
    campaign limits, identity links.
    """

    def session(
        self,
        *,
        lateness: Optional[_DurationLike] = None,
        clock: str = "pseudo",
        late: str = "reject",
        max_firings: int = 100_000,
    ) -> Session:
        """A new session over these rules, with an empty working memory.

        ``lateness`` is how late an event may arrive and still count;
        ``late`` is what happens to a later one: ``"reject"`` (raise
        ``LateEventError``) or ``"at_watermark"``. ``clock`` is
        ``"pseudo"`` (moved by ``advance_to``/``advance_by``) or
        ``"system"`` (``fire`` first moves it to the system time).
        ``max_firings`` bounds the firings of one call.
        """
    @property
    def rule_names(self) -> List[str]:
        """The names of the rules, in the order written."""
    @property
    def types(self) -> Dict[str, Dict[str, str]]:
        """The fact and event types: ``{type: {field: type}}``; an optional
        field's type ends with ``?``."""
    @property
    def event_types(self) -> List[str]:
        """The names of the event types (the other types are facts)."""
    @property
    def audiences(self) -> List[str]:
        """The audiences a host loads with ``Session.set_audience`` or
        ``Session.set_audience_bytes``."""
    @property
    def functions(self) -> List[str]:
        """The host functions the rules declare."""
    @property
    def contexts(self) -> List[str]:
        """The context providers the rules declare, which
        ``Session.register_provider`` provides."""

@final
class Decision:
    """What a rule asked the host to do, and what became of it once the
    ruleset's primitives checked it (``status``, ``reason``, ``until``,
    ``details``). Running it is the caller's job.

    Decisions compare equal when every attribute is equal.
    """

    @property
    def seq(self) -> int:
        """Position in the session's stream of decisions, from 1."""
    @property
    def rule(self) -> str:
        """The name of the rule that fired."""
    @property
    def action(self) -> str:
        """The action: ``"message"``, ``"coupon"``, ``"transition"``,
        ``"split"``, ``"link_identity"``, or a host action."""
    @property
    def args(self) -> Dict[str, Any]:
        """The arguments by name, in the order written (a new dict each time)."""
    @property
    def facts(self) -> List[_FactId]:
        """The ids of the facts the rule matched, one per binding pattern."""
    @property
    def time(self) -> datetime.datetime:
        """When the decision was made, on the session clock (UTC)."""
    @property
    def time_ms(self) -> int:
        """When the decision was made, in milliseconds since the epoch."""
    @property
    def branch(self) -> Optional[str]:
        """The branch the primitives picked and ran (an experiment's arm,
        ``"issued"`` or ``"refused"``), or ``None``."""
    @property
    def status(self) -> Literal["done", "suppressed", "deferred", "failed"]:
        """What became of the decision: ``"done"``, ``"suppressed"`` (see
        ``reason``), ``"deferred"`` (decided again at ``until``) or
        ``"failed"``."""
    @property
    def reason(self) -> Optional[str]:
        """Why a decision was suppressed or failed (``"out_of_stock"``,
        ``"capped"``, ``"illegal_transition"``...); ``None`` otherwise."""
    @property
    def until(self) -> Optional[datetime.datetime]:
        """When a deferred decision is decided again (UTC); ``None``
        otherwise."""
    @property
    def details(self) -> Dict[str, Any]:
        """What the primitives recorded, by name (a new dict each time):
        ``coupon_id``, ``channel``, ``skipped``, ``cap``, ``arm``,
        ``bucket``, ``from``, ``to``..."""
    def arg(self, name: str, default: Any = None) -> Any:
        """The value of argument ``name``, or ``default``."""
    def detail(self, name: str, default: Any = None) -> Any:
        """The value of detail ``name``, or ``default``."""
    def to_dict(self) -> Dict[str, Any]:
        """The decision as a dict: ``seq``, ``rule``, ``action``, ``args``,
        ``facts``, ``time`` and ``branch``; then ``status`` with ``reason``
        (or ``until``) unless it is done, and ``details`` unless empty, as
        ``nudge replay`` prints them."""

@final
class Session:
    """A working memory, a clock and a host over a :class:`Ruleset`.

    Any thread may use a session, one call at a time; batch calls and firing
    run without the GIL.
    """

    def __new__(
        cls,
        ruleset: Ruleset,
        *,
        lateness: Optional[_DurationLike] = None,
        clock: str = "pseudo",
        late: str = "reject",
        max_firings: int = 100_000,
    ) -> Session:
        """The same as ``ruleset.session(...)``."""
    @property
    def ruleset(self) -> Ruleset:
        """The ruleset the session runs."""
    def insert(self, type_name: str, fields: _Fields, ref: Optional[str] = None) -> _FactId:
        """Inserts a fact or event and returns its id; context providers
        fill their fields first. Rules do not fire until ``fire``. Raises
        ``TypeError``/``ValueError`` for fields that do not fit (the session
        is unchanged), ``LateEventError`` for an event older than the
        watermark, ``CallbackError`` for a provider that failed (the insert
        is refused)."""
    def insert_many(self, type_name: str, items: Iterable[_Fields]) -> List[_FactId]:
        """Inserts many facts of one type without firing; returns their ids.
        On an error the items before the failing one are inserted and the
        exception's ``index`` is the failing item's position. That item was
        refused, unless the error is a ``CallbackError`` with a ``fact_id``
        (a host function failed while the fact matched; the fact is in)."""
    def modify(
        self,
        fact: _FactRef,
        changes: Optional[Mapping[str, _FieldValue]] = None,
        /,
        **fields: _FieldValue,
    ) -> None:
        """Changes fields of a fact, keeping its identity. Rules do not fire
        until ``fire``."""
    def retract(self, fact: _FactRef) -> None:
        """Removes a fact, with every match it took part in."""
    def fire(self) -> List[Decision]:
        """Fires the rules whose conditions hold and returns the decisions
        made."""
    def advance_to(self, when: _TimeLike) -> List[Decision]:
        """Moves the clock to ``when``, firing every timer due on the way at
        its own instant; returns the decisions made. An earlier time raises
        ``ClockError``; one Python's ``datetime`` cannot hold (after 9999)
        raises ``ValueError``."""
    def advance_by(self, delta: _DurationLike) -> List[Decision]:
        """Moves the clock forward by ``delta``; see ``advance_to``."""
    @property
    def now(self) -> datetime.datetime:
        """The session clock (UTC)."""
    @property
    def watermark(self) -> datetime.datetime:
        """The clock less the lateness (no earlier than the earliest
        ``datetime``)."""
    def run(
        self, events: Iterable[Tuple[str, _Fields]], *, retract: bool = False
    ) -> List[Decision]:
        """Feeds ``(type_name, fields)`` events: the clock follows each
        event's time, the event is inserted, the rules fire; with
        ``retract=True`` each event is retracted after its rules fired.
        Runs in chunks without the GIL. On an error the events before
        ``index`` took effect; the failing one too when its event was in (a
        ``CallbackError`` with a ``fact_id``, an ``ActionError``, a
        ``RunLimitError``)."""
    def replay(self, ops: Iterable[Mapping[str, Any]]) -> List[Decision]:
        """Replays ``insert``/``modify``/``retract``/``advance`` operations
        and ``audience``/``context``/``reach``/``address`` lines, as ``nudge
        replay`` does with JSON lines, firing after each; returns the
        decisions made. An operation with two kinds, a key its kind does not
        take or a key it needs left out raises ``ValueError``. Contexts
        without a provider answer nulls, as in ``nudge replay``, from the
        first operation on. Runs in chunks without the GIL."""
    def snapshot(self) -> bytes:
        """The session's state as bytes (callables, audiences, the id
        dictionary and refs are not part of it)."""
    @staticmethod
    def restore(ruleset: Ruleset, data: bytes) -> Session:
        """A new session restored from ``snapshot()`` bytes over the same
        rules, its matches rebuilt with no audience, host function or
        provider: for rules that use those, set a session up and call
        ``load_snapshot``. Raises ``SnapshotError``."""
    def load_snapshot(self, data: bytes) -> None:
        """Replaces this session's state with ``snapshot()`` bytes, keeping
        its host (callables, audiences, the id dictionary, reachability),
        which the matches are rebuilt with; refs are dropped. Raises
        ``SnapshotError`` (the session unchanged), or ``CallbackError`` if
        a callable failed during the restore."""
    def fact(self, fact: _FactRef) -> Optional[Tuple[str, Dict[str, Any]]]:
        """The type name and fields of a live fact, or ``None``."""
    def facts(self, type_name: Optional[str] = None) -> List[Tuple[_FactId, str, Dict[str, Any]]]:
        """The live facts and events as ``(id, type_name, fields)``."""
    @property
    def fact_count(self) -> int:
        """The number of live facts and events."""
    @property
    def counters(self) -> Dict[str, int]:
        """``alpha_tests``, ``firings``, ``late_events``,
        ``expired_events`` and ``timers``."""
    def register_function(self, name: str, fn: Callable[..., Any]) -> None:
        """Provides host function ``name`` (declared with ``function``):
        ``fn`` gets the arguments and answers a value of the declared type,
        or ``None`` for no answer. If it raises, the engine call goes on as
        if every callable answered ``None`` and ``CallbackError`` is raised
        when the call returns."""
    def register_provider(
        self,
        context_name: str,
        fn: Callable[[Dict[str, Any]], Optional[Mapping[str, Any]]],
    ) -> None:
        """Registers the provider of context ``context_name``: ``fn`` gets
        each inserted fact of a type the context fills as a dict and answers
        a dict of the context's fields. If it raises or answers a wrong
        field or type, the insert is refused and ``CallbackError`` is
        raised."""
    def set_reachable(self, user: Union[str, int], channel: str, reachable: bool) -> None:
        """Records whether ``user`` can be reached on ``channel``; messages
        fall back to the next channel of their list, or are suppressed
        (``"unreachable"``)."""
    def set_channel_address(self, channel: str, type_name: str, field: str) -> None:
        """Makes ``field`` of the keyed fact type ``type_name`` the users'
        address on ``channel``: a user whose fact has it ``None``, or who
        has no such fact, cannot be reached there."""
    def set_opted_out(self, user: Union[str, int], channel: str, opted_out: bool) -> None:
        """Records whether ``user`` opted out of ``channel``; messages skip
        such channels."""
    def set_audience(self, name: str, ids: Iterable[Union[str, int]]) -> None:
        """Replaces the members of audience ``name`` (one the rules declare
        without a definition) with ``ids``, interning them in ``ids``; ids
        are compared as text (``42`` is ``"42"``). Audiences defined from
        others follow. Raises ``AudienceError`` for a name that is not a
        loaded audience, ``TypeError`` for a single ``str`` in place of the
        iterable."""
    def set_audience_bytes(
        self,
        name: str,
        data: Union[bytes, bytearray, memoryview],
        *,
        format: str = "portable",
    ) -> None:
        """Replaces the members of audience ``name`` with a bitmap's bytes,
        whose values are user indices of the session's id dictionary
        (``ids``). ``format`` is ``"portable"`` (pyroaring's
        ``BitMap.serialize()``, the Roaring portable format) or
        ``"clickhouse"`` (a ``groupBitmap`` state of a ``UInt32`` column).
        Raises ``AudienceError`` naming the audience for bytes that are not
        such a bitmap, or that hold an index the dictionary has not given."""
    def audience_bytes(self, name: str, *, format: str = "portable") -> bytes:
        """The members of audience ``name`` (loaded or defined) as a bitmap's
        bytes of user indices of ``ids``, in ``format`` (``"portable"``,
        for pyroaring's ``BitMap.deserialize``, or ``"clickhouse"``)."""
    @property
    def ids(self) -> IdDictionary:
        """The session's id dictionary: user ids to the dense indices its
        audiences hold, and back (the session's own, not a copy)."""
    @property
    def audiences(self) -> Dict[str, int]:
        """The number of members of each audience, loaded or defined."""

@final
class IdDictionary:
    """The dictionary between user ids and the dense user indices that a
    session's audiences hold, as Roaring bitmaps; get it from
    ``session.ids``.

    Ids get the indices ``0, 1, 2, ...`` in order of first appearance, and an
    index never changes once given. Ids are text: ``42`` is ``"42"``.
    """

    def index(self, id: Union[str, int]) -> Optional[int]:
        """The index of user ``id``, or ``None``; never adds the id."""
    def id(self, index: int) -> Optional[str]:
        """The user id of ``index``, or ``None`` if no id has it."""
    def intern(self, id: Union[str, int]) -> int:
        """The index of user ``id``, giving it the next one if it has none."""
    def intern_many(self, ids: Iterable[Union[str, int]]) -> List[int]:
        """The indices of ``ids`` (not a single ``str``), in order, interning
        new ones."""
    def to_list(self) -> List[str]:
        """Every id, in index order."""
    def __len__(self) -> int: ...
    def __contains__(self, id: object, /) -> bool: ...
