"""Key rotation and encryption of existing rows, through the library and the CLI
(docs/encryption.md): while a graph keeps writing, afterwards readable with the
new key alone; no key material in any CLI output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from _helpers import cfg
from pgcheckpoint import IntegrityError, Keyring, PostgresSaver
from pgcheckpoint.rotation import key_status, reencrypt
from test_encryption import K1, K2, chat_graph, ring


def _fill(saver: PostgresSaver, threads: int, turns: int, prefix: str = "t") -> None:
    graph = chat_graph(saver)
    for t in range(threads):
        for i in range(turns):
            graph.invoke({"messages": [HumanMessage(f"q{i}")]},
                         {"configurable": {"thread_id": f"{prefix}{t}"}})


def _read_everything(saver: PostgresSaver) -> int:
    """Every checkpoint of every thread, fully decoded; their number."""
    n = 0
    for info in saver.list_threads(limit=1000):
        for tup in saver.list(cfg(info.thread_id)):
            assert tup.checkpoint["id"]
            n += 1
    return n


def _kids(status: dict[str, dict[str, int]]) -> set[str]:
    return {kid for per in status.values() for kid in per}


def test_rotation_while_a_graph_writes(db_url: str) -> None:
    with PostgresSaver.from_conn_string(db_url, encryption=ring("k1")) as old:
        old.setup()
        _fill(old, threads=6, turns=3)
    stop = threading.Event()
    written: list[int] = []
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            with PostgresSaver.from_conn_string(db_url, encryption=ring("k2", "k1")) as w:
                graph = chat_graph(w)
                n = 0
                while not stop.is_set():
                    # Writes to old threads (their rows move under the writer's key
                    # as it goes) and to a new one.
                    graph.invoke({"messages": [HumanMessage(f"live {n}")]},
                                 {"configurable": {"thread_id": f"t{n % 6}" if n % 2 else "live"}})
                    n += 1
                written.append(n)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        with PostgresSaver.from_conn_string(db_url, encryption=ring("k2", "k1")) as rot:
            report = reencrypt(rot, batch_size=7)
    finally:
        stop.set()
        thread.join(60)
    assert not errors, errors
    assert written and written[0] > 0
    assert report.total > 0
    with PostgresSaver.from_conn_string(db_url, encryption=ring("k2")) as new:
        status = key_status(new)
        assert _kids(status) == {"k2"}, status
        assert _read_everything(new) >= 6 * 3 * 2
        # list(filter=...) finds rows sealed by the rotation too.
        assert len(list(new.list(cfg("t0"), filter={"source": "loop"}))) >= 3
    with (
        PostgresSaver.from_conn_string(db_url, encryption=ring("k1")) as gone,
        pytest.raises(IntegrityError, match="'k2'"),
    ):
        gone.get_tuple(cfg("t0"))


def test_encrypt_an_existing_database_resumably(db_url: str, saver: PostgresSaver) -> None:
    _fill(saver, threads=3, turns=2)
    big = saver.put(cfg("big"), _big_checkpoint(), {"source": "input"}, {"doc": "1"})
    saver.put_writes(big, [("doc", "pending")], "task")
    with PostgresSaver.from_conn_string(db_url, encryption=ring("k1")) as enc:
        counted = reencrypt(enc, include_plaintext=True, dry_run=True)
        assert counted.total > 0 and "plaintext" in _kids(key_status(enc))
        # A rotation alone leaves rows in clear alone.
        assert reencrypt(enc).total == 0
        first = reencrypt(enc, include_plaintext=True, batch_size=3)
        assert first.total >= counted.total - 1  # the dry run counted the same rows
        assert _kids(key_status(enc)) == {"k1"}
        assert reencrypt(enc, include_plaintext=True).total == 0  # nothing left: resumable
        assert _read_everything(enc) >= 3 * 2 * 2
        got = enc.get_tuple(big)
        assert got is not None and got.checkpoint["channel_values"]["doc"].startswith("line 0")
        assert [w[2] for w in got.pending_writes or []] == ["pending"]


def _big_checkpoint() -> Any:
    from _helpers import make_checkpoint

    doc = "".join(f"line {i} of a long document\n" for i in range(2000))
    return make_checkpoint({"doc": doc}, {"doc": "1"})


# --- the CLI ------------------------------------------------------------------------


def _cli(
    db_url: str, *args: str, keys: str | None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": db_url, "COLUMNS": "200"}
    env.pop("PGCHECKPOINT_DSN", None)
    env.pop("PGCHECKPOINT_KEYS", None)
    if keys is not None:
        env["PGCHECKPOINT_KEYS"] = keys
    done = subprocess.run([sys.executable, "-m", "pgcheckpoint.cli", *args],
                          capture_output=True, text=True, env=env, timeout=120)
    if check and done.returncode:
        raise AssertionError(f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def test_cli_generate_status_rotate_encrypt_without_leaking_keys(
    db_url: str, saver: PostgresSaver
) -> None:
    _fill(saver, threads=2, turns=1)
    made = _cli(db_url, "keys", "generate", "--id", "new", keys=None).stdout.strip()
    kid, _, material = made.partition(":")
    assert kid == "new" and len(Keyring.parse(made).key_ids) == 1
    old = f"old:{Keyring.encode_key(K1)}"
    keys = f"{made},{old}"
    secrets = [material, Keyring.encode_key(K1), Keyring.encode_key(K2)]
    outputs: list[str] = []

    def run(*args: str, ring_text: str | None = keys, check: bool = True) -> Any:
        done = _cli(db_url, *args, keys=ring_text, check=check)
        outputs.append(done.stdout + done.stderr)
        return done

    # Encrypt under "old" first, then rotate to "new".
    run("encrypt", "--batch-size", "5", ring_text=old)
    status = json.loads(run("keys", "status", "--json", ring_text=old).stdout)
    assert status["primary"] == "old"
    assert {k for per in status["columns"].values() for k in per} == {"old"}
    dry = json.loads(run("keys", "rotate", "--dry-run", "--json").stdout)
    assert dry["dry_run"] and sum(dry["resealed"].values()) > 0
    done = json.loads(run("keys", "rotate", "--json").stdout)
    assert sum(done["resealed"].values()) == sum(dry["resealed"].values())
    run("keys", "rotate")  # human output, nothing left to do
    status = json.loads(run("keys", "status", "--json").stdout)
    assert {k for per in status["columns"].values() for k in per} == {"new"}
    run("threads", "list", ring_text=made)
    # Without the keys, or with a malformed variable: an error, never key material.
    bad = run("threads", "show", "t0", ring_text=None, check=False)
    assert bad.returncode != 0 and "'new'" in bad.stderr
    broken = f"new:{material[:-3]}!!!,{old}"
    failed = run("keys", "status", ring_text=broken, check=False)
    assert failed.returncode != 0 and "entry #1" in failed.stderr
    text = "\n".join(outputs)
    for secret in secrets:
        assert secret not in text
        assert secret[:-3] not in text
