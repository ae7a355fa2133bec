"""Every import and export function has its async twin, with the same parameters."""

from __future__ import annotations

import inspect

import pytest

from pgcheckpoint import importers, transfer

PAIRS = [
    (module, name)
    for module in (importers, transfer)
    for name in module.__all__
    if inspect.isfunction(getattr(module, name)) and not name.startswith("a")
]


def test_the_twins_are_listed() -> None:
    names = {name for _, name in PAIRS}
    assert {"import_sqlite", "import_official", "import_saver", "run_import"} <= names
    assert {"export_ndjson", "export_file", "import_ndjson"} <= names


@pytest.mark.parametrize(("module", "name"), PAIRS, ids=[n for _, n in PAIRS])
def test_each_sync_function_has_an_async_twin(module: object, name: str) -> None:
    sync, twin = getattr(module, name), getattr(module, "a" + name, None)
    assert twin is not None and f"a{name}" in module.__all__  # type: ignore[attr-defined]
    assert inspect.iscoroutinefunction(twin) and not inspect.iscoroutinefunction(sync)
    params = list(inspect.signature(sync).parameters.values())
    twin_params = list(inspect.signature(twin).parameters.values())
    assert [(p.name, p.kind) for p in params] == [(p.name, p.kind) for p in twin_params]
    assert params[0].name == "saver" and params[0].annotation == "PostgresSaver"
    assert twin_params[0].annotation == "AsyncPostgresSaver"
    assert [p.annotation for p in params[1:]] == [p.annotation for p in twin_params[1:]]
    assert twin.__doc__ and sync.__doc__
