"""Where buffers live: the config's memory pools mapped onto the target's levels.

Why its own module: the homes (``io_memory_pool``, ``constant_memory_pool``,
``workspace_memory_pool``, ``dpu_constants_home``, ``dpu_instructions_home``,
``dwpu_instructions_home``) are where buffers *start*: the memory planner
(``axdrive-memplan``) may promote them inward; the code generator asks this
table and nothing else.
"""

from __future__ import annotations

__all__ = ["Homes", "homes_from_config"]

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Homes:
    """The level (``ddr``/``l2``) each class of buffer starts in."""

    io: str
    constants: str
    workspace: str
    dpu_constants: str
    dpu_code: str
    dwpu_constants: str
    notes: tuple[str, ...] = ()


def _level(pool: str, what: str, notes: list[str]) -> str:
    # every level is a possible home: the memory planner packs L1 homes next to the layers' L1 arenas
    return str(pool).removeprefix("global.")


def _code_home(value: str, elf_in_ddr: bool) -> str:
    if str(value) == "l2":
        return "l2"
    return "ddr" if elf_in_ddr else "l2"  # "default": with the program image


def homes_from_config(config: Any) -> Homes:
    notes: list[str] = []
    return Homes(
        io=_level(config.io_memory_pool, "io_memory_pool", notes),
        constants=_level(config.constant_memory_pool, "constant_memory_pool", notes),
        workspace=_level(config.workspace_memory_pool, "workspace_memory_pool", notes),
        dpu_constants=_level(config.dpu_constants_home, "dpu_constants_home", notes),
        dpu_code=_code_home(config.dpu_instructions_home, bool(config.elf_in_ddr)),
        dwpu_constants=_code_home(config.dwpu_instructions_home, bool(config.elf_in_ddr)),
        notes=tuple(notes),
    )
