"""Windows of an object split as :class:`~gns.objects.state.ObjectState` s."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from gns.data.objects import ObjectScene, ObjectSplit, canonical_scene
from gns.data.windows import WindowSampler
from gns.errors import GnsInputError
from gns.objects.state import ATTRIBUTES, OBSTACLES, SPRING_VALUES, ObjectState
from gns.state import State

__all__ = ["ObjectWindows", "scene_attributes", "scene_springs", "scene_obstacles", "state_scene", "scene_static",
           "frames_to_state"]

# What a scene's static part is to the object simulator: attributes, springs (2, S), spring values (S, 3), obstacles.
SceneStatic = tuple[dict[str, Tensor], Tensor, Tensor, dict[str, Tensor]]


def scene_attributes(scene: ObjectScene) -> dict[str, Tensor]:
    """The :data:`~gns.objects.state.ATTRIBUTES` of a scene's objects as tensors (``shape`` int64, the rest float32)."""
    return {name: torch.as_tensor(np.asarray(getattr(scene, name)),
                                  dtype=torch.long if name == "shape" else torch.float32) for name in ATTRIBUTES}


def scene_springs(scene: ObjectScene) -> tuple[Tensor, Tensor]:
    """``(2, S)`` int64 spring ends and ``(S, 3)`` :data:`~gns.objects.state.SPRING_VALUES` of a scene."""
    pairs = torch.as_tensor(np.asarray(scene.spring_pairs, dtype=np.int64).reshape(-1, 2).T.copy())
    values = np.stack([np.asarray(getattr(scene, name), dtype=np.float32).reshape(-1) for name in SPRING_VALUES], 1)
    return pairs, torch.from_numpy(values)


def scene_obstacles(scene: ObjectScene) -> dict[str, Tensor]:
    """The static obstacles of a scene as the system attributes of a one-scene state
    (:data:`~gns.objects.state.OBSTACLES`): ``obstacle_shape (1, O)`` int64, the rest float32."""
    return {name: torch.as_tensor(np.asarray(getattr(scene, name)),
                                  dtype=torch.long if name == "obstacle_shape" else torch.float32)[None]
            for name in OBSTACLES}


def state_scene(state: State, bounds: Sequence[Sequence[float]] | Tensor) -> ObjectScene:
    """The scene of a one-scene object state, the inverse of :func:`scene_attributes`, :func:`scene_springs`
    and :func:`scene_obstacles`: its objects' attributes, springs and obstacles (padding dropped) in the
    stored dtypes, in the box ``bounds`` ``(2, 2)`` (agent 0)."""
    pairs = state.links["springs"].T.cpu().numpy()                                            # (S, 2)
    values = state.link_values["springs"].cpu().numpy()                                       # (S, 3)
    obstacles = {}
    if "obstacle_shape" in state.system:
        present = (state.system["obstacle_shape"][0] >= 0).cpu()                              # (M,)
        obstacles = {name: state.system[name][0].cpu()[present].numpy() for name in OBSTACLES}
    return canonical_scene(ObjectScene(
        bounds=np.asarray(torch.as_tensor(bounds).cpu(), dtype=np.float32),
        **{name: state.static[name].cpu().numpy() for name in ATTRIBUTES}, spring_pairs=pairs,
        **{name: values[:, k] for k, name in enumerate(SPRING_VALUES)}, **obstacles))


def scene_static(scene: ObjectScene) -> SceneStatic:
    """The attributes, springs ``(2, S)``, spring values ``(S, 3)`` and obstacles of a scene, as the object
    simulator reads them (:func:`scene_attributes`, :func:`scene_springs`, :func:`scene_obstacles`)."""
    return (scene_attributes(scene), *scene_springs(scene), scene_obstacles(scene))


def frames_to_state(position: np.ndarray, angle: np.ndarray, action: np.ndarray, static: SceneStatic) -> ObjectState:
    """One scene's frames in the stored layout (time first) as an :class:`ObjectState` window (object first).

    Args:
        position: ``(W, K, 2)``; angle: ``(W, K)``; action: ``(W, K, 3)``, the action applied from each frame.
        static: :func:`scene_static` of the scene.

    Returns:
        a state of one scene: ``position (K, W, 2)``, ``angle (K, W, 1)``, ``action (K, W, 3)`` float32.
    """
    def per_object(values: np.ndarray) -> Tensor:                                            # (W, K, F) -> (K, W, F)
        return torch.from_numpy(np.ascontiguousarray(np.asarray(values, dtype=np.float32).transpose(1, 0, 2)))

    attributes, springs, spring_values, obstacles = static
    return ObjectState(per_object(position), per_object(np.asarray(angle)[..., None]), per_object(action),
                       attributes, torch.tensor([np.shape(position)[1]]), springs, spring_values, obstacles)


class ObjectWindows(WindowSampler):
    """Windows of an object split, drawn uniformly over all valid windows (read lazily).

    Args:
        split: the trajectories.
        impact_fraction: ``objects.impact_fraction`` (:meth:`sample_items`).
        obstacles: whether the model sees static obstacles (``objects.obstacles``); without, a scene
            with obstacles is refused when it is first read.
    """

    def __init__(self, split: ObjectSplit, impact_fraction: float = 0.0, obstacles: bool = True) -> None:
        super().__init__([split.num_frames(i) for i in range(len(split))], split.path)
        if not 0.0 <= impact_fraction <= 1.0:
            raise GnsInputError("objects.impact_fraction must be in [0, 1]", file=split.path,
                                key="objects.impact_fraction", expected="[0, 1]", found=impact_fraction)
        self.split = split
        self.impact_fraction = float(impact_fraction)
        self.obstacles = bool(obstacles)
        self._static: dict[int, SceneStatic] = {}
        self._impacts: np.ndarray | None = None

    def impacts(self) -> np.ndarray:
        """``(I, 2)`` int64 ``(trajectory, step)`` of every step during which some object touches another
        object or an obstacle and did not during the step before, by the solver's contact record (read
        once, cached).

        Raises:
            GnsInputError: the split has no contact arrays (``metadata["contacts"]`` false).
        """
        if self._impacts is None:
            rows = []
            for i in range(len(self.split)):
                trajectory = self.split.read_window(i, 0, self.split.num_frames(i))
                contacts, blocked = trajectory.contacts, trajectory.obstacle_contacts
                if contacts is None:
                    raise GnsInputError("objects.impact_fraction needs the solver's contact record",
                                        file=self.split.path, key=f"{self.split.keys()[i]}/contacts",
                                        expected="(T-1, K, K) bool", found="absent")
                touching = np.asarray(contacts).any(-1).any(-1)                                  # (T-1,)
                if blocked is not None and np.size(blocked):
                    touching = touching | np.asarray(blocked).any(-1).any(-1)
                steps = np.flatnonzero(touching[1:] & ~touching[:-1]) + 1
                rows.append(np.stack([np.full_like(steps, i), steps], 1))
            self._impacts = np.concatenate(rows) if rows else np.zeros((0, 2), np.int64)
        return self._impacts

    def sample_items(self, batch_size: int, window: int, generator: torch.Generator, early_frames: int = 0,
                     early_fraction: float = 0.0) -> list[tuple[int, int]]:
        """As :meth:`gns.data.windows.WindowIndex.sample_items`; then, with ``impact_fraction`` > 0, each pair
        is, with that probability, replaced by a window whose last step (the one the loss scores) holds an
        impact (:meth:`impacts`, drawn uniformly: :meth:`gns.data.windows.WindowIndex.with_impacts`). Impacts are
        a few percent of the steps, and the one-step loss otherwise learns each object from its own history and
        action (``docs/objects.md``)."""
        items = super().sample_items(batch_size, window, generator, early_frames, early_fraction)
        return self.with_impacts(items, window, generator, self.impact_fraction)

    def fixed_items(self, count: int, window: int, seed: int = 1234) -> list[tuple[int, int]]:
        """Uniform windows, whatever ``impact_fraction`` is (validation scores the data as it comes)."""
        return super().sample_items(count, window, torch.Generator().manual_seed(seed))

    def keys(self) -> list[str]:
        return self.split.keys()

    def static(self, index: int) -> SceneStatic:
        """The attributes, springs ``(2, S)``, spring values ``(S, 3)`` and obstacles of trajectory ``index``
        (cached).

        Raises:
            GnsInputError: the scene has obstacles and the model does not see them, naming the file and key.
        """
        if index not in self._static:
            scene = self.split.scene(index)
            if scene.num_obstacles and not self.obstacles:
                raise GnsInputError("the scene has static obstacles and the model has no obstacle inputs: train "
                                    "with objects.obstacles true", file=self.split.path,
                                    key=f"{self.split.keys()[index]}/obstacle_shape",
                                    expected="no obstacles (objects.obstacles false)",
                                    found=f"{scene.num_obstacles} obstacles")
            self._static[index] = scene_static(scene)
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
        return frames_to_state(traj.position[:width], traj.angle[:width], action, self.static(index))
