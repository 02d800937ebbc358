"""A model that outputs the true normalized accelerations reproduces the solver's trajectory through the
shared rollout driver, reading the actions the rollout feeds it; windows put each action at its frame."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gns.data.objects import open_object_split
from gns.rollout import rollout


class Oracle:
    """Stands in for the network: the exact inverse of decode + integrate for the true next frame. It
    also checks that the step sees the action the solver applied from its last frame."""

    def __init__(self, simulator, truth: dict[str, torch.Tensor], actions: torch.Tensor) -> None:
        self.simulator, self.truth, self.actions, self.t = simulator, truth, actions, 0

    def __call__(self, state) -> torch.Tensor:
        torch.testing.assert_close(state.action[:, -1], self.actions[:, self.t], atol=0, rtol=0)
        target = self.simulator.target(state, {name: v[:, self.t] for name, v in self.truth.items()})
        self.t += 1
        return target


@pytest.mark.parametrize("springs", [False, True])
def test_oracle_rollout_reproduces_the_solver(make_simulator, test_windows, spring_windows, objects_dataset,
                                              springs_dataset, springs):
    dataset, windows = (springs_dataset, spring_windows) if springs else (objects_dataset, test_windows)
    simulator = make_simulator(dataset=dataset)
    w = simulator.window
    full = windows.read(0, 0, windows.num_frames(0))
    assert bool(full.springs.numel()) == springs
    with open_object_split(dataset, "test") as split:
        stored = split[0]
    steps = stored.num_frames - w
    future = full.window(w, w + steps)
    truth = {name: future.fields[name] for name in simulator.predicted_fields}
    simulator.forward = Oracle(simulator, truth, torch.from_numpy(stored.action[w - 1:]).transpose(0, 1))
    predicted = rollout(simulator, full.window(0, w), steps, future.fields)
    assert simulator.forward.t == steps
    for name in simulator.predicted_fields:
        error = float((predicted[name] - truth[name]).abs().max())
        assert error < 1e-5, (name, error)


def test_windows_put_each_action_at_the_frame_it_starts_from(test_windows, objects_dataset):
    with open_object_split(objects_dataset, "test") as split:
        stored = split[1]
    last = stored.num_frames
    state = test_windows.read(1, last - 4, last)                                     # ends at the last frame
    np.testing.assert_array_equal(state.action[:, :3].numpy(), stored.action[last - 4:].transpose(1, 0, 2))
    assert not bool(state.action[:, -1].any())                                      # no step after the last frame
    np.testing.assert_array_equal(state.angle[:, :, 0].numpy(), stored.angle[last - 4:].T)
    middle = test_windows.read(1, 5, 8)
    np.testing.assert_array_equal(middle.action.numpy(), stored.action[5:8].transpose(1, 0, 2))


def test_obstacles_come_with_the_windows_and_go_back_into_the_scene(obstacles_dataset):
    """A window carries its scene's obstacles as system attributes; the scene made back from the state has
    them exactly (so the solver re-simulates a state with its obstacles); a model without obstacle inputs
    refuses the scene, naming the file and the key."""
    from gns.errors import GnsInputError
    from gns.objects.windows import ObjectWindows, state_scene

    with open_object_split(obstacles_dataset, "train") as split:
        scene = split.scene(0)
        assert scene.num_obstacles >= 1
        state = ObjectWindows(split).read(0, 0, 3)
        assert state.num_obstacles.tolist() == [scene.num_obstacles]
        back = state_scene(state, scene.bounds)
        for name in ("obstacle_shape", "obstacle_size", "obstacle_position", "obstacle_angle", "shape", "mass"):
            np.testing.assert_array_equal(getattr(back, name), getattr(scene, name))
        with pytest.raises(GnsInputError, match="obstacles") as error:
            ObjectWindows(split, obstacles=False).read(0, 0, 3)
        assert error.value.key == "00000/obstacle_shape" and str(split.path) in str(error.value)
