"""What pass tracing costs: the same compile with the tracing instrument and
trace files on, and with the instrument unregistered, measured in one run.

Goal (issue 3): under 2% of compile time. Measured on the frontend + cleaner
pipeline of PP-OCR (the quantizer blocked): many short passes, the worst case
for a per-pass cost; with calibration in the compile the share is smaller still.
"""

from __future__ import annotations

import tempfile

from _common import report, timeit

from axdrive import driver
from axdrive.config import CompilerConfig
from axdrive.models import fetch_model
from axdrive.passes import PluginHost


def compile_once(model, traced: bool, out: str) -> None:
    host = PluginHost.from_args(["no:quantizer"])
    if not traced:
        host.pm.unregister(name="axdrive.instruments.tracing")
    cfg = CompilerConfig()
    cfg.trace_tvm_passes = traced
    cfg.remove_output_dir = True
    cfg.compiler_mode = "quantize_only"  # with the quantizer blocked, lowering has nothing to lower
    driver.compile(model, cfg, output_dir=out, plugins=host, input_shapes={"x": (1, 3, 48, 192)}, verify=False)


def main() -> None:
    model = fetch_model("ppocr_cls")
    with tempfile.TemporaryDirectory() as tmp:
        off = timeit(lambda: compile_once(model, False, f"{tmp}/off"), repeat=15)
        on = timeit(lambda: compile_once(model, True, f"{tmp}/on"), repeat=15)
    overhead = on["median_s"] / off["median_s"] - 1
    rows = [["tracing off (instrument unregistered)", off["median_s"] * 1e3, 1.0],
            ["tracing on + trace files written", on["median_s"] * 1e3, on["median_s"] / off["median_s"]]]
    report("tracing_overhead", "python benchmarks/bench_tracing_overhead.py", ["compile of PP-OCR cls", "median ms", "ratio"],
           rows, {"overhead_fraction": overhead})


if __name__ == "__main__":
    main()
