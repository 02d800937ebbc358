"""metadata.json: parsing, defaults, LagrangeBench/geoelements variants, round trip, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from gns.data import DatasetMetadata, load_metadata, save_metadata
from gns.errors import GnsInputError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

DEEPMIND_STYLE = {
    "bounds": [[0.1, 0.9], [0.1, 0.9]],
    "sequence_length": 1000,
    "default_connectivity_radius": 0.015,
    "dim": 2,
    "dt": 0.0025,
    "vel_mean": [-1.2e-06, -0.0008],
    "vel_std": [0.0015, 0.0020],
    "acc_mean": [-1.1e-08, 1.3e-07],
    "acc_std": [0.00013, 0.00017],
}


def _write(directory: Path, content: dict | str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    text = content if isinstance(content, str) else json.dumps(content)
    (directory / "metadata.json").write_text(text)
    return directory


def test_deepmind_keys_and_defaults(tmp_path):
    meta = load_metadata(_write(tmp_path, DEEPMIND_STYLE))
    assert meta.dim == 2 and meta.sequence_length == 1000
    assert meta.periodic_boundary_conditions == [False, False]
    assert meta.kinematic_particle_types == [3]
    assert meta.num_particle_types == 9
    assert meta.context_size == 0 and meta.step_context_size == 0
    assert meta.gravity is None and meta.extra == {}
    assert meta.has_statistics()


def test_lagrangebench_fixture(tmp_path):
    meta = load_metadata(FIXTURES / "lagrangebench_lj3d")
    assert meta.dim == 3
    assert meta.periodic_boundary_conditions == [True, True, True]
    assert meta.bounds == [[0.0, 5.0]] * 3
    # LagrangeBench counts frames (1214 positions); sequence_length counts steps.
    assert meta.extra["sequence_length_train"] == 1214
    assert meta.sequence_length == 1213
    assert meta.extra["solver"] == "JAXMD"


def test_round_trip_preserves_unknown_keys(tmp_path):
    raw = dict(DEEPMIND_STYLE, gravity=[0.0, -1e-4], my_note={"nested": [1, 2]},
               context_mean=[0.5], context_std=[0.1], kinematic_particle_types=[3, 7])
    meta = load_metadata(_write(tmp_path / "a", raw))
    assert meta.step_context_size == 1  # DeepMind announces step context via context_mean
    assert meta.extra == {"my_note": {"nested": [1, 2]}, "context_mean": [0.5],
                          "context_std": [0.1]}
    save_metadata(meta, tmp_path / "b")
    again = load_metadata(tmp_path / "b")
    assert again == meta
    written = json.loads((tmp_path / "b" / "metadata.json").read_text())
    for key, value in raw.items():
        assert written[key] == value
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["metadata.json"]  # no temp left


def test_with_statistics_and_direct_construction():
    meta = DatasetMetadata(dim=2, dt=0.01, bounds=[[0, 1], [0, 1]], sequence_length=None,
                           default_connectivity_radius=0.1)
    assert not meta.has_statistics() and meta.periodic_boundary_conditions == [False, False]
    stats = {"vel_mean": [0, 0], "vel_std": [1, 2], "acc_mean": [0, 0], "acc_std": [3, 4]}
    with_stats = meta.with_statistics(stats)
    assert with_stats.has_statistics() and with_stats.acc_std == [3.0, 4.0]
    assert not meta.has_statistics()  # frozen: the original is untouched
    with pytest.raises(GnsInputError, match="vel_std"):
        meta.with_statistics({"vel_mean": [0, 0], "vel_std": [1], "acc_mean": [0, 0],
                              "acc_std": [1, 1]})


def test_geoelements_nested_sections(tmp_path):
    meta = load_metadata(_write(tmp_path, {"train": DEEPMIND_STYLE, "rollout": DEEPMIND_STYLE}))
    assert meta.dim == 2 and meta.sequence_length == 1000


def test_missing_metadata_file(tmp_path):
    (tmp_path / "train.h5").touch()
    with pytest.raises(GnsInputError, match=r"metadata\.json.*no metadata file.*train\.h5"):
        load_metadata(tmp_path)


@pytest.mark.parametrize("key", ["dim", "dt", "bounds", "default_connectivity_radius"])
def test_missing_key(tmp_path, key):
    raw = {k: v for k, v in DEEPMIND_STYLE.items() if k != key}
    with pytest.raises(GnsInputError, match=rf"metadata\.json', key '{key}': missing"):
        load_metadata(_write(tmp_path, raw))


@pytest.mark.parametrize("key, value, message", [
    ("vel_std", [0.1], r"key 'vel_std'.*expected 2 values, found 1 values"),
    ("acc_mean", [0.0, 0.0, 0.0], r"key 'acc_mean'.*dim=2"),
    ("periodic_boundary_conditions", [True], r"key 'periodic_boundary_conditions'"),
    ("gravity", [0.0], r"key 'gravity'"),
    ("bounds", [[0.0, 1.0]], r"key 'bounds'.*expected 2 values"),
    ("bounds", [[0.0, 1.0], [0.5, 0.5]], r"key 'bounds'.*lo < hi"),
    ("bounds", [[0.0, 1.0], [0.5]], r"key 'bounds'.*pairs"),
    ("vel_std", [float("nan"), 0.1], r"key 'vel_std'.*finite"),
    ("acc_std", [-1.0, 0.1], r"key 'acc_std'.*non-negative"),
    ("dt", 0.0, r"key 'dt'.*positive"),
    ("dim", 2.5, r"key 'dim'.*integer"),
    ("sequence_length", "long", r"key 'sequence_length'.*integer"),
    ("kinematic_particle_types", [3, 12], r"key 'kinematic_particle_types'"),
    ("context_size", -1, r"key 'context_size'"),
])
def test_invalid_values_name_file_and_key(tmp_path, key, value, message):
    with pytest.raises(GnsInputError, match=rf"metadata\.json'.*{message}"):
        load_metadata(_write(tmp_path, dict(DEEPMIND_STYLE, **{key: value})))


def test_not_json(tmp_path):
    with pytest.raises(GnsInputError, match=r"metadata\.json.*not valid JSON"):
        load_metadata(_write(tmp_path, "{bounds: "))


def test_json_nan_is_rejected(tmp_path):
    text = json.dumps(dict(DEEPMIND_STYLE, vel_mean=[math.inf, 0.0]))
    with pytest.raises(GnsInputError, match="vel_mean"):
        load_metadata(_write(tmp_path, text))
