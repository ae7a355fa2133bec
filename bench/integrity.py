"""What the read bounds and integrity checks cost on the put/get path (no database).

``python -m bench.integrity`` times the codec's encode (``put``'s CPU work: serialize,
compress with the zstd content checksum, chunk) and decode (``get``'s CPU work: verify
each chunk's address, bounded decompression, deserialize) for 1 KB, 100 KB and 5 MB
values. Run it once on a tree with the checks and once on one without (for example
``PYTHONPATH=/path/to/older/src python -m bench.integrity``) and compare: the database
round trip, the same for both, is left out so the difference is not lost in it.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

import pgcheckpoint
from pgcheckpoint.codec import Codec, Target, decode_row, encode_put

SIZES = {"1KB": 1_000, "100KB": 100_000, "5MB": 5_000_000}
WORDS = ["alpha", "beta", "gamma", "delta", "omega", "kappa", "sigma", "tau", "phi", "psi"]


def state(size: int, seed: int = 1) -> list[str]:
    """A chat-like list of messages of about ``size`` bytes (text with real literals)."""
    rnd = random.Random(seed)
    out: list[str] = []
    total = 0
    while total < size:
        msg = " ".join(rnd.choice(WORDS) + str(rnd.randrange(10_000)) for _ in range(40))
        out.append(msg)
        total += len(msg)
    return out


def row_of(params: dict[str, Any]) -> tuple[Any, ...]:
    """The ``read_checkpoints`` row a put with these parameters reads back as."""
    p = params
    return (
        p["thread_id"],
        p["checkpoint_ns"],
        p["checkpoint_id"],
        None,
        p["type"],
        p["checkpoint"],
        json.loads(p["metadata"]),
        list(p["channels"]),
        list(p["versions"]),
        list(p["blob_channels"]),
        list(p["blob_versions"]),
        list(p["blob_types"]),
        list(p["blob_values"]),
        list(p["blob_refs"]),
        list(p["chunk_hashes"]),
        list(p["chunk_compressed"]),
        list(p["chunk_data"]),
        [],
        [],
        [],
        [],
    )


def best(fn: Callable[[], object], repeat: int) -> float:
    """The fastest of ``repeat`` runs, in milliseconds (least disturbed by other load)."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    codec = Codec(JsonPlusSerializer())
    print(f"pgcheckpoint from {pgcheckpoint.__file__}")
    print(f"{'size':>6} {'encode ms':>10} {'decode ms':>10}")
    for name, size in SIZES.items():
        cp = empty_checkpoint()
        cp["channel_values"] = {"messages": state(size)}
        cp["channel_versions"] = {"messages": f"{1:032}.0"}
        target = Target("t", "", None)
        versions = dict(cp["channel_versions"])
        put = encode_put(codec, target, cp, {"step": 1}, versions)
        row = row_of(put.params)
        repeat = args.repeat if size < 1_000_000 else max(5, args.repeat // 3)
        enc = best(partial(encode_put, codec, target, cp, {"step": 1}, versions), repeat)
        dec = best(partial(decode_row, codec, row), repeat)
        print(f"{name:>6} {enc:>10.3f} {dec:>10.3f}")


if __name__ == "__main__":
    main()
