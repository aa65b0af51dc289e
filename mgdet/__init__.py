"""mgdet: one-stage object detectors trained with Mutual Guidance label assignment."""

__version__ = "0.1.0"
