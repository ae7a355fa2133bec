"""Which stored types may be rebuilt when a checkpoint is read, and the serializer that
enforces it on both sides.

LangGraph's msgpack format names a type by ``(module, class name)`` and rebuilds it
by importing the module and calling the class. A row that was tampered with can
therefore name any callable (``os.system``, ``subprocess.Popen``, ``builtins.eval``).
LangGraph's own default allows every name (with a warning); its strict mode
(``LANGGRAPH_STRICT_MSGPACK=true``) allows only a fixed list plus the types that a
compiled graph finds in its state schema, and so refuses, on read, values the graph
itself wrote (a pydantic model given to an ``@entrypoint``, an ``AgentAction`` in a
``TypedDict`` union, a dataclass in an ``interrupt()`` payload).

The rule here (:class:`TypePolicy`) allows on read exactly what can be written
safely, and :class:`PlainDataSerializer` refuses on write whatever the rule would
refuse on read, so nothing written can fail to be read back:

1. LangGraph's fixed list (``SAFE_MSGPACK_TYPES``: datetimes, UUID, Decimal,
   sets, paths, LangChain messages and documents, ``Send``, ``Interrupt``,
   ``Command``...) and the explicit allowlist (``allow=``, ``with_allowlist``,
   ``--allow``, ``PGCHECKPOINT_ALLOW``) are allowed.
2. Any other name is allowed only if its module is already imported by this
   process (``sys.modules``; a row never causes an import) as a plain module
   object, and the name, looked up in that module's own namespace (never through a
   module ``__getattr__``), is a class defined there (its ``__module__`` and
   ``__name__`` match the row) of a plain data kind: a pydantic model (v2 or v1),
   a dataclass, an ``Enum`` or a ``NamedTuple``; and not a LangChain ``Runnable``
   (models, tools and chains are pydantic models too, but behaviour, not data)
   nor an exception class. Functions, builtins, modules and every other class are
   refused.
3. A name that is not in the module's namespace at all (a class defined inside a
   function) is allowed when the module has no ``__getattr__``: LangGraph cannot
   find it, constructs nothing and returns the stored fields as a dict, as it does
   with the official saver.
4. Method calls (``datetime.fromisoformat``) are limited to LangGraph's
   ``SAFE_MSGPACK_METHODS``.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import sys
import types
from collections.abc import Iterable, Iterator
from typing import Any, Literal

import ormsgpack
from langgraph.checkpoint.serde import _msgpack as lg_msgpack
from langgraph.checkpoint.serde import jsonplus

from .errors import ConfigurationError, UnreadableTypeError

__all__ = [
    "AllowEntry",
    "PlainDataSerializer",
    "TypePolicy",
    "parse_allow",
]

AllowEntry = str | tuple[str, ...] | type
"""One allowlist entry: ``"module:Class"``, ``("module", "Class")`` or the class."""

# The msgpack extension codes that name a type to construct (jsonplus.py).
_CONSTRUCTORS = frozenset(
    {
        jsonplus.EXT_CONSTRUCTOR_SINGLE_ARG,
        jsonplus.EXT_CONSTRUCTOR_POS_ARGS,
        jsonplus.EXT_CONSTRUCTOR_KW_ARGS,
        jsonplus.EXT_PYDANTIC_V1,
        jsonplus.EXT_PYDANTIC_V2,
    }
)
# msgpack's extension markers are ext 8/16/32 (c7-c9) and fixext 1-16 (d4-d8). Bytes
# without any of them hold no extension, so the write check can skip decoding them.


def _may_hold_extension(data: bytes) -> bool:
    """Whether ``data`` holds one of msgpack's extension markers at all. Eight ``in``
    tests with int needles, each one memchr pass: 0.3 us for all eight on 2 KB
    (measured 2026-12-01), where a regex character class took 4 us on 500 bytes and
    ``bytes.translate`` 2.5 ns a byte."""
    return not data.isascii() and (
        0xC7 in data or 0xC8 in data or 0xD4 in data or 0xD5 in data
        or 0xD6 in data or 0xD7 in data or 0xD8 in data or 0xC9 in data
    )


_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_CLASS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# pydantic's secret types are written by constructor, like a data class.
_BUILTIN_EXTRA = frozenset({("pydantic.types", "SecretStr"), ("pydantic.types", "SecretBytes")})


def parse_allow(entries: Iterable[AllowEntry]) -> frozenset[tuple[str, str]]:
    """Allowlist entries as ``(module, name)`` pairs; a malformed one raises
    :class:`~pgcheckpoint.errors.ConfigurationError`."""
    if isinstance(entries, str | bytes):
        raise ConfigurationError(
            "allow must be a list of entries such as ['myapp.models:Order'], not a string"
        )
    out: set[tuple[str, str]] = set()
    for entry in entries:
        if isinstance(entry, type):
            module, name = entry.__module__, entry.__name__
        elif isinstance(entry, str):
            module, sep, name = entry.partition(":")
            if not sep:
                module, _, name = entry.rpartition(".")
        elif isinstance(entry, tuple) and len(entry) == 2:
            module, name = (str(x) for x in entry)
        else:
            raise ConfigurationError(
                f"allowlist entry {entry!r} must be 'module:Class', ('module', 'Class') "
                "or a class"
            )
        if not _MODULE_NAME.fullmatch(module) or not _CLASS_NAME.fullmatch(name):
            raise ConfigurationError(
                f"allowlist entry {entry!r} is not 'module:Class' (for example "
                "'myapp.models:Order')"
            )
        out.add((module, name))
    return frozenset(out)


def _loaded_class(module: str, name: str) -> type | Literal[False] | None:
    """The class ``module.name`` as already loaded; ``None`` if the module is loaded
    but has no such name and no ``__getattr__`` (so nothing can be found or built);
    ``False`` if the name cannot be looked at without running code."""
    mod = sys.modules.get(module)
    # Exactly a plain module: subclasses (lazy loaders) run code on attribute access.
    if type(mod) is not types.ModuleType or not _CLASS_NAME.fullmatch(name):
        return False
    if name.startswith("__") and name.endswith("__"):
        return False
    namespace = mod.__dict__
    if name not in namespace:
        return False if "__getattr__" in namespace else None
    found = namespace[name]
    if not isinstance(found, type):
        return False
    if found.__module__ != module or found.__name__ != name:
        return False
    return found


def _base(module: str, name: str) -> type | None:
    """A base class from a module, only if that module is already imported."""
    mod = sys.modules.get(module)
    found = getattr(mod, name, None) if type(mod) is types.ModuleType else None
    return found if isinstance(found, type) else None


def is_plain_data_class(cls: type) -> bool:
    """A pydantic model, dataclass, Enum or NamedTuple that is not a Runnable or an
    exception."""
    if issubclass(cls, BaseException):
        return False
    runnable = _base("langchain_core.runnables.base", "Runnable")
    if runnable is not None and issubclass(cls, runnable):
        return False
    if issubclass(cls, enum.Enum) or dataclasses.is_dataclass(cls):
        return True
    if issubclass(cls, tuple) and isinstance(getattr(cls, "_fields", None), tuple):
        return True
    for module in ("pydantic.main", "pydantic.v1.main"):
        model = _base(module, "BaseModel")
        if model is not None and issubclass(cls, model):
            return True
    return False


class TypePolicy:
    """The read rule of this module's docstring, as the ``allowed_msgpack_modules``
    container of LangGraph's msgpack hook (``(module, name) in policy``).

    Only classes found allowed are cached: a module imported later can turn a
    refusal into an allowance, never the reverse. A name missing from its module is
    decided again each time (the module could define it later).
    """

    __slots__ = ("_allowed", "explicit")

    def __init__(self, explicit: Iterable[AllowEntry] = ()) -> None:
        self.explicit = parse_allow(explicit)
        self._allowed: set[tuple[str, ...]] = set()

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or len(key) != 2:
            return False
        if key in self._allowed:
            return True
        module, name = key
        if not isinstance(module, str) or not isinstance(name, str):
            return False
        if (module, name) in lg_msgpack.SAFE_MSGPACK_TYPES or (module, name) in self.explicit:
            self._allowed.add(key)
            return True
        if (module, name) in _BUILTIN_EXTRA:
            allowed = module in sys.modules
        else:
            found = _loaded_class(module, name)
            if found is None:
                return True  # nothing to construct: LangGraph returns the stored fields
            allowed = found is not False and is_plain_data_class(found)
        if allowed:
            self._allowed.add(key)
        return allowed

    # The explicit entries, for code that iterates an allowlist.
    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.explicit)

    def __len__(self) -> int:
        return len(self.explicit)

    def __bool__(self) -> bool:
        return True

    def refused_in(self, data: bytes) -> list[str]:
        """The type (and method) names in msgpack ``data`` that reading would refuse."""
        if not _may_hold_extension(data):
            return []
        refused: list[str] = []
        allowed = self._allowed  # what the policy already allowed: a set lookup

        def hook(code: int, payload: bytes) -> None:
            inner = ormsgpack.unpackb(payload, ext_hook=hook, option=ormsgpack.OPT_NON_STR_KEYS)
            if code in _CONSTRUCTORS:
                key = (str(inner[0]), str(inner[1]))
                if key not in allowed and key not in self:
                    refused.append(f"{key[0]}.{key[1]}")
            elif code == jsonplus.EXT_METHOD_SINGLE_ARG:
                method = (str(inner[0]), str(inner[1]), str(inner[3]))
                if method not in lg_msgpack.SAFE_MSGPACK_METHODS:
                    refused.append(".".join(method) + "()")
            return None

        ormsgpack.unpackb(data, ext_hook=hook, option=ormsgpack.OPT_NON_STR_KEYS)
        return sorted(set(refused))


class PlainDataSerializer(jsonplus.JsonPlusSerializer):
    """LangGraph's ``JsonPlusSerializer`` (same bytes, so rows stay readable by the
    official saver) with :class:`TypePolicy` on read, and on write a refusal
    (:class:`~pgcheckpoint.errors.UnreadableTypeError`) of any value the policy
    would refuse on read."""

    def __init__(self, *, allow: Iterable[AllowEntry] = ()) -> None:
        super().__init__(allowed_msgpack_modules=None)
        self.policy = TypePolicy(allow)
        self._allowed_msgpack_modules = self.policy  # type: ignore[assignment]
        self._unpack_ext_hook = jsonplus._create_msgpack_ext_hook(self.policy)  # type: ignore[arg-type]

    def with_msgpack_allowlist(
        self, extra_allowlist: Iterable[tuple[str, ...] | type]
    ) -> PlainDataSerializer:
        """A serializer whose explicit allowlist also holds ``extra_allowlist``
        (LangGraph calls this when it compiles a graph in strict mode)."""
        extra: set[tuple[str, str]] = set()
        for entry in extra_allowlist:
            try:
                extra |= parse_allow([entry])
            except ConfigurationError:
                continue  # a schema type LangGraph found that no row can name
        if extra <= self.policy.explicit:
            return self
        return PlainDataSerializer(allow=self.policy.explicit | extra)

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        # The check decodes the packed bytes again (TypePolicy.refused_in). Checking
        # in the packer's ``default`` hook instead was tried and measured slower
        # (2026-12-01, a prototype not kept; the bench's message lists, 10th
        # percentile of 101 interleaved rounds): over packing alone (11.5 us for 3
        # messages, 426 us for 119) the hook added 6.8 and 266 us, decoding again
        # 7.4 and 217 us. The hook runs Python for every object (LangGraph's hook,
        # re-packing the extension to read its code, a marker scan for nested
        # extensions: ~2.2 us each) where ormsgpack decodes a message in ~1.3 us
        # of C; and an ``ormsgpack.Ext`` placed in the value itself bypasses the
        # hook, so a walk of the value was needed as well.
        type_, data = super().dumps_typed(obj)
        if type_ == "msgpack":
            refused = self.policy.refused_in(data)
            if refused:
                raise UnreadableTypeError(refused, "value")
        return type_, data
