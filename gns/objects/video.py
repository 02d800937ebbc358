"""Video of object scenes rendered from the stored arrays alone (``docs/objects.md``).

What a slot model learns from: every object drawn as its shape (discs as ellipses, polygons rotated
by their angle) in its stored ``colour``, obstacles in ``OBSTACLE_COLOUR``, on a plain
``BACKGROUND``; the image spans the box exactly (its border is the walls), y pointing up. No
anti-aliasing, so every pixel is the colour of exactly one thing.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from gns.data.objects import DISC, ObjectTrajectory, world_vertices
from gns.errors import GnsInputError

BACKGROUND = (0.1, 0.1, 0.1)  # dark grey: the objects' colours are bright and saturated (value >= 0.75)
OBSTACLE_COLOUR = (0.5, 0.5, 0.5)  # mid grey: unsaturated, so no object shares it


def render_object_frames(trajectory: ObjectTrajectory, size: int = 64, *,
                         frames: Sequence[int] | None = None) -> np.ndarray:
    """Render frames of an object trajectory as RGB images.

    Objects are drawn in index order (later ones on top where they touch), after the obstacles.

    Args:
        trajectory: the scene (shapes, sizes, colours, obstacles, box) and its states.
        size: image width in pixels; the height follows the box's aspect ratio.
        frames: which frames (default: all).

    Returns:
        ``(F, H, W, 3)`` uint8 images.

    Raises:
        GnsInputError: ``size`` below 8 pixels.
    """
    if size < 8:
        raise GnsInputError("images need at least 8 pixels across", key="size", expected=">= 8", found=size)
    scene = trajectory.scene
    (xlo, xhi), (ylo, yhi) = np.asarray(scene.bounds, dtype=np.float64).tolist()
    scale = size / (xhi - xlo)                                   # pixels per metre
    width, height = size, max(1, round((yhi - ylo) * scale))

    def pixels(points: np.ndarray) -> list[tuple[float, float]]:
        """World ``(..., 2)`` points -> image (column, row): row 0 at the top wall."""
        return [((x - xlo) * scale, (yhi - y) * scale) for x, y in np.asarray(points).reshape(-1, 2)]

    def draw_shape(draw: ImageDraw.ImageDraw, shape: int, shape_size: np.ndarray, position: np.ndarray,
                   angle: float, colour: tuple[int, int, int]) -> None:
        if shape == DISC:
            (cx, cy), r = pixels(position)[0], float(shape_size[0]) / 2 * scale
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
        else:
            draw.polygon(pixels(world_vertices(shape, shape_size, position, angle)), fill=colour)

    colours = [_rgb(c) for c in scene.colour]
    indices = range(trajectory.num_frames) if frames is None else frames
    images = np.empty((len(indices), height, width, 3), dtype=np.uint8)
    for n, t in enumerate(indices):
        image = Image.new("RGB", (width, height), _rgb(BACKGROUND))
        draw = ImageDraw.Draw(image)
        for o in range(scene.num_obstacles):
            draw_shape(draw, int(scene.obstacle_shape[o]), scene.obstacle_size[o], scene.obstacle_position[o],
                       float(scene.obstacle_angle[o]), _rgb(OBSTACLE_COLOUR))
        for k in range(scene.num_objects):
            draw_shape(draw, int(scene.shape[k]), scene.size[k], trajectory.position[t, k],
                       float(trajectory.angle[t, k]), colours[k])
        images[n] = np.asarray(image)
    return images


def _rgb(colour: Sequence[float]) -> tuple[int, int, int]:
    """A [0, 1] float RGB colour as 8-bit integers."""
    return tuple(int(round(float(c) * 255)) for c in colour)  # type: ignore[return-value]
