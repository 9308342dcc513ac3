"""Typed per-compile storage for data that passes hand to each other.

Modelled on pytest's ``Stash``: a plugin creates a module-level
``StashKey[T]`` and only code holding that key can read or write the value,
so plugins cannot collide on string names and type checkers see ``T``.
A pass that stores something under a key should declare a matching
``provides`` entry so consumers can ``require`` it.
"""

from __future__ import annotations

__all__ = ["Stash", "StashKey"]

from typing import Any, Generic, TypeVar, cast, overload

T = TypeVar("T")
D = TypeVar("D")


class StashKey(Generic[T]):
    """A key into a :class:`Stash`. ``name`` is for error messages and dumps only."""

    __slots__ = ("name",)

    def __init__(self, name: str = "") -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"StashKey({self.name!r})"


class Stash:
    """A mapping from :class:`StashKey` to values of the key's type."""

    __slots__ = ("_data",)

    def __init__(self) -> None:
        self._data: dict[StashKey[Any], Any] = {}

    def __setitem__(self, key: StashKey[T], value: T) -> None:
        self._data[key] = value

    def __getitem__(self, key: StashKey[T]) -> T:
        try:
            return cast(T, self._data[key])
        except KeyError:
            raise KeyError(f"nothing stored under {key!r}; which pass provides it?") from None

    @overload
    def get(self, key: StashKey[T]) -> T | None: ...
    @overload
    def get(self, key: StashKey[T], default: D) -> T | D: ...
    def get(self, key: StashKey[T], default: Any = None) -> Any:
        return self._data.get(key, default)

    def setdefault(self, key: StashKey[T], default: T) -> T:
        return cast(T, self._data.setdefault(key, default))

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __delitem__(self, key: StashKey[T]) -> None:
        del self._data[key]

    def __len__(self) -> int:
        return len(self._data)

    def copy(self) -> "Stash":
        """A shallow copy: the same values under the same keys (each device segment of a partitioned
        model starts from the stash as the partitioning pass left it)."""
        new = Stash()
        new._data = dict(self._data)
        return new
