"""Progress bars: shown on a terminal, quiet when output goes to a file or a pipe (a log stays readable)."""

from __future__ import annotations

__all__ = ["no_bar"]


def no_bar(progress: bool) -> bool | None:
    """tqdm's ``disable`` for a caller's ``progress`` flag: off when asked, else on only where the
    output is a terminal (tqdm's ``None``)."""
    return None if progress else True
