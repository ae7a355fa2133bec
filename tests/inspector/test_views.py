"""The inspector's pure helpers: timeline layout, value trees, parsing."""

from __future__ import annotations

import datetime as dt

import ormsgpack
import pytest

from pgcheckpoint import InvalidInputError
from pgcheckpoint.inspector import _views as v
from pgcheckpoint.threads import CheckpointNode

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def _v(cid: str, parent: str | None) -> CheckpointNode:
    return CheckpointNode("", cid, parent, T0)


def test_layout_puts_the_head_line_on_lane_zero_and_branches_beside_it() -> None:
    # 1 <- 2 <- 3 <- 5 (head) ; 2 <- 4 (an older branch forked at 2)
    rows = v.layout([_v("1", None), _v("2", "1"), _v("3", "2"), _v("4", "2"), _v("5", "3")]).rows()
    by = {r.info.checkpoint_id: r for r in rows}
    assert [r.info.checkpoint_id for r in rows] == ["5", "4", "3", "2", "1"]
    assert by["5"].head and by["5"].lanes[0] == "head"
    assert {by[c].lane for c in "5321"} == {0}
    assert by["4"].lane == 1 and by["4"].fork_of == "2"
    assert by["2"].children == 2
    # the branch's line runs from its leaf down to the fork point
    assert by["3"].lanes == ["dot", "line"]
    assert by["1"].lanes == ["dot", ""]


def test_layout_of_a_long_line_and_many_branches_stays_bounded() -> None:
    line = [_v(f"{i:05d}", f"{i - 1:05d}" if i else None) for i in range(200)]
    branches = [_v(f"b{i:04d}", f"{i * 10:05d}") for i in range(20)]
    timeline = v.layout(line + branches)
    rows = timeline.rows()
    assert len(rows) == 220 == len(timeline)
    assert [r.lanes for r in timeline.rows(30, 40)] == [r.lanes for r in rows[30:40]]
    assert timeline.position("00150") == rows.index(
        next(r for r in rows if r.info.checkpoint_id == "00150")
    )
    assert max(len(r.lanes) for r in rows) == v.MAX_LANES
    assert rows[0].info.checkpoint_id == "b0019"  # newest id first: "b…" sorts after digits


def test_tree_cuts_long_values_and_says_how_much() -> None:
    node = v.tree("x" * 5000)
    assert node["kind"] == "text" and len(node["text"]) == v.MAX_TEXT
    assert node["cut"] == "5,000 characters"
    big = v.tree(list(range(1000)))
    assert len(big["items"]) == v.MAX_ITEMS and big["total"] == 1000
    deep: object = 1
    for _ in range(20):
        deep = [deep]
    v.tree(deep)  # no recursion error: depth is bounded


def test_raw_serde_never_constructs_objects() -> None:
    class Boom:
        pass

    payload = ormsgpack.packb(
        {"a": ormsgpack.Ext(5, ormsgpack.packb(["os", "system", ["echo hi"]]))}
    )
    value = v.RawSerde().loads_typed(("msgpack", payload))
    assert isinstance(value["a"], v.RawExt)
    assert value["a"].code == 5 and value["a"].data == ["os", "system", ["echo hi"]]
    assert v.RawSerde().loads_typed(("json", b'{"k": 1}')) == {"k": 1}
    assert v.RawSerde().loads_typed(("null", b"")) is None
    with pytest.raises(InvalidInputError):
        v.RawSerde().dumps_typed(Boom())


def test_parse_meta_and_duration() -> None:
    assert v.parse_meta("user=alice step=3 ok=true") == {"user": "alice", "step": 3, "ok": True}
    assert v.parse_meta("name='a b'") == {"name": "a b"}
    assert v.parse_meta("  ") is None
    for bad in ("user", "=x", "a='unclosed"):
        with pytest.raises(InvalidInputError):
            v.parse_meta(bad)
    assert v.parse_duration("7d", "x") == dt.timedelta(days=7)
    assert v.parse_duration("90s", "x") == dt.timedelta(seconds=90)
    assert v.parse_duration("", "x") is None
    with pytest.raises(InvalidInputError):
        v.parse_duration("soon", "max_age")
    for text in ("30d", "2w", "12h", "15m", "90s"):
        assert v.short_duration(v.parse_duration(text, "x").total_seconds()) == text  # type: ignore[union-attr]


def test_summaries_of_messages_and_interrupts() -> None:
    from langchain_core.messages import AIMessage
    from langgraph.types import Interrupt

    call = {"name": "search", "args": {"q": "x"}, "id": "1"}
    assert v.summarize(AIMessage("hi", tool_calls=[call])) == "ai: hi → search"
    assert v.summarize([Interrupt(value="continue?")]) == "continue?"
    assert v.summarize("a" * 500).endswith("…")
