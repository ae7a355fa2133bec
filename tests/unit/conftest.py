"""Tests of the pure layer (plans, retry decisions, validation): no server, no database.

Every test collected below this folder is marked ``unit`` (``pytest -m unit``
runs only these), and one that asks for a fixture that reaches PostgreSQL is
refused at collection: these tests must pass on a machine with no PostgreSQL
at all. Plans are driven with canned rows by ``tests/_plan_driver.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent
# The fixtures of tests/conftest.py that start or reach a server.
SERVER_FIXTURES = frozenset(
    {
        "pg_server_url", "databases", "template_db", "db_url", "empty_db_url",
        "make_db_url", "saver", "asaver", "either_saver", "api", "server",
    }
)  # fmt: skip


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE not in item.path.parents:
            continue
        wanted = SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if wanted:
            raise pytest.UsageError(
                f"{item.nodeid} is a unit test (tests/unit) but uses {sorted(wanted)}, "
                "which need PostgreSQL; move it out of tests/unit"
            )
        item.add_marker(pytest.mark.unit)
