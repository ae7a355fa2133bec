"""``pgcheckpoint ui`` as a user runs it: a subprocess that prints its URL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from _live import free_port

from pgcheckpoint.cli.ui import inspector_url, is_loopback


@contextmanager
def _serve(db_url: str, *args: str) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db_url}
    env.pop("PGCHECKPOINT_DSN", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgcheckpoint.cli", "ui", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "pgcheckpoint inspector" in line, proc.stderr.read() if proc.stderr else line
        url = line.rsplit(" on ", 1)[1].strip()
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url.split("?")[0], timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        yield url, port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_ui_prints_its_url_and_serves_read_only(db_url: str) -> None:
    with _serve(db_url) as (url, port):
        assert url == f"http://127.0.0.1:{port}/"
        page = httpx.get(url)
        assert page.status_code == 200 and "read-only" in page.text
        assert httpx.post(url + "action/delete", data={"thread_id": "x"}).status_code == 403
        # a page reached through another Host name (DNS rebinding) is refused
        assert httpx.get(url, headers={"host": "attacker.example"}).status_code == 400


def test_ui_with_a_token_requires_the_printed_token(db_url: str) -> None:
    # Beyond loopback the token is always on; --require-token turns it on for
    # 127.0.0.1 too, which lets this test keep its server off the network.
    with _serve(db_url, "--require-token", "--allow-writes") as (url, _port):
        assert "?token=" in url
        bare = url.split("?")[0]
        assert httpx.get(bare).status_code == 401
        assert httpx.get(bare + "?token=wrong").status_code == 401
        with httpx.Client() as client:
            first = client.get(url)
            assert first.status_code == 200 and "writes allowed" in first.text
            assert client.get(bare + "thread?thread_id=none").status_code == 404  # cookie kept


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("0.0.0.0", False),
        ("192.168.1.4", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, local: bool) -> None:
    assert is_loopback(host) is local


def test_inspector_url_quotes_the_token() -> None:
    assert inspector_url("::1", 8765, None) == "http://[::1]:8765/"
    assert inspector_url("0.0.0.0", 80, "a+b") == "http://127.0.0.1:80/?token=a%2Bb"
