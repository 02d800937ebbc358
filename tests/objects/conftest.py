"""Fixtures of the object-domain tests: a small untrained simulator and the windows of the small set."""

from __future__ import annotations

import pytest
import torch

from gns.config import load_config


@pytest.fixture(scope="session")
def springs_dataset(tmp_path_factory):
    """A small Objects2D set whose scenes have springs (4 / 2 / 2 scenes of 30 steps, 3-9 springs each)."""
    pytest.importorskip("pymunk")
    from gns.solvers.objects2d import Objects2DConfig, generate_objects2d

    config = Objects2DConfig.small(num_workers=1, num_steps=30, spring_probability=0.4, seed=1)
    return generate_objects2d(tmp_path_factory.mktemp("objects2d_springs"), config, progress=False)


@pytest.fixture(scope="session")
def obstacles_dataset(tmp_path_factory):
    """A small Objects2D set whose scenes have one or two static obstacles (4 / 2 / 2 scenes of 30 steps)."""
    pytest.importorskip("pymunk")
    from gns.solvers.objects2d import Objects2DConfig, generate_objects2d

    config = Objects2DConfig.small(num_workers=1, num_steps=30, min_obstacles=1, max_obstacles=2, seed=2)
    return generate_objects2d(tmp_path_factory.mktemp("objects2d_obstacles"), config, progress=False)


@pytest.fixture(scope="module")
def make_simulator(objects_dataset):
    """``make_simulator(*overrides, dataset=None)``: a small untrained :class:`ObjectSimulator` for the small
    set (or ``dataset``) whose attribute normalizer has seen the training windows once (as a trained model's has)."""
    from gns.domains import get_domain

    domain = get_domain("objects")

    def make(*overrides: str, dataset=None):
        dataset = dataset or objects_dataset
        config = load_config(overrides=["model.latent_size=16", "model.message_passing_steps=2",
                                        f"dataset={dataset}", *overrides])
        metadata = domain.load_metadata(dataset)
        torch.manual_seed(0)
        simulator = domain.build_simulator(config, metadata, domain.noise_settings(config, metadata)[0])
        with domain.open_split(dataset, "train", metadata) as train:
            windows = domain.training_windows(simulator, train)
            simulator.train()
            with torch.no_grad():
                simulator(windows.load([(i, 0) for i in range(len(windows.lengths))], simulator.window))
        return simulator.eval()

    return make


@pytest.fixture(scope="module")
def test_windows(objects_dataset):
    """:class:`ObjectWindows` over the small set's test split."""
    from gns.data.objects import open_object_split
    from gns.objects.windows import ObjectWindows

    return ObjectWindows(open_object_split(objects_dataset, "test"))


@pytest.fixture(scope="module")
def obstacle_windows(obstacles_dataset):
    """:class:`ObjectWindows` over the obstacles set's test split."""
    from gns.data.objects import open_object_split
    from gns.objects.windows import ObjectWindows

    return ObjectWindows(open_object_split(obstacles_dataset, "test"))


@pytest.fixture(scope="module")
def spring_windows(springs_dataset):
    """:class:`ObjectWindows` over the springs set's test split."""
    from gns.data.objects import open_object_split
    from gns.objects.windows import ObjectWindows

    return ObjectWindows(open_object_split(springs_dataset, "test"))
