"""zsbench: a reproducible benchmark suite for zero-shot cross-modal retrieval."""

__version__ = "0.1.0"
