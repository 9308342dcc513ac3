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
