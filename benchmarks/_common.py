"""Shared benchmark plumbing: repeat-and-take-median timing, a printed table, JSON results.

Benchmarks report ratios against a reference measured in the same run, never
absolute thresholds: the machine varies, the ratio much less.
"""

from __future__ import annotations

__all__ = ["timeit", "report"]

import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable

RESULTS = Path(__file__).resolve().parent / "results"


def timeit(fn: Callable[[], Any], *, repeat: int = 5, warmup: int = 1) -> dict[str, float]:
    """Median/min wall seconds of ``fn`` over ``repeat`` runs after ``warmup``."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(samples), "min_s": min(samples), "repeat": repeat}


def report(name: str, command: str, columns: list[str], rows: list[list[Any]], extra: dict[str, Any] | None = None) -> Path:
    """Print a table and write ``results/<name>.json``."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{name}  ({command})")
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in r])
    Console().print(table)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps({
        "benchmark": name, "command": command, "machine": {"python": platform.python_version(),
                                                           "processor": platform.machine()},
        "columns": columns, "rows": rows, **(extra or {}),
    }, indent=1, default=str) + "\n")
    return out
