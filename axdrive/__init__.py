"""axdrive: an open compiler driver for an int8 AI accelerator."""
__version__ = "0.1.0"
