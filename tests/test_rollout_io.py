"""Rollout files of every domain: HDF5 and npz round trips, atomic writes, errors naming file and key."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from gns.errors import GnsInputError
from gns.mesh.export import mesh_record
from gns.mesh.io import make_rectangle_mesh
from gns.rollout_io import (RolloutRecord, comparison_panels, read_rollout, read_rollouts, select_record,
                            write_rollouts)

METRICS = {"model": {"rmse": {"1": 1e-3, "10": 4e-3, "full": 1e-2}}}


def _flow_record(key: str = "00000", frames: int = 3, seed: int = 0) -> RolloutRecord:
    """A 2 x 1 channel (15 nodes, 16 triangles) with velocity (T, N, 2) and pressure (T, N, 1)."""
    rng = np.random.default_rng(seed)
    mesh_pos, cells = make_rectangle_mesh(2.0, 1.0, 4, 2)
    node_type = np.zeros(len(mesh_pos), np.int64)
    node_type[mesh_pos[:, 1] == 0] = 6
    node_type[mesh_pos[:, 0] == 0] = 4
    truth = {"velocity": rng.normal(size=(frames, len(mesh_pos), 2)),
             "pressure": rng.normal(size=(frames, len(mesh_pos), 1))}
    predicted = {name: values + 0.1 * rng.normal(size=values.shape) for name, values in truth.items()}
    return mesh_record(key, mesh_pos, cells, node_type, predicted, truth)


def _particle_record(key: str = "00000", frames: int = 4, n: int = 5) -> RolloutRecord:
    rng = np.random.default_rng(1)
    position = rng.uniform(size=(frames, n, 2))
    return RolloutRecord(key, {"predicted": {"position": position + 0.01}, "ground_truth": {"position": position}},
                         {"particle_type": np.full(n, 5)})


def _write(path, records, **kwargs):
    options = {"simulator": "mesh", "domain": "flow", "dt": 0.01, "target_field": "velocity", **kwargs}
    return write_rollouts(path, records, **options)


@pytest.mark.parametrize("suffix", [".h5", ".npz"])
def test_round_trip(tmp_path, suffix):
    records = [_flow_record("00000", seed=0), _flow_record("00001", frames=4, seed=1)]
    path = _write(tmp_path / "sub" / f"rollouts{suffix}", records, metrics=METRICS, info={"input_frames": 1})
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left
    loaded, attrs = read_rollouts(path)
    assert attrs["kind"] == "gns_rollout" and attrs["simulator"] == "mesh" and attrs["domain"] == "flow"
    assert attrs["dt"] == 0.01 and attrs["target_field"] == "velocity" and attrs["fields"] == ["velocity", "pressure"]
    assert attrs["sources"] == ["predicted", "ground_truth"] and attrs["metrics"] == METRICS
    assert attrs["info"] == {"input_frames": 1}
    assert [r.key for r in loaded] == ["00000", "00001"]
    for original, back in zip(records, loaded):
        assert back.static["mesh_pos"].dtype == np.float32 and back.links["cells"].dtype == np.int32
        assert back.static["node_type"].dtype == np.int32
        np.testing.assert_array_equal(back.static["mesh_pos"], original.static["mesh_pos"].astype(np.float32))
        np.testing.assert_array_equal(back.links["cells"], original.links["cells"])
        np.testing.assert_array_equal(back.static["node_type"], original.static["node_type"])
        assert back.fields == ["velocity", "pressure"] and back.num_frames == original.num_frames
        for source in ("predicted", "ground_truth"):
            for name, values in original.sources[source].items():
                assert back.sources[source][name].dtype == np.float32
                np.testing.assert_array_equal(back.sources[source][name], values.astype(np.float32))


def test_particles_and_other_sources(tmp_path):
    record = _particle_record()
    record.sources["solver"] = {"position": record.ground_truth["position"] * 2}
    path = write_rollouts(tmp_path / "p.h5", [record], simulator="particles", domain="water2d", dt=0.0025,
                          target_field="position", info={"bounds": [[0, 1], [0, 1]]})
    (back,), attrs = read_rollouts(path)
    assert attrs["simulator"] == "particles" and attrs["sources"] == ["predicted", "ground_truth", "solver"]
    assert back.static["particle_type"].tolist() == [5] * 5 and back.links == {}
    np.testing.assert_allclose(back.sources["solver"]["position"], record.ground_truth["position"] * 2, rtol=1e-6)
    titles = [title for title, _, _ in comparison_panels([back], attrs)]
    assert titles == ["Ground truth", "Prediction", "Solver"]


def test_counterfactual_files_compare_factual_variant_and_solver(tmp_path):
    factual, variant = _particle_record("factual"), _particle_record("remove_block", n=3)
    for r in (factual, variant):
        r.sources = {"predicted": r.predicted, "solver": r.ground_truth}
    path = write_rollouts(tmp_path / "cf.h5", [factual, variant], simulator="particles", domain="water2d", dt=1.0,
                          target_field="position", info={"counterfactual": {"start": 5}})
    records, attrs = read_rollouts(path)
    panels = comparison_panels(records, attrs)
    assert [(t, r.key, s) for t, r, s in panels] == [("factual", "factual", "predicted"),
                                                     ("remove_block", "remove_block", "predicted"),
                                                     ("remove_block: solver", "remove_block", "solver")]


def test_hdf5_layout_and_selected_keys(tmp_path):
    path = _write(tmp_path / "r.h5", [_flow_record("00000"), _flow_record("00007")])
    with h5py.File(path, "r") as f:
        assert f["00007/predicted/pressure"].shape == (3, 15, 1)
        assert f["00007/links/cells"].dtype == np.int32 and f["00007/static/mesh_pos"].shape == (15, 2)
        assert json.loads(f.attrs["fields"]) == ["velocity", "pressure"]
    loaded, _ = read_rollouts(path, keys=["00007"])
    assert [r.key for r in loaded] == ["00007"]
    assert select_record(loaded, 0).key == "00007" and select_record(loaded, "00007").key == "00007"
    with pytest.raises(GnsInputError, match="00003"):
        read_rollouts(path, keys=["00003"])
    with pytest.raises(GnsInputError, match="out of range"):
        select_record(loaded, 5)


def test_failed_write_keeps_old_file(tmp_path):
    path = _write(tmp_path / "r.h5", [_flow_record()])
    before = path.read_bytes()
    with pytest.raises(GnsInputError):
        _write(path, [_flow_record()], target_field="world_pos")
    assert path.read_bytes() == before
    assert len(list(tmp_path.iterdir())) == 1


def test_write_errors_name_the_key(tmp_path):
    bad = _flow_record("00002")
    bad.ground_truth["velocity"] = bad.ground_truth["velocity"][:2]
    with pytest.raises(GnsInputError, match="00002/ground_truth/velocity"):
        _write(tmp_path / "r.h5", [bad])
    wrong_nodes = _flow_record()
    wrong_nodes.static["node_type"] = wrong_nodes.static["node_type"][:-1]
    with pytest.raises(GnsInputError, match="00000/static/node_type"):
        _write(tmp_path / "r.h5", [wrong_nodes])
    out_of_range = _flow_record()
    out_of_range.links["cells"] = out_of_range.links["cells"] + 100
    with pytest.raises(GnsInputError, match="00000/links/cells"):
        _write(tmp_path / "r.h5", [out_of_range])
    with pytest.raises(GnsInputError, match="distinct"):
        _write(tmp_path / "r.h5", [_flow_record(), _flow_record()])
    with pytest.raises(GnsInputError, match="dt"):
        _write(tmp_path / "r.h5", [_flow_record()], dt=0.0)
    with pytest.raises(GnsInputError, match="same fields"):
        _write(tmp_path / "r.h5", [_flow_record(), _particle_record("00001")])
    assert not list(tmp_path.iterdir())


def test_read_errors(tmp_path):
    with pytest.raises(GnsInputError, match="not found"):
        read_rollouts(tmp_path / "missing.h5")
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(GnsInputError, match="not an HDF5 file"):
        read_rollouts(garbage)
    garbage_npz = tmp_path / "garbage.npz"
    garbage_npz.write_bytes(b"nope")
    with pytest.raises(GnsInputError, match="garbage.npz"):
        read_rollouts(garbage_npz)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(GnsInputError, match="not a rollout file"):
        read_rollouts(other)


def test_gns_0_1_files_are_read(tmp_path):
    mesh_file = tmp_path / "mesh01.h5"
    record = _flow_record()
    with h5py.File(mesh_file, "w") as f:
        f.attrs.update({"kind": "mesh_rollout", "domain": "flow", "dt": 0.01, "target_field": "velocity",
                        "fields": json.dumps(["velocity", "pressure"])})
        g = f.create_group("00000")
        g["mesh_pos"], g["cells"], g["node_type"] = (record.static["mesh_pos"], record.links["cells"],
                                                     record.static["node_type"])
        for source in ("predicted", "ground_truth"):
            for name, values in record.sources[source].items():
                g[f"{source}/{name}"] = values
    (back,), attrs = read_rollouts(mesh_file)
    assert attrs["simulator"] == "mesh" and back.links["cells"].shape == record.links["cells"].shape
    particle_file = tmp_path / "particles01.h5"
    with h5py.File(particle_file, "w") as f:
        g = f.create_group("00000")
        g["predicted"], g["ground_truth"] = np.ones((3, 4, 2)), np.zeros((3, 4, 2))
        g["particle_type"], g["initial"] = np.full(4, 5), np.full((2, 4, 2), 7.0)
    (back,), attrs = read_rollouts(particle_file)
    assert attrs["simulator"] == "particles" and back.num_frames == 5           # the initial frames prepended
    assert back.predicted["position"][0, 0, 0] == 7.0 and back.predicted["position"][-1, 0, 0] == 1.0


def test_malformed_hdf5_names_the_key(tmp_path):
    path = _write(tmp_path / "r.h5", [_flow_record()])
    with h5py.File(path, "a") as f:
        del f["00000/ground_truth/pressure"]
    with pytest.raises(GnsInputError, match="00000/ground_truth"):
        read_rollouts(path)
    path = _write(tmp_path / "r.h5", [_flow_record()])
    with h5py.File(path, "a") as f:
        del f.attrs["dt"]
    with pytest.raises(GnsInputError, match="key 'dt'"):
        read_rollouts(path)


def test_npz_without_attributes_is_refused(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, **{"00000/mesh_pos": np.zeros((3, 2))})
    with pytest.raises(GnsInputError, match="not a rollout file"):
        read_rollouts(path)


@pytest.mark.parametrize("suffix", [".h5", ".npz"])
def test_read_one_trajectory(tmp_path, suffix):
    path = _write(tmp_path / f"r{suffix}", [_flow_record("00000", seed=0), _flow_record("00005", seed=5)])
    by_index, attrs = read_rollout(path, 1)
    by_key, _ = read_rollout(path, "00005")
    last, _ = read_rollout(path, -1)
    assert by_index.key == by_key.key == last.key == "00005" and attrs["domain"] == "flow"
    np.testing.assert_array_equal(by_index.predicted["pressure"],
                                  _flow_record("00005", seed=5).predicted["pressure"].astype(np.float32))
    with pytest.raises(GnsInputError, match="out of range"):
        read_rollout(path, 2)
    with pytest.raises(GnsInputError, match="key '00009'"):
        read_rollout(path, "00009")


def test_field_order_follows_the_first_source(tmp_path):
    record = _flow_record()
    record.sources["ground_truth"] = {"pressure": record.ground_truth["pressure"],
                                      "velocity": record.ground_truth["velocity"]}
    loaded, attrs = read_rollouts(_write(tmp_path / "r.h5", [record]))
    assert attrs["fields"] == loaded[0].fields == list(loaded[0].ground_truth) == ["velocity", "pressure"]
    record.ground_truth["density"] = record.ground_truth["pressure"]
    with pytest.raises(GnsInputError, match="same fields"):
        record.validate()


@pytest.mark.parametrize("suffix", [".h5", ".npz"])
def test_system_attributes_round_trip(tmp_path, suffix):
    import torch

    from gns.particles.state import ParticleState
    from gns.rollout_io import system_arrays

    record = _particle_record()
    record.system = {"obstacle_shape": np.array([1, 0, -1], np.int64),
                     "obstacle_position": np.array([[0.2, 0.3], [0.5, 0.5], [0.0, 0.0]], np.float64),
                     "gravity": np.float64(-9.8), "empty": np.zeros((0, 2), np.float32),
                     "context": torch.tensor([0.5, 2.0])}                                  # tensors accepted
    path = _write(tmp_path / f"r{suffix}", [record, _particle_record("00001")], simulator="particles",
                  domain="water2d", target_field="position")
    if suffix == ".h5":
        with h5py.File(path, "r") as f:
            assert f["00000/system/obstacle_position"].shape == (3, 2) and "system" not in f["00001"]
    (back, plain), attrs = read_rollouts(path)
    assert attrs["sources"] == ["predicted", "ground_truth"]                     # "system" is no source
    assert set(back.system) == {"obstacle_shape", "obstacle_position", "gravity", "empty", "context"}
    assert back.system["obstacle_shape"].dtype == np.int32 and back.system["obstacle_position"].dtype == np.float32
    np.testing.assert_array_equal(back.system["obstacle_shape"], [1, 0, -1])
    np.testing.assert_allclose(back.system["obstacle_position"], record.system["obstacle_position"], rtol=1e-6)
    assert back.system["gravity"].shape == () and float(back.system["gravity"]) == pytest.approx(-9.8)
    assert back.system["empty"].shape == (0, 2)
    np.testing.assert_allclose(back.system["context"], [0.5, 2.0])
    assert plain.system == {}                                                    # a record without: none
    # a one-system state's per-system tensors, without the system axis
    state = ParticleState(torch.zeros(3, 2, 2), torch.zeros(3, dtype=torch.long), torch.tensor([3]),
                          context=torch.tensor([[1.0, 2.0]]))
    arrays = system_arrays(state)
    assert list(arrays) == ["context"] and arrays["context"].shape == (2,)
    with pytest.raises(GnsInputError, match="one system"):
        system_arrays(ParticleState(torch.zeros(4, 2, 2), torch.zeros(4, dtype=torch.long), torch.tensor([2, 2])))


def test_bad_system_attributes_name_file_and_key(tmp_path):
    nan = _particle_record()
    nan.system = {"obstacle_angle": np.array([0.0, np.nan], np.float32)}
    with pytest.raises(GnsInputError, match="finite") as err:
        _write(tmp_path / "r.h5", [nan], simulator="particles", target_field="position")
    assert "r.h5" in str(err.value) and "00000/system/obstacle_angle" in str(err.value)
    text = _particle_record()
    text.system = {"label": np.array(["a", "b"])}
    with pytest.raises(GnsInputError, match="numeric") as err:
        _write(tmp_path / "r.npz", [text], simulator="particles", target_field="position")
    assert "r.npz" in str(err.value) and "00000/system/label" in str(err.value)
    reserved = _particle_record()
    reserved.sources["system"] = reserved.sources["predicted"]
    with pytest.raises(GnsInputError, match="reserved"):
        reserved.validate()
    assert not list(tmp_path.iterdir())
    # a file whose "system" is an array, not a group
    path = _write(tmp_path / "r.h5", [_particle_record()], simulator="particles", target_field="position")
    with h5py.File(path, "a") as f:
        f["00000/system"] = np.zeros(3)
    with pytest.raises(GnsInputError, match="00000/system"):
        read_rollouts(path)
