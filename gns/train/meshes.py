"""Training task for the mesh simulator: what the shared loop (:mod:`gns.train.loop`) needs from meshes.

The loop, optimizer, schedule, checkpoints, resume and pushforward schedule are the particle
simulator's; only windows, noise and the loss differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from gns.config import Config, config_from_dict
from gns.data.mesh import MeshMetadata, MeshSplit, load_mesh_metadata, open_mesh_split
from gns.data.windows import WindowIndex
from gns.errors import GnsInputError
from gns.mesh.simulator import MeshSimulator, MeshState, noise_settings
from gns.mesh.topology import edges_from_cells, validate_mesh
from gns.mesh.types import NodeType
from gns.train.checkpoint import check_compatible, load_checkpoint
from gns.train.losses import PushforwardSchedule, masked_mse, unroll_for
from gns.train.noise import random_walk_noise
from gns.train.particles import LOSSES, resolve_device


class MeshWindowSampler(WindowIndex):
    """Windows of a mesh split as batched :class:`MeshState` s (mesh edges computed once per trajectory).

    Args:
        split: the trajectories (read lazily, one window at a time).
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
        self._static: dict[int, tuple[Tensor, Tensor, Tensor]] = {}

    def static(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        """``mesh_pos (N, Dm)``, ``node_type (N,)`` and mesh edges ``(2, E)`` of one trajectory (cached).

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
            self._static[index] = (mesh_pos, node_type, edges_from_cells(cells, mesh_pos.shape[0]))
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

    def load(self, items: list[tuple[int, int]], window: int) -> MeshState:
        """Read the windows and batch them (fields ``(N, window, F)``)."""
        mesh_pos, node_type, edges, counts = [], [], [], []
        fields: dict[str, list[Tensor]] = {name: [] for name in [*self.fields, *self.static_fields]}
        offset = 0
        for traj, start in items:
            pos, types, mesh_edges = self.static(traj)
            data = self.split.read_window(traj, start, start + window, fields=self.fields)
            for name in self.fields:
                values = np.asarray(data.fields[name], dtype=np.float32)              # (W, N, F)
                fields[name].append(torch.from_numpy(np.ascontiguousarray(values.transpose(1, 0, 2))))
            for name in self.static_fields:
                if name not in data.static_fields:
                    raise GnsInputError("no such static field", file=self.split.path, key=f"{data.key}/{name}",
                                        expected=f"one of {sorted(data.static_fields)}", found=name)
                values = torch.from_numpy(np.asarray(data.static_fields[name], dtype=np.float32))  # (N, F)
                fields[name].append(values[:, None, :].expand(-1, window, -1).contiguous())
            mesh_pos.append(pos)
            node_type.append(types)
            edges.append(mesh_edges + offset)
            counts.append(pos.shape[0])
            offset += pos.shape[0]
        return MeshState(torch.cat(mesh_pos), torch.cat(node_type), torch.cat(edges, dim=1),
                         {name: torch.cat(v) for name, v in fields.items()}, torch.tensor(counts))


def predicted_fields(simulator: MeshSimulator) -> list[str]:
    """The fields a step predicts: the target field, then the output fields."""
    return [simulator.target_field, *simulator.output_fields]


def make_sampler(simulator: MeshSimulator, split: MeshSplit) -> MeshWindowSampler:
    """Windows of every field ``simulator`` predicts, and of the input fields it reads."""
    specs = simulator.metadata.fields
    dynamic_inputs = [f for f in simulator.input_fields if specs[f].dynamic]
    static_inputs = [f for f in simulator.input_fields if not specs[f].dynamic]
    return MeshWindowSampler(split, [*predicted_fields(simulator), *dynamic_inputs],
                             simulator.target_field if simulator.lagrangian else None, static_inputs)


def mesh_unrolled_loss(simulator: MeshSimulator, state: MeshState, unroll: int, noise_std: float, gamma: float,
                       generator: torch.Generator | None = None, backprop_through_unroll: bool = False) -> Tensor:
    """Loss on normalized outputs after ``unroll`` model steps (one-step when ``unroll = 0``).

    Noise (MeshGraphNets): Gaussian noise of std ``noise_std`` is added to the current frame of the
    target field on the noisy node types; the target keeps ``1 - gamma`` of it, so with ``gamma = 1``
    the model learns to undo the whole perturbation and with ``gamma = 0.1`` (cloth) mostly to damp
    the velocity error it implies. With a velocity history (``mesh.history`` > 1, order 2) the
    noise is a random walk on the velocities (:func:`gns.train.noise.random_walk_noise`, as for
    particles) whose last velocity has std ``noise_std``; the target keeps ``1 - gamma`` of the
    current frame's noise. Order 1 with a history gets independent noise on every input frame.

    Args:
        state: every predicted field, and every input field the simulator reads, over
            ``window + 1 + unroll`` frames (``window`` = :attr:`MeshSimulator.window`).
    """
    k, target = simulator.window, simulator.target_field
    truth = state.fields
    if truth[target].shape[1] != k + 1 + unroll:
        raise ValueError(f"window of {truth[target].shape[1]} frames, expected {k + 1 + unroll}")
    simulated = simulator.is_simulated(state.node_type)
    noisy = simulator.is_noisy(state.node_type)
    history = truth[target][:, :k].clone()
    if simulator.order == 2:
        noise = random_walk_noise(history, noise_std, kinematic=~noisy, generator=generator)   # (N, k, F)
    else:
        noise = torch.randn(history.shape, generator=generator, device=history.device) * noise_std
        noise = noise * noisy[:, None, None].to(noise.dtype)
    history += noise
    noise = noise[:, -1]                                                                # the current frame's
    losses = []
    for j in range(unroll + 1):
        inputs = {name: truth[name][:, j:j + k] for name in simulator.input_fields}   # the inputs of step j
        step_state = state.with_fields({target: history, **inputs})
        with_grad = backprop_through_unroll or j == unroll
        with torch.set_grad_enabled(with_grad and torch.is_grad_enabled()):
            predicted = simulator(step_state)                                           # (N, F + O) normalized
        if with_grad:
            nxt = {name: truth[name][:, k + j] for name in predicted_fields(simulator)}
            if j == 0:
                nxt[target] = nxt[target] + (1.0 - gamma) * noise
            losses.append(masked_mse(predicted, simulator.target(step_state, nxt, simulated), simulated))
        if j < unroll:
            frame = simulator.integrate(step_state, predicted)[target]
            frame = torch.where(simulated[:, None], frame, truth[target][:, k + j])
            if not backprop_through_unroll:
                frame = frame.detach()
            history = torch.cat([history[:, 1:], frame[:, None]], dim=1)
    return torch.stack(losses).mean()


def open_split_for(simulator: MeshSimulator, dataset: str | Path, split: str) -> MeshSplit:
    """Open a split of ``dataset`` (with its own metadata) for a trained simulator.

    The dataset may hold fields the simulator does not use (e.g. a wind field that a model
    trained without it ignores), but every field the simulator reads or predicts must be
    declared with the width and kind it was trained on, and the target and mesh dimension must agree.

    Raises:
        GnsInputError: naming the dataset's ``metadata.json`` and the key that disagrees.
    """
    metadata = load_mesh_metadata(dataset)
    source = Path(dataset) / "metadata.json"
    trained = simulator.metadata
    if metadata.target != trained.target:
        raise GnsInputError("the dataset's target differs from the model's", file=source, key="target",
                            expected=trained.target.to_dict(), found=metadata.target.to_dict())
    if metadata.mesh_dim != trained.mesh_dim:
        raise GnsInputError("the dataset's mesh dimension differs from the model's", file=source, key="mesh_dim",
                            expected=trained.mesh_dim, found=metadata.mesh_dim)
    for name in [*predicted_fields(simulator), *simulator.input_fields]:
        want, got = trained.fields[name], metadata.fields.get(name)
        if got != want:
            raise GnsInputError("a field the model uses is missing or different", file=source, key=f"fields/{name}",
                                expected=want.to_dict(), found=None if got is None else got.to_dict())
    return open_mesh_split(dataset, split, metadata)


def build_mesh_simulator(config: Config, metadata: MeshMetadata, device: torch.device | str = "cpu") -> MeshSimulator:
    return MeshSimulator(config.model, config.mesh, metadata).to(device)


def load_mesh_simulator(checkpoint: str | Path, device: str | torch.device = "cpu") -> tuple[MeshSimulator, Config,
                                                                                              MeshMetadata]:
    """Rebuild a trained mesh simulator from a checkpoint alone (config and metadata travel inside)."""
    device = resolve_device(str(device))
    state = load_checkpoint(checkpoint, map_location=device)
    if state.get("kind") != "mesh":
        raise GnsInputError("not a mesh-simulator checkpoint", file=checkpoint, key="kind", expected="mesh",
                            found=state.get("kind"))
    config = config_from_dict(state["config"])
    metadata = MeshMetadata.from_dict(state["metadata"], source=checkpoint)
    simulator = build_mesh_simulator(config, metadata, device)
    simulator.load_state_dict(state["model"])
    simulator.eval()
    return simulator, config, metadata


class MeshTask:
    """Windows, noise and losses for :class:`~gns.train.loop.Trainer` on a mesh dataset."""

    def __init__(self, config: Config, device: torch.device | str | None = None) -> None:
        if config.train.loss not in LOSSES:
            raise ValueError(f"train.loss must be one of {LOSSES}, found {config.train.loss!r}")
        self.config = config
        self.device = resolve_device(config.device) if device is None else torch.device(device)
        self.metadata = load_mesh_metadata(config.dataset)
        self.train_split = open_mesh_split(config.dataset, "train", self.metadata)
        self.valid_split = open_mesh_split(config.dataset, "valid", self.metadata)
        self.noise_std, self.gamma = noise_settings(self.metadata, config.train.noise_std, config.mesh.noise_gamma)
        torch.manual_seed(config.train.seed)  # model initialisation
        self.model = build_mesh_simulator(config, self.metadata, self.device)
        if self.metadata.varlen:
            raise GnsInputError("the mesh changes over time (remeshed, DeepMind dynamic_varlen); the mesh simulator "
                                "needs one mesh per trajectory", file=Path(config.dataset) / "metadata.json",
                                key="varlen", expected="[]", found=self.metadata.varlen)
        self.sampler = make_sampler(self.model, self.train_split)
        self.valid_sampler = make_sampler(self.model, self.valid_split)
        self.schedule = PushforwardSchedule(config.train.pushforward_steps, config.train.pushforward_unrolls,
                                            config.train.pushforward_probs)

    def unroll_for(self, step: int, generator: torch.Generator) -> tuple[int, bool]:
        """Unroll length and whether to backprop through it, for this step."""
        return unroll_for(self.config.train, self.schedule, step, generator)

    def training_loss(self, step: int, generator: torch.Generator, device_generator: torch.Generator) -> Tensor:
        unroll, backprop = self.unroll_for(step, generator)
        window = self.model.window + 1 + unroll
        train = self.config.train
        items = self.sampler.sample_items(train.batch_size, window, generator, train.early_frames, train.early_fraction)
        state = self.sampler.load(items, window).to(self.device)
        return mesh_unrolled_loss(self.model, state, unroll, self.noise_std, self.gamma, device_generator, backprop)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Noise-free one-step MSE (normalized outputs) and the MSE of short rollouts on the simulated nodes."""
        from gns.mesh.evaluate import evaluate_mesh_split

        was_training = self.model.training
        self.model.eval()
        window = self.model.window + 1
        items = self.valid_sampler.fixed_items(self.config.train.valid_windows, window)
        losses = []
        for k in range(0, len(items), 8):
            state = self.valid_sampler.load(items[k:k + 8], window).to(self.device)
            losses.append(float(mesh_unrolled_loss(self.model, state, 0, 0.0, 1.0)))
        summary = evaluate_mesh_split(self.model, self.valid_split, horizons=(),
                                      max_trajectories=self.config.train.valid_rollouts,
                                      num_steps=self.config.train.valid_rollout_steps, progress=False)
        self.model.train(was_training)
        return {"valid_onestep_mse": sum(losses) / len(losses),
                "valid_rollout_mse": summary["model"]["rmse"]["full"] ** 2}

    def checkpoint_extra(self) -> dict[str, Any]:
        return {"metadata": self.metadata.to_dict(), "noise_std": self.noise_std, "noise_gamma": self.gamma,
                "kind": "mesh"}

    def check_checkpoint(self, state: dict[str, Any], path: Path) -> None:
        if state.get("kind") != "mesh":
            raise GnsInputError("checkpoint is not from a mesh simulator", file=path, key="kind",
                                expected="mesh", found=state.get("kind"))
        saved = config_from_dict(state["config"])
        check_compatible(saved.model.__dict__, self.config.model.__dict__, path, "model")
        structural = ("world_edges", "world_edge_radius", "simulated_node_types", "use_inputs", "history")
        check_compatible({k: getattr(saved.mesh, k) for k in structural},
                         {k: getattr(self.config.mesh, k) for k in structural}, path, "mesh")
        keys = ("mesh_dim", "fields", "target", "outputs", "inputs", "world_edge_radius")
        md = self.metadata.to_dict()
        check_compatible({k: state["metadata"].get(k) for k in keys}, {k: md.get(k) for k in keys}, path, "metadata")
