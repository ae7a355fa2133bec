"""Bad input is refused with pgcheckpoint's own exception and a clear message, and the
database is left exactly as it was (every row of every table compared)."""

from __future__ import annotations

import socket
import uuid
from typing import Any

import pytest

from _helpers import Api, cfg, db_snapshot, make_checkpoint
from pgcheckpoint import InvalidInputError, PgCheckpointError, SerializationError

INJECTION = "a'); DROP TABLE checkpoints; --"


async def _seed(api: Api) -> str:
    """One thread with two checkpoints and some writes, so "unchanged" means something."""
    first = await api.put("seed", {"n": 1, "text": "x" * 2000}, metadata={"source": "input"})
    second = await api.put(
        "seed", {"n": 2}, parent=first["configurable"]["checkpoint_id"], metadata={"step": 1}
    )
    await api.call("put_writes", second, [("n", 3), ("log", "hello")], "task-1")
    return str(second["configurable"]["checkpoint_id"])


async def _refused(
    api: Api, exc: type[Exception], match: str, method: str, *args: Any, **kwargs: Any
) -> None:
    """``method`` raises ``exc`` (a PgCheckpointError) matching ``match``; the DB is unchanged."""
    before = db_snapshot(api.url)
    with pytest.raises(exc, match=match) as info:
        await api.call(method, *args, **kwargs)
    assert isinstance(info.value, PgCheckpointError)
    assert db_snapshot(api.url) == before


class Unpicklable:
    def __init__(self) -> None:
        self.callback = lambda: 1


async def test_config_without_thread_id(api: Api) -> None:
    await _seed(api)
    bad: Any = {"configurable": {"checkpoint_ns": ""}}
    msg = 'has no "thread_id"'
    await _refused(api, InvalidInputError, msg, "put", bad, make_checkpoint(), {}, {})
    await _refused(api, InvalidInputError, msg, "get_tuple", bad)
    await _refused(api, InvalidInputError, msg, "put_writes", bad, [("a", 1)], "t")
    await _refused(api, InvalidInputError, msg, "list", bad)


async def test_config_without_configurable(api: Api) -> None:
    await _seed(api)
    msg = 'config has no "configurable" dict'
    for bad in ({}, {"thread_id": "seed"}, {"configurable": "seed"}):
        await _refused(api, InvalidInputError, msg, "put", bad, make_checkpoint(), {}, {})
        await _refused(api, InvalidInputError, msg, "get_tuple", bad)
    await _refused(api, InvalidInputError, "config must be a dict", "get_tuple", None)


@pytest.mark.parametrize("value", [Unpicklable(), "socket"], ids=["lambda", "socket"])
async def test_non_serializable_value(api: Api, value: Any) -> None:
    cid = await _seed(api)
    if value == "socket":
        value = socket.socket()
    try:
        cp = make_checkpoint({"bad": value, "ok": [1, 2, 3]})
        await _refused(
            api, SerializationError, "cannot serialize channel 'bad'",
            "put", cfg("seed", "", cid), cp, {}, dict(cp["channel_versions"]),
        )
        await _refused(
            api, SerializationError, "cannot serialize write #1 to 'bad'",
            "put_writes", cfg("seed", "", cid), [("ok", 1), ("bad", value)], "task-2",
        )
    finally:
        if isinstance(value, socket.socket):
            value.close()


async def test_nul_bytes(api: Api) -> None:
    cid = await _seed(api)
    cp = make_checkpoint({"x": [1]})
    nv = dict(cp["channel_versions"])
    await _refused(api, InvalidInputError, "thread_id contains a NUL byte", "put",
                   cfg("a\x00b"), cp, {}, nv)
    await _refused(api, InvalidInputError, "checkpoint_ns contains a NUL byte", "put",
                   cfg("seed", "n\x00s"), cp, {}, nv)
    await _refused(api, InvalidInputError, r"metadata \.extra\.note contains a NUL byte", "put",
                   cfg("seed"), cp, {"extra": {"note": "a\x00b"}}, nv)
    await _refused(api, InvalidInputError, "metadata .* has a key with a NUL byte", "put",
                   cfg("seed"), cp, {"k\x00": 1}, nv)
    bad_channel = make_checkpoint({"ch\x00an": [1]})
    await _refused(api, InvalidInputError, "channel name contains a NUL byte", "put",
                   cfg("seed"), bad_channel, {}, dict(bad_channel["channel_versions"]))
    await _refused(api, InvalidInputError, "channel of write #0 contains a NUL byte",
                   "put_writes", cfg("seed", "", cid), [("c\x00", 1)], "task-3")
    await _refused(api, InvalidInputError, "thread_id contains a NUL byte", "get_tuple",
                   cfg("x\x00"))
    await _refused(api, InvalidInputError, "thread_id contains a NUL byte", "delete_thread",
                   "x\x00")
    # LangGraph's get_checkpoint_metadata strips NUL from top-level string values
    # for every saver (the official one too), so those are stored without it.
    saved = await api.put("nul", {"x": [1]}, metadata={"note": "a\x00b"})
    got = await api.call("get_tuple", saved)
    assert got is not None and got.metadata["note"] == "ab"


@pytest.mark.parametrize("thread", [5, uuid.UUID("12345678-1234-5678-1234-567812345678")],
                         ids=["int", "uuid"])
async def test_thread_id_int_and_uuid_round_trip(api: Api, thread: Any) -> None:
    saved = await api.put(thread, {"v": "value"})
    assert saved["configurable"]["thread_id"] == str(thread)
    for key in (thread, str(thread)):
        got = await api.call("get_tuple", cfg(key))
        assert got is not None, key
        assert got.checkpoint["channel_values"] == {"v": "value"}
        assert got.config["configurable"]["thread_id"] == str(thread)
        listed = await api.call("list", cfg(key))
        assert [t.checkpoint["id"] for t in listed] == [got.checkpoint["id"]]
    await api.call("delete_thread", thread)
    assert await api.call("get_tuple", cfg(str(thread))) is None


@pytest.mark.parametrize("bad", [True, 1.5, None, b"seed", object()])
async def test_bad_thread_id_types(api: Api, bad: Any) -> None:
    await _seed(api)
    msg = "thread_id must be a str, int or UUID" if bad is not None else 'no "thread_id"'
    await _refused(api, InvalidInputError, msg, "get_tuple", {"configurable": {"thread_id": bad}})


async def test_bad_prune_strategy(api: Api) -> None:
    await _seed(api)
    await _refused(api, InvalidInputError, "unknown prune strategy 'newest'", "prune",
                   ["seed"], strategy="newest")
    await _refused(api, InvalidInputError, "thread_ids must be a list of strings", "prune", "seed")


@pytest.mark.parametrize("limit", [-1, "3", True, 2.0])
async def test_bad_limit(api: Api, limit: Any) -> None:
    await _seed(api)
    await _refused(api, InvalidInputError, "limit must be a non-negative int or None", "list",
                   cfg("seed"), limit=limit)


@pytest.mark.parametrize(
    ("filt", "match"),
    [
        ({"source": object()}, "is a object, which is not JSON"),
        ({"step": float("nan")}, "is nan, which JSON cannot hold"),
        ({1: "x"}, "non-string key 1"),
        ({"when": {1, 2}}, "is a set, which is not JSON"),
    ],
)
async def test_filter_with_non_json_value(api: Api, filt: Any, match: str) -> None:
    await _seed(api)
    await _refused(api, InvalidInputError, match, "list", cfg("seed"), filter=filt)
    await _refused(api, InvalidInputError, match, "list", None, filter=filt)


async def test_bad_before(api: Api) -> None:
    await _seed(api)
    await _refused(api, InvalidInputError, 'before must be a config with a "checkpoint_id"',
                   "list", cfg("seed"), before=cfg("seed"))


async def test_copy_onto_existing_thread(api: Api) -> None:
    await _seed(api)
    await api.put("other", {"n": 9})
    await _refused(api, InvalidInputError, "target thread 'other' already has checkpoints",
                   "copy_thread", "seed", "other")
    await _refused(api, InvalidInputError, "cannot copy thread 'seed' onto itself",
                   "copy_thread", "seed", "seed")
    await _refused(api, InvalidInputError, "source thread 'missing' has no checkpoints",
                   "copy_thread", "missing", "new")


async def test_put_writes_without_checkpoint_id(api: Api) -> None:
    await _seed(api)
    await _refused(api, InvalidInputError, 'put_writes needs config\\["configurable"\\]',
                   "put_writes", cfg("seed"), [("a", 1)], "t")
    await _refused(api, InvalidInputError, "write #0 must be a \\(channel, value\\) pair",
                   "put_writes", cfg("seed", "", "x"), [("a", 1, 2)], "t")


async def test_bad_checkpoint_and_metadata(api: Api) -> None:
    await _seed(api)
    await _refused(api, InvalidInputError, 'checkpoint must be a dict with an "id"', "put",
                   cfg("seed"), {"v": 1}, {}, {})
    await _refused(api, InvalidInputError, "metadata must be a dict", "put",
                   cfg("seed"), make_checkpoint(), ["m"], {})
    await _refused(api, InvalidInputError, "new_versions must be a dict", "put",
                   cfg("seed"), make_checkpoint(), {}, None)


async def test_sql_injection_is_stored_literally(api: Api) -> None:
    """Injection attempts in ids, namespaces, metadata and filter keys are plain data."""
    saved = await api.put(INJECTION, {"v": [INJECTION]}, ns=INJECTION,
                          metadata={INJECTION: INJECTION, "source": "input"})
    await api.call("put_writes", saved, [(INJECTION, INJECTION)], INJECTION, INJECTION)
    got = await api.call("get_tuple", cfg(INJECTION, INJECTION))
    assert got is not None
    assert got.config["configurable"]["thread_id"] == INJECTION
    assert got.config["configurable"]["checkpoint_ns"] == INJECTION
    assert got.checkpoint["channel_values"] == {"v": [INJECTION]}
    assert got.metadata[INJECTION] == INJECTION
    assert got.pending_writes == [(INJECTION, INJECTION, INJECTION)]
    for filt in ({INJECTION: INJECTION}, {"x' OR '1'='1": 1}, {"source": "input' OR 1=1 --"}):
        found = await api.call("list", None, filter=filt)
        assert len(found) == (1 if INJECTION in filt else 0), filt
    assert await api.call("get_tuple", cfg("x' OR '1'='1")) is None
    counts = db_snapshot(api.url)
    assert len(counts["checkpoints"]) == 1 and len(counts["writes"]) == 1
    await api.call("delete_thread", INJECTION)
    assert db_snapshot(api.url)["checkpoints"] == []


def test_unknown_saver_option_is_refused(db_url: str) -> None:
    """A misspelt keyword is named, not silently ignored."""
    import psycopg

    from pgcheckpoint import ConfigurationError, PostgresSaver

    pattern = r"unknown saver option\(s\): max_version\b"
    with (
        psycopg.connect(db_url, autocommit=True) as conn,
        pytest.raises(ConfigurationError, match=pattern),
    ):
        PostgresSaver(conn, max_version=3)  # type: ignore[call-arg]
