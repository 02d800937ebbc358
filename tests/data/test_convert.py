"""Format detection, conversion with metadata back-fill, and the dataset summary."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from gns.data import (compute_statistics, convert_dataset, detect_format, inspect_dataset,
                      load_metadata, open_split, read_npz_dataset, read_tfrecord_dataset)
from gns.errors import GnsInputError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.mark.parametrize("name, fmt", [("lagrangebench_lj3d", "h5"), ("deepmind_tiny", "tfrecord"),
                                       ("npz_tiny", "npz")])
def test_detect_format(name, fmt):
    assert detect_format(FIXTURES / name) == fmt


def test_detect_format_errors(tmp_path):
    (tmp_path / "notes.txt").touch()
    with pytest.raises(GnsInputError, match=r"no dataset split files found.*notes\.txt"):
        detect_format(tmp_path)
    (tmp_path / "train.h5").touch()
    (tmp_path / "test.npz").touch()
    with pytest.raises(GnsInputError, match="several formats.*src_format"):
        detect_format(tmp_path)


def test_deepmind_to_h5(tmp_path):
    out = convert_dataset(FIXTURES / "deepmind_tiny", tmp_path, progress=False)
    assert out == tmp_path
    source = read_tfrecord_dataset(FIXTURES / "deepmind_tiny")
    for split in ("train", "valid", "test"):
        converted = open_split(tmp_path, split)
        for got, want in zip(converted, source[split], strict=True):
            np.testing.assert_array_equal(got.position, want.position)
            np.testing.assert_array_equal(got.particle_type, want.particle_type)
    assert load_metadata(tmp_path) == load_metadata(FIXTURES / "deepmind_tiny")


def test_npz_to_h5_back_fills_metadata(tmp_path):
    assert not load_metadata(FIXTURES / "npz_tiny").has_statistics()
    convert_dataset(FIXTURES / "npz_tiny", tmp_path, progress=False)
    meta = load_metadata(tmp_path)
    assert meta.has_statistics() and meta.context_size == 1 and meta.sequence_length == 9
    assert meta.extra["material_property"] == "friction angle (rad)"
    expected = compute_statistics(read_npz_dataset(FIXTURES / "npz_tiny")["train"], meta.bounds,
                                  meta.periodic_boundary_conditions)
    for key, value in expected.items():
        np.testing.assert_allclose(getattr(meta, key), value, rtol=1e-12)
    np.testing.assert_allclose(open_split(tmp_path, "valid").context(0), [0.7])


def test_back_fills_sequence_length_and_keeps_lagrangebench_keys(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(FIXTURES / "lagrangebench_lj3d", source)
    raw = json.loads((source / "metadata.json").read_text())
    for key in ("sequence_length_train", "sequence_length_test", "vel_std"):
        del raw[key]
    (source / "metadata.json").write_text(json.dumps(raw))
    convert_dataset(source, tmp_path / "tf", dst_format="tfrecord", splits=["train"],
                    progress=False)
    meta = load_metadata(tmp_path / "tf")
    assert meta.sequence_length == 1213  # steps of the 1214-frame train trajectory
    assert meta.extra["solver"] == "JAXMD" and meta.has_statistics()
    assert sorted(p.name for p in (tmp_path / "tf").iterdir()) == ["metadata.json",
                                                                   "train.tfrecord"]


def test_convert_argument_errors(tmp_path):
    with pytest.raises(GnsInputError, match="same dataset"):
        convert_dataset(FIXTURES / "npz_tiny", FIXTURES / "npz_tiny", dst_format="npz")
    with pytest.raises(GnsInputError, match="dst_format.*'parquet'"):
        convert_dataset(FIXTURES / "npz_tiny", tmp_path, dst_format="parquet")
    with pytest.raises(GnsInputError, match=r"no extra split: found train\.npz"):
        convert_dataset(FIXTURES / "npz_tiny", tmp_path, splits=["extra"], progress=False)


def test_inspect_dataset():
    summary = inspect_dataset(FIXTURES / "lagrangebench_lj3d")
    assert summary["format"] == "h5" and summary["dim"] == 3
    assert summary["periodic_boundary_conditions"] == [True, True, True]
    assert summary["statistics"]["vel_std"] == load_metadata(FIXTURES / "lagrangebench_lj3d").vel_std
    assert summary["splits"]["train"] == {
        "num_trajectories": 1, "num_frames": [1214, 1214], "num_particles": [3, 3],
        "particle_type_counts": {0: 3}, "has_context": False, "has_step_context": False}
    assert summary["splits"]["test"]["num_frames"] == [405, 405]
    json.dumps(summary)  # ready for the CLI to print
    tiny = inspect_dataset(FIXTURES / "deepmind_tiny")
    assert tiny["format"] == "tfrecord"
    assert tiny["splits"]["train"]["particle_type_counts"] == {3: 4, 5: 10}
    assert inspect_dataset(FIXTURES / "npz_tiny")["splits"]["valid"]["has_context"] is True


def test_inspect_object_dataset(objects_dataset):
    summary = inspect_dataset(objects_dataset)
    assert summary["format"] == "objects" and summary["kind"] == "objects"
    train = summary["splits"]["train"]
    assert train["num_trajectories"] == 4 and train["num_frames"] == [41, 41]
    low, high = train["num_objects"]
    assert 3 <= low <= high <= 8
    assert sum(train["shape_counts"].values()) >= 4 * low
    assert summary["generator"]["trajectories"] == {"train": 4, "valid": 2, "test": 2}   # the reports, counted
    json.dumps(summary)
