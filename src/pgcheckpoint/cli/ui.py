"""``ui``: serve the web inspector (pgcheckpoint.inspector) with uvicorn."""

from __future__ import annotations

from typing import Any

import click

from ._app import connection_options, handle_errors, open_saver


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    import ipaddress  # here, not at import: `pgcheckpoint --help` stays fast

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def inspector_url(host: str, port: int, token: str | None) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    if shown in ("0.0.0.0", "[::]"):
        shown = "127.0.0.1"  # the address that works from this machine
    from urllib.parse import quote

    url = f"http://{shown}:{port}/"
    return url + (f"?token={quote(token)}" if token else "")


@click.command()
@connection_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--allow-writes",
    is_flag=True,
    help="Enable the actions: fork/roll back, pin, retention, delete, export.",
)
@click.option(
    "--require-token",
    is_flag=True,
    help="Require the printed token on 127.0.0.1 too (a machine shared with other users).",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the URL in a browser.")
@handle_errors
def ui(
    dsn: str | None,
    schema: str,
    host: str,
    port: int,
    allow_writes: bool,
    require_token: bool,
    open_browser: bool,
) -> None:
    """Serve a local web inspector: threads, timelines, state, diffs (needs pgcheckpoint[ui]).

    It listens on 127.0.0.1 by default. On any other address it requires a
    token, printed in the URL. Read-only unless --allow-writes is given.

    \b
    Example:
        pip install 'pgcheckpoint[ui]'
        pgcheckpoint ui --dsn postgresql://localhost/app --open
    """
    try:
        import uvicorn

        from ..inspector import create_app
        from ..inspector.app import LOOPBACK_HOSTS
    except ImportError as exc:
        raise click.ClickException(
            f"the inspector needs the 'ui' extra ({exc.name} is missing): "
            "pip install 'pgcheckpoint[ui]'"
        ) from exc
    local = is_loopback(host)
    import secrets
    import webbrowser

    token = secrets.token_urlsafe(24) if require_token or not local else None
    with open_saver(dsn, schema) as saver:
        app: Any = create_app(
            saver,
            allow_writes=allow_writes,
            token=token,
            allowed_hosts=LOOPBACK_HOSTS if local else None,
        )
        url = inspector_url(host, port, token)
        mode = "writes allowed" if allow_writes else "read-only"
        click.echo(f"pgcheckpoint inspector ({mode}) on {url}", err=False)
        click.echo("press Ctrl+C to stop", err=True)
        if open_browser:
            webbrowser.open(url)
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def register(group: click.Group) -> None:
    group.add_command(ui)
