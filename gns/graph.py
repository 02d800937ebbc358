"""The graph container every simulator hands to the network.

A :class:`Graph` holds node features and any number of named edge sets (a particle graph
has one, ``"neighbors"``; a mesh graph has ``"mesh"`` and ``"world"``). Several graphs are
batched by concatenating nodes and edges and offsetting edge indices, the same convention
as jraph and PyTorch Geometric, so a batch is itself a :class:`Graph` with ``n_node`` set.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import Tensor


@dataclass
class EdgeSet:
    """One set of directed edges.

    Attributes:
        features: ``(E, F_e)`` edge features.
        senders: ``(E,)`` int64 index of the source node of each edge.
        receivers: ``(E,)`` int64 index of the node each edge's message is summed into.
    """

    features: Tensor
    senders: Tensor
    receivers: Tensor

    def __post_init__(self) -> None:
        e = self.features.shape[0]
        if self.senders.shape != (e,) or self.receivers.shape != (e,):
            raise ValueError(
                f"edge set: features has {e} rows but senders {tuple(self.senders.shape)} and "
                f"receivers {tuple(self.receivers.shape)} (expected ({e},) each)")

    @property
    def edge_index(self) -> Tensor:
        """``(2, E)`` [senders; receivers], the PyTorch Geometric layout."""
        return torch.stack([self.senders, self.receivers])


@dataclass
class Graph:
    """Node features plus named edge sets.

    Attributes:
        nodes: ``(N, F_n)`` node features.
        edge_sets: name -> :class:`EdgeSet`; indices refer to rows of ``nodes``.
        n_node: ``(B,)`` int64 nodes per graph when this is a batch of ``B`` graphs
            (nodes of graph ``b`` are contiguous); ``None`` for a single graph.
        node_gate: ``(N,)`` weight in ``[0, 1]`` of each node's own output term, read by the gated
            antisymmetric decoder (:mod:`gns.nn.encode_process_decode`); ``None`` for the others.
    """

    nodes: Tensor
    edge_sets: dict[str, EdgeSet] = field(default_factory=dict)
    n_node: Tensor | None = None
    node_gate: Tensor | None = None

    def __post_init__(self) -> None:
        if self.node_gate is not None and tuple(self.node_gate.shape) != (self.nodes.shape[0],):
            raise ValueError(f"graph: node_gate has shape {tuple(self.node_gate.shape)}, expected "
                             f"({self.nodes.shape[0]},), one weight per node")

    @property
    def num_nodes(self) -> int:
        return int(self.nodes.shape[0])

    @property
    def num_graphs(self) -> int:
        return 1 if self.n_node is None else int(self.n_node.numel())

    def batch_index(self) -> Tensor:
        """``(N,)`` graph id of every node."""
        n_node = self.n_node if self.n_node is not None else torch.tensor([self.num_nodes])
        return torch.repeat_interleave(
            torch.arange(n_node.numel(), device=self.nodes.device), n_node.to(self.nodes.device))

    def to(self, device: torch.device | str) -> "Graph":
        return Graph(
            nodes=self.nodes.to(device),
            edge_sets={k: EdgeSet(e.features.to(device), e.senders.to(device), e.receivers.to(device))
                       for k, e in self.edge_sets.items()},
            n_node=None if self.n_node is None else self.n_node.to(device),
            node_gate=None if self.node_gate is None else self.node_gate.to(device))

    # --- PyTorch Geometric interop -------------------------------------------------------
    def to_pyg(self):
        """A ``torch_geometric.data.Data`` (one edge set) or ``HeteroData``-free ``Data`` with
        ``edge_index_<name>``/``edge_attr_<name>`` for several edge sets."""
        from torch_geometric.data import Data

        if len(self.edge_sets) == 1:
            (name, es), = self.edge_sets.items()
            return Data(x=self.nodes, edge_index=es.edge_index, edge_attr=es.features, edge_set=name)
        data = Data(x=self.nodes)
        for name, es in self.edge_sets.items():
            data[f"edge_index_{name}"] = es.edge_index
            data[f"edge_attr_{name}"] = es.features
        return data

    @staticmethod
    def from_pyg(data, edge_set: str = "neighbors") -> "Graph":
        """Build a :class:`Graph` from a PyG ``Data`` or ``Batch`` (``x``, ``edge_index``, ``edge_attr``)."""
        if data.x is None or data.edge_index is None:
            raise ValueError("PyG data needs x and edge_index")
        ei = data.edge_index
        attr = data.edge_attr if data.edge_attr is not None else ei.new_zeros((ei.shape[1], 0), dtype=data.x.dtype)
        n_node = None
        if hasattr(data, "ptr") and data.ptr is not None:
            n_node = data.ptr[1:] - data.ptr[:-1]
        return Graph(data.x, {edge_set: EdgeSet(attr, ei[0], ei[1])}, n_node)


def batch_graphs(graphs: list[Graph]) -> Graph:
    """Concatenate graphs into one batch graph (edge indices offset by the node counts before them).

    All graphs must have the same edge-set names and feature widths.
    """
    if not graphs:
        raise ValueError("batch_graphs needs at least one graph")
    names = list(graphs[0].edge_sets)
    counts = [g.num_nodes for g in graphs]
    offsets = torch.tensor([0] + counts[:-1]).cumsum(0).tolist()
    edge_sets = {}
    for name in names:
        parts = [g.edge_sets[name] for g in graphs]
        edge_sets[name] = EdgeSet(
            torch.cat([p.features for p in parts]),
            torch.cat([p.senders + o for p, o in zip(parts, offsets)]),
            torch.cat([p.receivers + o for p, o in zip(parts, offsets)]))
    n_node = torch.cat([g.n_node if g.n_node is not None else torch.tensor([g.num_nodes]) for g in graphs])
    gated = [g.node_gate is not None for g in graphs]
    if any(gated) and not all(gated):
        raise ValueError("batch_graphs: some graphs have a node_gate and some do not")
    gate = torch.cat([g.node_gate for g in graphs]) if all(gated) else None
    return Graph(torch.cat([g.nodes for g in graphs]), edge_sets, n_node.to(graphs[0].nodes.device), gate)


def replace_nodes(graph: Graph, nodes: Tensor) -> Graph:
    return replace(graph, nodes=nodes)


def reverse_edges(senders: Tensor, receivers: Tensor, num_nodes: int) -> Tensor:
    """For each edge ``s -> r``, the index of the edge ``r -> s`` of the same set.

    Args:
        senders, receivers: ``(E,)`` int64.
        num_nodes: nodes the indices refer to.

    Returns:
        ``(E,)`` int64 ``rev`` with ``senders[rev] == receivers`` and ``receivers[rev] == senders``
        (a self-loop is its own reverse).

    Raises:
        ValueError: an edge has no reverse (the edge set is not symmetric) or appears twice.
    """
    key = senders * num_nodes + receivers                                   # (E,) unique per directed edge
    order = torch.argsort(key)
    sorted_key = key[order]
    if sorted_key.numel() > 1 and bool((sorted_key[1:] == sorted_key[:-1]).any()):
        raise ValueError("edge set has a repeated edge; reverse edges are ambiguous")
    wanted = receivers * num_nodes + senders                                # (E,) key of each reverse edge
    position = torch.searchsorted(sorted_key, wanted).clamp(max=max(key.numel() - 1, 0))
    found = sorted_key[position] == wanted if key.numel() else wanted.new_zeros(0, dtype=torch.bool)
    if not bool(found.all()):
        missing = int((~found).nonzero()[0, 0])
        raise ValueError(f"edge set is not symmetric: edge {int(senders[missing])} -> {int(receivers[missing])} "
                         "has no reverse")
    return order[position]
