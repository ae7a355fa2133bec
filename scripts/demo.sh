#!/usr/bin/env bash
# Run the crash-and-resume demo (examples/demo.py) in the project virtualenv.
# Installs only what the demo needs (pgcheckpoint[demo]: the package, the embedded
# server, LangGraph); scripts/test.sh adds the test tools later.
#
# Uses $DATABASE_URL when set, otherwise an embedded PostgreSQL that needs no
# set-up. Extra arguments go to the demo, e.g. `bash scripts/demo.sh --steps 12`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/_venv.sh
PGC_EXTRAS=demo source scripts/_venv.sh
exec python examples/demo.py "$@"
