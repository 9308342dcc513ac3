"""The compiler configuration: 93 properties defined once (``_table.py``).

From that one table come validation at assignment and at load, the
cross-property rules, the ``--set`` parser, the JSON Schema and the Markdown
reference in ``docs/config-reference.md``.
"""

from ._checks import cross_check
from ._config import CompilerConfig, load_config_file, read_config_file
from ._docs import json_schema, markdown_reference
from ._enums import (
    ENUMS,
    CompilerMode,
    DPUAllocationAlgorithm,
    GraphCleanerCondition,
    GraphCleanerNode,
    MulticoreMode,
    ProfilingLevel,
    QuantizationScheme,
)
from ._property import BadValue, Property
from ._table import BY_NAME, MEMORY_POOLS, PROPERTIES, SECTIONS
from ._tables import PLACEMENT_KEYS, TABLES

__all__ = [
    "BY_NAME",
    "BadValue",
    "CompilerConfig",
    "CompilerMode",
    "DPUAllocationAlgorithm",
    "ENUMS",
    "GraphCleanerCondition",
    "GraphCleanerNode",
    "MEMORY_POOLS",
    "MulticoreMode",
    "PROPERTIES",
    "ProfilingLevel",
    "Property",
    "QuantizationScheme",
    "SECTIONS",
    "cross_check",
    "json_schema",
    "markdown_reference",
    "read_config_file",
    "load_config_file",
    "TABLES",
    "PLACEMENT_KEYS",
]
