"""The training task of any domain: what the shared loop (:class:`gns.train.loop.Trainer`) needs.

A task owns the model, the training and validation windows, the noise and the loss of each
step, the validation and what a checkpoint records; the domain (:mod:`gns.domains`) supplies
the few parts that differ (metadata, the simulator, its windows, the default noise, what a
resumed checkpoint must agree on).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gns.config import Config, config_from_dict
from gns.domains import Domain, resolve_device
from gns.errors import GnsInputError
from gns.evaluate import evaluate_split
from gns.geometry import check_mirror_dims
from gns.train.checkpoint import check_compatible
from gns.train.loop import StepRandom
from gns.train.losses import PushforwardSchedule, unroll_for, unrolled_loss

LOSSES = ("onestep", "pushforward", "bptt")

__all__ = ["SimulatorTask", "LOSSES"]


class SimulatorTask:
    """Windows, noise and losses for :class:`~gns.train.loop.Trainer` on a dataset of ``domain``.

    Args:
        config: the run's settings (``config.dataset`` is read).
        domain: the dataset's domain descriptor.
        device: where to train (default: ``config.device``).
    """

    def __init__(self, config: Config, domain: Domain, device: torch.device | str | None = None) -> None:
        if config.train.loss not in LOSSES:
            raise GnsInputError("unknown training loss", key="train.loss", expected=LOSSES, found=config.train.loss)
        self.config, self.domain = config, domain
        self.device = resolve_device(config.device) if device is None else torch.device(device)
        self.metadata = domain.load_metadata(config.dataset)
        self.train_split = domain.open_split(config.dataset, "train", self.metadata)
        self.valid_split = domain.open_split(config.dataset, "valid", self.metadata)
        self.noise_std, self.gamma = domain.noise_settings(config, self.metadata)
        torch.manual_seed(config.train.seed)  # model initialisation
        self.model = domain.build_simulator(config, self.metadata, self.noise_std).to(self.device)
        if not 0.0 <= config.train.noise_correction <= 1.0 or (
                config.train.noise_correction != 1.0 and getattr(self.model, "order", 2) != 2):
            raise GnsInputError("noise correction is a share in [0, 1], and below 1 only for second-order targets "
                                "(positions)", key="train.noise_correction", expected="1.0 for first-order targets",
                                found=config.train.noise_correction)
        if config.train.offset_noise_std < 0 or not 0.0 <= config.train.offset_restore <= 1.0:
            raise GnsInputError("the offset noise std must not be negative and its restored share lie in [0, 1]",
                                key="train.offset_noise_std / train.offset_restore", expected=">= 0 / [0, 1]",
                                found=(config.train.offset_noise_std, config.train.offset_restore))
        if config.train.velocity_offset_std < 0 or (config.train.velocity_offset_std > 0
                                                     and getattr(self.model, "order", 2) != 2):
            raise GnsInputError("the velocity offset std must not be negative, and above 0 only for second-order "
                                "targets (positions)", key="train.velocity_offset_std",
                                expected=">= 0 (0 for first-order targets)", found=config.train.velocity_offset_std)
        if config.train.wall_noise_std is not None and not hasattr(self.model, "wall_noise_std"):
            raise GnsInputError("training noise at walls is a particle setting", key="train.wall_noise_std",
                                expected=f"null for a {domain.kind} simulator", found=config.train.wall_noise_std)
        self._check_mirror(config.train.mirror_dims)
        self.sampler = domain.training_windows(self.model, self.train_split)
        self._check_impacts(config.train.impact_fraction, config.train.impact_threshold)
        self.valid_sampler = domain.training_windows(self.model, self.valid_split)
        train = config.train
        self.schedule = PushforwardSchedule(train.pushforward_steps, train.pushforward_unrolls, train.pushforward_probs)

    def _check_mirror(self, dims: tuple[int, ...]) -> None:
        """Refuse ``train.mirror_dims`` that are not distinct dimensions of a simulator that can mirror, or that
        gravity points along."""
        if not dims:
            return
        dim = getattr(self.model, "dim", 0)
        if not hasattr(self.model, "mirrored"):
            raise GnsInputError("mirrored training windows exist for particle data only", key="train.mirror_dims",
                                expected="[]", found=list(dims))
        check_mirror_dims(dims, dim, getattr(self.metadata, "gravity", None), "train.mirror_dims")

    def _check_impacts(self, fraction: float, threshold: float) -> None:
        """Refuse ``train.impact_fraction`` outside [0, 1], a threshold that is not positive, or impacts on data
        whose windows mark none; mark them now (read once) so that a run fails before its first step."""
        if fraction == 0:
            return
        if not 0.0 < fraction <= 1.0 or not threshold > 0:
            raise GnsInputError("train.impact_fraction is a share in [0, 1] and train.impact_threshold positive",
                                key="train.impact_fraction / train.impact_threshold", expected="[0, 1] / > 0",
                                found=(fraction, threshold))
        if self.domain.kind == "objects":
            raise GnsInputError("object windows are drawn on impacts from the solver's contact record",
                                key="train.impact_fraction", expected="0 (set objects.impact_fraction)",
                                found=fraction)
        if hasattr(self.sampler, "impact_threshold"):
            self.sampler.impact_threshold = float(threshold)
        if len(self.sampler.impacts()) == 0:
            raise GnsInputError("no step of the training split is an impact at this threshold", file=self.sampler.path,
                                key="train.impact_threshold", expected="a threshold some step passes",
                                found=threshold)

    def unroll_for(self, step: int, generator: torch.Generator) -> tuple[int, bool]:
        """Unroll length and whether to backprop through it, for this step."""
        return unroll_for(self.config.train, self.schedule, step, generator)

    @property
    def num_trajectories(self) -> int:
        """Trajectories of the training split (a data-parallel run may not have more ranks)."""
        return len(self.sampler.lengths)

    def training_loss(self, step: int, random: StepRandom, replica: torch.nn.Module | None = None) -> Tensor:
        """This rank's loss at ``step``: the unroll drawn alike on every rank, its own batch and noise.

        Args:
            step: the training step.
            random: the step's generators (:func:`gns.train.loop.step_random`).
            replica: what runs the model's forward (``self.model`` wrapped for data parallelism;
                default: ``self.model``).
        """
        unroll, backprop = self.unroll_for(step, random.shared)
        window = self.model.window + 1 + unroll
        train = self.config.train
        items = self.sampler.sample_items(train.batch_size, window, random.local, train.early_frames,
                                          train.early_fraction)
        items = self.sampler.with_impacts(items, window, random.local, train.impact_fraction)
        truth = self.sampler.load(items, window).to(self.device)
        if train.mirror_dims:  # one draw per window, from this rank's generator
            flip = torch.rand(truth.num_systems, generator=random.local) < 0.5
            truth = self.model.mirrored(truth, train.mirror_dims, flip.to(self.device))
        return unrolled_loss(self.model, truth, unroll, self.noise_std, self.gamma, random.device, backprop,
                             train.noise_correction, replica=replica,
                             offset=(train.offset_noise_std, train.offset_restore),
                             velocity_offset=train.velocity_offset_std)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Noise-free one-step loss (normalized outputs), the MSE of rollouts of the target field from the first
        frames of the first ``valid_rollouts`` validation trajectories (``valid_rollout_steps`` steps; 0: to the
        end), and how many of those rollouts the domain's divergence checks flagged (``valid_diverged``)."""
        was_training = self.model.training
        self.model.eval()
        window = self.model.window + 1
        items = self.valid_sampler.fixed_items(self.config.train.valid_windows, window)
        losses = []
        for k in range(0, len(items), 8):
            truth = self.valid_sampler.load(items[k:k + 8], window).to(self.device)
            losses.append(float(unrolled_loss(self.model, truth, 0, 0.0, self.gamma)))
        summary = evaluate_split(self.model, self.valid_split, horizons=(),
                                 max_trajectories=self.config.train.valid_rollouts,
                                 num_steps=self.config.train.valid_rollout_steps or None, progress=False)
        self.model.train(was_training)
        full = summary["model"][summary["metric"]]["full"]
        diverged = {event["trajectory"] for event in summary["divergence"]["first_frame"]}
        return {"valid_onestep_mse": sum(losses) / len(losses),
                "valid_rollout_mse": full ** 2 if summary["metric"] == "rmse" else full,
                "valid_diverged": len(diverged)}

    def checkpoint_extra(self) -> dict[str, Any]:
        return {"metadata": self.metadata.to_dict(), "noise_std": self.noise_std, "noise_gamma": self.gamma,
                "kind": self.domain.kind}

    def check_checkpoint(self, state: dict[str, Any], path: Path) -> None:
        """Refuse a checkpoint of another domain or of a model that differs in structure."""
        found = state.get("kind", "particles")
        if found != self.domain.kind:
            raise GnsInputError(f"checkpoint is not from a {self.domain.kind} simulator", file=path, key="kind",
                                expected=self.domain.kind, found=found)
        saved = self.domain.structure(config_from_dict(state["config"]), state["metadata"])
        now = self.domain.structure(self.config, self.metadata.to_dict())
        for part in now:
            check_compatible(saved[part], now[part], path, part)
