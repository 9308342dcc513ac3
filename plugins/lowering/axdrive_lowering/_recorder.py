"""What the code generator records before memory planning and scheduling, and how it becomes a program.

Why record instead of building directly: where a buffer lives (level and
offset) and in which order tasks run are decided after the code generator
has described them, by the memory planner and the scheduler (other
distributions, reached through :mod:`axdrive.ir.program_plan`). So the code
generator talks to a :class:`Recorder` with the same calls as
:class:`~axdrive_hw.program.model.ProgramBuilder`; buffers stay symbolic
(operands name buffers, offsets are inside a buffer), and
:func:`materialize` builds the real program once placements, order and
tokens are known. A layer's L1 working set is one *arena* (a ``staging``
request) whose sub-buffers sit at fixed offsets inside it.
"""

from __future__ import annotations

__all__ = ["Recorder", "BufferDecl", "TaskRec", "materialize"]

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from axdrive.ir.program_plan import Placement
from axdrive_hw.program.model import Program, ProgramBuilder, Ref, TaskConstructors
from axdrive_hw.target import Target


@dataclass
class BufferDecl:
    """A symbolic buffer: its pool (initial level), size and kind; arena sub-buffers name their arena."""

    name: str
    level: str
    shape: tuple[int, ...]
    dtype: str
    core: int
    kind: str
    size: int
    init: str | None = None
    arena: str | None = None
    arena_offset: int = 0
    pinned: bool = False


@dataclass
class TaskRec:
    """A task in program order, with the layer item it belongs to (for barriers and error messages)."""

    core: int
    kind: str
    op: str
    inputs: dict[str, Ref]
    outputs: dict[str, Ref]
    params: dict[str, Any]
    stage: str | None
    item: int
    layer: str


@dataclass
class Recorder(TaskConstructors):
    """The :class:`ProgramBuilder` calls the code generator makes, recorded (see module docstring)."""

    target: Target
    cores: int = 1
    buffers: dict[str, BufferDecl] = field(default_factory=dict)
    tasks: list[TaskRec] = field(default_factory=list)
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    item: int = 0
    layer: str = ""

    def buffer(self, name: str, level: str, shape: Iterable[int], dtype: str = "int8", *, core: int = 0,
               kind: str = "workspace", init: str | None = None, size: int | None = None, arena: str | None = None,
               arena_offset: int = 0, pinned: bool = False, **_ignored: Any) -> Ref:
        if name in self.buffers:
            raise ValueError(f"buffer {name!r} declared twice")
        shape = tuple(int(s) for s in shape)
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        self.buffers[name] = BufferDecl(name, level, shape, dtype, core, kind, nbytes if size is None else size, init,
                                        arena, arena_offset, pinned)
        return Ref(name, shape, dtype, 0)

    def constant(self, name: str, data: np.ndarray, level: str = "ddr", *, core: int = 0, pinned: bool = False) -> Ref:
        """A constant buffer; ``pinned`` keeps it in ``level`` (the memory planner does not promote it)."""
        a = np.ascontiguousarray(data)
        self.constants[name] = a
        return self.buffer(name, level, a.shape, str(a.dtype), core=core, kind="constant", init=name, pinned=pinned)

    def input(self, tensor: str, shape: Iterable[int], dtype: str = "int8", level: str = "ddr") -> Ref:
        self.inputs[tensor] = tensor
        return self.buffer(tensor, level, shape, dtype, kind="input")

    def output(self, tensor: str, shape: Iterable[int], dtype: str = "int8", level: str = "ddr") -> Ref:
        self.outputs[tensor] = tensor
        return self.buffer(tensor, level, shape, dtype, kind="output")

    def ref(self, buffer: str, shape: Iterable[int] | None = None, dtype: str | None = None, offset: int = 0) -> Ref:
        b = self.buffers[buffer]
        return Ref(buffer, tuple(shape) if shape is not None else b.shape, dtype or b.dtype, offset)

    def task(self, core: int, kind: str, op: str, inputs: dict[str, Ref], outputs: dict[str, Ref],
             params: dict[str, Any] | None = None, *, stage: str | None = None, **_sync: Any) -> int:
        self.tasks.append(TaskRec(core, kind, op, dict(inputs), dict(outputs), dict(params or {}), stage, self.item,
                                  self.layer))
        return len(self.tasks) - 1


def materialize(rec: Recorder, placements: dict[str, Placement], order: Sequence[int],
                waits: dict[int, tuple[int, ...]], signals: dict[int, tuple[int, ...]]) -> Program:
    """The program: every buffer at its planned place, tasks per core in ``order`` with their tokens."""
    b = ProgramBuilder(rec.target, cores=rec.cores)
    users: dict[str, set[int]] = {}
    for t in rec.tasks:
        for r in (*t.inputs.values(), *t.outputs.values()):
            users.setdefault(r.buffer, set()).add(t.core)
    used = set(users)
    whole_run: list[str] = []
    for d in rec.buffers.values():
        if d.kind == "staging" or (d.name not in used and d.kind in ("workspace",)):
            continue  # an arena is its sub-buffers; an unused slot or home would be live for the whole run
        if d.arena is not None:
            p = placements[d.arena]
            b.buffer(d.name, "l1", d.shape, d.dtype, core=p.core, kind="workspace", address=p.address + d.arena_offset,
                     size=d.size)
            continue
        p = placements[d.name]
        owner = users.get(d.name, {p.core})
        core = p.core if p.level == "l1" else (min(owner) if len(owner) == 1 else 0)
        shared = d.kind == "workspace" and len(owner) > 1
        if d.kind == "constant":
            b.add_constant(d.init or d.name, rec.constants[d.init or d.name])
        if shared:  # used by several cores: planned for the whole run, so it keeps no live range
            whole_run.append(d.name)
        b.buffer(d.name, p.level, d.shape, d.dtype, core=core, kind=d.kind, address=p.address, init=d.init,
                 size=d.size)
    b.map_io(rec.inputs, rec.outputs)
    for i in order:
        t = rec.tasks[i]
        b.task(t.core, t.kind, t.op, t.inputs, t.outputs, t.params, wait=waits.get(i, ()), signal=signals.get(i, ()),
               stage=t.stage)
    program = b.build()
    if whole_run:
        keep = set(whole_run)
        program.buffers = [dataclasses.replace(x, live=None) if x.name in keep else x for x in program.buffers]
    return program
