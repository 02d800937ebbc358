"""Export of mesh rollouts: .vtu frames + .pvd collection (parsed back with xml.etree), .ply through trimesh."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import trimesh

from gns.errors import GnsInputError
from gns.mesh.export import (export_mesh_rollout, export_rollout, read_pvd, read_vtu, surface_triangles,
                             write_vtu)
from gns.mesh.io import make_rectangle_mesh
from gns.mesh.export import MeshView, mesh_record
from gns.rollout_io import write_rollouts

DT = 0.01


def _flow_rollout(frames: int = 3) -> MeshView:
    """A 2 x 1 channel (15 nodes, 16 triangles) with velocity (T, N, 2) and pressure (T, N, 1)."""
    rng = np.random.default_rng(0)
    mesh_pos, cells = make_rectangle_mesh(2.0, 1.0, 4, 2)
    node_type = np.zeros(len(mesh_pos), np.int32)
    node_type[mesh_pos[:, 0] == 0] = 4
    truth = {"velocity": rng.normal(size=(frames, len(mesh_pos), 2)),
             "pressure": rng.normal(size=(frames, len(mesh_pos), 1))}
    predicted = {k: v + rng.normal(scale=0.1, size=v.shape) for k, v in truth.items()}
    return MeshView(mesh_record("00000", mesh_pos, cells, node_type, predicted, truth))


def _cloth_rollout(frames: int = 3) -> MeshView:
    mesh_pos, cells = make_rectangle_mesh(1.0, 1.0, 2, 2)
    t = np.arange(frames)[:, None, None]
    truth = np.concatenate([mesh_pos, np.zeros((len(mesh_pos), 1), np.float32)], axis=1)[None] + 0.1 * t
    predicted = truth + np.random.default_rng(1).normal(scale=0.01, size=truth.shape)
    node_type = np.zeros(len(mesh_pos), np.int32)
    node_type[[6, 8]] = 3
    return MeshView(mesh_record("00004", mesh_pos, cells, node_type, {"world_pos": predicted},
                                {"world_pos": truth}))


def _write(tmp_path, rollout: MeshView, domain: str, target: str):
    return write_rollouts(tmp_path / "rollouts.h5", [rollout.record], simulator="mesh", domain=domain, dt=DT,
                          target_field=target)


def test_flow_export_vtu_pvd_ply(tmp_path):
    rollout = _flow_rollout()
    out = tmp_path / "export"
    written = export_rollout(_write(tmp_path, rollout, "flow", "velocity"), out, which="both")
    names = [p.relative_to(out).as_posix() for p in written]
    assert names[:4] == [f"00000_predicted/00000_predicted_{t:05d}.vtu" for t in range(3)] + ["00000_predicted.pvd"]
    assert len(names) == 2 * (3 + 1 + 3) and all(p.is_file() for p in written)

    # The collection lists every frame with its time, relative to the .pvd.
    entries = read_pvd(out / "00000_ground_truth.pvd")
    assert [e[0] for e in entries] == pytest.approx([0.0, DT, 2 * DT])
    assert all((out / f).is_file() for _, f in entries)
    datasets = ET.parse(out / "00000_predicted.pvd").getroot().findall("Collection/DataSet")
    assert [float(d.get("timestep")) for d in datasets] == pytest.approx([0.0, DT, 2 * DT])

    vtu = out / "00000_predicted" / "00000_predicted_00002.vtu"
    piece = ET.parse(vtu).getroot().find("UnstructuredGrid/Piece")
    assert piece.get("NumberOfPoints") == "15" and piece.get("NumberOfCells") == "16"
    arrays = {a.get("Name"): a for a in piece.findall("PointData/DataArray")}
    assert sorted(arrays) == ["mesh_pos", "node_type", "pressure", "pressure_error", "velocity", "velocity_error"]
    assert arrays["velocity"].get("NumberOfComponents") == "3" and arrays["node_type"].get("type") == "Int32"

    points, cells, data = read_vtu(vtu)
    np.testing.assert_array_equal(points[:, :2], rollout.mesh_pos)
    np.testing.assert_array_equal(points[:, 2], 0.0)
    np.testing.assert_array_equal(cells, rollout.cells)
    np.testing.assert_array_equal(data["velocity"][:, :2], rollout.predicted["velocity"][2])
    np.testing.assert_array_equal(data["velocity"][:, 2], 0.0)
    np.testing.assert_array_equal(data["pressure"], rollout.predicted["pressure"][2, :, 0])
    np.testing.assert_array_equal(data["node_type"], rollout.node_type)
    error = np.linalg.norm(rollout.predicted["velocity"][2] - rollout.ground_truth["velocity"][2], axis=-1)
    np.testing.assert_allclose(data["velocity_error"], error, rtol=1e-6)
    _, _, truth_data = read_vtu(out / "00000_ground_truth" / "00000_ground_truth_00002.vtu")
    np.testing.assert_array_equal(truth_data["pressure"], rollout.ground_truth["pressure"][2, :, 0])
    np.testing.assert_array_equal(truth_data["velocity_error"], data["velocity_error"])

    mesh = trimesh.load(out / "00000_predicted" / "00000_predicted_00001.ply", process=False)
    assert len(mesh.vertices) == 15 and len(mesh.faces) == 16
    np.testing.assert_allclose(mesh.vertices[:, :2], rollout.mesh_pos)
    colors = mesh.visual.vertex_colors
    assert colors.shape == (15, 4) and len(np.unique(colors, axis=0)) > 1  # coloured by |velocity|
    raw = mesh.metadata["_ply_raw"]["vertex"]["data"]
    np.testing.assert_allclose(raw["velocity_magnitude"], np.linalg.norm(rollout.predicted["velocity"][1], axis=-1),
                               rtol=1e-6)
    np.testing.assert_array_equal(raw["pressure"], rollout.predicted["pressure"][1, :, 0])


def test_cloth_points_follow_world_pos(tmp_path):
    rollout = _cloth_rollout(frames=5)
    written = export_rollout(_write(tmp_path, rollout, "cloth", "world_pos"), tmp_path / "out",
                             which="ground_truth", every=2)
    assert len([p for p in written if p.suffix == ".vtu"]) == 3
    entries = read_pvd(tmp_path / "out" / "00004_ground_truth.pvd")
    assert [t for t, _ in entries] == pytest.approx([0.0, 2 * DT, 4 * DT])
    assert entries[-1][1] == "00004_ground_truth/00004_ground_truth_00004.vtu"
    points, cells, data = read_vtu(tmp_path / "out" / entries[-1][1])
    np.testing.assert_array_equal(points, rollout.ground_truth["world_pos"][4])
    np.testing.assert_array_equal(data["world_pos"], rollout.ground_truth["world_pos"][4])
    np.testing.assert_array_equal(data["mesh_pos"][:, :2], rollout.mesh_pos)
    mesh = trimesh.load(tmp_path / "out" / "00004_ground_truth" / "00004_ground_truth_00004.ply", process=False)
    np.testing.assert_allclose(mesh.vertices, rollout.ground_truth["world_pos"][4], rtol=1e-6)
    np.testing.assert_array_equal(mesh.faces, rollout.cells)


def test_ascii_vtu_and_single_format(tmp_path):
    rollout = _flow_rollout(frames=2)
    written = export_mesh_rollout(rollout, tmp_path, dt=0.5, formats=("vtu",), encoding="ascii")
    assert [p.suffix for p in written] == [".vtu", ".vtu", ".pvd"]
    root = ET.parse(written[1]).getroot()
    assert {a.get("format") for a in root.iter("DataArray")} == {"ascii"}
    _, cells, data = read_vtu(written[1])
    np.testing.assert_array_equal(cells, rollout.cells)
    np.testing.assert_array_equal(data["velocity"][:, :2], rollout.predicted["velocity"][1])
    only_ply = export_mesh_rollout(rollout, tmp_path / "ply", dt=0.5, formats=["ply"])
    assert [p.suffix for p in only_ply] == [".ply", ".ply"]


def test_write_vtu_tetrahedra_round_trip(tmp_path):
    points = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]], np.float64)
    cells = np.array([[0, 1, 2, 3], [1, 2, 3, 4]])
    path = write_vtu(tmp_path / "tets.vtu", points, cells, {"id": np.arange(5), "vec": points * 2})
    assert ET.parse(path).getroot().find(".//DataArray[@Name='types']") is not None
    back_points, back_cells, data = read_vtu(path)
    np.testing.assert_array_equal(back_points, points.astype(np.float32))
    np.testing.assert_array_equal(back_cells, cells)
    np.testing.assert_array_equal(data["id"], np.arange(5))
    np.testing.assert_array_equal(data["vec"], points * 2)
    # Two tetrahedra sharing a face: 8 faces, the shared one inside.
    surface = surface_triangles(cells)
    assert surface.shape == (6, 3)
    assert not any(set(face) == {1, 2, 3} for face in surface.tolist())


def test_bad_options(tmp_path):
    rollout = _flow_rollout()
    with pytest.raises(GnsInputError, match="which"):
        export_mesh_rollout(rollout, tmp_path, dt=DT, which="truth")
    with pytest.raises(GnsInputError, match="formats"):
        export_mesh_rollout(rollout, tmp_path, dt=DT, formats=("stl",))
    with pytest.raises(GnsInputError, match="every"):
        export_mesh_rollout(rollout, tmp_path, dt=DT, every=0)
    with pytest.raises(GnsInputError, match="trajectory"):
        export_rollout(_write(tmp_path, rollout, "flow", "velocity"), tmp_path / "out", trajectory=3)


def test_read_vtu_accepts_a_separately_encoded_header(tmp_path):
    """Other writers base64-encode the byte count apart from the data; both layouts must read."""
    import base64

    path = write_vtu(tmp_path / "tri.vtu", np.eye(3), [[0, 1, 2]], {"p": np.array([1.5, 2.5, 3.5], np.float32)})
    tree = ET.parse(path)
    node = tree.getroot().find(".//DataArray[@Name='p']")
    raw = np.array([1.5, 2.5, 3.5], "<f4").tobytes()
    node.text = (base64.b64encode(np.array([len(raw)], "<u8").tobytes()) + base64.b64encode(raw)).decode()
    tree.write(path)
    np.testing.assert_array_equal(read_vtu(path)[2]["p"], [1.5, 2.5, 3.5])
