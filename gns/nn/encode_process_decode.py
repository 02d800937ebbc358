"""Encode-process-decode: the physics-free network shared by every simulator in gns.

It maps a :class:`gns.graph.Graph` of (already normalized) node and edge features to
per-node outputs. It knows nothing of particles, meshes, units, walls or time steps.
"""

from __future__ import annotations

from typing import Mapping

from torch import Tensor, nn

from gns.graph import Graph
from gns.nn.graph_net import GraphNetBlock
from gns.nn.mlp import build_mlp


class EncodeProcessDecode(nn.Module):
    """Encoder MLPs -> ``message_passing_steps`` residual :class:`GraphNetBlock` s -> decoder MLP.

    Args:
        node_in: node feature width ``F_n``.
        edge_in: edge-set name -> edge feature width ``F_e``.
        node_out: output width per node.
        latent_size: width of node and edge latents (GNS: 128).
        message_passing_steps: number of processor blocks, unshared weights (GNS: 10).
        hidden_layers: hidden layers per MLP (GNS: 2).
        hidden_size: hidden width of every MLP (default ``latent_size``).
    """

    def __init__(self, node_in: int, edge_in: Mapping[str, int], node_out: int, latent_size: int = 128,
                 message_passing_steps: int = 10, hidden_layers: int = 2, hidden_size: int | None = None) -> None:
        super().__init__()
        hidden_size = hidden_size or latent_size
        self.edge_set_names = list(edge_in)
        self.node_encoder = build_mlp(node_in, hidden_size, latent_size, hidden_layers)
        self.edge_encoders = nn.ModuleDict(
            {name: build_mlp(width, hidden_size, latent_size, hidden_layers) for name, width in edge_in.items()})
        self.processor = nn.ModuleList(
            [GraphNetBlock(latent_size, self.edge_set_names, hidden_size, hidden_layers)
             for _ in range(message_passing_steps)])
        self.decoder = build_mlp(latent_size, hidden_size, node_out, hidden_layers, layer_norm=False)

    def encode(self, graph: Graph) -> tuple[Tensor, dict[str, Tensor]]:
        """Node latents ``(N, L)`` and edge latents (name -> ``(E_k, L)``)."""
        missing = set(self.edge_set_names) - set(graph.edge_sets)
        if missing:
            raise ValueError(f"graph lacks edge sets {sorted(missing)} (has {sorted(graph.edge_sets)})")
        nodes = self.node_encoder(graph.nodes)
        edges = {name: self.edge_encoders[name](graph.edge_sets[name].features) for name in self.edge_set_names}
        return nodes, edges

    def process(self, nodes: Tensor, edges: dict[str, Tensor], graph: Graph,
                return_history: bool = False):
        """Run the processor; with ``return_history`` also return the edge latents after every step."""
        connectivity = {name: (graph.edge_sets[name].senders, graph.edge_sets[name].receivers)
                        for name in self.edge_set_names}
        history = [edges]
        for block in self.processor:
            nodes, edges = block(nodes, edges, connectivity)
            if return_history:
                history.append(edges)
        return (nodes, edges, history) if return_history else (nodes, edges)

    def forward(self, graph: Graph) -> Tensor:
        """``graph`` with ``nodes (N, F_n)`` -> ``(N, node_out)``."""
        nodes, edges = self.encode(graph)
        nodes, _ = self.process(nodes, edges, graph)
        return self.decoder(nodes)
