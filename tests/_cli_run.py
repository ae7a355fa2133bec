"""What the CLI tests share besides the ``run_cli`` fixture (tests/cli/conftest.py): imported
by name from here, never from ``conftest``, which names a different module per directory."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

Run = Callable[..., subprocess.CompletedProcess[str]]


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    """The JSON a command printed on stdout."""
    return json.loads(done.stdout)
