"""axdrive: an open compiler driver for an int8 AI accelerator.

The public API mirrors the CLI::

    from axdrive import CompilerConfig, compile, quantize, lower, run

    cfg = CompilerConfig()
    cfg.aipu_cores_used = 4          # validated here: 5 would raise with the allowed range
    result = compile("model.onnx", cfg, output_dir="out", calibration="photos/")
    outputs = run("out", {"images": x})

Attributes are imported on first use, so ``import axdrive`` (and the CLI's
``--help``) stays fast.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["CompilerConfig", "CompileResult", "compile", "quantize", "lower", "run", "__version__"]

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .config import CompilerConfig
    from .driver import CompileResult


def compile(model: Any, config: Any = None, **kwargs: Any) -> "CompileResult":
    """Compile per ``config.compiler_mode``; see :func:`axdrive.driver.compile`."""
    from .driver import compile as _compile

    return _compile(model, config, **kwargs)


def _with_mode(config: Any, mode: str) -> Any:
    from .config import CompilerConfig

    cfg = CompilerConfig() if config is None else config.copy()
    cfg.compiler_mode = mode
    return cfg


def quantize(model: Any, config: Any = None, **kwargs: Any) -> "CompileResult":
    """Quantize only: writes ``quantized_model.onnx`` (QDQ, runs in onnxruntime) and stops."""
    return compile(model, _with_mode(config, "quantize_only"), **kwargs)


def lower(model: Any, config: Any = None, **kwargs: Any) -> "CompileResult":
    """Lower an already-quantized (QDQ) model without re-quantizing it."""
    return compile(model, _with_mode(config, "lower_only"), **kwargs)


def run(output_dir: Any, inputs: Any, **kwargs: Any) -> dict[str, Any]:
    """Run a compiled program on the simulated AIPU (host pre/post parts in onnxruntime)."""
    from .runner import run as _run

    return _run(output_dir, inputs, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "CompilerConfig":
        from .config import CompilerConfig

        return CompilerConfig
    if name == "CompileResult":
        from .driver import CompileResult

        return CompileResult
    raise AttributeError(f"module 'axdrive' has no attribute {name!r}")
