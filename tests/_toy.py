"""A toy plugin for driver tests: a fake IR and passes that touch it."""

from __future__ import annotations

from dataclasses import dataclass, field

from axdrive.errors import ModelError
from axdrive.passes import Phase, compiler_pass, hookimpl, pass_group, when


@dataclass
class ToyNode:
    name: str
    op: str


@dataclass
class ToyGraph:
    nodes: list[ToyNode] = field(default_factory=list)
    broken: bool = False

    def verify(self) -> None:
        if self.broken:
            raise ModelError("dangling input 'ghost'", node="conv_0")

    def dump(self) -> str:
        return "\n".join(f"{n.name} = {n.op}" for n in self.nodes) + "\n"


@compiler_pass("toy.load", provides=("graph_loaded",), phase=Phase.IMPORT)
def load(ctx):
    """Make a three-node graph."""
    ctx.graph = ToyGraph([ToyNode("conv_0", "Conv"), ToyNode("relu_0", "Relu"), ToyNode("conv_1", "Conv")])
    ctx.log.info("loaded toy graph")
    return {"nodes": 3}


@compiler_pass("toy.drop_relu", requires=("graph_loaded",), provides=("relu_free",))
def drop_relu(ctx):
    """Remove Relu nodes."""
    before = len(ctx.graph.nodes)
    ctx.graph.nodes = [n for n in ctx.graph.nodes if n.op != "Relu"]
    return {"removed": before - len(ctx.graph.nodes)}


@compiler_pass("toy.count", requires=("graph_loaded",))
def count(ctx):
    """Count nodes."""
    ctx.report["toy"] = {"nodes": len(ctx.graph.nodes)}
    return {"nodes": len(ctx.graph.nodes)}


@compiler_pass("toy.group.a", requires=("graph_loaded",))
def group_a(ctx):
    """First sub-pass."""
    return {"a": 1}


@compiler_pass("toy.group.b")
def group_b(ctx):
    """Second sub-pass."""
    ctx.artifacts.write_text("toy.txt", ctx.graph.dump())
    return {"b": 2}


group = pass_group("toy.group", [group_a, group_b], requires=("relu_free",), phase=Phase.EMIT,
                   description="Emit the toy program.")


@compiler_pass("toy.icr_only", requires=("graph_loaded",), enabled=when("enable_icr"), provides=("icr_done",))
def icr_only(ctx):
    """Runs only with enable_icr."""
    return {}


@compiler_pass("toy.after_icr", requires=("icr_done",))
def after_icr(ctx):
    """Needs what icr_only provides."""
    return {}


@hookimpl
def axdrive_passes():
    return [load, drop_relu, count, group, icr_only, after_icr]


class Crasher:
    """Adds a pass that raises a plain exception mentioning a node."""

    @hookimpl
    def axdrive_passes(self):
        @compiler_pass("crash.boom", requires=("graph_loaded",), provides=("boom",))
        def boom(ctx):
            """Always fails."""
            err = ZeroDivisionError("scale of zero")
            err.node = "conv_1"
            raise err

        return [boom]


class Corrupter:
    """Adds a pass that leaves the IR invalid."""

    @hookimpl
    def axdrive_passes(self):
        @compiler_pass("corrupt.break_ir", requires=("graph_loaded",))
        def break_ir(ctx):
            """Breaks the IR."""
            ctx.graph.broken = True

        return [break_ir]


class Presets:
    @hookimpl
    def axdrive_config_presets(self, model_name):
        if model_name == "toy-fast":
            return {"aipu_cores_used": 4, "multicore_mode": "batch", "frequency": 400_000_000}
        return None
