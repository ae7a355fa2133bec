"""Which stored types are rebuilt on read, and that the same rule refuses them on write.

The rule (pgcheckpoint/allowlist.py, docs/serde.md): LangGraph's fixed safe list, the
explicit allowlist, and plain data classes (pydantic, dataclass, Enum, NamedTuple; not
Runnables or exceptions) defined in modules this process has already imported. Real
graphs on a real PostgreSQL: the types a graph writes read back with default settings;
rows tampered to name callables construct nothing; a value the rule would refuse on
read is refused on write, with the database unchanged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from pathlib import Path
from typing import Annotated, Any, TypedDict

import ormsgpack
import psycopg
import pytest
from langchain_core.agents import AgentAction, AgentFinish
from langchain_core.language_models.fake import FakeListLLM
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.serde import jsonplus
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.func import entrypoint, task
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command, interrupt

from _helpers import cfg, db_snapshot, make_checkpoint
from _serde_types import Color, Order, Point, Question, Stamp, Tags
from pgcheckpoint import AsyncPostgresSaver, BlockedTypeError, PostgresSaver
from pgcheckpoint.allowlist import PlainDataSerializer, TypePolicy, parse_allow
from pgcheckpoint.errors import ConfigurationError, UnreadableTypeError

# --- the rule, without a database -------------------------------------------


@dataclasses.dataclass
class _Boom(Exception):
    """A dataclass that is an exception: not plain data."""

    code: int


class _Plain:
    """A class with a constructor of its own: not a data class."""

    def __init__(self, path: str) -> None:
        Path(path).write_text("constructed")


def _side_effect(path: str) -> None:
    Path(path).write_text("called")


def key(cls: type) -> tuple[str, str]:
    return (cls.__module__, cls.__name__)


def test_plain_data_classes_of_imported_modules_are_allowed() -> None:
    policy = TypePolicy()
    for cls in (Color, Question, Order, Point, AgentAction, AgentFinish, HumanMessage):
        assert key(cls) in policy, cls


@pytest.mark.parametrize(
    "name",
    [
        ("os", "system"),
        ("subprocess", "Popen"),
        ("builtins", "eval"),
        ("builtins", "exec"),
        ("builtins", "getattr"),
        ("builtins", "type"),
        ("importlib", "import_module"),
        ("pickle", "loads"),
        (__name__, "_side_effect"),  # a function
        (__name__, "_Plain"),  # a class that is not a data class
        (__name__, "_Boom"),  # an exception, even as a dataclass
        (__name__, "dataclasses"),  # a module
        ("_serde_types", "Tags"),  # a set subclass
        ("langchain_core.language_models.fake", "FakeListLLM"),  # a Runnable pydantic model
        ("pgc_never_imported_module", "Data"),
        ("os", "__class__"),
        ("os.path", "join"),
    ],
)
def test_callables_and_other_classes_are_refused(name: tuple[str, str]) -> None:
    assert FakeListLLM  # imported: refused for what it is, not for its module
    assert name not in TypePolicy()


def test_a_module_getattr_is_never_called(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name missing from a module is refused when the module has a ``__getattr__``
    (it could import or build anything); looking does not call it."""
    marker = tmp_path / "marker"
    (tmp_path / "pgc_lazy_module.py").write_text(
        "def __getattr__(name):\n"
        f"    open({str(marker)!r}, 'w').close()\n"
        "    raise AttributeError(name)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import pgc_lazy_module  # noqa: F401

    assert ("pgc_lazy_module", "Anything") not in TypePolicy()
    assert not marker.exists()


def test_a_missing_name_is_decided_again_when_the_module_defines_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name absent from its module (a class local to a function) builds nothing and is
    let through; that answer is not kept, so a function defined there later is refused."""
    (tmp_path / "pgc_late_module.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    import pgc_late_module

    policy = TypePolicy()
    assert ("pgc_late_module", "later") in policy
    monkeypatch.setattr(pgc_late_module, "later", _side_effect, raising=False)
    assert ("pgc_late_module", "later") not in policy


def test_explicit_allowlist_entries() -> None:
    assert parse_allow(["a.b:C", ("d", "E"), Tags, "f.g.H"]) == {
        ("a.b", "C"), ("d", "E"), key(Tags), ("f.g", "H"),
    }
    for bad in (["nope"], ["a:b:c"], [("a",)], ["os:"], [3]):
        with pytest.raises(ConfigurationError, match="allowlist entry"):
            parse_allow(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="not a string"):
        parse_allow("a:B")
    assert key(Tags) in TypePolicy([Tags])


def test_serializer_refuses_on_write_what_it_refuses_on_read() -> None:
    serde = PlainDataSerializer()
    order = Order(id=1, color=Color.RED, question=Question("why?", ["a"]))
    assert serde.loads_typed(serde.dumps_typed({"o": [order, Point(1, 2)]})) == {
        "o": [order, Point(1, 2)]
    }
    with pytest.raises(UnreadableTypeError, match=r"_serde_types\.Tags") as info:
        serde.dumps_typed({"nested": [{"deep": Tags({"a"})}]})
    assert "--allow _serde_types:Tags" in str(info.value)
    assert "allow=['_serde_types:Tags']" in str(info.value)
    with pytest.raises(UnreadableTypeError, match=r"Stamp\.fromisoformat\(\)"):
        serde.dumps_typed(Stamp(2026, 1, 1))
    allowed = serde.with_msgpack_allowlist([Tags])
    assert allowed.loads_typed(allowed.dumps_typed(Tags({"a"}))) == Tags({"a"})
    assert serde.with_msgpack_allowlist([]) is serde


@pytest.mark.parametrize(
    ("pad", "lead"),
    [(4, 0xD8), (20, 0xC7), (300, 0xC8), (70_000, 0xC9)],
    ids=["fixext 16", "ext 8", "ext 16", "ext 32"],
)
def test_the_write_check_finds_every_extension_form(pad: int, lead: int) -> None:
    """The check skips bytes without an extension marker; each marker msgpack can write
    (fixext, ext 8/16/32) is found, at the top and nested in plain containers."""
    fields = ormsgpack.packb(["os", "system", "x" * pad])
    packed = ormsgpack.packb(ormsgpack.Ext(jsonplus.EXT_CONSTRUCTOR_SINGLE_ARG, fields))
    assert packed[0] == lead
    policy = TypePolicy()
    assert policy.refused_in(packed) == ["os.system"]
    nested = ormsgpack.packb({"é": [1, {"k": ormsgpack.Ext(0, fields)}]})
    assert policy.refused_in(nested) == ["os.system"]
    assert policy.refused_in(ormsgpack.packb({"é": ["ü", 2**40, -(2**40), 1.5]})) == []


def test_the_write_check_refuses_an_ext_placed_in_the_value() -> None:
    """An ``ormsgpack.Ext`` inside a value is written as it is; reading would refuse
    it, so writing does."""
    evil = ormsgpack.Ext(
        jsonplus.EXT_CONSTRUCTOR_SINGLE_ARG, ormsgpack.packb(["os", "system", "echo"])
    )
    with pytest.raises(UnreadableTypeError, match=r"os\.system"):
        PlainDataSerializer().dumps_typed({"a": [evil]})


# --- graphs on a real database -------------------------------------------------


class AgentState(TypedDict, total=False):
    messages: Annotated[list[Any], add_messages]
    order: Order
    color: Color
    point: Point
    outcome: AgentAction | AgentFinish | None
    steps: list[list[Any]]
    answer: str


def _plan(state: AgentState) -> dict[str, Any]:
    action = AgentAction(tool="search", tool_input="q", log="tool:search")
    return {
        "messages": [AIMessage("planning")],
        "order": Order(id=7, color=Color.BLUE, question=Question("ok?", ["y", "n"])),
        "color": Color.RED,
        "point": Point(3, 4),
        "outcome": action,
        "steps": [[action, "result"]],
    }


def _ask(state: AgentState) -> dict[str, Any]:
    answer = interrupt(Question("Ship the order?", ["yes", "no"]))
    return {"answer": answer, "outcome": AgentFinish(return_values={"a": answer}, log="")}


def _graph(checkpointer: Any) -> Any:
    builder = StateGraph(AgentState)
    builder.add_node("plan", _plan)
    builder.add_node("ask", _ask)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "ask")
    return builder.compile(checkpointer=checkpointer)


def _expected_state() -> dict[str, Any]:
    action = AgentAction(tool="search", tool_input="q", log="tool:search")
    return {
        "order": Order(id=7, color=Color.BLUE, question=Question("ok?", ["y", "n"])),
        "color": Color.RED,
        "point": Point(3, 4),
        "outcome": action,
        "steps": [[action, "result"]],
    }


def _check_paused(state: Any) -> None:
    values = state.values
    for name, value in _expected_state().items():
        assert values[name] == value, name
        assert type(values[name]) is type(value), name
    assert values["messages"][-1].content == "planning"
    (payload,) = [i.value for t in state.tasks for i in t.interrupts]
    assert payload == Question("Ship the order?", ["yes", "no"])


def test_graph_state_types_round_trip_with_default_settings(db_url: str) -> None:
    """Enum, pydantic model, NamedTuple and AgentAction in state, a dataclass in an
    interrupt payload: get_state (also from a second saver) returns them, resume works."""
    config = cfg("types")
    with PostgresSaver.from_conn_string(db_url) as saver:
        graph = _graph(saver)
        graph.invoke({"messages": [HumanMessage("hi")]}, config)
        _check_paused(graph.get_state(config))
    with PostgresSaver.from_conn_string(db_url) as fresh:
        graph = _graph(fresh)
        _check_paused(graph.get_state(config))
        done = graph.invoke(Command(resume="yes"), config)
    assert done["answer"] == "yes"
    assert done["outcome"] == AgentFinish(return_values={"a": "yes"}, log="")
    assert done["order"] == _expected_state()["order"]


async def test_graph_state_types_round_trip_async(db_url: str) -> None:
    config = cfg("types-async")
    async with AsyncPostgresSaver.from_conn_string(db_url) as saver:
        graph = _graph(saver)
        await graph.ainvoke({"messages": [HumanMessage("hi")]}, config)
        _check_paused(await graph.aget_state(config))
        done = await graph.ainvoke(Command(resume="no"), config)
    assert done["answer"] == "no" and done["point"] == Point(3, 4)


def test_pydantic_input_of_a_functional_graph(db_url: str) -> None:
    """LangGraph's test_interrupt_functional_pydantic: a pydantic model as the input of
    an @entrypoint and of its tasks, across an interrupt."""
    calls = 0

    @task
    def foo(state: Order) -> Order:
        nonlocal calls
        calls += 1
        return Order(id=state.id + 1, color=state.color)

    with PostgresSaver.from_conn_string(db_url) as saver:

        @entrypoint(checkpointer=saver)
        def flow(inputs: Order) -> dict[str, Any]:
            first = foo(inputs)
            answer = interrupt("color?")
            result = first.result()
            assert isinstance(result, Order)
            return {"id": result.id, "answer": answer}

        config = cfg("functional")
        flow.invoke(Order(id=1, color=Color.RED), config)
        assert flow.invoke(Command(resume="blue"), config) == {"id": 2, "answer": "blue"}
    assert calls == 1


# --- tampered rows -------------------------------------------------------------


def _ext(code: int, *fields: Any) -> bytes:
    return ormsgpack.packb(ormsgpack.Ext(code, ormsgpack.packb(list(fields))))


def _tampered_cases(marker: Path) -> dict[str, bytes]:
    m = str(marker)
    single, pos, kw = (
        jsonplus.EXT_CONSTRUCTOR_SINGLE_ARG,
        jsonplus.EXT_CONSTRUCTOR_POS_ARGS,
        jsonplus.EXT_CONSTRUCTOR_KW_ARGS,
    )
    return {
        "os.system": _ext(single, "os", "system", f"touch {m}"),
        "subprocess.Popen": _ext(pos, "subprocess", "Popen", [["touch", m]]),
        "builtins.eval": _ext(single, "builtins", "eval", f"open({m!r}, 'w').close()"),
        "builtins.exec": _ext(single, "builtins", "exec", f"open({m!r}, 'w').close()"),
        "a function": _ext(single, __name__, "_side_effect", m),
        "a plain class": _ext(single, __name__, "_Plain", m),
        "a method call": _ext(
            jsonplus.EXT_METHOD_SINGLE_ARG, "os", "system", f"touch {m}", "__call__"
        ),
        "pydantic ext on a function": _ext(jsonplus.EXT_PYDANTIC_V2, "os", "system", {}, "x"),
        "a never-imported module": _ext(kw, "pgc_tamper_probe", "Data", {"path": m}),
        "nested in allowed data": ormsgpack.packb(
            {"ok": [1, ormsgpack.Ext(kw, ormsgpack.packb(["_serde_types", "Point", {
                "x": ormsgpack.Ext(single, ormsgpack.packb(["os", "system", f"touch {m}"])),
                "y": 2,
            }]))]}
        ),
    }


CASES = list(_tampered_cases(Path("unused")))


@pytest.mark.parametrize("case", CASES)
def test_a_tampered_row_constructs_nothing(
    case: str, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row rewritten to name a callable, a plain class or a class of a module this
    process never imported is refused with BlockedTypeError, on a channel value and on a
    pending write, and nothing ran: no marker file, the probe module not imported."""
    marker = tmp_path / "ran"
    # The probe module is importable (so only the rule stops it) and would leave a mark.
    (tmp_path / "pgc_tamper_probe.py").write_text(
        "import dataclasses\n"
        f"open({str(marker)!r}, 'w').close()\n"
        "@dataclasses.dataclass\n"
        "class Data:\n"
        "    path: str\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    crafted = _tampered_cases(marker)[case]
    with PostgresSaver.from_conn_string(db_url) as saver:
        saved = saver.put(cfg("t"), make_checkpoint({"v": ["x" * 300]}), {}, {"v": 1})
        saver.put_writes(saved, [("w", ["y" * 300])], "task-1")
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("UPDATE blobs SET value = %s, type = 'msgpack'", (crafted,))
        with pytest.raises(BlockedTypeError, match="refusing to load channel 'v'"):
            saver.get_tuple(saved)
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("UPDATE blobs SET value = %s", (ormsgpack.packb(["x"]),))
            conn.execute("UPDATE writes SET value = %s, type = 'msgpack'", (crafted,))
        with pytest.raises(BlockedTypeError, match="refusing to load write to 'w'") as info:
            saver.get_tuple(saved)
    assert "pgc_tamper_probe" not in sys.modules
    assert not marker.exists()
    assert info.value.blocked


# --- refused on write ------------------------------------------------------------


def test_an_unreadable_value_is_refused_on_write(db_url: str) -> None:
    """put and put_writes refuse a value whose type reading would refuse, with a message
    that says how to allow it, and leave the database unchanged."""
    with PostgresSaver.from_conn_string(db_url) as saver:
        saved = saver.put(cfg("w"), make_checkpoint({"v": ["x" * 300]}), {}, {"v": 1})
        before = db_snapshot(db_url)
        with pytest.raises(UnreadableTypeError, match="refusing to save channel 'tags'") as info:
            saver.put(cfg("w", checkpoint_id=saved["configurable"]["checkpoint_id"]),
                      make_checkpoint({"tags": [Tags({"a"})]}), {}, {"tags": 2})
        assert "--allow _serde_types:Tags" in str(info.value)
        assert "PGCHECKPOINT_ALLOW" in str(info.value)
        with pytest.raises(UnreadableTypeError, match=r"write #1 to 'when'.*Stamp"):
            saver.put_writes(saved, [("ok", 1), ("when", Stamp(2026, 1, 1))], "task-1")
        assert db_snapshot(db_url) == before


def test_a_graph_writing_an_unreadable_type_fails_at_once_and_allow_fixes_it(
    db_url: str,
) -> None:
    class State(TypedDict, total=False):
        tags: Tags
        n: int

    def tag(state: State) -> dict[str, Any]:
        return {"tags": Tags({"urgent"}), "n": 1}

    def build(saver: Any) -> Any:
        b = StateGraph(State)
        b.add_node("tag", tag)
        b.add_edge(START, "tag")
        return b.compile(checkpointer=saver)

    with (
        PostgresSaver.from_conn_string(db_url) as saver,
        pytest.raises(UnreadableTypeError, match=r"_serde_types\.Tags"),
    ):
        build(saver).invoke({"n": 0}, cfg("g"))
    for allow in (["_serde_types:Tags"], [Tags], [("_serde_types", "Tags")]):
        with PostgresSaver.from_conn_string(db_url, allow=allow) as allowed:
            graph = build(allowed)
            graph.invoke({"n": 0}, cfg(f"g-{allow[0]!r}"))
            assert graph.get_state(cfg(f"g-{allow[0]!r}")).values["tags"] == Tags({"urgent"})
    with PostgresSaver.from_conn_string(db_url) as saver:
        graph = build(saver.with_allowlist([("_serde_types", "Tags")]))
        graph.invoke({"n": 0}, cfg("g-with"))
        assert type(graph.get_state(cfg("g-with")).values["tags"]) is Tags


async def test_async_saver_refuses_on_write_too(db_url: str) -> None:
    async with AsyncPostgresSaver.from_conn_string(db_url) as saver:
        before = await asyncio.to_thread(db_snapshot, db_url)
        with pytest.raises(UnreadableTypeError):
            await saver.aput(cfg("a"), make_checkpoint({"t": Tags({"x"})}), {}, {"t": 1})
        assert await asyncio.to_thread(db_snapshot, db_url) == before


def test_bad_allow_option_is_a_configuration_error(db_url: str) -> None:
    with (
        pytest.raises(ConfigurationError, match="allowlist entry"),
        PostgresSaver.from_conn_string(db_url, allow=["not a type"]),
    ):
        pass


class _ReversingCipher:
    """A stand-in cipher (reverses the bytes): enough to route values through
    EncryptedSerializer, which wraps the serializer that applies the rule."""

    def encrypt(self, plaintext: bytes) -> tuple[str, bytes]:
        return "reverse", plaintext[::-1]

    def decrypt(self, ciphername: str, ciphertext: bytes) -> bytes:
        assert ciphername == "reverse"
        return ciphertext[::-1]


def test_the_rule_holds_inside_an_encrypted_serializer(db_url: str) -> None:
    serde = EncryptedSerializer(_ReversingCipher(), PlainDataSerializer())
    with PostgresSaver.from_conn_string(db_url, serde=serde) as saver:
        with pytest.raises(UnreadableTypeError, match="Tags"):
            saver.put(cfg("e"), make_checkpoint({"t": Tags({"x"})}), {}, {"t": 1})
        saved = saver.put(cfg("e"), make_checkpoint({"o": Order(id=1, color=Color.RED)}), {},
                          {"o": 1})
        got = saver.get_tuple(saved)
        assert got is not None
        assert got.checkpoint["channel_values"]["o"] == Order(id=1, color=Color.RED)
    with PostgresSaver.from_conn_string(db_url, serde=serde, allow=[Tags]) as allowed:
        saved = allowed.put(cfg("e2"), make_checkpoint({"t": Tags({"x"})}), {}, {"t": 1})
        got = allowed.get_tuple(saved)
        assert got is not None and got.checkpoint["channel_values"]["t"] == Tags({"x"})
