"""Video of object scenes from the stored arrays alone: shapes, colours, rotation, obstacles."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gns.data.objects import BOX, DISC, TRIANGLE, ObjectScene, ObjectTrajectory, object_moment
from gns.errors import GnsInputError
from gns.objects.video import BACKGROUND, OBSTACLE_COLOUR, render_object_frames

COLOURS = np.array([[1.0, 0.2, 0.2], [0.2, 1.0, 0.2], [0.2, 0.2, 1.0]])


def scene_of_three(obstacle: bool = False) -> ObjectTrajectory:
    """A disc, a long thin box turned upright (90 degrees) and a triangle, apart, over two frames."""
    shape, size = np.array([DISC, BOX, TRIANGLE]), np.array([[0.2, 0.2], [0.4, 0.06], [0.2, 0.2]])
    mass = np.ones(3)
    extra = dict(obstacle_shape=np.array([DISC]), obstacle_position=np.array([[0.85, 0.85]]),
                 obstacle_angle=np.zeros(1), obstacle_size=np.array([[0.1, 0.1]])) if obstacle else {}
    scene = ObjectScene(bounds=np.array([[0.0, 1.0], [0.0, 1.0]]), shape=shape, size=size, mass=mass,
                        moment=object_moment(shape, size, mass), friction=np.ones(3), restitution=np.ones(3),
                        colour=COLOURS, **extra)
    position = np.array([[[0.2, 0.2], [0.5, 0.5], [0.8, 0.2]], [[0.2, 0.8], [0.5, 0.5], [0.8, 0.2]]])
    angle = np.array([[0.0, np.pi / 2, 0.3], [0.0, np.pi / 2, 0.3]])
    return ObjectTrajectory(scene, position, angle, np.zeros((2, 3, 2)), np.zeros((2, 3)), np.zeros((1, 3, 3)))


def pixel(images: np.ndarray, frame: int, x: float, y: float) -> np.ndarray:
    """The pixel at world point (x, y) of the unit box (y up, row 0 at the top)."""
    size = images.shape[2]
    return images[frame, int((1 - y) * size), int(x * size)]


def test_every_object_is_drawn_in_its_colour_at_its_centre():
    trajectory = scene_of_three()
    images = render_object_frames(trajectory, 96)
    assert images.shape == (2, 96, 96, 3) and images.dtype == np.uint8
    for t in range(2):
        for k in range(3):
            x, y = trajectory.position[t, k]
            np.testing.assert_array_equal(pixel(images, t, x, y), np.round(COLOURS[k] * 255))
    np.testing.assert_array_equal(pixel(images, 0, 0.2, 0.8), np.round(np.array(BACKGROUND) * 255))  # the disc moved
    np.testing.assert_array_equal(pixel(images, 1, 0.2, 0.2), np.round(np.array(BACKGROUND) * 255))


def test_polygons_are_rotated_by_their_angle():
    images = render_object_frames(scene_of_three(), 100, frames=[0])
    box = np.round(COLOURS[1] * 255)
    np.testing.assert_array_equal(pixel(images, 0, 0.5, 0.68), box)      # upright: 0.4 tall
    assert not np.array_equal(pixel(images, 0, 0.58, 0.5), box)           # and 0.06 wide
    assert images.shape == (1, 100, 100, 3)


def test_obstacles_are_grey_and_the_height_follows_the_box():
    trajectory = scene_of_three(obstacle=True)
    images = render_object_frames(trajectory, 64)
    np.testing.assert_array_equal(pixel(images, 0, 0.85, 0.85), np.round(np.array(OBSTACLE_COLOUR) * 255))
    trajectory.scene = dataclasses.replace(trajectory.scene, bounds=np.array([[0.0, 1.0], [0.0, 0.5]]))
    assert render_object_frames(trajectory, 64).shape == (2, 32, 64, 3)
    with pytest.raises(GnsInputError, match="at least 8 pixels"):
        render_object_frames(trajectory, 4)
