"""Every command is documented: help with an example, and docs/cli.md generated and current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

from pgcheckpoint.cli import cli
from pgcheckpoint.cli.docs import reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def _commands(group: click.Group, prefix: str) -> list[tuple[str, click.Command]]:
    out = []
    ctx = click.Context(group, info_name=prefix)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        path = f"{prefix} {name}"
        out.append((path, command))
        if isinstance(command, click.Group):
            out.extend(_commands(command, path))
    return out


def test_every_command_has_help_with_an_example() -> None:
    for path, command in _commands(cli, "pgcheckpoint"):
        assert command.help and "Example:" in command.help, f"{path} has no example in its help"


def test_every_command_is_in_the_reference() -> None:
    text = DOC.read_text("utf-8")
    for path, command in _commands(cli, "pgcheckpoint"):
        if not command.hidden:
            assert f"## `{path}`" in text, f"{path} is missing from docs/cli.md"


def test_reference_is_current() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "pgcheckpoint.cli", "docs"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert printed == reference(cli)
    assert DOC.read_text("utf-8") == printed, (
        "docs/cli.md is stale: run `pgcheckpoint docs > docs/cli.md`"
    )
