"""The sync code generated from the async source: fresh, faithful, complete.

``tools/async_to_sync.py`` writes ``saver.py`` and ``_runner.py`` from
``aio.py`` and ``_runner_async.py`` (docs/architecture.md). These tests check
the rewrite itself on small inputs, that the generated files in the tree are
what the tool writes today, and that the two savers offer the same API.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import warnings
from pathlib import Path
from types import ModuleType

import psycopg
import pytest

from pgcheckpoint import AsyncPostgresSaver, PostgresSaver
from pgcheckpoint.errors import ConfigurationError

ROOT = Path(__file__).resolve().parent.parent


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("async_to_sync", ROOT / "tools/async_to_sync.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["async_to_sync"] = module
    spec.loader.exec_module(module)
    return module


def test_rewrite_drops_async_and_renames_by_the_map() -> None:
    source = '''
from contextlib import asynccontextmanager
from collections.abc import AsyncIterator, Iterator

class AsyncPostgresSaver:
    """See :meth:`aget_tuple`; auto_sweeper keeps its name."""

    async def aget_tuple(self, x: int) -> int:  # calls AsyncRunner
        async with self.lock:
            await asleep(0)
        async for row in self.rows():
            pass
        return await self.runner.run(f"{x} aput")

    @asynccontextmanager
    async def auto_sweeper(self) -> AsyncIterator[None]:
        yield
'''
    out = _tool().unasync(source)
    assert "async" not in out.replace("auto_sweeper", "")
    assert "await" not in out
    assert "from collections.abc import Iterator\n" in out  # the duplicate dropped
    assert "class PostgresSaver:" in out
    assert "def get_tuple(self, x: int) -> int:  # calls SyncRunner" in out
    assert "See :meth:`get_tuple`; auto_sweeper keeps its name." in out
    assert "with self.lock:\n            sleep(0)" in out
    assert "for row in self.rows():" in out
    assert 'return self.runner.run(f"{x} put")' in out
    assert "@contextmanager\n    def auto_sweeper(self) -> Iterator[None]:" in out


def test_rewrite_refuses_what_it_cannot_rewrite_faithfully() -> None:
    with pytest.raises(SyntaxError, match="await"):
        _tool().unasync("async def f(x):\n    return await (x)\n")


def test_generated_files_are_fresh() -> None:
    # What scripts/test.sh runs as its own stage; here too, so a plain pytest
    # run also fails on a stale file.
    tool = _tool()
    for source, target in tool.PAIRS.items():
        assert (ROOT / target).read_text() == tool.generate(source, target), (
            f"{target} is stale: run python tools/async_to_sync.py"
        )


def _public(cls: type) -> dict[str, object]:
    return {name: getattr(cls, name) for name in dir(cls) if not name.startswith("_")}


def test_every_coroutine_has_its_sync_twin_with_the_same_signature() -> None:
    async_api = _public(AsyncPostgresSaver)
    sync_api = _public(PostgresSaver)
    checked = 0
    for name, member in async_api.items():
        if not (inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member)):
            continue
        twin = name[1:] if name.startswith("a") and name[1:] in sync_api else name
        assert twin in sync_api, f"AsyncPostgresSaver.{name} has no sync twin"
        sync = sync_api[twin]
        assert not inspect.iscoroutinefunction(sync), f"PostgresSaver.{twin} is a coroutine"
        a_params = list(inspect.signature(member).parameters.values())  # type: ignore[arg-type]
        s_params = list(inspect.signature(sync).parameters.values())  # type: ignore[arg-type]
        assert [(p.name, p.kind, p.default) for p in a_params] == [
            (p.name, p.kind, p.default) for p in s_params
        ], name
        assert inspect.getdoc(member) and inspect.getdoc(sync), f"{name}/{twin} lacks a docstring"
        checked += 1
    assert checked >= 35  # the contract, threads, retention, health, batch, schema


def test_every_public_method_has_a_docstring_on_both_savers() -> None:
    for cls in (PostgresSaver, AsyncPostgresSaver):
        for name, member in _public(cls).items():
            if callable(member) and name in vars(cls):
                assert inspect.getdoc(member), f"{cls.__name__}.{name} has no docstring"


def test_prepared_statements_is_a_deprecated_alias(db_url: str) -> None:
    with psycopg.Connection.connect(db_url, autocommit=True) as conn:
        with pytest.warns(DeprecationWarning, match="transaction_pooler=True"):
            saver = PostgresSaver(conn, prepared_statements=False)
        assert saver.transaction_pooler is True
        assert saver.runner.transaction_pooler is True
        with pytest.warns(DeprecationWarning, match="transaction_pooler=False"):
            saver = PostgresSaver(conn, prepared_statements=True)
        assert saver.runner.transaction_pooler is False
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert PostgresSaver(conn, transaction_pooler=True).runner.transaction_pooler
        with pytest.warns(DeprecationWarning), pytest.raises(ConfigurationError, match="disagree"):
            PostgresSaver(conn, prepared_statements=True, transaction_pooler=True)
