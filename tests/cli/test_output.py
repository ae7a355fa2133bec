"""What an operator reads: `show`, `diff`, `history` and the tables, run as the real
command on a ReAct-style agent (a tool call, an approval interrupt) stored by a real graph."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import psycopg
import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Command, interrupt

from _cli_run import Run, as_json
from pgcheckpoint import PostgresSaver

MARKUP = "[bold red]x[/]"
ESCAPE = "\x1b[31mred\x1b[0m\x07"


def _agent(state: MessagesState) -> dict[str, list[AnyMessage]]:
    last = state["messages"][-1]
    if isinstance(last, HumanMessage):
        call = {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1"}
        return {"messages": [AIMessage(content="", tool_calls=[call])]}
    return {"messages": [AIMessage(content=f"sunny {MARKUP} {ESCAPE}")]}


def _route(state: MessagesState) -> str:
    last = state["messages"][-1]
    return "approve" if isinstance(last, AIMessage) and last.tool_calls else END


def _approve(state: MessagesState) -> dict[str, Any]:
    answer = interrupt({"question": "Run get_weather(city='Paris')?"})
    if not answer:
        raise ValueError("refused")
    return {}


def _tools(state: MessagesState) -> dict[str, list[AnyMessage]]:
    last = state["messages"][-1]
    assert isinstance(last, AIMessage)
    return {
        "messages": [
            ToolMessage(content="18 C", tool_call_id=c["id"] or "", name=c["name"])
            for c in last.tool_calls
        ]
    }


def react_agent(checkpointer: Any) -> Any:
    builder = StateGraph(MessagesState)
    builder.add_node("agent", _agent)
    builder.add_node("approve", _approve)
    builder.add_node("tools", _tools)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", _route, ["approve", END])
    builder.add_edge("approve", "tools")
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer)


def _cfg(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


@pytest.fixture
def agent_db(db_url: str) -> str:
    """`paused` waits at the approval interrupt; `done` was approved and finished."""
    with PostgresSaver.from_conn_string(db_url) as saver:
        graph = react_agent(saver)
        for thread in ("paused", "done"):
            graph.invoke({"messages": [("user", "weather in Paris?")]}, _cfg(thread))
        graph.invoke(Command(resume=True), _cfg("done"))
    return db_url


def test_show_names_tool_calls_and_the_interrupt_question(run_cli: Run, agent_db: str) -> None:
    out = run_cli("show", "paused").stdout
    assert 'tool call get_weather({"city": "Paris"})' in out
    assert "paused: the interrupt asks" in out
    assert "Run get_weather(city='Paris')?" in out
    data = as_json(run_cli("show", "paused", "--json"))
    assert data["interrupts"] == [{"question": "Run get_weather(city='Paris')?"}]
    done = run_cli("show", "done").stdout
    assert "ToolMessage (get_weather): 18 C" in done and "paused" not in done


def test_internal_channels_hidden_unless_all(run_cli: Run, agent_db: str) -> None:
    out = run_cli("show", "paused").stdout
    assert "branch:to:" not in out and "__" not in out.replace("__interrupt__", "")
    assert "internal channel(s) hidden; --all shows them" in out
    assert "branch:to:approve" in run_cli("show", "paused", "--all").stdout
    assert set(as_json(run_cli("show", "paused", "--json"))["values"]) == {"messages"}
    assert "branch:to:approve" in as_json(run_cli("show", "paused", "--all", "--json"))["values"]


def test_metadata_is_a_table_and_json(run_cli: Run, agent_db: str) -> None:
    out = run_cli("show", "done").stdout
    assert "{'" not in out, "metadata printed as a Python repr"
    assert re.search(r"│\s+source\s+loop", out) and re.search(r"│\s+step\s+\d", out)
    meta = as_json(run_cli("show", "done", "--json"))["metadata"]
    assert meta["source"] == "loop" and isinstance(meta["step"], int)


def test_history_has_next_and_milliseconds(run_cli: Run, agent_db: str) -> None:
    versions = as_json(run_cli("history", "paused", "--json"))
    assert versions[0]["next"] == ["approve"]  # the head waits at the approval
    assert ["agent"] in [v["next"] for v in versions]
    out = run_cli("history", "paused").stdout
    assert "next" in out and re.search(r"\d\d:\d\d:\d\d\.\d{3}Z", out)


def test_checkpoint_ids_by_unique_prefix(run_cli: Run, agent_db: str) -> None:
    versions = as_json(run_cli("history", "done", "--json"))
    ids = [v["checkpoint_id"] for v in versions]
    # the shortest prefix that names exactly one checkpoint
    target = ids[-1]
    n = next(k for k in range(1, 37) if sum(i.startswith(target[:k]) for i in ids) == 1)
    shown = as_json(run_cli("show", "done", target[:n], "--json"))
    assert shown["config"]["configurable"]["checkpoint_id"] == target
    diff = as_json(run_cli("diff", "done", target[:n], ids[0][: n + 4], "--json"))
    assert [d["channel"] for d in diff] == ["messages"]

    common = ids[0][:8]  # uuid6 ids of one run share their first characters
    ambiguous = run_cli("show", "done", common, check=False)
    assert ambiguous.returncode == 1
    assert f"prefix {common!r} is ambiguous" in ambiguous.stderr and "Traceback" not in (
        ambiguous.stderr
    )
    unknown = run_cli("show", "done", "zzzz", check=False)
    assert unknown.returncode == 1
    assert "has no checkpoint whose id starts with 'zzzz'" in unknown.stderr


def test_diff_shows_tool_calls(run_cli: Run, agent_db: str) -> None:
    ids = [v["checkpoint_id"] for v in as_json(run_cli("history", "done", "--json"))]
    out = run_cli("diff", "done", ids[-1], ids[0]).stdout
    assert 'tool call get_weather({"city": "Paris"})' in out
    assert "ToolMessage (get_weather): 18 C" in out
    assert "branch:to" not in out


def _piped(run_cli: Run, *args: str) -> str:
    # run_cli pipes stdout (not a terminal), as `pgcheckpoint ... | less` does.
    return run_cli(*args, env={"COLUMNS": "80"}).stdout


def test_tables_at_80_columns_never_cut_ids(run_cli: Run, db_url: str) -> None:
    threads = [f"7f3e9c1a-5b2d-4e8f-9a6c-1d2e3f4a5b{i:02d}" for i in range(3)]
    with PostgresSaver.from_conn_string(db_url) as saver:
        graph = react_agent(saver)
        for thread in threads:
            graph.invoke({"messages": [("user", "hi")]}, _cfg(thread))
    out = _piped(run_cli, "threads", "list")
    assert "…" not in out
    assert max(len(line) for line in out.splitlines()) <= 80
    for thread in threads:
        assert thread in out, f"{thread} cut at 80 columns:\n{out}"
    for header in ("thread", "checkpoints", "step", "source"):
        assert header in out

    out = _piped(run_cli, "history", threads[0])
    assert "…" not in out and max(len(line) for line in out.splitlines()) <= 80
    for header in ("checkpoint", "step", "source", "next", "writes"):
        assert header in out, f"column {header} collapsed:\n{out}"
    flat = re.sub(r"[\s│┃|]", "", out)
    for v in as_json(run_cli("history", threads[0], "--json")):
        cid = v["checkpoint_id"]
        # folded onto several lines, every character is still there, in order
        assert cid[:12] in out and cid[-6:] in flat, f"{cid} lost at 80 columns:\n{out}"


def test_database_text_is_printed_literally(run_cli: Run, db_url: str) -> None:
    thread = f"t{MARKUP}"
    with PostgresSaver.from_conn_string(db_url) as saver:
        react_agent(saver).invoke({"messages": [("user", f"hi {MARKUP} {ESCAPE}")]}, _cfg(thread))
    for args in (("show", thread), ("threads", "list"), ("history", thread),
                 ("threads", "show", thread), ("size",)):
        out = run_cli(*args, env={"TERM": "xterm-256color"}).stdout
        assert "\x1b" not in out and "\x07" not in out, f"{args}: raw control characters"
        assert MARKUP in out, f"{args}: rich markup was interpreted:\n{out}"
    shown = run_cli("show", thread).stdout
    assert "\\x1b[31mred\\x1b[0m\\x07" in shown


def test_json_errors_and_unknown_schema(run_cli: Run, agent_db: str) -> None:
    missing = run_cli("show", "nope", "--json", check=False)
    assert missing.returncode == 1 and missing.stdout == ""
    # stderr: the line naming the database, then the error as one JSON object
    error = json.loads(missing.stderr.splitlines()[-1])["error"]
    assert error["type"] == "InvalidInputError" and "'nope'" in error["message"]
    gone = run_cli("threads", "stats", "nope", "--json", check=False)
    assert gone.returncode == 1
    assert "does not exist" in json.loads(gone.stderr.splitlines()[-1])["error"]["message"]

    for args in (("threads", "list"), ("history", "done"), ("size",)):
        done = run_cli(*args, "--schema", "nowhere", check=False)
        assert done.returncode == 1
        assert "run `pgcheckpoint setup --schema nowhere`" in done.stderr, done.stderr
        assert "does not exist" not in done.stderr and "^" not in done.stderr
    as_js = run_cli("threads", "list", "--schema", "nowhere", "--json", check=False)
    assert json.loads(as_js.stderr.splitlines()[-1])["error"]["type"] == "SchemaError"


def test_health_exit_status(run_cli: Run, agent_db: str) -> None:
    ok = run_cli("health", "--json")
    assert json.loads(ok.stdout)["ok"] is True
    assert "healthy" in run_cli("health").stdout
    bad = run_cli("health", "--schema", "nowhere", "--json", check=False)
    assert bad.returncode == 1 and json.loads(bad.stdout)["ok"] is False
    assert "unhealthy" in run_cli("health", "--schema", "nowhere", check=False).stdout


def test_size_is_human_and_counts_rows_before_analyze(run_cli: Run, agent_db: str) -> None:
    with psycopg.connect(agent_db) as conn:
        count = conn.execute("SELECT count(*) FROM checkpoints").fetchone()
        analyzed = conn.execute(
            "SELECT reltuples >= 0 FROM pg_class WHERE oid = 'public.checkpoints'::regclass"
        ).fetchone()
    assert count is not None and analyzed is not None
    report = as_json(run_cli("size", "--json"))
    checkpoints = next(t for t in report["tables"] if t["name"] == "checkpoints")
    assert checkpoints["rows_estimate"] == count[0] and count[0] > 0
    assert checkpoints["rows_exact"] is not analyzed[0]
    out = run_cli("size").stdout
    assert re.search(r"\d+\.\d (KiB|MiB)", out) and "rows" in out
    assert "alias of `size`" in run_cli("stats", "--help").stdout


def test_optimize_says_what_postgres_skipped(run_cli: Run, agent_db: str) -> None:
    done = as_json(run_cli("optimize", "--json"))
    assert done["vacuumed"] == ["threads", "checkpoints", "blobs", "chunks", "writes"]
    assert done["skipped"] == []
    role = "pgc_not_owner"
    with psycopg.connect(agent_db, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {role}")
        conn.execute(f"CREATE ROLE {role} LOGIN")
    try:
        url = psycopg.conninfo.make_conninfo(agent_db, user=role)
        refused = run_cli("optimize", "--dsn", url, check=False)
        assert refused.returncode == 1
        assert "vacuumed" not in refused.stdout
        assert "skipped checkpoints: not the owner" in refused.stdout
    finally:
        with psycopg.connect(agent_db, autocommit=True) as conn:
            conn.execute(f"DROP ROLE {role}")


def test_cleanup_without_a_policy_says_so(run_cli: Run, agent_db: str) -> None:
    env = {"CHECKPOINT_MAX_VERSIONS": "", "CHECKPOINT_RETENTION_DAYS": ""}
    done = run_cli("cleanup", "--dry-run", env=env)
    assert "no retention policy given" in done.stderr
    assert as_json(run_cli("cleanup", "--dry-run", "--json", env=env))["policy_given"] is False
    given = run_cli("cleanup", "--dry-run", "--keep-last", "2", env=env)
    assert "no retention policy" not in given.stderr


def test_help_imports_no_heavy_module() -> None:
    code = (
        "import sys\n"
        "from pgcheckpoint.cli import main\n"
        "sys.argv = ['pgcheckpoint', '--help']\n"
        "try:\n    main()\n"
        "except SystemExit:\n    pass\n"
        "heavy = ('langgraph', 'langchain_core', 'pydantic', 'psycopg', 'psycopg_pool')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout
