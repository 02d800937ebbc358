"""Reference ground-truth simulators that generate the built-in datasets.

Solvers depend on optional packages (Taichi: ``pip install "gns[solvers]"``) that are imported
only when a simulation runs, so importing this package never needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gns.solvers.water2d import Water2DConfig, generate_water2d

__all__ = ["Water2DConfig", "generate_water2d"]


def __getattr__(name: str) -> Any:
    # Lazy, so that ``python -m gns.solvers.water2d`` does not find its module already imported.
    if name in __all__:
        from gns.solvers import water2d

        return getattr(water2d, name)
    raise AttributeError(f"module 'gns.solvers' has no attribute '{name}'")
