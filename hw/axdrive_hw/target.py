"""The AIPU target description as data.

Why data: a second accelerator (or a what-if variant with a bigger L1) is a new
TOML file or an ``overrides`` dict, not new code. Every hardware number used by
the kernels, the simulator and the cycle model is read from a :class:`Target`;
no other module in ``axdrive_hw`` hard-codes one.

Memory addresses in a program are *offsets inside a level* (0-based). The
usable part of a level is ``[0, usable)``; the reserved part sits above it
(for L2: the system reservation plus one task-list slot per core).
"""

from __future__ import annotations

__all__ = ["MemoryLevel", "DmaSpec", "MvmSpec", "DwpuSpec", "DpuSpec", "SyncSpec", "Target", "load_target",
           "CONFIG_OVERRIDE_KEYS", "LEVELS", "DEVICE_DIR_KEY", "DEVICE_TARGET_FILE", "DEFAULT_TARGET",
           "target_for_config", "l1_budget"]

import copy
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

LEVELS: tuple[str, ...] = ("ddr", "l2", "l1")
"""Memory levels, outermost first. Program buffers name one of these as their home."""

DEVICE_DIR_KEY = "device_dir"
"""The one override key that is not a dotted path: the config's ``device_dir``. A
:data:`DEVICE_TARGET_FILE` in that directory replaces the base description before the
other overrides apply (no file there: the built-in description, as without the key)."""
DEVICE_TARGET_FILE = "target.toml"

# Compiler-config property name -> dotted path in the target TOML (``device_dir``: the base file, see above).
# Every config-driven reader (the compile's emit pass, the runtime) passes exactly these keys, so a key
# added here is honoured on both sides of a program at once.
CONFIG_OVERRIDE_KEYS: dict[str, str] = {
    DEVICE_DIR_KEY: DEVICE_DIR_KEY,
    "frequency": "frequency_hz",
    "l1_size_used": "memory.l1.size",
    "l1_size_reserved": "memory.l1.reserved",
    "l1_virtual_address": "memory.l1.virtual_address",
    "l1_core0_physical_address": "memory.l1.core0_physical_address",
    "l2_size_used": "memory.l2.size",
    "l2_size_reserved": "memory.l2.reserved",
    "l2_size_reserved_tasklist": "memory.l2.reserved_tasklist_per_core",
    "ddr_size_used": "memory.ddr.size",
    "ddr_size_max": "memory.ddr.size",
    "ddr_size_reserved": "memory.ddr.reserved",
}


@dataclass(frozen=True)
class MemoryLevel:
    """One memory level. ``size`` is per core for L1, chip-wide otherwise."""

    name: str
    size: int
    reserved: int
    bandwidth: int  # bytes/cycle
    reserved_tasklist_per_core: int = 0
    virtual_address: int = 0
    core0_physical_address: int = 0

    def usable(self, cores: int) -> int:
        """Bytes a program may place buffers in (offsets ``[0, usable)``)."""
        return self.size - self.reserved - self.reserved_tasklist_per_core * cores


@dataclass(frozen=True)
class DmaSpec:
    core_channel_bandwidth: int
    core_channels_dual: int
    system_bandwidth: int
    setup_cycles: int
    host_link_bandwidth: int


@dataclass(frozen=True)
class MvmSpec:
    imc_blocks: int
    rows: int
    columns: int
    activation_bits: int
    weight_load_bandwidth: int
    task_overhead_cycles: int

    @property
    def peak_macs_per_cycle(self) -> int:
        """Blocks x rows x columns MACs every ``activation_bits`` cycles (bit-serial)."""
        return self.imc_blocks * self.rows * self.columns // self.activation_bits


@dataclass(frozen=True)
class DwpuSpec:
    lanes: int
    task_overhead_cycles: int


@dataclass(frozen=True)
class DpuSpec:
    registers: int
    lanes: int
    lut_entries: int
    spill_slots: int
    task_overhead_cycles: int
    instruction_cycles: Mapping[str, int]


@dataclass(frozen=True)
class SyncSpec:
    token_cycles: int
    polling_cycles: int


@dataclass(frozen=True)
class Target:
    """A complete accelerator description (see ``targets/aipu_v1.toml``)."""

    name: str
    cores: int
    frequency_hz: int
    min_frequency_hz: int
    max_frequency_hz: int
    pword: int
    memory: Mapping[str, MemoryLevel]
    dma: DmaSpec
    mvm: MvmSpec
    dwpu: DwpuSpec
    dpu: DpuSpec
    sync: SyncSpec

    def usable(self, level: str) -> int:
        """Usable bytes of ``level`` (per core for L1)."""
        return self.memory[level].usable(self.cores)


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    node = raw
    parts = dotted.split(".")
    unknown = (f"unknown target property {dotted!r} (use a config property of CONFIG_OVERRIDE_KEYS or a dotted "
               "path into the target TOML)")
    for p in parts[:-1]:
        if p not in node or not isinstance(node[p], dict):
            raise KeyError(unknown)
        node = node[p]
    if parts[-1] not in node:
        raise KeyError(unknown)
    node[parts[-1]] = value


def _from_raw(raw: dict[str, Any]) -> Target:
    mem = {lvl: MemoryLevel(name=lvl, **raw["memory"][lvl]) for lvl in LEVELS}
    dpu_raw = dict(raw["dpu"])
    cycles = dpu_raw.pop("instruction_cycles")
    t = Target(
        name=raw["name"], cores=int(raw["cores"]), frequency_hz=int(raw["frequency_hz"]),
        min_frequency_hz=int(raw["min_frequency_hz"]), max_frequency_hz=int(raw["max_frequency_hz"]),
        pword=int(raw["pword"]), memory=mem, dma=DmaSpec(**raw["dma"]), mvm=MvmSpec(**raw["mvm"]),
        dwpu=DwpuSpec(**raw["dwpu"]), dpu=DpuSpec(**dpu_raw, instruction_cycles=dict(cycles)),
        sync=SyncSpec(**raw["sync"]),
    )
    if not 1 <= t.cores <= 4:
        raise ValueError(f"target {t.name}: cores={t.cores} is outside 1..4")
    if not t.min_frequency_hz <= t.frequency_hz <= t.max_frequency_hz:
        raise ValueError(f"target {t.name}: frequency {t.frequency_hz} Hz outside "
                         f"{t.min_frequency_hz}..{t.max_frequency_hz} Hz")
    for lvl in mem.values():
        if lvl.usable(t.cores) <= 0:
            raise ValueError(f"target {t.name}: memory {lvl.name} has no usable bytes "
                             f"(size {lvl.size}, reserved {lvl.reserved})")
    return t


def load_target(name_or_path: str | Path = "aipu_v1", overrides: Mapping[str, Any] | None = None) -> Target:
    """Load a target by built-in name or TOML path, then apply ``overrides``.

    ``overrides`` keys are either compiler-config property names
    (``l1_size_used``, ``frequency``, ``l2_size_reserved_tasklist``, ... see
    :data:`CONFIG_OVERRIDE_KEYS`), ``cores``, or dotted paths into the TOML
    (``"memory.l2.bandwidth"``). Unknown keys raise ``KeyError`` so a typo
    never silently leaves the default in place. ``device_dir`` (the config
    property) names a directory whose ``target.toml``, when present, is read
    instead of the built-in description (the machine the user actually has).
    """
    overrides = dict(overrides or {})
    device_dir = overrides.pop(DEVICE_DIR_KEY, None)
    custom = Path(str(device_dir)) / DEVICE_TARGET_FILE if device_dir else None
    p = Path(str(name_or_path))
    if custom is not None and custom.is_file():
        source = str(custom)
        try:
            text = custom.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"device_dir: cannot read {custom}: {exc}") from None
    elif p.suffix == ".toml":
        source, text = str(p), p.read_text()
    else:
        f = resources.files("axdrive_hw").joinpath("targets", f"{name_or_path}.toml")
        if not f.is_file():
            known = sorted(p.name[:-5] for p in resources.files("axdrive_hw").joinpath("targets").iterdir()
                           if p.name.endswith(".toml"))
            raise KeyError(f"unknown target {name_or_path!r} (built-in: {', '.join(known)})")
        source, text = str(name_or_path), f.read_text()
    try:
        raw = copy.deepcopy(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{source}: not valid TOML: {exc}") from None
    for key, value in overrides.items():
        if key == "cores" or key == "aipu_cores_used":
            raw["cores"] = value
            continue
        _set_dotted(raw, CONFIG_OVERRIDE_KEYS.get(key, key), value)
    try:
        return _from_raw(raw)
    except (KeyError, TypeError) as exc:  # a hand-written file (device_dir) may lack or misspell an entry
        raise ValueError(f"{source}: not a complete target description ({type(exc).__name__}: {exc})") from None


#: The built-in description a compile targets unless ``device_dir`` holds a ``target.toml``.
DEFAULT_TARGET = "aipu_v1"


def target_for_config(config: Any) -> Target:
    """The target a compile with ``config`` (a ``CompilerConfig`` or its ``to_dict()``) emits for: the built-in
    description, or ``device_dir``'s ``target.toml``, with the config's overrides (:data:`CONFIG_OVERRIDE_KEYS`).

    Every back-end pass reads this one (the ``aipu.target`` pass provides it once per compile), so ICR, the
    register allocator, tiling and code generation cannot disagree about the machine. ``ddr_size_max`` is not
    an override here: it bounds the program's DDR use (checked by the emit pass), while ``ddr_size_used`` sizes
    the level."""
    cfg = config if isinstance(config, Mapping) else config.to_dict()
    overrides = {k: cfg[k] for k in CONFIG_OVERRIDE_KEYS if cfg.get(k) is not None and k != "ddr_size_max"}
    return load_target(DEFAULT_TARGET, overrides)


def l1_budget(target: Target, config: Any) -> int:
    """L1 bytes per core a layer may stage: the target's usable L1, times ``resources_used``, at most
    ``l1_constraint``. The one budget tiling chooses tiles against and code generation emits against."""
    cfg = config if isinstance(config, Mapping) else config.to_dict()
    budget = int(target.usable("l1") * float(cfg.get("resources_used", 1.0)))
    if cfg.get("l1_constraint") is not None:
        budget = min(budget, int(cfg["l1_constraint"]))
    return budget
