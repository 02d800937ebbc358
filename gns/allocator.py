"""The C allocator's settings for a process that makes and frees large tensors every step.

A rollout or training step allocates many tensors of one size per edge set (``(E, L)`` floats:
tens of MB for a few thousand particles with dense neighbourhoods) and frees them within the
step. glibc's ``malloc`` serves such sizes with a fresh ``mmap`` (above its mmap threshold) or
gives the freed top of its heap back to the system (above its trim threshold), so the next step
touches new pages: every page of every large tensor costs a page fault, every step. glibc raises
both thresholds by itself as large blocks are freed, but not past 32 MiB. Measured
(``benchmarks/allocator.py``, docs/benchmarks.md) on a 2-core virtual machine: at the densely
packed states of the main job's rollouts 1.5-1.8x faster per step, with 200-350x fewer page faults;
over the main job's whole evaluation, where glibc's own adaptation catches up, 1.06x.

:func:`tune_allocator` raises both thresholds, so that tensors up to ``mmap_threshold`` come
from the heap and freed memory stays there for the next step. Its price: the process keeps up
to ``trim_threshold`` of freed memory instead of returning it (its peak resident size stays
resident). The command line calls it for every command that rolls out (``evaluate``, ``rollout``,
``counterfactual``, ...; the demo before its evaluation), not for training, where it measured no
faster (its tensors are smaller: batch 1, no dense packing); the Python API leaves the process
as it is unless the user calls it. ``GNS_TUNE_ALLOCATOR=0`` turns it off everywhere.

Only glibc (Linux) has these settings; elsewhere :func:`tune_allocator` does nothing and returns None.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "TOP_PAD", "tune_allocator"]

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3

# Tensors up to this many bytes come from the heap: the per-edge tensors of ~10k particles with dense neighbourhoods.
# glibc's documentation caps it at 32 MiB on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX; 2.36 accepts more): where mallopt
# refuses this, 32 MiB is used instead.
MMAP_THRESHOLD = 256 * 2**20
_MMAP_THRESHOLD_OLD_GLIBC = 32 * 2**20
TRIM_THRESHOLD = 2**30        # freed heap kept for reuse, at most
TOP_PAD = 64 * 2**20          # extra heap asked for each time it grows: fewer, larger extensions

_applied: dict[str, int] | None = None


def tune_allocator(mmap_threshold: int | None = None, trim_threshold: int = TRIM_THRESHOLD,
                   top_pad: int = TOP_PAD) -> dict[str, int] | None:
    """Set glibc's malloc thresholds for this process (once; later calls return the first result).

    Args:
        mmap_threshold: bytes from which an allocation gets its own ``mmap`` (default :data:`MMAP_THRESHOLD`,
            or 32 MiB where glibc refuses that).
        trim_threshold: bytes of free memory at the heap's top kept instead of given back.
        top_pad: extra bytes asked for whenever the heap grows.

    Returns:
        the settings applied, or None where nothing was changed: not glibc, or
        ``GNS_TUNE_ALLOCATOR=0`` in the environment.

    Raises:
        ValueError: a setting outside a C int, or one that glibc refuses (e.g. ``mmap_threshold`` above 32 MiB
            where glibc caps it).
    """
    global _applied
    for name, value in (("mmap_threshold", mmap_threshold), ("trim_threshold", trim_threshold), ("top_pad", top_pad)):
        if value is not None and not 0 <= int(value) < 2**31:   # mallopt takes a C int: more would wrap silently
            raise ValueError(f"tune_allocator: {name} must be 0 to {2**31 - 1} bytes, got {value}")
    if _applied is not None:
        return _applied
    if os.environ.get("GNS_TUNE_ALLOCATOR", "1").strip() in ("0", "false", "no", "off"):
        return None
    libc = _glibc()
    if libc is None:
        return None
    settings = {"mmap_threshold": MMAP_THRESHOLD if mmap_threshold is None else mmap_threshold,
                "trim_threshold": trim_threshold, "top_pad": top_pad}
    if mmap_threshold is None and libc.mallopt(_M_MMAP_THRESHOLD, settings["mmap_threshold"]) != 1:
        settings["mmap_threshold"] = _MMAP_THRESHOLD_OLD_GLIBC
    # the mmap threshold first: setting any of them turns glibc's own adjustment of both thresholds off,
    # and a trim threshold alone would leave every allocation above 128 KiB to mmap
    for name, param in (("mmap_threshold", _M_MMAP_THRESHOLD), ("trim_threshold", _M_TRIM_THRESHOLD),
                        ("top_pad", _M_TOP_PAD)):
        if libc.mallopt(param, int(settings[name])) != 1:
            raise ValueError(f"tune_allocator: glibc's mallopt refused {name} = {settings[name]} (glibc may "
                             f"cap the mmap threshold at {_MMAP_THRESHOLD_OLD_GLIBC} bytes)")
    _applied = settings
    return _applied


def _glibc() -> ctypes.CDLL | None:
    """The C library, where it is glibc (the only one with these ``mallopt`` parameters)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()
    except (OSError, AttributeError):   # musl and others: no gnu_get_libc_version
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return libc
