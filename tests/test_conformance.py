"""LangGraph's checkpointer conformance suite, one pytest test per (saver, capability).

Both savers run every base and extended capability; a capability that is not
detected counts as a failure. Per-capability counts are printed (``pytest -s``)
and collected into ``.pytest_cache/conformance-summary.txt``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import (
    ALL_CAPABILITIES,
    BASE_CAPABILITIES,
    DetectedCapabilities,
)
from langgraph.checkpoint.conformance.report import ProgressCallbacks

from pgcheckpoint import AsyncPostgresSaver, PostgresSaver

SAVERS = ("AsyncPostgresSaver", "PostgresSaver")
CAPABILITIES = sorted(c.value for c in ALL_CAPABILITIES)
_SUMMARY: dict[str, dict[str, dict[str, Any]]] = {}


@pytest.fixture(scope="module", autouse=True)
def _conformance_summary(request: pytest.FixtureRequest) -> Iterator[None]:
    """Write and print the per-capability counts once the module has run."""
    yield
    if not _SUMMARY:
        return
    lines = ["conformance (langgraph-checkpoint-conformance):"]
    for saver_name, caps in sorted(_SUMMARY.items()):
        for cap, r in sorted(caps.items()):
            lines.append(
                f"  {saver_name:20s} {cap:16s} passed={r['tests_passed']:3d} "
                f"failed={r['tests_failed']:3d} skipped={r['tests_skipped']}"
            )
    text = "\n".join(lines)
    print("\n" + text)
    out = Path(str(request.config.rootpath)) / ".pytest_cache" / "conformance-summary.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n\n" + json.dumps(_SUMMARY, indent=1) + "\n")


def _factory(kind: str, url: str) -> Any:
    async def make() -> AsyncIterator[BaseCheckpointSaver[Any]]:
        if kind == "AsyncPostgresSaver":
            async with AsyncPostgresSaver.from_conn_string(url) as s:
                await s.setup()
                yield s
        else:
            # PostgresSaver's a* methods run the sync ones in worker threads.
            with PostgresSaver.from_conn_string(url) as s:
                s.setup()
                yield s

    return make


@pytest.mark.parametrize("capability", CAPABILITIES)
@pytest.mark.parametrize("kind", SAVERS)
async def test_conformance_capability(kind: str, capability: str, db_url: str) -> None:
    """Every test of the capability's conformance suite passes."""
    registered = checkpointer_test(name=f"{kind}:{capability}")(_factory(kind, db_url))
    failures: list[str] = []

    def on_result(cap: str, test: str, passed: bool, error: str | None) -> None:
        if not passed:
            failures.append(f"{test}: {error}")

    report = await validate(
        registered,
        capabilities={capability},
        progress=ProgressCallbacks(on_test_result=on_result),
    )
    result = report.results[capability]
    _SUMMARY.setdefault(kind, {})[capability] = {
        "detected": result.detected,
        "tests_passed": result.tests_passed,
        "tests_failed": result.tests_failed,
        "tests_skipped": result.tests_skipped,
    }
    print(
        f"\n{kind} {capability}: passed={result.tests_passed} failed={result.tests_failed} "
        f"skipped={result.tests_skipped}"
    )
    assert result.detected, f"{kind} does not implement {capability}"
    assert result.tests_failed == 0 and not failures, "\n".join(failures or result.failures)
    assert result.passed is True
    assert result.tests_passed > 0


@pytest.mark.parametrize("kind", SAVERS)
def test_every_capability_detected(kind: str) -> None:
    """Capability detection sees all base and extended methods overridden."""
    cls = AsyncPostgresSaver if kind == "AsyncPostgresSaver" else PostgresSaver
    # Detection only looks at the type; no connection is made.
    detected = DetectedCapabilities.from_instance(cls.__new__(cls))
    assert not detected.missing, sorted(c.value for c in detected.missing)
    assert detected.detected >= BASE_CAPABILITIES
