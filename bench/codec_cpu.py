"""Client CPU of the codec, without a database: ``python -m bench.codec_cpu``.

What a put costs to encode (``SaverCore.encode_put`` on the bench's 1 KB state) and
what a ``list(limit=10)`` page costs to decode (``codec.decode_rows`` on ten rows of
tiny states, shaped as ``read_checkpoints`` returns them, each with one pending
write), in process time (``time.process_time``), which a loaded machine disturbs far
less than wall-clock time. With ``--baseline SRC`` (a ``src`` directory of another
checkout, e.g. one made with ``git archive main src | tar -x -C /tmp/main``) that
tree's package is loaded beside this one and both are measured in the same process,
interleaved round by round; the baseline's rows are also decoded by this tree, so
rows it wrote must still read. Also prints the checkpoint skeleton's zstd costs
(the measurement behind ``Codec.pack``). Nothing is asserted but that readability.

Examples::

    python -m bench.codec_cpu
    python -m bench.codec_cpu --baseline /tmp/main/src --rounds 41
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import statistics
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from bench.states import PUT_PROFILES, TINY, StateProfile, ThreadBuilder

ENCODE_CALLS = 300
DECODE_CALLS = 60


def _load_as(name: str, src: str) -> ModuleType:
    """The package ``pgcheckpoint`` of another tree, imported under ``name``."""
    path = f"{src.rstrip('/')}/pgcheckpoint"
    spec = importlib.util.spec_from_file_location(
        name, f"{path}/__init__.py", submodule_search_locations=[path]
    )
    if spec is None or spec.loader is None:
        raise SystemExit(f"no pgcheckpoint package under {src}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _page(core: Any, profile: StateProfile, n: int = 10) -> list[tuple[Any, ...]]:
    """``n`` rows of ``read_checkpoints`` for one thread's checkpoints."""
    rows = []
    write_type, write = core.serde.dumps_typed("w")
    for step in ThreadBuilder("thread-1", core.get_next_version, profile).steps(n):
        p, _, _ = core.encode_put(step.config, step.checkpoint, step.metadata, step.new_versions)
        rows.append((
            p["thread_id"], p["checkpoint_ns"], p["checkpoint_id"], p["parent_checkpoint_id"],
            p["type"], p["checkpoint"], json.loads(p["metadata"]),
            list(p["channels"]), list(p["versions"]),
            list(p["blob_channels"]) or None, list(p["blob_versions"]) or None,
            list(p["blob_types"]) or None, list(p["blob_values"]) or None,
            list(p["blob_refs"]) or None, None, None, None,
            ["task-1"], ["messages"], [write_type], [write],
        ))
    return rows


def _per_call(fn: Callable[[], Any], calls: int) -> float:
    start = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - start) / calls * 1e6


def _encode(core: Any, steps: list[Any], calls: int) -> float:
    start = time.process_time()
    for n in range(calls):
        s = steps[n % len(steps)]
        core.encode_put(s.config, s.checkpoint, s.metadata, s.new_versions)
    return (time.process_time() - start) / calls * 1e6


def _decode(codec: ModuleType, state: Any, page: list[tuple[Any, ...]], calls: int) -> float:
    start = time.process_time()
    for _ in range(calls):
        codec.decode_rows(state, page)
    return (time.process_time() - start) / calls * 1e6


def _skeleton_costs(core: Any, codec: ModuleType, rounds: int) -> str:
    from pgcheckpoint import compression
    from pgcheckpoint._strict import dumps

    step = ThreadBuilder("thread-1", core.get_next_version, TINY).steps(5)[-1]
    skeleton = {k: v for k, v in step.checkpoint.items() if k != "channel_values"}
    skeleton["channel_values"] = {"branch:to:agent": None}
    _, raw = dumps(core.serde, skeleton, "checkpoint")
    policy = compression.CompressionPolicy(threshold=128)
    packed = compression.maybe_compress(raw, policy)
    if packed is None:
        return f"skeleton {len(raw)} bytes: zstd does not pay"
    squeeze = [_per_call(lambda: compression.maybe_compress(raw, policy), 500)
               for _ in range(rounds)]
    expand = [_per_call(lambda: compression.decompress(packed), 500) for _ in range(rounds)]
    decode = [_per_call(lambda: core.serde.loads_typed(("msgpack", raw)), 500)
              for _ in range(rounds)]
    return (
        f"skeleton {len(raw)} -> {len(packed)} bytes with zstd; medians: compress "
        f"{statistics.median(squeeze):.1f} us, decompress {statistics.median(expand):.1f} us, "
        f"msgpack decode {statistics.median(decode):.1f} us"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--baseline", help="src directory of another checkout to compare")
    parser.add_argument("--rounds", type=int, default=21, help="interleaved rounds (default 21)")
    args = parser.parse_args(argv)

    trees: dict[str, tuple[Any, ModuleType]] = {}
    if args.baseline:
        base = _load_as("pgcheckpoint_baseline", args.baseline)
        trees["baseline"] = (
            importlib.import_module(f"{base.__name__}._core").SaverCore(),
            importlib.import_module(f"{base.__name__}.codec"),
        )
    from pgcheckpoint import codec
    from pgcheckpoint._core import SaverCore

    trees["this tree"] = (SaverCore(), codec)
    steps = {
        name: ThreadBuilder("thread-1", core.get_next_version, PUT_PROFILES["1KB"]).steps(50)
        for name, (core, _) in trees.items()
    }
    pages = {name: _page(core, TINY) for name, (core, _) in trees.items()}
    if "baseline" in trees:  # rows the baseline wrote read back the same here
        core, mod = trees["this tree"]
        base_core, base_mod = trees["baseline"]
        ours = [t.checkpoint for t in mod.decode_rows(core.codec, pages["baseline"])]
        theirs = [t.checkpoint for t in base_mod.decode_rows(base_core.codec, pages["baseline"])]
        if ours != theirs:
            raise SystemExit("rows written by the baseline decode differently here")

    results: dict[tuple[str, str], list[float]] = {}
    names = list(trees)
    for r in range(args.rounds):
        for name in names if r % 2 else reversed(names):
            core, mod = trees[name]
            results.setdefault((name, "encode_put 1 KB"), []).append(
                _encode(core, steps[name], ENCODE_CALLS)
            )
            results.setdefault((name, "decode 10-row page"), []).append(
                _decode(mod, core.codec, pages[name], DECODE_CALLS)
            )
    for op in ("encode_put 1 KB", "decode 10-row page"):
        line = []
        for name in names:
            xs = results[(name, op)]
            line.append(
                f"{name} median {statistics.median(xs):.1f} us "
                f"(p10 {sorted(xs)[len(xs) // 10]:.1f})"
            )
        if len(names) == 2:
            ratio = statistics.median(results[(names[1], op)]) / statistics.median(
                results[(names[0], op)]
            )
            line.append(f"this tree / baseline {ratio:.2f}")
        print(f"{op}: " + ", ".join(line))
    for name in names:
        print(f"{name}: stored skeleton {len(pages[name][0][5])} bytes, type {pages[name][0][4]}")
    print(_skeleton_costs(trees["this tree"][0], codec, max(3, args.rounds // 3)))


if __name__ == "__main__":
    main()
