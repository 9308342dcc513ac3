"""Config-file tables beside the 93 properties: options of a compile that are not compiler properties.

Why apart: the 93 properties are the seed contract (``../shared/spec``); what a
user says about *their model* (keep these nodes on the host, the device part
ends at these tensors) names nodes and tensors of one ONNX file and has no
place among them; nor has how *their* photos become model inputs. A config
file may carry such tables next to the properties; the command line has the
same options as flags::

    [placement]                 # TOML; the same keys in YAML or JSON
    host_nodes = ["/model.22/dfl/Softmax"]     # --host-node NAME
    device_inputs = []                         # --device-input TENSOR
    device_outputs = ["/model.22/Concat_output_0"]  # --device-output TENSOR

    [preprocessing]             # --preprocess KEY=VALUE (see axdrive.calibration.ImagePreprocessing)
    resize = "letterbox"
    pad_value = 114
    channel_order = "BGR"
    scale = 1.0
    # or: transform = "prep.py:to_input"      # --transform FILE.py:FUNCTION

    [options]                   # --option NAMESPACE.NAME=VALUE: what installed plugins declare
    "example.top" = 5
"""

from __future__ import annotations

__all__ = ["TABLES", "PLACEMENT_KEYS", "OPTIONS_TABLE", "split_tables"]

from typing import Any, Callable, Mapping

from ..calibration import PREPROCESSING_KEYS  # light: the calibration module imports numpy and PIL lazily
from ..errors import ConfigProblem, did_you_mean, short_repr

#: ``host_nodes``: ONNX node names to run on the host; ``device_inputs`` / ``device_outputs``: tensors where the
#: accelerator's part begins / ends (what computes an input, and what reads an output, runs on the host).
PLACEMENT_KEYS = ("host_nodes", "device_inputs", "device_outputs")
TABLES: dict[str, tuple[str, ...]] = {"placement": PLACEMENT_KEYS, "preprocessing": PREPROCESSING_KEYS}
#: The table of plugin options (``[options]``, keys ``namespace.name`` or nested ``[options.namespace]``): its keys
#: are whatever the installed plugins declare, so the driver checks them (``axdrive.passes.resolve_options``).
OPTIONS_TABLE = "options"


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, v in value.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(v, Mapping):
            out.update(_flatten(v, name))
        else:
            out[name] = v
    return out


def _names(where: str, value: Any, source: str | None) -> tuple[Any, list[ConfigProblem]]:
    if not isinstance(value, list) or not all(isinstance(n, str) and n for n in value):
        return None, [ConfigProblem(where, short_repr(value), "must be a list of names (strings)", source)]
    return list(value), []


def _preprocessing(table: dict[str, Any], source: str | None) -> list[ConfigProblem]:
    """The whole table checked as one preprocessing (a transform excludes the built-in steps)."""
    from ..calibration import ImagePreprocessing
    from ..errors import CalibrationError

    try:
        ImagePreprocessing.from_mapping(table)
    except CalibrationError as exc:
        return [ConfigProblem("preprocessing", ..., str(exc), source)]
    return []


#: Per table: how one entry is checked, and how the whole table is checked once its entries are.
_ENTRY: dict[str, Callable[[str, Any, str | None], tuple[Any, list[ConfigProblem]]]] = {
    "placement": _names, "preprocessing": lambda where, value, source: (value, [])}
_WHOLE: dict[str, Callable[[dict[str, Any], str | None], list[ConfigProblem]]] = {"preprocessing": _preprocessing}


def split_tables(data: Mapping[str, Any], source: str | None) -> tuple[dict[str, Any], dict[str, dict[str, Any]],
                                                                       list[ConfigProblem]]:
    """``(properties, tables, problems)``: the file's tables taken out of ``data`` and checked."""
    props: dict[str, Any] = {}
    tables: dict[str, dict[str, Any]] = {}
    problems: list[ConfigProblem] = []
    for key, value in data.items():
        if key == OPTIONS_TABLE:
            if not isinstance(value, Mapping):
                problems.append(ConfigProblem(key, short_repr(value), "must be a table of plugin options "
                                              "(namespace.name = value)", source))
            else:
                tables[key] = _flatten(value)
            continue
        if key not in TABLES:
            props[key] = value
            continue
        if not isinstance(value, Mapping):
            problems.append(ConfigProblem(key, short_repr(value), f"must be a table of {', '.join(TABLES[key])}",
                                          source))
            continue
        table: dict[str, Any] = {}
        before = len(problems)
        for name, entry in value.items():
            where = f"{key}.{name}"
            if name not in TABLES[key]:
                hint = did_you_mean(name, TABLES[key]) or f" (known: {', '.join(TABLES[key])})"
                problems.append(ConfigProblem(where, ..., f"unknown key{hint}", source))
                continue
            checked, found = _ENTRY[key](where, entry, source)
            problems.extend(found)
            if not found:
                table[name] = checked
        if len(problems) == before and key in _WHOLE:
            problems.extend(_WHOLE[key](table, source))
        tables[key] = table
    return props, tables, problems
