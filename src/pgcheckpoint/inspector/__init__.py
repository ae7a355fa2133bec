"""``pgcheckpoint ui``: a local web inspector for threads, checkpoints, state and diffs.

Install with ``pip install 'pgcheckpoint[ui]'``. :func:`create_app` returns the
ASGI app for a saver, to serve with any ASGI server or mount in your own
service; ``pgcheckpoint ui`` serves it with uvicorn (docs/inspector.md).
"""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
