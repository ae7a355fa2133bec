"""pgcheckpoint in one minute: crash an agent, resume it, travel back in time.

Run it with ``bash scripts/demo.sh`` (or ``python examples/demo.py``). It uses
``$DATABASE_URL`` if set, otherwise an embedded PostgreSQL that needs no
set-up. What happens:

1. a deterministic LangGraph agent (examples/_demo_agent.py) starts in a child
   process and saves a checkpoint to PostgreSQL after every step;
2. once a few steps are saved, this process kills the child with SIGKILL, as
   a crash, OOM kill or lost machine would;
3. the same thread resumes from its last checkpoint and runs to completion;
4. the thread's checkpoint history is printed;
5. a time-travel fork edits an earlier checkpoint and runs from there, while
   the original ending stays in the history.

The child is this same file run with ``--agent``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Sequence
from typing import Any

from _demo_agent import build_graph
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.types import StateSnapshot
from psycopg.conninfo import conninfo_to_dict

from pgcheckpoint import PostgresSaver
from pgcheckpoint.embedded import resolve_dsn

DSN_ENV = "PGCHECKPOINT_DEMO_DSN"  # how the parent hands the DSN to the child
POLL_SECONDS = 0.05
CHILD_TIMEOUT = 120.0


def explain(text: str) -> None:
    body = " ".join(textwrap.dedent(text).split())
    print(
        textwrap.fill(body, width=92, initial_indent="    ", subsequent_indent="    "), flush=True
    )


def heading(number: int, title: str) -> None:
    print(f"\n--- {number}. {title} ---", flush=True)


def describe_dsn(dsn: str) -> str:
    """Where the database is, without the password."""
    params = conninfo_to_dict(dsn)
    host = str(params.get("host") or "localhost")
    where = f"unix socket in {host}" if host.startswith("/") else host
    if params.get("port"):
        where += f", port {params['port']}"
    return f"database {params.get('dbname') or params.get('user') or '?'} ({where})"


def thread_config(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}}


def checkpoint_id(snapshot: StateSnapshot) -> str:
    return str(snapshot.config["configurable"]["checkpoint_id"])


# --------------------------------------------------------------------------- child


def run_agent_child(thread_id: str, steps: int, step_seconds: float) -> None:
    """The child process: run the agent on a new thread until done (or killed)."""
    dsn = os.environ[DSN_ENV]
    with PostgresSaver.from_conn_string(dsn) as saver:
        graph = build_graph(saver)
        start = {
            "task": "the quarterly report",
            "total_steps": steps,
            "step_seconds": step_seconds,
        }
        # durability="sync": each checkpoint is committed before the next step
        # starts, so a crash loses at most the step in progress.
        graph.invoke(start, thread_config(thread_id), durability="sync")


# -------------------------------------------------------------------------- parent


def start_child(dsn: str, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--agent",
        "--thread",
        args.thread,
        "--steps",
        str(args.steps),
        "--step-seconds",
        str(args.step_seconds),
    ]
    return subprocess.Popen(command, env={**os.environ, DSN_ENV: dsn})


def wait_for_steps(
    graph: Any, config: RunnableConfig, child: subprocess.Popen[bytes], n: int
) -> int:
    """Poll the database (not the child) until ``n`` steps are checkpointed."""
    deadline = time.monotonic() + CHILD_TIMEOUT
    while time.monotonic() < deadline:
        done = int(graph.get_state(config).values.get("done_steps", 0))
        if done >= n:
            return done
        if child.poll() is not None:
            raise SystemExit(f"demo failed: the agent exited early (code {child.returncode})")
        time.sleep(POLL_SECONDS)
    child.kill()
    raise SystemExit("demo failed: the agent made no progress in time")


def print_history(history: Sequence[StateSnapshot]) -> None:
    print("    (step: LangGraph's superstep; done: worker steps finished; next: node to run)")
    print(f"    {'#':>3}  {'step':>4}  {'source':<7} {'done':>4}  {'next':<10} checkpoint_id")
    for i, snap in enumerate(history, 1):
        meta = snap.metadata or {}
        print(
            f"    {i:>3}  {meta.get('step', '?'):>4}  {meta.get('source', '?'):<7} "
            f"{snap.values.get('done_steps', '-'):>4}  {','.join(snap.next) or '(end)':<10} "
            f"{checkpoint_id(snap)}"
        )


def run_demo(args: argparse.Namespace) -> None:
    print("pgcheckpoint demo: crash an agent, resume it, travel back in time")

    heading(1, "Database")
    dsn = resolve_dsn(embedded_path=args.data_dir)
    source = "DATABASE_URL" if os.environ.get("DATABASE_URL") else "an embedded PostgreSQL"
    print(f"    Using {source}: {describe_dsn(dsn)}")
    if not os.environ.get("DATABASE_URL"):
        explain(
            """
            The embedded server needs no set-up; its data stays on disk and it
            stops when this demo exits. Set DATABASE_URL to use your own server.
            """
        )
    config = thread_config(args.thread)

    with PostgresSaver.from_conn_string(dsn) as saver:
        saver.setup()
        explain(
            """
            saver.setup() created (or confirmed) pgcheckpoint's tables. It is
            safe to call on every start.
            """
        )
        graph = build_graph(saver)

        heading(2, "Run the agent in a separate process")
        child = start_child(dsn, args)
        explain(
            f"""
            Started the agent as process {child.pid} on thread {args.thread!r}:
            {args.steps} steps of {args.step_seconds}s each, a checkpoint after
            every step.
            """
        )
        done = wait_for_steps(graph, config, child, args.kill_after)

        heading(3, "Crash it")
        os.kill(child.pid, signal.SIGKILL)
        code = child.wait()
        snap = graph.get_state(config)
        done = int(snap.values["done_steps"])
        print(
            f"    Killed the agent process {child.pid} with SIGKILL after {done} of "
            f"{args.steps} steps were checkpointed (exit status {code})."
        )
        explain(
            f"""
            No clean-up ran in the child. What it had saved survives: the last
            checkpoint says {done}/{args.steps} steps are done and the next node
            to run is {", ".join(snap.next)!r}.
            """
        )

        heading(4, "Resume the same thread from its last checkpoint")
        explain(
            f"""
            graph.invoke(None, config) on thread {args.thread!r}, in this process
            ({os.getpid()}): passing None as input means "continue from the last
            checkpoint". Step {done + 1} was cut off by the kill, so it runs again.
            """
        )
        final = graph.invoke(None, config, durability="sync")
        if final["done_steps"] != args.steps:
            raise SystemExit(f"demo failed: resume stopped at step {final['done_steps']}")
        print(
            f"    The agent resumed and finished: {final['done_steps']}/{args.steps} steps, "
            f"{len(final['messages'])} messages. Last one: {final['messages'][-1].content!r}"
        )
        original_end = graph.get_state(config)

        heading(5, "The thread's history")
        history = list(graph.get_state_history(config))[::-1]
        explain(
            f"""
            graph.get_state_history(config) lists every checkpoint of the
            thread; oldest first, there are {len(history)}. The run before the
            crash and the resumed run form one unbroken chain.
            """
        )
        print_history(history)

        heading(6, "Time travel: fork from an earlier checkpoint")
        fork_at = min(2, args.steps - 2)
        new_total = fork_at + 2
        base = next(
            s for s in history if s.values.get("done_steps") == fork_at and s.next == ("worker",)
        )
        explain(
            f"""
            Going back to the checkpoint taken after step {fork_at}
            ({checkpoint_id(base)}) and changing the plan there with
            graph.update_state(): stop after {new_total} steps. Then
            graph.invoke(None, fork_config) runs from the edited checkpoint.
            """
        )
        fork_config = graph.update_state(
            base.config,
            {
                "total_steps": new_total,
                "messages": [HumanMessage(f"Change of plan: stop after {new_total} steps.")],
            },
            as_node="worker",
        )
        forked = graph.invoke(None, fork_config, durability="sync")
        if forked["done_steps"] != new_total:
            raise SystemExit(f"demo failed: the fork stopped at step {forked['done_steps']}")
        print(f"    The forked run finished with {forked['done_steps']}/{new_total} steps:")
        for message in forked["messages"]:
            print(f"      {message.type:>5}: {message.content}")

        latest = graph.get_state(config)
        kept = graph.get_state(original_end.config)
        if kept.values.get("done_steps") != args.steps:
            raise SystemExit("demo failed: the original ending is gone")
        explain(
            f"""
            Both branches are kept. The thread's latest state is now the fork's
            ending ({checkpoint_id(latest)}, {latest.values["done_steps"]} steps),
            and the original ending ({checkpoint_id(original_end)},
            {kept.values["done_steps"]} steps) can still be read or resumed from
            by its checkpoint id.
            """
        )

        show_cli(dsn, args.thread)

    heading(8, "Done")
    explain(
        f"""
        The demo killed the agent process, resumed the thread to completion and
        forked it from step {fork_at}. Look at the thread again with the CLI
        (`source .venv/bin/activate` first; without DATABASE_URL it starts the
        embedded server), or from Python with graph.get_state_history(config):
        """
    )
    for command in (f"history {args.thread}", f"show {args.thread} --all", "ui"):
        print(f"      pgcheckpoint {command}")


def show_cli(dsn: str, thread_id: str) -> None:
    """Run the real `pgcheckpoint` commands on the demo's thread, as a user would."""
    heading(7, "The same thread, seen with the pgcheckpoint CLI")
    env = {**os.environ, DSN_ENV: dsn, "PGCHECKPOINT_DSN": dsn}
    for command in (
        ["threads", "list", "--limit", "3"],
        ["history", thread_id],
        ["show", thread_id],
    ):
        print(f"\n    $ pgcheckpoint {' '.join(command)}", flush=True)
        subprocess.run(
            [sys.executable, "-m", "pgcheckpoint.cli", *command], env=env, check=True
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=8, help="worker steps (default 8, minimum 4)")
    parser.add_argument(
        "--kill-after", type=int, default=3, help="kill the agent after this many steps (default 3)"
    )
    parser.add_argument(
        "--step-seconds", type=float, default=0.3, help="how long each step takes (default 0.3)"
    )
    parser.add_argument(
        "--thread", default=f"demo-{uuid.uuid4().hex[:8]}", help="thread id (default: random)"
    )
    parser.add_argument(
        "--data-dir", default=None, help="embedded PostgreSQL data directory (when no DATABASE_URL)"
    )
    parser.add_argument("--agent", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 4:
        parser.error("--steps must be at least 4")
    if args.step_seconds < 0.1:
        parser.error("--step-seconds must be at least 0.1 (the demo needs time to crash a step)")
    if not 1 <= args.kill_after < args.steps:
        parser.error("--kill-after must be between 1 and --steps - 1")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.agent:
        run_agent_child(args.thread, args.steps, args.step_seconds)
    else:
        run_demo(args)


if __name__ == "__main__":
    main()
