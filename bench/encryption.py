"""What encryption at rest costs: put and get at 1 KB, 100 KB and 5 MB, and a graph
end to end, with and without a keyring (docs/encryption.md).

Both savers are pgcheckpoint on the same database; they alternate round by round
(runner.py), so drift lands on both. Each row reports the encrypted saver's median
in the pgcheckpoint column, and in ``extra`` the plain median and the overhead in
percent (the issue's aim: under 15 % at 1 KB, under 25 % at 5 MB).

In the harness: ``python -m bench --only encryption``. Alone, on any database::

    python -m bench.encryption --dsn postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import contextlib
import json
import operator
import statistics
from collections.abc import Callable, Iterator
from typing import Annotated, Any

from typing_extensions import TypedDict

from bench.runner import Context, Measurement, Mode, Plan, alternate, latency
from bench.savers import OURS
from bench.states import PUT_PROFILES, Step, ThreadBuilder, thread_config

SIZES = ("1KB", "100KB", "5MB")
PLANS = {  # (quick, full) per size: puts of 5 MB take ~100 ms each
    "1KB": (Plan(5, 20), Plan(10, 60)),
    "100KB": (Plan(5, 8), Plan(10, 25)),
    "5MB": (Plan(3, 2, 1), Plan(6, 4, 1)),
}
E2E_STEPS = 20
# A fixed key: the cost does not depend on which key it is.
_KEY = bytes(range(32))


@contextlib.contextmanager
def _savers(dsn: str) -> Iterator[dict[str, Any]]:
    from pgcheckpoint import Keyring, PostgresSaver

    ring = Keyring({"bench": _KEY}, primary="bench")
    with PostgresSaver.from_conn_string(dsn) as plain, PostgresSaver.from_conn_string(
        dsn, encryption=ring
    ) as enc:
        plain.setup()
        for saver in (plain, enc):
            pool = getattr(saver, "conn", None)
            if pool is not None and hasattr(pool, "wait"):
                pool.wait()
        yield {"plain": plain, "encrypted": enc}


def _row(key: str, title: str, samples: dict[str, list[float]]) -> Measurement:
    plain = statistics.median(samples["plain"]) * 1e3
    enc = statistics.median(samples["encrypted"]) * 1e3
    overhead = (enc / plain - 1) * 100 if plain else 0.0
    m = latency(key, f"{title}, encrypted ({overhead:+.0f} % vs plain)",
                {OURS: samples["encrypted"]})
    m.extra.update(plain_ms=plain, encrypted_ms=enc, overhead_pct=overhead)
    return m


def _puts(savers: dict[str, Any], size: str, n: int) -> dict[str, Callable[[int], object]]:
    ops: dict[str, Callable[[int], object]] = {}
    for name, saver in savers.items():
        steps = ThreadBuilder(f"enc-put-{size}-{name}", saver.get_next_version,
                              PUT_PROFILES[size]).steps(n)
        ops[name] = lambda i, s=saver, st=steps: _put(s, st[i])
    return ops


def _put(saver: Any, step: Step) -> object:
    return saver.put(step.config, step.checkpoint, step.metadata, step.new_versions)


def _gets(savers: dict[str, Any], size: str) -> dict[str, Callable[[int], object]]:
    ops: dict[str, Callable[[int], object]] = {}
    for name, saver in savers.items():
        thread = f"enc-get-{size}-{name}"
        for step in ThreadBuilder(thread, saver.get_next_version, PUT_PROFILES[size]).steps(2):
            _put(saver, step)
        config = thread_config(thread)
        ops[name] = lambda i, s=saver, c=config: s.get_tuple(c)
    return ops


class S(TypedDict):
    log: Annotated[list[str], operator.add]
    n: int


def _graph(saver: Any) -> Any:
    from langgraph.graph import START, StateGraph

    def step(s: S) -> dict[str, Any]:
        return {"log": [f"turn {s['n']}: " + "text " * 40], "n": s["n"] + 1}

    b = StateGraph(S)
    b.add_node("step", step)
    b.add_edge(START, "step")
    b.add_conditional_edges("step", lambda s: "step" if s["n"] < E2E_STEPS else "__end__")
    return b.compile(checkpointer=saver)


def run_encryption(ctx: Context) -> list[Measurement]:
    keys = [f"encryption.{op}_{s.lower()}" for op in ("put", "get") for s in SIZES]
    if not ctx.wants_any([*keys, "encryption.e2e"]):
        return []
    dsn = next(s.dsn for s in ctx.sides if s.name == OURS) if any(
        s.name == OURS for s in ctx.sides) else ctx.sides[0].dsn
    return measure(dsn, ctx.mode, ctx.wants)


def measure(
    dsn: str, mode: Mode, wants: Callable[[str], bool] = lambda k: True
) -> list[Measurement]:
    out: list[Measurement] = []
    with _savers(dsn) as savers:
        for size in SIZES:
            plan = mode.plan(*PLANS[size])
            if wants(f"encryption.put_{size.lower()}"):
                samples = alternate(_puts(savers, size, plan.total), plan)
                out.append(_row(f"encryption.put_{size.lower()}", f"put {size}", samples))
            if wants(f"encryption.get_{size.lower()}"):
                samples = alternate(_gets(savers, size), plan)
                out.append(_row(f"encryption.get_{size.lower()}", f"get {size}", samples))
        if wants("encryption.e2e"):
            graphs = {name: _graph(s) for name, s in savers.items()}

            def run(name: str) -> Callable[[int], object]:
                return lambda i: graphs[name].invoke(
                    {"log": [], "n": 0},
                    {"configurable": {"thread_id": f"enc-e2e-{name}-{i}"},
                     "recursion_limit": 1000},
                )

            samples = alternate({n: run(n) for n in graphs}, mode.plan(Plan(3, 3), Plan(6, 5)))
            out.append(_row("encryption.e2e", f"graph of {E2E_STEPS} steps end to end",
                            samples))
    return out


def rotation(dsn: str, checkpoints: int, per_thread: int = 100) -> dict[str, Any]:
    """Fill ``checkpoints`` (1 KB state, 3 writes each) under key "old", then time
    ``keys rotate`` to key "new" while a graph keeps writing; then read every
    checkpoint with the new key alone."""
    import threading
    import time

    from bench.states import SMALL, three_writes
    from pgcheckpoint import Keyring, PostgresSaver
    from pgcheckpoint.rotation import key_status, reencrypt

    old = Keyring({"old": _KEY}, primary="old")
    both = Keyring({"new": bytes(range(1, 33)), "old": _KEY}, primary="new")
    new = Keyring({"new": bytes(range(1, 33))}, primary="new")
    threads = [f"rot-{i}" for i in range(max(1, checkpoints // per_thread))]
    t0 = time.perf_counter()
    with PostgresSaver.from_conn_string(dsn, encryption=old) as saver:
        saver.setup()
        for tid in threads:
            steps = ThreadBuilder(tid, saver.get_next_version, SMALL).steps(per_thread)
            for i, step in enumerate(steps):
                _put(saver, step)
                saver.put_writes(step.stored, three_writes(i), f"task-{i}")
    fill_s = time.perf_counter() - t0
    stop = threading.Event()
    steps_written = [0]

    def writer() -> None:
        with PostgresSaver.from_conn_string(dsn, encryption=both) as w:
            graph = _graph(w)
            while not stop.is_set():
                graph.invoke({"log": [], "n": E2E_STEPS - 3},
                             {"configurable": {"thread_id": f"rot-live-{steps_written[0]}"}})
                steps_written[0] += 1

    live = threading.Thread(target=writer)
    live.start()
    try:
        with PostgresSaver.from_conn_string(dsn, encryption=both) as saver:
            t0 = time.perf_counter()
            report = reencrypt(saver)
            rotate_s = time.perf_counter() - t0
    finally:
        stop.set()
        live.join()
    with PostgresSaver.from_conn_string(dsn, encryption=new) as saver:
        status = key_status(saver)
        read = sum(1 for tid in threads for _ in saver.list({"configurable": {"thread_id": tid}}))
    return {"checkpoints": len(threads) * per_thread, "fill_s": fill_s, "rotate_s": rotate_s,
            "resealed": report.resealed, "skipped": report.skipped,
            "graph_runs_during_rotation": steps_written[0], "key_ids_after": status,
            "read_with_new_key_alone": read}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.encryption", description=__doc__)
    parser.add_argument("--dsn", required=True, help="a database pgcheckpoint may set up")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rotate", type=int, metavar="N",
                        help="instead: time a key rotation of N checkpoints under load")
    args = parser.parse_args(argv)
    if args.rotate:
        print(json.dumps(rotation(args.dsn, args.rotate), indent=2))
        return
    for m in measure(args.dsn, Mode(quick=args.quick)):
        e = m.extra
        print(f"{m.key:24s} plain {e['plain_ms']:9.3f} ms  encrypted {e['encrypted_ms']:9.3f} ms"
              f"  {e['overhead_pct']:+6.1f} %  ({m.samples} samples)")


if __name__ == "__main__":
    main()
