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
