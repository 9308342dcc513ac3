"""``CompilerConfig``: the validated bag of the 93 properties.

Assignment checks the value at once (``cfg.aipu_cores_used = 5`` raises with
the allowed range), so a bad value never travels into the pipeline.
Cross-property rules need the whole picture and run in :meth:`validate`, at
load and before every compile. Loading a file reports every problem of the
file at once. The config remembers which properties were set explicitly, so
model-name presets from plugins only fill the others.
"""

from __future__ import annotations

__all__ = ["CompilerConfig", "load_config_file", "read_config_file"]

import difflib
import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import ConfigError, ConfigProblem, InputFileError, clip_text, short_repr
from ..files import read_input_file
from ._checks import cross_check
from ._property import BadValue, Property
from ._table import BY_NAME, PROPERTIES
from ._tables import split_tables


#: the largest config file read: the 93 properties fit in a few KiB, and a YAML file this size already takes
#: seconds to parse (PyYAML is pure Python), so a larger one is refused before parsing.
MAX_CONFIG_BYTES = 1 << 20

_LONGEST_NAME = max(len(p.name) for p in PROPERTIES)


def _unknown(name: Any, source: str | None) -> ConfigProblem:
    if not isinstance(name, str):  # YAML keys may be numbers, booleans, null, dates
        return ConfigProblem(short_repr(name), ..., "property names must be strings", source)
    # no name over 2.4x the longest can reach difflib's 0.6 ratio: skip the search, whose cost grows with it
    close = difflib.get_close_matches(name, list(BY_NAME), n=1, cutoff=0.6) if len(name) <= 3 * _LONGEST_NAME else []
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
        """Load a TOML, YAML or JSON file (chosen by extension); its tables (``[placement]``) are checked and
        left to :func:`load_config_file`."""
        return load_config_file(path)[0]


def load_config_file(path: str | Path) -> tuple[CompilerConfig, dict[str, dict[str, list[str]]]]:
    """A config file's properties as a :class:`CompilerConfig` and its tables beside them (see
    :mod:`axdrive.config._tables`); every problem of both in one :class:`ConfigError`."""
    data = read_config_file(path)
    if not isinstance(data, Mapping):
        return CompilerConfig.from_dict(data, source=str(path)), {}
    props, tables, problems = split_tables(data, str(path))
    try:
        cfg = CompilerConfig.from_dict(props, source=str(path))
    except ConfigError as exc:
        raise ConfigError(exc.problems + problems) from None
    if problems:
        raise ConfigError(problems)
    return cfg, tables


def read_config_file(path: str | Path) -> Any:
    """Parse a config file into a mapping; any problem is one line naming the file.

    Bounded work on any input: a directory, device (``/dev/zero``), FIFO or socket is refused without being
    opened or read, a file over :data:`MAX_CONFIG_BYTES` before it is parsed, and a YAML file with an anchor
    or alias (``&x`` / ``*x``: the "billion laughs" expansion) as soon as the parser meets the first one.
    Nesting deeper than the parser's recursion limit is a syntax error. Each is a :class:`ConfigError` with one
    ``<file>`` problem (exit code 2).
    """
    p = Path(path)
    try:
        raw = read_input_file(p, limit=MAX_CONFIG_BYTES, what="a config file")
    except InputFileError as exc:
        raise ConfigError(ConfigProblem("<file>", ..., exc.reason, str(p))) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(ConfigProblem("<file>", ..., f"cannot be read: not UTF-8 text ({exc.reason} at byte "
                                        f"{exc.start})", str(p))) from None
    suffix = p.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            return tomllib.loads(text)
        if suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.load(text, Loader=_no_alias_loader())  # noqa: S506 - a SafeLoader subclass
            return {} if data is None else data
        if suffix == ".json":
            return json.loads(text)
    except _YamlAnchor as exc:
        raise ConfigError(ConfigProblem("<file>", ..., f"YAML aliases/anchors are not allowed in an axdrive config "
                                        f"(line {exc.line})", str(p))) from None
    except Exception as exc:  # each parser has its own error type (a too deep nesting is a RecursionError)
        msg = clip_text(" ".join(str(exc)[:1200].split()), 300)
        raise ConfigError(ConfigProblem("<file>", p.name, f"is not valid {suffix[1:].upper()}: {msg}", str(p))) from None
    raise ConfigError(ConfigProblem("<file>", p.name, "unknown format; use .toml, .yaml/.yml or .json", str(p)))


class _YamlAnchor(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


_LOADER: Any = None


def _no_alias_loader() -> Any:
    """PyYAML's ``SafeLoader`` that stops at the first anchor or alias (a config never needs one, and nested
    aliases expand exponentially: a 1 KB "billion laughs" file is gigabytes once composed)."""
    global _LOADER
    if _LOADER is None:
        import yaml

        class NoAliasSafeLoader(yaml.SafeLoader):
            def compose_node(self, parent: Any, index: Any) -> Any:
                event = self.peek_event()
                if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                    raise _YamlAnchor(event.start_mark.line + 1)
                return super().compose_node(parent, index)

        _LOADER = NoAliasSafeLoader
    return _LOADER


class _AsTyped(str):
    """A ``--set`` value shown as the user typed it (no quotes) in messages."""

    def __repr__(self) -> str:
        return str(self)


def _show(value: Any) -> Any:
    return getattr(value, "value", value)


for _prop in PROPERTIES:
    setattr(CompilerConfig, _prop.name, _Slot(_prop))
del _prop
