"""pgcheckpoint's benchmark harness: ``python -m bench`` from the repository root.

Runs pgcheckpoint and the official ``langgraph-checkpoint-postgres`` saver against the
same PostgreSQL in one run, alternating them round by round, and reports medians, the
ratio between them, PostgreSQL's own floor, and issue 16's targets. See
docs/benchmarks.md for what each workload does and how to read the table.
"""
