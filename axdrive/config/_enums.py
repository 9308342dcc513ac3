"""The seven enumerations of the configuration contract.

They are ``StrEnum``s so that a value read from a file, ``--set`` or the API
compares equal to its plain string (``cfg.compiler_mode == "quantize_only"``)
and serialises as that string.
"""

from __future__ import annotations

__all__ = [
    "CompilerMode",
    "MulticoreMode",
    "QuantizationScheme",
    "DPUAllocationAlgorithm",
    "GraphCleanerCondition",
    "GraphCleanerNode",
    "ProfilingLevel",
    "ENUMS",
]

from enum import StrEnum


class CompilerMode(StrEnum):
    """What a compile does."""

    QUANTIZE_AND_LOWER = "quantize_and_lower"
    QUANTIZE_ONLY = "quantize_only"
    LOWER_ONLY = "lower_only"


class MulticoreMode(StrEnum):
    """How the cores share work: host-runtime modes (``multiprocess``, ``multithread``)
    and compiler-side partitionings (``batch``, ``cooperative``, ``pipeline``)."""

    MULTIPROCESS = "multiprocess"
    MULTITHREAD = "multithread"
    BATCH = "batch"
    COOPERATIVE = "cooperative"
    PIPELINE = "pipeline"


class QuantizationScheme(StrEnum):
    """How activation ranges are observed (weights are always per-channel symmetric min-max)."""

    PER_TENSOR_HISTOGRAM = "per_tensor_histogram"
    PER_TENSOR_MIN_MAX = "per_tensor_min_max"
    HYBRID_PER_TENSOR_PER_CHANNEL = "hybrid_per_tensor_per_channel"


class DPUAllocationAlgorithm(StrEnum):
    """Register allocator for the DPU's 16 vector registers."""

    TRY_ALL = "try_all"
    GRAPH = "graph"
    LAZY = "lazy"
    BACKJUMP_RECURSIVE = "backjump_recursive"


class GraphCleanerCondition(StrEnum):
    """How the graph cleaner picks the node at which the core ends."""

    MAXIMUM_WEIGHT_TENSOR_SIZE = "maximum_weight_tensor_size"
    MAXIMUM_WEIGHT_TENSOR_FIRST_DIMENSION_SIZE = "maximum_weight_tensor_first_dimension_size"


class GraphCleanerNode(StrEnum):
    """Operator type the graph-cleaner condition is evaluated on."""

    MATMUL = "MatMul"
    GEMM = "Gemm"
    CLIP = "Clip"


class ProfilingLevel(StrEnum):
    """Trace-line tags of the simulator's profiler (see ``docs/simulator.md``)."""

    UNKNOWN = "?"
    BEGIN_END = "B"
    PIPELINE_BEGIN = "PB"
    PIPELINE_END = "PE"
    KERNEL = "K"
    MEMORY = "M"
    TOKEN = "T"


ENUMS: tuple[type[StrEnum], ...] = (
    CompilerMode,
    MulticoreMode,
    QuantizationScheme,
    DPUAllocationAlgorithm,
    GraphCleanerCondition,
    GraphCleanerNode,
    ProfilingLevel,
)
