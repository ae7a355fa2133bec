"""Storage reports, VACUUM, and compressed rows living next to uncompressed ones."""

from __future__ import annotations

from typing import Any

import pytest
import zstandard

from pgcheckpoint import CompressionPolicy, InvalidInputError, PostgresSaver
from pgcheckpoint.maintenance import vacuum_statements
from test_retention import cfg, graph, ids, run, sql


def test_storage_report(db_url: str) -> None:
    with PostgresSaver.from_conn_string(db_url) as saver:
        run(saver, "small", 1)
        run(saver, "big", 4)
        report = saver.storage_report(top=1)
        names = {t.name for t in report.tables}
        assert {"threads", "checkpoints", "blobs", "chunks", "writes"} <= names
        for t in report.tables:
            assert t.total == t.heap + t.toast + t.indexes
        total = sql(db_url, "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                            "JOIN pg_namespace n ON n.oid = c.relnamespace "
                            "WHERE n.nspname = 'public' AND c.relkind = 'r'")[0][0]
        assert report.total_bytes == total
        assert report.thread_count == 2
        assert [t.thread_id for t in report.threads] == ["big"]
        assert report.threads[0].checkpoints == 16 and report.threads[0].bytes > 0
        assert saver.storage_report(top=0).threads == ()
        with pytest.raises(InvalidInputError, match="top"):
            saver.storage_report(top=-1)


def test_optimize_runs_outside_a_transaction(db_url: str) -> None:
    with PostgresSaver.from_conn_string(db_url, max_versions=1) as saver:
        run(saver, "t", 3)
        saver.cleanup_old_checkpoints()
        saver.optimize()
        saver.optimize(full=True)
        vacuumed = sql(db_url, "SELECT count(*) FROM pg_stat_user_tables "
                               "WHERE relname = 'checkpoints' AND last_analyze IS NOT NULL")
        assert vacuumed == [(1,)]
        with pytest.raises(InvalidInputError, match="full"):
            saver.optimize(full="yes")  # type: ignore[arg-type]
        assert len(graph(saver).get_state(cfg("t")).values["msgs"]) == 9


def test_vacuum_statements_quote_the_schema() -> None:
    stmts = vacuum_statements('we"ird', full=True)
    assert stmts[0] == 'VACUUM (FULL, ANALYZE) "we""ird"."threads"'


def _stored_types(url: str, skeletons: bool = True) -> set[str]:
    # Rows written before issue 16 compressed checkpoint skeletons from 128 bytes.
    query = "SELECT type FROM blobs UNION SELECT type FROM writes"
    if skeletons:
        query += " UNION SELECT type FROM checkpoints"
    return {r[0] for r in sql(url, query)}


def test_compressed_and_uncompressed_rows_mix(db_url: str) -> None:
    off = CompressionPolicy(enabled=False)
    with PostgresSaver.from_conn_string(db_url, compression=off) as saver:
        run(saver, "plain", 2)
        assert not any(t.endswith("+zstd") for t in _stored_types(db_url))
    with PostgresSaver.from_conn_string(db_url, compression=CompressionPolicy(threshold=64)) as s:
        run(s, "plain", 1)  # the same thread, now compressed
        run(s, "zipped", 2)
        assert any(t.endswith("+zstd") for t in _stored_types(db_url))
        zipped_state = graph(s).get_state(cfg("zipped")).values
        plain_history = [t.checkpoint["channel_values"] for t in s.list(cfg("plain"))]
    with PostgresSaver.from_conn_string(db_url, compression=off) as saver:
        assert graph(saver).get_state(cfg("zipped")).values == zipped_state
        assert [t.checkpoint["channel_values"] for t in saver.list(cfg("plain"))] == plain_history
        assert len(plain_history[0]["msgs"]) == 9 and len(ids(saver, "plain")) == 12


@pytest.mark.parametrize(
    ("policy", "compressed"),
    [
        (CompressionPolicy(threshold=10**9), False),
        (CompressionPolicy(threshold=16, level=1), True),
        (CompressionPolicy(threshold=16, level=19), True),
    ],
)
def test_threshold_and_level(db_url: str, policy: CompressionPolicy, compressed: bool) -> None:
    with PostgresSaver.from_conn_string(db_url, compression=policy) as saver:
        run(saver, "t", 1)
        types = _stored_types(db_url, skeletons=False)
        assert any(t.endswith("+zstd") for t in types) is compressed
        state: Any = graph(saver).get_state(cfg("t")).values
        assert state["msgs"][1] == "m" * 400


def test_checkpoints_stored_compressed_the_old_way_read_back(db_url: str) -> None:
    """Checkpoint skeletons are no longer compressed below the policy's threshold
    (issue 16); rows written the old way (``msgpack+zstd`` from 128 bytes) still read,
    through get_tuple and list, and the graph resumes from them."""
    with PostgresSaver.from_conn_string(db_url) as saver:
        run(saver, "old", 2)
        assert {r[0] for r in sql(db_url, "SELECT type FROM checkpoints")} == {"msgpack"}
        listed = [(t.checkpoint, t.metadata, t.pending_writes) for t in saver.list(cfg("old"))]
        head = saver.get_tuple(cfg("old"))
        assert head is not None
        squeeze = zstandard.ZstdCompressor(level=3, write_checksum=True)
        for thread, ns, cid, data in sql(
            db_url, "SELECT thread_id, checkpoint_ns, checkpoint_id, checkpoint FROM checkpoints"
        ):
            sql(
                db_url,
                "UPDATE checkpoints SET type = 'msgpack+zstd', checkpoint = %s "
                "WHERE thread_id = %s AND checkpoint_ns = %s AND checkpoint_id = %s",
                (squeeze.compress(bytes(data)), thread, ns, cid),
            )
        assert {r[0] for r in sql(db_url, "SELECT type FROM checkpoints")} == {"msgpack+zstd"}
        assert [
            (t.checkpoint, t.metadata, t.pending_writes) for t in saver.list(cfg("old"))
        ] == listed
        again = saver.get_tuple(cfg("old"))
        assert again is not None and again.checkpoint == head.checkpoint
        assert len(graph(saver).invoke({"msgs": ["more"]}, cfg("old"))["msgs"]) == 9
        assert {r[0] for r in sql(db_url, "SELECT type FROM checkpoints")} == {
            "msgpack", "msgpack+zstd"
        }
