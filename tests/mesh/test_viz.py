"""Mesh rollout animations (cloth in 3D, flow fields) and the RMSE-vs-horizon plot, on tiny meshes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from gns.errors import GnsInputError  # noqa: E402
from gns.mesh import viz  # noqa: E402
from gns.mesh.io import make_rectangle_mesh  # noqa: E402
from gns.mesh.export import mesh_record  # noqa: E402
from gns.rollout_io import RolloutRecord, write_rollouts  # noqa: E402

pytestmark = [pytest.mark.usefixtures("close_figures"),
              pytest.mark.filterwarnings("ignore:Animation was deleted without rendering anything")]


def _cloth_rollout(frames: int = 3) -> RolloutRecord:
    """A 2 x 2-quad sheet falling and waving (two HANDLE corners) beside a one-triangle OBSTACLE."""
    mesh_pos, cells = make_rectangle_mesh(1.0, 1.0, 2, 2)                         # 9 nodes, 8 triangles
    n = len(mesh_pos)
    obstacle = np.array([[1.5, 0.0, 0.0], [2.0, 0.0, 0.0], [1.5, 0.5, 0.0]])
    t = np.arange(frames)[:, None]
    sheet = np.stack([np.broadcast_to(mesh_pos[:, 0], (frames, n)),
                      np.broadcast_to(mesh_pos[:, 1], (frames, n)) - 0.05 * t,
                      0.1 * np.sin(3 * mesh_pos[:, 0] + t)], axis=-1)                # (T, 9, 3)
    truth = np.concatenate([sheet, np.broadcast_to(obstacle, (frames, 3, 3))], axis=1)
    node_type = np.zeros(n + 3, np.int32)
    node_type[[6, 8]] = 3
    node_type[n:] = 1
    all_pos = np.concatenate([mesh_pos, obstacle[:, :2]])
    all_cells = np.concatenate([cells, [[n, n + 1, n + 2]]])
    return mesh_record("00000", all_pos, all_cells, node_type, {"world_pos": truth + 0.01}, {"world_pos": truth})


def _flow_rollout(frames: int = 3) -> RolloutRecord:
    mesh_pos, cells = make_rectangle_mesh(2.0, 1.0, 4, 2)
    rng = np.random.default_rng(0)
    node_type = np.zeros(len(mesh_pos), np.int32)
    node_type[mesh_pos[:, 1] == 0] = 6
    node_type[mesh_pos[:, 0] == 0] = 4
    truth = {"velocity": rng.normal(size=(frames, len(mesh_pos), 2)),
             "pressure": rng.normal(size=(frames, len(mesh_pos), 1))}
    predicted = {k: v + 0.1 for k, v in truth.items()}
    return mesh_record("00000", mesh_pos, cells, node_type, predicted, truth)


def _gif_frames(path) -> int:
    with Image.open(path) as image:
        return image.n_frames


def test_cloth_gif_has_one_frame_per_step(tmp_path):
    rollout = _cloth_rollout(frames=3)
    anim = viz.animate_cloth(rollout, fps=5, dt=0.02, path=tmp_path / "cloth.gif", dpi=20)
    assert _gif_frames(tmp_path / "cloth.gif") == 3
    truth_axes, pred_axes = anim.axes
    assert truth_axes.get_xlim() == pred_axes.get_xlim() and truth_axes.get_zlim() == pred_axes.get_zlim()
    truth = rollout.ground_truth["world_pos"]
    lo, hi = truth_axes.get_zlim()
    assert lo <= truth[..., 2].min() and hi >= truth[..., 2].max()
    # One surface per panel; the obstacle face has its own colour.
    surface = [c for c in truth_axes.collections if hasattr(c, "set_verts")][0]
    faces = surface.get_facecolor()
    assert len(faces) == 9 and not np.allclose(faces[-1], faces[0])


def test_cloth_every_thins_frames():
    anim = viz.animate_cloth(_cloth_rollout(frames=5), every=2)  # validated inside
    assert anim.steps.tolist() == [0, 2, 4]


@pytest.mark.parametrize("field", ["velocity", "pressure"])
def test_flow_gif_has_one_frame_per_step(tmp_path, field):
    anim = viz.animate_flow(_flow_rollout(), field=field, path=tmp_path / "flow.gif", dpi=20)
    assert _gif_frames(tmp_path / "flow.gif") == 3
    truth_image, pred_image, diff_image = (ax.collections[0] for ax in anim.axes)
    assert truth_image.get_clim() == pred_image.get_clim()
    lo, hi = diff_image.get_clim()
    assert (lo == 0.0) if field == "velocity" else (lo == -hi)


def test_flow_needs_a_2d_triangle_mesh():
    flow = _flow_rollout()
    mesh_pos = flow.static["mesh_pos"]
    flow.static["mesh_pos"] = np.concatenate([mesh_pos, np.zeros((len(mesh_pos), 1))], axis=1)  # (N, 3)
    with pytest.raises(GnsInputError, match="2D triangle mesh"):
        viz.animate_flow(flow)
    with pytest.raises(GnsInputError, match="no such field"):
        viz.animate_flow(_flow_rollout(), field="density")


@pytest.mark.parametrize("domain", ["cloth", "flow"])
def test_render_picks_the_animation(tmp_path, monkeypatch, domain):
    rollout = _cloth_rollout() if domain == "cloth" else _flow_rollout()
    target = "world_pos" if domain == "cloth" else "velocity"
    path = write_rollouts(tmp_path / "r.h5", [rollout], simulator="mesh", domain=domain, dt=0.02,
                          target_field=target)
    called = []
    for name in ("animate_cloth", "animate_flow"):
        original = getattr(viz, name)
        monkeypatch.setattr(viz, name, lambda *a, _n=name, _f=original, **k: called.append(_n) or _f(*a, **k))
    out = viz.render_mesh_rollout(path, tmp_path / "out.gif", dpi=20)
    assert called == [f"animate_{domain}"]
    assert _gif_frames(out) == 3


def test_plot_rmse_vs_horizon():
    metrics = {"model": {"rmse": {"1": 1e-3, "10": 5e-3, "full": 2e-2}},
               "persistence": {"rmse": {"1": 4e-3, "10": 3e-2, "full": 1e-1}},
               "no_rmse": {"mse": {"1": 1.0}}}
    ax = viz.plot_rmse_vs_horizon(metrics)
    assert ax.get_yscale() == "log" and ax.figure is not None
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["model", "model, full rollout", "persistence", "persistence, full rollout"]
    np.testing.assert_allclose(ax.get_lines()[0].get_xydata(), [[1, 1e-3], [10, 5e-3]])
    per_field = {"model": {"rmse": {"velocity": {"1": 1.0}, "pressure": {"1": 2.0}}}}
    _, ax2 = plt.subplots()
    assert viz.plot_rmse_vs_horizon(per_field, ax=ax2) is ax2
    assert [line.get_label() for line in ax2.get_lines()] == ["model velocity", "model pressure"]
