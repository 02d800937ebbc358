"""The learned mesh simulator (MeshGraphNets, Pfaff et al. 2020) around the shared network.

One class serves Lagrangian meshes, whose nodes move (cloth: the target field is ``world_pos``,
order 2, the model predicts its per-step acceleration), and Eulerian meshes, whose nodes stay put
(flow: the target field is ``velocity``, order 1, the model predicts its per-step change, plus
extra output fields such as ``pressure`` predicted directly).

Data flow for one step::

    MeshState (fields over the last ``window`` frames) --build_graph--> normalized Graph
        ("mesh" edges from cells, "world" edges from proximity) --EncodeProcessDecode-->
        (N, F + O) normalized --output_normalizer.denormalize--> k-th difference of the target
        field (+ outputs) --integrate--> next frame of every predicted field

and the training target is the exact inverse of the last two arrows (:meth:`MeshSimulator.target`).
The node features are the last ``mesh.history`` velocities (order 2; finite differences of the
positions) or frames of the field (order 1), oldest first; MeshGraphNets reads one (history 1). A
longer history tells the model more of the state between frames, as the five velocities of GNS do.
Nodes whose type is not in ``simulated_node_types`` (handles, obstacles, inflow, walls) are not
integrated: rollouts overwrite them with their prescribed values.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from gns.config import MeshConfig, ModelConfig
from gns.data.mesh import MeshMetadata
from gns.errors import GnsInputError
from gns.graph import EdgeSet, Graph
from gns.mesh.constraints import StrainLimit, edge_groups, limit_strain, undirected_rest_edges
from gns.mesh.features import mesh_edge_features, strain_features, world_edge_features
from gns.mesh.state import MeshState
from gns.mesh.types import NODE_TYPE_SIZE, one_hot
from gns.mesh.world_edges import world_edges
from gns.nn import EncodeProcessDecode
from gns.normalization import OnlineNormalizer
from gns.train.noise import random_walk_noise

# MeshGraphNets' training noise: 3e-3 on cloth positions (gamma 0.1), 2e-2 on flow velocity (gamma 1).
DEFAULT_NOISE = {2: (3e-3, 0.1), 1: (2e-2, 1.0)}


def noise_settings(metadata: MeshMetadata, noise_std: float | None, gamma: float | None) -> tuple[float, float]:
    """Training noise std and gamma for a dataset: the given values, else MeshGraphNets' per domain kind."""
    default_std, default_gamma = DEFAULT_NOISE[metadata.target.order]
    return (default_std if noise_std is None else float(noise_std),
            default_gamma if gamma is None else float(gamma))


class MeshSimulator(nn.Module):
    """MeshGraphNets learned simulator for one dataset's fields and node types.

    Args:
        config: network settings (latent size, message passing steps, MLP depth).
        mesh_config: mesh settings (world edges, simulated node types, normalizer accumulation).
        metadata: the dataset's metadata (target field and order, output fields, world-edge radius).
    """

    kind = "mesh"  # the domain (gns.domains)

    def __init__(self, config: ModelConfig, mesh_config: MeshConfig, metadata: MeshMetadata) -> None:
        super().__init__()
        self.config, self.mesh_config, self.metadata = config, mesh_config, metadata
        self.target_field = metadata.target.field
        self.order = int(metadata.target.order)
        self.output_fields = [f for f in metadata.outputs if f != self.target_field]
        fields = metadata.fields
        if self.target_field not in fields:
            raise GnsInputError("target field is not a field of the dataset", key="target.field",
                                expected=sorted(fields), found=self.target_field)
        self.field_dim = int(fields[self.target_field].dim)
        # exogenous per-node fields (cloth: the wind), read from the data at every step, never predicted
        self.input_fields = list(metadata.inputs) if mesh_config.use_inputs else []
        self.input_dims = [int(fields[f].dim) for f in self.input_fields]
        self.output_dims = [int(fields[f].dim) for f in self.output_fields]
        self.lagrangian = self.order == 2  # the target field is the node positions themselves
        self.history = int(mesh_config.history)
        if config.decoder != "node":
            raise GnsInputError("the mesh simulator has only the node decoder", key="model.decoder",
                                expected="node", found=config.decoder)
        if self.history < 1:
            raise GnsInputError("mesh.history must be at least 1", key="mesh.history", expected=">= 1",
                                found=mesh_config.history)
        radius = mesh_config.world_edge_radius or metadata.world_edge_radius
        self.world_radius = float(radius) if (self.lagrangian and mesh_config.world_edges and radius) else None
        self.register_buffer("simulated_types", torch.as_tensor(mesh_config.simulated_node_types, dtype=torch.long))
        self.register_buffer("noisy_types", torch.as_tensor(mesh_config.noisy_node_types, dtype=torch.long))

        acc = mesh_config.max_accumulations
        node_in = self.field_dim * self.history + NODE_TYPE_SIZE + sum(self.input_dims)
        edge_in = {"mesh": metadata.mesh_dim + 1 + ((self.field_dim + 1) if self.lagrangian else 0)}
        self.strain = bool(mesh_config.strain_features) and self.lagrangian
        if self.strain:
            edge_in["mesh"] += 1 + self.field_dim
        if self.world_radius is not None:
            edge_in["world"] = self.field_dim + 1
        self.node_normalizer = OnlineNormalizer(node_in, acc)
        self.edge_normalizers = nn.ModuleDict({k: OnlineNormalizer(w, acc) for k, w in edge_in.items()})
        self.output_size = self.field_dim + sum(self.output_dims)
        self.output_normalizer = OnlineNormalizer(self.output_size, acc)
        self.network = EncodeProcessDecode(node_in, edge_in, self.output_size, config.latent_size,
                                           config.message_passing_steps, config.hidden_layers)
        self._strain_limit: StrainLimit | None = None
        self._projection_stats: dict[str, float] = {}
        self._projection_edges: tuple | None = None    # (the mesh's tensors, its edges once and their groups)
        self.limit_strain(mesh_config.strain_limit, mesh_config.strain_limit_iterations)

    # --- the named projection (gns.mesh.constraints), off by default ----------------------------
    def limit_strain(self, limit: float | None, iterations: int | None = None) -> None:
        """Switch strain limiting on (``limit``: the longest edge over its rest length, > 1) or off (None) for
        every later rollout step (:mod:`gns.mesh.constraints`); Lagrangian meshes only. ``mesh_config`` follows."""
        iterations = self.mesh_config.strain_limit_iterations if iterations is None else int(iterations)
        if limit is not None and not self.lagrangian:
            raise GnsInputError("strain limiting moves the nodes of a Lagrangian mesh (cloth); this model's nodes "
                                "do not move", key="mesh.strain_limit", expected="null for an Eulerian mesh",
                                found=limit)
        self._strain_limit = None if limit is None else StrainLimit(float(limit), iterations)
        self.mesh_config = dataclasses.replace(self.mesh_config, strain_limit=None if limit is None else float(limit),
                                               strain_limit_iterations=iterations)
        self.reset_projections()

    def reset_projections(self) -> None:
        """Start counting what the projection does afresh (:attr:`projections`)."""
        self._projection_edges = None
        self._projection_stats = {"steps": 0.0, "node_moves": 0.0, "moved_max": 0.0, "strain_before_max": 0.0,
                                  "strain_after_max": 0.0, "iterations_max": 0.0}

    @property
    def projections(self) -> dict[str, dict[str, float]]:
        """The named projections this model's rollouts apply, with what they did since the last
        :meth:`reset_projections`: ``{}`` when none (the default), else ``{"strain_limit": {"limit",
        "iterations", "steps", "node_moves", "moved_max" (m), "strain_before_max", "strain_after_max",
        "iterations_max"}}`` (strains: the largest edge length over rest length found before and left after)."""
        if self._strain_limit is None:
            return {}
        return {"strain_limit": {"limit": self._strain_limit.limit, "iterations": float(self._strain_limit.iterations),
                                 **self._projection_stats}}

    def project(self, state: MeshState, frames: dict[str, Tensor]) -> dict[str, Tensor]:
        """The rollout driver's projection hook (:func:`gns.rollout.rollout`): ``frames`` (the next frame of
        every predicted field, held nodes already prescribed) with the strain limited, or as they are when
        the projection is off."""
        if self._strain_limit is None:
            return frames
        key = (state.mesh_edges, state.node_type, state.mesh_pos)   # the same tensors over a rollout's steps
        cached = self._projection_edges
        if cached is None or any(a is not b for a, b in zip(cached[0], key)):
            movable = self.is_simulated(state.node_type)
            senders, receivers, rest = undirected_rest_edges(state.mesh_edges, state.mesh_pos, movable)
            cached = self._projection_edges = (key, (senders, receivers, rest, movable,
                                                     edge_groups(senders, receivers, len(movable))))
        senders, receivers, rest, movable, groups = cached[1]
        position, done = limit_strain(frames[self.target_field], senders, receivers, rest, movable,
                                      self._strain_limit, groups)
        stats = self._projection_stats
        stats["steps"] += 1
        stats["node_moves"] += done["moved"]
        for name, value in (("moved_max", done["moved_max"]), ("strain_before_max", done["strain_before"]),
                            ("strain_after_max", done["strain_after"]), ("iterations_max", done["iterations"])):
            stats[name] = max(stats[name], value)
        return {**frames, self.target_field: position}

    # --- masks -------------------------------------------------------------------------------
    def is_simulated(self, node_type: Tensor) -> Tensor:
        """``(N,)`` bool: nodes the model integrates (and the loss and metrics cover)."""
        return torch.isin(node_type, self.simulated_types.to(node_type.device))

    def is_noisy(self, node_type: Tensor) -> Tensor:
        """``(N,)`` bool: nodes whose inputs get training noise."""
        return torch.isin(node_type, self.noisy_types.to(node_type.device))

    # --- the stepper interface (gns.rollout.Stepper) and the training interface (gns.train.losses) ---
    @property
    def predicted_fields(self) -> list[str]:
        """The fields a step predicts: the target field, then the output fields."""
        return [self.target_field, *self.output_fields]

    @property
    def state_fields(self) -> list[str]:
        """The fields a step reads over its window: the target field and the input fields."""
        return [self.target_field, *self.input_fields]

    def held(self, state: MeshState) -> Tensor:
        """``(N,)`` bool: nodes the model does not integrate (they take prescribed values)."""
        return ~self.is_simulated(state.node_type)

    def training_noise(self, state: MeshState, noise_std: float, generator: torch.Generator | None = None
                       ) -> Tensor:
        """``(N, W, F)`` noise on the target field's window, on the noisy node types only.

        MeshGraphNets: Gaussian noise of std ``noise_std`` on the current frame. With a velocity
        history (order 2, ``mesh.history`` > 1) it is a random walk on the velocities
        (:func:`gns.train.noise.random_walk_noise`, as for particles) whose last velocity has std
        ``noise_std``; order 1 with a history gets independent noise on every input frame.
        """
        history = state.fields[self.target_field]
        noisy = self.is_noisy(state.node_type)
        if self.order == 2:
            return random_walk_noise(history, noise_std, kinematic=~noisy, generator=generator)
        noise = torch.randn(history.shape, generator=generator, device=history.device) * noise_std
        return noise * noisy[:, None, None].to(noise.dtype)

    @property
    def window(self) -> int:
        """Frames of the target field a step needs as input: ``order + history - 1`` (MeshGraphNets'
        cloth: 2, previous and current; flow: 1)."""
        return self.order + self.history - 1

    # --- graph -------------------------------------------------------------------------------
    def _dynamic_input(self, state: MeshState) -> Tensor:
        """``(N, H * F)`` per-node input, oldest first: the last ``H = history`` velocities (order 2,
        finite differences) or frames of the field (order 1)."""
        seq = state.fields[self.target_field]                                          # (N, W, F)
        if seq.ndim != 3 or seq.shape[1] < self.window or seq.shape[2] != self.field_dim:
            raise GnsInputError("field window has the wrong shape", key=self.target_field,
                                expected=f"(N, >={self.window}, {self.field_dim})", found=tuple(seq.shape))
        seq = seq[:, -self.window:]
        if self.order == 2:
            seq = seq[:, 1:] - seq[:, :-1]                                             # (N, H, F) velocities
        return seq.reshape(seq.shape[0], -1)

    def _input_features(self, state: MeshState) -> list[Tensor]:
        """``(N, F_i)`` current frame of each input field (cloth: the wind at every node)."""
        out = []
        for name, dim in zip(self.input_fields, self.input_dims):
            seq = state.fields.get(name)
            if seq is None:
                raise GnsInputError("the state lacks an input field the model reads", key=name,
                                    expected=f"fields {self.input_fields}", found=sorted(state.fields))
            if seq.ndim != 3 or seq.shape[2] != dim or seq.shape[0] != state.node_type.shape[0]:
                raise GnsInputError("input field window has the wrong shape", key=name,
                                    expected=f"({state.node_type.shape[0]}, W, {dim})", found=tuple(seq.shape))
            out.append(seq[:, -1])
        return out

    def build_graph(self, state: MeshState) -> Graph:
        """Normalized graph of the last frames of ``state`` (normalizers accumulate in training mode)."""
        accumulate = self.training
        nodes = torch.cat([self._dynamic_input(state), one_hot(state.node_type, NODE_TYPE_SIZE).to(state.mesh_pos),
                           *self._input_features(state)], dim=-1)                       # (N, F + 9 + inputs)
        current = state.fields[self.target_field][:, -1] if self.lagrangian else None  # (N, 3) world positions
        edge_sets = {}
        mesh_features = mesh_edge_features(state.mesh_pos, current, state.mesh_edges)
        if self.strain:
            mesh_features = torch.cat([mesh_features, strain_features(mesh_features, state.mesh_pos.shape[1])], -1)
        edge_sets["mesh"] = EdgeSet(self.edge_normalizers["mesh"].normalize(mesh_features, accumulate),
                                    state.mesh_edges[0], state.mesh_edges[1])
        if self.world_radius is not None:
            pairs = world_edges(current.detach(), self.world_radius, state.mesh_edges, batch=state.batch)
            features = world_edge_features(current, pairs)
            edge_sets["world"] = EdgeSet(self.edge_normalizers["world"].normalize(features, accumulate),
                                         pairs[0], pairs[1])
        return Graph(self.node_normalizer.normalize(nodes, accumulate), edge_sets, state.n_node)

    # --- model -------------------------------------------------------------------------------
    def forward(self, state: MeshState) -> Tensor:
        """``(N, F + O)`` normalized outputs for the step after the window."""
        return self.network(self.build_graph(state))

    def integrate(self, state: MeshState, normalized: Tensor) -> dict[str, Tensor]:
        """Decode the network output and step every predicted field: name -> ``(N, F)`` next frame."""
        decoded = self.output_normalizer.denormalize(normalized)                       # (N, F + O)
        seq = state.fields[self.target_field]
        change = decoded[:, :self.field_dim]
        if self.order == 2:
            nxt = 2 * seq[:, -1] - seq[:, -2] + change
        else:
            nxt = seq[:, -1] + change
        out = {self.target_field: nxt}
        offset = self.field_dim
        for name, dim in zip(self.output_fields, self.output_dims):
            out[name] = decoded[:, offset:offset + dim]
            offset += dim
        return out

    def predict_next(self, state: MeshState) -> dict[str, Tensor]:
        """Next frame of the target and output fields (prescribed nodes are *not* overwritten here)."""
        return self.integrate(state, self(state))

    def target_raw(self, state: MeshState, next_fields: dict[str, Tensor]) -> Tensor:
        """``(N, F + O)`` un-normalized target: the inverse of :meth:`integrate`."""
        seq = state.fields[self.target_field]
        nxt = next_fields[self.target_field]
        change = nxt - 2 * seq[:, -1] + seq[:, -2] if self.order == 2 else nxt - seq[:, -1]
        return torch.cat([change, *[next_fields[name] for name in self.output_fields]], dim=-1)

    def target(self, state: MeshState, next_fields: dict[str, Tensor], mask: Tensor | None = None) -> Tensor:
        """``(N, F + O)`` normalized target; in training mode the output normalizer accumulates the
        rows of ``mask`` (the simulated nodes) first."""
        raw = self.target_raw(state, next_fields)
        if self.training:
            self.output_normalizer.accumulate(raw if mask is None else raw[mask])
        return self.output_normalizer.normalize(raw)
