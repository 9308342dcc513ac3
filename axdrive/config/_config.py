"""``CompilerConfig``: the validated bag of the 93 properties.

Assignment checks the value at once (``cfg.aipu_cores_used = 5`` raises with
the allowed range), so a bad value never travels into the pipeline.
Cross-property rules need the whole picture and run in :meth:`validate`, at
load and before every compile. Loading a file reports every problem of the
file at once. The config remembers which properties were set explicitly, so
model-name presets from plugins only fill the others.
"""

from __future__ import annotations

__all__ = ["CompilerConfig"]

import difflib
import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import ConfigError, ConfigProblem
from ._checks import cross_check
from ._property import BadValue, Property
from ._table import BY_NAME, PROPERTIES


def _unknown(name: str, source: str | None) -> ConfigProblem:
    close = difflib.get_close_matches(name, list(BY_NAME), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else "see `axdrive config docs` for the properties"
    return ConfigProblem(name, ..., f"unknown property; {hint}", source)


class _Slot:
    """Descriptor for one property: typed read, checked write."""

    __slots__ = ("prop",)

    def __init__(self, prop: Property) -> None:
        self.prop = prop

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        return obj._values[self.prop.name]

    def __set__(self, obj: "CompilerConfig", value: Any) -> None:
        obj._set(self.prop.name, value)


class CompilerConfig:
    """The compiler configuration (see ``docs/config-reference.md``).

    >>> cfg = CompilerConfig()
    >>> cfg.aipu_cores_used = 4
    >>> cfg.multicore_mode = "batch"
    >>> cfg.multicore_mode == "batch"
    True
    """

    __slots__ = ("_values", "_explicit", "_sources")

    def __init__(self, **values: Any) -> None:
        object.__setattr__(self, "_values", {p.name: p.default for p in PROPERTIES})
        object.__setattr__(self, "_explicit", set())
        object.__setattr__(self, "_sources", {})
        if values:
            self.update(values)

    # -- setting ------------------------------------------------------------
    def _set(self, name: str, value: Any, *, source: str | None = None, explicit: bool = True) -> None:
        prop = BY_NAME.get(name)
        if prop is None:
            raise ConfigError(_unknown(name, source))
        try:
            checked = prop.check(value)
        except BadValue as exc:
            raise ConfigError(ConfigProblem(name, _show(value), str(exc), source)) from None
        self._values[name] = checked
        if explicit:
            self._explicit.add(name)
        if source:
            self._sources[name] = source

    def __setattr__(self, name: str, value: Any) -> None:
        if name in BY_NAME:
            self._set(name, value)
            return
        raise ConfigError(_unknown(name, None))

    def update(self, values: Mapping[str, Any], *, source: str | None = None) -> None:
        """Set several properties; every problem is reported at once, nothing is
        changed if any value is bad."""
        self._apply_all(((name, value, _show(value), Property.check) for name, value in values.items()), source)

    def set_from_strings(self, assignments: Iterable[str], *, source: str = "--set") -> None:
        """Apply ``NAME=VALUE`` strings (the CLI's ``--set``), typed by each property."""
        items: list[Any] = []
        for item in assignments:
            name, sep, text = item.partition("=")
            if not sep or not name.strip():
                items.append(ConfigProblem(item, ..., "expected NAME=VALUE, e.g. aipu_cores_used=4", source))
                continue
            items.append((name.strip(), text, _AsTyped(text.strip()), Property.parse))
        self._apply_all(items, source)

    def _apply_all(self, items: Iterable[Any], source: str | None) -> None:
        """Convert every ``(name, raw, shown, convert)`` first (a :class:`ConfigProblem`
        item is a problem found earlier); apply only if all are good."""
        problems: list[ConfigProblem] = []
        staged: dict[str, Any] = {}
        for item in items:
            if isinstance(item, ConfigProblem):
                problems.append(item)
                continue
            name, raw, shown, convert = item
            prop = BY_NAME.get(name)
            if prop is None:
                problems.append(_unknown(name, source))
                continue
            try:
                staged[name] = convert(prop, raw)
            except BadValue as exc:
                problems.append(ConfigProblem(name, shown, str(exc), source))
        if problems:
            raise ConfigError(problems)
        for name, value in staged.items():
            self._set(name, value, source=source)

    def apply_presets(self, presets: Mapping[str, Any], *, source: str) -> list[str]:
        """Fill properties the user did not set from ``presets``; return the names filled."""
        problems: list[ConfigProblem] = []
        applied: list[str] = []
        for name, value in presets.items():
            prop = BY_NAME.get(name)
            if prop is None:
                problems.append(_unknown(name, source))
                continue
            if name in self._explicit:
                continue
            try:
                self._values[name] = prop.check(value)
            except BadValue as exc:
                problems.append(ConfigProblem(name, _show(value), str(exc), source))
                continue
            self._sources[name] = source
            applied.append(name)
        if problems:
            raise ConfigError(problems)
        return applied

    # -- reading ------------------------------------------------------------
    @property
    def explicit(self) -> frozenset[str]:
        """Names of the properties set explicitly (API, file, ``--set``)."""
        return frozenset(self._explicit)

    def source_of(self, name: str) -> str | None:
        """Where a property's value came from (a file, ``--set``, a preset), if not the API or default."""
        return self._sources.get(name)

    def is_default(self, name: str) -> bool:
        return self._values[name] == BY_NAME[name].default

    def to_dict(self, *, include_location: bool = True) -> dict[str, Any]:
        """Every property as plain JSON data, in table order.

        ``include_location=False`` leaves out machine-local paths (``output_dir``
        and friends), giving the identity of *what* is compiled.
        """
        return {p.name: p.plain(self._values[p.name]) for p in PROPERTIES if include_location or not p.location}

    def config_sha256(self) -> str:
        """Hash of the config's identity (location properties excluded)."""
        data = json.dumps(self.to_dict(include_location=False), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(data.encode()).hexdigest()

    def copy(self) -> "CompilerConfig":
        new = CompilerConfig()
        new._values.update(self._values)
        new._explicit.update(self._explicit)
        new._sources.update(self._sources)
        return new

    def validate(self, source: str | None = None) -> "CompilerConfig":
        """Run the cross-property rules; raise one :class:`ConfigError` with all problems."""
        problems = cross_check(self, source)
        if problems:
            raise ConfigError(problems)
        return self

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CompilerConfig) and self._values == other._values

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        changed = {n: BY_NAME[n].plain(v) for n, v in self._values.items() if v != BY_NAME[n].default}
        inner = ", ".join(f"{k}={v!r}" for k, v in changed.items())
        return f"CompilerConfig({inner})"

    # -- loading ------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> "CompilerConfig":
        """Build and validate from a mapping; every problem (unknown keys, bad
        values, cross-property rules) is reported in one :class:`ConfigError`."""
        if not isinstance(data, Mapping):
            raise ConfigError(ConfigProblem("<file>", type(data).__name__, "must be a mapping of property = value", source))
        cfg = cls()
        try:
            cfg.update(data, source=source)
        except ConfigError as exc:
            # report the cross-property problems of the good values as well
            good = {k: v for k, v in data.items() if k in BY_NAME and k not in {p.prop for p in exc.problems}}
            partial = cls()
            partial._values.update({k: BY_NAME[k].check(v) for k, v in good.items()})
            raise ConfigError(exc.problems + cross_check(partial, source)) from None
        cfg.validate(source)
        return cfg

    @classmethod
    def from_file(cls, path: str | Path) -> "CompilerConfig":
        """Load a TOML, YAML or JSON file (chosen by extension)."""
        return cls.from_dict(read_config_file(path), source=str(path))


def read_config_file(path: str | Path) -> Any:
    """Parse a config file into a mapping; a syntax error is one line naming file and position."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(ConfigProblem("<file>", str(p), "no such file", str(p))) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(ConfigProblem("<file>", str(p), f"cannot be read: {exc}", str(p))) from None
    suffix = p.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            return tomllib.loads(text)
        if suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
            return {} if data is None else data
        if suffix == ".json":
            return json.loads(text)
    except Exception as exc:  # each parser has its own error type
        msg = " ".join(str(exc).split())
        raise ConfigError(ConfigProblem("<file>", p.name, f"is not valid {suffix[1:].upper()}: {msg}", str(p))) from None
    raise ConfigError(ConfigProblem("<file>", p.name, "unknown format; use .toml, .yaml/.yml or .json", str(p)))


class _AsTyped(str):
    """A ``--set`` value shown as the user typed it (no quotes) in messages."""

    def __repr__(self) -> str:
        return str(self)


def _show(value: Any) -> Any:
    return getattr(value, "value", value)


for _prop in PROPERTIES:
    setattr(CompilerConfig, _prop.name, _Slot(_prop))
del _prop
