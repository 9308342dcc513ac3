"""Pass tracing: spans, the pass-dependency graph, Chrome traces, inspection."""

from ._export import SCHEMA_ID, chrome_trace, dependency_graph
from ._inspect import critical_path, format_critical_path, format_dot, format_tree, load_graph
from ._spans import Span, Tracer

__all__ = [
    "SCHEMA_ID",
    "Span",
    "Tracer",
    "chrome_trace",
    "critical_path",
    "dependency_graph",
    "format_critical_path",
    "format_dot",
    "format_tree",
    "load_graph",
]
