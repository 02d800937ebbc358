"""Data-parallel training over processes, GPUs and machines (``torch.distributed``, launched with ``torchrun``).

``torchrun`` starts one process per rank and tells each, through its environment, who it is
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``) and where to meet the others
(``MASTER_ADDR``, ``MASTER_PORT``). :func:`init_distributed` reads that, checks the request (the
backend against the device, the ranks of a node against its GPUs) *before* any work starts, joins
the process group and returns the :class:`Ranks` the training loop runs over. Without ``torchrun``
(or with one process) it returns a :class:`Ranks` of one, whose collectives do nothing, so the
loop has a single code path.

What data parallelism means here (:class:`gns.train.loop.Trainer`):

* every rank holds the same model, draws its own ``batch_size`` windows and its own noise (from
  ``(seed, step, rank)``, :func:`gns.train.loop.step_random`), and ``DistributedDataParallel``
  averages the gradients, so one step sees a global batch of ``world_size x batch_size`` windows;
* online normalizers (:class:`gns.normalization.OnlineNormalizer`) add every rank's rows
  (:meth:`Ranks.replicate`), so every rank normalizes identically;
* rank 0 alone writes the checkpoints, the log and the validation; the other ranks wait for it.
"""

from __future__ import annotations

import gc
import inspect
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Mapping

import torch
import torch.distributed as dist
from torch import Tensor, nn

from gns.errors import GnsInputError
from gns.normalization import OnlineNormalizer

__all__ = ["BACKENDS", "Ranks", "init_distributed", "rank_device", "resolve_backend"]

BACKENDS = ("auto", "nccl", "gloo")


@dataclass(frozen=True)
class Ranks:
    """The processes one training run is spread over, seen from one of them.

    Attributes:
        rank: this process, ``0 .. world_size - 1`` (rank 0 writes checkpoints, logs, validation).
        world_size: processes in the run, on every node together.
        local_rank: this process among those of its node (its GPU under NCCL: ``cuda:local_rank``).
        local_world_size: processes on this node.
        device: where this rank trains.
        backend: ``"nccl"``, ``"gloo"``, or ``None`` for a run of one process (no process group).
    """

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    device: torch.device
    backend: str | None

    @staticmethod
    def single(device: torch.device | str) -> "Ranks":
        """A run of one process on ``device``: every collective below is the identity."""
        return Ranks(0, 1, 0, 1, torch.device(device), None)

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the one that writes."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        """Whether there are other ranks to talk to."""
        return self.world_size > 1

    def _collective_device(self) -> torch.device:
        return self.device if self.backend == "nccl" else torch.device("cpu")

    def mean(self, value: Tensor) -> Tensor:
        """The mean of a tensor over the ranks (a copy; ``value`` itself when alone)."""
        if not self.parallel:
            return value
        out = value.detach().to(self._collective_device(), copy=True)
        dist.all_reduce(out)
        return (out / self.world_size).to(value.device)

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` holds on any rank: every rank gets the same answer (stop together)."""
        if not self.parallel:
            return flag
        votes = torch.tensor([float(flag)], device=self._collective_device())
        dist.all_reduce(votes)
        return bool(votes.item() > 0)

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if not self.parallel:
            return
        if self.backend == "nccl":
            dist.barrier(device_ids=[self.device.index])
        else:
            dist.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (any picklable object; the others' argument is ignored)."""
        if not self.parallel:
            return obj
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0, device=self._collective_device())
        return box[0]

    def replicate(self, model: nn.Module) -> nn.Module:
        """The module whose forward and backward train ``model`` data-parallel (undo with :meth:`release`).

        Alone: ``model`` itself. Otherwise ``model`` wrapped in ``DistributedDataParallel`` (its
        backward averages the gradients over the ranks; buffers are not re-broadcast from rank 0 at
        every forward, since online normalizers keep theirs equal by all-reducing what they
        accumulate, which this turns on). ``model`` keeps its own parameters and state dict (no
        ``module.`` prefix): checkpoints hold ``model``, never the wrapper.
        """
        if not self.parallel:
            return model
        for module in model.modules():
            if isinstance(module, OnlineNormalizer):
                module.synchronize(dist.group.WORLD)
        ddp = nn.parallel.DistributedDataParallel
        # the option's name since torch 2.13 (both still sync the buffers once, when wrapping)
        no_buffer_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in
                          inspect.signature(ddp.__init__).parameters else {"broadcast_buffers": False})
        return ddp(model, device_ids=[self.device.index] if self.device.type == "cuda" else None, **no_buffer_sync)

    def release(self, model: nn.Module) -> None:
        """Undo :meth:`replicate`, once the caller holds no reference to the wrapper.

        The online normalizers of ``model`` accumulate alone again, and the wrapper, which sits in
        a reference cycle, is collected now: left to the interpreter's shutdown, the last gradient
        all-reduce is freed by a gloo thread that can no longer take the GIL, and the process
        aborts ("terminate called without an active exception": 1 to 2 exits in 10 with torch 2.13
        on CPU before this collection).
        """
        if not self.parallel:
            return
        for module in model.modules():
            if isinstance(module, OnlineNormalizer):
                module.synchronize(None)
        gc.collect()

    def close(self) -> None:
        """Leave the process group (when this run joined one)."""
        if self.parallel and dist.is_initialized():
            dist.destroy_process_group()


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise GnsInputError("not an integer (torchrun sets it)", key=f"environment {name}", found=repr(text)) from None


def rank_device(device: str | torch.device, local_rank: int, local_world_size: int) -> torch.device:
    """The device of a rank: ``"auto"`` and ``"cuda"`` become ``cuda:local_rank`` when GPUs are there.

    Args:
        device: the configured device (``config.device``): ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:K"``.
        local_rank: the rank's index on its node.
        local_world_size: the ranks on its node.

    Raises:
        GnsInputError: more ranks on the node than GPUs, GPUs asked for where there are none, or a
            fixed ``cuda:K`` shared by several ranks of a node.
    """
    name = str(device)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    chosen = torch.device(name)
    if chosen.type != "cuda":
        return chosen
    if not torch.cuda.is_available():
        raise GnsInputError("a GPU was asked for, but torch sees none on this machine", key="device",
                            expected="cpu or auto", found=name)
    if chosen.index is not None:
        if local_world_size > 1:
            raise GnsInputError("with several ranks on a node each rank takes cuda:LOCAL_RANK; a fixed GPU "
                                "would be shared by all of them (set CUDA_VISIBLE_DEVICES to choose the GPUs)",
                                key="device", expected="cuda or auto", found=name)
        return chosen
    count = torch.cuda.device_count()
    if local_world_size > count:
        raise GnsInputError("more ranks on this node than GPUs (torchrun --nproc_per_node): each rank takes "
                            "its own GPU", key="device", expected=f"at most {count} ranks per node",
                            found=f"{local_world_size} ranks")
    return torch.device("cuda", local_rank)


def resolve_backend(backend: str, device: torch.device) -> str:
    """``"auto"`` -> NCCL on GPUs, gloo on CPUs; a requested backend is checked against the device.

    Raises:
        GnsInputError: an unknown backend, or NCCL without a GPU (on the machine or in ``device``).
    """
    if backend not in BACKENDS:
        raise GnsInputError("unknown torch.distributed backend", key="train.backend", expected=BACKENDS,
                            found=backend)
    if backend == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise GnsInputError("NCCL runs on GPUs, and torch sees none on this machine (use gloo on CPUs)",
                                key="train.backend", expected="gloo or auto", found="nccl")
        if device.type != "cuda":
            raise GnsInputError("NCCL runs on GPUs, but the device is not a GPU", key="train.backend",
                                expected=f"gloo or auto for device {device}", found="nccl")
        if not dist.is_nccl_available():
            raise GnsInputError("this torch build has no NCCL", key="train.backend", expected="gloo or auto",
                                found="nccl")
    return backend


def init_distributed(backend: str = "auto", device: str | torch.device = "auto",
                     env: Mapping[str, str] | None = None, timeout_s: float = 1800.0) -> Ranks:
    """Join the process group ``torchrun`` set up (or make a run of one process).

    Every check comes before the process group is joined, and every rank makes the same ones, so
    bad input stops all ranks with the same message and none of them waits for the others forever.

    Args:
        backend: ``"auto"`` (NCCL on GPUs, gloo on CPUs), ``"nccl"`` or ``"gloo"`` (``train.backend``).
        device: the configured device (``config.device``); see :func:`rank_device`.
        env: where ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE`` are read
            (default: ``os.environ``; the process group itself reads ``MASTER_ADDR``/``MASTER_PORT``
            from ``os.environ``).
        timeout_s: how long a collective waits for the other ranks before failing.

    Returns:
        The :class:`Ranks` of this process (a run of one when ``WORLD_SIZE`` is unset or 1).
    """
    env = os.environ if env is None else env
    world_size = _env_int(env, "WORLD_SIZE", 1)
    rank = _env_int(env, "RANK", 0)
    local_rank = _env_int(env, "LOCAL_RANK", 0)
    local_world_size = _env_int(env, "LOCAL_WORLD_SIZE", world_size)
    if not (0 <= rank < world_size and 0 <= local_rank < local_world_size):
        raise GnsInputError("inconsistent torchrun environment", key="RANK/WORLD_SIZE/LOCAL_RANK/LOCAL_WORLD_SIZE",
                            found=f"{rank}/{world_size}/{local_rank}/{local_world_size}")
    chosen = rank_device(device, local_rank, local_world_size)
    name = resolve_backend(backend, chosen)
    if world_size == 1:
        return Ranks.single(chosen)
    if not dist.is_available():
        raise GnsInputError("this torch build has no torch.distributed", key="WORLD_SIZE", expected=1,
                            found=world_size)
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    if not dist.is_initialized():
        dist.init_process_group(name, rank=rank, world_size=world_size, timeout=timedelta(seconds=timeout_s))
    elif (dist.get_rank(), dist.get_world_size()) != (rank, world_size):
        raise GnsInputError("a process group is already joined, as another rank", key="RANK/WORLD_SIZE",
                            expected=f"{rank}/{world_size}", found=f"{dist.get_rank()}/{dist.get_world_size()}")
    return Ranks(rank, world_size, local_rank, local_world_size, chosen, name)
