"""geoelements npz layout: the entry forms it allows, legacy files, round trip, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gns.data import (Trajectory, convert_dataset, open_split, read_npz_dataset, write_npz_dataset,
                      write_split)
from gns.data.npz import NpzSplit, write_npz_file
from gns.errors import GnsInputError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
METADATA = {"dim": 2, "dt": 0.01, "bounds": [[0, 1], [0, 1]], "default_connectivity_radius": 0.1,
            "sequence_length": 7}


def _entry(*parts: object) -> np.ndarray:
    entry = np.empty(len(parts), dtype=object)
    for i, part in enumerate(parts):
        entry[i] = part
    return entry


def test_fixture_entry_forms():
    splits = read_npz_dataset(FIXTURES / "npz_tiny")
    assert {k: len(v) for k, v in splits.items()} == {"train": 2, "valid": 1, "test": 1}
    first, second = list(splits["train"])
    assert first.key == "simulation_trajectory_0"
    assert first.position.shape == (10, 6, 2) and first.position.dtype == np.float32
    np.testing.assert_array_equal(first.particle_type, [6, 6, 6, 6, 3, 3])
    np.testing.assert_allclose(first.context, [0.55])
    # A scalar type broadcasts to every particle; a constant per-particle material collapses.
    np.testing.assert_array_equal(second.particle_type, np.full(6, 6))
    assert second.particle_type.dtype == np.int64
    np.testing.assert_allclose(second.context, [0.61])


def test_legacy_gns_data_entry(tmp_path):
    rng = np.random.default_rng(0)
    data = np.empty(2, dtype=object)
    data[0] = (rng.normal(size=(8, 3, 2)), 1)
    data[1] = (rng.normal(size=(8, 4, 2)), np.arange(4))
    np.savez(tmp_path / "train.npz", gns_data=data)
    split = NpzSplit(tmp_path / "train.npz", dim=2)
    assert len(split) == 2
    np.testing.assert_array_equal(split[0].particle_type, [1, 1, 1])
    np.testing.assert_array_equal(split[1].position, data[1][0].astype(np.float32))


def test_round_trip_h5_npz_h5_is_exact(tmp_path):
    rng = np.random.default_rng(4)
    trajectories = [Trajectory(rng.normal(size=(8, 5 + i, 2)).astype(np.float32),
                               rng.integers(0, 9, size=5 + i),
                               context=np.array([0.3 + i], dtype=np.float32))
                    for i in range(3)]
    source = tmp_path / "h5"
    write_split(source / "train.h5", trajectories)
    write_split(source / "valid.h5", trajectories[:1])
    (source / "metadata.json").write_text(json.dumps(dict(METADATA, context_size=1)))

    write_npz_dataset(source, tmp_path / "npz")
    with np.load(tmp_path / "npz" / "train.npz", allow_pickle=True) as raw:  # geoelements' view
        assert raw.files == [f"simulation_trajectory_{i}" for i in range(3)]
        positions, particle_type, material = raw["simulation_trajectory_1"]
        assert positions.shape == (8, 6, 2) and material == pytest.approx(1.3)
    convert_dataset(tmp_path / "npz", tmp_path / "back", progress=False)
    back = open_split(tmp_path / "back", "train")
    for got, want in zip(back, trajectories, strict=True):
        np.testing.assert_array_equal(got.position, want.position)
        np.testing.assert_array_equal(got.particle_type, want.particle_type)
        np.testing.assert_array_equal(got.context, want.context)
    assert len(open_split(tmp_path / "back", "valid")) == 1


def test_refusals(tmp_path):
    position = np.zeros((5, 3, 2), np.float32)
    np.savez(tmp_path / "train.npz", simulation_trajectory_0=_entry(position, 1,
                                                                    np.array([0.1, 0.2, 0.3])))
    with pytest.raises(GnsInputError,
                       match=r"train\.npz', key 'simulation_trajectory_0/material_property'"):
        NpzSplit(tmp_path / "train.npz")[0]
    np.savez(tmp_path / "bad.npz", simulation_trajectory_0=position)
    with pytest.raises(GnsInputError, match=r"bad\.npz', key 'simulation_trajectory_0'"):
        NpzSplit(tmp_path / "bad.npz")[0]
    np.savez(tmp_path / "float_types.npz", simulation_trajectory_0=_entry(position, 1.0))
    with pytest.raises(GnsInputError, match="particle_type.*integer"):
        NpzSplit(tmp_path / "float_types.npz")[0]
    with pytest.raises(GnsInputError, match="per-step context"):
        write_npz_file(tmp_path / "out.npz", [Trajectory(position, np.zeros(3, np.int64),
                                                         step_context=np.zeros((5, 1)))])
    with pytest.raises(GnsInputError, match="one material value"):
        write_npz_file(tmp_path / "out.npz", [Trajectory(position, np.zeros(3, np.int64),
                                                         context=np.zeros(2))])
    assert not (tmp_path / "out.npz").exists()
