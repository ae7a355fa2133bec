"""``from_conn_string``: the official ``pipeline`` keyword, and typed options (a typo
fails mypy and raises ``ConfigurationError`` at run time)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint

from pgcheckpoint import AsyncPostgresSaver, ConfigurationError, PostgresSaver

CONFIG: Any = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}


def test_pipeline_keyword_is_accepted(db_url: str) -> None:
    with PostgresSaver.from_conn_string(db_url, pipeline=True) as saver:
        saved = saver.put(CONFIG, empty_checkpoint(), {"source": "input", "step": -1}, {})
        assert saver.get_tuple(saved) is not None


async def test_async_pipeline_keyword_is_accepted(db_url: str) -> None:
    async with AsyncPostgresSaver.from_conn_string(db_url, pipeline=True) as saver:
        saved = await saver.aput(CONFIG, empty_checkpoint(), {"source": "input", "step": -1}, {})
        assert await saver.aget_tuple(saved) is not None


def test_a_misspelt_option_is_a_configuration_error(db_url: str) -> None:
    with (
        pytest.raises(ConfigurationError, match=r"unknown saver option.*shcema"),
        PostgresSaver.from_conn_string(db_url, shcema="x") as _,  # type: ignore[call-arg]
    ):
        pass


@pytest.mark.slow
def test_a_misspelt_option_fails_mypy(tmp_path: Path) -> None:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(
        textwrap.dedent(
            """
            from pgcheckpoint import AsyncPostgresSaver, PostgresSaver

            def use(url: str) -> None:
                with PostgresSaver.from_conn_string(url, pipeline=True, schema="a") as s:
                    s.setup()
                with PostgresSaver.from_conn_string(url, shcema="a") as s:
                    s.setup()

            async def ause(url: str) -> None:
                async with AsyncPostgresSaver.from_conn_string(url, prepared_statement=False) as s:
                    await s.setup()
            """
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
         "--follow-imports=silent", str(snippet)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 2, done.stdout
    assert '"shcema"' in errors[0] and '"prepared_statement"' in errors[1]
