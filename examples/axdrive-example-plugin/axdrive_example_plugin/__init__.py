"""An out-of-tree axdrive plugin, as a third party would write one.

It contributes one analysis pass, ``example.op_census``, which counts the
model's operators by type after the frontend has loaded the graph, logs the
census, adds it to ``compile_report.json`` and writes ``op_census.json`` into
the output directory; its statistics name the most common operators, as many
as the plugin's own option ``example.top`` says (``--option example.top=5``). It also contributes a config preset for the model name
``example-lowpower``: a model compiled under that name runs the MVM at half
its array and at a lower clock, unless the user set those properties.

Install it next to axdrive (``pip install -e examples/axdrive-example-plugin``)
and it appears in ``axdrive passes`` and in every compile's pass-dependency graph.
"""

from __future__ import annotations

__all__ = ["op_census", "axdrive_passes", "axdrive_config_presets", "axdrive_addoption", "CENSUS"]

from collections import Counter
from typing import Any

from axdrive.passes import Phase, PluginOption, StashKey, compiler_pass, hookimpl

#: Later passes (of any plugin) may read the census from the stash with this key.
CENSUS: StashKey[dict[str, int]] = StashKey("example.op_census")


@compiler_pass(
    "example.op_census",
    requires=("graph_loaded",),
    provides=("op_census",),
    phase=Phase.IMPORT,
)
def op_census(ctx: Any) -> dict[str, Any]:
    """Count the model's operators by type.

    Runs right after the model is loaded, so it sees the operators as the
    user's ONNX file has them. The census goes to the stash (``CENSUS``), the
    compile report (``op_census``) and ``op_census.json``.
    """
    counts = Counter(node.op for node in ctx.graph.nodes)
    census = dict(sorted(counts.items()))
    ctx.stash[CENSUS] = census
    ctx.report["op_census"] = census
    ctx.artifacts.write_json("op_census.json", census)
    top = ctx.options["example.top"]  # this plugin's own option (axdrive_addoption below)
    ctx.log.info("operator census", op_types=len(census), nodes=sum(census.values()),
                 most_common=[op for op, _ in counts.most_common(top)])
    return {"nodes": sum(census.values()), "op_types": len(census),
            "most_common": ",".join(op for op, _ in counts.most_common(top))}


@hookimpl
def axdrive_passes() -> list:
    return [op_census]


@hookimpl
def axdrive_addoption() -> list[PluginOption]:
    """This plugin's option, beside the compiler properties: ``--option example.top=5``."""
    return [PluginOption("top", "int", 3, "how many of the most common operators the census names", minimum=0,
                         maximum=100)]


@hookimpl
def axdrive_config_presets(model_name: str) -> dict[str, Any] | None:
    if model_name == "example-lowpower":
        return {"mvm_utilization_limit": 0.5, "frequency": 400_000_000}
    return None
