"""Compiling a mapping description (``description.py``), one module a part of it."""

from __future__ import annotations

from .description import compile_mapping

__all__ = ["compile_mapping"]
