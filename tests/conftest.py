"""Shared fixtures: tiny datasets written in the canonical format, and helpers for several test modules."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from gns.allocator import tune_allocator

tune_allocator()   # as the command line does: the suite's rollouts and trainings without a page fault per tensor page

FIXTURES = Path(__file__).parent / "fixtures"


def make_bouncing_dataset(root: Path, num_trajectories=(3, 2, 2), steps: int = 40, particles: int = 24,
                          kinematic: int = 4, seed: int = 0) -> Path:
    """Balls falling under gravity and bouncing off the floor of a unit box, plus kinematic
    particles (type 3) moving on a prescribed circle. Written with the public data API."""
    from gns.data import DatasetMetadata, Trajectory, compute_statistics, save_metadata, write_split

    rng = np.random.default_rng(seed)
    bounds = [[0.0, 1.0], [0.0, 1.0]]
    g = np.array([0.0, -2e-4])
    splits = {}
    for name, count in zip(("train", "valid", "test"), num_trajectories):
        trajs = []
        for _ in range(count):
            x = rng.uniform(0.2, 0.8, size=(particles, 2))
            v = rng.normal(0, 2e-3, size=(particles, 2))
            frames = []
            for t in range(steps):
                v = v + g
                x = x + v
                below = x[:, 1] < 0.0
                x[below, 1] = -x[below, 1]
                v[below, 1] = -0.8 * v[below, 1]
                frames.append(x.copy())
            pos = np.stack(frames).astype(np.float32)
            phase = np.linspace(0, 2 * np.pi, kinematic, endpoint=False)
            t = np.arange(steps)[:, None]
            pos[:, :kinematic, 0] = 0.5 + 0.1 * np.cos(phase + 0.05 * t)
            pos[:, :kinematic, 1] = 0.5 + 0.1 * np.sin(phase + 0.05 * t)
            ptype = np.full(particles, 5, dtype=np.int64)
            ptype[:kinematic] = 3
            trajs.append(Trajectory(position=pos, particle_type=ptype))
        splits[name] = trajs
    root.mkdir(parents=True, exist_ok=True)
    for name, trajs in splits.items():
        write_split(root / f"{name}.h5", trajs)
    stats = compute_statistics(splits["train"], bounds, [False, False])
    meta = DatasetMetadata(dim=2, dt=0.01, bounds=bounds, sequence_length=steps - 1, default_connectivity_radius=0.2,
                           vel_mean=None, vel_std=None, acc_mean=None, acc_std=None,
                           periodic_boundary_conditions=[False, False], kinematic_particle_types=[3],
                           gravity=g.tolist()).with_statistics(stats)
    save_metadata(meta, root)
    return root


@pytest.fixture(scope="session")
def bouncing_dataset(tmp_path_factory) -> Path:
    return make_bouncing_dataset(tmp_path_factory.mktemp("bouncing"))


@pytest.fixture(scope="session")
def lj3d_dataset() -> Path:
    return FIXTURES / "lagrangebench_lj3d"


def make_mesh_dataset(root: Path, kind: str = "cloth", num_trajectories=(3, 1, 1), frames: int = 30,
                      seed: int = 0, inputs: bool = False) -> Path:
    """A tiny analytic mesh dataset in the canonical format, written with the public data API.

    * ``cloth``: a 7x4-node sheet (order-2 target ``world_pos``) falling in z with drag from random
      initial velocities (per-step acceleration ``-0.2 v + g``), its left column HANDLE nodes moving
      on a prescribed sine.
    * ``flow``: a fixed 7x4-node mesh (order-1 target ``velocity``, output ``pressure``) with a
      rotating uniform velocity, INFLOW nodes on the left, WALL_BOUNDARY nodes on the top and bottom
      and OUTFLOW nodes on the right; pressure = |v|^2 / 2 + x.

    With ``inputs`` (cloth only) the sheet also feels a uniform vertical "wind" ``w(t)`` (extra
    acceleration ``1e-3 w`` per step), stored as the dynamic input field ``wind`` ``(T, N, 3)``,
    and carries a static input field ``thickness`` ``(N, 1)`` that the dynamics ignore.
    """
    from gns.data.mesh import MeshFieldSpec, MeshMetadata, MeshTarget, MeshTrajectory, save_mesh_metadata, \
        write_mesh_split
    from gns.mesh.io import make_rectangle_mesh

    rng = np.random.default_rng(seed)
    mesh_pos, cells = make_rectangle_mesh(1.2, 0.6, 6, 3)
    mesh_pos = np.asarray(mesh_pos, np.float32)[:, :2]
    cells = np.asarray(cells, np.int32)
    x, y = mesh_pos[:, 0], mesh_pos[:, 1]
    t = np.arange(frames, dtype=np.float64)[:, None]
    root.mkdir(parents=True, exist_ok=True)
    for split, count in zip(("train", "valid", "test"), num_trajectories):
        trajs = []
        for i in range(count):
            if kind == "cloth":
                node_type = np.where(np.isclose(x, 0.0), 3, 0).astype(np.int32)
                # z velocity relaxes towards a terminal fall (drag + gravity): a = -0.2 v + g per step
                v = rng.normal(0.0, 0.02) * np.cos(np.pi * x / 1.2) + rng.normal(0.0, 0.01, size=x.shape)
                z = np.zeros((frames, x.size))
                wind = np.sin(0.3 * t[:, 0] + rng.uniform(0, 6)) if inputs else np.zeros(frames)   # (T,)
                for k in range(1, frames):
                    v = 0.8 * v - 1e-3 + 1e-3 * wind[k - 1]
                    z[k] = z[k - 1] + v
                z[:, node_type == 3] = 0.05 * np.sin(0.2 * t + rng.uniform(0, 6))       # prescribed handles
                world = np.stack([np.broadcast_to(x, z.shape), np.broadcast_to(y, z.shape), z], axis=-1)
                fields = {"world_pos": world.astype(np.float32)}
                static = {}
                if inputs:
                    up = np.zeros((frames, x.size, 3), np.float32)
                    up[..., 2] = wind[:, None]
                    fields["wind"] = up
                    static = {"thickness": rng.uniform(1.0, 2.0, size=(x.size, 1)).astype(np.float32)}
            else:
                node_type = np.zeros_like(x, dtype=np.int32)
                node_type[np.isclose(x, 1.2)] = 5
                node_type[np.isclose(y, 0.0) | np.isclose(y, 0.6)] = 6
                node_type[np.isclose(x, 0.0)] = 4
                speed, phase = rng.uniform(0.5, 1.5), rng.uniform(0, 2 * np.pi)
                angle = 0.1 * t + phase                                                # (T, 1)
                v = np.stack([speed * np.cos(angle) + 0 * x, speed * np.sin(angle) + 0 * x], axis=-1)
                p = 0.5 * (v ** 2).sum(-1, keepdims=True) + x[None, :, None]
                fields = {"velocity": v.astype(np.float32), "pressure": p.astype(np.float32)}
                static = {}
            trajs.append(MeshTrajectory(mesh_pos=mesh_pos, cells=cells, node_type=node_type, fields=fields,
                                        static_fields=static))
        write_mesh_split(root / f"{split}.h5", trajs)
    if kind == "cloth":
        fields = {"world_pos": MeshFieldSpec(3)}
        if inputs:
            fields.update(wind=MeshFieldSpec(3), thickness=MeshFieldSpec(1, dynamic=False))
        meta = MeshMetadata(domain="cloth", dt=0.02, mesh_dim=2, cell_type="triangle",
                            node_types={"NORMAL": 0, "HANDLE": 3}, fields=fields,
                            target=MeshTarget("world_pos", 2), outputs=[], sequence_length=frames - 1,
                            world_edge_radius=0.15, inputs=["wind", "thickness"] if inputs else [])
    else:
        meta = MeshMetadata(domain="flow", dt=0.01, mesh_dim=2, cell_type="triangle",
                            node_types={"NORMAL": 0, "INFLOW": 4, "OUTFLOW": 5, "WALL_BOUNDARY": 6},
                            fields={"velocity": MeshFieldSpec(2), "pressure": MeshFieldSpec(1)},
                            target=MeshTarget("velocity", 1), outputs=["pressure"], sequence_length=frames - 1)
    save_mesh_metadata(meta, root)
    return root


@pytest.fixture(scope="session")
def cloth_dataset(tmp_path_factory) -> Path:
    return make_mesh_dataset(tmp_path_factory.mktemp("cloth"), "cloth")


@pytest.fixture(scope="session")
def cloth_inputs_dataset(tmp_path_factory) -> Path:
    """The cloth set with a dynamic (``wind``) and a static (``thickness``) input field."""
    return make_mesh_dataset(tmp_path_factory.mktemp("cloth_inputs"), "cloth", inputs=True)


@pytest.fixture(scope="session")
def flow_dataset(tmp_path_factory) -> Path:
    return make_mesh_dataset(tmp_path_factory.mktemp("flow"), "flow")


@pytest.fixture(scope="session")
def objects_dataset(tmp_path_factory) -> Path:
    """A small Objects2D set made by the reference solver (pymunk): 4 / 2 / 2 scenes of 3-8 objects, 40 steps."""
    pytest.importorskip("pymunk")
    from gns.solvers.objects2d import Objects2DConfig, generate_objects2d

    return generate_objects2d(tmp_path_factory.mktemp("objects2d"), Objects2DConfig.small(num_workers=1),
                              progress=False)


# -------------------------------------------------------------------- helpers shared by test modules
# (``--import-mode=importlib`` leaves ``tests/`` off ``sys.path``: helpers come as fixtures.)
def _assert_same_mesh(got, want) -> None:
    for name in ("mesh_pos", "cells", "node_type"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    for table in ("fields", "static_fields", "row_lengths"):
        a, b = getattr(got, table), getattr(want, table)
        assert sorted(a) == sorted(b), table
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])


@pytest.fixture(scope="session")
def assert_same_mesh():
    """``assert_same_mesh(got, want)``: two ``MeshTrajectory`` hold the same arrays, exactly."""
    return _assert_same_mesh


def _read_splits(dataset_dir) -> dict[str, list]:
    from gns.data import open_split
    from gns.data.mesh import is_mesh_dataset, open_mesh_split

    open_any = open_mesh_split if is_mesh_dataset(dataset_dir) else open_split
    out = {}
    for split in ("train", "valid", "test"):
        with open_any(dataset_dir, split) as trajectories:
            out[split] = [trajectories[i] for i in range(len(trajectories))]
    return out


@pytest.fixture(scope="session")
def read_splits():
    """``read_splits(dataset_dir)``: ``{split: [trajectory, ...]}`` of a particle or mesh dataset."""
    return _read_splits


@pytest.fixture(scope="session")
def generate_three(tmp_path_factory):
    """``generate_three(generate, config, name, **changes)``: a solver's dataset written three times,
    ``(reference, again, other)``: ``config``; the same seed with ``changes`` (workers, batches) that
    must not change the data; another seed."""

    def make(generate, config, name: str, **changes) -> tuple[Path, Path, Path]:
        root = tmp_path_factory.mktemp(name)
        reference = generate(root / "a", config, progress=False)
        again = generate(root / "b", dataclasses.replace(config, **changes), progress=False)
        other = generate(root / "c", dataclasses.replace(config, seed=1), progress=False)
        return reference, again, other

    return make


@pytest.fixture
def close_figures():
    """Close every matplotlib figure once the test is done (plotting tests: ``usefixtures``)."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def _drift(num_steps: int, num_particles: int, dim: int, seed: int = 0) -> np.ndarray:
    """``(T, N, D)`` particles drifting in the unit box."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(0.2, 0.8, (num_particles, dim))
    velocity = rng.normal(0.0, 0.01, (num_particles, dim))
    return start + velocity * np.arange(num_steps)[:, None, None]


@pytest.fixture(scope="session")
def drift():
    """``drift(num_steps, num_particles, dim, seed=0)``: a ``(T, N, D)`` trajectory drifting in the unit box."""
    return _drift


def _gif_frames(path) -> int:
    from PIL import Image

    with Image.open(path) as image:
        return image.n_frames


@pytest.fixture(scope="session")
def gif_frames():
    """``gif_frames(path)``: the number of frames of a gif."""
    return _gif_frames


# Tiny, fast training settings for the tests of the loop and of each domain's task.
SMALL_TRAINING = ["model.latent_size=16", "model.message_passing_steps=2", "model.hidden_layers=1",
                  "train.lr_init=3e-3", "train.lr_decay_steps=1000", "train.log_every=10", "train.eval_every=30",
                  "train.checkpoint_every=20", "train.valid_windows=8", "train.valid_rollouts=1",
                  "train.valid_rollout_steps=5", "device=cpu"]


def _small_config(dataset, out, *extra):
    from gns.config import load_config

    return load_config(overrides=SMALL_TRAINING + [f"dataset={dataset}", f"out_dir={out}", *extra])


def _train_small(config, steps=None):
    from gns.domains import domain_for_dataset
    from gns.train.loop import Trainer
    from gns.train.task import SimulatorTask

    if steps is not None:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, steps=steps))
    trainer = Trainer(config, SimulatorTask(config, domain_for_dataset(config.dataset)), config.out_dir)
    trainer.resume()
    trainer.train(progress=False)
    return trainer


@pytest.fixture(scope="session")
def small_config():
    """``small_config(dataset, out, *overrides)``: the tests' tiny training config for a dataset."""
    return _small_config


@pytest.fixture(scope="session")
def train_small():
    """``train_small(config, steps=None)``: resume (if a checkpoint exists) and train; returns the Trainer."""
    return _train_small


@pytest.fixture
def one_thread():
    """torch on one thread for the test (sums in a fixed order: pinned figures), restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
