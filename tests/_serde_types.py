"""Types that graphs in the allowlist tests put in their state (importable by name, so
the CLI tests can ``--allow`` them in a process of their own)."""

from __future__ import annotations

import dataclasses
import enum
from datetime import datetime
from typing import NamedTuple

from pydantic import BaseModel


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Question:
    """A dataclass given to ``interrupt()``."""

    text: str
    choices: list[str]


class Order(BaseModel):
    """A pydantic model in state, holding other data classes."""

    id: int
    color: Color
    question: Question | None = None


class Point(NamedTuple):
    x: int
    y: int


class Tags(set[str]):
    """A set subclass: written by name, but not a data class, so refused by default."""


class Stamp(datetime):
    """A datetime subclass: rebuilt by a method call LangGraph does not allow."""
