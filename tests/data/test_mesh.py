"""Canonical mesh datasets: metadata, write/read round trips, lazy windows, remeshed (varlen)
trajectories, and an actionable error for each kind of bad input."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest

from gns.data.mesh import (MeshFieldSpec, MeshMetadata, MeshTarget, MeshTrajectory,
                           is_mesh_dataset, load_mesh_metadata, node_type_name, open_mesh_split,
                           save_mesh_metadata, split_rows, validate_mesh_trajectory,
                           write_mesh_split)
from gns.errors import GnsInputError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FRAMES = 20  # more than one HDF5 time chunk (16 frames)


def grid(nx: int, ny: int) -> tuple[np.ndarray, np.ndarray]:
    """``(nx * ny, 2)`` nodes of a unit grid and its ``(2 (nx-1) (ny-1), 3)`` triangles."""
    xs, ys = np.meshgrid(np.linspace(0, 1, nx), np.linspace(0, 1, ny))
    nodes = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    quads = [(j * nx + i, j * nx + i + 1, (j + 1) * nx + i, (j + 1) * nx + i + 1)
             for j in range(ny - 1) for i in range(nx - 1)]
    cells = np.array([c for a, b, c_, d in quads for c in ([a, b, d], [a, d, c_])])
    return nodes, cells


def cloth(seed: int = 0, nx: int = 4, ny: int = 3, frames: int = FRAMES) -> MeshTrajectory:
    """A cloth-like trajectory: world_pos (T, N, 3), velocity-free, one static field."""
    rng = np.random.default_rng(seed)
    mesh_pos, cells = grid(nx, ny)
    node_type = np.zeros(len(mesh_pos), dtype=np.int32)
    node_type[-1] = 3
    world_pos = rng.normal(size=(frames, len(mesh_pos), 3)).astype(np.float32)
    stress = rng.normal(size=(frames, len(mesh_pos), 1)).astype(np.float32)
    thickness = rng.uniform(size=(len(mesh_pos), 1)).astype(np.float32)
    return MeshTrajectory(mesh_pos, cells, node_type, {"world_pos": world_pos, "stress": stress},
                          {"thickness": thickness})


def cloth_metadata(**changes) -> MeshMetadata:
    meta = MeshMetadata(
        domain="cloth", dt=0.02, mesh_dim=2, cell_type="triangle",
        node_types={"NORMAL": 0, "HANDLE": 3},
        fields={"world_pos": MeshFieldSpec(3), "stress": MeshFieldSpec(1),
                "thickness": MeshFieldSpec(1, dynamic=False)},
        target=MeshTarget("world_pos", 2), sequence_length=FRAMES - 1)
    return dataclasses.replace(meta, **changes)


def remeshed(frames: int = 5) -> MeshTrajectory:
    """A trajectory whose mesh alternates between a 3x2 and a 4x2 grid (varlen arrays)."""
    meshes = [grid(3 + t % 2, 2) for t in range(frames)]
    nodes = np.array([len(m[0]) for m in meshes])
    world_pos = np.concatenate([np.c_[m[0], np.full(len(m[0]), t)] for t, m in enumerate(meshes)])
    return MeshTrajectory(
        mesh_pos=np.concatenate([m[0] for m in meshes]),
        cells=np.concatenate([m[1] for m in meshes]),
        node_type=np.zeros(nodes.sum(), dtype=np.int64),
        fields={"world_pos": world_pos.astype(np.float32)},
        row_lengths={"mesh_pos": nodes, "node_type": nodes, "world_pos": nodes,
                     "cells": np.array([len(m[1]) for m in meshes])})


def remeshed_metadata() -> MeshMetadata:
    return MeshMetadata(domain="cloth", dt=0.02, mesh_dim=2, cell_type="triangle",
                        node_types={"NORMAL": 0}, fields={"world_pos": MeshFieldSpec(3)},
                        target=MeshTarget("world_pos", 2),
                        varlen=["mesh_pos", "cells", "node_type", "world_pos"])


def make_dataset(root: Path) -> list[MeshTrajectory]:
    trajectories = [cloth(0), cloth(1, nx=5, frames=FRAMES + 3)]
    write_mesh_split(root / "train.h5", trajectories, cloth_metadata())
    write_mesh_split(root / "valid.h5", trajectories[:1])
    save_mesh_metadata(cloth_metadata(), root)
    return trajectories


def errors_name(exc: pytest.ExceptionInfo, file: object, key: str) -> None:
    assert exc.value.key == key and str(key) in str(exc.value)
    if file is not None:
        assert str(file) in str(exc.value)


# ------------------------------------------------------------------------ metadata
def test_metadata_round_trip_keeps_unknown_keys(tmp_path):
    meta = dataclasses.replace(cloth_metadata(), world_edge_radius=0.03, inputs=["thickness", "stress"],
                               generator={"solver": "test"}, extra={"gravity": [0, 0, -9.8]})
    save_mesh_metadata(meta, tmp_path)
    raw = json.loads((tmp_path / "metadata.json").read_text())
    assert raw["kind"] == "mesh" and raw["gravity"] == [0, 0, -9.8]
    assert raw["fields"]["thickness"] == {"dim": 1, "dynamic": False}
    assert raw["inputs"] == ["thickness", "stress"] and "inputs" not in cloth_metadata().to_dict()
    assert load_mesh_metadata(tmp_path) == meta
    assert meta.dynamic_fields == ["world_pos", "stress"] and meta.static_fields == ["thickness"]
    assert meta.cell_size == 3 and is_mesh_dataset(tmp_path)
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temporary file


def test_particle_datasets_are_not_mesh_datasets(tmp_path):
    assert not is_mesh_dataset(FIXTURES / "deepmind_tiny") and not is_mesh_dataset(tmp_path)
    with pytest.raises(GnsInputError, match=r"metadata\.json', key 'kind': not a mesh dataset"):
        load_mesh_metadata(FIXTURES / "deepmind_tiny")
    with pytest.raises(GnsInputError, match="no metadata file.*an empty directory"):
        load_mesh_metadata(tmp_path)


@pytest.mark.parametrize("change, key", [
    (lambda d: d.pop("fields"), "fields"),
    (lambda d: d.update(cell_type="quad"), "cell_type"),
    (lambda d: d.update(mesh_dim=4), "mesh_dim"),
    (lambda d: d.update(target={"field": "thickness", "order": 2}), "target/field"),
    (lambda d: d.update(target={"field": "world_pos", "order": 3}), "target/order"),
    (lambda d: d["node_types"].update(EXTRA=9), "node_types"),
    (lambda d: d.update(outputs=["pressure"]), "outputs"),
    (lambda d: d.update(varlen=["thickness"]), "varlen"),
    (lambda d: d.update(inputs=["wind"]), "inputs"),                 # not a declared field
    (lambda d: d.update(inputs=["world_pos"]), "inputs"),            # the target is predicted, not an input
    (lambda d: d.update(inputs="thickness"), "inputs"),              # not a list
    (lambda d: d["fields"].update(cells={"dim": 3}), "fields/cells"),
    (lambda d: d["fields"].update(speed={"dim": "two"}), "fields/speed/dim"),
    (lambda d: d.update(dt=-1.0), "dt"),
])
def test_metadata_errors_name_file_and_key(tmp_path, change, key):
    raw = cloth_metadata().to_dict()
    change(raw)
    (tmp_path / "metadata.json").write_text(json.dumps(raw))
    with pytest.raises(GnsInputError) as exc:
        load_mesh_metadata(tmp_path)
    errors_name(exc, tmp_path / "metadata.json", key)


def test_node_type_names():
    assert [node_type_name(i) for i in (0, 3, 6, 7)] == ["NORMAL", "HANDLE", "WALL_BOUNDARY",
                                                         "TYPE_7"]


# ------------------------------------------------------------------------ round trips
def test_write_then_read_is_exact(tmp_path, assert_same_mesh):
    trajectories = make_dataset(tmp_path)
    with open_mesh_split(tmp_path, "train") as split:
        assert len(split) == 2 and split.keys() == ["00000", "00001"]
        assert split.metadata == cloth_metadata()
        for i, want in enumerate(trajectories):
            got = split[i]
            assert_same_mesh(got, want)
            assert got.key == f"{i:05d}" and got.mesh_pos.dtype == np.float32
            assert got.cells.dtype == np.int64 and got.node_type.dtype == np.int64
            assert got.fields["world_pos"].dtype == np.float32
        assert split.num_frames(1) == FRAMES + 3 and split.num_nodes(1) == 15
        assert split.num_cells(1) == 16 and split.field_names() == ["world_pos", "stress"]
        np.testing.assert_array_equal(split.node_type(0), trajectories[0].node_type)
        assert [t.key for t in split] == ["00000", "00001"]
    with h5py.File(tmp_path / "train.h5") as f:
        group = f["00000"]
        assert group["cells"].dtype == np.int32 and group["node_type"].dtype == np.int32
        assert group["world_pos"].chunks == (16, 12, 3)  # chunked along time
        assert group["thickness"].shape == (12, 1)


def test_split_pickles_and_reopens(tmp_path, assert_same_mesh):
    trajectories = make_dataset(tmp_path)
    split = open_mesh_split(tmp_path, "train")
    split[0]
    clone = pickle.loads(pickle.dumps(split))
    split.close()
    assert_same_mesh(clone[1], trajectories[1])
    clone.close()


def test_read_window_reads_frames_and_static_arrays(tmp_path):
    trajectories = make_dataset(tmp_path)
    with open_mesh_split(tmp_path, "train") as split:
        window = split.read_window(1, 14, 19)
        want = trajectories[1]
        np.testing.assert_array_equal(window.fields["world_pos"], want.fields["world_pos"][14:19])
        np.testing.assert_array_equal(window.fields["stress"], want.fields["stress"][14:19])
        np.testing.assert_array_equal(window.static_fields["thickness"],
                                      want.static_fields["thickness"])
        np.testing.assert_array_equal(window.cells, want.cells)
        assert window.num_frames == 5 and window.num_nodes == 15
        only = split.read_window(0, 0, 2, fields=["stress"])
        assert list(only.fields) == ["stress"] and only.fields["stress"].shape == (2, 12, 1)
        with pytest.raises(IndexError, match=r"window \[18, 21\) is outside the 20 frames"):
            split.read_window(0, 18, 21)
        with pytest.raises(GnsInputError) as exc:
            split.read_window(0, 0, 2, fields=["velocity"])
        errors_name(exc, tmp_path / "train.h5", "00000/velocity")


def test_non_finite_values_are_found_lazily(tmp_path):
    make_dataset(tmp_path)
    with h5py.File(tmp_path / "train.h5", "r+") as f:
        f["00000/world_pos"][17, 4, 1] = np.nan
    with open_mesh_split(tmp_path, "train") as split:
        split.read_window(0, 0, 17)  # the NaN is outside the window: not read, not reported
        with pytest.raises(GnsInputError,
                           match=r"00000/world_pos': non-finite value at time index 17, node 4"):
            split.read_window(0, 15, 19)


# ------------------------------------------------------------------------ remeshed (varlen)
def test_remeshed_round_trip_and_windows(tmp_path, assert_same_mesh):
    want = remeshed()
    write_mesh_split(tmp_path / "train.h5", [want], remeshed_metadata())
    save_mesh_metadata(remeshed_metadata(), tmp_path)
    with h5py.File(tmp_path / "train.h5") as f:
        assert f["00000/world_pos"].shape == (34, 3)  # 6 + 8 + 6 + 8 + 6 rows, flattened
        np.testing.assert_array_equal(f["00000/world_pos_row_lengths"][()], [6, 8, 6, 8, 6])
        assert f["00000/cells_row_lengths"].dtype == np.int32
    with open_mesh_split(tmp_path, "train") as split:
        got = split[0]
        assert_same_mesh(got, want)
        assert got.is_varlen and got.num_frames == 5 and got.num_nodes == 8
        np.testing.assert_array_equal(split.nodes_per_frame(0), [6, 8, 6, 8, 6])
        window = split.read_window(0, 1, 3)
        np.testing.assert_array_equal(window.row_lengths["mesh_pos"], [8, 6])
        frames = window.frames("world_pos")
        assert [f.shape for f in frames] == [(8, 3), (6, 3)]
        np.testing.assert_array_equal(frames[1][:, 2], 2.0)  # third column holds the frame index
        np.testing.assert_array_equal(split_rows(window.cells, window.row_lengths["cells"])[0],
                                      grid(4, 2)[1])


def test_remeshed_cells_index_their_own_frame():
    traj = remeshed()
    # The first frame has 6 nodes; node 7 exists only in the 8-node frames.
    traj.cells = traj.cells.copy()
    traj.cells[0, 0] = 7
    with pytest.raises(GnsInputError, match=r"cell 0 refers to a node that does not exist "
                                            r"\(expected 0 <= index < 6, found 7\)"):
        validate_mesh_trajectory(traj, file="x.h5")


def test_remeshed_row_lengths_must_add_up():
    traj = remeshed()
    traj.row_lengths["world_pos"] = traj.row_lengths["world_pos"] + 1
    with pytest.raises(GnsInputError) as exc:
        validate_mesh_trajectory(traj, file="x.h5", name="t")
    errors_name(exc, "x.h5", "t/world_pos_row_lengths")
    traj = remeshed()
    traj.row_lengths["world_pos"] = traj.row_lengths["world_pos"][:4]
    with pytest.raises(GnsInputError, match="disagree on the number of frames"):
        validate_mesh_trajectory(traj, file="x.h5")


# ------------------------------------------------------------------------ bad input on write
def _set(name: str, value):
    def change(traj: MeshTrajectory) -> None:
        if name in ("mesh_pos", "cells", "node_type"):
            setattr(traj, name, value(getattr(traj, name)))
        else:
            traj.fields[name] = value(traj.fields[name])
    return change


def _nan(values: np.ndarray) -> np.ndarray:
    values = values.copy()
    values[2, 3, 0] = np.inf
    return values


@pytest.mark.parametrize("change, key, message", [
    (_set("mesh_pos", lambda v: v[None]), "t/mesh_pos", "floating-point \\(N, Dm\\)"),
    (_set("mesh_pos", lambda v: v.astype(np.int32)), "t/mesh_pos", "floating-point"),
    (_set("cells", lambda v: v.astype(np.float32)), "t/cells", "integer array"),
    (_set("cells", lambda v: v[:, :2]), "t/cells", "int32 \\(C, 3\\)"),
    (_set("node_type", lambda v: v[:-1]), "t/node_type", "node count differs"),
    (_set("world_pos", lambda v: v[:, :-1]), "t/world_pos", "node count differs"),
    (_set("world_pos", lambda v: v[0]), "t/world_pos", "\\(T, N, F\\)"),
    (_set("stress", lambda v: v[:-1]), "t/stress", "disagree on the number of frames"),
    (_set("cells", lambda v: np.where(v == 5, 12, v)), "t/cells", "found 12"),
    (_set("cells", lambda v: np.where(v == 5, -1, v)), "t/cells", "does not exist"),
    (_set("node_type", lambda v: np.where(np.arange(len(v)) == 2, 4, v)), "t/node_type",
     "not declared.*found \\[4\\]"),
    (_set("world_pos", _nan), "t/world_pos", "non-finite value at time index 2, node 3"),
    (lambda t: t.fields.pop("stress"), "t/stress", "lacks a field the metadata declares"),
    (lambda t: t.fields.update(extra=t.fields["stress"]), "t/extra", "does not declare"),
    (lambda t: t.fields.update(stress=np.zeros((FRAMES, 12, 2), np.float32)), "t/stress",
     "width differs"),
    (lambda t: t.static_fields.update(thickness=np.zeros((FRAMES, 12, 1), np.float32)),
     "t/thickness", "static field"),
])
def test_bad_trajectories_are_refused_on_write(tmp_path, change, key, message):
    traj = cloth()
    traj.key = "t"
    change(traj)
    path = tmp_path / "train.h5"
    with pytest.raises(GnsInputError, match=message) as exc:
        write_mesh_split(path, [cloth(1), traj], cloth_metadata())
    errors_name(exc, path, key)
    assert list(tmp_path.iterdir()) == []  # nothing half-written is left behind


def test_trajectories_of_a_split_must_agree(tmp_path):
    other = cloth(1)
    other.fields.pop("stress")
    with pytest.raises(GnsInputError, match="must share mesh widths, fields"):
        write_mesh_split(tmp_path / "train.h5", [cloth(0), other])


def test_node_types_outside_the_one_hot_without_metadata():
    traj = cloth()
    traj.node_type = traj.node_type + 9
    with pytest.raises(GnsInputError, match=r"not declared.*ids in \[0, 9\)"):
        validate_mesh_trajectory(traj, file="x.h5")


# ------------------------------------------------------------------------ bad input on read
def _edit(path: Path, edit) -> None:
    with h5py.File(path, "r+") as f:
        edit(f["00000"])


def _replace(name: str, make):
    def edit(group: h5py.Group) -> None:
        values = make(group[name][()])
        del group[name]
        group.create_dataset(name, data=values)
    return edit


@pytest.mark.parametrize("edit, key, message", [
    (lambda g: g.__delitem__("cells"), "00000/cells", "lacks a dataset.*found \\['mesh_pos'"),
    (_replace("node_type", lambda v: np.where(v == 3, 5, v)), "00000/node_type",
     "not declared in the metadata node_types"),
    (_replace("cells", lambda v: v + 1), "00000/cells", "does not exist"),
    (_replace("stress", lambda v: v[:-2]), "00000/stress", "disagree on the number of frames"),
    (_replace("world_pos", lambda v: v[:, :6]), "00000/world_pos", "node count differs"),
    (_replace("world_pos", lambda v: v[..., :2]), "00000/world_pos", "width differs"),
    (lambda g: g.create_dataset("extra", data=np.zeros((FRAMES, 12, 1))), "00000/extra",
     "does not declare"),
    (lambda g: g.create_dataset("extra", data=np.zeros(12)), "00000/extra",
     "\\(T, N, F\\) or \\(N, F\\)"),
    (_replace("thickness", lambda v: np.full_like(v, np.nan)), "00000/thickness",
     "non-finite value at node 0"),
])
def test_bad_files_are_refused_on_read(tmp_path, edit, key, message):
    make_dataset(tmp_path)
    _edit(tmp_path / "train.h5", edit)
    with open_mesh_split(tmp_path, "train") as split:
        split[1]  # other trajectories stay readable
        with pytest.raises(GnsInputError, match=message) as exc:
            split.read_window(0, 0, 2)
    errors_name(exc, tmp_path / "train.h5", key)


def test_missing_split_lists_what_is_there(tmp_path):
    make_dataset(tmp_path)
    with pytest.raises(GnsInputError, match=r"no test split: found train\.h5, valid\.h5"):
        open_mesh_split(tmp_path, "test")
