"""Run LangGraph's own test suite against pgcheckpoint's savers.

The ``tests/`` of the installed langgraph's sdist are fetched from the package
index once (``pip download --no-binary :all: --no-deps langgraph==<installed>``)
and unpacked under ``.cache/langgraph-<version>/``. Their checkpointer fixtures
and ``test_prune_postgres.py`` are pointed at pgcheckpoint by the pytest plugin
``tests_langgraph/pgc_langgraph.py`` (nothing of LangGraph's is edited), with a
fresh database per test cloned from a migrated template, on
``PGCHECKPOINT_TEST_DSN`` / ``DATABASE_URL`` when set, else on an embedded
PostgreSQL started for the run.

Each variant is one pytest run under pytest-xdist: ``conn`` (a saver on one
psycopg connection) and ``pool`` (on a psycopg_pool pool). The exit status is
non-zero if any test fails outside the plugin's short exclusion list.

    python scripts/langgraph_suite.py                      # both variants
    python scripts/langgraph_suite.py --variant pool -n 2
    python scripts/langgraph_suite.py --variant conn -- tests/test_pregel.py -k interrupt
    python scripts/langgraph_suite.py --variant conn -- \\
        "tests/test_time_travel.py::test_replay_from_checkpoint[pgcheckpoint]"

Arguments after ``--`` go to pytest; test paths there are relative to the
unpacked sdist (``tests/...``) and replace the default selection.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_DIR = ROOT / "tests_langgraph"
sys.path.insert(0, str(PLUGIN_DIR))

import pgc_langgraph as plugin  # noqa: E402  (the plugin's database helpers)

# Imported by LangGraph's conftest or tests; missing ones are reported up front.
NEEDED_MODULES = {
    "xdist": "pytest-xdist",
    "pytest_mock": "pytest-mock",
    "syrupy": "syrupy",
    "redis": "redis",
    "langgraph.checkpoint.postgres": "langgraph-checkpoint-postgres",
    "langgraph.checkpoint.sqlite": "langgraph-checkpoint-sqlite",
}
DSN_ENV_VARS = ("PGCHECKPOINT_TEST_DSN", "DATABASE_URL")
# Serial re-runs of a failed test before it fails the run (see rerun_failures).
RERUNS = 2


def log(message: str) -> None:
    print(f"[langgraph-suite] {message}", flush=True)


def fetch_tests(version: str, cache_dir: Path) -> Path:
    """Directory holding LangGraph's ``tests`` package for ``version`` (fetched once)."""
    target = cache_dir / f"langgraph-{version}"
    if (target / "tests" / "conftest.py").is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".fetch-") as tmp:
        log(f"downloading the langgraph {version} sdist")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--disable-pip-version-check",
                "--quiet",
                "--no-binary",
                ":all:",
                "--no-deps",
                f"langgraph=={version}",
                "-d",
                tmp,
            ],
            check=True,
        )
        archives = list(Path(tmp).glob("langgraph-*.tar.gz"))
        if len(archives) != 1:
            raise SystemExit(f"expected one langgraph sdist in {tmp}, found {archives}")
        prefix = f"langgraph-{version}/tests/"
        staged = Path(tmp) / "unpacked"
        with tarfile.open(archives[0]) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
            if not members:
                raise SystemExit(f"{archives[0].name} has no {prefix}")
            tar.extractall(staged, members=members, filter="data")
        # Rename into place last, so a concurrent or interrupted run never sees
        # a half-unpacked directory.
        try:
            (staged / f"langgraph-{version}").rename(target)
        except OSError:
            if not (target / "tests" / "conftest.py").is_file():
                raise
    return target


def default_selection(sdist: Path) -> list[str]:
    """The test files that use a checkpointer fixture, plus the prune tests."""
    files = []
    for path in sorted((sdist / "tests").glob("test_*.py")):
        text = path.read_text(encoding="utf-8")
        if path.name == plugin.PRUNE_MODULE or any(f in text for f in plugin.CHECKPOINTER_FIXTURES):
            files.append(f"tests/{path.name}")
    return files


@contextmanager
def test_server() -> Iterator[str]:
    """URL of database ``postgres`` on the server the run uses."""
    for var in DSN_ENV_VARS:
        if os.environ.get(var):
            log(f"server from {var}")
            yield os.environ[var]
            return
    from pgcheckpoint.embedded import start_embedded

    # Short path: the unix socket lives in the data directory.
    root = tempfile.mkdtemp(prefix="pgc-lg-")
    log("starting an embedded PostgreSQL")
    server = start_embedded(os.path.join(root, "pgdata"))
    try:
        tune_throwaway_server(server.url)
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def tune_throwaway_server(server_url: str) -> None:
    """Trade durability for speed on the embedded server this run started.

    Every test creates and drops a database, and DROP DATABASE waits for a
    checkpoint; without fsync those cost a fraction. The server is deleted at
    the end of the run, so nothing durable is lost. A server named by
    PGCHECKPOINT_TEST_DSN is never touched.
    """
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            conn.execute(sql_set_off(setting))
        conn.execute("SELECT pg_reload_conf()")


def sql_set_off(setting: str) -> Any:
    from psycopg import sql

    return sql.SQL("ALTER SYSTEM SET {} = off").format(sql.Identifier(setting))


@contextmanager
def template_database(server_url: str) -> Iterator[str]:
    """A database migrated once by ``PostgresSaver.setup()``, cloned per test."""
    import psycopg

    from pgcheckpoint import PostgresSaver

    plugin.drop_stale_databases(server_url)
    name = plugin.create_database(server_url, "template0")
    try:
        url = plugin.dsn_for_database(server_url, name)
        with psycopg.connect(url, autocommit=True) as conn:
            PostgresSaver(conn).setup()
        yield name
    finally:
        plugin.drop_database(server_url, name)


def classify(nodeid: str, detail: str) -> str:
    if "ConcurrentUpdateError" in detail:
        return "one-writer guard (ConcurrentUpdateError)"
    if "BlockedTypeError" in detail:
        return "serde allowlist (BlockedTypeError)"
    if plugin.PRUNE_MODULE in nodeid:
        return "prune keep_latest"
    return "other"


def run_variant(
    variant: str, sdist: Path, server_url: str, template: str, workers: str, extra: list[str]
) -> tuple[dict[str, int], dict[str, dict[str, str]], float, int]:
    report = Path(tempfile.mkstemp(prefix=f"pgc-lg-{variant}-", suffix=".json")[1])
    env = dict(os.environ)
    env.update(
        {
            plugin.SERVER_ENV: server_url,
            plugin.TEMPLATE_ENV: template,
            plugin.VARIANT_ENV: variant,
            plugin.REPORT_ENV: str(report),
            # LangGraph's conftest: memory-only params for the store and cache
            # fixtures (no redis); the plugin re-enables the prune tests.
            "NO_DOCKER": "true",
            "PYTHONPATH": os.pathsep.join(
                [str(PLUGIN_DIR), str(sdist), *filter(None, [env.get("PYTHONPATH")])]
            ),
        }
    )
    selectors = [a for a in extra if a.startswith("tests")]
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-c",
        str(PLUGIN_DIR / "pytest.ini"),
        "--rootdir",
        str(sdist),
        # Only LangGraph's conftest files, none of a directory above the sdist.
        "--confcutdir",
        str(sdist),
        "-p",
        "pgc_langgraph",
        *(["-n", workers] if workers not in ("0", "") else []),
        *([] if selectors else default_selection(sdist)),
        *extra,
    ]
    log(f"variant {variant}: {' '.join(cmd[3:])}")
    started = time.monotonic()
    rc = subprocess.run(cmd, cwd=sdist, env=env).returncode
    elapsed = time.monotonic() - started
    try:
        results: dict[str, dict[str, str]] = json.loads(report.read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        results = {}
    finally:
        report.unlink(missing_ok=True)
    return count_outcomes(results), results, elapsed, rc


def count_outcomes(results: dict[str, dict[str, str]]) -> dict[str, int]:
    counts = {k: 0 for k in ("passed", "failed", "excluded", "skipped")}
    for entry in results.values():
        outcome = "failed" if entry["outcome"] == "error" else entry["outcome"]
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def rerun_failures(
    variant: str,
    sdist: Path,
    server_url: str,
    template: str,
    results: dict[str, dict[str, str]],
    limit: int,
) -> list[str]:
    """Run this variant's failed tests once more, one at a time, without xdist.

    A few of LangGraph's tests order stream chunks by sleeps of 0 and 10 ms
    (``test_imp_nested``) and fail when the machine is loaded, whatever the
    saver. A test that passes on one of ``RERUNS`` serial re-runs counts as
    passed and is listed as flaky in the summary; one that fails every time
    stays failed. Past
    ``limit`` failures nothing is re-run: that many is a real regression.
    Returns the ids that passed on the re-run.
    """
    failed = sorted(n for n, e in results.items() if e["outcome"] in ("failed", "error"))
    if not failed or len(failed) > limit:
        return []
    flaky: list[str] = []
    for attempt in range(1, RERUNS + 1):
        log(f"variant {variant}: re-running {len(failed)} failed test(s) serially ({attempt})")
        _, again, _, _ = run_variant(variant, sdist, server_url, template, "0", failed)
        for nodeid in failed:
            if again.get(nodeid, {}).get("outcome") == "passed":
                results[nodeid] = {**again[nodeid], "outcome": "passed"}
                flaky.append(nodeid)
        failed = [n for n in failed if n not in flaky]
        if not failed:
            break
    return flaky


def failure_lines(variant: str, results: dict[str, dict[str, str]]) -> list[str]:
    groups: dict[str, list[str]] = {}
    for nodeid, entry in sorted(results.items()):
        if entry["outcome"] in ("failed", "error"):
            head = entry.get("detail", "").strip().splitlines()
            groups.setdefault(classify(nodeid, entry.get("detail", "")), []).append(
                f"    {nodeid}\n        {head[0][:300] if head else ''}"
            )
    lines = []
    for cause in sorted(groups):
        lines.append(f"[{variant}] {cause}: {len(groups[cause])}")
        lines.extend(groups[cause])
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variant", choices=[*plugin.VARIANTS, "both"], default="both")
    parser.add_argument(
        "-n", "--workers", default="2", help="pytest-xdist workers (0: no xdist; default 2)"
    )
    parser.add_argument("--cache-dir", type=Path, default=ROOT / ".cache")
    parser.add_argument(
        "--failures-file", type=Path, help="also write the grouped failure list here"
    )
    parser.add_argument(
        "--rerun-limit",
        type=int,
        default=5,
        help="re-run up to this many failed tests serially once (0: never; default 5)",
    )
    parser.add_argument("pytest_args", nargs="*", help="after --: arguments for pytest")
    args = parser.parse_args()

    missing = [pkg for mod, pkg in NEEDED_MODULES.items() if importlib.util.find_spec(mod) is None]
    if missing:
        log(f"missing test dependencies: pip install {' '.join(missing)}")
        return 2
    import pgcheckpoint

    version = importlib.metadata.version("langgraph")
    log(f"langgraph {version}; pgcheckpoint from {Path(pgcheckpoint.__file__).parent}")
    sdist = fetch_tests(version, args.cache_dir)
    variants = list(plugin.VARIANTS) if args.variant == "both" else [args.variant]

    summary: list[str] = []
    failures: list[str] = []
    ok = True
    with test_server() as server_url, template_database(server_url) as template:
        for variant in variants:
            counts, results, elapsed, rc = run_variant(
                variant, sdist, server_url, template, args.workers, args.pytest_args
            )
            flaky = rerun_failures(
                variant, sdist, server_url, template, results, args.rerun_limit
            )
            if flaky:
                counts = count_outcomes(results)
                rc = 0 if counts["failed"] == 0 else rc
            failures += failure_lines(variant, results)
            passed = rc == 0 and counts["failed"] == 0 and counts["passed"] > 0
            ok = ok and passed
            summary.append(
                f"langgraph {version} suite [{variant}]: {counts['passed']} passed, "
                f"{counts['failed']} failed, {counts['excluded']} excluded, "
                f"{counts['skipped']} skipped in {elapsed:.0f}s (pytest exit {rc})"
                + (f"; passed only on a serial re-run: {', '.join(flaky)}" if flaky else "")
                + ("" if passed else "  FAILED")
            )
    if failures:
        print("\n".join(["", "failures by cause:", *failures]))
    if args.failures_file is not None:
        args.failures_file.write_text("\n".join([*summary, "", *failures]) + "\n")
    print()
    for line in summary:
        print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
