#!/usr/bin/env bash
# Run every check pgcheckpoint's CI runs: ruff, mypy, the freshness of the
# generated sync code (tools/async_to_sync.py --check), then the test suite.
#
# The tests run against a throwaway embedded PostgreSQL (no set-up needed),
# or against your server if PGCHECKPOINT_TEST_DSN or DATABASE_URL is set.
# When neither is set and a PostgreSQL answers on 127.0.0.1:5432, the suite
# runs a second time against it (postgresql://postgres@127.0.0.1:5432/postgres;
# set PGCHECKPOINT_SKIP_LOCAL=1 to skip that pass).
#
# Then LangGraph's own test suite runs against pgcheckpoint's savers, once per
# variant (a saver on one connection, then on a pool), on the embedded server
# or PGCHECKPOINT_TEST_DSN/DATABASE_URL: scripts/langgraph_suite.py, with
# PGCHECKPOINT_LANGGRAPH_WORKERS xdist workers (default 2). It is not repeated
# for the 127.0.0.1:5432 pass; set PGCHECKPOINT_SKIP_LANGGRAPH=1 to skip it.
#
# Extra arguments go to pytest (pgcheckpoint's own suite only), e.g.
# `bash scripts/test.sh -k embedded -x`.
# Every stage runs even if an earlier one fails; the exit status is non-zero
# if any failed, including a pytest run that collected no tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/_venv.sh
source scripts/_venv.sh
# shellcheck source=scripts/_test_tools.sh
source scripts/_test_tools.sh

LOCAL_DSN="postgresql://postgres@127.0.0.1:5432/postgres"
results=()
failures=0

stage() {
    # stage NAME CMD...: run CMD, remember whether NAME passed.
    local name="$1" rc=0
    shift
    echo
    echo "==> ${name}"
    "$@" || rc=$?
    if [[ ${rc} -eq 0 ]]; then
        results+=("ok      ${name}")
    else
        results+=("FAILED  ${name} (exit ${rc})")
        failures=$((failures + 1))
    fi
}

run_pytest() {
    # pytest exits 5 when it collected nothing: that is a broken run, not a pass.
    local rc=0
    python -m pytest "$@" || rc=$?
    if [[ ${rc} -eq 5 ]]; then
        echo "error: pytest collected no tests" >&2
    fi
    return "${rc}"
}

run_pytest_local() {
    (
        export PGCHECKPOINT_TEST_DSN="${LOCAL_DSN}"
        run_pytest "$@"
    )
}

local_server_up() {
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -h 127.0.0.1 -p 5432 -t 3
    else
        python - <<'PY'
import socket
import sys

try:
    socket.create_connection(("127.0.0.1", 5432), timeout=3).close()
except OSError:
    sys.exit(1)
PY
    fi
}

install_test_tools
stage "ruff" ruff check .
stage "mypy" mypy src/pgcheckpoint
# saver.py and _runner.py are generated from aio.py and _runner_async.py; a
# stale one fails here, before the tests (docs/architecture.md).
stage "generated sync code is fresh" python tools/async_to_sync.py --check

if [[ -n "${PGCHECKPOINT_TEST_DSN:-}${DATABASE_URL:-}" ]]; then
    stage "pytest (server from PGCHECKPOINT_TEST_DSN/DATABASE_URL)" run_pytest "$@"
else
    stage "pytest (embedded PostgreSQL)" run_pytest "$@"
    if [[ -z "${PGCHECKPOINT_SKIP_LOCAL:-}" ]] && local_server_up; then
        stage "pytest (PostgreSQL on 127.0.0.1:5432)" run_pytest_local "$@"
    else
        echo
        echo "==> no PostgreSQL on 127.0.0.1:5432 (or PGCHECKPOINT_SKIP_LOCAL set): second pass skipped"
    fi
fi

if [[ -z "${PGCHECKPOINT_SKIP_LANGGRAPH:-}" ]]; then
    for variant in conn pool; do
        stage "langgraph suite (${variant})" python scripts/langgraph_suite.py \
            --variant "${variant}" -n "${PGCHECKPOINT_LANGGRAPH_WORKERS:-2}"
    done
else
    echo
    echo "==> PGCHECKPOINT_SKIP_LANGGRAPH set: LangGraph's suite skipped"
fi

echo
echo "==> summary"
for line in "${results[@]}"; do echo "    ${line}"; done
if [[ ${failures} -gt 0 ]]; then
    echo "${failures} stage(s) failed" >&2
    exit 1
fi
