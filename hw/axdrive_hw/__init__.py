"""axdrive-hw: the simulated AIPU target of axdrive.

Modules (each does one thing):

* :mod:`axdrive_hw.target` -- the target description (data: ``targets/*.toml``).
* :mod:`axdrive_hw.numerics` -- the integer rules (requantization, LUTs), defined once.
* :mod:`axdrive_hw.kernels` -- Numba kernels of the MVM, DWPU, DPU and DMA units.
* :mod:`axdrive_hw.reference` -- independent NumPy references of those kernels.
* :mod:`axdrive_hw.program` -- the program model and ``program.bin``/``program.json``.
* :mod:`axdrive_hw.cycle_model` -- the event-driven timing model.
* :mod:`axdrive_hw.simulator` -- functional simulation with memory checks.
* :mod:`axdrive_hw.profiler` -- trace lines, Chrome trace, run summaries.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
