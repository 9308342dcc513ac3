"""The ``axdrive`` plugin of axdrive-hw: the simulated AIPU's runtime, and its description for the back end.

Registered in the ``axdrive.passes`` entry-point group (as ``aipu``), so the
core finds the runtime through the ``axdrive_runtime`` hook and never imports
``axdrive_hw``. It contributes one pass, ``aipu.target``, which loads the
target once per compile (the built-in description or ``device_dir``'s, with
the config's overrides) into the stash under :data:`TARGET`: every back-end
pass reads that one object. This module is imported for every compile, so it
stays light: the runtime (and with it Numba) is imported only when a run asks
for it.
"""

from __future__ import annotations

__all__ = ["axdrive_runtime", "axdrive_passes", "builtin_targets", "load", "TARGET"]

from importlib import resources
from typing import TYPE_CHECKING, Any

from axdrive.passes import Phase, StashKey, compiler_pass, hookimpl
from axdrive_hw.target import CONFIG_OVERRIDE_KEYS  # the standard library only: the plugin stays light

if TYPE_CHECKING:  # pragma: no cover
    from axdrive_hw.runtime import AipuRuntime
    from axdrive_hw.target import Target

#: The compile's target, loaded once by ``aipu.target``: require ``target_loaded`` and read ``ctx.stash[TARGET]``.
TARGET: "StashKey[Target]" = StashKey("aipu.target")


@compiler_pass("aipu.target", provides=("target_loaded",), phase=Phase.IMPORT,
               config_keys=tuple(k for k in CONFIG_OVERRIDE_KEYS if k != "ddr_size_max"))
def load(ctx: Any) -> dict[str, Any]:
    """Load the target the program is emitted for: the built-in description, or ``device_dir``'s ``target.toml``,
    with the config's overrides. Statistics: the target's name, cores and usable L1 bytes per core."""
    from axdrive_hw.target import target_for_config

    target = target_for_config(ctx.config)
    ctx.stash[TARGET] = target
    return {"target": target.name, "cores": target.cores, "l1_usable_bytes": target.usable("l1")}


@hookimpl
def axdrive_passes() -> list:
    return [load]


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
