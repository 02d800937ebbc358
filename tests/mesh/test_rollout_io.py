"""Mesh rollout files: HDF5 and npz round trips, atomic writes, errors that name file and key."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from gns.errors import GnsInputError
from gns.mesh.io import make_rectangle_mesh
from gns.mesh.rollout_io import (MeshRollout, read_mesh_rollout, read_mesh_rollouts, select_rollout,
                                  write_mesh_rollouts)

METRICS = {"model": {"rmse": {"1": 1e-3, "10": 4e-3, "full": 1e-2}}}


def _flow_rollout(key: str = "00000", frames: int = 3, seed: int = 0) -> MeshRollout:
    """A 2 x 1 channel (15 nodes, 16 triangles) with velocity (T, N, 2) and pressure (T, N, 1)."""
    rng = np.random.default_rng(seed)
    mesh_pos, cells = make_rectangle_mesh(2.0, 1.0, 4, 2)
    node_type = np.zeros(len(mesh_pos), np.int64)
    node_type[mesh_pos[:, 1] == 0] = 6
    node_type[mesh_pos[:, 0] == 0] = 4
    truth = {"velocity": rng.normal(size=(frames, len(mesh_pos), 2)),
             "pressure": rng.normal(size=(frames, len(mesh_pos), 1))}
    predicted = {name: values + 0.1 * rng.normal(size=values.shape) for name, values in truth.items()}
    return MeshRollout(key, mesh_pos, cells, node_type, predicted, truth)


def _write(path, rollouts, **kwargs):
    options = {"domain": "flow", "dt": 0.01, "target_field": "velocity", **kwargs}
    return write_mesh_rollouts(path, rollouts, **options)


@pytest.mark.parametrize("suffix", [".h5", ".npz"])
def test_round_trip(tmp_path, suffix):
    rollouts = [_flow_rollout("00000", seed=0), _flow_rollout("00001", frames=4, seed=1)]
    path = _write(tmp_path / "sub" / f"rollouts{suffix}", rollouts, metrics=METRICS)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left
    loaded, attrs = read_mesh_rollouts(path)
    assert attrs["kind"] == "mesh_rollout" and attrs["domain"] == "flow" and attrs["dt"] == 0.01
    assert attrs["target_field"] == "velocity" and attrs["fields"] == ["velocity", "pressure"]
    assert attrs["metrics"] == METRICS
    assert [r.key for r in loaded] == ["00000", "00001"]
    for original, back in zip(rollouts, loaded):
        assert back.mesh_pos.dtype == np.float32 and back.cells.dtype == np.int32
        assert back.node_type.dtype == np.int32
        np.testing.assert_array_equal(back.mesh_pos, original.mesh_pos)
        np.testing.assert_array_equal(back.cells, original.cells)
        np.testing.assert_array_equal(back.node_type, original.node_type)
        assert back.fields == ["velocity", "pressure"] and back.num_frames == original.num_frames
        for source in ("predicted", "ground_truth"):
            for name, values in getattr(original, source).items():
                assert getattr(back, source)[name].dtype == np.float32
                np.testing.assert_array_equal(getattr(back, source)[name], values.astype(np.float32))


def test_hdf5_layout_and_selected_keys(tmp_path):
    path = _write(tmp_path / "r.h5", [_flow_rollout("00000"), _flow_rollout("00007")])
    with h5py.File(path, "r") as f:
        assert f["00007/predicted/pressure"].shape == (3, 15, 1)
        assert f["00007/cells"].dtype == np.int32
        assert json.loads(f.attrs["fields"]) == ["velocity", "pressure"]
    loaded, _ = read_mesh_rollouts(path, keys=["00007"])
    assert [r.key for r in loaded] == ["00007"]
    assert select_rollout(loaded, 0).key == "00007" and select_rollout(loaded, "00007").key == "00007"
    with pytest.raises(GnsInputError, match="00003"):
        read_mesh_rollouts(path, keys=["00003"])
    with pytest.raises(GnsInputError, match="out of range"):
        select_rollout(loaded, 5)


def test_failed_write_keeps_old_file(tmp_path):
    path = _write(tmp_path / "r.h5", [_flow_rollout()])
    before = path.read_bytes()
    with pytest.raises(GnsInputError):
        _write(path, [_flow_rollout()], target_field="world_pos")
    assert path.read_bytes() == before
    assert len(list(tmp_path.iterdir())) == 1


def test_write_errors_name_the_key(tmp_path):
    bad = _flow_rollout("00002")
    bad.ground_truth["velocity"] = bad.ground_truth["velocity"][:2]
    with pytest.raises(GnsInputError, match="00002/ground_truth/velocity"):
        _write(tmp_path / "r.h5", [bad])
    wrong_nodes = _flow_rollout()
    wrong_nodes.node_type = wrong_nodes.node_type[:-1]
    with pytest.raises(GnsInputError, match="00000/node_type"):
        _write(tmp_path / "r.h5", [wrong_nodes])
    out_of_range = _flow_rollout()
    out_of_range.cells = out_of_range.cells + 100
    with pytest.raises(GnsInputError, match="00000/cells"):
        _write(tmp_path / "r.h5", [out_of_range])
    with pytest.raises(GnsInputError, match="distinct"):
        _write(tmp_path / "r.h5", [_flow_rollout(), _flow_rollout()])
    with pytest.raises(GnsInputError, match="dt"):
        _write(tmp_path / "r.h5", [_flow_rollout()], dt=0.0)
    assert not list(tmp_path.iterdir())


def test_read_errors(tmp_path):
    with pytest.raises(GnsInputError, match="not found"):
        read_mesh_rollouts(tmp_path / "missing.h5")
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(GnsInputError, match="not an HDF5 file"):
        read_mesh_rollouts(garbage)
    garbage_npz = tmp_path / "garbage.npz"
    garbage_npz.write_bytes(b"nope")
    with pytest.raises(GnsInputError, match="garbage.npz"):
        read_mesh_rollouts(garbage_npz)


def test_particle_rollout_file_is_refused(tmp_path):
    from gns.evaluate import write_rollouts

    positions = np.zeros((3, 4, 2), np.float32)
    path = write_rollouts(tmp_path / "particles.h5",
                          {"00000": (positions, positions, np.zeros(4, np.int64), positions[:1])}, {})
    with pytest.raises(GnsInputError, match="not a mesh rollout file.*key 'kind'|key 'kind'.*not a mesh"):
        read_mesh_rollouts(path)


def test_malformed_hdf5_names_the_key(tmp_path):
    path = _write(tmp_path / "r.h5", [_flow_rollout()])
    with h5py.File(path, "a") as f:
        del f["00000/cells"]
    with pytest.raises(GnsInputError, match="key '00000/cells'"):
        read_mesh_rollouts(path)
    path = _write(tmp_path / "r.h5", [_flow_rollout()])
    with h5py.File(path, "a") as f:
        del f["00000/ground_truth/pressure"]
    with pytest.raises(GnsInputError, match="00000/ground_truth"):
        read_mesh_rollouts(path)
    path = _write(tmp_path / "r.h5", [_flow_rollout()])
    with h5py.File(path, "a") as f:
        del f.attrs["dt"]
    with pytest.raises(GnsInputError, match="key 'dt'"):
        read_mesh_rollouts(path)


def test_npz_without_attributes_is_refused(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, **{"00000/mesh_pos": np.zeros((3, 2))})
    with pytest.raises(GnsInputError, match="not a mesh rollout file"):
        read_mesh_rollouts(path)


@pytest.mark.parametrize("suffix", [".h5", ".npz"])
def test_read_one_trajectory(tmp_path, suffix):
    path = _write(tmp_path / f"r{suffix}", [_flow_rollout("00000", seed=0), _flow_rollout("00005", seed=5)])
    by_index, attrs = read_mesh_rollout(path, 1)
    by_key, _ = read_mesh_rollout(path, "00005")
    last, _ = read_mesh_rollout(path, -1)
    assert by_index.key == by_key.key == last.key == "00005" and attrs["domain"] == "flow"
    np.testing.assert_array_equal(by_index.predicted["pressure"],
                                  _flow_rollout("00005", seed=5).predicted["pressure"].astype(np.float32))
    with pytest.raises(GnsInputError, match="out of range"):
        read_mesh_rollout(path, 2)
    with pytest.raises(GnsInputError, match="key '00009'"):
        read_mesh_rollout(path, "00009")


def test_field_order_follows_predicted(tmp_path):
    rollout = _flow_rollout()
    rollout.ground_truth = {"pressure": rollout.ground_truth["pressure"], "velocity": rollout.ground_truth["velocity"]}
    loaded, attrs = read_mesh_rollouts(_write(tmp_path / "r.h5", [rollout]))
    assert attrs["fields"] == loaded[0].fields == list(loaded[0].ground_truth) == ["velocity", "pressure"]
    rollout.ground_truth["density"] = rollout.ground_truth["pressure"]
    with pytest.raises(GnsInputError, match="same fields"):
        rollout.validate()
