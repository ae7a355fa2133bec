"""The inspector's ASGI app: routes, the guard in front of them, and the actions.

:func:`create_app` takes a saver and returns a Starlette app; ``pgcheckpoint ui``
serves it with uvicorn, and a team can mount it in its own service behind its
own authentication (``Mount("/checkpoints", app=create_app(saver))``). The app
reads and writes only through the saver's public API, with the serde the saver
was given: a saver that decrypts (a keyring) shows decrypted state, one that
cannot shows what its serde returns.

Safety, in order of the request's path:

* **Host check** (``allowed_hosts``): ``pgcheckpoint ui`` on a loopback address
  accepts only ``127.0.0.1``/``localhost``/``[::1]`` as Host, so a web page
  cannot reach the app through DNS rebinding.
* **Token** (``token``): required for every request when set (``pgcheckpoint ui``
  sets one whenever it listens beyond loopback). Given once as ``?token=`` (the
  printed URL), then kept in an HttpOnly, SameSite=Strict cookie.
* **Writes**: only with ``allow_writes=True``; otherwise every POST is 403. Each
  action is a POST carrying the app's CSRF token (a random value only the app's
  own pages contain) and asks for confirmation on a page of its own first.
* **Output**: every template is autoescaped; a Content-Security-Policy allows
  only the app's own script and style (no inline script could run even if
  something slipped through), and frames are refused (no clickjacking).
"""

from __future__ import annotations

import datetime as dt
import hmac
import io
import secrets
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ..errors import InvalidInputError, PgCheckpointError
from ..retention import RetentionPolicy
from ..saver import PostgresSaver
from ..transfer import export_ndjson
from . import _pages, _views

__all__ = ["LOOPBACK_HOSTS", "create_app"]

TOKEN_COOKIE = "pgcheckpoint_token"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")
MAX_PAGE = 200

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class _Guard(BaseHTTPMiddleware):
    """Host check, token, and the security headers of every response."""

    def __init__(self, app: Any, *, token: str | None, hosts: Sequence[str] | None) -> None:
        super().__init__(app)
        self.token = token
        self.hosts = None if hosts is None else {h.lower() for h in hosts}

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await self._check(request, call_next)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    async def _check(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if self.hosts is not None:
            host = request.headers.get("host", "").lower()
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name not in self.hosts:
                return PlainTextResponse("unknown Host header", status_code=400)
        if self.token is None:
            return await call_next(request)
        given = request.query_params.get("token")
        if given is not None and hmac.compare_digest(given.encode(), self.token.encode()):
            response = await call_next(request)
            response.set_cookie(
                TOKEN_COOKIE,
                self.token,
                httponly=True,
                samesite="strict",
                path=request.scope.get("root_path") or "/",
            )
            return response
        kept = request.cookies.get(TOKEN_COOKIE, "")
        if kept and hmac.compare_digest(kept.encode(), self.token.encode()):
            return await call_next(request)
        return PlainTextResponse(
            "this inspector needs its token: open the URL that `pgcheckpoint ui` printed",
            status_code=401,
        )


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pgcheckpoint.inspector", "templates"),
        autoescape=True,  # every template, whatever its name: all DB text is escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["bytes"] = _views.human_bytes
    env.filters["when"] = _views.when
    return env


def _int(value: str | None, default: int, what: str, *, lo: int = 1, hi: int = MAX_PAGE) -> int:
    if value is None or value == "":
        return default
    try:
        n = int(value)
    except ValueError:
        raise InvalidInputError(f"{what} must be an integer, got {value!r}") from None
    if not lo <= n <= hi:
        raise InvalidInputError(f"{what} must be between {lo} and {hi}, got {n}")
    return n


def _required(params: Any, name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or value == "":
        raise InvalidInputError(f"{name} is required")
    return value


def create_app(
    saver: PostgresSaver,
    *,
    allow_writes: bool = False,
    token: str | None = None,
    allowed_hosts: Sequence[str] | None = None,
) -> Starlette:
    """The inspector as an ASGI app over ``saver`` (a sync :class:`PostgresSaver`;
    its calls run in Starlette's worker threads).

    Args:
        allow_writes: enable the actions (roll back, pin, retention, delete,
            export); without it every POST is refused with 403.
        token: when set, every request must carry it (``?token=`` once, then a
            cookie). Leave None when the app is mounted behind your own auth.
        allowed_hosts: Host header names accepted (None: any).

    Example::

        from starlette.routing import Mount
        app.routes.append(Mount("/inspector", app=create_app(saver)))
    """
    if not isinstance(saver, PostgresSaver):
        raise InvalidInputError(
            f"create_app needs a pgcheckpoint.PostgresSaver, got {type(saver).__name__}"
        )
    csrf = secrets.token_urlsafe(32)
    templates = Jinja2Templates(env=_environment())

    def render(request: Request, name: str, status: int = 200, **context: Any) -> Response:
        def url(route: str, **params: Any) -> str:
            base = str(request.url_for(route))
            query = {k: v for k, v in params.items() if v is not None}
            return base + ("?" + urlencode(query) if query else "")

        context.update(url=url, csrf=csrf, allow_writes=allow_writes)
        return templates.TemplateResponse(request, name, context, status_code=status)

    async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await run_in_threadpool(fn, *args, **kwargs)

    def page(
        handler: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def wrapped(request: Request) -> Response:
            try:
                return await handler(request)
            except _pages.NotFound as exc:
                return render(request, "error.html", 404, title="Not found", message=str(exc))
            except PgCheckpointError as exc:
                return render(
                    request, "error.html", 400, title=type(exc).__name__, message=str(exc)
                )

        return wrapped

    @page
    async def threads(request: Request) -> Response:
        q = request.query_params
        after = None
        if q.get("after_at"):
            try:
                moment = dt.datetime.fromisoformat(q["after_at"])
            except ValueError:
                raise InvalidInputError(f"after_at is not a timestamp: {q['after_at']!r}") from None
            after = (moment, _required(q, "after_id"))
        data = await call(
            _pages.threads_page,
            saver,
            prefix=q.get("prefix") or None,
            meta=q.get("meta") or None,
            after=after,
            limit=_int(q.get("limit"), 50, "limit"),
        )
        return render(request, "threads.html", **data)

    async def thread_view(
        request: Request, fn: Callable[..., dict[str, Any]], template: str, *rest: Any
    ) -> Response:
        """A page about one thread: ``fn(saver, thread_id, ns, *rest)`` rendered."""
        q = request.query_params
        data = await call(fn, saver, _required(q, "thread_id"), q.get("ns", ""), *rest)
        return render(request, template, **data)

    @page
    async def thread(request: Request) -> Response:
        q = request.query_params
        limit = _int(q.get("limit"), _pages.TIMELINE_PAGE, "limit")
        before = q.get("before") or None
        return await thread_view(request, _pages.thread_page, "thread.html", before, limit)

    @page
    async def checkpoint(request: Request) -> Response:
        checkpoint_id = _required(request.query_params, "checkpoint_id")
        return await thread_view(request, _pages.checkpoint_page, "checkpoint.html", checkpoint_id)

    @page
    async def diff(request: Request) -> Response:
        q = request.query_params
        checkpoint_id, against = _required(q, "checkpoint_id"), q.get("against") or None
        return await thread_view(request, _pages.diff_page, "diff.html", checkpoint_id, against)

    async def head(request: Request) -> Response:
        q = request.query_params
        try:
            data = await call(_pages.head, saver, _required(q, "thread_id"), q.get("ns", ""))
        except PgCheckpointError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(data)

    # --- actions -------------------------------------------------------------------

    def _describe(action: str, form: dict[str, str]) -> str:
        tid = form.get("thread_id", "")
        if action == "rollback":
            return (
                f"Make checkpoint {form.get('checkpoint_id')} of thread {tid!r} the head again "
                "(a new checkpoint copying its state; history is kept)."
            )
        if action == "pin":
            return f"{'Pin' if form.get('pinned') == '1' else 'Unpin'} thread {tid!r}."
        if action == "retention":
            if form.get("clear"):
                return f"Clear thread {tid!r}'s own retention (back to the saver's policy)."
            return f"Set thread {tid!r}'s retention policy."
        if action == "delete":
            return f"Delete thread {tid!r} and every checkpoint, write and value it holds."
        return f"Export thread {tid!r} as NDJSON."

    def _retention(form: dict[str, str]) -> RetentionPolicy | None:
        if form.get("clear"):
            return None
        keep = form.get("keep_last", "").strip()
        return RetentionPolicy(
            keep_last=_int(keep, 0, "keep_last", hi=10**9) if keep else None,
            max_age=_views.parse_duration(form.get("max_age"), "max_age"),
            thread_ttl=_views.parse_duration(form.get("thread_ttl"), "thread_ttl"),
            keep_interrupted=form.get("keep_interrupted") == "1",
        )

    def _do(action: str, form: dict[str, str]) -> Any:
        tid = _required(form, "thread_id")
        if action == "rollback":
            return saver.rollback(
                tid, _required(form, "checkpoint_id"), checkpoint_ns=form.get("ns", "")
            )
        if action == "pin":
            (saver.pin_thread if form.get("pinned") == "1" else saver.unpin_thread)(tid)
        elif action == "retention":
            saver.set_thread_retention(tid, _retention(form))
        elif action == "delete":
            saver.delete_thread(tid)
        elif action == "export":
            out = io.StringIO()
            export_ndjson(saver, out, thread_ids=[tid])
            return out.getvalue()
        return None

    async def action(request: Request) -> Response:
        name = request.path_params["name"]
        if not allow_writes:
            return render(
                request,
                "error.html",
                403,
                title="Read-only",
                message="This inspector is read-only; start it with --allow-writes to act.",
            )
        if name not in ("rollback", "pin", "retention", "delete", "export"):
            return render(request, "error.html", 404, title="Not found", message=name)
        raw = await request.form()
        form = {k: v for k, v in raw.items() if isinstance(v, str)}
        if not hmac.compare_digest(form.get("csrf", "").encode(), csrf.encode()):
            return render(
                request,
                "error.html",
                403,
                title="Refused",
                message="Missing or wrong CSRF token: reload the page and try again.",
            )
        try:
            _required(form, "thread_id")
            if name == "rollback":
                _required(form, "checkpoint_id")
            if name == "retention":
                _retention(form)  # bad input is refused before the confirmation
            if form.get("confirmed") != "yes":
                fields = {k: v for k, v in form.items() if k not in ("csrf", "confirmed")}
                return render(
                    request,
                    "confirm.html",
                    action=name,
                    fields=fields,
                    description=_describe(name, form),
                )
            result = await call(_do, name, form)
        except PgCheckpointError as exc:
            return render(request, "error.html", 400, title=type(exc).__name__, message=str(exc))
        tid = form["thread_id"]
        if name == "export":
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in tid)[:80]
            return Response(
                result,
                media_type="application/x-ndjson",
                headers={
                    "Content-Disposition": f'attachment; filename="{safe or "thread"}.ndjson"'
                },
            )
        if name == "delete":
            return RedirectResponse(str(request.url_for("threads")), status_code=303)
        target = (
            str(request.url_for("thread"))
            + "?"
            + urlencode({"thread_id": tid, "ns": form.get("ns", "")})
        )
        return RedirectResponse(target, status_code=303)

    static = resources.files("pgcheckpoint.inspector").joinpath("static")
    routes = [
        Route("/", threads, name="threads"),
        Route("/thread", thread, name="thread"),
        Route("/checkpoint", checkpoint, name="checkpoint"),
        Route("/diff", diff, name="diff"),
        Route("/api/head", head, name="head"),
        Route("/action/{name}", action, methods=["POST"], name="action"),
        Mount("/static", app=StaticFiles(directory=str(static)), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(_Guard, token=token, hosts=allowed_hosts)],
    )
    app.state.saver = saver
    app.state.allow_writes = allow_writes
    return app
