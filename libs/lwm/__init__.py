"""Learnware Market: libraries and services (see DESIGN.md)."""

__version__ = "0.1.0"
