"""Encode-process-decode: the physics-free network shared by every simulator in gns.

It maps a :class:`gns.graph.Graph` of (already normalized) node and edge features to
per-node outputs. It knows nothing of particles, meshes, units, walls or time steps.

Three decoders:

* ``"node"`` (GNS, MeshGraphNets): an MLP of each node's final latent.
* ``"antisymmetric"``: a node term of each node's *encoded* latent (its own inputs only) plus
  the sum over its incoming edges of antisymmetric pair terms,

  .. math::
      y_i = \\phi_v(h^0_i) + \\sum_{s \\to i} \\big(\\phi_e([e_{si}, h_s, h_i]) - \\phi_e([e_{is}, h_i, h_s])\\big),

  so that the pair terms of a symmetric edge set sum to zero over all nodes: whatever the
  network learns about neighbours, it cannot move a group's common output (for a simulator
  that outputs accelerations: internal forces conserve momentum, Newton's third law).
* ``"gated_antisymmetric"``: the same pair terms, a learned constant ``b`` shared by every node,
  and a node term of each node's *processed* latent weighted by the graph's per-node gate
  ``g_i`` in ``[0, 1]`` (:attr:`gns.graph.Graph.node_gate`),

  .. math::
      y_i = b + g_i \\, \\phi_v(h_i) + \\sum_{s \\to i} \\big(\\phi_e([e_{si}, h_s, h_i]) - \\phi_e([e_{is}, h_i, h_s])\\big).

  Where the simulator sets the gate to zero (for particles: farther than one radius from any
  wall), a group's mean output is exactly ``b`` whatever its inputs: a body in free flight
  falls with one learned acceleration. Where it is not zero, the node term reads everything
  the processor gathered (a wall must carry the weight of the whole column above it).

How the network computes, as opposed to what (:mod:`gns.nn.execution`): ``precision`` ``"bf16"``
runs the forward (and so the backward) under bf16 autocast and returns outputs in the input's
dtype; ``checkpoint_processor`` recomputes each processor block's activations in the backward
instead of keeping them (gradient checkpointing: the memory of one block instead of all of them).
Neither changes the parameters, so a checkpoint loads whatever they are.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from gns.graph import Graph, reverse_edges
from gns.nn.graph_net import EdgeBlock, GraphNetBlock
from gns.nn.mlp import build_mlp
from gns.nn.scatter import scatter_sum

DECODERS = ("node", "antisymmetric", "gated_antisymmetric")
PRECISIONS = ("fp32", "bf16")


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
        decoder: ``"node"``, ``"antisymmetric"`` or ``"gated_antisymmetric"`` (module docstring).
        pair_edge_set: the (symmetric) edge set whose pair terms the antisymmetric decoder sums
            (default: the first).
        precision: ``"fp32"`` or ``"bf16"`` (autocast; module docstring).
        checkpoint_processor: recompute the processor blocks in the backward (module docstring).
        learn_bias: the gated decoder's shared constant ``b`` is a parameter; False: none (``b = 0``), for an
            owner that adds a known one to the output.
    """

    def __init__(self, node_in: int, edge_in: Mapping[str, int], node_out: int, latent_size: int = 128,
                 message_passing_steps: int = 10, hidden_layers: int = 2, hidden_size: int | None = None,
                 decoder: str = "node", pair_edge_set: str | None = None, precision: str = "fp32",
                 checkpoint_processor: bool = False, learn_bias: bool = True) -> None:
        super().__init__()
        if decoder not in DECODERS:
            raise ValueError(f"unknown decoder {decoder!r} (expected one of {DECODERS})")
        self.precision, self.checkpoint_processor = "fp32", False
        self.set_execution(precision, checkpoint_processor)
        hidden_size = hidden_size or latent_size
        self.edge_set_names = list(edge_in)
        self.node_encoder = build_mlp(node_in, hidden_size, latent_size, hidden_layers)
        self.edge_encoders = nn.ModuleDict(
            {name: build_mlp(width, hidden_size, latent_size, hidden_layers) for name, width in edge_in.items()})
        self.processor = nn.ModuleList(
            [GraphNetBlock(latent_size, self.edge_set_names, hidden_size, hidden_layers)
             for _ in range(message_passing_steps)])
        self.decoder_kind = decoder
        self.decoder = build_mlp(latent_size, hidden_size, node_out, hidden_layers, layer_norm=False)
        # the gated decoder's shared constant: learned, or left to the owner, who adds its own (learn_bias=False)
        self.bias = nn.Parameter(torch.zeros(node_out)) if decoder == "gated_antisymmetric" and learn_bias else None
        if decoder in ("antisymmetric", "gated_antisymmetric"):
            self.pair_edge_set = pair_edge_set or self.edge_set_names[0]
            if self.pair_edge_set not in self.edge_set_names:
                raise ValueError(f"pair edge set {self.pair_edge_set!r} is not one of {self.edge_set_names}")
            self.pair_decoder = EdgeBlock(latent_size, hidden_size, hidden_layers, layer_norm=False,
                                          out_size=node_out)

    def set_execution(self, precision: str | None = None, checkpoint_processor: bool | None = None) -> None:
        """Change how the forward computes (``None`` keeps a setting as it is); the parameters stay."""
        if precision is not None:
            if precision not in PRECISIONS:
                raise ValueError(f"unknown precision {precision!r} (expected one of {PRECISIONS})")
            self.precision = precision
        if checkpoint_processor is not None:
            self.checkpoint_processor = bool(checkpoint_processor)

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
        recompute = self.checkpoint_processor and torch.is_grad_enabled()
        for block in self.processor:
            if recompute:  # keep only the block's inputs; its activations are recomputed in the backward
                nodes, edges = checkpoint(block, nodes, edges, connectivity, use_reentrant=False)
            else:
                nodes, edges = block(nodes, edges, connectivity)
            if return_history:
                history.append(edges)
        return (nodes, edges, history) if return_history else (nodes, edges)

    def forward(self, graph: Graph) -> Tensor:
        """``graph`` with ``nodes (N, F_n)`` -> ``(N, node_out)`` in the dtype of ``graph.nodes``."""
        if self.precision == "fp32":
            return self._forward(graph)
        with torch.autocast(graph.nodes.device.type, dtype=torch.bfloat16):
            out = self._forward(graph)
        return out.to(graph.nodes.dtype)

    def _forward(self, graph: Graph) -> Tensor:
        encoded, edges = self.encode(graph)
        nodes, edges = self.process(encoded, edges, graph)
        if self.decoder_kind == "node":
            return self.decoder(nodes)
        pairs = self.pair_sum(nodes, edges[self.pair_edge_set], graph)
        if self.decoder_kind == "antisymmetric":
            return self.decoder(encoded) + pairs
        if graph.node_gate is None:
            raise ValueError("the gated antisymmetric decoder needs the graph's node_gate (one weight per node)")
        gate = graph.node_gate.to(nodes.dtype)[:, None]                                   # (N, 1)
        out = gate * self.decoder(nodes) + pairs
        return out if self.bias is None else self.bias + out

    def pair_sum(self, nodes: Tensor, edges: Tensor, graph: Graph) -> Tensor:
        """``(N, node_out)``: per node, the sum over incoming edges of the antisymmetric pair terms.

        Args:
            nodes: ``(N, L)`` processed node latents; edges: ``(E, L)`` processed latents of the pair edge set.
        """
        edge_set = graph.edge_sets[self.pair_edge_set]
        senders, receivers = edge_set.senders, edge_set.receivers
        reverse = reverse_edges(senders, receivers, nodes.shape[0])                       # (E,)
        forward_terms = self.pair_decoder(edges, nodes, senders, receivers)               # (E, O) phi_e(e_si, h_s, h_i)
        pair = forward_terms - forward_terms[reverse]                                     # (E, O), antisymmetric
        return scatter_sum(pair, receivers, nodes.shape[0])
