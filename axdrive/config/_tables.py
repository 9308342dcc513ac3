"""Config-file tables beside the 93 properties: options of a compile that are not compiler properties.

Why apart: the 93 properties are the seed contract (``../shared/spec``); what a
user says about *their model* (keep these nodes on the host, the device part
ends at these tensors) names nodes and tensors of one ONNX file and has no
place among them. A config file may carry such a table next to the
properties; the command line has the same options as flags. Today there is
one table::

    [placement]                 # TOML; the same keys in YAML or JSON
    host_nodes = ["/model.22/dfl/Softmax"]     # --host-node NAME
    device_inputs = []                         # --device-input TENSOR
    device_outputs = ["/model.22/Concat_output_0"]  # --device-output TENSOR
"""

from __future__ import annotations

__all__ = ["TABLES", "PLACEMENT_KEYS", "split_tables"]

from typing import Any, Mapping

from ..errors import ConfigProblem, did_you_mean, short_repr

#: ``host_nodes``: ONNX node names to run on the host; ``device_inputs`` / ``device_outputs``: tensors where the
#: accelerator's part begins / ends (what computes an input, and what reads an output, runs on the host).
PLACEMENT_KEYS = ("host_nodes", "device_inputs", "device_outputs")
TABLES: dict[str, tuple[str, ...]] = {"placement": PLACEMENT_KEYS}


def split_tables(data: Mapping[str, Any], source: str | None) -> tuple[dict[str, Any], dict[str, dict[str, list[str]]],
                                                                       list[ConfigProblem]]:
    """``(properties, tables, problems)``: the file's tables taken out of ``data`` and checked."""
    props: dict[str, Any] = {}
    tables: dict[str, dict[str, list[str]]] = {}
    problems: list[ConfigProblem] = []
    for key, value in data.items():
        if key not in TABLES:
            props[key] = value
            continue
        if not isinstance(value, Mapping):
            problems.append(ConfigProblem(key, short_repr(value), f"must be a table of {', '.join(TABLES[key])}",
                                          source))
            continue
        table: dict[str, list[str]] = {}
        for name, names in value.items():
            where = f"{key}.{name}"
            if name not in TABLES[key]:
                hint = did_you_mean(name, TABLES[key]) or f" (known: {', '.join(TABLES[key])})"
                problems.append(ConfigProblem(where, ..., f"unknown key{hint}", source))
            elif not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
                problems.append(ConfigProblem(where, short_repr(names), "must be a list of names (strings)", source))
            else:
                table[name] = list(names)
        tables[key] = table
    return props, tables, problems
