"""Shared fixtures. The IR verifier runs after every pass in the whole suite."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("AXDRIVE_VERIFY", "1")

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO.parent / "shared" / "spec"


@pytest.fixture
def host():
    """A plugin host with no entry-point plugins: tests register what they need."""
    from axdrive.passes import PluginHost

    return PluginHost(autoload=False)


@pytest.fixture(scope="session")
def ppocr_model() -> Path:
    from axdrive.models import fetch_model

    return fetch_model("ppocr_cls")


@pytest.fixture(scope="session")
def yolo_model() -> Path:
    from axdrive.models import fetch_model

    return fetch_model("yolov8n")


def run_cli(*args: str, env: dict | None = None, cwd: str | Path | None = None):
    """Run ``python -m axdrive ARGS`` in a subprocess; returns CompletedProcess."""
    import subprocess

    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, "-m", "axdrive", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=600)
