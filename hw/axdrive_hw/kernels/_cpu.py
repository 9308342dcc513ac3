"""What CPU the kernels are compiled for: the one place that asks.

Two kernels emit AVX-512 instructions Numba cannot derive from loops
(``vpdpbusd`` for the byte convolution, ``vpermi2b`` for DPU table lookups).
They may do so only if the code Numba generates targets a CPU with those
features: the host's, unless ``NUMBA_CPU_NAME``/``NUMBA_CPU_FEATURES``
choose another (for a portable cache, say), in which case only the features
named there count.
"""

from __future__ import annotations

__all__ = ["numba_target_has"]

from numba import config


def _target_features() -> set[str]:
    features = config.CPU_FEATURES
    if features is None and config.CPU_NAME is not None:
        return set()  # a named CPU without a feature list: assume none of the optional ones
    if features is None:
        try:
            from numba.core.codegen import get_host_cpu_features  # what Numba compiles for

            features = get_host_cpu_features()
        except ImportError:  # pragma: no cover - older Numba
            from llvmlite import binding

            features = binding.get_host_cpu_features().flatten()
    return set(str(features).split(","))


def numba_target_has(*names: str) -> bool:
    """Whether jitted code targets a CPU with every feature in ``names`` (LLVM names: ``"avx512vnni"``)."""
    return {f"+{n}" for n in names} <= _target_features()
