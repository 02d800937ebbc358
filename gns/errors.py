"""Errors a user can act on.

Every error raised for bad input names *where* (file, key) and *what* (expected vs found),
so that a user never has to read a deep traceback to find the mistake.
"""

from __future__ import annotations


class GnsInputError(ValueError):
    """Bad user input: a file, key, shape, dtype or value that is not what was expected."""

    def __init__(self, message: str, *, file: object = None, key: str | None = None,
                 expected: object = None, found: object = None) -> None:
        parts = []
        if file is not None:
            parts.append(f"file '{file}'")
        if key is not None:
            parts.append(f"key '{key}'")
        where = (", ".join(parts) + ": ") if parts else ""
        detail = ""
        if expected is not None or found is not None:
            detail = f" (expected {expected}, found {found})"
        super().__init__(f"{where}{message}{detail}")
        self.file, self.key, self.expected, self.found = file, key, expected, found


class GraphTooLargeError(GnsInputError):
    """A neighbour graph would need more memory than allowed (usually: radius too large)."""


class CheckpointMismatchError(GnsInputError):
    """A checkpoint was written by a model whose configuration differs from the one asked for."""
