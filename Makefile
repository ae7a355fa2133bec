# Developer shortcuts; each target runs inside the project virtualenv (.venv),
# which scripts/_venv.sh creates or refreshes on demand.
#
#   make check   ruff + mypy + generated sync code fresh (fast, no database)
#   make sync    regenerate saver.py and _runner.py from their async sources
#   make test    everything CI runs: scripts/test.sh (ruff, mypy, pytest)
#   make demo    the crash/resume/time-travel demo: scripts/demo.sh
#   make fix     let ruff fix what it can

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
VENV := source scripts/_venv.sh &&

.PHONY: check test demo fix sync venv clean

check:
	$(VENV) rc=0; ruff check . || rc=1; mypy src/pgcheckpoint || rc=1; \
		python tools/async_to_sync.py --check || rc=1; exit $$rc

sync:
	$(VENV) python tools/async_to_sync.py

test:
	bash scripts/test.sh

demo:
	bash scripts/demo.sh

fix:
	$(VENV) ruff check --fix .

venv:
	$(VENV) true

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache
