"""The learned object simulator: rigid objects as the nodes of a graph, on the shared network.

Data flow for one step::

    ObjectState (position, angle and action over the last C+1 frames) --build_graph--> normalized
        Graph (objects; "pairs" and "springs" edges in the receiver's frame) --EncodeProcessDecode--> (K, 3)
        --acceleration_normalizer.denormalize--> per-step linear (2) and angular (1) acceleration
        --integrate--> next position (K, 2) and angle (K, 1)

and the training target is the exact inverse of the last two arrows (:meth:`ObjectSimulator.target`).
An Interaction Network (Battaglia et al. 2016) is this with one message-passing step
(``model.message_passing_steps = 1``): a configured block, not another network.

Node features: the last ``C`` per-step linear and angular velocities (normalized by the dataset's
statistics, inflated by the training noise as in GNS); the shape (one-hot); size, log mass, log
moment, friction and restitution (through an online normalizer, like MeshGraphNets' features);
the actions of the previous and the current frame (both act on the target acceleration, which
spans two steps) as the per-step accelerations they would give the free object, ``F / m dt^2`` and
``tau / I dt^2`` (normalized like the outputs: a force means nothing to the network until divided by
the mass it pushes); the gaps of the shape to the four walls (:mod:`gns.objects.geometry`); the
cosine and sine of the angle (the walls and actions are in the world frame); with ``objects.impact``,
the velocity and spin change that impacts with the walls would give the object
(:func:`gns.objects.features.wall_impact_features`). Edge features:
:func:`gns.objects.features.edge_features` between pairs of objects (with ``objects.impact``, also the
contact frame and the impact estimate of :func:`gns.objects.features.impact_features`), and
:func:`gns.objects.features.spring_features` along both directions of each spring (an edge set
that is empty in scenes without springs, so that every scene batches with every other); with
``objects.obstacles``, :func:`gns.objects.features.obstacle_features` from each static obstacle to each
object of its scene (an obstacle is not a node: nothing about it changes; its edge starts and ends at
the object it acts on, like a wall's features on a node but as many as the scene has).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gns.config import ModelConfig, ObjectConfig
from gns.data.objects import ObjectMetadata
from gns.errors import GnsInputError
from gns.geometry import as_bounds, as_periodic
from gns.graph import EdgeSet, Graph
from gns.nn import EncodeProcessDecode
from gns.normalization import Normalizer, OnlineNormalizer, inflate_std
from gns.objects.features import (all_pairs, both_directions, edge_features, impact_change_columns, impact_features,
                                  num_edge_features, num_obstacle_features, num_obstacle_node_features,
                                  num_spring_features, num_wall_features, obstacle_features, obstacle_node_features,
                                  obstacle_pairs, spring_features, velocity_history, wall_features,
                                  wall_impact_features, EDGE_FRAMES, NUM_WALL_IMPACT_FEATURES)
from gns.objects.geometry import body_vertices, contact_frame, place, wall_gaps
from gns.objects.integrate import integrate, inverse_integrate
from gns.objects.state import ObjectState, check_object_state
from gns.neighbors import radius_graph
from gns.train.noise import random_walk_noise

__all__ = ["ObjectSimulator", "EDGES", "STATISTICS"]

EDGES = ("all", "radius")
STATISTICS = ("vel_mean", "vel_std", "acc_mean", "acc_std", "angular_vel_mean", "angular_vel_std",
              "angular_acc_mean", "angular_acc_std")
_ATTRIBUTES = 6                                     # size (2), log mass, log moment, friction, restitution


def angular_noise_ratio(metadata: ObjectMetadata) -> float:
    """Angular noise std per unit of linear noise std: the ratio of the two per-step velocity stds."""
    stats = metadata.statistics
    return float(sum(stats["angular_vel_std"]) / len(stats["angular_vel_std"])
                 / (sum(stats["vel_std"]) / len(stats["vel_std"])))


class ObjectSimulator(nn.Module):
    """Learned simulator of rigid objects in one dataset's box.

    Args:
        config: network settings (latent size, message-passing steps, MLP depth).
        object_config: object settings (history, edges, length scale).
        metadata: the dataset's metadata (box, time step, shape codes, statistics).
        noise_std: training noise std on the last linear per-step velocity (m/step); the angular
            noise keeps the ratio of the velocity stds (:func:`angular_noise_ratio`). Inflates the
            normalization stds as in GNS.

    Raises:
        GnsInputError: the metadata lacks statistics, or a setting is out of range.
    """

    kind = "objects"  # the domain (gns.domains)

    def __init__(self, config: ModelConfig, object_config: ObjectConfig, metadata: ObjectMetadata,
                 noise_std: float) -> None:
        super().__init__()
        stats = metadata.statistics or {}
        missing = [k for k in STATISTICS if k not in stats]
        if missing:
            raise GnsInputError("object metadata lacks velocity/acceleration statistics", key="statistics",
                                expected=list(STATISTICS), found=sorted(stats))
        if config.decoder != "node":  # pair terms f_ij = -f_ji would be wrong for accelerations of unequal masses
            raise GnsInputError("the object simulator has only the node decoder", key="model.decoder",
                                expected="node", found=config.decoder)
        if object_config.edges not in EDGES:
            raise GnsInputError("unknown object edges", key="objects.edges", expected=EDGES, found=object_config.edges)
        if object_config.history < 1:
            raise GnsInputError("objects.history must be at least 1", key="objects.history", expected=">= 1",
                                found=object_config.history)
        if not object_config.radius > 0:
            raise GnsInputError("objects.radius must be positive", key="objects.radius", expected="> 0 (m)",
                                found=object_config.radius)
        self.config, self.object_config, self.metadata = config, object_config, metadata
        self.history = int(object_config.history)
        self.scale = float(object_config.radius)
        if object_config.contact_scale < 0:
            raise GnsInputError("objects.contact_scale must not be negative", key="objects.contact_scale",
                                expected=">= 0 (m; 0: coarse gaps only)", found=object_config.contact_scale)
        self.contact_scale = float(object_config.contact_scale)
        if object_config.edge_frame not in EDGE_FRAMES:
            raise GnsInputError("unknown objects.edge_frame", key="objects.edge_frame", expected=EDGE_FRAMES,
                                found=object_config.edge_frame)
        self.edge_frame = object_config.edge_frame
        self.dt = float(metadata.dt)
        self.angular_ratio = angular_noise_ratio(metadata)
        self.noise_std, self.angular_noise_std = float(noise_std), float(noise_std) * self.angular_ratio
        self.num_shapes = max(metadata.shape_kinds.values()) + 1
        self.register_buffer("bounds", as_bounds(metadata.bounds))
        # no periodic dimension: the box has walls (read by the box divergence checks, gns.rollout.box_checks)
        self.register_buffer("periodic", as_periodic(None, 2))
        self.velocity_normalizer = Normalizer(stats["vel_mean"], inflate_std(stats["vel_std"], self.noise_std))
        self.angular_velocity_normalizer = Normalizer(stats["angular_vel_mean"],
                                                      inflate_std(stats["angular_vel_std"], self.angular_noise_std))
        self.acceleration_normalizer = Normalizer(
            [*stats["acc_mean"], *stats["angular_acc_mean"]],
            torch.cat([inflate_std(stats["acc_std"], self.noise_std),
                       inflate_std(stats["angular_acc_std"], self.angular_noise_std)]))
        self.attribute_normalizer = OnlineNormalizer(_ATTRIBUTES, std_epsilon=1e-3)
        # velocities (2C linear + C angular), wall gaps (4 or 8), shape one-hot, attributes, actions (2 x 3),
        # cos/sin angle (2)
        node_in = 3 * self.history + num_wall_features(self.contact_scale) + self.num_shapes + _ATTRIBUTES + 6 + 2
        self.approach, self.impact = bool(object_config.approach), bool(object_config.impact)
        node_in += NUM_WALL_IMPACT_FEATURES * self.impact
        self.obstacles = bool(object_config.obstacles)
        edge_sets = {"pairs": num_edge_features(self.contact_scale, self.approach, self.impact),
                     "springs": num_spring_features()}
        if self.obstacles:
            node_in += num_obstacle_node_features(self.contact_scale, self.impact)
            edge_sets["obstacles"] = num_obstacle_features(self.num_shapes, self.contact_scale, self.approach,
                                                           self.impact)
        self.network = EncodeProcessDecode(node_in, edge_sets, 3, config.latent_size, config.message_passing_steps,
                                           config.hidden_layers)

    # --- the stepper interface (gns.rollout.Stepper) and the training interface (gns.train.losses) ---
    target_field = "position"
    predicted_fields = ("position", "angle")
    state_fields = ("position", "angle", "action")
    input_fields = ("action",)

    @property
    def window(self) -> int:
        """Frames a step reads: ``C + 1``."""
        return self.history + 1

    def held(self, state: ObjectState) -> Tensor:
        """``(K,)`` bool: no object is held (every object is simulated)."""
        return torch.zeros(state.num_entities, dtype=torch.bool, device=state.device)

    def training_noise(self, state: ObjectState, noise_std: float, generator: torch.Generator | None = None
                       ) -> dict[str, Tensor]:
        """Random-walk noise (:func:`gns.train.noise.random_walk_noise`) on the position ``(K, W, 2)``
        and angle ``(K, W, 1)`` windows; the angle's std keeps the ratio of the velocity stds."""
        return {"position": random_walk_noise(state.position, noise_std, None, generator),
                "angle": random_walk_noise(state.angle, noise_std * self.angular_ratio, None, generator)}

    # --- graph -------------------------------------------------------------------------------
    def edge_index(self, state: ObjectState, position: Tensor) -> Tensor:
        """``(2, E)`` the edges of ``objects.edges`` between the objects at ``position`` ``(K, 2)``."""
        if self.object_config.edges == "all":
            return all_pairs(state.n.to(position.device))
        return radius_graph(position.detach(), self.scale, batch=state.batch, self_loops=False)

    def build_graph(self, state: ObjectState) -> Graph:
        """Normalized graph of the last ``C + 1`` frames of ``state`` (attribute statistics accumulate in training)."""
        check_object_state(state, self.window)
        position, angle = state.position[:, -self.window:], state.angle[:, -self.window:]    # (K, C+1, 2), (K, C+1, 1)
        velocity, spin = velocity_history(position), velocity_history(angle)                  # (K, C, 2), (K, C, 1)
        current, turn = position[:, -1], angle[:, -1, 0]                                        # (K, 2), (K,)
        vertices, rounding = body_vertices(state.shape, state.size)                            # (K, 4, 2), (K,)
        world = place(vertices, current, turn)                                                  # (K, 4, 2)
        walls = wall_gaps(world, rounding, self.bounds)                                         # (K, 4) m
        nodes = torch.cat([
            self.velocity_normalizer.normalize(velocity).flatten(1),                            # (K, 2C)
            self.angular_velocity_normalizer.normalize(spin).flatten(1),                        # (K, C)
            wall_features(walls, self.scale, self.contact_scale),                               # (K, 4|8)
            nn.functional.one_hot(state.shape, self.num_shapes).to(current),                    # (K, shapes)
            self.attribute_normalizer.normalize(self.attributes(state), accumulate=self.training),  # (K, 6)
            self.acceleration_normalizer.normalize(self.action_acceleration(state)).flatten(1),  # (K, 6)
            torch.cos(turn)[:, None], torch.sin(turn)[:, None]], dim=-1)                          # (K, 2)
        senders, receivers = self.edge_index(state, current)
        impact = self.impact_inputs(state, velocity[:, -1], spin[:, -1, 0]) if self.impact else None
        if impact is not None:
            coming, coming_spin, mass, moment, restitution, scale = impact
            nodes = torch.cat([nodes, wall_impact_features(world, rounding, current, coming, coming_spin, mass, moment,
                                                           restitution, walls, scale)], dim=-1)        # (K, 3)
        velocity_scale = self.velocity_normalizer.std.mean()
        edges = edge_features(current, turn, velocity[:, -1], spin[:, -1, 0], world, rounding, senders, receivers,
                              self.scale, velocity_scale, self.angular_velocity_normalizer.std[0], self.contact_scale,
                              self.edge_frame, self.approach,
                              impact)
        spring_senders, spring_receivers = both_directions(state.springs)                   # (2S,) each
        springs = spring_features(current, turn, velocity[:, -1], state.mass, state.spring_values.repeat(2, 1),
                                  spring_senders, spring_receivers, self.scale, velocity_scale,
                                  self.acceleration_normalizer.std[:2].mean(), self.dt, self.edge_frame)
        edge_sets = {"pairs": EdgeSet(edges, senders, receivers),
                     "springs": EdgeSet(springs, spring_senders, spring_receivers)}
        if self.obstacles:  # an obstacle is no node: its edge carries it, sent from the object it acts on
            objects, flat = obstacle_pairs(state.batch.to(current.device), state.system["obstacle_shape"])
            blocked = obstacle_features(state.obstacles, objects, flat, self.num_shapes, current, turn, velocity[:, -1],
                                        spin[:, -1, 0], world, rounding, self.scale, velocity_scale,
                                        self.angular_velocity_normalizer.std[0], self.contact_scale, self.edge_frame,
                                        self.approach, impact)
            edge_sets["obstacles"] = EdgeSet(blocked, objects, objects)
            nodes = torch.cat([nodes, obstacle_node_features(blocked, objects, nodes.shape[0], self.contact_scale,
                                                             self.approach, self.impact)], dim=-1)
        else:
            self.refuse_obstacles(state)
        return Graph(nodes, edge_sets, state.n)

    def refuse_obstacles(self, state: ObjectState) -> None:
        """Raise if ``state`` has obstacles this model cannot see (``objects.obstacles`` off).

        Raises:
            GnsInputError: naming the scene and its obstacles.
        """
        shapes = state.system.get("obstacle_shape")
        if shapes is not None and shapes.shape[1] and bool((shapes >= 0).any()):
            scene = int((shapes >= 0).any(dim=1).nonzero()[0])
            raise GnsInputError("this model has no obstacle inputs (trained with objects.obstacles false) and the "
                                "scene has static obstacles it would not see", key=f"scene {scene}/obstacle_shape",
                                expected="no obstacles, or a model trained with objects.obstacles true",
                                found=f"{int((shapes[scene] >= 0).sum())} obstacles")

    def attributes(self, state: ObjectState) -> Tensor:
        """``(K, 6)`` size (2), log mass, log moment, friction, restitution (before normalization)."""
        return torch.cat([state.size, torch.log(state.mass)[:, None], torch.log(state.moment)[:, None],
                          state.friction[:, None], state.restitution[:, None]], dim=-1)

    def impact_inputs(self, state: ObjectState, velocity: Tensor, spin: Tensor) -> tuple[Tensor, ...]:
        """What :func:`gns.objects.features.impact_features` reads: the velocity ``(K, 2)`` and spin ``(K,)`` the
        objects would have over the next step if free (the last ones plus the mean of the two actions'
        accelerations, :meth:`action_acceleration`), mass, moment, restitution and the acceleration scale."""
        push = self.action_acceleration(state).mean(dim=1)                                        # (K, 3)
        return (velocity + push[:, :2], spin + push[:, 2], state.mass, state.moment, state.restitution,
                self.acceleration_normalizer.std)

    @torch.no_grad()
    def impact_estimate(self, state: ObjectState) -> Tensor:
        """``(K, 3)`` the velocity (2) and spin change per step that frictionless impacts with the other objects,
        the walls and the obstacles would give each object in the step after the window (m/step^2, rad/step^2,
        world frame):
        the sums of the ``objects.impact`` inputs, whether or not the model reads them (a diagnostic:
        ``benchmarks/objects_contacts.py --impact-estimate``)."""
        check_object_state(state, self.window)
        position, angle = state.position[:, -self.window:], state.angle[:, -self.window:]
        velocity, spin = velocity_history(position), velocity_history(angle)
        current, turn = position[:, -1], angle[:, -1, 0]
        vertices, rounding = body_vertices(state.shape, state.size)
        world = place(vertices, current, turn)
        coming, coming_spin, mass, moment, restitution, _ = self.impact_inputs(state, velocity[:, -1], spin[:, -1, 0])
        unit = torch.ones(3, dtype=current.dtype, device=current.device)
        senders, receivers = all_pairs(state.n.to(current.device))
        contact = contact_frame(world[receivers], rounding[receivers], world[senders], rounding[senders])
        pairs = impact_features(current, coming, coming_spin, mass, moment, restitution, contact, senders, receivers,
                                lambda v: v, self.scale, self.velocity_normalizer.std.mean(), unit)
        total = torch.zeros_like(current[:, :1]).expand(-1, 3).clone().index_add_(0, receivers, pairs[:, 6:9])
        objects, flat = obstacle_pairs(state.batch.to(current.device), state.system["obstacle_shape"])
        if objects.numel():
            blocked = obstacle_features(state.obstacles, objects, flat, self.num_shapes, current, turn, velocity[:, -1],
                                        spin[:, -1, 0], world, rounding, self.scale,
                                        self.velocity_normalizer.std.mean(), self.angular_velocity_normalizer.std[0],
                                        impact=(coming, coming_spin, mass, moment, restitution, unit), frame="world")
            total.index_add_(0, objects, blocked[:, impact_change_columns()])                       # dv (2), dw (1)
        return total + wall_impact_features(world, rounding, current, coming, coming_spin, mass, moment, restitution,
                                            wall_gaps(world, rounding, self.bounds), unit)

    def action_acceleration(self, state: ObjectState) -> Tensor:
        """``(K, 2, 3)`` the actions of the previous and the current frame as the per-step accelerations they
        give the free object: ``F / m dt^2`` (m/step^2) and ``tau / I dt^2`` (rad/step^2). Both act on the
        target: the change of per-step velocity from ``x_t - x_{t-1}`` to ``x_{t+1} - x_t`` is, for a free
        object, about the mean of the two (the current action alone leaves 17% of the free objects'
        acceleration unexplained on the default set, both together 2%: ``docs/objects.md``)."""
        action = state.action[:, -2:]                                                            # (K, 2, 3)
        inertia = torch.stack([state.mass, state.mass, state.moment], dim=-1)[:, None]          # (K, 1, 3)
        return action / inertia * self.dt ** 2

    # --- model -------------------------------------------------------------------------------
    def forward(self, state: ObjectState) -> Tensor:
        """``(K, 3)`` normalized linear (2) and angular (1) acceleration for the step after the window."""
        return self.network(self.build_graph(state))

    def integrate(self, state: ObjectState, normalized: Tensor) -> dict[str, Tensor]:
        """Decode the network output ``(K, 3)`` and integrate one step: ``{"position": (K, 2), "angle": (K, 1)}``."""
        acceleration = self.acceleration_normalizer.denormalize(normalized)                      # (K, 3)
        return integrate(state.fields, {"position": acceleration[:, :2], "angle": acceleration[:, 2:]})

    def predict_next(self, state: ObjectState) -> dict[str, Tensor]:
        """The next position and angle of every object."""
        return self.integrate(state, self(state))

    def target(self, state: ObjectState, next_fields: dict[str, Tensor], mask: Tensor | None = None) -> Tensor:
        """``(K, 3)`` normalized target: the inverse of :meth:`integrate` for ``next_fields``' position and angle."""
        acceleration = inverse_integrate(state.fields, {name: next_fields[name] for name in self.predicted_fields})
        return self.acceleration_normalizer.normalize(torch.cat([acceleration["position"], acceleration["angle"]], -1))
