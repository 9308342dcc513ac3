"""How fast `axdrive --help` starts, against a bare `python -c pass` in the same run.

The CLI imports heavy modules (numpy, onnx, numba) only inside the command that
needs them; this benchmark keeps that promise visible.
"""

from __future__ import annotations

import subprocess
import sys

from _common import report, timeit


def run(args: list[str]) -> None:
    subprocess.run([sys.executable, *args], check=True, capture_output=True)


def main() -> None:
    base = timeit(lambda: run(["-c", "pass"]), repeat=7)
    helptime = timeit(lambda: run(["-m", "axdrive", "--help"]), repeat=7)
    passes = timeit(lambda: run(["-m", "axdrive", "passes"]), repeat=3)
    rows = [
        ["python -c pass", base["median_s"] * 1e3, 1.0],
        ["axdrive --help", helptime["median_s"] * 1e3, helptime["median_s"] / base["median_s"]],
        ["axdrive passes", passes["median_s"] * 1e3, passes["median_s"] / base["median_s"]],
    ]
    report("cli_startup", "python benchmarks/bench_cli_startup.py", ["command", "median ms", "x python startup"], rows)


if __name__ == "__main__":
    main()
