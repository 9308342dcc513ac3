"""Shared fixtures. The IR verifier runs after every pass in the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("AXDRIVE_VERIFY", "1")

from _support import REPO, SPEC, run_cli  # noqa: F401  (re-exported for fixtures)


@pytest.fixture
def host():
    """A plugin host with no entry-point plugins (not even axdrive's own): tests register what they need."""
    from axdrive.passes import PluginHost

    return PluginHost(autoload=False, builtin=False)


@pytest.fixture(scope="session")
def ppocr_model() -> Path:
    from axdrive.models import fetch_model

    return fetch_model("ppocr_cls")


@pytest.fixture(scope="session")
def yolo_model() -> Path:
    from axdrive.models import fetch_model

    return fetch_model("yolov8n")
