"""One message-passing step over any number of edge sets (an interaction network with residuals).

For every edge set ``k`` with edges ``(s -> r)`` and latents ``e^k``:

.. math::
    \\hat e^k_{sr} = \\phi^k_e([e^k_{sr}, h_s, h_r]), \\qquad
    \\hat h_i = \\phi_v([h_i, \\textstyle\\sum_{s} \\hat e^1_{si}, \\dots, \\sum_{s} \\hat e^K_{si}])

and both are applied residually: ``e <- e + ê``, ``h <- h + ĥ`` (the GNS / MeshGraphNets
processor). Each edge set has its own edge MLP; the node MLP sees one aggregate per set.

Without gradients (rollouts, the pushforward's unrolled steps) on the CPU, a block runs its edge MLPs over
pieces of ``EDGE_CHUNK_BYTES`` per ``(rows, L)`` tensor, each piece's messages summed into the nodes and its
residual written before the next piece starts: the per-edge tensors of a piece stay in the processor's cache
instead of streaming through memory a dozen times per block. The same operations on the same rows: the result
equals the whole-tensor form to rounding (``benchmarks/inference.py`` measures both, and checks it).
"""

from __future__ import annotations

import os
from typing import Sequence

import torch
from torch import Tensor, nn

from gns.nn.mlp import build_mlp
from gns.nn.scatter import scatter_sum

#: bytes of one ``(rows, L)`` float tensor per piece of the inference path (module docstring); 0: whole tensors.
#: 2 MiB: the fastest of 1-32 MiB for the main job's rollouts (latent 32) and about so at latent 128 on the 2-core
#: machine (``benchmarks/inference.py``, docs/benchmarks.md); ``GNS_EDGE_CHUNK_BYTES`` overrides it.
EDGE_CHUNK_BYTES = int(os.environ.get("GNS_EDGE_CHUNK_BYTES", 2 << 20))


def _cpu_autocast() -> bool:
    """Whether CPU autocast is on (``torch.is_autocast_enabled`` takes a device type from torch 2.4)."""
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:
        return torch.is_autocast_cpu_enabled()


class EdgeBlock(nn.Module):
    """Edge MLP on ``[e, h_sender, h_receiver]``.

    The first linear layer is applied to the three parts separately so that the sender and
    receiver projections are computed once per *node* and gathered, instead of once per
    *edge* on a concatenated ``(E, 3L)`` tensor. The parameters are exactly those of
    ``build_mlp(3L, ...)``: the result equals the concatenated form to rounding.

    ``out_size`` (default ``L``) is the width of what it returns per edge.
    """

    def __init__(self, latent_size: int, hidden_size: int, hidden_layers: int, layer_norm: bool = True,
                 out_size: int | None = None) -> None:
        super().__init__()
        self.latent_size = latent_size
        self.mlp = build_mlp(3 * latent_size, hidden_size, out_size or latent_size, hidden_layers, layer_norm)

    def forward(self, edges: Tensor, nodes: Tensor, senders: Tensor, receivers: Tensor) -> Tensor:
        """edges ``(E, L)``, nodes ``(N, L)``, senders/receivers ``(E,)`` -> ``(E, out_size)``."""
        first: nn.Linear = self.mlp[0]
        from_sender, to_receiver = self._node_projections(nodes)
        # index_select rather than node_proj[senders, :H]: same values, but its backward is an
        # index_add_ instead of index_put_ with accumulation, 2.5-2.9x faster (benchmarks/scatter.py).
        x = (torch.addmm(first.bias, edges, first.weight[:, :self.latent_size].T)
             + from_sender.index_select(0, senders) + to_receiver.index_select(0, receivers))
        for layer in self.mlp[1:]:
            x = layer(x)
        return x

    def forward_into(self, edges: Tensor, nodes: Tensor, senders: Tensor, receivers: Tensor, residual: Tensor,
                     aggregate: Tensor, rows: int) -> None:
        """Inference only: ``residual <- edges + forward(...)`` and ``aggregate += scatter_sum(forward(...),
        receivers)``, computed ``rows`` edges at a time (module docstring).

        Args:
            edges: ``(E, L)``; nodes: ``(N, L)``; senders/receivers: ``(E,)``.
            residual: ``(E, out_size)`` written; aggregate: ``(N, out_size)`` added to.
            rows: edges per piece (``>= 1``).
        """
        first: nn.Linear = self.mlp[0]
        w_edge = first.weight[:, :self.latent_size].T                                      # (L, H)
        from_sender, to_receiver = (p.contiguous() for p in self._node_projections(nodes))
        for start in range(0, edges.shape[0], rows):
            piece = slice(start, start + rows)
            x = torch.addmm(first.bias, edges[piece], w_edge)
            x += from_sender.index_select(0, senders[piece])
            x += to_receiver.index_select(0, receivers[piece])
            for layer in self.mlp[1:]:
                x = torch.relu_(x) if type(layer) is nn.ReLU else layer(x)   # in place: x is this piece's own
            aggregate.index_add_(0, receivers[piece], x)
            torch.add(edges[piece], x, out=residual[piece])

    def _node_projections(self, nodes: Tensor) -> tuple[Tensor, Tensor]:
        """The first layer's sender and receiver parts applied to every node, ``(N, H)`` each (views of one
        matmul's ``(N, 2H)``)."""
        first: nn.Linear = self.mlp[0]
        L, H = self.latent_size, first.out_features
        projections = nodes @ torch.cat([first.weight[:, L:2 * L], first.weight[:, 2 * L:]], dim=0).T   # (N, 2H)
        return projections[:, :H], projections[:, H:]

    def forward_concat(self, edges: Tensor, nodes: Tensor, senders: Tensor, receivers: Tensor) -> Tensor:
        """Reference form (concatenate then MLP); used by tests to check :meth:`forward`."""
        return self.mlp(torch.cat([edges, nodes[senders], nodes[receivers]], dim=-1))


class GraphNetBlock(nn.Module):
    """One residual message-passing step over the named edge sets."""

    def __init__(self, latent_size: int, edge_set_names: Sequence[str], hidden_size: int | None = None,
                 hidden_layers: int = 2, layer_norm: bool = True) -> None:
        super().__init__()
        hidden_size = hidden_size or latent_size
        self.edge_set_names = list(edge_set_names)
        self.edge_blocks = nn.ModuleDict(
            {name: EdgeBlock(latent_size, hidden_size, hidden_layers, layer_norm) for name in self.edge_set_names})
        self.node_mlp = build_mlp(latent_size * (1 + len(self.edge_set_names)), hidden_size, latent_size,
                                  hidden_layers, layer_norm)

    def forward(self, nodes: Tensor, edges: dict[str, Tensor],
                connectivity: dict[str, tuple[Tensor, Tensor]]) -> tuple[Tensor, dict[str, Tensor]]:
        """
        Args:
            nodes: ``(N, L)`` node latents.
            edges: name -> ``(E_k, L)`` edge latents.
            connectivity: name -> (senders ``(E_k,)``, receivers ``(E_k,)``).

        Returns:
            updated nodes ``(N, L)`` and edges (name -> ``(E_k, L)``).
        """
        if self.chunked(nodes):
            return self._forward_chunked(nodes, edges, connectivity)
        n = nodes.shape[0]
        updates, aggregates = {}, []
        for name in self.edge_set_names:
            senders, receivers = connectivity[name]
            upd = self.edge_blocks[name](edges[name], nodes, senders, receivers)  # (E_k, L)
            updates[name] = upd
            aggregates.append(scatter_sum(upd, receivers, n))  # (N, L)
        node_update = self.node_mlp(torch.cat([nodes, *aggregates], dim=-1))
        return nodes + node_update, {name: edges[name] + updates[name] for name in self.edge_set_names}

    @staticmethod
    def chunked(nodes: Tensor) -> bool:
        """Whether this call takes the piecewise inference path: no gradients, CPU, float32 without autocast,
        and ``EDGE_CHUNK_BYTES`` set."""
        return (EDGE_CHUNK_BYTES > 0 and not torch.is_grad_enabled() and nodes.device.type == "cpu"
                and nodes.dtype == torch.float32 and not _cpu_autocast())

    def _forward_chunked(self, nodes: Tensor, edges: dict[str, Tensor],
                         connectivity: dict[str, tuple[Tensor, Tensor]]) -> tuple[Tensor, dict[str, Tensor]]:
        """:meth:`forward` piece by piece over each edge set's edges (module docstring); the same result."""
        new_edges, aggregates = {}, []
        for name in self.edge_set_names:
            senders, receivers = connectivity[name]
            latents = edges[name]
            block = self.edge_blocks[name]
            residual = torch.empty_like(latents)
            aggregate = nodes.new_zeros(nodes.shape[0], latents.shape[1])
            width = max(latents.shape[1], block.mlp[0].out_features)
            rows = max(1, EDGE_CHUNK_BYTES // (latents.element_size() * width))
            block.forward_into(latents, nodes, senders, receivers, residual, aggregate, rows)
            new_edges[name] = residual
            aggregates.append(aggregate)
        return nodes + self.node_mlp(torch.cat([nodes, *aggregates], dim=-1)), new_edges
