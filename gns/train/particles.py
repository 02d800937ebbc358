"""Training task for the particle simulator: what the shared loop needs from particles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gns.config import Config, ModelConfig, config_from_dict
from gns.data import DatasetMetadata, load_metadata, open_split
from gns.evaluate import evaluate_split
from gns.particles.simulator import ParticleSimulator
from gns.particles.windows import WindowSampler
from gns.train.checkpoint import check_compatible, load_checkpoint
from gns.train.losses import PushforwardSchedule, masked_mse, unroll_for, unrolled_loss
from gns.train.noise import default_noise_std

LOSSES = ("onestep", "pushforward", "bptt")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_simulator(model_config: ModelConfig, metadata: DatasetMetadata, noise_std: float | None,
                    device: torch.device | str = "cpu") -> ParticleSimulator:
    noise = noise_std if noise_std is not None else default_noise_std(metadata.vel_std)
    return ParticleSimulator(model_config, metadata, noise).to(device)


def load_simulator(checkpoint: str | Path, device: str | torch.device = "cpu") -> tuple[ParticleSimulator, Config,
                                                                                         DatasetMetadata]:
    """Rebuild a trained simulator from a checkpoint alone (its config and metadata travel inside)."""
    device = resolve_device(str(device))
    state = load_checkpoint(checkpoint, map_location=device)
    config = config_from_dict(state["config"])
    metadata = DatasetMetadata.from_dict(state["metadata"], source=checkpoint)
    simulator = build_simulator(config.model, metadata, state["noise_std"], device)
    simulator.load_state_dict(state["model"])
    simulator.eval()
    return simulator, config, metadata


class ParticleTask:
    """Windows, noise and losses for :class:`~gns.train.loop.Trainer` on a particle dataset."""

    def __init__(self, config: Config, device: torch.device | str | None = None) -> None:
        if config.train.loss not in LOSSES:
            raise ValueError(f"train.loss must be one of {LOSSES}, found {config.train.loss!r}")
        self.config = config
        self.device = resolve_device(config.device) if device is None else torch.device(device)
        self.metadata = load_metadata(config.dataset)
        self.train_split = open_split(config.dataset, "train", self.metadata)
        self.valid_split = open_split(config.dataset, "valid", self.metadata)
        self.noise_std = (config.train.noise_std if config.train.noise_std is not None
                          else default_noise_std(self.metadata.vel_std))
        torch.manual_seed(config.train.seed)  # model initialisation
        self.model = build_simulator(config.model, self.metadata, self.noise_std, self.device)
        self.sampler = WindowSampler(self.train_split, self.metadata.context_size)
        self.valid_sampler = WindowSampler(self.valid_split, self.metadata.context_size)
        self.schedule = PushforwardSchedule(config.train.pushforward_steps, config.train.pushforward_unrolls,
                                            config.train.pushforward_probs)
        self.history = config.model.history

    def unroll_for(self, step: int, generator: torch.Generator) -> tuple[int, bool]:
        """Unroll length and whether to backprop through it, for this step."""
        return unroll_for(self.config.train, self.schedule, step, generator)

    def training_loss(self, step: int, generator: torch.Generator, device_generator: torch.Generator) -> Tensor:
        unroll, backprop = self.unroll_for(step, generator)
        window = self.history + 2 + unroll
        train = self.config.train
        items = self.sampler.sample_items(train.batch_size, window, generator, train.early_frames, train.early_fraction)
        batch = self.sampler.load(items, window).to(self.device)
        return unrolled_loss(self.model, batch, unroll, self.noise_std, device_generator, backprop)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Noise-free one-step MSE (normalized acceleration) and mean position MSE of short rollouts."""
        was_training = self.model.training
        self.model.eval()
        window = self.history + 2
        items = self.valid_sampler.fixed_items(self.config.train.valid_windows, window)
        losses = []
        for k in range(0, len(items), 8):
            batch = self.valid_sampler.load(items[k:k + 8], window).to(self.device)
            kinematic = self.model.is_kinematic(batch.particle_type)
            target = self.model.target_normalized_acceleration(batch.position[:, :-1], batch.position[:, -1])
            losses.append(float(masked_mse(self.model(batch.with_position(batch.position[:, :-1])), target,
                                           ~kinematic)))
        summary = evaluate_split(self.model, self.valid_split, self.metadata, horizons=(),
                                 max_trajectories=self.config.train.valid_rollouts,
                                 num_steps=self.config.train.valid_rollout_steps, progress=False)
        self.model.train(was_training)
        return {"valid_onestep_mse": sum(losses) / len(losses),
                "valid_rollout_mse": summary["model"]["mse"]["full"]}

    def checkpoint_extra(self) -> dict[str, Any]:
        return {"metadata": self.metadata.to_dict(), "noise_std": self.noise_std, "kind": "particles"}

    def check_checkpoint(self, state: dict[str, Any], path: Path) -> None:
        saved = config_from_dict(state["config"])
        check_compatible(saved.model.__dict__, self.config.model.__dict__, path, "model")
        keys = ("dim", "bounds", "periodic_boundary_conditions", "num_particle_types", "context_size")
        md = self.metadata.to_dict()
        check_compatible({k: state["metadata"].get(k) for k in keys}, {k: md.get(k) for k in keys}, path,
                         "metadata")
