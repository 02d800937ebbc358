"""Windows of an object split as :class:`~gns.objects.state.ObjectState` s."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from gns.data.objects import ObjectScene, ObjectSplit
from gns.data.windows import WindowSampler
from gns.errors import GnsInputError
from gns.objects.state import ATTRIBUTES, SPRING_VALUES, ObjectState

__all__ = ["ObjectWindows", "scene_attributes", "scene_springs"]


def scene_attributes(scene: ObjectScene) -> dict[str, Tensor]:
    """The :data:`~gns.objects.state.ATTRIBUTES` of a scene's objects as tensors (``shape`` int64, the rest float32)."""
    return {name: torch.as_tensor(np.asarray(getattr(scene, name)),
                                  dtype=torch.long if name == "shape" else torch.float32) for name in ATTRIBUTES}


def scene_springs(scene: ObjectScene) -> tuple[Tensor, Tensor]:
    """``(2, S)`` int64 spring ends and ``(S, 3)`` :data:`~gns.objects.state.SPRING_VALUES` of a scene."""
    pairs = torch.as_tensor(np.asarray(scene.spring_pairs, dtype=np.int64).reshape(-1, 2).T.copy())
    values = np.stack([np.asarray(getattr(scene, name), dtype=np.float32).reshape(-1) for name in SPRING_VALUES], 1)
    return pairs, torch.from_numpy(values)


class ObjectWindows(WindowSampler):
    """Windows of an object split, drawn uniformly over all valid windows (read lazily).

    Args:
        split: the trajectories.
    """

    def __init__(self, split: ObjectSplit) -> None:
        super().__init__([split.num_frames(i) for i in range(len(split))], split.path)
        self.split = split
        self._static: dict[int, tuple[dict[str, Tensor], Tensor, Tensor]] = {}

    def keys(self) -> list[str]:
        return self.split.keys()

    def static(self, index: int) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """The attributes, springs ``(2, S)`` and spring values ``(S, 3)`` of trajectory ``index`` (cached)."""
        if index not in self._static:
            scene = self.split.scene(index)
            if scene.num_obstacles:  # the graph has no obstacle nodes yet: a model would not see them
                raise GnsInputError("the object simulator does not model static obstacles yet", file=self.split.path,
                                    key=f"{self.split.keys()[index]}/obstacle_shape", expected="no obstacles",
                                    found=f"{scene.num_obstacles} obstacles")
            self._static[index] = (scene_attributes(scene), *scene_springs(scene))
        return self._static[index]

    def read(self, index: int, start: int, stop: int) -> ObjectState:
        """Frames ``[start, stop)`` of trajectory ``index``: ``(K, stop - start, F)`` fields.

        The action at each frame is the one applied from it to the next frame, so one more frame
        is read when there is one; at the trajectory's last frame the action is zero.
        """
        frames = self.split.num_frames(index)
        traj = self.split.read_window(index, start, min(stop + 1, frames))
        width = stop - start
        action = np.zeros((width, traj.num_objects, 3), dtype=np.float32)                    # (W, K, 3)
        action[:len(traj.action[:width])] = traj.action[:width]

        def per_object(values: np.ndarray) -> Tensor:                                        # (W, K, F) -> (K, W, F)
            return torch.from_numpy(np.ascontiguousarray(values.transpose(1, 0, 2)))

        attributes, springs, spring_values = self.static(index)
        return ObjectState(per_object(traj.position[:width]), per_object(traj.angle[:width, :, None]),
                           per_object(action), attributes, torch.tensor([traj.num_objects]), springs, spring_values)
