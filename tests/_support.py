"""Helpers shared by the core test modules (imported as ``_support``: a
``conftest`` module cannot be imported by name when several test folders have one)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO.parent / "shared" / "spec"


def run_cli(*args: str, env: dict | None = None, cwd: str | Path | None = None):
    """Run ``python -m axdrive ARGS`` in a subprocess; returns CompletedProcess."""
    import subprocess

    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, "-m", "axdrive", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=600)


def unsupported_message(model, out: Path) -> str:
    """The one-line ``UnsupportedOperatorError`` a default compile of ``model`` (input ``x`` 1x3x8x8, graph
    cleaner off, so every node must lower) stops with."""
    import numpy as np
    import pytest

    from axdrive import driver
    from axdrive.config import CompilerConfig
    from axdrive.errors import UnsupportedOperatorError

    cfg = CompilerConfig()
    cfg.run_graph_cleaner = False
    cal = {"x": np.random.default_rng(1).uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32)}
    with pytest.raises(UnsupportedOperatorError) as info:
        driver.compile(model, cfg, output_dir=out, calibration=cal)
    message = str(info.value)
    assert "\n" not in message
    return message


def listing(out: Path) -> list[str]:
    """The names in an output directory a user sees as the compile's (sorted; the ``.axdrive`` store, where the
    files live and the links point, left out)."""
    return sorted(p.name for p in Path(out).iterdir() if p.name != ".axdrive")


#: The address-space limit hostile-input tests run the CLI under: a normal toy compile or run needs well below
#: 1.5 GB of address space (measured: both succeed under 1 GB), the hostile inputs would take 120 GB to 1.1 TiB.
HOSTILE_AS_LIMIT = 6 << 30


def run_cli_limited(*args: str, limit_bytes: int = HOSTILE_AS_LIMIT, timeout: float = 120, cwd: str | Path | None = None):
    """``python -m axdrive ARGS`` in a child process whose address space is capped (``RLIMIT_AS``), so an input
    that makes axdrive allocate what it declares fails in the child instead of taking the machine's memory."""
    import resource
    import subprocess

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    return subprocess.run([sys.executable, "-m", "axdrive", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, env=dict(os.environ), cwd=cwd, timeout=timeout, preexec_fn=cap)


def refused(proc, path: str | Path, *words: str) -> str:
    """Assert exit code 2 and exactly one stderr line ``axdrive: error: PATH: ...`` containing ``words``
    (short: a hostile value is never echoed whole)."""
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]
    line = lines[0]
    assert line.startswith(f"axdrive: error: {path}: "), line[:500]
    assert "internal error" not in line and "Traceback" not in proc.stderr
    for word in words:
        assert word in line, line[:500]
    assert len(line) < 500
    return line


def one_error_line(stderr: str, *words: str) -> str:
    """The single ``axdrive: error:`` line of ``stderr`` (log lines aside), asserted to name every one of ``words``
    and not to be an internal error."""
    lines = [line for line in stderr.strip().splitlines() if line.startswith("axdrive:")]
    assert len(lines) == 1 and lines[0].startswith("axdrive: error: "), stderr
    assert "internal error" not in stderr and "Traceback" not in stderr, stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]
