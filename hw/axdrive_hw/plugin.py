"""The ``axdrive`` plugin of axdrive-hw: it contributes the host runtime of the simulated AIPU.

Registered in the ``axdrive.passes`` entry-point group (as ``aipu``), so the
core finds the runtime through the ``axdrive_runtime`` hook and never imports
``axdrive_hw``. This module is imported for every compile, so it stays light:
the runtime (and with it Numba) is imported only when a run asks for it.
"""

from __future__ import annotations

__all__ = ["axdrive_runtime", "builtin_targets"]

from importlib import resources
from typing import TYPE_CHECKING

from axdrive.passes import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from axdrive_hw.runtime import AipuRuntime


def builtin_targets() -> tuple[str, ...]:
    """Names of the target descriptions shipped in ``axdrive_hw/targets`` (read without importing Numba)."""
    folder = resources.files("axdrive_hw").joinpath("targets")
    return tuple(sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml")))


@hookimpl
def axdrive_runtime(target: str) -> "AipuRuntime | None":
    """The AIPU runtime for a built-in target of axdrive-hw (``aipu_v1``), else ``None``."""
    if target not in builtin_targets():
        return None
    from axdrive_hw.runtime import AipuRuntime

    return AipuRuntime(target)
