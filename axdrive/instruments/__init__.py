"""Built-in instruments: internal plugins that wrap every pass from outside.

They are registered like any plugin (pytest registers its own features the
same way), so a user's instrument is a peer of these, not a special case.
"""

from __future__ import annotations

__all__ = ["internal_plugins", "TracingInstrument", "VerifierInstrument", "IRDumpInstrument"]

from typing import Any

from ._irdump import IRDumpInstrument
from ._tracing import TracingInstrument
from ._verifier import VerifierInstrument


def internal_plugins() -> list[tuple[str, Any]]:
    return [
        ("axdrive.instruments.tracing", TracingInstrument()),
        ("axdrive.instruments.verifier", VerifierInstrument()),
        ("axdrive.instruments.irdump", IRDumpInstrument()),
    ]
