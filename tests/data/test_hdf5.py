"""Canonical HDF5 splits: writing, lazy reading, windows, pickling and input errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from gns.data import DatasetMetadata, Trajectory, open_split, save_metadata, write_split
from gns.errors import GnsInputError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def random_trajectories(count: int = 3, dim: int = 2, seed: int = 0, context: bool = True,
                        step_context: bool = True) -> list[Trajectory]:
    """Trajectories of different lengths and particle counts."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        frames, particles = 20 + 7 * i, 5 + i
        out.append(Trajectory(
            position=rng.uniform(0, 1, size=(frames, particles, dim)).astype(np.float32),
            particle_type=rng.integers(0, 6, size=particles),
            context=rng.normal(size=2).astype(np.float32) if context else None,
            step_context=rng.normal(size=(frames, 3)).astype(np.float32) if step_context else None,
        ))
    return out


def make_dataset(root: Path, dim: int = 2, **kwargs) -> Path:
    trajectories = random_trajectories(dim=dim, **kwargs)
    write_split(root / "train.h5", trajectories)
    write_split(root / "valid.h5", trajectories[:1])
    save_metadata(DatasetMetadata(dim=dim, dt=0.01, bounds=[[0.0, 1.0]] * dim,
                                  sequence_length=19, default_connectivity_radius=0.1), root)
    return root


def assert_same_trajectory(a: Trajectory, b: Trajectory) -> None:
    np.testing.assert_array_equal(a.position, b.position)
    np.testing.assert_array_equal(a.particle_type, b.particle_type)
    for name in ("context", "step_context"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None)
        if x is not None:
            np.testing.assert_array_equal(x, y)


def test_write_then_read_is_exact(tmp_path):
    trajectories = random_trajectories()
    make_dataset(tmp_path)
    with open_split(tmp_path, "train") as split:
        assert len(split) == 3 and split.keys() == ["00000", "00001", "00002"]
        for i, expected in enumerate(trajectories):
            got = split[i]
            assert got.key == f"{i:05d}"
            assert got.position.dtype == np.float32 and got.particle_type.dtype == np.int64
            assert_same_trajectory(got, expected)
            assert split.sequence_length(i) == expected.position.shape[0]
            assert split.num_particles(i) == expected.position.shape[1]


def test_on_disk_layout(tmp_path):
    make_dataset(tmp_path)
    with h5py.File(tmp_path / "train.h5") as f:
        group = f["00002"]
        assert group["position"].dtype == np.float32
        assert group["particle_type"].dtype == np.int64
        assert group["position"].chunks == (16, 7, 2)  # time-chunked for fast windows
        assert group["context"].shape == (2,) and group["step_context"].shape == (34, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metadata.json", "train.h5", "valid.h5"]


def test_read_window_matches_full_trajectory(tmp_path):
    make_dataset(tmp_path)
    split = open_split(tmp_path, "train")
    full = split[1]
    for start, stop in [(0, 7), (5, 12), (14, 27), (26, 27), (0, 27)]:
        window = split.read_window(1, start, stop)
        assert window.dtype == np.float32 and window.shape == (stop - start, 6, 2)
        np.testing.assert_array_equal(window, full.position[start:stop])
        np.testing.assert_array_equal(split.step_context_window(1, start, stop),
                                      full.step_context[start:stop])
    with pytest.raises(IndexError):
        split.read_window(1, 20, 28)
    with pytest.raises(IndexError):
        split.read_window(3, 0, 1)
    np.testing.assert_array_equal(split.read_window(-1, 0, 3), split[2].position[:3])


def test_pickle_and_dataloader_workers(tmp_path):
    make_dataset(tmp_path)
    split = open_split(tmp_path, "train")
    expected = split.read_window(2, 3, 10)
    clone = pickle.loads(pickle.dumps(split))
    np.testing.assert_array_equal(clone.read_window(2, 3, 10), expected)

    class Windows(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 3

        def __getitem__(self, i: int) -> np.ndarray:
            return split.read_window(i, 0, 5)

    loader = torch.utils.data.DataLoader(Windows(), batch_size=None, num_workers=2)
    windows = list(loader)
    for i, window in enumerate(windows):
        np.testing.assert_array_equal(window.numpy(), split[i].position[:5])
    split.close()


def test_lagrangebench_fixture_loads():
    split = open_split(FIXTURES / "lagrangebench_lj3d", "train")
    assert split.metadata.periodic_boundary_conditions == [True, True, True]
    assert len(split) == 1
    traj = split[0]
    assert traj.position.shape == (1214, 3, 3)
    assert traj.particle_type.dtype == np.int64  # int32 on disk
    np.testing.assert_array_equal(split.read_window(0, 600, 607), traj.position[600:607])
    assert open_split(FIXTURES / "lagrangebench_lj3d", "test").sequence_length(0) == 405


def test_missing_split_lists_existing(tmp_path):
    make_dataset(tmp_path)
    with pytest.raises(GnsInputError,
                       match=r"test\.h5'.*dataset has no test split: found train\.h5, valid\.h5"):
        open_split(tmp_path, "test")


def _bad_file(root: Path, position, particle_type, dim: int = 2) -> Path:
    """A dataset whose second trajectory is written raw, bypassing validation."""
    make_dataset(root, dim=dim, context=False, step_context=False)
    with h5py.File(root / "train.h5", "a") as f:
        del f["00001"]
        group = f.create_group("00001")
        group["position"] = position
        group["particle_type"] = particle_type
    return root


GOOD_POSITION = np.zeros((10, 4, 2), dtype=np.float32)
GOOD_TYPES = np.zeros(4, dtype=np.int64)


@pytest.mark.parametrize("position, particle_type, message", [
    (np.zeros((10, 8), np.float32), GOOD_TYPES, r"key '00001/position'.*3-D.*found shape \(10, 8\)"),
    (np.zeros((10, 4, 3), np.float32), GOOD_TYPES, r"key '00001/position'.*dimension.*dim=2"),
    (np.zeros((10, 4, 2), np.int32), GOOD_TYPES, r"key '00001/position'.*floating point"),
    (GOOD_POSITION, np.zeros(5, np.int64), r"key '00001/particle_type'.*expected shape \(4,\)"),
    (GOOD_POSITION, np.zeros(4, np.float32), r"key '00001/particle_type'.*integer.*float32"),
])
def test_structural_errors_name_file_and_key(tmp_path, position, particle_type, message):
    split = open_split(_bad_file(tmp_path, position, particle_type), "train")
    split.read_window(0, 0, 2)  # other trajectories stay readable
    with pytest.raises(GnsInputError, match=rf"train\.h5', {message}"):
        split.read_window(1, 0, 2)


def test_nan_reports_time_and_particle(tmp_path):
    position = GOOD_POSITION.copy()
    position[6, 2, 1] = np.nan
    position[8, 0, 0] = np.inf
    split = open_split(_bad_file(tmp_path, position, GOOD_TYPES), "train")
    np.testing.assert_array_equal(split.read_window(1, 0, 6), 0)  # clean window: fine
    with pytest.raises(GnsInputError,
                       match=r"train\.h5', key '00001/position': non-finite value at time index "
                             r"6, particle 2"):
        split[1]
    with pytest.raises(GnsInputError, match="time index 8, particle 0"):
        split.read_window(1, 7, 10)


def test_context_size_is_enforced(tmp_path):
    make_dataset(tmp_path)
    meta = DatasetMetadata(dim=2, dt=0.01, bounds=[[0, 1], [0, 1]], sequence_length=None,
                           default_connectivity_radius=0.1, context_size=3)
    with pytest.raises(GnsInputError, match=r"key '00000/context'.*context_size"):
        open_split(tmp_path, "train", meta).context(0)


def test_write_split_validates_before_replacing(tmp_path):
    path = tmp_path / "train.h5"
    write_split(path, random_trajectories(count=1))
    bad = random_trajectories(count=2)
    bad[1].position[3, 1, 0] = np.nan
    with pytest.raises(GnsInputError, match=r"train\.h5', key '00001/position'.*time index 3"):
        write_split(path, bad)
    with pytest.raises(GnsInputError, match="particle_type"):
        write_split(path, [Trajectory(np.zeros((3, 2, 2)), np.array([1.0, 2.0]))])
    with pytest.raises(GnsInputError, match="dimension"):
        write_split(path, [random_trajectories(count=1, dim=2)[0],
                           random_trajectories(count=1, dim=3)[0]])
    assert len(open_split(tmp_path, "train")) == 1  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.h5"]  # no temp files left
