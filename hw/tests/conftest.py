"""Hypothesis profiles: fewer examples when the kernels run as plain Python."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("jit", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("nojit", max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("nojit" if os.environ.get("NUMBA_DISABLE_JIT") == "1" else "jit")
