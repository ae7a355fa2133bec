"""The ``pgcheckpoint`` command line: a thin skin over the library.

Commands live in one module per group; each module has ``register(group)``
that adds its commands to the root group. To add a command group (``cleanup``,
``stats``, ``health``...), write ``cli/<name>.py`` with a ``register`` function
and add ``"<name>"`` to :data:`COMMAND_MODULES`; then regenerate the reference
with ``pgcheckpoint docs > docs/cli.md`` (a test checks it is current and that
every command's help has an example).
"""

from __future__ import annotations

import importlib
import logging

import click

from ._app import cli

__all__ = ["COMMAND_MODULES", "cli", "main"]

# Registration order is irrelevant: click lists commands alphabetically.
COMMAND_MODULES: tuple[str, ...] = (
    "schema", "threads", "changes", "transfer", "docs", "retention", "ui", "health", "roles",
    "keys",
)

for _name in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}").register(cli)


def main() -> None:
    """Entry point of the ``pgcheckpoint`` script."""
    # psycopg_pool logs every failed connection attempt; a command's own error
    # already says, once, why it could not connect.
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    cli(prog_name="pgcheckpoint", auto_envvar_prefix="PGCHECKPOINT")


def root() -> click.Group:
    """The root group with every registered command (for tests and docs)."""
    return cli
