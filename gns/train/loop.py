"""The training loop shared by every simulator (particles now, meshes and objects next).

A *task* supplies the model, a loss for a given step and a validation; the loop owns the
optimizer, learning-rate schedule, gradient clipping, logging, checkpoints and resuming.

Exact resume: all randomness of step ``k`` (batch choice, noise, pushforward unroll) comes
from generators seeded with ``(seed, k)``, so a run resumed from a checkpoint draws the
same batches as one that never stopped.
"""

from __future__ import annotations

import csv
import math
import signal
import time
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from gns.config import Config, save_config
from gns.progress import no_bar
from gns.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state

LOG_FIELDS = ["step", "loss", "lr", "grad_norm", "steps_per_s", "elapsed_s", "valid_onestep_mse",
              "valid_rollout_mse"]


class Task(Protocol):
    model: nn.Module
    device: torch.device

    def training_loss(self, step: int, generator: torch.Generator, device_generator: torch.Generator) -> Tensor: ...
    def validate(self) -> dict[str, float]: ...
    def checkpoint_extra(self) -> dict[str, Any]: ...
    def check_checkpoint(self, state: dict[str, Any], path: Path) -> None: ...


def learning_rate(step: int, config) -> float:
    """Exponential decay from ``lr_init`` towards ``lr_final`` (GNS schedule)."""
    return config.lr_final + (config.lr_init - config.lr_final) * config.lr_decay ** (step / config.lr_decay_steps)


def step_generators(seed: int, step: int, device: torch.device) -> tuple[torch.Generator, torch.Generator]:
    """CPU and device generators for one step, derived from ``(seed, step)`` only."""
    s = (seed * 1_000_003 + step) % (2**63 - 1)
    cpu = torch.Generator().manual_seed(s)
    dev = cpu if device.type == "cpu" else torch.Generator(device=device).manual_seed(s)
    return cpu, dev


class Trainer:
    """Optimizes ``task.model`` for ``config.train.steps`` steps, writing into ``out_dir``.

    Layout of ``out_dir``: ``config.yaml``, ``log.csv`` (one row per ``log_every`` steps, and
    validation rows), ``checkpoints/latest.pt`` and ``checkpoints/best.pt``.
    """

    def __init__(self, config: Config, task: Task, out_dir: str | Path) -> None:
        self.config, self.task = config, task
        self.train_cfg = config.train
        self.out_dir = Path(out_dir)
        self.ckpt_dir = self.out_dir / "checkpoints"
        self.log_path = self.out_dir / "log.csv"
        self.model = task.model
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.train_cfg.lr_init)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: learning_rate(s, self.train_cfg) / self.train_cfg.lr_init)
        self.step = 0
        self.best = math.inf
        self.window = [0.0, 0]  # loss sum and count since the last regular log row (kept in checkpoints)
        self._stop_requested = False

    # --- checkpoints -----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "step": self.step, "best": self.best,
                "loss_window": list(self.window),
                "rng": rng_state(), "config": self.config.to_dict(), **self.task.checkpoint_extra()}

    def resume(self, path: str | Path | None = None) -> bool:
        """Load ``path`` (default ``checkpoints/latest.pt`` if it exists). Returns whether it resumed."""
        path = Path(path) if path else self.ckpt_dir / "latest.pt"
        if not path.exists():
            return False
        state = load_checkpoint(path, map_location=self.task.device)
        self.task.check_checkpoint(state, path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.best = int(state["step"]), float(state["best"])
        self.window = list(state.get("loss_window", [0.0, 0]))
        set_rng_state(state["rng"])
        self._truncate_log()
        return True

    def _truncate_log(self) -> None:
        """Drop log rows written after the checkpoint we resumed from (they will be redone)."""
        if not self.log_path.exists():
            return
        with open(self.log_path) as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= self.step]
        self._write_log_rows(rows, mode="w")

    def _write_log_rows(self, rows: list[dict[str, Any]], mode: str = "a") -> None:
        new = mode == "w" or not self.log_path.exists()
        with open(self.log_path, mode, newline="") as f:
            writer = csv.DictWriter(f, LOG_FIELDS)
            if new:
                writer.writeheader()
            writer.writerows(rows)

    def save(self, best: bool = False) -> None:
        state = self.state()
        save_checkpoint(self.ckpt_dir / "latest.pt", state)
        if best:
            save_checkpoint(self.ckpt_dir / "best.pt", state)

    # --- loop ------------------------------------------------------------------------------
    def _out_of_time(self, start: float) -> bool:
        budget = self.train_cfg.time_budget_s
        return budget > 0 and time.perf_counter() - start >= budget

    def _on_signal(self, signum, frame) -> None:  # noqa: ARG002
        self._stop_requested = True

    @property
    def interrupted(self) -> bool:
        """Whether the last :meth:`train` stopped on SIGINT/SIGTERM (the checkpoint is saved; rerun resumes)."""
        return self._stop_requested

    def train(self, progress: bool = True) -> dict[str, float]:
        """Run to ``config.train.steps``; SIGINT/SIGTERM stop cleanly after the current step and save."""
        cfg = self.train_cfg
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        save_config(self.config, self.out_dir / "config.yaml")
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for s in previous:
                signal.signal(s, self._on_signal)
        except ValueError:  # not in the main thread
            previous = {}
        start = last_log_t = time.perf_counter()
        steps_since_log = 0
        last_valid: dict[str, float] = {}
        saved_at = -1
        bar = tqdm(total=cfg.steps, initial=self.step, desc="train", disable=no_bar(progress), dynamic_ncols=True)
        self.model.train()
        try:
            while self.step < cfg.steps and not self._stop_requested and not self._out_of_time(start):
                gen, dev_gen = step_generators(cfg.seed, self.step, self.task.device)
                loss = self.task.training_loss(self.step, gen, dev_gen)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss became {loss.item()} at step {self.step}; "
                                             f"latest good checkpoint: {self.ckpt_dir / 'latest.pt'}")
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = (torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                             if cfg.grad_clip > 0 else torch.tensor(float("nan")))
                self.optimizer.step()
                self.scheduler.step()
                self.step += 1
                self.window[0] += float(loss.detach())
                self.window[1] += 1
                steps_since_log += 1
                bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    now = time.perf_counter()
                    row = {"step": self.step, "loss": self.window[0] / self.window[1],
                           "lr": self.scheduler.get_last_lr()[0], "grad_norm": float(grad_norm),
                           "steps_per_s": steps_since_log / (now - last_log_t), "elapsed_s": now - start}
                    bar.set_postfix(loss=f"{row['loss']:.3g}")
                    steps_since_log, last_log_t = 0, now
                    if self.step % cfg.log_every == 0:  # an off-schedule final row does not reset the window
                        self.window = [0.0, 0]
                    if self.step % cfg.eval_every == 0 or self.step == cfg.steps:
                        last_valid = self.task.validate()
                        row.update(last_valid)
                        is_best = last_valid.get("valid_rollout_mse", math.inf) < self.best
                        if is_best:
                            self.best = last_valid["valid_rollout_mse"]
                        self.save(best=is_best)
                        saved_at = self.step
                        last_log_t = time.perf_counter()  # validation time is not training throughput
                    self._write_log_rows([row])
                if self.step % cfg.checkpoint_every == 0 and saved_at != self.step:
                    self.save()
                    saved_at = self.step
        finally:
            bar.close()
            for s, h in previous.items():
                signal.signal(s, h)
        if saved_at != self.step:
            self.save()
        return {"step": self.step, "best_valid_rollout_mse": self.best, **last_valid}
