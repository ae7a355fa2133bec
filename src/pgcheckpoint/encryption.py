"""What the codec encrypts and how each value is bound to its row (pure, no I/O).

Every stored value goes through :meth:`Encryption.seal` after compression, and
its ``type`` gets the suffix ``+enc``. The associated data of each value names
the column and every field that places it: thread, namespace, checkpoint id,
channel and version, task, chunk id, and the value's inner type. A
value copied to another row, thread or column, or whose type was edited (to
drop ``+zstd``, say), fails authentication. A checkpoint's own value also binds
its ``channels``/``versions`` lists, so a checkpoint cannot be
pointed at another version of a channel; a chunked value binds its list of
chunk ids, so chunks cannot be reordered.

Metadata is stored as a JSON object ``{"pgc:enc": <base64 sealed JSON>,
"pgc:kid": <key id>, "pgc:idx": [tokens], "run_id": <token>}``: the tokens are
HMACs of each leaf (path and value), so ``metadata @> {"pgc:idx": [...]}``
filters without decrypting (:meth:`Encryption.filters`), and ``run_id``'s token
lets ``delete_for_runs`` find a run's rows. The sealed JSON also holds the
checkpoint's parent id: a changed parent link raises, one set to NULL (retention
does that when it deletes the parent) reads. docs/encryption.md lists what stays
in clear.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import DeserializationError, IntegrityError
from .keyring import Keyring, key_id_of

ENC_SUFFIX = "+enc"
META_SEALED = "pgc:enc"
META_KID = "pgc:kid"
META_INDEX = "pgc:idx"
RUN_ID = "run_id"


def _field(f: str | bytes | None) -> str:
    if f is None:
        return "n"
    if isinstance(f, str):
        return "s" + f
    return "b" + f.hex()


def aad(column: str, *fields: str | bytes | None) -> bytes:
    """Associated data: the column, then each field tagged by kind, NUL-separated.
    Unambiguous: no field holds NUL (ids and names are PostgreSQL text, which cannot;
    bytes are written in hex). Measured: 3x faster than length-prefixing each field."""
    return "\x00".join([column, *map(_field, fields)]).encode("utf-8", "surrogatepass")


def list_digest(*lists: Sequence[str | None]) -> bytes:
    """SHA-256 of string lists (``channels``, ``versions``) for associated data."""
    text = "\x00\x00".join("\x00".join(map(_field, values)) for values in lists)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


# Each *_aad function takes the value's inner type last, so that
# ``functools.partial(f, <row fields>)`` is the codec's ``aad_of``.
def checkpoint_aad(
    thread_id: str, ns: str, checkpoint_id: str,
    channels: Sequence[str], versions: Sequence[str | None], inner_type: str,
) -> bytes:
    return aad("checkpoints.checkpoint", thread_id, ns, checkpoint_id, inner_type,
               list_digest(channels, versions))


def blob_aad(
    thread_id: str, ns: str, channel: str, version: str, refs: bytes | None, inner_type: str
) -> bytes:
    return aad("blobs.value", thread_id, ns, channel, version, inner_type, refs)


def write_aad(
    thread_id: str, ns: str, checkpoint_id: str, task_id: str, channel: str, inner_type: str
) -> bytes:
    # Not the write's idx: the read path does not fetch it (queries.sql), so two
    # writes of one task to one channel can trade places (docs/encryption.md).
    return aad("writes.value", thread_id, ns, checkpoint_id, task_id, channel, inner_type)


def chunk_aad(thread_id: str, chunk_id: bytes, compressed: bool) -> bytes:
    return aad("chunks.data", thread_id, chunk_id, b"z" if compressed else b"-")


def metadata_aad(thread_id: str, ns: str, checkpoint_id: str) -> bytes:
    return aad("checkpoints.metadata", thread_id, ns, checkpoint_id)


def _leaves(value: Any, path: str = "") -> Iterator[bytes]:
    """Each (path, value) a containment filter can ask for: nested objects by key,
    anything else (scalars, lists) whole, in one canonical text. Keys are joined by
    NUL (which JSON text from the saver never holds); scalars are tagged by type,
    other values are canonical JSON (a fast path: this runs for every put)."""
    if isinstance(value, Mapping) and value:
        for k, v in value.items():
            yield from _leaves(v, f"{path}\x00{k}")
        return
    kind = type(value)
    if kind is str:
        text = "s" + value
    elif kind is int or kind is float:
        text = "n" + repr(value)
    elif kind is bool or value is None:
        text = "c" + repr(value)
    else:
        text = "j" + json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    yield f"{path}\x01{text}".encode("utf-8", "surrogatepass")


def refuse_sealed(type_: str, data: bytes | None, where: str) -> None:
    """Without a keyring: an encrypted value raises, naming the key it needs."""
    if type_.endswith(ENC_SUFFIX):
        kid = key_id_of(data or b"", where)
        raise DeserializationError(
            f"{where} is encrypted under key {kid!r}; open the saver with "
            "encryption=Keyring(...) (or $PGCHECKPOINT_KEYS) holding that key"
        )


def refuse_sealed_metadata(metadata: Any, where: str) -> None:
    if isinstance(metadata, Mapping) and META_SEALED in metadata:
        raise DeserializationError(
            f"the metadata of {where} is encrypted under key "
            f"{str(metadata.get(META_KID))[:32]!r}; open the saver with "
            "encryption=Keyring(...) (or $PGCHECKPOINT_KEYS) holding that key"
        )


@dataclass(frozen=True, slots=True)
class Encryption:
    """A keyring and the read policy: what the codec seals and opens with.

    ``allow_plaintext`` reads values that are not encrypted (a database that is
    being encrypted); writes are always encrypted.
    """

    keyring: Keyring
    allow_plaintext: bool = False

    # --- values -------------------------------------------------------------
    def seal(self, type_: str, data: bytes, aad_: bytes) -> tuple[str, bytes]:
        return type_ + ENC_SUFFIX, self.keyring.seal(data, aad_)

    def open(
        self, type_: str, data: bytes | None, aad_of: Callable[[str], bytes], where: str
    ) -> tuple[str, bytes | None]:
        """(inner type, plaintext) of a stored value. ``aad_of(inner_type)`` gives
        its associated data. Plaintext passes only with ``allow_plaintext``."""
        if not type_.endswith(ENC_SUFFIX):
            self.plaintext(where)
            return type_, data
        inner = type_[: -len(ENC_SUFFIX)]
        return inner, self.keyring.open(data or b"", aad_of(inner), where)

    def plaintext(self, where: str) -> None:
        if not self.allow_plaintext:
            raise IntegrityError(
                f"{where} is not encrypted, and this saver has a keyring: refusing a "
                "plaintext value (allow_plaintext=True reads a database while "
                "`pgcheckpoint encrypt` runs)"
            )

    # --- metadata -----------------------------------------------------------
    def seal_metadata(
        self, metadata: Mapping[str, Any], thread_id: str, ns: str, checkpoint_id: str,
        parent: str | None, text: str | None = None,
    ) -> dict[str, Any]:
        """``text``: the metadata already as JSON (saves dumping it twice)."""
        ring = self.keyring
        kid = ring.primary
        if text is None:
            text = json.dumps(metadata, ensure_ascii=False, allow_nan=False,
                              separators=(",", ":"))
        # The parent link travels inside the sealed metadata rather than in its
        # associated data: retention sets it to NULL when it deletes the parent
        # (0004_sweep.sql), which must stay readable; any other change raises.
        payload = f'{{"p":{json.dumps(parent)},"m":{text}}}'
        sealed = ring.seal(payload.encode("utf-8"), metadata_aad(thread_id, ns, checkpoint_id))
        stored: dict[str, Any] = {
            META_SEALED: base64.b64encode(sealed).decode("ascii"),
            META_KID: kid,
            META_INDEX: sorted({ring.blind(kid, leaf) for leaf in _leaves(metadata)}),
        }
        run_id = metadata.get(RUN_ID)
        if run_id is not None:
            stored[RUN_ID] = self.run_token(kid, run_id)
        return stored

    def open_metadata(
        self, stored: Any, thread_id: str, ns: str, checkpoint_id: str, parent: str | None,
        where: str,
    ) -> dict[str, Any]:
        if not isinstance(stored, Mapping) or META_SEALED not in stored:
            self.plaintext(f"the metadata of {where}")
            return dict(stored) if isinstance(stored, Mapping) else {}
        try:
            sealed = base64.b64decode(str(stored[META_SEALED]), validate=True)
        except (binascii.Error, ValueError):
            raise IntegrityError(f"the metadata of {where} is not valid base64") from None
        text = self.keyring.open(
            sealed, metadata_aad(thread_id, ns, checkpoint_id), f"the metadata of {where}"
        )
        payload = json.loads(text)
        value = payload.get("m") if isinstance(payload, dict) else None
        if not isinstance(value, dict):
            raise IntegrityError(f"the metadata of {where} is not a JSON object")
        if parent is not None and parent != payload.get("p"):
            raise IntegrityError(
                f"the parent link of {where} was changed after it was written"
            )
        return value

    # --- filters ------------------------------------------------------------
    def filters(self, filter: Mapping[str, Any]) -> list[str]:
        """The metadata filter as one JSON containment per key id (a row matches
        the one of the key that sealed it)."""
        out = []
        for kid in self.keyring.key_ids:
            tokens = sorted({self.keyring.blind(kid, leaf) for leaf in _leaves(filter)})
            out.append(json.dumps({META_INDEX: tokens}, separators=(",", ":")))
        return out

    def primary_filter(self, filter: Mapping[str, Any]) -> str:
        """The filter for rows under the primary key only (``list_threads``)."""
        return self.filters(filter)[self.keyring.key_ids.index(self.keyring.primary)]

    def run_token(self, kid: str, run_id: Any) -> str:
        return self.keyring.blind(kid, b"run_id\x00" + str(run_id).encode("utf-8", "surrogatepass"))

    def run_tokens(self, run_ids: Sequence[str]) -> list[str]:
        """What ``delete_for_runs`` looks for: each run id's token under every key."""
        return [self.run_token(kid, r) for r in run_ids for kid in self.keyring.key_ids]
