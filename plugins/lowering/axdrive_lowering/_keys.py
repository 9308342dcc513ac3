"""What the lowering passes hand each other through the compile's stash (``ctx.stash``)."""

from __future__ import annotations

__all__ = ["IO_ON_HOST", "PROGRAM"]

from typing import TYPE_CHECKING

from axdrive.passes import StashKey

if TYPE_CHECKING:  # pragma: no cover
    from axdrive_hw.program.model import Program

#: True when the host runtime does the model I/O's layout change and channel padding
#: (``lowering.remove_io_padding_and_layout_transform`` ran).
IO_ON_HOST: StashKey[bool] = StashKey("lowering.io_on_host")
#: The emitted program, for passes that run after ``lowering.emit_program``.
PROGRAM: "StashKey[Program]" = StashKey("lowering.program")
