#!/usr/bin/env python3
"""Generate pgcheckpoint's sync modules from their async sources.

The async code is the source; its sync twin is generated, so the two cannot
drift apart (psycopg does the same for its pool). Each pair is listed in
``PAIRS``. The rewrite reads the source's syntax tree to find what to change
and edits the source text in place, so comments and layout survive:

* ``async def`` / ``async with`` / ``async for`` lose ``async``; ``await x``
  becomes ``x``;
* a name, attribute, imported name, function or class name found in ``NAMES``
  is renamed (the map is explicit: stripping a leading ``a`` by rule would turn
  ``auto_sweeper`` into ``uto_sweeper``);
* in strings (docstrings included) and comments, ``PHRASES`` are replaced,
  then every ``NAMES`` key as a whole word;
* duplicate names in one ``from ... import`` are dropped.

The result is passed through ``ruff check --fix`` (import order, unused
imports, ``yield from``) and gets a header naming its source.

    python tools/async_to_sync.py            # regenerate every pair
    python tools/async_to_sync.py --check    # exit 1 if a generated file is stale
"""

from __future__ import annotations

import argparse
import ast
import difflib
import io
import itertools
import re
import subprocess
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# source (hand-written, async) -> generated (sync)
PAIRS = {
    "src/pgcheckpoint/_runner_async.py": "src/pgcheckpoint/_runner.py",
    "src/pgcheckpoint/aio.py": "src/pgcheckpoint/saver.py",
}

# Async name -> sync name, for code, strings and comments.
NAMES = {
    # modules of ours
    "_runner_async": "_runner",
    # driver and standard library
    "AsyncConnection": "Connection",
    "AsyncConnectionPool": "ConnectionPool",
    "AsyncCursor": "Cursor",
    "AsyncIterator": "Iterator",
    "asynccontextmanager": "contextmanager",
    "async_pool_kwargs": "pool_kwargs",
    # _acompat
    "ALock": "Lock",
    "AGate": "Gate",
    "asleep": "sleep",
    "arun_blocking": "run_blocking",
    # runners and savers
    "AsyncRunner": "SyncRunner",
    "AsyncSource": "SyncSource",
    "AsyncPostgresSaver": "PostgresSaver",
    "LoopBridges": "ThreadBridges",
    "TaskSweeper": "ThreadSweeper",
    # LangGraph's run methods, named in docstrings
    "ainvoke": "invoke",
    "astream": "stream",
    # the saver's coroutines
    "aget_tuple": "get_tuple",
    "alist": "list",
    "aput": "put",
    "aput_writes": "put_writes",
    "adelete_thread": "delete_thread",
    "adelete_for_runs": "delete_for_runs",
    "acopy_thread": "copy_thread",
    "aprune": "prune",
    "aget_delta_channel_history": "get_delta_channel_history",
    "alist_threads": "list_threads",
    "athread_stats": "thread_stats",
    "aget_at_time": "get_at_time",
    "alist_versions": "list_versions",
    "arollback": "rollback",
    "adelete_checkpoint": "delete_checkpoint",
    "athread_summaries": "thread_summaries",
    "athread_summary": "thread_summary",
    "athread_graph": "thread_graph",
    "acleanup_old_checkpoints": "cleanup_old_checkpoints",
    "aset_thread_retention": "set_thread_retention",
    "aget_thread_retention": "get_thread_retention",
    "apin_thread": "pin_thread",
    "aunpin_thread": "unpin_thread",
    "apin_checkpoint": "pin_checkpoint",
    "aunpin_checkpoint": "unpin_checkpoint",
    "aschedule_cleanup": "schedule_cleanup",
    "aunschedule_cleanup": "unschedule_cleanup",
    "astorage_report": "storage_report",
    "aoptimize": "optimize",
    "astart_sweeper": "start_sweeper",
    "astop_sweeper": "stop_sweeper",
    "ahealth_check": "health_check",
    "abatch_save_checkpoints": "batch_save_checkpoints",
}

# Wording of strings and comments that is not a name (applied first, in order).
PHRASES = {
    "The async runner: runs plans": "The sync runner: runs plans",
    "This is the source of the sync runner: tools/async_to_sync.py generates\n"
    ":mod:`pgcheckpoint._runner` (``SyncRunner``) from it. Edit this file, then run\n"
    "``python tools/async_to_sync.py``; never edit ``_runner.py``.": (
        "Generated from the async runner by tools/async_to_sync.py (see the first line)."
    ),
    "the asyncio checkpointer": "the synchronous checkpointer",
    "This is the source of ``PostgresSaver``: tools/async_to_sync.py generates\n"
    ":mod:`pgcheckpoint.saver` from it. Edit this file, then run\n"
    "``python tools/async_to_sync.py``; never edit ``saver.py``.": (
        "Generated from :mod:`pgcheckpoint.aio` by tools/async_to_sync.py."
    ),
    "for async graphs": "for sync graphs",
    "a new async connection pool": "a new connection pool",
    "await :meth:`setup`": "call :meth:`setup`",
    "background sweeper task on the running event loop": "background sweeper thread",
    "a task on the running loop": "a daemon thread",
    "awaiting": "waiting for",
    "async with ": "with ",
    "await saver.": "saver.",
}

MARKER = "generated from {source} by tools/async_to_sync.py; do not edit"


def _header(source: str) -> str:
    return (
        f"# {MARKER.format(source=source)}.\n"
        "# Edit the source, then run `python tools/async_to_sync.py` (docs/architecture.md).\n"
    )


_ALTERNATIVES = "|".join(sorted(map(re.escape, NAMES), key=len, reverse=True))
_WORDS = re.compile(rf"\b({_ALTERNATIVES})\b")


def rename_text(text: str) -> str:
    """Phrases, then whole-word names, in a string or a comment."""
    for old, new in PHRASES.items():
        text = text.replace(old, new)
    return _WORDS.sub(lambda m: NAMES[m.group(1)], text)


class _Edits(ast.NodeVisitor):
    """Collects (start, end, replacement) text edits for one module."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = text.splitlines(keepends=True)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))
        self.edits: list[tuple[int, int, str]] = []

    def offset(self, lineno: int, col: int) -> int:
        """The text offset of an AST position (``col`` counts UTF-8 bytes)."""
        line = self.lines[lineno - 1]
        return self.starts[lineno - 1] + len(line.encode()[:col].decode())

    def span(self, node: ast.AST) -> tuple[int, int]:
        start = self.offset(node.lineno, node.col_offset)  # type: ignore[attr-defined]
        end = self.offset(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
        return start, end

    def edit(self, start: int, end: int, new: str) -> None:
        self.edits.append((start, end, new))

    def drop_keyword(self, node: ast.AST, word: str) -> None:
        """Remove ``word`` and the blanks after it at the start of ``node``."""
        start, _ = self.span(node)
        m = re.compile(re.escape(word) + r"\s+").match(self.text, start)
        if m is None:
            raise SyntaxError(f"line {node.lineno}: expected {word!r}")  # type: ignore[attr-defined]
        self.edit(start, m.end(), "")

    def rename_def(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        if node.name not in NAMES:
            return
        start, _ = self.span(node)
        m = re.compile(r"(async\s+)?(def|class)\s+").match(self.text, start)
        if m is None:
            raise SyntaxError(f"line {node.lineno}: cannot find the name of {node.name}")
        self.edit(m.end(), m.end() + len(node.name), NAMES[node.name])

    # --- statements ---------------------------------------------------------
    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self.rename_def(node)
        self.drop_keyword(node, "async")
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.rename_def(node)
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.rename_def(node)
        self.generic_visit(node)

    def visit_AsyncWith(self, node: ast.AsyncWith) -> None:
        self.drop_keyword(node, "async")
        self.generic_visit(node)

    def visit_AsyncFor(self, node: ast.AsyncFor) -> None:
        self.drop_keyword(node, "async")
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        names: list[str] = []
        for alias in node.names:
            name = NAMES.get(alias.name, alias.name)
            if alias.asname:
                name += f" as {alias.asname}"
            if name not in names:
                names.append(name)
        module = "." * node.level + NAMES.get(node.module or "", node.module or "")
        start, end = self.span(node)
        self.edit(start, end, f"from {module} import {', '.join(names)}")

    # --- expressions --------------------------------------------------------
    def visit_Await(self, node: ast.Await) -> None:
        start, _ = self.span(node)
        value_start, _ = self.span(node.value)
        if not re.fullmatch(r"await\s+", self.text[start:value_start]):
            raise SyntaxError(f"line {node.lineno}: write `await x`, not `await (x)`")
        self.edit(start, value_start, "")
        self.visit(node.value)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in NAMES:
            start, end = self.span(node)
            self.edit(start, end, NAMES[node.id])

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.visit(node.value)
        if node.attr in NAMES:
            _, end = self.span(node)
            if self.text[end - len(node.attr) : end] != node.attr:
                raise SyntaxError(f"line {node.lineno}: cannot find attribute {node.attr}")
            self.edit(end - len(node.attr), end, NAMES[node.attr])

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str):
            start, end = self.span(node)
            new = rename_text(self.text[start:end])
            if new != self.text[start:end]:
                self.edit(start, end, new)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        # An f-string is renamed as text, the names in its fields included.
        start, end = self.span(node)
        new = rename_text(self.text[start:end])
        if new != self.text[start:end]:
            self.edit(start, end, new)


def _comment_edits(text: str, starts: list[int]) -> list[tuple[int, int, str]]:
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            new = rename_text(tok.string)
            if new != tok.string:
                (row, col), (erow, ecol) = tok.start, tok.end
                out.append((starts[row - 1] + col, starts[erow - 1] + ecol, new))
    return out


def unasync(text: str) -> str:
    """The sync twin of the async module ``text`` (before formatting)."""
    tree = ast.parse(text)
    edits = _Edits(text)
    edits.visit(tree)
    changes = sorted(edits.edits + _comment_edits(text, edits.starts))
    for before, after in itertools.pairwise(changes):
        if after[0] < before[1]:
            raise SyntaxError(f"overlapping rewrites at offset {after[0]}")
    out = text
    for start, end, new in reversed(changes):
        out = out[:start] + new + out[end:]
    return out


def _ruff_fix(text: str, target: str) -> str:
    """``text`` with its imports sorted and pruned and ``yield from`` where it
    applies (ruff's fixes, as if the text were ``target``)."""
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--fix-only", "--unsafe-fixes", "--quiet",
         "--exit-zero", "--select", "I,F401,UP028", "--stdin-filename", target, "-"],
        input=text, capture_output=True, text=True, cwd=ROOT, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ruff failed on {target}: {done.stderr.strip()}")
    return done.stdout


def generate(source: str, target: str) -> str:
    """The generated text of ``target``."""
    sync = unasync((ROOT / source).read_text())
    return _ruff_fix(_header(source) + sync, target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if a generated file is stale; write nothing"
    )
    args = parser.parse_args(argv)
    stale = 0
    for source, target in PAIRS.items():
        want = generate(source, target)
        path = ROOT / target
        have = path.read_text() if path.exists() else ""
        if want == have:
            continue
        if args.check:
            stale += 1
            print(f"{target} is stale: run python tools/async_to_sync.py", file=sys.stderr)
            diff = difflib.unified_diff(
                have.splitlines(keepends=True),
                want.splitlines(keepends=True),
                f"{target} (in the tree)",
                f"{target} (generated from {source})",
            )
            sys.stderr.writelines(list(diff)[:60])
        else:
            path.write_text(want)
            print(f"wrote {target} (from {source})")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
