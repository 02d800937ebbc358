"""Windows of a mesh split as :class:`~gns.mesh.state.MeshState` s (mesh edges computed once per trajectory)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from gns.data.mesh import MeshSplit
from gns.data.windows import WindowSampler
from gns.errors import GnsInputError
from gns.mesh.state import MeshState
from gns.mesh.topology import edges_from_cells, validate_mesh
from gns.mesh.types import NodeType


class MeshWindows(WindowSampler):
    """Windows of a mesh split, drawn uniformly over all valid windows (read lazily).

    Args:
        split: the trajectories.
        fields: the dynamic fields to read.
        world_field: the world-space position field of a Lagrangian mesh (used to validate obstacle cells).
        static_fields: static per-node fields to read too; a window repeats them over its frames.
    """

    def __init__(self, split: MeshSplit, fields: Sequence[str], world_field: str | None = None,
                 static_fields: Sequence[str] = ()) -> None:
        if any(split.nodes_per_frame(i).min() != split.nodes_per_frame(i).max() for i in range(len(split))):
            raise GnsInputError("the mesh changes over time (remeshed, DeepMind dynamic_varlen); the mesh "
                                "simulator needs one mesh per trajectory", file=split.path)
        super().__init__([split.num_frames(i) for i in range(len(split))], split.path)
        self.split = split
        self.fields = list(fields)
        self.static_fields = list(static_fields)
        self.world_field = world_field
        self._static: dict[int, tuple[Tensor, Tensor, Tensor, Tensor]] = {}

    @classmethod
    def for_simulator(cls, simulator, split: MeshSplit) -> "MeshWindows":
        """Windows of every field ``simulator`` predicts, and of the input fields it reads."""
        specs = simulator.metadata.fields
        dynamic_inputs = [f for f in simulator.input_fields if specs[f].dynamic]
        static_inputs = [f for f in simulator.input_fields if not specs[f].dynamic]
        return cls(split, [*simulator.predicted_fields, *dynamic_inputs],
                   simulator.target_field if simulator.lagrangian else None, static_inputs)

    def keys(self) -> list[str]:
        return self.split.keys()

    def static(self, index: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``mesh_pos (N, Dm)``, ``node_type (N,)``, mesh edges ``(2, E)`` and cells ``(C, K)`` of one
        trajectory (cached).

        The mesh is validated on first use (:func:`~gns.mesh.topology.validate_mesh`): cells of
        obstacle nodes in world space at the first frame (an obstacle's mesh-space coordinates need
        not form a flat mesh), every other cell in mesh space.
        """
        if index not in self._static:
            traj = self.split.read_window(index, 0, 1, fields=[])
            mesh_pos = torch.from_numpy(np.asarray(traj.mesh_pos, dtype=np.float32))
            cells = torch.from_numpy(np.asarray(traj.cells, dtype=np.int64))
            node_type = torch.from_numpy(np.asarray(traj.node_type, dtype=np.int64).reshape(-1))
            self._validate(index, traj.key, mesh_pos, cells, node_type)
            self._static[index] = (mesh_pos, node_type, edges_from_cells(cells, mesh_pos.shape[0]), cells)
        return self._static[index]

    def _validate(self, index: int, key: str | None, mesh_pos: Tensor, cells: Tensor, node_type: Tensor) -> None:
        in_range = bool(((cells >= 0) & (cells < mesh_pos.shape[0])).all())
        obstacle = node_type == int(NodeType.OBSTACLE)
        on_obstacle = obstacle[cells.clamp(0, mesh_pos.shape[0] - 1)].any(dim=1) if in_range else \
            torch.zeros(cells.shape[0], dtype=torch.bool)
        if bool((~on_obstacle).any()) or not bool(on_obstacle.any()):
            validate_mesh(mesh_pos, cells[~on_obstacle], file=self.split.path, key=key)
        if bool(on_obstacle.any()) and self.world_field is not None:
            world = self.split.read_window(index, 0, 1, fields=[self.world_field]).fields[self.world_field][0]
            validate_mesh(torch.from_numpy(np.asarray(world, dtype=np.float32)), cells[on_obstacle],
                          file=self.split.path, key=key)

    def read(self, index: int, start: int, stop: int) -> MeshState:
        """Frames ``[start, stop)`` of one trajectory (fields ``(N, stop - start, F)``)."""
        mesh_pos, node_type, mesh_edges, cells = self.static(index)
        data = self.split.read_window(index, start, stop, fields=self.fields)
        fields = {}
        for name in self.fields:
            values = np.asarray(data.fields[name], dtype=np.float32)                      # (W, N, F)
            fields[name] = torch.from_numpy(np.ascontiguousarray(values.transpose(1, 0, 2)))
        for name in self.static_fields:
            if name not in data.static_fields:
                raise GnsInputError("no such static field", file=self.split.path, key=f"{data.key}/{name}",
                                    expected=f"one of {sorted(data.static_fields)}", found=name)
            values = torch.from_numpy(np.asarray(data.static_fields[name], dtype=np.float32))  # (N, F)
            fields[name] = values[:, None, :].expand(-1, stop - start, -1).contiguous()
        return MeshState(mesh_pos, node_type, mesh_edges, fields, torch.tensor([mesh_pos.shape[0]]), cells)
