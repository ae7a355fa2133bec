"""Realistic LangGraph checkpoints for the benchmark, built with LangGraph's own machinery.

A checkpoint here is what a running graph would hand to ``put``: the previous
checkpoint advanced with ``create_checkpoint``, a ``messages`` channel holding a list
of langchain-core messages that grows (or slides) step by step, a ``branch:to:agent``
trigger channel, ``versions_seen`` for the node that ran, and ``new_versions`` taken
from the saver's own ``get_next_version`` (the two savers format versions differently).

Everything here is pure: no connection, no saver instance, only a version function.
Text is pseudo-English from a seeded generator, so it compresses about as well as real
chat text does (random bytes would flatter no one; a repeated letter would flatter zstd).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    create_checkpoint,
    empty_checkpoint,
)
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

NextVersion = Callable[[Any, None], Any]
"""The shape of ``BaseCheckpointSaver.get_next_version`` (current version, channel)."""

SERDE = JsonPlusSerializer()

_TEXT = (
    "the agent called a tool to look up the order status and then summarised what it found "
    "for the customer who asked whether shipping to berlin would take longer than usual this "
    "week because of the holiday schedule and the warehouse said parcels leave every morning "
    "except sunday so the answer depends on when payment clears please confirm your address "
    "postcode invoice number refund policy returns window tracking link delivered pending "
    "approved rejected retry later thanks again"
)
_WORDS = tuple(_TEXT.split())


def text(rng: random.Random, n_bytes: int) -> str:
    """Pseudo-English of exactly ``n_bytes`` ASCII characters."""
    parts: list[str] = []
    size = 0
    while size < n_bytes:
        word = rng.choice(_WORDS)
        parts.append(word)
        size += len(word) + 1
    return " ".join(parts)[:n_bytes]


def make_message(
    rng: random.Random, index: int, *, chat_bytes: int, tool_bytes: int
) -> BaseMessage:
    """The ``index``-th message of an agent conversation: user, assistant+tool call, tool, ...

    The cycle is human -> AI (with a tool call) -> tool result -> AI answer, which is the
    shape of a ReAct agent's history. ``tool_bytes`` sets the tool output size, the knob
    that makes big states (documents, search results) as they appear in practice.
    """
    msg_id = f"msg-{index:06d}"
    kind = index % 4
    if kind == 0:
        return HumanMessage(content=text(rng, chat_bytes), id=msg_id)
    if kind == 1:
        call_id = f"call-{index:06d}"
        return AIMessage(
            content="",
            id=msg_id,
            tool_calls=[{"name": "lookup", "args": {"query": text(rng, 40)}, "id": call_id}],
        )
    if kind == 2:
        return ToolMessage(
            content=text(rng, tool_bytes), tool_call_id=f"call-{index - 1:06d}", id=msg_id
        )
    return AIMessage(content=text(rng, chat_bytes), id=msg_id)


def serialized_size(value: Any) -> int:
    """Bytes LangGraph's default serializer produces for ``value``."""
    return len(SERDE.dumps_typed(value)[1])


@dataclass(frozen=True)
class StateProfile:
    """How a thread's messages look and grow.

    ``target_bytes`` seeds the history until its serialized size reaches that figure;
    ``window`` (if set) keeps only the last N messages, so a long thread keeps a small
    state, as a trimming agent would; ``steady`` keeps the seed's message count, so a
    workload taking hundreds of samples measures the same size on the first and last.
    """

    name: str
    target_bytes: int
    chat_bytes: int = 200
    tool_bytes: int = 600
    window: int | None = None
    steady: bool = False


TINY = StateProfile("tiny", target_bytes=0, chat_bytes=80, tool_bytes=80, window=1)
SMALL = StateProfile("1KB", target_bytes=1_000, chat_bytes=200, tool_bytes=300, window=3)
PUT_PROFILES: dict[str, StateProfile] = {
    "1KB": StateProfile("1KB", 1_000, chat_bytes=150, tool_bytes=300, steady=True),
    "100KB": StateProfile("100KB", 100_000, chat_bytes=300, tool_bytes=2_000, steady=True),
    "5MB": StateProfile("5MB", 5_000_000, chat_bytes=400, tool_bytes=16_000, steady=True),
}


@lru_cache(maxsize=8)
def seed_messages(profile: StateProfile, seed: int = 7) -> tuple[BaseMessage, ...]:
    """The starting history for ``profile`` (cached: the 5 MB one takes a moment)."""
    rng = random.Random(seed)
    messages: list[BaseMessage] = []
    size = 0
    while True:
        message = make_message(
            rng, len(messages), chat_bytes=profile.chat_bytes, tool_bytes=profile.tool_bytes
        )
        messages.append(message)
        # The sum of per-message sizes tracks the list's size within a few bytes per
        # message, and stays linear where re-serializing the list would be quadratic.
        size += serialized_size(message)
        if size >= profile.target_bytes:
            break
        if profile.window is not None and len(messages) >= profile.window:
            break
    return tuple(messages)


def payload_bytes(profile: StateProfile) -> bytes:
    """Serialized bytes of the profile's seed history: what the floor INSERT writes."""
    return SERDE.dumps_typed(list(seed_messages(profile)))[1]


@dataclass
class Step:
    """One ``put`` call's arguments, plus the config that addresses the stored checkpoint."""

    config: RunnableConfig
    checkpoint: Checkpoint
    metadata: CheckpointMetadata
    new_versions: ChannelVersions
    stored: RunnableConfig


@dataclass
class ThreadBuilder:
    """Produces the successive checkpoints of one thread, as a graph loop would.

    Each ``next_step`` appends one message (new list object, as ``add_messages`` returns),
    bumps the ``messages`` and ``branch:to:agent`` versions with the saver's version
    function, and links the checkpoint to its parent.
    """

    thread_id: str
    next_version: NextVersion
    profile: StateProfile = SMALL
    checkpoint_ns: str = ""
    seed: int = 7
    _rng: random.Random = field(init=False)
    _messages: list[BaseMessage] = field(init=False)
    _checkpoint: Checkpoint = field(init=False)
    _parent_id: str | None = field(init=False, default=None)
    _step: int = field(init=False, default=-1)
    _keep: int | None = field(init=False, default=None)
    _made: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._rng = random.Random(f"{self.seed}:{self.thread_id}")
        self._messages = list(seed_messages(self.profile, self.seed))
        self._checkpoint = empty_checkpoint()
        self._made = len(self._messages)
        self._keep = self.profile.window
        if self.profile.steady:
            self._keep = len(self._messages)

    @property
    def messages(self) -> list[BaseMessage]:
        return self._messages

    def next_step(self) -> Step:
        profile = self.profile
        # Number messages by how many the thread ever had, not by the (windowed) list
        # length: ids stay unique and the human/AI/tool cycle keeps turning.
        message = make_message(
            self._rng,
            self._made,
            chat_bytes=profile.chat_bytes,
            tool_bytes=profile.tool_bytes,
        )
        self._made += 1
        messages = [*self._messages, message]
        if self._keep is not None:
            messages = messages[-self._keep :]
        self._messages = messages
        self._step += 1
        step = self._step

        previous = self._checkpoint
        versions = dict(previous["channel_versions"])
        new_versions: ChannelVersions = {}
        for channel in ("messages", "branch:to:agent"):
            version = self.next_version(versions.get(channel), None)
            versions[channel] = version
            new_versions[channel] = version
        checkpoint = create_checkpoint(previous, None, step)
        checkpoint["channel_values"] = {"messages": messages, "branch:to:agent": None}
        checkpoint["channel_versions"] = versions
        checkpoint["versions_seen"] = {
            **previous["versions_seen"],
            "agent": {"branch:to:agent": versions["branch:to:agent"]},
        }
        configurable: dict[str, Any] = {
            "thread_id": self.thread_id,
            "checkpoint_ns": self.checkpoint_ns,
        }
        if self._parent_id is not None:
            configurable["checkpoint_id"] = self._parent_id
        metadata: CheckpointMetadata = {"source": "loop", "step": step, "parents": {}}
        stored: RunnableConfig = {
            "configurable": {
                "thread_id": self.thread_id,
                "checkpoint_ns": self.checkpoint_ns,
                "checkpoint_id": checkpoint["id"],
            }
        }
        self._checkpoint = checkpoint
        self._parent_id = checkpoint["id"]
        return Step({"configurable": configurable}, checkpoint, metadata, new_versions, stored)

    def steps(self, n: int) -> list[Step]:
        return [self.next_step() for _ in range(n)]


def thread_config(thread_id: str, checkpoint_id: str | None = None) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def three_writes(index: int) -> Sequence[tuple[str, Any]]:
    """The three writes a tool-calling node typically leaves: messages, a trigger, a counter."""
    rng = random.Random(index)
    return (
        ("messages", [AIMessage(content=text(rng, 200), id=f"w-{index}")]),
        ("branch:to:tools", None),
        ("remaining_steps", 24),
    )
