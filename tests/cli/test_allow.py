"""``show`` on threads holding types the CLI process may not rebuild, and ``--allow`` /
``PGCHECKPOINT_ALLOW``, through the real CLI in a process of its own (which never
imports the graph's modules, as an operator's shell would not)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypedDict

import ormsgpack
import psycopg
from langgraph.checkpoint.serde import jsonplus
from langgraph.graph import START, StateGraph

from _cli_run import Run, as_json
from _serde_types import Color, Order, Question
from pgcheckpoint import PostgresSaver

TESTS = str(Path(__file__).resolve().parents[1])
# _serde_types is importable by the CLI process, but nothing there imports it.
ENV = {"PYTHONPATH": TESTS}


class State(TypedDict, total=False):
    order: Order
    n: int


def _populate(db_url: str) -> None:
    def step(state: State) -> dict[str, Any]:
        return {"order": Order(id=5, color=Color.BLUE, question=Question("q", ["a"])), "n": 1}

    with PostgresSaver.from_conn_string(db_url) as saver:
        b = StateGraph(State)
        b.add_node("step", step)
        b.add_edge(START, "step")
        b.compile(checkpointer=saver).invoke({"n": 0}, {"configurable": {"thread_id": "t1"}})


def test_show_prints_a_value_it_may_not_load_instead_of_aborting(
    run_cli: Run, db_url: str
) -> None:
    _populate(db_url)
    done = run_cli("show", "t1", env=ENV)
    assert "<not loaded: _serde_types.Color, _serde_types.Order (msgpack," in done.stdout
    data = as_json(run_cli("show", "t1", "--json", env=ENV))
    order = data["values"]["order"]
    assert order["not_loaded"] == ["_serde_types.Color", "_serde_types.Order"]
    assert order["serde_type"] == "msgpack" and order["size"] > 0
    assert data["values"]["n"] == 1


def test_allow_option_and_environment_variable_load_the_type(run_cli: Run, db_url: str) -> None:
    _populate(db_url)
    done = run_cli("show", "t1", "--allow", "_serde_types:Order", "--allow",
                   "_serde_types:Color", "--allow", "_serde_types:Question", env=ENV)
    assert "Order(id=5, color=<Color.BLUE: 'blue'>" in done.stdout
    assert "not loaded" not in done.stdout
    allow = "_serde_types:Order,_serde_types:Color _serde_types:Question"
    env = {**ENV, "PGCHECKPOINT_ALLOW": allow}
    data = as_json(run_cli("show", "t1", "--json", env=env))
    assert data["values"]["order"] == {
        "id": 5, "color": "<Color.BLUE: 'blue'>", "question": {"text": "q", "choices": ["a"]}
    }
    # --allow imports the module, as the application does: its other data classes
    # (Color and Question nested in Order) load too.
    done = run_cli("show", "t1", "--allow", "_serde_types:Order", env=ENV)
    assert "question=Question(text='q', choices=['a'])" in done.stdout
    assert "not loaded" not in done.stdout


def test_a_bad_allow_value_is_a_usage_error(run_cli: Run, db_url: str) -> None:
    done = run_cli("show", "t1", "--allow", "not a type", check=False)
    assert done.returncode == 2
    assert "allowlist entry" in done.stderr
    done = run_cli("show", "t1", "--allow", "pgc_no_such_module:X", check=False)
    assert done.returncode == 2
    assert "cannot import module 'pgc_no_such_module'" in done.stderr


def test_show_on_a_tampered_row_runs_nothing_and_escapes_names(
    run_cli: Run, db_url: str, tmp_path: Path
) -> None:
    """A row naming os.system is printed by name; the name from the row cannot carry
    markup or terminal escapes."""
    _populate(db_url)
    marker = tmp_path / "ran"
    evil = ormsgpack.packb(ormsgpack.Ext(
        jsonplus.EXT_CONSTRUCTOR_SINGLE_ARG,
        ormsgpack.packb(["os", "system", f"touch {marker}"]),
    ))
    markup = ormsgpack.packb(ormsgpack.Ext(
        jsonplus.EXT_CONSTRUCTOR_SINGLE_ARG,
        ormsgpack.packb(["[bold red]x\x1b[31m", "Y", 1]),
    ))
    # A msgpack map of two entries, "a" and "b", whose values are the extensions.
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE blobs SET value = %s, type = 'msgpack' WHERE channel = 'order'",
            (b"\x82\xa1a" + evil + b"\xa1b" + markup,),
        )
    done = run_cli("show", "t1", env=ENV)
    assert "<not loaded: ?bold?red?x??31m.Y, os.system (msgpack," in done.stdout
    assert "\x1b" not in done.stdout
    assert not marker.exists()
