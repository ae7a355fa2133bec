"""Every Python example in README.md and docs/*.md marked runnable runs, and raises nothing.

A block is runnable when the line before its ```` ```python ```` fence is
``<!-- runnable -->`` (the convention is in CONTRIBUTING.md). Each one runs on its
own, in a fresh namespace, against a fresh migrated test database, with the
working directory set to an empty temporary directory, and these names defined:

- ``url`` and ``DATABASE_URL``: the test database's connection string;
- ``builder``: a ``StateGraph`` (not compiled) over LangGraph's ``MessagesState``
  whose one node answers each human message;
- ``memory_saver``: an ``InMemorySaver`` holding a few threads of a real graph;
- ``checkpoints.sqlite`` in the working directory: a ``SqliteSaver`` file with threads.

A block that leaves something open stores it in a ``contextlib.ExitStack``; stacks
left in the namespace are closed after the block.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import START, MessagesState, StateGraph

from graph_fixtures import populate

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = "<!-- runnable -->"
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<info>[^`]*)$")


@dataclass(frozen=True)
class Example:
    document: Path
    line: int  # of the opening fence, 1-based
    code: str
    problem: str = ""  # set when the marker is misplaced

    @property
    def name(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"


def runnable_examples(document: Path) -> list[Example]:
    """The blocks of ``document`` marked runnable (a misplaced marker is an example too,
    whose ``problem`` fails its test, so a marker is never silently ignored)."""
    lines = document.read_text(encoding="utf-8").splitlines()
    found: list[Example] = []
    for i, text in enumerate(lines):
        if text.strip() != MARKER:
            continue
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        fence = FENCE.match(lines[j]) if j < len(lines) else None
        if fence is None or fence["info"].strip() != "python":
            found.append(Example(document, i + 1, "", f"{MARKER} not followed by a python block"))
            continue
        closing = fence["indent"] + "```"
        end = next((k for k in range(j + 1, len(lines)) if lines[k].rstrip() == closing), None)
        if end is None:
            found.append(Example(document, j + 1, "", "python block never closed"))
            continue
        # Blank lines in front, so a traceback's line numbers are the document's.
        code = "\n" * (j + 1) + textwrap.dedent("\n".join(lines[j + 1 : end])) + "\n"
        found.append(Example(document, j + 1, code))
    return found


EXAMPLES = [example for document in DOCUMENTS for example in runnable_examples(document)]


def test_examples_are_marked() -> None:
    """The marker is in use (a rename of it would otherwise silently run nothing)."""
    assert len(EXAMPLES) >= 10, [e.name for e in EXAMPLES]


def _builder() -> StateGraph[Any]:
    def chat(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage(f"you said: {state['messages'][-1].content}")]}

    b: StateGraph[Any] = StateGraph(MessagesState)
    b.add_node("chat", chat)
    b.add_edge(START, "chat")
    return b


@pytest.fixture
def in_tmp_dir(tmp_path: Path) -> Iterator[Path]:
    before = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(before)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_example_runs(example: Example, db_url: str, in_tmp_dir: Path) -> None:
    assert not example.problem, f"{example.name}: {example.problem}"
    with sqlite3.connect(in_tmp_dir / "checkpoints.sqlite", check_same_thread=False) as conn:
        populate(SqliteSaver(conn), 2)
    conn.close()
    memory_saver = InMemorySaver()
    populate(memory_saver, 2)
    namespace: dict[str, Any] = {
        "__name__": "__docs_example__",
        "url": db_url,
        "DATABASE_URL": db_url,
        "builder": _builder(),
        "memory_saver": memory_saver,
    }
    code = compile(example.code, str(example.document.relative_to(ROOT)), "exec")
    try:
        exec(code, namespace)
    finally:
        for value in list(namespace.values()):
            if isinstance(value, contextlib.ExitStack):
                value.close()
