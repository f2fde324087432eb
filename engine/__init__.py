"""Ponder's training engine: no Qt, importable and usable headless."""

__version__ = "0.1.0"
