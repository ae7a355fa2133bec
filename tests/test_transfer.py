"""NDJSON export/import: a file that proves itself, imports that never replace a row,
values moved byte for byte (real PostgreSQL, real graphs)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from graph_fixtures import TICKET_ALLOW, populate, populate_tickets, resume, same_threads
from pgcheckpoint import BlockedTypeError, ImportConflictError, PostgresSaver, TransferError
from pgcheckpoint.transfer import export_file, export_ndjson, import_ndjson

TABLES = ("threads", "checkpoints", "blobs", "chunks", "writes")


def snapshot(url: str) -> dict[str, str]:
    """A digest of every row of every table: equal snapshots mean an unchanged database."""
    out = {}
    with psycopg.connect(url) as conn:
        for table in TABLES:
            row = conn.execute(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                f"FROM public.{table} t"
            ).fetchone()
            out[table] = f"{row[0]}:{row[1]}" if row else ""
    return out


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def with_trailer(lines: list[str]) -> list[str]:
    """``lines`` (header and data lines) with a trailer recomputed over them, as a forger
    who knows the format would write it."""
    counts: dict[str, dict[str, int]] = {}
    keys = {"checkpoint": "checkpoints", "value": "values", "write": "writes"}
    for line in lines[1:]:
        d = json.loads(line)
        if d["kind"] in keys:
            c = counts.setdefault(d["thread_id"], {"checkpoints": 0, "values": 0, "writes": 0})
            c[keys[d["kind"]]] += 1
    digest = hashlib.sha256("".join(lines).encode()).hexdigest()
    trailer = {"kind": "trailer", "threads": counts, "lines": len(lines), "sha256": digest}
    return [*lines, json.dumps(trailer) + "\n"]


@pytest.fixture
def exported(saver: PostgresSaver, tmp_path: Path) -> tuple[Path, list[str], int]:
    ids = populate(saver, 3)
    out = tmp_path / "all.ndjson"
    report = export_file(saver, out)
    return out, ids, report.checkpoints


def test_round_trip_is_lossless_and_a_rerun_reports_skipped(
    saver: PostgresSaver, make_db_url: Any, exported: tuple[Path, list[str], int]
) -> None:
    out, ids, checkpoints = exported
    lines = [json.loads(x) for x in lines_of(out)]
    assert lines[0]["format"] == "pgcheckpoint.ndjson" and lines[0]["version"] == 2
    assert lines[-1]["kind"] == "trailer" and set(lines[-1]["threads"]) == set(ids)
    assert sum(1 for d in lines if d.get("kind") == "checkpoint") == checkpoints
    with PostgresSaver.from_conn_string(make_db_url(True)) as target:
        first = import_ndjson(target, out)
        assert (first.threads, first.skipped, first.checkpoints) == (3, 0, checkpoints)
        assert first.verified is True and first.skipped_checkpoints == 0
        again = import_ndjson(target, out)
        assert (again.threads, again.skipped, again.checkpoints, again.writes) == (3, 3, 0, 0)
        assert again.skipped_checkpoints == checkpoints and again.skipped_writes == first.writes
        same_threads(saver, target, ids)
        state = resume(target, "thread-1")
        assert [m.content for m in state["messages"]][-1] == "answer: later"


def test_export_filters_and_totals(saver: PostgresSaver, tmp_path: Path) -> None:
    populate(saver, 4)
    one = tmp_path / "one.ndjson"
    with one.open("w") as f:
        assert export_ndjson(saver, f, thread_ids=["thread-2"]).threads == 1
    totals: list[tuple[int, int]] = []
    report = export_file(
        saver,
        tmp_path / "u1.ndjson",
        filter={"user": "u1"},
        on_start=lambda t, c: totals.append((t, c)),
    )
    assert report.threads == 2 and totals == [(2, report.checkpoints)]
    threads = {json.loads(x)["thread_id"] for x in lines_of(tmp_path / "u1.ndjson")[1:-1]}
    assert threads == {"thread-1", "thread-3"}
    everything: list[tuple[int, int]] = []
    export_file(saver, tmp_path / "all.ndjson", on_start=lambda t, c: everything.append((t, c)))
    assert everything == [(4, sum(1 for _ in saver.list(None)))]


def test_import_into_live_database_adds_only_missing(
    saver: PostgresSaver, exported: tuple[Path, list[str], int]
) -> None:
    out, _, _ = exported
    saver.delete_thread("thread-0")
    report = import_ndjson(saver, out)
    assert (report.threads, report.skipped, report.verified) == (3, 2, True)
    assert report.checkpoints == sum(
        1 for _ in saver.list({"configurable": {"thread_id": "thread-0"}})
    )


@pytest.mark.parametrize("keep", ["half", "header"])
def test_a_cut_file_is_refused_and_the_database_unchanged(
    db_url: str,
    saver: PostgresSaver,
    exported: tuple[Path, list[str], int],
    tmp_path: Path,
    keep: str,
) -> None:
    out, _, _ = exported
    lines = lines_of(out)
    cut = tmp_path / "cut.ndjson"
    cut.write_text("".join(lines[: len(lines) // 2] if keep == "half" else lines[:1]))
    saver.delete_thread("thread-2")
    before = snapshot(db_url)
    with pytest.raises(TransferError, match=r"no trailer.*incomplete"):
        import_ndjson(saver, cut)
    assert snapshot(db_url) == before


def test_a_digest_mismatch_is_refused(
    db_url: str, saver: PostgresSaver, exported: tuple[Path, list[str], int], tmp_path: Path
) -> None:
    out, _, _ = exported
    lines = lines_of(out)
    i = next(i for i, x in enumerate(lines) if '"kind":"checkpoint"' in x)
    d = json.loads(lines[i])
    d["metadata"]["step"] = 999
    lines[i] = json.dumps(d, separators=(",", ":")) + "\n"
    bad = tmp_path / "altered.ndjson"
    bad.write_text("".join(lines))
    saver.delete_thread(d["thread_id"])
    before = snapshot(db_url)
    with pytest.raises(TransferError, match="SHA-256 does not match"):
        import_ndjson(saver, bad)
    assert snapshot(db_url) == before


def test_partial_imports_whole_threads_and_says_what_it_left_out(
    saver: PostgresSaver, make_db_url: Any, exported: tuple[Path, list[str], int], tmp_path: Path
) -> None:
    out, ids, _ = exported
    lines = lines_of(out)
    ends = [i for i, x in enumerate(lines) if '"kind":"thread_end"' in x]
    # Cut inside the second thread, in the middle of a line, as a full disk would.
    cut_at = ends[0] + (ends[1] - ends[0]) // 2
    cut = tmp_path / "cut.ndjson"
    cut.write_text("".join(lines[:cut_at]) + lines[cut_at][:20])
    with PostgresSaver.from_conn_string(make_db_url(True)) as target:
        with pytest.raises(TransferError, match="no trailer"):
            import_ndjson(target, cut)
        report = import_ndjson(target, cut, partial=True)
        assert report.threads == 1 and report.verified is True
        assert [t.thread_id for t in target.list_threads()] == [ids[0]]
        assert any(repr(ids[1]) in x and "incomplete" in x for x in report.left_out)
        assert any("cut short" in x for x in report.left_out)
        same_threads(saver, target, [ids[0]])


def test_a_different_stored_row_is_refused_naming_thread_and_checkpoint(
    db_url: str,
    saver: PostgresSaver,
    make_db_url: Any,
    exported: tuple[Path, list[str], int],
    tmp_path: Path,
) -> None:
    out, _, _ = exported
    target_url = make_db_url(True)
    one = tmp_path / "one.ndjson"
    export_file(saver, one, thread_ids=["thread-1"])
    with PostgresSaver.from_conn_string(target_url) as target:
        import_ndjson(target, one)
        cid = next(target.list({"configurable": {"thread_id": "thread-1"}})).config["configurable"][
            "checkpoint_id"
        ]
        with psycopg.connect(target_url, autocommit=True) as conn:
            conn.execute(
                'UPDATE public.checkpoints SET metadata = metadata || \'{"user": "mallory"}\' '
                "WHERE thread_id = 'thread-1' AND checkpoint_id = %s",
                (cid,),
            )
        before = snapshot(target_url)
        # thread-0 is missing in the target and comes first in the file: it is not
        # written either, because every thread is checked before anything is written.
        with pytest.raises(ImportConflictError, match=f"thread 'thread-1' checkpoint '{cid}'"):
            import_ndjson(target, out)
        assert snapshot(target_url) == before
        assert [t.thread_id for t in target.list_threads()] == ["thread-1"]


def test_a_line_whose_id_differs_from_its_checkpoint_is_refused(
    db_url: str, saver: PostgresSaver, exported: tuple[Path, list[str], int], tmp_path: Path
) -> None:
    out, _, _ = exported
    lines = lines_of(out)[:-1]
    i = max(i for i, x in enumerate(lines) if '"kind":"checkpoint"' in x and "thread-0" in x)
    d = json.loads(lines[i])
    d["checkpoint_id"] = "1ffffffff-ffff-6fff-8fff-ffffffffffff"
    lines[i] = json.dumps(d, separators=(",", ":")) + "\n"
    forged = tmp_path / "forged.ndjson"
    forged.write_text("".join(with_trailer(lines)))
    saver.delete_thread("thread-0")
    before = snapshot(db_url)
    with pytest.raises(TransferError, match="differs from the id inside its serialized"):
        import_ndjson(saver, forged)
    assert snapshot(db_url) == before


def test_exporting_an_unknown_thread_fails_and_leaves_no_file(
    saver: PostgresSaver, tmp_path: Path
) -> None:
    populate(saver, 1)
    out = tmp_path / "backup.ndjson"
    with pytest.raises(TransferError, match="'does-not-exist'"):
        export_file(saver, out, thread_ids=["thread-0", "does-not-exist"])
    assert list(tmp_path.iterdir()) == []


def test_a_failed_export_leaves_no_file(saver: PostgresSaver, tmp_path: Path) -> None:
    populate(saver, 2)
    out = tmp_path / "backup.ndjson"

    def fail(_tid: str, _n: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_file(saver, out, on_thread=fail)
    assert list(tmp_path.iterdir()) == []


def test_a_type_outside_the_allowlist_exports_imports_and_copies(
    saver: PostgresSaver, make_db_url: Any, tmp_path: Path
) -> None:
    populate_tickets(saver.with_allowlist(TICKET_ALLOW), "tickets")
    config = {"configurable": {"thread_id": "tickets"}}
    with pytest.raises(BlockedTypeError):
        saver.get_tuple(config)  # what the plain saver does with the type
    want = saver.with_allowlist(TICKET_ALLOW).get_tuple(config)
    assert want is not None and len(want.checkpoint["channel_values"]["tickets"]) == 3
    out = tmp_path / "tickets.ndjson"
    assert export_file(saver, out).threads == 1
    with PostgresSaver.from_conn_string(make_db_url(True)) as target:
        assert import_ndjson(target, out).checkpoints > 0
        target.copy_thread("tickets", "tickets-copy")
        reader = target.with_allowlist(TICKET_ALLOW)
        same_threads(saver.with_allowlist(TICKET_ALLOW), reader, ["tickets"])
        copied = reader.get_tuple({"configurable": {"thread_id": "tickets-copy"}})
        assert copied is not None and copied.checkpoint == want.checkpoint


def test_bad_files(saver: PostgresSaver, tmp_path: Path) -> None:
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"format": "other"}\n')
    with pytest.raises(TransferError, match="not a pgcheckpoint NDJSON"):
        import_ndjson(saver, bad)
    bad.write_text('{"format": "pgcheckpoint.ndjson", "version": 99}\n')
    with pytest.raises(TransferError, match="version 99"):
        import_ndjson(saver, bad)
    bad.write_text('{"format": "pgcheckpoint.ndjson", "version": 2}\nnot json\n')
    with pytest.raises(TransferError, match="line 2 is not JSON"):
        import_ndjson(saver, bad)
    with pytest.raises(TransferError, match="cannot open"):
        import_ndjson(saver, tmp_path / "missing.ndjson")
    assert saver.list_threads() == []


def test_verification_reads_back_before_commit(
    db_url: str, saver: PostgresSaver, exported: tuple[Path, list[str], int]
) -> None:
    out, _, _ = exported
    saver.delete_thread("thread-0")
    with psycopg.connect(db_url, autocommit=True) as conn:
        # Storage that silently changes what it is given (a buggy trigger, a proxy).
        # Citus refuses triggers on distributed tables unless told they are safe
        # (docs/scaling.md); on plain PostgreSQL the setting is an unused placeholder.
        conn.execute("SET citus.enable_unsafe_triggers = on")
        conn.execute(
            "CREATE FUNCTION public.damage() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN NEW.task_path := NEW.task_path || 'x'; RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER damage BEFORE INSERT ON public.writes "
            "FOR EACH ROW EXECUTE FUNCTION public.damage()"
        )
    before = snapshot(db_url)
    with pytest.raises(TransferError, match="verification failed for thread 'thread-0'"):
        import_ndjson(saver, out)
    assert snapshot(db_url) == before
    assert import_ndjson(saver, out, verify=False).checkpoints > 0  # what verify prevented
