"""One configuration property: its type, default, allowed values and meaning.

A :class:`Property` knows how to *check* a value (used at attribute
assignment and at load), how to *parse* one from a ``--set`` string, how to
describe what it allows (error messages, the Markdown reference) and how to
write itself as JSON Schema. Everything user-facing about the config is
derived from these objects, so there is exactly one place to change a
property.
"""

from __future__ import annotations

__all__ = ["Property", "Kind", "BadValue"]

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from ..errors import did_you_mean

Kind = Literal["bool", "int", "float", "str", "path", "enum", "enum_list"]

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_NULL = {"null", "none", ""}


class BadValue(ValueError):
    """A value a property does not accept; the message says what is allowed."""


@dataclass(frozen=True)
class Property:
    """A property of :class:`~axdrive.config.CompilerConfig`.

    ``minimum``/``maximum`` are inclusive bounds, ``exclusive_minimum`` an
    exclusive one; ``choices`` restricts a string; ``enum`` types an enum or
    enum-list property; ``nullable`` admits ``None`` (shown as ``null``).
    ``location`` marks properties that say *where* things go on this machine
    rather than *what* is compiled: they are left out of the config hash and the
    manifest, so the same compile into another directory is byte-identical.
    """

    name: str
    kind: Kind
    default: Any
    section: str
    doc: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None
    choices: tuple[str, ...] = ()
    enum: type[StrEnum] | None = None
    nullable: bool = False
    unit: str = ""
    location: bool = False

    # -- describing ---------------------------------------------------------
    @property
    def type_name(self) -> str:
        base = {
            "bool": "boolean",
            "int": "integer",
            "float": "float",
            "str": "string",
            "path": "path",
            "enum": self.enum.__name__ if self.enum else "enum",
            "enum_list": f"list of {self.enum.__name__ if self.enum else 'enum'}",
        }[self.kind]
        return f"{base} or null" if self.nullable else base

    def allowed(self) -> str:
        """What the property accepts, in words (error messages and docs)."""
        if self.kind == "bool":
            text = "true or false"
        elif self.kind in ("int", "float"):
            what = "an integer" if self.kind == "int" else "a number"
            lo = self.minimum if self.minimum is not None else self.exclusive_minimum
            if lo is not None and self.maximum is not None:
                left = "(" if self.exclusive_minimum is not None else "["
                text = f"{what} in {left}{_num(lo)}, {_num(self.maximum)}]"
            elif self.minimum is not None:
                text = f"{what} >= {_num(self.minimum)}"
            elif self.exclusive_minimum is not None:
                text = f"{what} > {_num(self.exclusive_minimum)}"
            elif self.maximum is not None:
                text = f"{what} <= {_num(self.maximum)}"
            else:
                text = what
            if self.kind == "float":
                text += " (finite)"
            if self.unit:
                text += f", in {self.unit}"
        elif self.kind in ("enum", "enum_list"):
            values = ", ".join(repr(str(v.value)) for v in self.enum) if self.enum else ""
            text = f"one of {values}" if self.kind == "enum" else f"a list of {values}"
        elif self.choices:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.kind == "path":
            text = "a path"
        else:
            text = "a string"
        return f"{text}, or null" if self.nullable else text

    # -- checking -----------------------------------------------------------
    def check(self, value: Any) -> Any:
        """Return ``value`` normalised (enums as enum members, lists as tuples)
        or raise :class:`BadValue` saying what is allowed."""
        if value is None:
            if self.nullable:
                return None
            raise BadValue(f"must be {self.allowed()}")
        kind = self.kind
        if kind == "bool":
            if isinstance(value, bool):
                return value
            raise BadValue(f"must be {self.allowed()}")
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer() and not isinstance(value, bool):
                    value = int(value)
                else:
                    raise BadValue(f"must be {self.allowed()}")
            return self._bounded(int(value))
        if kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise BadValue(f"must be {self.allowed()}")
            value = float(value)
            if not math.isfinite(value):
                raise BadValue(f"must be {self.allowed()}")
            return self._bounded(value)
        if kind in ("str", "path"):
            if not isinstance(value, str):
                if kind == "path" and hasattr(value, "__fspath__"):
                    value = str(value)
                else:
                    raise BadValue(f"must be {self.allowed()}")
            if self.choices and value not in self.choices:
                raise BadValue(f"must be {self.allowed()}{_suggest(value, self.choices)}")
            return value
        if kind == "enum":
            return self._member(value)
        if kind == "enum_list":
            if isinstance(value, str) or not isinstance(value, (list, tuple)):
                raise BadValue(f"must be {self.allowed()}")
            members = []
            for item in value:
                m = self._member(item)
                if m not in members:  # a level listed twice means it once
                    members.append(m)
            return tuple(members)
        raise AssertionError(kind)  # pragma: no cover

    def _member(self, value: Any) -> Any:
        assert self.enum is not None
        if isinstance(value, self.enum):
            return value
        if isinstance(value, str):
            try:
                return self.enum(value)
            except ValueError:
                pass
            choices = [str(v.value) for v in self.enum]
            raise BadValue(f"must be {self.allowed()}{_suggest(value, choices)}")
        raise BadValue(f"must be {self.allowed()}")

    def _bounded(self, value: float) -> Any:
        if self.minimum is not None and value < self.minimum:
            raise BadValue(f"must be {self.allowed()}")
        if self.exclusive_minimum is not None and value <= self.exclusive_minimum:
            raise BadValue(f"must be {self.allowed()}")
        if self.maximum is not None and value > self.maximum:
            raise BadValue(f"must be {self.allowed()}")
        return value

    # -- parsing ``--set`` ---------------------------------------------------
    def parse(self, text: str) -> Any:
        """Parse the ``VALUE`` of ``--set NAME=VALUE`` into a checked value."""
        raw = text.strip()
        if self.nullable and raw.lower() in _NULL:
            return None
        kind = self.kind
        if kind == "bool":
            low = raw.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise BadValue(f"must be {self.allowed()}")
        if kind == "int":
            try:
                value: Any = int(raw.replace("_", ""), 0)
            except ValueError:
                raise BadValue(f"must be {self.allowed()}") from None
            return self.check(value)
        if kind == "float":
            try:
                value = float(raw.replace("_", ""))
            except ValueError:
                raise BadValue(f"must be {self.allowed()}") from None
            return self.check(value)
        if kind == "enum_list":
            items = [s.strip() for s in raw.strip("[]").split(",") if s.strip()]
            return self.check(items)
        return self.check(raw)

    # -- rendering -----------------------------------------------------------
    def plain(self, value: Any) -> Any:
        """``value`` as plain JSON data (enum members as strings, tuples as lists)."""
        if value is None:
            return None
        if self.kind == "enum":
            return str(value.value)
        if self.kind == "enum_list":
            return [str(v.value) for v in value]
        return value

    def json_schema(self) -> dict[str, Any]:
        kind = self.kind
        schema: dict[str, Any]
        if kind == "bool":
            schema = {"type": "boolean"}
        elif kind == "int":
            schema = {"type": "integer"}
        elif kind == "float":
            schema = {"type": "number"}
        elif kind == "enum":
            assert self.enum is not None
            schema = {"enum": [str(v.value) for v in self.enum]}
        elif kind == "enum_list":
            assert self.enum is not None
            schema = {"type": "array", "items": {"enum": [str(v.value) for v in self.enum]}, "uniqueItems": True}
        else:
            schema = {"type": "string"}
            if self.choices:
                schema["enum"] = list(self.choices)
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.exclusive_minimum is not None:
            schema["exclusiveMinimum"] = self.exclusive_minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        if self.nullable:
            schema = {"anyOf": [schema, {"type": "null"}]}
        schema["default"] = self.plain(self.default)
        schema["description"] = self.doc
        return schema


def _num(x: float) -> str:
    if float(x).is_integer():
        n = int(x)
        return f"{n:_}".replace("_", ",") if abs(n) >= 10_000 else str(n)
    return repr(float(x))


def _suggest(value: str, choices: Any) -> str:
    return did_you_mean(value, choices)
