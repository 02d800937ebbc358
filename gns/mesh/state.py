"""The state of meshes: a window of node fields over fixed meshes (:class:`MeshState`)."""

from __future__ import annotations

from typing import Mapping

from torch import Tensor

from gns.state import State

__all__ = ["MeshState"]


class MeshState(State):
    """A batch of meshes with a window of their dynamic fields (a :class:`gns.state.State`).

    Args:
        mesh_pos: ``(N, Dm)`` mesh-space coordinates of every node: attribute ``"mesh_pos"``.
        node_type: ``(N,)`` int64 DeepMind node types: attribute ``"node_type"``.
        mesh_edges: ``(2, E)`` int64 mesh edges (both directions), indices into the batch's nodes:
            link ``"mesh"``.
        fields: name -> ``(N, W, F)`` the last ``W`` frames of each dynamic field (static input
            fields repeated over the window).
        n_node: ``(B,)`` int64 nodes per mesh (nodes of mesh ``b`` are contiguous).
        cells: ``(C, K)`` int64 cells (triangles, tetrahedra), or None: link ``"cells"`` (stored
            ``(K, C)``); kept so that a mesh changed by an intervention can still be drawn.
    """

    def __init__(self, mesh_pos: Tensor, node_type: Tensor, mesh_edges: Tensor, fields: Mapping[str, Tensor],
                 n_node: Tensor, cells: Tensor | None = None) -> None:
        links = {"mesh": mesh_edges}
        if cells is not None:
            links["cells"] = cells.T
        super().__init__(fields=fields, static={"mesh_pos": mesh_pos, "node_type": node_type}, links=links, n=n_node)

    @property
    def mesh_pos(self) -> Tensor:
        return self.static["mesh_pos"]

    @property
    def node_type(self) -> Tensor:
        return self.static["node_type"]

    @property
    def mesh_edges(self) -> Tensor:
        return self.links["mesh"]

    @property
    def cells(self) -> Tensor | None:
        """``(C, K)`` or None."""
        cells = self.links.get("cells")
        return None if cells is None else cells.T

    @property
    def n_node(self) -> Tensor:
        return self.n
