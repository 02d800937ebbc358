"""The training loop shared by every simulator (particles now, meshes and objects next).

A *task* supplies the model, a loss for a given step and a validation; the loop owns the
optimizer, learning-rate schedule, gradient clipping, logging, checkpoints and resuming.

Exact resume: all randomness of step ``k`` comes from generators seeded with ``(seed, k)`` and
the rank (:func:`step_random`): the pushforward unroll from ``(seed, k)`` alone, so that every
rank takes the same number of model steps, the batch and the noise from ``(seed, k, rank)``, so
that every rank draws its own. A run resumed from a checkpoint on as many ranks draws the same
batches as one that never stopped.

Data parallel (:mod:`gns.train.distributed`, under ``torchrun``): every rank runs this loop on
its own batch of ``batch_size`` windows; ``DistributedDataParallel`` averages the gradients, so a
step's global batch is ``world_size x batch_size``. Rank 0 alone validates and writes the log
and the checkpoints; the others wait for it at a barrier after every checkpoint. The ranks agree
on stopping (a signal, the time budget, a non-finite loss) before every step, so none is left
waiting for the others.
"""

from __future__ import annotations

import csv
import math
import signal
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from gns.config import Config, save_config
from gns.errors import GnsInputError
from gns.nn.execution import set_execution
from gns.progress import no_bar
from gns.train.averaging import WeightAverage
from gns.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from gns.train.distributed import Ranks

LOG_FIELDS = ["step", "loss", "lr", "grad_norm", "steps_per_s", "elapsed_s", "valid_onestep_mse",
              "valid_rollout_mse", "valid_diverged"]


class StepRandom(NamedTuple):
    """The random sources of one training step on one rank (:func:`step_random`)."""

    shared: torch.Generator   # CPU, from (seed, step): what every rank must draw alike (the unroll length)
    local: torch.Generator    # CPU, from (seed, step, rank): this rank's batch
    device: torch.Generator   # on the training device, from (seed, step, rank): this rank's noise


class Task(Protocol):
    model: nn.Module
    device: torch.device
    num_trajectories: int     # training trajectories (a run may not have more ranks)

    def training_loss(self, step: int, random: StepRandom, replica: nn.Module | None = None) -> Tensor: ...
    def validate(self) -> dict[str, float]: ...
    def checkpoint_extra(self) -> dict[str, Any]: ...
    def check_checkpoint(self, state: dict[str, Any], path: Path) -> None: ...


def learning_rate(step: int, config) -> float:
    """Exponential decay from ``lr_init`` towards ``lr_final`` (GNS schedule)."""
    return config.lr_final + (config.lr_init - config.lr_final) * config.lr_decay ** (step / config.lr_decay_steps)


# Rank r's seeds are rank 0's shifted by r times this odd constant (2^32 / golden ratio). torch's CPU generator
# keeps only a seed's low 32 bits, and these shifts spread the ranks evenly around that circle: rank r at step k
# can meet another rank's seed only more than 3x10^8 steps away with 8 ranks, 1.9x10^6 with 1000.
RANK_SEED_SHIFT = 0x9E3779B9


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """The seed of step ``step`` on rank ``rank`` (rank 0: the single-process seed of earlier releases)."""
    return (seed * 1_000_003 + step + rank * RANK_SEED_SHIFT) % (2**63 - 1)


def step_random(seed: int, step: int, device: torch.device, rank: int = 0) -> StepRandom:
    """The generators of one step on one rank, derived from ``(seed, step, rank)`` only.

    On rank 0 the shared and the local generator are one, so a run of one process draws exactly
    what it drew before ranks existed: first the unroll, then the batch.
    """
    shared = torch.Generator().manual_seed(step_seed(seed, step))
    local = shared if rank == 0 else torch.Generator().manual_seed(step_seed(seed, step, rank))
    on_device = local if device.type == "cpu" else torch.Generator(device=device).manual_seed(
        step_seed(seed, step, rank))
    return StepRandom(shared, local, on_device)


class Trainer:
    """Optimizes ``task.model`` for ``config.train.steps`` steps, writing into ``out_dir``.

    Layout of ``out_dir``: ``config.yaml``, ``log.csv`` (one row per ``log_every`` steps, and
    validation rows), ``checkpoints/latest.pt`` and ``checkpoints/best.pt``.

    Args:
        config: the run's settings.
        task: the model, its data and its loss (on ``ranks.device``).
        out_dir: the run directory (written by rank 0 only).
        ranks: the processes of a data-parallel run (:func:`gns.train.distributed.init_distributed`);
            default: this process alone.

    The network computes as ``config.train`` says (``precision``, ``checkpoint_processor``,
    ``compile``: :func:`gns.nn.execution.set_execution`).

    With ``train.ema_decay > 0`` validation, ``best.pt`` and every checkpoint's ``model`` are the weights'
    moving average (:mod:`gns.train.averaging`); training steps, and resumes from, the raw weights.

    Raises:
        GnsInputError: more ranks than training trajectories; bf16 where the device has no native bf16;
            ``train.ema_decay`` outside [0, 1).
    """

    def __init__(self, config: Config, task: Task, out_dir: str | Path, ranks: Ranks | None = None) -> None:
        self.config, self.task = config, task
        self.train_cfg = config.train
        self.ranks = Ranks.single(task.device) if ranks is None else ranks
        if self.ranks.world_size > task.num_trajectories:
            raise GnsInputError("more ranks than training trajectories: run fewer processes (torchrun "
                                "--nnodes x --nproc_per_node), each with a larger train.batch_size",
                                file=config.dataset, expected=f"at most {task.num_trajectories} ranks",
                                found=f"{self.ranks.world_size} ranks")
        self.out_dir = Path(out_dir)
        self.ckpt_dir = self.out_dir / "checkpoints"
        self.log_path = self.out_dir / "log.csv"
        self.model = task.model
        # how the network computes (precision, gradient checkpointing, compilation): its parameters stay as they are
        set_execution(self.model, precision=self.train_cfg.precision, key="train.precision",
                      checkpoint_processor=self.train_cfg.checkpoint_processor, compile=self.train_cfg.compile)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.train_cfg.lr_init)
        # validation and checkpoints use the weights' moving average when train.ema_decay > 0
        if not 0.0 <= self.train_cfg.ema_decay < 1.0:
            raise GnsInputError("the weights' moving average needs a decay in [0, 1)", key="train.ema_decay",
                                expected="0 (off) or e.g. 0.999", found=self.train_cfg.ema_decay)
        self.average = WeightAverage(self.model, self.train_cfg.ema_decay) if self.train_cfg.ema_decay > 0 else None
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: learning_rate(s, self.train_cfg) / self.train_cfg.lr_init)
        self.step = 0
        self.best = math.inf       # the best checkpoint's validation rollout MSE...
        self.best_diverged = math.inf   # ...and how many of its validation rollouts diverged (fewer wins first)
        self.window = [0.0, 0]  # loss sum and count since the last regular log row (kept in checkpoints)
        self.resumed_world_size: int | None = None   # ranks that wrote the checkpoint resumed from
        self._stop_requested = False
        self.last_run = (0, 0.0)   # steps taken and seconds spent by the last train()

    # --- checkpoints -----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """What a checkpoint holds: ``model`` is the weights to use (their average with ``train.ema_decay``,
        then also ``raw_model``, the weights training continues from, and ``ema_updates``)."""
        weights: dict[str, Any] = {"model": self.model.state_dict()}
        if self.average is not None:
            weights = {"model": self.average.averaged_state_dict(), "raw_model": self.model.state_dict(),
                       "ema_updates": self.average.updates}
        return {**weights, "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "step": self.step, "best": self.best,
                "best_diverged": self.best_diverged,
                "loss_window": list(self.window), "world_size": self.ranks.world_size,
                "rng": rng_state(), "config": self.config.to_dict(), **self.task.checkpoint_extra()}

    def resume(self, path: str | Path | None = None) -> bool:
        """Load ``path`` (default ``checkpoints/latest.pt`` if it exists). Returns whether it resumed.

        Rank 0 reads the file and sends it to the other ranks (they need not see rank 0's disk); a
        file it cannot read, or one written by an incompatible configuration, stops every rank with
        the same error. A checkpoint written by N ranks resumes on any number M of them
        (:attr:`resumed_world_size` tells N): the weights and optimizer state are the same on every
        rank. With M == N the run continues exactly; otherwise each step's global batch becomes
        M x ``batch_size`` windows, ranks below min(M, N) draw what they would have drawn, and the
        others draw new ones.
        """
        path = Path(path) if path else self.ckpt_dir / "latest.pt"
        loaded: tuple[dict[str, Any] | None, Exception | None] = (None, None)
        if self.ranks.is_main and path.exists():
            try:
                loaded = (load_checkpoint(path, map_location="cpu"), None)
            except GnsInputError as exc:
                loaded = (None, exc)
        state, error = self.ranks.broadcast(loaded)
        if error is not None:
            raise error
        if state is None:
            return False
        self.task.check_checkpoint(state, path)
        # training continues from the raw weights; a checkpoint without an average starts one from its weights
        self.model.load_state_dict(state.get("raw_model", state["model"]))
        if self.average is not None:
            self.average.load(state["model"], state.get("ema_updates", 0))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.best = int(state["step"]), float(state["best"])
        # checkpoints from before the divergence count ranked by MSE alone: their best counts as clean
        self.best_diverged = float(state.get("best_diverged", 0 if math.isfinite(self.best) else math.inf))
        self.window = list(state.get("loss_window", [0.0, 0]))
        self.resumed_world_size = int(state.get("world_size", 1))
        set_rng_state(state["rng"])
        if self.ranks.is_main:
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
        """Rank 0 writes ``latest.pt`` (and ``best.pt``); every rank returns once it is on disk."""
        if self.ranks.is_main:
            state = self.state()
            save_checkpoint(self.ckpt_dir / "latest.pt", state)
            if best:
                save_checkpoint(self.ckpt_dir / "best.pt", state)
        self.ranks.barrier()

    # --- loop ------------------------------------------------------------------------------
    def _out_of_time(self, start: float) -> bool:
        budget = self.train_cfg.time_budget_s
        return budget > 0 and time.perf_counter() - start >= budget

    def _stop(self, start: float) -> bool:
        """Whether to stop before the next step: a signal or the time budget on any rank stops every rank."""
        return self.ranks.any(self._stop_requested or self._out_of_time(start))

    def _on_signal(self, signum, frame) -> None:  # noqa: ARG002
        self._stop_requested = True

    @property
    def interrupted(self) -> bool:
        """Whether the last :meth:`train` stopped on SIGINT/SIGTERM (the checkpoint is saved; rerun resumes)."""
        return self._stop_requested

    @property
    def out_of_time(self) -> bool:
        """Whether the last :meth:`train` stopped on ``train.time_budget_s`` short of ``train.steps`` (the
        checkpoint is saved; a rerun resumes with a fresh budget). Say so: a model trained for a share of its
        steps is a weaker model, and the share depends on how fast, and how loaded, the machine was."""
        return self.step < self.train_cfg.steps and not self._stop_requested

    def budget_message(self, rerun: str = "the same command") -> str:
        """The words for :attr:`out_of_time`: the step reached, the budget, the speed, what to do (``rerun``: the
        command that resumes)."""
        cfg = self.train_cfg
        done, seconds = self.last_run
        speed = f", {done / seconds:.2g} steps/s" if seconds > 0 else ""
        return (f"WARNING: training stopped at its time budget (train.time_budget_s = {cfg.time_budget_s:g} s) "
                f"after step {self.step} of {cfg.steps} ({done} steps in {seconds:.0f} s{speed}): the model is "
                f"trained for {100 * self.step / cfg.steps:.2g}% of its steps and is weaker for it (a busy or slow "
                f"machine; with other jobs on its cores a multi-threaded step can be many times slower: there, "
                f"OMP_WAIT_POLICY=PASSIVE in the environment or --set train.num_threads=1 helps, on an idle machine "
                f"both are slower: benchmarks/thread_contention.py). Rerun {rerun} to resume with a fresh budget, "
                f"or add --set train.time_budget_s=0 for none.")

    def _step(self, replica: nn.Module) -> tuple[float, Tensor]:
        """One optimizer step: this rank's loss, backward (gradients averaged over the ranks), clip, update.

        Args:
            replica: what runs the model's forward and backward (:meth:`Ranks.replicate`).

        Returns:
            the loss averaged over the ranks (the global batch's when the ranks' batches weigh alike)
            and the gradient norm before clipping (NaN when clipping is off).
        """
        cfg = self.train_cfg
        random = step_random(cfg.seed, self.step, self.task.device, self.ranks.rank)
        loss = self.task.training_loss(self.step, random, replica)
        mean_loss = self.ranks.mean(loss.detach())
        if not torch.isfinite(mean_loss):   # every rank sees it, so every rank stops here
            raise FloatingPointError(f"loss became {mean_loss.item()} at step {self.step}; "
                                     f"latest good checkpoint: {self.ckpt_dir / 'latest.pt'}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = (torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                     if cfg.grad_clip > 0 else torch.tensor(float("nan")))
        self.optimizer.step()
        self.scheduler.step()
        if self.average is not None:
            self.average.update()
        return float(mean_loss), grad_norm

    def _better(self, valid: dict[str, float]) -> bool:
        """Whether a validation beats the best so far: fewer diverged rollouts first (a model whose rollouts
        leave the domain, blow up or gain energy is never preferred for a lower error), then a lower rollout MSE."""
        mse = valid.get("valid_rollout_mse", math.inf)
        if not math.isfinite(mse):
            return False
        return (valid.get("valid_diverged", 0), mse) < (self.best_diverged, self.best)

    def _validate(self) -> dict[str, float]:
        """Rank 0 validates (the averaged weights with ``train.ema_decay``); every rank gets its figures (the
        others wait meanwhile)."""
        if not self.ranks.is_main:
            return self.ranks.broadcast(None)
        with self.average.applied() if self.average is not None else nullcontext():
            return self.ranks.broadcast(self.task.validate())

    def train(self, progress: bool = True) -> dict[str, float]:
        """Run to ``config.train.steps``; SIGINT/SIGTERM stop cleanly after the current step and save.

        Every rank of a data-parallel run calls this; rank 0 alone shows progress and writes.
        """
        cfg = self.train_cfg
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        if self.ranks.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            save_config(self.config, self.out_dir / "config.yaml")
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for s in previous:
                signal.signal(s, self._on_signal)
        except ValueError:  # not in the main thread
            previous = {}
        bar = tqdm(total=cfg.steps, initial=self.step, desc="train", dynamic_ncols=True,
                   disable=no_bar(progress) if self.ranks.is_main else True)
        self.model.train()
        first, t0 = self.step, time.perf_counter()
        try:
            saved_at, last_valid = self._steps(self.ranks.replicate(self.model), bar)   # no reference kept
        finally:
            self.ranks.release(self.model)
            bar.close()
            for s, h in previous.items():
                signal.signal(s, h)
        self.last_run = (self.step - first, time.perf_counter() - t0)
        if saved_at != self.step:
            self.save()
        return {"step": self.step, "best_valid_rollout_mse": self.best, **last_valid}

    def _steps(self, replica: nn.Module, bar: tqdm) -> tuple[int, dict[str, float]]:
        """The steps of :meth:`train`, with their log rows, validations and checkpoints.

        Args:
            replica: the model replicated over the ranks (:meth:`Ranks.replicate`).
            bar: the progress bar.

        Returns:
            the step of the last checkpoint written (-1: none) and the last validation's figures.
        """
        cfg = self.train_cfg
        start = last_log_t = time.perf_counter()
        steps_since_log = 0
        last_valid: dict[str, float] = {}
        saved_at = -1
        while self.step < cfg.steps and not self._stop(start):
            loss, grad_norm = self._step(replica)
            self.step += 1
            self.window[0] += loss
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
                    last_valid = self._validate()
                    row.update(last_valid)
                    is_best = self._better(last_valid)
                    if is_best:
                        self.best = last_valid["valid_rollout_mse"]
                        self.best_diverged = last_valid.get("valid_diverged", 0)
                    self.save(best=is_best)
                    saved_at = self.step
                    last_log_t = time.perf_counter()  # validation time is not training throughput
                if self.ranks.is_main:
                    self._write_log_rows([row])
            if self.step % cfg.checkpoint_every == 0 and saved_at != self.step:
                self.save()
                saved_at = self.step
        return saved_at, last_valid
