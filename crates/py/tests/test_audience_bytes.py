"""Audiences as bitmaps: pyroaring's portable bytes and ClickHouse
groupBitmap states in and out of a session, over the session's id
dictionary."""

from __future__ import annotations

import random

import pytest
from pyroaring import BitMap

import nudge

RULES = """
event visit { key user: string }
audience vip
audience blocked
audience reachable = vip and not blocked
rule vip_visit {
    when v: visit(user in audience vip)
    then message(channel: "push", template: "vip", user: v.user)
}
rule reachable_visit {
    when v: visit(user in audience reachable)
    then message(channel: "sms", template: "reachable", user: v.user)
}
"""

USERS = [f"u{i}" for i in range(10)]


@pytest.fixture(scope="module")
def rules():
    return nudge.compile(RULES)


@pytest.fixture
def s(rules):
    session = rules.session()
    session.ids.intern_many(USERS)
    return session


def members(session, rule, users):
    """The users a visit of whom fires `rule`, in the order visited."""
    decisions = session.run([("visit", {"user": u}) for u in users], retract=True)
    return [d.args["user"] for d in decisions if d.rule == rule]


def varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def clickhouse_state(bm):
    """A groupBitmap state of a UInt32 column as ClickHouse writes it: up to
    32 values as a small set, more as a portable bitmap."""
    if len(bm) <= 32:
        return b"\x00" + varint(len(bm)) + b"".join(v.to_bytes(4, "little") for v in bm)
    portable = bytes(bm.serialize())
    return b"\x01" + varint(len(portable)) + portable


def read_clickhouse_state(data):
    """The values of a groupBitmap state, read here independently."""
    kind, rest = data[0], data[1:]
    n, shift, i = 0, 0, 0
    while True:
        b = rest[i]
        n |= (b & 0x7F) << shift
        shift += 7
        i += 1
        if not b & 0x80:
            break
    rest = rest[i:]
    if kind == 0:
        assert len(rest) == 4 * n
        return BitMap(int.from_bytes(rest[k : k + 4], "little") for k in range(0, len(rest), 4))
    assert kind == 1 and len(rest) == n
    return BitMap.deserialize(rest)


def test_a_pyroaring_bitmap_loads_into_an_audience(s):
    ids = s.ids
    bm = BitMap(ids.index(u) for u in ["u1", "u3", "u7"])
    s.set_audience_bytes("vip", bytes(bm.serialize()))
    assert s.audiences["vip"] == 3
    visitors = USERS + ["stranger"]
    assert members(s, "vip_visit", visitors) == ["u1", "u3", "u7"]
    # Audiences defined from others follow a bitmap loaded into a part.
    s.set_audience_bytes("blocked", BitMap([ids.index("u3")]).serialize())
    assert s.audiences["reachable"] == 2
    assert members(s, "reachable_visit", visitors) == ["u1", "u7"]


def test_bitmaps_built_from_interned_ids(rules):
    s = rules.session()
    bm = BitMap(s.ids.intern_many(["carol", "ann", 42]))
    assert list(bm) == [0, 1, 2]
    s.set_audience_bytes("vip", bm.serialize())
    assert members(s, "vip_visit", ["ann", "bob", "42", "carol"]) == ["ann", "42", "carol"]


def test_audience_bytes_read_back_with_pyroaring(s):
    ids = s.ids
    s.set_audience("vip", ["u2", "u4", "u6", "u8"])
    s.set_audience("blocked", ["u4", "newcomer"])
    expected = {
        "vip": BitMap(ids.index(u) for u in ["u2", "u4", "u6", "u8"]),
        "blocked": BitMap([ids.index("u4"), ids.index("newcomer")]),
        "reachable": BitMap(ids.index(u) for u in ["u2", "u6", "u8"]),
    }
    assert ids.index("newcomer") == len(USERS), "set_audience interns new ids"
    for name, bm in expected.items():
        data = s.audience_bytes(name)
        assert isinstance(data, bytes)
        assert BitMap.deserialize(data) == bm, name
        # The same bytes as pyroaring writes for the same set.
        assert data == bm.serialize(), name
    # And back to ids.
    names = ids.to_list()
    assert [names[i] for i in BitMap.deserialize(s.audience_bytes("reachable"))] == ["u2", "u6", "u8"]
    assert [ids.id(i) for i in BitMap.deserialize(s.audience_bytes("blocked"))] == ["u4", "newcomer"]


def test_run_bitmap_and_array_containers(rules):
    s = rules.session()
    n = 200_000
    s.ids.intern_many(f"user{i}" for i in range(n))
    # One container of runs, one dense (a bitmap container), one sparse
    # (an array container).
    bm = BitMap(range(1_000, 60_000)) | BitMap([3, 5, 8])
    bm |= BitMap(range(65_536, 131_072, 7))
    bm |= BitMap(range(131_072, n, 100))
    bm.run_optimize()
    stats = bm.get_statistics()
    assert stats["n_run_containers"] > 0
    assert stats["n_array_containers"] > 0
    assert stats["n_bitset_containers"] > 0
    s.set_audience_bytes("vip", bm.serialize())
    assert s.audiences["vip"] == len(bm)
    assert BitMap.deserialize(s.audience_bytes("vip")) == bm
    assert s.audience_bytes("vip") == bm.serialize(), "run containers stay runs"
    sample = random.Random(7).sample(range(n), 300) + [0, 3, 999, 1_000, 149_999, n - 1]
    visitors = [f"user{i}" for i in sample]
    assert members(s, "vip_visit", visitors) == [f"user{i}" for i in sample if i in bm]


def test_clickhouse_states_round_trip(s):
    ids = s.ids
    small = BitMap(ids.index(u) for u in ["u0", "u5", "u9"])
    state = clickhouse_state(small)
    assert state.hex() == "0003" + "00000000" + "05000000" + "09000000"
    s.set_audience_bytes("vip", state, format="clickhouse")
    assert members(s, "vip_visit", USERS) == ["u0", "u5", "u9"]
    assert s.audience_bytes("vip", format="clickhouse") == state

    ids.intern_many(f"x{i}" for i in range(1_000))
    large = BitMap(range(0, len(ids), 3))
    s.set_audience_bytes("blocked", clickhouse_state(large), format="clickhouse")
    assert s.audiences["blocked"] == len(large)
    out = s.audience_bytes("blocked", format="clickhouse")
    assert out[0] == 1, "more than 32 members make a bitmap state"
    assert read_clickhouse_state(out) == large
    assert out == clickhouse_state(large)
    # A state of either form reads back through the portable format too.
    assert BitMap.deserialize(s.audience_bytes("blocked")) == large
    # The empty audience.
    s.set_audience_bytes("vip", b"\x00\x00", format="clickhouse")
    assert s.audiences["vip"] == 0
    assert s.audience_bytes("vip", format="clickhouse") == b"\x00\x00"
    assert BitMap.deserialize(s.audience_bytes("vip")) == BitMap()


def test_bad_bytes_raise_naming_the_audience(s):
    s.set_audience("vip", ["u1"])
    good = bytes(BitMap([1, 2, 3]).serialize())
    bad_portable = [b"", b"\x00", b"not a bitmap", good[:-1], good + b"\x00", bytes(100)]
    for data in bad_portable:
        with pytest.raises(nudge.AudienceError, match="audience `vip`: not a portable Roaring bitmap"):
            s.set_audience_bytes("vip", data)
    bad_clickhouse = [b"", b"\x02\x00", b"\x00\x01\x01\x00", b"\x00\x21", b"\x01\x05\x00", b"\x01\x80", good]
    for data in bad_clickhouse:
        with pytest.raises(nudge.AudienceError, match="audience `vip`: not a"):
            s.set_audience_bytes("vip", data, format="clickhouse")
    with pytest.raises(nudge.AudienceError) as info:
        s.set_audience_bytes("vip", b"junk")
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, nudge.NudgeError)
    assert s.audiences["vip"] == 1, "a refused bitmap leaves the audience as it was"
    assert members(s, "vip_visit", USERS) == ["u1"]


def test_corrupted_bytes_never_crash(s):
    rng = random.Random(11)
    bm = BitMap(range(0, 10)) | BitMap(range(5_000, 9_000))
    bm.run_optimize()
    valid = [bytes(bm.serialize()), bytes(BitMap([1, 2, 3]).serialize()), clickhouse_state(BitMap([1, 2]))]
    tried = 0
    for base in valid:
        for _ in range(300):
            data = bytearray(base)
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data[: rng.randint(0, len(data))]) if rng.random() < 0.3 else bytes(data)
            for fmt in ("portable", "clickhouse"):
                try:
                    s.set_audience_bytes("vip", data, format=fmt)
                except nudge.AudienceError as e:
                    assert "audience `vip`" in str(e)
                tried += 1
    for _ in range(500):
        data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
        for fmt in ("portable", "clickhouse"):
            try:
                s.set_audience_bytes("vip", data, format=fmt)
            except nudge.AudienceError:
                pass
    assert tried == 1_800
    # Whatever was loaded last, the session still works.
    s.set_audience("vip", ["u2"])
    assert members(s, "vip_visit", USERS) == ["u2"]


def test_ids_unknown_to_the_dictionary_are_not_members(s):
    ids = s.ids
    assert ids.index("stranger") is None
    assert "stranger" not in ids
    s.set_audience_bytes("vip", BitMap(range(len(USERS))).serialize())
    assert members(s, "vip_visit", ["stranger", "u0"]) == ["u0"]
    # Interning an id later does not make it a member of a loaded bitmap.
    i = ids.intern("stranger")
    assert i == len(USERS)
    assert members(s, "vip_visit", ["stranger"]) == []
    # A bitmap holding an index no id has yet is refused: that index would
    # make a member of whichever id is interned next.
    with pytest.raises(nudge.AudienceError, match=r"audience `vip`: the bitmap holds user index 11.*11 ids"):
        s.set_audience_bytes("vip", BitMap([0, 11]).serialize())
    with pytest.raises(nudge.AudienceError, match="index 4294967295"):
        s.set_audience_bytes("vip", clickhouse_state(BitMap([2**32 - 1])), format="clickhouse")
    assert s.audiences["vip"] == len(USERS)
    empty = nudge.compile(RULES).session()
    with pytest.raises(nudge.AudienceError, match="dictionary is empty"):
        empty.set_audience_bytes("vip", BitMap([0]).serialize())
    empty.set_audience_bytes("vip", BitMap().serialize())
    assert empty.audiences["vip"] == 0


def test_the_id_dictionary(rules):
    s = rules.session()
    ids = s.ids
    assert isinstance(ids, nudge.IdDictionary)
    assert len(ids) == 0 and ids.to_list() == []
    assert repr(ids) == "<nudge.IdDictionary: 0 ids>"
    assert ids.intern("ann") == 0
    assert ids.intern("bob") == 1
    assert ids.intern("ann") == 0, "an id keeps its index"
    assert ids.intern(42) == 2, "ids are text"
    assert ids.index("42") == 2 and ids.index(42) == 2
    assert ids.index("carol") is None
    assert len(ids) == 3, "index never adds"
    assert ids.id(1) == "bob"
    assert ids.id(3) is None and ids.id(-1) is None and ids.id(2**40) is None
    assert "ann" in ids and 42 in ids and "carol" not in ids
    assert ids.intern_many(iter(["bob", "carol", "dan", "carol"])) == [1, 3, 4, 3]
    assert ids.to_list() == ["ann", "bob", "42", "carol", "dan"]
    assert repr(ids) == "<nudge.IdDictionary: 5 ids>"
    # Every access is the session's own dictionary.
    s.set_audience("vip", ["erin"])
    assert len(ids) == 6 and s.ids.index("erin") == 5
    for wrong in (1.5, None, True, b"ann", ["ann"]):
        with pytest.raises(TypeError):
            ids.index(wrong)
        with pytest.raises(TypeError):
            ids.intern(wrong)
        with pytest.raises(TypeError):
            wrong in ids  # noqa: B015
    with pytest.raises(TypeError):
        ids.id("1")
    with pytest.raises(TypeError):
        ids.intern_many(["x", 1.5])
    assert "x" not in ids, "a refused batch interns nothing"


def test_a_dictionary_reloaded_in_order_keeps_bitmaps_valid(rules):
    a = rules.session()
    a.set_audience("vip", ["u5", "u1", "u9"])
    data = a.audience_bytes("vip")
    b = rules.session()
    assert b.ids.intern_many(a.ids.to_list()) == list(range(len(a.ids)))
    b.set_audience_bytes("vip", data)
    assert members(b, "vip_visit", ["u1", "u2", "u5", "u9"]) == ["u1", "u5", "u9"]
    # A restored session starts with an empty dictionary and no audiences.
    c = nudge.Session.restore(rules, a.snapshot())
    assert len(c.ids) == 0 and c.audiences["vip"] == 0


def test_the_dictionary_keeps_its_session_alive(rules):
    ids = rules.session().ids
    ids.intern("ann")
    assert ids.index("ann") == 0


def test_audience_mistakes(s):
    bm = BitMap([1]).serialize()
    with pytest.raises(nudge.AudienceError, match="audience `reachable` is defined from other audiences"):
        s.set_audience_bytes("reachable", bm)
    with pytest.raises(nudge.AudienceError, match="no audience `vips`"):
        s.set_audience_bytes("vips", bm)
    with pytest.raises(nudge.AudienceError, match="no audience `vips`"):
        s.audience_bytes("vips")
    with pytest.raises(nudge.AudienceError, match="no audience `vips`"):
        s.set_audience("vips", ["u1"])
    with pytest.raises(ValueError, match='`format` is "portable" or "clickhouse"'):
        s.set_audience_bytes("vip", bm, format="croaring")
    with pytest.raises(ValueError, match="`format`"):
        s.audience_bytes("vip", format="Portable")
    with pytest.raises(TypeError, match="audience `vip` are given as bytes"):
        s.set_audience_bytes("vip", BitMap([1]))
    with pytest.raises(TypeError):
        s.set_audience_bytes("vip", "\x3a\x30")
    # bytearray and memoryview are bytes too.
    s.set_audience_bytes("vip", bytearray(bm))
    assert members(s, "vip_visit", USERS) == ["u1"]
    s.set_audience_bytes("vip", memoryview(BitMap([2]).serialize()))
    assert members(s, "vip_visit", USERS) == ["u2"]
    # The bytes of a defined audience can be read.
    assert BitMap.deserialize(s.audience_bytes("reachable")) == BitMap([2])


def test_a_callback_cannot_use_the_dictionary_of_its_own_session(rules):
    text = RULES + """
function score(user: string) -> int
rule scored {
    when
        v: visit()
        score(v.user) > 0
    then message(channel: "c", template: "t", user: v.user)
}
"""
    r = nudge.compile(text)
    s = r.session()
    seen = []

    def score(user):
        try:
            s.ids.index(user)
        except nudge.SessionError as e:
            seen.append(type(e))
        seen.append(repr(s.ids))
        return 1

    s.register_function("score", score)
    s.run([("visit", {"user": "u1"})])
    assert seen == [nudge.SessionError, "<nudge.IdDictionary (session in use)>"]
