"""Retention policies: the pure arithmetic, and each policy on real graphs.

Every policy test runs a real LangGraph graph on a real PostgreSQL, sweeps,
and checks that exactly the expected checkpoints remain and that the thread
still resumes and time-travels within what is kept.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Sequence
from datetime import timedelta
from typing import Annotated, Any, TypedDict

import psycopg
import pytest
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from _history import cfg as history_cfg
from _history import dangling, fan_graph, memory_graph, parentless, remembered, turn
from _history import namespaces as history_namespaces
from _history import subgraph_graph as history_subgraph_graph
from pgcheckpoint import ConfigurationError, InvalidInputError, PostgresSaver
from pgcheckpoint.retention import (
    RetentionPolicy,
    SweepReport,
    sweeper_settings_from_env,
)


class State(TypedDict):
    msgs: Annotated[list[str], operator.add]


def _append(state: State) -> dict[str, Any]:
    return {"msgs": ["m" * 400]}


def graph(saver: PostgresSaver) -> Any:
    b = StateGraph(State)
    b.add_node("a", _append)
    b.add_node("b", _append)
    b.add_edge(START, "a")
    b.add_edge("a", "b")
    b.add_edge("b", END)
    return b.compile(checkpointer=saver)


def cfg(thread: str, checkpoint_id: str | None = None) -> dict[str, Any]:
    conf: dict[str, Any] = {"thread_id": thread}
    if checkpoint_id:
        conf.update(checkpoint_ns="", checkpoint_id=checkpoint_id)
    return {"configurable": conf}


def ids(saver: PostgresSaver, thread: str) -> list[str]:
    return [t.config["configurable"]["checkpoint_id"] for t in saver.list(cfg(thread))]


def run(saver: PostgresSaver, thread: str, turns: int) -> Any:
    g = graph(saver)
    for _ in range(turns):
        g.invoke({"msgs": ["hi"]}, cfg(thread))
    return g


def sql(url: str, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def counts(url: str) -> dict[str, int]:
    tables = ("threads", "checkpoints", "blobs", "chunks", "writes")
    return {t: sql(url, f"SELECT count(*) FROM {t}")[0][0] for t in tables}


# --- pure ---------------------------------------------------------------------


def test_policy_validation() -> None:
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ConfigurationError, match="keep_last"):
            RetentionPolicy(keep_last=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_age"):
        RetentionPolicy(max_age=timedelta(0))
    with pytest.raises(ConfigurationError, match="thread_ttl"):
        RetentionPolicy(thread_ttl=30)  # type: ignore[arg-type]
    assert RetentionPolicy().is_noop
    assert not RetentionPolicy(keep_last=1).is_noop


def test_from_settings_and_env() -> None:
    assert RetentionPolicy.from_settings(max_versions=5, retention_days=2) == RetentionPolicy(
        keep_last=5, max_age=timedelta(days=2)
    )
    with pytest.raises(ConfigurationError, match="not both"):
        RetentionPolicy.from_settings(retention=RetentionPolicy(), max_versions=3)
    with pytest.raises(ConfigurationError, match="retention_days"):
        RetentionPolicy.from_settings(retention_days=-1)
    env = {"CHECKPOINT_RETENTION_DAYS": "30", "CHECKPOINT_MAX_VERSIONS": "10",
           "CHECKPOINT_AUTO_CLEANUP": "true", "CHECKPOINT_CLEANUP_INTERVAL": "60"}
    settings = sweeper_settings_from_env(env)
    assert settings == {
        "retention": RetentionPolicy(keep_last=10, max_age=timedelta(days=30)),
        "auto_cleanup": True,
        "cleanup_interval": 60.0,
    }
    with pytest.raises(ConfigurationError, match="CHECKPOINT_AUTO_CLEANUP"):
        sweeper_settings_from_env({"CHECKPOINT_AUTO_CLEANUP": "maybe"})
    with pytest.raises(ConfigurationError, match="CHECKPOINT_MAX_VERSIONS"):
        RetentionPolicy.from_env({"CHECKPOINT_MAX_VERSIONS": "ten"})


def test_json_round_trip() -> None:
    p = RetentionPolicy(keep_last=3, max_age=timedelta(hours=2), thread_ttl=timedelta(days=1),
                        keep_interrupted=False)
    assert RetentionPolicy.from_json(p.to_json()) == p
    assert json.loads(p.to_json()) == {"keep_last": 3, "max_age": 7200.0,
                                       "thread_ttl": 86400.0, "keep_interrupted": False}
    with pytest.raises(InvalidInputError, match="unknown"):
        RetentionPolicy.from_json({"keep": 1})


def test_bad_saver_settings(db_url: str) -> None:
    with pytest.raises(ConfigurationError, match="not both"), PostgresSaver.from_conn_string(
        db_url, retention=RetentionPolicy(keep_last=1), max_versions=2
    ):
        pass
    with pytest.raises(ConfigurationError, match="cleanup_interval"):
        PostgresSaver.from_conn_string(db_url, cleanup_interval=0).__enter__()


# --- policies on real graphs --------------------------------------------------


def test_keep_last_keeps_newest_and_thread_resumes(db_url: str) -> None:
    with PostgresSaver.from_conn_string(db_url, max_versions=3) as saver:
        g = run(saver, "t", 4)
        run(saver, "u", 1)
        before = ids(saver, "t")
        assert len(before) == 16
        report = saver.cleanup_old_checkpoints()
        assert report.checkpoints_deleted == 13 + 1  # u had 4, keeps 3
        assert ids(saver, "t") == before[:3]
        oldest = saver.get_tuple(cfg("t", before[2]))
        assert oldest is not None and oldest.parent_config is None  # history starts there
        # resumes: the full message list is intact in the newest checkpoint
        assert len(g.get_state(cfg("t")).values["msgs"]) == 12
        g.invoke({"msgs": ["again"]}, cfg("t"))
        assert len(g.get_state(cfg("t")).values["msgs"]) == 15
        # time travel to the oldest kept checkpoint and fork from it
        past = g.get_state(cfg("t", before[2]))
        assert len(past.values["msgs"]) == 10
        g.invoke(None, past.config)
        assert saver.cleanup_old_checkpoints(dry_run=True).checkpoints_deleted > 0


def test_max_age_removes_old_but_keeps_head(db_url: str) -> None:
    with PostgresSaver.from_conn_string(db_url, max_age=timedelta(days=1)) as saver:
        run(saver, "old", 2)
        run(saver, "mixed", 2)
        # now() rather than created_at - interval: Citus refuses a STABLE function
        # of a column in UPDATE (timestamptz - interval depends on the time zone).
        sql(db_url, "UPDATE checkpoints SET created_at = now() - interval '3 days' "
                    "WHERE thread_id = 'old'")
        mixed = ids(saver, "mixed")
        sql(db_url, "UPDATE checkpoints SET created_at = now() - interval '3 days' "
                    "WHERE thread_id = 'mixed' AND checkpoint_id <= %s", (mixed[4],))
        old = ids(saver, "old")
        saver.cleanup_old_checkpoints()
        assert ids(saver, "old") == old[:1]
        assert ids(saver, "mixed") == mixed[:4]
        assert len(graph(saver).get_state(cfg("old")).values["msgs"]) == 6


def _ask(state: State) -> dict[str, Any]:
    answer = interrupt("ok?")
    return {"msgs": [str(answer)]}


def interrupt_graph(saver: PostgresSaver) -> Any:
    b = StateGraph(State)
    b.add_node("a", _append)
    b.add_node("ask", _ask)
    b.add_edge(START, "a")
    b.add_edge("a", "ask")
    b.add_edge("ask", END)
    return b.compile(checkpointer=saver)


class SubState(TypedDict):
    msgs: Annotated[list[str], operator.add]
    ask: bool


def _maybe_ask(state: SubState) -> dict[str, Any]:
    return {"msgs": [str(interrupt("ok?"))]} if state.get("ask") else {"msgs": ["done"]}


def subgraph_graph(saver: PostgresSaver) -> Any:
    inner = StateGraph(SubState)
    inner.add_node("work", _append)
    inner.add_node("maybe_ask", _maybe_ask)
    inner.add_edge(START, "work")
    inner.add_edge("work", "maybe_ask")
    inner.add_edge("maybe_ask", END)
    outer = StateGraph(SubState)
    outer.add_node("sub", inner.compile())
    outer.add_edge(START, "sub")
    outer.add_edge("sub", END)
    return outer.compile(checkpointer=saver)


def namespaces(url: str, thread: str) -> list[str]:
    rows = sql(url, "SELECT DISTINCT checkpoint_ns FROM checkpoints WHERE thread_id = %s "
                    "ORDER BY 1", (thread,))
    return [r[0] for r in rows]


def test_subgraph_namespaces_older_than_kept_history_go(db_url: str) -> None:
    with PostgresSaver.from_conn_string(db_url, max_versions=2) as saver:
        g = subgraph_graph(saver)
        for _ in range(5):
            g.invoke({"msgs": ["hi"], "ask": False}, cfg("t"))
        g.invoke({"msgs": ["hi"], "ask": True}, cfg("t"))  # paused inside the subgraph
        assert len(namespaces(db_url, "t")) == 1 + 6
        paused = g.get_state(cfg("t"), subgraphs=True)
        assert paused.interrupts and paused.tasks[0].state is not None
        saver.cleanup_old_checkpoints()
        # The root keeps 2; of the subgraph runs only the paused one is newer than them.
        kept = namespaces(db_url, "t")
        assert len(kept) == 2 and kept[0] == ""
        assert kept[1] == paused.tasks[0].state.config["configurable"]["checkpoint_ns"]
        again = g.get_state(cfg("t"), subgraphs=True)
        assert again.tasks[0].state.values == paused.tasks[0].state.values
        out = g.invoke(Command(resume="yes"), cfg("t"))
        # The same run on InMemorySaver, never swept, ends in the same state.
        ref = subgraph_graph(InMemorySaver())  # type: ignore[arg-type]
        for _ in range(5):
            ref.invoke({"msgs": ["hi"], "ask": False}, cfg("t"))
        ref.invoke({"msgs": ["hi"], "ask": True}, cfg("t"))
        assert out == ref.invoke(Command(resume="yes"), cfg("t"))
        assert out["msgs"][-1] == "yes"
        # The root's newest two still include the step that ran that subgraph, so a
        # sweep now keeps it; after one more turn it is older than the kept history.
        saver.cleanup_old_checkpoints()
        assert namespaces(db_url, "t") == kept
        g.invoke({"msgs": ["hi"], "ask": False}, cfg("t"))
        saver.cleanup_old_checkpoints()
        latest = namespaces(db_url, "t")
        assert len(latest) == 2 and kept[1] not in latest
        assert sql(db_url, "SELECT count(*) FROM checkpoints "
                           "WHERE thread_id = 't' AND checkpoint_ns = ''") == [(2,)]


def test_thread_ttl_expires_idle_threads_but_not_paused_ones(db_url: str) -> None:
    policy = RetentionPolicy(thread_ttl=timedelta(hours=1))
    with PostgresSaver.from_conn_string(db_url, retention=policy) as saver:
        run(saver, "idle", 1)
        run(saver, "fresh", 1)
        g = interrupt_graph(saver)
        g.invoke({"msgs": ["hi"]}, cfg("paused"))
        assert g.get_state(cfg("paused")).interrupts
        sql(db_url, "UPDATE threads SET updated_at = now() - interval '2 hours' "
                    "WHERE thread_id IN ('idle', 'paused')")
        report = saver.cleanup_old_checkpoints()
        assert report.threads_deleted == 1
        assert ids(saver, "idle") == []
        assert ids(saver, "fresh") and ids(saver, "paused")
        # the paused thread still resumes
        g.invoke(Command(resume="yes"), cfg("paused"))
        assert g.get_state(cfg("paused")).values["msgs"][-1] == "yes"
        # without keep_interrupted, a paused idle thread expires too
        g.invoke({"msgs": ["hi"]}, cfg("paused2"))
        sql(db_url, "UPDATE threads SET updated_at = now() - interval '2 hours' "
                    "WHERE thread_id = 'paused2'")
        saver.set_thread_retention("paused2", RetentionPolicy(
            thread_ttl=timedelta(hours=1), keep_interrupted=False))
        assert saver.cleanup_old_checkpoints().threads_deleted == 1
        assert ids(saver, "paused2") == []


def test_per_thread_override_and_pins(db_url: str) -> None:
    with PostgresSaver.from_conn_string(db_url, max_versions=3) as saver:
        for t in ("default", "strict", "pinned", "keepall"):
            run(saver, t, 2)
        saver.set_thread_retention("strict", RetentionPolicy(keep_last=1))
        saver.set_thread_retention("keepall", RetentionPolicy())
        assert saver.get_thread_retention("strict") == RetentionPolicy(keep_last=1)
        assert saver.get_thread_retention("default") is None
        saver.pin_thread("pinned")
        default = ids(saver, "default")
        saver.pin_checkpoint(cfg("default", default[-1]))
        saver.cleanup_old_checkpoints()
        assert ids(saver, "default") == [*default[:3], default[-1]]
        assert len(ids(saver, "strict")) == 1
        assert len(ids(saver, "pinned")) == 8
        assert len(ids(saver, "keepall")) == 8
        pinned_first = saver.get_tuple(cfg("default", default[-1]))
        assert pinned_first is not None and pinned_first.checkpoint["id"] == default[-1]
        saver.unpin_thread("pinned")
        saver.unpin_checkpoint(cfg("default", default[-1]))
        saver.set_thread_retention("strict", None)
        saver.cleanup_old_checkpoints()
        assert len(ids(saver, "pinned")) == 3
        assert ids(saver, "default") == default[:3]
        assert len(ids(saver, "strict")) == 1


def test_bad_input_leaves_database_unchanged(db_url: str) -> None:
    with PostgresSaver.from_conn_string(db_url, max_versions=1) as saver:
        run(saver, "t", 1)
        before = counts(db_url)
        with pytest.raises(InvalidInputError, match="does not exist"):
            saver.pin_checkpoint(cfg("t", "no-such-checkpoint"))
        with pytest.raises(InvalidInputError, match="checkpoint_id"):
            saver.pin_checkpoint(cfg("t"))
        with pytest.raises(InvalidInputError, match="RetentionPolicy"):
            saver.set_thread_retention("t", {"keep_last": 1})  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match="thread_id"):
            saver.pin_thread("")
        with pytest.raises(InvalidInputError, match="batch_size"):
            saver.cleanup_old_checkpoints(batch_size=0)
        with pytest.raises(InvalidInputError, match="orphan_grace"):
            saver.cleanup_old_checkpoints(orphan_grace=timedelta(seconds=-1))
        with pytest.raises(InvalidInputError, match="dry_run"):
            saver.cleanup_old_checkpoints(dry_run="yes")  # type: ignore[arg-type]
        assert counts(db_url) == before
        assert sql(db_url, "SELECT count(*) FROM checkpoints WHERE pinned")[0][0] == 0


# --- DeltaChannel -------------------------------------------------------------


def _concat(state: list[str], writes: Sequence[list[str]]) -> list[str]:
    out = list(state)
    for w in writes:
        out.extend(w)
    return out


class DeltaState(TypedDict):
    log: Annotated[list[str], DeltaChannel(_concat, snapshot_frequency=3)]


def _log(state: DeltaState) -> dict[str, Any]:
    return {"log": [f"entry-{len(state['log'])}-" + "x" * 50]}


def test_delta_channel_reconstructs_exactly_after_pruning(db_url: str) -> None:
    with PostgresSaver.from_conn_string(db_url, max_versions=2) as saver:
        b = StateGraph(DeltaState)
        b.add_node("a", _log)
        b.add_edge(START, "a")
        b.add_edge("a", END)
        g = b.compile(checkpointer=saver)
        for i in range(7):
            g.invoke({"log": [f"in-{i}"]}, cfg("d"))
        before = {c: g.get_state(cfg("d", c)).values for c in ids(saver, "d")}
        newest = ids(saver, "d")[:2]
        report = saver.cleanup_old_checkpoints()
        kept = ids(saver, "d")
        assert report.checkpoints_deleted == len(before) - len(kept)
        assert newest == kept[:2]
        assert len(kept) > 2  # ancestors the DeltaChannel needs were kept
        for c in kept:
            assert g.get_state(cfg("d", c)).values == before[c]
        g.invoke({"log": ["more"]}, cfg("d"))
        assert g.get_state(cfg("d")).values["log"][: len(before[newest[0]]["log"])] == before[
            newest[0]
        ]["log"]


def test_report_fields() -> None:
    r = SweepReport(checkpoints_deleted=1, bytes_freed=5)
    assert r.counts()["checkpoints_deleted"] == 1 and not r.dry_run and not r.skipped


# --- what a sweep leaves: the expectations of the reference prune ---------------


def test_sweep_keeps_a_checkpointer_true_subgraph_but_not_finished_calls(db_url: str) -> None:
    # A `checkpointer=True` subgraph's namespace ("memory") is its memory across
    # calls: a sweep keeps it like the root's, however old its newest
    # checkpoint; the namespaces of finished calls ("call:<task id>") go.
    with PostgresSaver.from_conn_string(db_url, max_versions=1) as saver:
        g = memory_graph(saver)
        ref = memory_graph(InMemorySaver())
        for i in range(3):
            g.invoke(turn(i), history_cfg("t"))
            ref.invoke(turn(i), history_cfg("t"))
        assert len(history_namespaces(saver, "t")) == 2 + 3
        saver.cleanup_old_checkpoints()
        assert history_namespaces(saver, "t") == ["", "memory"]
        assert dangling(db_url) == []
        g.invoke(turn(3), history_cfg("t"))
        ref.invoke(turn(3), history_cfg("t"))
        values = g.get_state(history_cfg("t")).values
        assert values == ref.get_state(history_cfg("t")).values
        assert remembered(values, 4)


@pytest.mark.parametrize("keep_last", [1, 2])
def test_sweep_keeps_a_paused_subgraph_resumable(db_url: str, keep_last: int) -> None:
    with PostgresSaver.from_conn_string(db_url, max_versions=keep_last) as saver:
        g = history_subgraph_graph(saver)
        ref = history_subgraph_graph(InMemorySaver())
        for graph_ in (g, ref):
            for i in range(2):
                graph_.invoke(turn(i), history_cfg("t"))
                graph_.invoke(Command(resume=f"yes {i}"), history_cfg("t"))
            graph_.invoke(turn(2), history_cfg("t"))
        before = g.get_state(history_cfg("t"), subgraphs=True)
        paused = before.tasks[0].state.config["configurable"]["checkpoint_ns"]
        saver.cleanup_old_checkpoints()
        assert history_namespaces(saver, "t") == ["", paused]
        after = g.get_state(history_cfg("t"), subgraphs=True)
        assert after == (parentless(before) if keep_last == 1 else before)
        assert dangling(db_url) == []
        g.invoke(Command(resume="yes 2"), history_cfg("t"))
        ref.invoke(Command(resume="yes 2"), history_cfg("t"))
        assert g.get_state(history_cfg("t")).values == ref.get_state(history_cfg("t")).values


def test_sweep_keeps_a_pending_interrupt_and_the_writes_before_a_failure(db_url: str) -> None:
    with PostgresSaver.from_conn_string(db_url, max_versions=1) as saver:
        fail: set[str] = set()
        asking, failing = fan_graph(saver, ask=True), fan_graph(saver, fail=fail)
        asking.invoke(turn(0), history_cfg("asks"))
        asking.invoke(Command(resume="yes"), history_cfg("asks"))
        asking.invoke(turn(1), history_cfg("asks"))
        failing.invoke(turn(0), history_cfg("fails"))
        fail.add("right")
        with pytest.raises(ValueError, match="right failed"):
            failing.invoke(turn(1), history_cfg("fails"))
        before = {"asks": asking.get_state(history_cfg("asks")),
                  "fails": failing.get_state(history_cfg("fails"))}
        assert before["asks"].interrupts
        saver.cleanup_old_checkpoints()
        assert asking.get_state(history_cfg("asks")) == parentless(before["asks"])
        assert failing.get_state(history_cfg("fails")) == parentless(before["fails"])
        assert dangling(db_url) == []
        out = asking.invoke(Command(resume="sure"), history_cfg("asks"))
        assert out["notes"][-1].startswith("answer sure")
        out = failing.invoke(None, history_cfg("fails"))
        assert out["notes"].count("left") == 2 and out["notes"].count("right") == 2


def test_sweep_clears_a_parent_that_no_longer_exists(db_url: str) -> None:
    # A parent lost outside the sweep (a failover that lost a commit, a row
    # deleted by hand) leaves its child naming nothing; the sweep of that thread
    # clears it like the parents it deletes itself.
    with PostgresSaver.from_conn_string(db_url, max_versions=10) as saver:
        run(saver, "t", 2)
        kept = ids(saver, "t")
        sql(db_url, "DELETE FROM checkpoints WHERE thread_id = 't' AND checkpoint_id = %s",
            (kept[3],))
        assert dangling(db_url) == [("t", "", kept[2], kept[3])]
        saver.cleanup_old_checkpoints()
        assert dangling(db_url) == []
        orphaned = saver.get_tuple(cfg("t", kept[2]))
        assert orphaned is not None and orphaned.parent_config is None
        assert ids(saver, "t") == [*kept[:3], *kept[4:]]
