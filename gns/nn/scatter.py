"""Sum aggregation of edge messages into nodes.

Native ``index_add_`` is the default. ``torch_scatter.scatter_add`` is used only when the
optional package is installed *and* selected (``GNS_SCATTER=torch_scatter``), because the
benchmark in ``benchmarks/scatter.py`` did not show it faster on CPU (see docs/benchmarks.md).
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

_BACKEND = os.environ.get("GNS_SCATTER", "native")


def scatter_sum(src: Tensor, index: Tensor, num_nodes: int, backend: str | None = None) -> Tensor:
    """Sum rows of ``src`` into ``num_nodes`` buckets.

    Args:
        src: ``(E, F)`` messages.
        index: ``(E,)`` int64 receiver of each message.
        num_nodes: number of output rows ``N``.
        backend: ``"native"`` (``index_add_``) or ``"torch_scatter"``; default from ``GNS_SCATTER``.

    Returns:
        ``(N, F)`` with ``out[n] = sum_{e: index[e] = n} src[e]`` (zeros for nodes without edges).
    """
    backend = backend or _BACKEND
    if backend == "torch_scatter":
        import torch_scatter  # optional extra: pip install "gns[scatter]"

        return torch_scatter.scatter_add(src, index, dim=0, dim_size=num_nodes)
    out = torch.zeros((num_nodes, src.shape[1]), dtype=src.dtype, device=src.device)
    return out.index_add_(0, index, src)
