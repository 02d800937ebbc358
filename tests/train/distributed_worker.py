"""One rank of the data-parallel tests (tests/train/test_distributed.py starts one process per rank).

    python distributed_worker.py SCENARIO CONFIG_YAML OUT_DIR

The environment is torchrun's: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
MASTER_PORT. Every rank writes what the test compares to ``OUT_DIR/<what>_rank<r>.pt``.

Scenarios:

* ``gradients``: one training step (the config turns clipping off); each rank saves its
  parameters' gradients.
* ``resume``: ``train.steps`` steps straight into ``OUT_DIR/straight``; the same run stopped after
  ``STOP_AT`` steps and resumed by a fresh trainer into ``OUT_DIR/resumed``; then a trainer of
  another model size must refuse that checkpoint on every rank. Each rank saves its final weights
  and the error it got.
* ``normalizers``: ``train.steps`` steps; each rank saves its model's state dict (online
  normalizer statistics included).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch

from gns.config import load_config
from gns.domains import domain_for_dataset
from gns.errors import CheckpointMismatchError
from gns.train.distributed import init_distributed
from gns.train.loop import Trainer
from gns.train.task import SimulatorTask

STOP_AT = 5   # resume: the step at which the interrupted run stops


def trainer_for(config, ranks, out: Path, steps: int | None = None) -> Trainer:
    if steps is not None:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, steps=steps))
    task = SimulatorTask(config, domain_for_dataset(config.dataset), device=ranks.device)
    return Trainer(config, task, out, ranks)


def main(scenario: str, config_path: str, out_dir: str) -> None:
    config = load_config(config_path)
    out = Path(out_dir)
    ranks = init_distributed(config.train.backend, config.device)
    mine = f"rank{ranks.rank}.pt"
    try:
        if scenario == "gradients":
            trainer = trainer_for(config, ranks, out / "run")
            trainer.train(progress=False)
            torch.save({n: p.grad.cpu() for n, p in trainer.model.named_parameters()}, out / f"grads_{mine}")
        elif scenario == "resume":
            straight = trainer_for(config, ranks, out / "straight")
            straight.train(progress=False)
            trainer_for(config, ranks, out / "resumed", steps=STOP_AT).train(progress=False)
            resumed = trainer_for(config, ranks, out / "resumed")
            assert resumed.resume() and resumed.step == STOP_AT, resumed.step
            resumed.train(progress=False)
            other = dataclasses.replace(config, model=dataclasses.replace(config.model, latent_size=8))
            error = "resumed without error"
            try:
                trainer_for(other, ranks, out / "resumed").resume()
            except CheckpointMismatchError as exc:
                error = str(exc)
            torch.save({"straight": straight.model.state_dict(), "resumed": resumed.model.state_dict(),
                        "error": error}, out / f"resume_{mine}")
        elif scenario == "normalizers":
            trainer = trainer_for(config, ranks, out / "run")
            trainer.train(progress=False)
            torch.save(trainer.model.state_dict(), out / f"state_{mine}")
        else:
            raise SystemExit(f"unknown scenario {scenario!r}")
    finally:
        ranks.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
