"""Data-parallel training (gns/train/distributed.py and the loop under it), on CPU with gloo and 2 processes.

The 2-rank runs start ``distributed_worker.py`` once per rank with the environment torchrun gives
(``test_torchrun_cli_trains_and_resumes_on_one_process`` goes through torchrun and the CLI itself).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gns.config import save_config
from gns.domains import domain_for_dataset
from gns.errors import GnsInputError
from gns.train.distributed import Ranks, init_distributed
from gns.train.loop import Trainer, step_random
from gns.train.losses import unrolled_loss
from gns.train.task import SimulatorTask

WORKER = Path(__file__).with_name("distributed_worker.py")
STOP_AT = 5   # distributed_worker.STOP_AT
TWO_GPUS = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(scenario: str, config, out: Path, world_size: int = 2, timeout: float = 120.0) -> None:
    """Run ``distributed_worker.py scenario`` on ``world_size`` local ranks; fail with their output if any fails."""
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "config.yaml")
    port = _free_port()
    procs = []
    for rank in range(world_size):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank),
               "LOCAL_WORLD_SIZE": str(world_size), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, str(WORKER), scenario, str(out / "config.yaml"), str(out)],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        outputs = [p.communicate(timeout=timeout)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for rank, (p, text) in enumerate(zip(procs, outputs)):
        assert p.returncode == 0, f"rank {rank} exited with {p.returncode}:\n{text}"


@pytest.mark.parametrize("backend,device", [("gloo", "cpu"), pytest.param("nccl", "cuda", marks=TWO_GPUS)])
def test_two_ranks_gradient_equals_one_process_on_the_doubled_batch(bouncing_dataset, tmp_path, small_config,
                                                                     backend, device):
    config = small_config(bouncing_dataset, tmp_path / "run", "train.steps=1", "train.grad_clip=0",
                          "train.noise_std=0", "train.batch_size=2", "train.num_threads=1",
                          f"train.backend={backend}", f"device={device}")
    run_ranks("gradients", config, tmp_path)
    grads = [torch.load(tmp_path / f"grads_rank{r}.pt") for r in range(2)]

    # one process, the same initial weights, the batches both ranks drew, as one batch of 4
    task = SimulatorTask(config, domain_for_dataset(config.dataset), device="cpu")
    window = task.model.window + 1
    items = [task.sampler.sample_items(2, window, step_random(config.train.seed, 0, torch.device("cpu"), r).local)
             for r in range(2)]
    assert items[0] != items[1]                         # the ranks drew their own batches

    def gradient(batch) -> dict[str, torch.Tensor]:
        task.model.zero_grad(set_to_none=True)
        unrolled_loss(task.model, task.sampler.load(batch, window), 0, 0.0, task.gamma).backward()
        return {n: p.grad.clone() for n, p in task.model.named_parameters()}

    doubled, rank0_alone = gradient(items[0] + items[1]), gradient(items[0])
    tol = {"rtol": 1e-5, "atol": 1e-7} if device == "cpu" else {"rtol": 1e-3, "atol": 1e-5}
    for name, want in doubled.items():
        assert torch.equal(grads[0][name], grads[1][name]), name   # the averaged gradient, the same on both
        torch.testing.assert_close(grads[0][name], want, **tol, msg=name)
    assert any(not torch.allclose(grads[0][n], rank0_alone[n], **tol) for n in doubled)   # not rank 0's alone


def test_two_ranks_interrupted_and_resumed_match_an_uninterrupted_run(bouncing_dataset, tmp_path, small_config):
    extra = ["train.steps=8", "train.loss=pushforward", "train.pushforward_steps=[0,2]",
             "train.pushforward_unrolls=[0,2]", "train.pushforward_probs=[1,1]", "train.log_every=4",
             "train.eval_every=8", "train.checkpoint_every=4", "train.backend=gloo", "train.num_threads=1"]
    config = small_config(bouncing_dataset, tmp_path / "unused", *extra)
    run_ranks("resume", config, tmp_path)
    result = [torch.load(tmp_path / f"resume_rank{r}.pt") for r in range(2)]
    for run in ("straight", "resumed"):
        saved = torch.load(tmp_path / run / "checkpoints" / "latest.pt", weights_only=False)
        assert saved["step"] == 8 and saved["world_size"] == 2
        assert not any(k.startswith("module.") for k in saved["model"])         # the unwrapped model's weights
        for name, value in saved["model"].items():
            assert torch.equal(value, result[0][run][name]) and torch.equal(value, result[1][run][name]), name
    straight, resumed = result[0]["straight"], result[0]["resumed"]
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name
    for r in range(2):   # an incompatible checkpoint stops every rank with the same error, none hangs
        assert "latent_size: checkpoint 16 vs now 8" in result[r]["error"], result[r]["error"]

    # the 2-rank checkpoint resumes on one process
    one = small_config(bouncing_dataset, tmp_path / "straight", *extra[1:], "train.steps=10")
    trainer = Trainer(one, SimulatorTask(one, domain_for_dataset(one.dataset)), one.out_dir)
    assert trainer.resume() and trainer.step == 8 and trainer.resumed_world_size == 2
    trainer.train(progress=False)
    assert trainer.step == 10
    assert torch.load(tmp_path / "straight" / "checkpoints" / "latest.pt", weights_only=False)["world_size"] == 1


def test_online_normalizers_agree_across_ranks(cloth_dataset, tmp_path, small_config):
    steps, batch = 3, 2
    config = small_config(cloth_dataset, tmp_path / "run", f"train.steps={steps}", f"train.batch_size={batch}",
                          "train.backend=gloo", "train.num_threads=1")
    run_ranks("normalizers", config, tmp_path)
    states = [torch.load(tmp_path / f"state_rank{r}.pt") for r in range(2)]
    nodes = SimulatorTask(config, domain_for_dataset(config.dataset)).sampler.load([(0, 0)], 3).num_entities
    for name, value in states[0].items():
        assert torch.equal(value, states[1][name]), name       # every buffer and weight, bit for bit
    # every step added both ranks' rows: 2 ranks x batch windows x nodes each
    assert int(states[0]["node_normalizer.num_accumulations"]) == steps
    assert float(states[0]["node_normalizer.count"]) == steps * 2 * batch * nodes
    assert float(states[0]["node_normalizer.sum_squared"].sum()) > 0


def test_torchrun_cli_trains_and_resumes_on_one_process(bouncing_dataset, tmp_path, small_config, capsys):
    from gns.cli import main

    out = tmp_path / "run"
    config = small_config(bouncing_dataset, out, "train.steps=4", "train.log_every=2", "train.num_threads=1")
    save_config(config, tmp_path / "config.yaml")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",   # = torchrun
               "-m", "gns.cli", "train", "--config", str(tmp_path / "config.yaml"), "--backend", "gloo", "--quiet"]
    res = subprocess.run(command, capture_output=True, text=True, timeout=180,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("training on 2 ranks (gloo)") == 1                # rank 0 alone speaks
    assert torch.load(out / "checkpoints" / "latest.pt", weights_only=False)["world_size"] == 2
    rows = (out / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["2", "4"]
    assert main(["train", "--config", str(tmp_path / "config.yaml"), "--set", "train.steps=6", "--quiet"]) == 0
    assert "written by 2 rank(s), this run has 1" in capsys.readouterr().out   # resuming N -> M is said
    assert torch.load(out / "checkpoints" / "latest.pt", weights_only=False)["step"] == 6


# --- bad input: refused before any work, the same way on every rank ----------------------------------------------
def test_more_ranks_than_training_trajectories_is_refused(bouncing_dataset, tmp_path, small_config):
    config = small_config(bouncing_dataset, tmp_path / "run")
    task = SimulatorTask(config, domain_for_dataset(config.dataset))
    assert task.num_trajectories == 3
    four = Ranks(rank=0, world_size=4, local_rank=0, local_world_size=4, device=torch.device("cpu"), backend="gloo")
    with pytest.raises(GnsInputError, match="more ranks than training trajectories.*at most 3 ranks, found 4 ranks"):
        Trainer(config, task, config.out_dir, four)


def _torchrun_env(world_size: int = 2, local_world_size: int = 2) -> dict[str, str]:
    return {"RANK": "0", "WORLD_SIZE": str(world_size), "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": str(local_world_size)}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without GPUs")
@pytest.mark.parametrize("world_size", [1, 2])
def test_nccl_without_gpus_is_refused(world_size):
    with pytest.raises(GnsInputError, match="NCCL runs on GPUs, and torch sees none"):
        init_distributed("nccl", "auto", env=_torchrun_env(world_size, world_size))


def test_more_ranks_per_node_than_gpus_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(GnsInputError, match="more ranks on this node than GPUs.*at most 1 ranks per node, found 2"):
        init_distributed("auto", "cuda", env=_torchrun_env(4, 2))
    with pytest.raises(GnsInputError, match="each rank takes cuda:LOCAL_RANK"):
        init_distributed("auto", "cuda:0", env=_torchrun_env(4, 2))


def test_unknown_backend_and_bad_environment_are_refused():
    with pytest.raises(GnsInputError, match="train.backend.*expected .*gloo.*found mpi"):
        init_distributed("mpi", "cpu", env={})
    with pytest.raises(GnsInputError, match="inconsistent torchrun environment"):
        init_distributed("gloo", "cpu", env={"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})


def test_one_process_without_torchrun_is_a_run_of_one():
    ranks = init_distributed("auto", "cpu", env={})
    assert (ranks.rank, ranks.world_size, ranks.backend, ranks.device) == (0, 1, None, torch.device("cpu"))
    model = torch.nn.Linear(2, 2)
    assert ranks.replicate(model) is model
    assert ranks.any(False) is False and ranks.broadcast("x") == "x" and ranks.mean(torch.ones(())) == 1


def test_ranks_draw_their_own_batches_and_noise_but_the_same_unroll():
    cpu = torch.device("cpu")
    zero, one = step_random(3, 7, cpu, 0), step_random(3, 7, cpu, 1)
    assert zero.shared is zero.local is zero.device                 # one process: one stream, as before ranks
    assert torch.equal(torch.rand(4, generator=zero.shared), torch.rand(4, generator=one.shared))
    assert not torch.equal(torch.rand(4, generator=step_random(3, 7, cpu, 0).local),
                           torch.rand(4, generator=one.local))
    assert torch.equal(torch.rand(4, generator=step_random(3, 7, cpu, 1).local),
                       torch.rand(4, generator=step_random(3, 7, cpu, 1).local))   # from (seed, step, rank) alone
