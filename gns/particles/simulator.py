"""The learned particle simulator (GNS): features, normalization and integration around the network.

Data flow for one step::

    positions (N, C+1, D) --build_graph--> normalized Graph --EncodeProcessDecode--> (N, D)
        --acceleration_normalizer.denormalize--> per-step acceleration --integrate--> next position (N, D)

and the training target is the exact inverse of the last two arrows
(:meth:`ParticleSimulator.target_normalized_acceleration`).
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor, nn

from gns.config import ModelConfig
from gns.data import DatasetMetadata
from gns.errors import GnsInputError
from gns.geometry import as_bounds, as_periodic, check_mirror_dims
from gns.graph import EdgeSet, Graph
from gns.nn import EncodeProcessDecode
from gns.nn.encode_process_decode import DECODERS
from gns.normalization import Normalizer, OnlineNormalizer, inflate_std
from gns.particles.state import ParticleState
from gns.particles.features import (box_position, edge_features, num_wall_features, velocity_history, wall_distances,
                                   wall_lattice, wall_nearness, wall_pairs)
from gns.particles.integrate import integrate, inverse_integrate
from gns.neighbors import radius_graph
from gns.train.noise import random_walk_noise


VELOCITY_ENCODINGS = ("velocities", "differences", "near_walls")
BODY_FORCES = ("learned", "gravity")   # model.body_force (gns/config.py)


class ParticleSimulator(nn.Module):
    """GNS learned simulator for one dataset's box, statistics and particle types.

    Args:
        config: network and feature settings.
        metadata: the dataset's metadata (bounds, periodicity, statistics, particle types).
        noise_std: training noise std; inflates the velocity/acceleration normalization stds.
        wall_noise_std: the training noise's std at a wall (:meth:`training_noise`); None: ``noise_std`` everywhere.
    """

    kind = "particles"  # the domain (gns.domains)

    def __init__(self, config: ModelConfig, metadata: DatasetMetadata, noise_std: float,
                 wall_noise_std: float | None = None) -> None:
        super().__init__()
        if wall_noise_std is not None and not (wall_noise_std >= 0 and math.isfinite(wall_noise_std)):
            raise GnsInputError("the training noise at walls must be a finite number >= 0", key="train.wall_noise_std",
                                expected=">= 0, or null for train.noise_std everywhere", found=wall_noise_std)
        self.wall_noise_std = None if wall_noise_std is None else float(wall_noise_std)
        if config.decoder not in DECODERS:
            raise GnsInputError("unknown decoder", key="model.decoder", expected=DECODERS, found=config.decoder)
        if config.body_force not in BODY_FORCES:
            raise GnsInputError("unknown body force", key="model.body_force", expected=BODY_FORCES,
                                found=config.body_force)
        if config.body_force == "gravity" and config.decoder != "gated_antisymmetric":
            raise GnsInputError("a fixed body force is the gated antisymmetric decoder's shared acceleration",
                                key="model.body_force", expected="model.decoder: gated_antisymmetric",
                                found=f"model.decoder: {config.decoder}")
        if config.body_force == "gravity" and getattr(metadata, "gravity", None) is None:
            raise GnsInputError("model.body_force: gravity needs the dataset's gravity", key="gravity",
                                expected=f"a list of {metadata.dim} per-step accelerations in metadata.json",
                                found="none")
        if config.velocity_encoding not in VELOCITY_ENCODINGS:
            raise GnsInputError("unknown velocity encoding", key="model.velocity_encoding",
                                expected=VELOCITY_ENCODINGS, found=config.velocity_encoding)
        if not (config.wall_spacing >= 0 and math.isfinite(config.wall_spacing)):
            raise GnsInputError("the wall particles' spacing must be a finite number >= 0 (0: no wall particles)",
                                key="model.wall_spacing", expected=">= 0", found=config.wall_spacing)
        check_mirror_dims(config.mirror_average, metadata.dim, getattr(metadata, "gravity", None),
                          "model.mirror_average")
        if not metadata.has_statistics():
            raise GnsInputError("dataset metadata has no vel/acc statistics; run `gns stats` to back-fill them",
                                key="vel_mean/vel_std/acc_mean/acc_std")
        self.config, self.metadata = config, metadata
        self.dim = metadata.dim
        self.history = config.history
        self.radius = float(config.radius or metadata.default_connectivity_radius)
        self.num_particle_types = metadata.num_particle_types
        self.register_buffer("bounds", as_bounds(metadata.bounds))
        self.register_buffer("periodic", as_periodic(metadata.periodic_boundary_conditions, self.dim))
        self.register_buffer("kinematic_types", torch.as_tensor(list(metadata.kinematic_particle_types),
                                                                 dtype=torch.long))
        self.velocity_normalizer = Normalizer(metadata.vel_mean, inflate_std(metadata.vel_std, noise_std))
        self.acceleration_normalizer = Normalizer(metadata.acc_mean, inflate_std(metadata.acc_std, noise_std))
        self.context_size = metadata.context_size
        self.context_normalizer = OnlineNormalizer(self.context_size) if self.context_size else None
        # static wall particles (model.wall_spacing): derived from the bounds, so not saved; their own type,
        # one past the dataset's
        lattice = (wall_lattice(self.bounds, self.periodic, config.wall_spacing, self.radius)
                   if config.wall_spacing > 0 else torch.zeros(0, self.dim))
        if config.wall_spacing > 0 and len(lattice) > 1_000_000:
            raise GnsInputError("too many wall particles for this box; use a larger spacing",
                                key="model.wall_spacing", expected="at most 1e6 wall particles", found=len(lattice))
        self.register_buffer("wall_points", lattice, persistent=False)                # (W, D)
        self.wall_type = self.num_particle_types
        self.type_embedding = nn.Embedding(self.num_particle_types + (config.wall_spacing > 0),
                                           config.type_embedding_size)
        node_in = (self.history * self.dim + num_wall_features(self.periodic) + config.type_embedding_size
                   + self.context_size + (num_wall_features(self.periodic) // 2 if config.box_position else 0))
        edge_in = self.dim + 1 + (self.dim if config.edge_velocity else 0)
        self.network = EncodeProcessDecode(node_in, {"neighbors": edge_in}, self.dim, config.latent_size,
                                           config.message_passing_steps, config.hidden_layers,
                                           decoder=config.decoder, pair_edge_set="neighbors",
                                           learn_bias=config.body_force == "learned")
        # model.body_force: gravity: the network's shared term, the dataset's gravity (normalized in forward)
        self.register_buffer("body_force", torch.as_tensor(metadata.gravity, dtype=torch.float32)
                             if config.body_force == "gravity" else torch.zeros(0), persistent=False)

    # --- masks -----------------------------------------------------------------------------
    def is_kinematic(self, particle_type: Tensor) -> Tensor:
        """``(N,)`` bool: particles that follow prescribed positions and get no loss."""
        return torch.isin(particle_type, self.kinematic_types.to(particle_type.device))

    # --- graph -----------------------------------------------------------------------------
    def build_graph(self, batch: ParticleState) -> Graph:
        """Normalized graph from the last ``C+1`` positions of ``batch.position`` ``(N, W, D)``.

        With wall particles (``model.wall_spacing``) the graph has ``N + M`` nodes: the ``N`` particles
        first, then the ``M`` wall particles within one radius of some particle (per system).
        """
        position_seq = batch.position[:, -(self.history + 1):]  # (N, C+1, D)
        self._check(batch, position_seq)
        last = position_seq[:, -1]
        edge_index = radius_graph(last.detach(), self.radius, batch=batch.batch, bounds=self.bounds,
                                  periodic=self.periodic, self_loops=self.config.self_loops)  # (2, E)
        senders, receivers = edge_index[0], edge_index[1]
        raw = velocity_history(position_seq, self.bounds, self.periodic)                   # (N, C, D)
        walls = wall_distances(last, self.bounds, self.periodic, self.radius)               # (N, 2*D_np)
        types, system = batch.particle_type, batch.batch
        if len(self.wall_points):
            wall_position, wall_system, senders, receivers = self._wall_neighbours(last, walls, system, senders,
                                                                                   receivers)
            wall_position = wall_position.to(last.dtype)
            last = torch.cat([last, wall_position])                                         # (N+M, D)
            walls = torch.cat([walls, wall_distances(wall_position, self.bounds, self.periodic, self.radius)])
            raw = torch.cat([raw, raw.new_zeros(len(wall_position), *raw.shape[1:])])      # (N+M, C, D)
            types = torch.cat([types, types.new_full((len(wall_position),), self.wall_type)])
            system = torch.cat([system, wall_system])
        velocities = self.encode_velocities(raw, walls)                                     # (N+M, C, D)
        parts = [velocities.flatten(1),                                               # (N+M, C*D)
                 walls,
                 self.type_embedding(types)]                                          # (N+M, E_t)
        if self.config.box_position:
            parts.append(box_position(last, self.bounds, self.periodic))                # (N+M, D_np)
        if self.context_normalizer is not None:
            context = self.context_normalizer.normalize(batch.context, accumulate=self.training)  # (B, G)
            parts.append(context[system])
        nodes = torch.cat(parts, dim=-1)
        edges = edge_features(last, senders, receivers, self.bounds, self.periodic, self.radius)
        if self.config.edge_velocity:
            relative = (raw[senders, -1] - raw[receivers, -1]) / self.velocity_normalizer.std   # (E, D)
            edges = torch.cat([edges, relative], dim=-1)
        # the gated decoder's node term acts only within one radius of a wall (gns.nn.encode_process_decode)
        gate = wall_nearness(walls) if self.config.decoder == "gated_antisymmetric" else None
        n_node = batch.n_particles if not len(self.wall_points) else None   # wall nodes follow all particles
        return Graph(nodes, {"neighbors": EdgeSet(edges, senders, receivers)}, n_node, gate)

    def _wall_neighbours(self, last: Tensor, walls: Tensor, system: Tensor, senders: Tensor, receivers: Tensor
                         ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The wall particles within one radius of some particle, one node per (system, wall particle), and
        the edges between them and the particles, both ways (and their self-loops if the config keeps them).

        Args:
            last: ``(N, D)`` positions; walls: ``(N, 2*D_np)`` wall features; system: ``(N,)`` system ids;
            senders, receivers: ``(E,)`` the particle edges.

        Returns:
            ``(M, D)`` wall positions, ``(M,)`` their systems, and the ``(E',)`` senders and receivers with
            the wall edges added (wall node ``k`` is node ``N + k``), sorted by receiver (the particle edges keep
            their order among themselves).
        """
        n, count = len(last), len(self.wall_points)
        candidates = (wall_nearness(walls) > 0).nonzero(as_tuple=True)[0]                   # (C,)
        particle, lattice = wall_pairs(last.detach(), candidates, self.wall_points, self.radius, self.bounds,
                                       self.periodic)                                       # (P,), (P,)
        key = system[particle] * count + lattice                                            # (P,)
        unique, node = torch.unique(key, return_inverse=True)                               # (M,), (P,)
        node = node + n
        wall_ids = n + torch.arange(len(unique), device=last.device)
        loops = [wall_ids] if self.config.self_loops else []
        senders = torch.cat([senders, node, particle, *loops])
        receivers = torch.cat([receivers, particle, node, *loops])
        order = torch.argsort(receivers, stable=True)       # sorted by receiver, as radius_graph's edges are
        return self.wall_points[unique % count], unique // count, senders[order], receivers[order]

    def encode_velocities(self, velocities: Tensor, walls: Tensor | None = None) -> Tensor:
        """``(N, C, D)`` velocities -> ``(N, C, D)`` normalized node inputs (``config.velocity_encoding``).

        ``"near_walls"`` needs ``walls``, the ``(N, 2*D_np)`` wall features: the last velocity is
        scaled by the particle's nearness to its closest wall, ``1 - distance / radius`` (0 farther
        than one radius; always 0 in a box without walls).
        """
        if self.config.velocity_encoding == "velocities":
            return self.velocity_normalizer.normalize(velocities)
        changes = self.acceleration_normalizer.normalize(velocities[:, 1:] - velocities[:, :-1])    # (N, C-1, D)
        last = self.velocity_normalizer.normalize(velocities[:, -1:])                                # (N, 1, D)
        if self.config.velocity_encoding == "near_walls":
            if walls is None:
                raise ValueError("the near_walls velocity encoding needs the wall features")
            last = velocities[:, -1:] / self.velocity_normalizer.std * wall_nearness(walls)[:, None, None]
        return torch.cat([changes, last], dim=1)

    def _check(self, batch: ParticleState, position_seq: Tensor) -> None:
        if position_seq.ndim != 3 or position_seq.shape[1] != self.history + 1 or position_seq.shape[2] != self.dim:
            raise GnsInputError("position window has the wrong shape", key="position",
                                expected=f"(N, >={self.history + 1}, {self.dim})",
                                found=tuple(batch.position.shape))
        if batch.particle_type.numel() and int(batch.particle_type.max()) >= self.num_particle_types:
            raise GnsInputError("particle type out of range", key="particle_type",
                                expected=f"< {self.num_particle_types}", found=int(batch.particle_type.max()))
        if self.context_size and (batch.context is None or batch.context.shape[-1] != self.context_size):
            raise GnsInputError("context missing or of the wrong width", key="context",
                                expected=self.context_size,
                                found=None if batch.context is None else tuple(batch.context.shape))

    # --- the stepper interface (gns.rollout.Stepper) and the training interface (gns.train.losses) ---
    target_field = "position"
    predicted_fields = ("position",)
    state_fields = ("position",)
    input_fields = ()

    @property
    def window(self) -> int:
        """Positions a step reads: ``C + 1``."""
        return self.history + 1

    def held(self, state: ParticleState) -> Tensor:
        """``(N,)`` bool: kinematic particles (their positions are prescribed)."""
        return self.is_kinematic(state.particle_type)

    def mirrored(self, state: ParticleState, dims: tuple[int, ...], flip: Tensor) -> ParticleState:
        """``state`` with the systems where ``flip`` ``(B,)`` is true reflected about the box's centre along
        ``dims``: ``x -> lo + hi - x`` for every frame of the window (its own inverse)."""
        index = torch.as_tensor(list(dims), dtype=torch.long, device=state.position.device)
        lo, hi = self.bounds[index, 0].to(state.position), self.bounds[index, 1].to(state.position)
        position = state.position.clone()
        part = position[..., index]                                                      # (N, W, k)
        chosen = flip.to(position.device)[state.batch][:, None, None]                   # (N, 1, 1)
        position[..., index] = torch.where(chosen, lo + hi - part, part)
        return state.with_position(position)

    def mirror_average(self, dims: tuple[int, ...]) -> None:
        """Average every prediction over the box's reflections along ``dims`` from now on
        (``model.mirror_average``; ``()``: off). It has no weights, so a trained model may take it."""
        dims = tuple(int(d) for d in dims)
        check_mirror_dims(dims, self.dim, getattr(self.metadata, "gravity", None), "model.mirror_average")
        self.config = dataclasses.replace(self.config, mirror_average=dims)

    def _reflections(self) -> list[tuple[int, ...]]:
        """Every subset of ``config.mirror_average``, the identity first: the group the prediction averages over
        (the identity alone in training mode where ``config.mirror_average_in_training`` is False)."""
        dims = tuple(self.config.mirror_average)
        if self.training and not self.config.mirror_average_in_training:
            dims = ()
        return [tuple(d for j, d in enumerate(dims) if mask >> j & 1) for mask in range(2 ** len(dims))]

    # --- model -----------------------------------------------------------------------------
    def forward(self, batch: ParticleState) -> Tensor:
        """``(N, D)`` normalized acceleration predicted for the step after the window (wall particles' rows
        dropped).

        With ``config.mirror_average`` the ``K = 2^k`` reflected copies of the batch go through the network as one
        batch; each copy's acceleration is reflected back and the ``K`` are averaged (in physical units, so a
        non-zero acceleration mean reflects correctly): ``a(x) = mean_g g a_net(g x)``, exactly equivariant.
        """
        reflections = self._reflections()
        if len(reflections) == 1:
            return self._network(self.build_graph(batch))[:len(batch.particle_type)]
        n, every = len(batch.particle_type), torch.ones(batch.num_systems, dtype=torch.bool)
        copies = type(batch).concat([self.mirrored(batch, dims, every) if dims else batch for dims in reflections])
        out = self._network(self.build_graph(copies))[:n * len(reflections)]                     # (K*N, D)
        acceleration = self.acceleration_normalizer.denormalize(out).view(len(reflections), n, self.dim)
        sign = torch.ones(len(reflections), 1, self.dim, dtype=acceleration.dtype, device=acceleration.device)
        for k, dims in enumerate(reflections):
            sign[k, 0, list(dims)] = -1.0
        return self.acceleration_normalizer.normalize((acceleration * sign).mean(0))

    def _network(self, graph: Graph) -> Tensor:
        """``(N_graph, D)`` the network's normalized output, plus the fixed body force where
        ``model.body_force`` is ``gravity`` (the gated decoder's shared term: normalized, so that it decodes to
        exactly the dataset's gravity)."""
        out = self.network(graph)
        if not len(self.body_force):
            return out
        offset = self.acceleration_normalizer.normalize(self.body_force.to(out.dtype)[None])     # (1, D)
        return out + offset

    def integrate(self, state: ParticleState, normalized: Tensor) -> dict[str, Tensor]:
        """Decode the network output ``(N, D)`` and integrate one step: ``{"position": (N, D)}``."""
        acceleration = self.acceleration_normalizer.denormalize(normalized)
        return {"position": integrate(state.position, acceleration, self.bounds, self.periodic)}

    def predict_next(self, state: ParticleState) -> dict[str, Tensor]:
        """``{"position": (N, D)}`` after the window (kinematic particles are *not* overwritten here)."""
        return self.integrate(state, self(state))

    def predict_next_position(self, batch: ParticleState) -> Tensor:
        """``(N, D)``: decode the network output and integrate one step."""
        return self.predict_next(batch)["position"]

    def target(self, state: ParticleState, next_fields: dict[str, Tensor], mask: Tensor | None = None) -> Tensor:
        """``(N, D)`` normalized target for ``next_fields["position"]``: the inverse of :meth:`integrate`."""
        return self.target_normalized_acceleration(state.position, next_fields["position"])

    def training_noise(self, state: ParticleState, noise_std: float, generator: torch.Generator | None = None
                       ) -> Tensor:
        """``(N, W, D)`` random-walk noise on the position window (none on kinematic particles).

        With a wall noise std (``train.wall_noise_std``) a particle's std is ``noise_std`` blended into it by the
        particle's nearness to its closest wall at the window's last frame (``1 - distance / radius``, 0 farther
        than one radius; :func:`wall_nearness`, the weight of the near-walls inputs' last velocity).
        """
        if self.wall_noise_std is None:
            return random_walk_noise(state.position, noise_std, self.held(state), generator)
        unit = random_walk_noise(state.position, 1.0, self.held(state), generator)                # (N, W, D)
        near = wall_nearness(wall_distances(state.position[:, -1], self.bounds, self.periodic, self.radius))  # (N,)
        std = noise_std + (self.wall_noise_std - noise_std) * near
        return unit * std[:, None, None]

    def target_normalized_acceleration(self, position_seq: Tensor, next_position: Tensor) -> Tensor:
        """The inverse of decoding + integrating: what the network should output.

        Args:
            position_seq: ``(N, W, D)`` input positions (noisy during training).
            next_position: ``(N, D)`` target positions (shifted by the last input's noise in training).
        """
        acceleration = inverse_integrate(position_seq, next_position, self.bounds, self.periodic)
        return self.acceleration_normalizer.normalize(acceleration)
