"""Object rollout files animated as the scenes' own video, ground truth | prediction, springs drawn over it."""

from __future__ import annotations

import numpy as np
import pytest

from gns.data.objects import open_object_split
from gns.domains import get_domain
from gns.errors import GnsInputError
from gns.evaluate import evaluate_split
from gns.objects.viz import animate_objects, record_trajectory, render_object_rollout
from gns.objects.video import render_object_frames
from gns.rollout_io import comparison_panels, read_rollouts
from gns.viz import save_animation


def test_a_rollout_file_draws_itself(make_simulator, springs_dataset, tmp_path):
    simulator = make_simulator(dataset=springs_dataset)
    with get_domain("objects").open_split_for(simulator, springs_dataset, "test") as split:
        evaluate_split(simulator, split, (1, 5), num_steps=6, save_path=tmp_path / "roll.h5", progress=False)
    records, attrs = read_rollouts(tmp_path / "roll.h5")
    panels = comparison_panels(records, attrs)
    assert [title for title, _, _ in panels] == ["Ground truth", "Prediction"]
    truth = record_trajectory(panels[0][1], "ground_truth", attrs["info"]["bounds"])
    assert truth.scene.num_springs > 0 and truth.num_frames == simulator.window + 6
    # the panel of the truth is the dataset's own video of those frames
    with open_object_split(springs_dataset, "test") as again:
        stored = again.read_window(0, 0, truth.num_frames)
    np.testing.assert_array_equal(render_object_frames(truth, 48), render_object_frames(stored, 48))
    anim = animate_objects([("a", truth), ("b", truth)], stride=2)
    assert len(anim.axes) == 2 and len(anim.steps) == (truth.num_frames + 1) // 2
    anim._func(int(anim.steps[-1]))                                                    # draws a later frame
    segments = anim.axes[0].collections[0].get_segments()
    np.testing.assert_allclose(np.asarray(segments), truth.position[anim.steps[-1]][truth.scene.spring_pairs])
    assert save_animation(anim, tmp_path / "two.gif", dpi=30).stat().st_size > 0
    gif = render_object_rollout(tmp_path / "roll.h5", tmp_path / "roll.gif", stride=3)
    assert gif.stat().st_size > 0


def test_a_file_of_another_domain_is_refused(tmp_path):
    from gns.rollout_io import RolloutRecord, write_rollouts

    record = RolloutRecord("00000", {"predicted": {"position": np.zeros((3, 2, 2))},
                                     "ground_truth": {"position": np.zeros((3, 2, 2))}})
    write_rollouts(tmp_path / "p.h5", [record], simulator="particles", domain="water2d", dt=0.01,
                   target_field="position")
    with pytest.raises(GnsInputError, match="not an object rollout file"):
        render_object_rollout(tmp_path / "p.h5", tmp_path / "p.gif")


def test_a_rollout_of_a_scene_with_obstacles_draws_them(make_simulator, obstacles_dataset, tmp_path):
    from gns.objects.video import OBSTACLE_COLOUR

    simulator = make_simulator("objects.obstacles=true", dataset=obstacles_dataset)
    with get_domain("objects").open_split_for(simulator, obstacles_dataset, "test") as split:
        evaluate_split(simulator, split, (1, 5), num_steps=4, save_path=tmp_path / "roll.h5", progress=False)
    records, attrs = read_rollouts(tmp_path / "roll.h5")
    with open_object_split(obstacles_dataset, "test") as again:
        scenes = [again.scene(t) for t in range(len(records))]
    assert any(len(r.system["obstacle_shape"]) > s.num_obstacles for r, s in zip(records, scenes))  # some padding
    for record, stored in zip(records, scenes):
        assert record.system["obstacle_shape"].shape[0] >= stored.num_obstacles      # padded to the batch's most
        for source in ("ground_truth", "predicted"):
            scene = record_trajectory(record, source, attrs["info"]["bounds"]).scene
            assert scene.num_obstacles == stored.num_obstacles >= 1                   # the padding rows dropped
            np.testing.assert_array_equal(scene.obstacle_shape, stored.obstacle_shape)
            for name in ("obstacle_size", "obstacle_position", "obstacle_angle"):
                np.testing.assert_allclose(getattr(scene, name), getattr(stored, name), atol=1e-6)
    # the drawing is the dataset's own video, obstacles (in their grey) included
    truth = record_trajectory(records[0], "ground_truth", attrs["info"]["bounds"])
    with open_object_split(obstacles_dataset, "test") as again:
        stored = again.read_window(0, 0, truth.num_frames)
    frames = render_object_frames(truth, 48)
    np.testing.assert_array_equal(frames, render_object_frames(stored, 48))
    grey = np.round(np.asarray(OBSTACLE_COLOUR) * 255).astype(np.uint8)
    assert (frames[0] == grey).all(-1).any()
    gif = render_object_rollout(tmp_path / "roll.h5", tmp_path / "roll.gif", trajectory=1, stride=3)
    assert gif.stat().st_size > 0


def test_a_record_without_obstacles_draws_none_and_bad_obstacles_are_refused():
    from gns.rollout_io import RolloutRecord

    frames = {"position": np.zeros((2, 1, 2)), "angle": np.zeros((2, 1, 1))}
    static = {"shape": np.zeros(1, np.int64), "size": np.full((1, 2), 0.1), "colour": np.ones((1, 3))}
    record = RolloutRecord("00000", {"predicted": frames}, static)
    assert record_trajectory(record, "predicted", [[0, 1], [0, 1]]).scene.num_obstacles == 0
    record.system = {"obstacle_shape": np.array([2, -1]), "obstacle_size": np.full((2, 2), 0.2),
                     "obstacle_position": np.full((2, 2), 0.5), "obstacle_angle": np.zeros(2)}
    scene = record_trajectory(record, "predicted", [[0, 1], [0, 1]]).scene
    assert scene.obstacle_shape.tolist() == [2] and scene.obstacle_size.shape == (1, 2)
    del record.system["obstacle_angle"]
    with pytest.raises(GnsInputError, match="00000/system"):
        record_trajectory(record, "predicted", [[0, 1], [0, 1]])
    record.system["obstacle_angle"] = np.zeros(3)
    with pytest.raises(GnsInputError, match="00000/system/obstacle_angle"):
        record_trajectory(record, "predicted", [[0, 1], [0, 1]])
